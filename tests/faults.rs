//! Planned faults (feature `fault-injection`): `kevent` calls failing with
//! `EINTR`, `ENOMEM` or `EBADF`, one change failing with `EV_ERROR`, a
//! blocking-pool worker panicking inside an operation, the driver
//! panicking as a turn starts. Each on both
//! driving modes: the ring goes on working or fails the operations the
//! fault hit with its errno, every entry gets exactly one terminal
//! completion, and the ring's drop returns.

// The children are reaped by the WaitIds under test.
#![allow(clippy::zombie_processes)]

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use kqring::ops::{Nop, OpenAt, PollAdd, Read, WaitId};
use kqring::sys::Calls;
use kqring::{Cqe, Mode, Ring, SqeFlags};

const MSG: &[u8] = b"fourteen bytes";

fn ring(mode: Mode) -> Ring {
    Ring::builder()
        .mode(mode)
        .sq_entries(64)
        .workers(1)
        .build()
        .expect("ring")
}

fn each_mode(f: impl Fn(&Ring, Mode)) {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = ring(mode);
        f(&ring, mode);
        let name = std::thread::current().name().unwrap_or("faults").to_owned();
        let injected = ring.faults().injected();
        kqring_test_support::report(&format!("faults: {name} ({mode:?}): {injected} injected"));
        drop_bounded(ring, mode);
    }
}

/// Drops `ring` on a thread of its own; fails if that has not returned
/// within `PATIENCE`.
fn drop_bounded(ring: Ring, mode: Mode) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(ring);
        let _ = tx.send(());
    });
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{mode:?}: the ring's drop did not return"));
}

fn read(fd: &OwnedFd, ud: u64) -> kqring::Sqe {
    Read::new(fd.as_raw_fd(), BytesMut::with_capacity(64))
        .build()
        .user_data(ud)
}

fn write_msg(fd: &OwnedFd) {
    // SAFETY: `MSG` is readable for its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), MSG.as_ptr().cast(), MSG.len()) };
    assert_eq!(n, MSG.len() as isize);
}

/// Waits for completions until every one of `uds` has its terminal one,
/// then for a short while more; fails on a second terminal completion,
/// or on one for an entry not in `uds`. Returns each entry's terminal
/// completion and how many `F_MORE` ones came before it.
fn terminals(ring: &Ring, uds: &[u64]) -> HashMap<u64, (Cqe, usize)> {
    let mut more: HashMap<u64, usize> = HashMap::new();
    let mut done: HashMap<u64, (Cqe, usize)> = HashMap::new();
    let take = |c: Cqe, more: &mut HashMap<u64, usize>, done: &mut HashMap<u64, (Cqe, usize)>| {
        let ud = c.user_data();
        assert!(uds.contains(&ud), "a completion for no entry: {c:?}");
        assert!(
            !done.contains_key(&ud),
            "a second terminal completion: {c:?}"
        );
        if c.is_more() {
            *more.entry(ud).or_default() += 1;
        } else {
            let shots = more.get(&ud).copied().unwrap_or(0);
            done.insert(ud, (c, shots));
        }
    };
    while done.len() < uds.len() {
        let c = ring
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .unwrap_or_else(|| panic!("no terminal completion for some of {uds:?}"));
        take(c, &mut more, &mut done);
    }
    loop {
        match ring.completion().wait_timeout(Duration::from_millis(50)) {
            Ok(Some(c)) => take(c, &mut more, &mut done),
            Ok(None) => break,
            // A ring whose driver stopped: nothing more comes.
            Err(e) if e.raw_os_error() == Some(libc::ESHUTDOWN) => break,
            Err(e) => panic!("wait: {e}"),
        }
    }
    done
}

/// The ring still serves a read that waits: one on an empty pipe, then
/// the data.
fn still_reads(ring: &Ring, ud: u64) {
    let (rx, tx) = nonblocking_pipe();
    start(ring, [read(&rx, ud)]);
    write_msg(&tx);
    let mut c = wait_n(ring, 1).remove(0);
    assert_eq!((c.user_data(), c.result()), (ud, MSG.len() as i32));
    assert_eq!(&take_mut(&mut c)[..], MSG);
}

