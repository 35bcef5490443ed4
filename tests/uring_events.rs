//! WaitId and MsgRing side by side with Linux's io_uring: each case runs
//! on both, and their completions (and a WaitId's siginfo) must be the
//! same — and be what is written here, which also holds kqring where
//! io_uring is unavailable.
//!
//! The conformance scenarios `waitid-*` and `msg-ring-*` compare the same
//! opcodes; this file keeps the cases those do not model (a message's
//! flags, a ring messaging itself, the order of two waits of one child),
//! with the `io-uring` crate (its `WaitId`, `MsgRingData`, `MsgRingSendFd`
//! entries).

#![cfg(target_os = "linux")]
// The children are reaped by the WaitIds under test, not by `Child::wait`.
#![allow(clippy::zombie_processes)]

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};

use common::PATIENCE;
use io_uring::{IoUring, opcode, squeue, types};
use kqring::ops::{AsyncCancel, FileSlot, FilesUpdate, Fixed, MsgRing, WaitId};
use kqring::{Cqe, Ring};

/// A completion as compared: user_data, res, flags, and a WaitId's
/// siginfo (signo, code, status; whether the pid is the child's).
type Record = (u64, i32, u32, Option<(i32, i32, i32, bool)>);

/// An io_uring, or why there is none (the case then checks kqring alone).
fn uring() -> Option<IoUring> {
    match IoUring::new(16) {
        Ok(r) => Some(r),
        Err(e) => {
            println!("io_uring unavailable ({e}): kqring is held to the written results only");
            None
        }
    }
}

