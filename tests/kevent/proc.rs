//! EVFILT_PROC with NOTE_EXIT: the exit status in `data`.
//!
//! The children block reading their stdin until the test closes or kills
//! them, so they cannot exit before the registration (a process that is
//! gone cannot be watched). The test reaps each child itself afterwards:
//! watching must not reap.
//!
//! On exit kqueue sets EV_EOF and EV_ONESHOT on the event itself (FreeBSD
//! and macOS filt_proc; see `implied_flags`), so the registration is gone
//! after delivery even when it was not made EV_ONESHOT.

use std::os::unix::process::ExitStatusExt;

use kqring::sys::{Change, Filter, Flags, note};

use crate::common::*;

#[test]
fn exit_reports_the_wait_status() {
    let kq = kq();
    let mut child = blocked_child("read x; exit 7");
    let pid = child.id() as libc::pid_t;
    let flags = Flags::ADD | Flags::ONESHOT;
    apply(&kq, &[Change::proc_exit(pid, flags).token(0x61)]);
    assert_quiet(&kq);

    // Closing its stdin lets it exit.
    drop(child.stdin.take());
    let ev = wait_one(&kq);
    let status = child
        .wait()
        .expect("reap the child (kevent must not reap it)");
    assert_eq!(status.code(), Some(7));

    let raw_status = ev.data() as libc::c_int;
    assert!(
        libc::WIFEXITED(raw_status),
        "data {:#x} is not an exit status",
        ev.data()
    );
    assert_eq!(libc::WEXITSTATUS(raw_status), 7, "data {:#x}", ev.data());
    Want::new(pid as usize, Filter::PROC, flags, 0x61)
        .eof()
        .fflags(note::EXIT_STATUS)
        .data(i64::from(status.into_raw()))
        .check(&ev);

    assert_quiet(&kq);
    expect_errors(
        &kq,
        &[Change::proc_exit(pid, Flags::DELETE).token(0x61)],
        &[libc::ENOENT],
    );
}

#[test]
fn killed_child_reports_the_signal() {
    let kq = kq();
    let mut child = blocked_child("read x");
    let pid = child.id() as libc::pid_t;
    // Not EV_ONESHOT: kqueue makes the exit event one-shot itself.
    apply(&kq, &[Change::proc_exit(pid, Flags::ADD).token(0x62)]);
    assert_quiet(&kq);

    child.kill().expect("SIGKILL the child");
    let ev = wait_one(&kq);
    let status = child
        .wait()
        .expect("reap the child (kevent must not reap it)");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let raw_status = ev.data() as libc::c_int;
    assert!(
        libc::WIFSIGNALED(raw_status),
        "data {:#x} is not a signal status",
        ev.data()
    );
    assert_eq!(
        libc::WTERMSIG(raw_status),
        libc::SIGKILL,
        "data {:#x}",
        ev.data()
    );
    Want::new(pid as usize, Filter::PROC, Flags::ADD, 0x62)
        .eof()
        .fflags(note::EXIT_STATUS)
        .data(i64::from(status.into_raw()))
        .check(&ev);

    // Gone although it was not registered EV_ONESHOT.
    assert_quiet(&kq);
    expect_errors(
        &kq,
        &[Change::proc_exit(pid, Flags::DELETE).token(0x62)],
        &[libc::ENOENT],
    );
}

/// Several watchers of several children: each gets its own child's status.
#[test]
fn each_child_reports_its_own_status() {
    let kq = kq();
    let mut children: Vec<_> = (0..3)
        .map(|i| blocked_child(&format!("read x; exit {}", 20 + i)))
        .collect();
    let flags = Flags::ADD | Flags::ONESHOT;
    let changes: Vec<Change> = children
        .iter()
        .map(|c| Change::proc_exit(c.id() as libc::pid_t, flags).token(u64::from(c.id())))
        .collect();
    apply(&kq, &changes);
    for c in &mut children {
        drop(c.stdin.take());
    }
    let wants: Vec<Want> = children
        .iter()
        .map(|c| {
            Want::new(c.id() as usize, Filter::PROC, flags, u64::from(c.id()))
                .eof()
                .fflags(note::EXIT_STATUS)
                .any_data()
        })
        .collect();
    let events = wait_all(&kq, &wants);
    for (i, (child, ev)) in children.iter_mut().zip(&events).enumerate() {
        let status = child.wait().expect("reap");
        assert_eq!(status.code(), Some(20 + i as i32));
        wants[i].data(i64::from(status.into_raw())).check(ev);
    }
}

#[test]
fn nonexistent_pid_is_esrch() {
    // A child that has been reaped no longer exists (pids are not reused
    // right away), and no pid is as large as i32::MAX (FreeBSD caps at
    // 99999, Linux at 2^22).
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .spawn()
        .expect("spawn");
    let gone = child.id() as libc::pid_t;
    child.wait().expect("reap");

    let kq = kq();
    let flags = Flags::ADD | Flags::ONESHOT;
    expect_errors(
        &kq,
        &[
            Change::proc_exit(gone, flags).token(0x63),
            Change::proc_exit(libc::pid_t::MAX, flags).token(0x64),
        ],
        &[libc::ESRCH, libc::ESRCH],
    );
    assert_quiet(&kq);
}