/// EINTR ×3 on the calls that add a pipe's registration: the changes go
/// again, the read waits and completes with its 14 bytes, nothing else
/// comes; then EINTR ×2 on waits while a read waits: it completes too.
#[test]
fn an_interrupted_call_makes_its_changes_again() {
    each_mode(|ring, mode| {
        let (rx, tx) = nonblocking_pipe();
        let faults = ring.faults();
        faults.fail_calls(Calls::Changing(rx.as_raw_fd() as usize), libc::EINTR, 3);
        start(ring, [read(&rx, 1)]);
        // An inline ring turns only in its caller's waits.
        wait_until("three interrupted calls", || {
            let _ = ring.completion().wait_timeout(Duration::from_millis(1));
            faults.planned() == 0
        });
        assert_eq!(faults.injected(), 3, "{mode:?}");
        write_msg(&tx);
        let t = terminals(ring, &[1]);
        let (c, shots) = &t[&1];
        assert_eq!((c.result(), *shots), (MSG.len() as i32, 0), "{mode:?}");
        // Two waits interrupted, with a read waiting: it still completes.
        faults.fail_calls(Calls::Waiting, libc::EINTR, 2);
        start(ring, [read(&rx, 2)]);
        wait_until("two interrupted waits", || {
            let _ = ring.completion().wait_timeout(Duration::from_millis(1));
            faults.planned() == 0
        });
        assert_eq!(faults.injected(), 5, "{mode:?}");
        write_msg(&tx);
        let t = terminals(ring, &[2]);
        assert_eq!(t[&2].0.result(), MSG.len() as i32, "{mode:?}");
        still_reads(ring, 3);
    });
}

/// ENOMEM, then EBADF, on the calls that carry the registrations of a
/// read on a pipe, a multishot poll and a receive on a socket: each of
/// the three ends with that errno (the poll without `F_MORE`) and its
/// buffer, a Nop beside them completes, and the next read on the same
/// pipe works. (A polling thread may take the entries in one turn or
/// several, so one to three calls fail.)
#[test]
fn a_failed_call_fails_the_operations_of_its_changes() {
    each_mode(|ring, mode| {
        for errno in [libc::ENOMEM, libc::EBADF] {
            let (rx, tx) = nonblocking_pipe();
            let (a, _b) = pair();
            let faults = ring.faults();
            let before = faults.injected();
            for fd in [rx.as_raw_fd(), a.as_raw_fd()] {
                faults.fail_calls(Calls::Changing(fd as usize), errno, 3);
            }
            submit_all(
                ring,
                [
                    read(&rx, 1),
                    PollAdd::new(a.as_raw_fd(), libc::POLLIN as u32)
                        .multishot(true)
                        .build()
                        .user_data(2),
                    recv64(a.as_raw_fd(), 3),
                    Nop::new().build().user_data(4),
                ],
            );
            let mut t = terminals(ring, &[1, 2, 3, 4]);
            let got: Vec<(u64, i32, usize)> = (1..=4)
                .map(|ud| (ud, t[&ud].0.result(), t[&ud].1))
                .collect();
            assert_eq!(
                got,
                [(1, -errno, 0), (2, -errno, 0), (3, -errno, 0), (4, 0, 0)],
                "{mode:?}"
            );
            let injected = faults.injected() - before;
            assert!(
                (1..=3).contains(&injected),
                "{mode:?}: {injected} calls failed"
            );
            assert_eq!(faults.clear(), 6 - injected);
            for ud in [1, 3] {
                let c = &mut t.get_mut(&ud).unwrap().0;
                assert_eq!(take_mut(c).len(), 0, "the buffer comes back");
            }
            start(ring, [read(&rx, 5)]);
            write_msg(&tx);
            let mut t = terminals(ring, &[5]);
            let c = &mut t.get_mut(&5).unwrap().0;
            assert_eq!(c.result(), MSG.len() as i32, "{mode:?}");
            assert_eq!(&take_mut(c)[..], MSG);
        }
    });
}

