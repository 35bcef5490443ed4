//! WaitId: a child's exit as a completion, with its status; reaped, no
//! zombie left. Every test waits for a pid of its own (P_PID), so they
//! run in parallel with the rest; P_ALL, P_PGID and stops wait on SIGCHLD
//! and are in tests/signals.rs, a process of their own.

// The children are reaped by the WaitIds under test, not by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};

use common::{PATIENCE, assert_quiet, each_mode, run1, start, submit_all, wait_n, wait_sorted};
use kqring::ops::{AsyncCancel, Nop, Read, WaitId};
use kqring::{Ring, SqeFlags};

/// A child that exits with `code` once its stdin is closed.
fn child_exiting(code: i32) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read line; exit {code}")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

fn pid(child: &Child) -> libc::id_t {
    child.id() as libc::id_t
}

fn waitid(pid: libc::id_t, ud: u64) -> kqring::Sqe {
    WaitId::new(libc::P_PID, pid, libc::WEXITED)
        .build()
        .user_data(ud)
}

/// Whether `pid` is still a child of this process that can be waited
/// for: ECHILD once it has been reaped.
fn reaped(pid: libc::id_t) -> bool {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a writable siginfo_t; WNOWAIT leaves the child.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// Blocks until `child` has exited, leaving it a zombie.
fn until_exited(child: &Child) {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above, without WNOHANG: returns once it has exited.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid(child),
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
}

fn uid() -> libc::uid_t {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() }
}

#[test]
fn an_exit_completes_with_its_status_and_the_child_is_reaped() {
    each_mode(|ring| {
        let mut child = child_exiting(7);
        start(ring, [waitid(pid(&child), 1)]);
        assert_quiet(ring);
        drop(child.stdin.take());
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result(), c.flags()), (1, 0, 0));
        let info = c.wait_info().expect("the child's state");
        assert_eq!(
            (info.signo, info.code, info.pid, info.status, info.uid),
            (libc::SIGCHLD, libc::CLD_EXITED, child.id() as i32, 7, uid())
        );
        assert!(reaped(pid(&child)), "no zombie left behind");
    });
}

#[test]
fn a_child_that_exited_before_the_operation_still_completes() {
    each_mode(|ring| {
        let mut child = child_exiting(3);
        drop(child.stdin.take());
        until_exited(&child);
        let c = run1(ring, waitid(pid(&child), 2));
        assert_eq!(c.result(), 0);
        let info = c.wait_info().expect("info");
        assert_eq!((info.code, info.status), (libc::CLD_EXITED, 3));
        assert!(reaped(pid(&child)));
    });
}

#[test]
fn a_killed_child_reports_the_signal() {
    each_mode(|ring| {
        let mut child = child_exiting(0);
        start(ring, [waitid(pid(&child), 3)]);
        child.kill().expect("kill");
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 0);
        let info = c.wait_info().expect("info");
        assert_eq!((info.code, info.status), (libc::CLD_KILLED, libc::SIGKILL));
        assert!(reaped(pid(&child)));
    });
}