fn child_exiting(code: i32) -> Child {
    Command::new("sh")
        .args(["-c", &format!("read line; exit {code}")])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

fn exited(mut child: Child) -> Child {
    drop(child.stdin.take());
    // SAFETY: a zeroed siginfo_t for waitid to fill; WNOWAIT leaves the
    // child a zombie.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            child.id(),
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(r, 0);
    child
}

/// Completions of the io_uring `ring` until `n`, sorted by user_data.
fn reap_uring(ring: &mut IoUring, n: usize) -> Vec<(u64, i32, u32)> {
    let mut out = Vec::new();
    while out.len() < n {
        ring.submit_and_wait(1).expect("submit_and_wait");
        for c in ring.completion() {
            out.push((c.user_data(), c.result(), c.flags()));
        }
    }
    out.sort_by_key(|c| c.0);
    out
}

fn push(ring: &mut IoUring, e: squeue::Entry) {
    // SAFETY: every entry's memory (a siginfo) outlives its completion:
    // the callers reap before they return.
    unsafe { ring.submission().push(&e).expect("queue full") };
}

fn kq_records(cqes: Vec<Cqe>, pid: Option<u32>) -> Vec<Record> {
    let mut out: Vec<Record> = cqes
        .iter()
        .map(|c| {
            let info = c
                .wait_info()
                .map(|i| (i.signo, i.code, i.status, Some(i.pid as u32) == pid));
            (c.user_data(), c.result(), c.flags(), info)
        })
        .collect();
    out.sort_by_key(|c| c.0);
    out
}

fn siginfo(info: &libc::siginfo_t, pid: Option<u32>) -> (i32, i32, i32, bool) {
    // SAFETY: filled by the kernel for a child's state change (or zeroed).
    let (p, status) = unsafe { (info.si_pid(), info.si_status()) };
    (info.si_signo, info.si_code, status, Some(p as u32) == pid)
}

/// One WaitId on each backend, for a child `make` gives (or none).
fn waitid_case(
    name: &str,
    make: impl Fn() -> Option<Child>,
    idtype: libc::idtype_t,
    id: impl Fn(Option<u32>) -> libc::id_t,
    options: libc::c_int,
    after: impl Fn(&mut Option<Child>),
    want: Record,
) {
    // kqring.
    let ring = Ring::new(4).expect("ring");
    let mut child = make();
    let pid = child.as_ref().map(Child::id);
    common::submit_all(
        &ring,
        [WaitId::new(idtype, id(pid), options).build().user_data(1)],
    );
    after(&mut child);
    let got = kq_records(common::wait_n(&ring, 1), pid);
    // A successful WaitId's siginfo is compared; a failed one has none on
    // kqring, and io_uring's is zero then.
    assert_eq!(got, [want], "{name}: kqring");
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    // io_uring.
    let Some(mut uring) = uring() else { return };
    let mut child = make();
    let pid = child.as_ref().map(Child::id);
    // SAFETY: zero is a valid siginfo_t.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let e = opcode::WaitId::new(idtype, id(pid), options)
        // The kernel writes through it: a pointer made from a mutable borrow.
        .infop((&raw mut info).cast_const())
        .build()
        .user_data(1);
    push(&mut uring, e);
    uring.submit().expect("submit");
    after(&mut child);
    let (ud, res, flags) = reap_uring(&mut uring, 1)[0];
    let info = (res == 0).then(|| siginfo(&info, pid));
    assert_eq!((ud, res, flags, info), want, "{name}: io_uring");
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn waitid_is_io_urings() {
    let none = |_: &mut Option<Child>| {};
    let exit = |c: &mut Option<Child>| drop(c.as_mut().and_then(|c| c.stdin.take()));
    let kill = |c: &mut Option<Child>| {
        let _ = c.as_mut().map(Child::kill);
    };
    let own = |pid: Option<u32>| pid.unwrap_or(0) as libc::id_t;
    let ok = |code, status| (1, 0, 0, Some((libc::SIGCHLD, code, status, true)));
    waitid_case(
        "exited before",
        || Some(exited(child_exiting(3))),
        libc::P_PID,
        own,
        libc::WEXITED,
        none,
        ok(libc::CLD_EXITED, 3),
    );
    waitid_case(
        "exits after",
        || Some(child_exiting(9)),
        libc::P_PID,
        own,
        libc::WEXITED,
        exit,
        ok(libc::CLD_EXITED, 9),
    );
    waitid_case(
        "killed",
        || Some(child_exiting(0)),
        libc::P_PID,
        own,
        libc::WEXITED,
        kill,
        ok(libc::CLD_KILLED, libc::SIGKILL),
    );
    waitid_case(
        "not a child",
        || None,
        libc::P_PID,
        |_| 1,
        libc::WEXITED,
        none,
        (1, -libc::ECHILD, 0, None),
    );
    waitid_case(
        "no options",
        || Some(child_exiting(0)),
        libc::P_PID,
        own,
        0,
        none,
        (1, -libc::EINVAL, 0, None),
    );
    waitid_case(
        "nohang",
        || Some(child_exiting(0)),
        libc::P_PID,
        own,
        libc::WEXITED | libc::WNOHANG,
        none,
        (1, 0, 0, Some((0, 0, 0, false))),
    );
}

#[test]
fn waitid_cancel_and_two_waits_are_io_urings() {
    // kqring.
    let ring = Ring::new(8).expect("ring");
    let mut a = child_exiting(2);
    let b = child_exiting(0);
    common::start(
        &ring,
        [
            WaitId::new(libc::P_PID, a.id(), libc::WEXITED)
                .build()
                .user_data(1),
            WaitId::new(libc::P_PID, a.id(), libc::WEXITED)
                .build()
                .user_data(2),
            WaitId::new(libc::P_PID, b.id(), libc::WEXITED)
                .build()
                .user_data(3),
        ],
    );
    common::submit_all(&ring, [AsyncCancel::new(3).build().user_data(4)]);
    drop(a.stdin.take());
    let got: Vec<(u64, i32)> = kq_records(common::wait_n(&ring, 4), Some(a.id()))
        .into_iter()
        .map(|c| (c.0, c.1))
        .collect();
    // io_uring's cancel of a waitid answers 1, not 0.
    let want = [(1, 0), (2, -libc::ECHILD), (3, -libc::ECANCELED), (4, 1)];
    // Which of the two waits reaps is not ordered: compare as a set.
    let mut got_sorted = got.clone();
    got_sorted[..2].sort_by_key(|c| std::cmp::Reverse(c.1));
    got_sorted[..2]
        .iter_mut()
        .zip([1, 2])
        .for_each(|(c, u)| c.0 = u);
    assert_eq!(got_sorted, want, "kqring: {got:?}");
    for mut c in [a, b] {
        let _ = c.kill();
        let _ = c.wait();
    }
    // io_uring.
    let Some(mut uring) = uring() else { return };
    let mut a = child_exiting(2);
    let b = child_exiting(0);
    for (ud, pid) in [(1, a.id()), (2, a.id()), (3, b.id())] {
        push(
            &mut uring,
            opcode::WaitId::new(libc::P_PID, pid, libc::WEXITED)
                .build()
                .user_data(ud),
        );
    }
    uring.submit().expect("submit");
    push(&mut uring, opcode::AsyncCancel::new(3).build().user_data(4));
    uring.submit().expect("submit");
    drop(a.stdin.take());
    let mut got: Vec<(u64, i32)> = reap_uring(&mut uring, 4)
        .into_iter()
        .map(|c| (c.0, c.1))
        .collect();
    got[..2].sort_by_key(|c| std::cmp::Reverse(c.1));
    got[..2].iter_mut().zip([1, 2]).for_each(|(c, u)| c.0 = u);
    assert_eq!(got, want, "io_uring");
    for mut c in [a, b] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Completions of a kqring ring, as (user_data, res, flags).
fn kq_all(ring: &Ring, n: usize) -> Vec<(u64, i32, u32)> {
    let mut out: Vec<_> = (0..n)
        .map(|_| {
            let c = ring
                .completion()
                .wait_timeout(PATIENCE)
                .expect("wait")
                .expect("a completion");
            (c.user_data(), c.result(), c.flags())
        })
        .collect();
    out.sort_by_key(|c| c.0);
    out
}

#[test]
fn msg_ring_data_is_io_urings() {
    // (source's completions, target's): IORING_MSG_RING_CQE_SKIP is
    // for files only, -EINVAL with data.
    let want_source = vec![(1, 0, 0), (2, -libc::EINVAL, 0)];
    let want_target = vec![(77, -libc::EPIPE, 0x50)];
    let (a, b) = (Ring::new(8).expect("ring"), Ring::new(8).expect("ring"));
    common::submit_all(
        &a,
        [
            MsgRing::data(&b, -libc::EPIPE, 77)
                .flags(0x50)
                .build()
                .user_data(1),
            MsgRing::data(&b, 5, 78)
                .skip_target_cqe(true)
                .build()
                .user_data(2),
        ],
    );
    assert_eq!(kq_all(&a, 2), want_source, "kqring source");
    assert_eq!(kq_all(&b, 1), want_target, "kqring target");
    common::assert_quiet(&b);
    // To itself: the target's completion first.
    common::submit_all(&a, [MsgRing::data(&a, 3, 100).build().user_data(9)]);
    let order: Vec<u64> = common::wait_n(&a, 2).iter().map(Cqe::user_data).collect();
    assert_eq!(order, [100, 9], "kqring to itself");

    let (Some(mut ua), Some(mut ub)) = (uring(), uring()) else {
        return;
    };
    let fd = types::Fd(ub.as_raw_fd());
    push(
        &mut ua,
        opcode::MsgRingData::new(fd, -libc::EPIPE, 77, Some(0x50))
            .build()
            .user_data(1),
    );
    push(
        &mut ua,
        opcode::MsgRingData::new(fd, 5, 78, None)
            .opcode_flags(io_uring_cqe_skip())
            .build()
            .user_data(2),
    );
    ua.submit().expect("submit");
    assert_eq!(reap_uring(&mut ua, 2), want_source, "io_uring source");
    assert_eq!(reap_uring(&mut ub, 1), want_target, "io_uring target");
    assert_eq!(ub.completion().len(), 0);
    let own = types::Fd(ua.as_raw_fd());
    push(
        &mut ua,
        opcode::MsgRingData::new(own, 3, 100, None)
            .build()
            .user_data(9),
    );
    ua.submit_and_wait(2).expect("submit");
    let order: Vec<u64> = ua.completion().map(|c| c.user_data()).collect();
    assert_eq!(order, [100, 9], "io_uring to itself");
}

/// `IORING_MSG_RING_CQE_SKIP`.
fn io_uring_cqe_skip() -> u32 {
    1
}

#[test]
fn msg_ring_send_fd_is_io_urings() {
    let (x, _y) = common::pair();
    // Sent to slot 2, then allocated (3, past the last taken), then the
    // errors: an empty source slot, the target is this ring, a slot past
    // the target's table; a target without a table.
    let want_source = vec![
        (1, 0, 0),
        (2, 3, 0),
        (3, -libc::EBADF, 0),
        (4, -libc::EINVAL, 0),
        (5, -libc::EINVAL, 0),
        (6, -libc::ENFILE, 0),
        (7, -libc::ENXIO, 0),
    ];
    let want_target = vec![(40, 0, 0), (41, 3, 0)];

    let a = Ring::builder().files(2).build().expect("ring");
    let b = Ring::builder().files(4).build().expect("ring");
    let bare = Ring::new(4).expect("ring");
    let c = common::run1(
        &a,
        FilesUpdate::new(FileSlot::Index(0), vec![x.as_raw_fd()]).build(),
    );
    assert_eq!(c.result(), 1);
    let sends = [
        MsgRing::send_fd(&b, Fixed(0), FileSlot::Index(2), 40)
            .build()
            .user_data(1),
        MsgRing::send_fd(&b, Fixed(0), FileSlot::Alloc, 41)
            .build()
            .user_data(2),
        MsgRing::send_fd(&b, Fixed(1), FileSlot::Alloc, 42)
            .build()
            .user_data(3),
        MsgRing::send_fd(&a, Fixed(0), FileSlot::Alloc, 43)
            .build()
            .user_data(4),
        MsgRing::send_fd(&b, Fixed(0), FileSlot::Index(4), 44)
            .build()
            .user_data(5),
        MsgRing::send_fd(&bare, Fixed(0), FileSlot::Alloc, 45)
            .build()
            .user_data(6),
        MsgRing::send_fd(&bare, Fixed(0), FileSlot::Index(0), 46)
            .build()
            .user_data(7),
    ];
    // One at a time: allocation order depends on it.
    let mut got = Vec::new();
    for s in sends {
        common::submit_all(&a, [s]);
        got.extend(kq_all(&a, 1));
    }
    assert_eq!(got, want_source, "kqring source");
    assert_eq!(kq_all(&b, 2), want_target, "kqring target");
    common::assert_quiet(&bare);

    let (Some(mut ua), Some(mut ub), Some(mut bare)) = (uring(), uring(), uring()) else {
        return;
    };
    ua.submitter().register_files_sparse(2).expect("sparse");
    ua.submitter()
        .register_files_update(0, &[x.as_raw_fd()])
        .expect("update");
    ub.submitter().register_files_sparse(4).expect("sparse");
    let (own, tb, tbare) = (
        types::Fd(ua.as_raw_fd()),
        types::Fd(ub.as_raw_fd()),
        types::Fd(bare.as_raw_fd()),
    );
    let slot = |i| types::DestinationSlot::try_from_slot_target(i).expect("slot");
    let auto = types::DestinationSlot::auto_target;
    let entries = [
        opcode::MsgRingSendFd::new(tb, types::Fixed(0), slot(2), 40)
            .build()
            .user_data(1),
        opcode::MsgRingSendFd::new(tb, types::Fixed(0), auto(), 41)
            .build()
            .user_data(2),
        opcode::MsgRingSendFd::new(tb, types::Fixed(1), auto(), 42)
            .build()
            .user_data(3),
        opcode::MsgRingSendFd::new(own, types::Fixed(0), auto(), 43)
            .build()
            .user_data(4),
        opcode::MsgRingSendFd::new(tb, types::Fixed(0), slot(4), 44)
            .build()
            .user_data(5),
        opcode::MsgRingSendFd::new(tbare, types::Fixed(0), auto(), 45)
            .build()
            .user_data(6),
        opcode::MsgRingSendFd::new(tbare, types::Fixed(0), slot(0), 46)
            .build()
            .user_data(7),
    ];
    let mut got = Vec::new();
    for e in entries {
        push(&mut ua, e);
        got.extend(reap_uring(&mut ua, 1));
    }
    assert_eq!(got, want_source, "io_uring source");
    assert_eq!(reap_uring(&mut ub, 2), want_target, "io_uring target");
    assert_eq!(bare.completion().len(), 0);
}