/// One `EV_ADD` fails alone with `EV_ERROR` (ENOMEM in `data`): its read
/// ends `-ENOMEM`; the read on another pipe, registered in the same call,
/// waits and completes with its 14 bytes.
#[test]
fn a_failed_change_fails_its_operation_alone() {
    each_mode(|ring, mode| {
        let (rx1, tx1) = nonblocking_pipe();
        let (rx2, tx2) = nonblocking_pipe();
        let faults = ring.faults();
        faults.fail_change(rx1.as_raw_fd() as usize, libc::ENOMEM, 1);
        start(ring, [read(&rx1, 1), read(&rx2, 2)]);
        write_msg(&tx2);
        let t = terminals(ring, &[1, 2]);
        assert_eq!(
            (t[&1].0.result(), t[&2].0.result()),
            (-libc::ENOMEM, MSG.len() as i32),
            "{mode:?}"
        );
        assert_eq!(faults.injected(), 1);
        // The failed read's pipe has no registration left behind to
        // confuse the next one there.
        start(ring, [read(&rx1, 3)]);
        write_msg(&tx1);
        let t = terminals(ring, &[3]);
        assert_eq!(t[&3].0.result(), MSG.len() as i32, "{mode:?}");
    });
}

/// A wait that fails with EBADF (the kqueue unusable): the polling
/// thread stops, ending the waiting read `-ECANCELED` and refusing
/// entries from then on; an inline ring's caller gets the error from its
/// wait, and the ring goes on. Either way the drop returns.
#[test]
fn a_failed_wait_ends_the_polling_thread_or_reaches_the_inline_caller() {
    each_mode(|ring, mode| {
        let (rx, tx) = nonblocking_pipe();
        start(ring, [read(&rx, 1)]);
        let faults = ring.faults();
        faults.fail_calls(Calls::Waiting, libc::EBADF, 1);
        match mode {
            Mode::PollingThread => {
                // A parked thread's wait began before the plan: wake it,
                // so that its next one fails (a spinning thread's first
                // does).
                ring.submission().submit().expect("submit");
                let t = terminals(ring, &[1]);
                assert_eq!(t[&1].0.result(), -libc::ECANCELED);
                let e = ring
                    .submission()
                    .push(Nop::new().build().user_data(3))
                    .expect_err("the ring refuses entries");
                assert!(e.is_closed());
            }
            _ => {
                let e = ring
                    .completion()
                    .wait_timeout(PATIENCE)
                    .expect_err("the wait fails");
                assert_eq!(e.raw_os_error(), Some(libc::EBADF));
                write_msg(&tx);
                let t = terminals(ring, &[1]);
                assert_eq!(t[&1].0.result(), MSG.len() as i32);
                still_reads(ring, 2);
            }
        }
        assert_eq!(faults.injected(), 1);
    });
}

/// The driver panics as a turn starts. On the polling thread: the panic
/// is caught, everything in flight ends `-ECANCELED` (the read waiting,
/// the NOP pushed after the plan), later pushes are refused as closed,
/// and a wait for more ends with `ESHUTDOWN` rather than never. Inline,
/// the panic reaches the caller whose call turned, before the turn did
/// anything: the ring goes on, and the read completes.
#[test]
fn a_driver_panic_ends_the_polling_thread_or_reaches_the_inline_caller() {
    each_mode(|ring, mode| {
        let (rx, tx) = nonblocking_pipe();
        start(ring, [read(&rx, 1)]);
        let faults = ring.faults();
        faults.panic_driver(1);
        let sq = ring.submission();
        sq.push(Nop::new().build().user_data(2)).expect("push");
        match mode {
            Mode::PollingThread => {
                // Wakes a parked thread, whose next turn panics.
                sq.submit().expect("submit");
                let t = terminals(ring, &[1, 2]);
                assert_eq!(t[&1].0.result(), -libc::ECANCELED);
                assert_eq!(t[&2].0.result(), -libc::ECANCELED);
                let e = sq
                    .push(Nop::new().build().user_data(3))
                    .expect_err("the ring refuses entries");
                assert!(e.is_closed());
                let e = ring
                    .completion()
                    .wait_timeout(PATIENCE)
                    .expect_err("nothing more can come");
                assert_eq!(e.raw_os_error(), Some(libc::ESHUTDOWN));
            }
            _ => {
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sq.submit()));
                let payload = caught.expect_err("the turn panics in the caller");
                assert!(payload.is::<kqring::sys::PlannedPanic>());
                write_msg(&tx);
                let t = terminals(ring, &[1, 2]);
                assert_eq!(t[&1].0.result(), MSG.len() as i32);
                assert_eq!(t[&2].0.result(), 0);
                still_reads(ring, 3);
            }
        }
        assert_eq!(faults.injected(), 1);
    });
}