#[test]
fn a_pid_that_is_not_a_child_is_echild_and_bad_options_einval() {
    each_mode(|ring| {
        // pid 1 is nobody's child here; a pid past pid_max exists nowhere.
        let c = run1(ring, waitid(1, 4));
        assert_eq!((c.result(), c.wait_info()), (-libc::ECHILD, None));
        let c = run1(ring, waitid(1 << 30, 5));
        assert_eq!(c.result(), -libc::ECHILD);
        let mut child = child_exiting(0);
        // Neither WEXITED, WSTOPPED nor WCONTINUED.
        let c = run1(ring, WaitId::new(libc::P_PID, pid(&child), 0).build());
        assert_eq!(c.result(), -libc::EINVAL);
        let c = run1(
            ring,
            WaitId::new(libc::P_PID, pid(&child), libc::WEXITED | 0x0010_0000).build(),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        drop(child.stdin.take());
        child.wait().expect("reap");
    });
}

#[test]
fn wnohang_answers_at_once_and_wnowait_leaves_the_child() {
    each_mode(|ring| {
        let mut child = child_exiting(5);
        let nohang = WaitId::new(libc::P_PID, pid(&child), libc::WEXITED | libc::WNOHANG);
        let c = run1(ring, nohang.build().user_data(6));
        assert_eq!(c.result(), 0, "nothing to report is no error");
        assert_eq!(c.wait_info().map(|i| (i.signo, i.pid)), Some((0, 0)));
        drop(child.stdin.take());
        let nowait = WaitId::new(libc::P_PID, pid(&child), libc::WEXITED | libc::WNOWAIT);
        let c = run1(ring, nowait.build().user_data(7));
        assert_eq!(
            c.wait_info().map(|i| (i.code, i.status)),
            Some((libc::CLD_EXITED, 5))
        );
        assert!(!reaped(pid(&child)), "WNOWAIT leaves it");
        let c = run1(ring, waitid(pid(&child), 8));
        assert_eq!(c.wait_info().map(|i| i.status), Some(5));
        assert!(reaped(pid(&child)));
    });
}

#[test]
fn two_waits_for_one_child_one_reaps_the_other_is_echild() {
    each_mode(|ring| {
        let mut child = child_exiting(1);
        start(ring, [waitid(pid(&child), 1), waitid(pid(&child), 2)]);
        drop(child.stdin.take());
        let c = wait_sorted(ring, 2);
        assert_eq!((c[0].result(), c[1].result()), (0, -libc::ECHILD));
        assert!(reaped(pid(&child)));
    });
}

#[test]
fn cancel_before_it_starts_and_while_it_waits() {
    each_mode(|ring| {
        let mut child = child_exiting(0);
        // A failed link member cancels the WaitId behind it.
        let bad = Read::new(common::BAD_FD, Vec::with_capacity(1));
        submit_all(
            ring,
            [
                bad.build().user_data(1).flags(SqeFlags::IO_LINK),
                waitid(pid(&child), 2),
            ],
        );
        let c = wait_sorted(ring, 2);
        assert_eq!(
            (c[0].result(), c[1].result()),
            (-libc::EBADF, -libc::ECANCELED)
        );
        // While waiting: io_uring's answer, -ECANCELED, and the cancel 1
        // (io_uring's count for a waitid; 0 for any other operation).
        start(ring, [waitid(pid(&child), 3)]);
        let before = ring.stats().changes;
        submit_all(ring, [AsyncCancel::new(3).build().user_data(4)]);
        let c = wait_sorted(ring, 2);
        assert_eq!((c[0].user_data(), c[0].result()), (3, -libc::ECANCELED));
        assert_eq!((c[1].user_data(), c[1].result()), (4, 1));
        assert_eq!(c[0].wait_info(), None);
        // Its registration is deleted (one change), and nothing reaped it.
        assert_eq!(ring.stats().changes - before, 1);
        assert!(!reaped(pid(&child)));
        drop(child.stdin.take());
        child.wait().expect("the child is still ours to reap");
    });
}

#[test]
fn dropping_the_ring_cancels_a_waiting_waitid() {
    let mut child = child_exiting(0);
    let cq = {
        let ring = Ring::new(4).expect("ring");
        start(&ring, [waitid(pid(&child), 9)]);
        ring.completion().clone()
    };
    let c = cq
        .wait_timeout(PATIENCE)
        .expect("wait")
        .expect("its completion");
    assert_eq!((c.user_data(), c.result()), (9, -libc::ECANCELED));
    drop(child.stdin.take());
    child.wait().expect("reap");
}

#[test]
fn a_link_goes_on_after_the_child_exits() {
    each_mode(|ring| {
        let mut child = child_exiting(0);
        submit_all(
            ring,
            [
                waitid(pid(&child), 1).flags(SqeFlags::IO_LINK),
                Nop::new().build().user_data(2),
            ],
        );
        assert_quiet(ring);
        writeln!(child.stdin.as_mut().expect("stdin"), "go").expect("write");
        let c = wait_n(ring, 2);
        assert_eq!(
            c.iter()
                .map(|c| (c.user_data(), c.result()))
                .collect::<Vec<_>>(),
            [(1, 0), (2, 0)]
        );
    });
}