/// A regular file for the pool's operations, holding `MSG`.
fn file_with_msg(name: &str) -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("kqring-faults-{}-{name}", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(MSG).expect("write");
    let file = std::fs::File::open(&path).expect("open");
    (path, file)
}

/// Three operations on a pool of one worker panic there: each ends
/// `-EIO` with its buffer, a Nop linked behind the first ends
/// `-ECANCELED`, and the same worker then reads the file's 14 bytes and
/// opens it.
#[test]
fn a_worker_panic_ends_its_operation_and_the_worker_goes_on() {
    each_mode(|ring, mode| {
        let (path, file) = file_with_msg(&format!("{mode:?}"));
        let fd = file.as_raw_fd();
        let file_read = |ud| {
            Read::new(fd, BytesMut::with_capacity(64))
                .offset(0)
                .build()
                .flags(SqeFlags::ASYNC)
                .user_data(ud)
        };
        let faults = ring.faults();
        faults.panic_workers(3);
        submit_all(
            ring,
            [
                file_read(1).flags(SqeFlags::ASYNC | SqeFlags::IO_LINK),
                Nop::new().build().user_data(2),
                // ASYNC: not the driver's cached-lookup try first.
                OpenAt::new(&path, libc::O_RDONLY)
                    .build()
                    .flags(SqeFlags::ASYNC)
                    .user_data(3),
                file_read(4),
            ],
        );
        let mut t = terminals(ring, &[1, 2, 3, 4]);
        let got: Vec<i32> = (1..=4).map(|ud| t[&ud].0.result()).collect();
        assert_eq!(
            got,
            [-libc::EIO, -libc::ECANCELED, -libc::EIO, -libc::EIO],
            "{mode:?}"
        );
        assert_eq!(faults.injected(), 3);
        for ud in [1, 4] {
            let c = &mut t.get_mut(&ud).unwrap().0;
            assert_eq!(take_mut(c).len(), 0, "the buffer comes back");
        }
        submit_all(
            ring,
            [
                file_read(5),
                OpenAt::new(&path, libc::O_RDONLY)
                    .build()
                    .flags(SqeFlags::ASYNC)
                    .user_data(6),
            ],
        );
        let mut t = terminals(ring, &[5, 6]);
        let c5 = &mut t.get_mut(&5).unwrap().0;
        assert_eq!(c5.result(), MSG.len() as i32, "{mode:?}");
        assert_eq!(&take_mut(c5)[..], MSG);
        let opened = t[&6].0.result();
        assert!(opened >= 0, "{mode:?}: open {opened}");
        // SAFETY: the descriptor the open made, owned by nobody else.
        unsafe { libc::close(opened) };
        let _ = std::fs::remove_file(&path);
    });
}

/// An event operation's registration fails alone (EVFILT_PROC's `EV_ADD`,
/// ENOMEM in `data`): the `WaitId` of a child still running ends
/// `-ENOMEM`; the next one waits and reaps the child once it exits.
#[test]
fn a_failed_event_registration_fails_its_operation() {
    each_mode(|ring, mode| {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line; exit 3"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        let faults = ring.faults();
        faults.fail_change(pid as usize, libc::ENOMEM, 1);
        let wait = |ud| {
            WaitId::new(libc::P_PID, pid, libc::WEXITED)
                .build()
                .user_data(ud)
        };
        submit_all(ring, [wait(1)]);
        let t = terminals(ring, &[1]);
        assert_eq!(t[&1].0.result(), -libc::ENOMEM, "{mode:?}");
        assert_eq!(faults.injected(), 1);
        start(ring, [wait(2)]);
        drop(child.stdin.take());
        let t = terminals(ring, &[2]);
        let c = &t[&2].0;
        assert_eq!(c.result(), 0, "{mode:?}");
        let info = c.wait_info().expect("the child's siginfo");
        assert_eq!(
            (info.pid, info.code, info.status),
            (pid as i32, libc::CLD_EXITED, 3),
            "{mode:?}"
        );
    });
}
