//! What a hostile user found: each case with io_uring's answer (Linux
//! 6.18), held on both driving modes. A case that used to hang fails in
//! bounded time here (`PATIENCE`, and `bounded` around a drop).

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
// What the Linux-only cases (its descriptor kinds) use.
#[cfg(target_os = "linux")]
use {
    kqring::Mode,
    kqring::ops::{Read, Write},
    std::os::fd::RawFd,
    std::sync::mpsc,
};

use bytes::BytesMut;
use common::*;
use kqring::ops::{Accept, AsyncCancel, CancelTarget, LinkTimeout, PollAdd, ProvideBuffers, Recv};
use kqring::{Ring, SqeFlags};

/// Runs `f` on a thread of its own and fails if it has not returned within
/// `PATIENCE` (a hang becomes a failure; the thread is left behind).
#[cfg(target_os = "linux")]
fn bounded<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{what}: did not return in {PATIENCE:?}"))
}

#[cfg(target_os = "linux")]
fn eventfd(nonblocking: bool) -> OwnedFd {
    let flags = libc::EFD_CLOEXEC | if nonblocking { libc::EFD_NONBLOCK } else { 0 };
    // SAFETY: no pointers; the new descriptor is owned below.
    let fd = unsafe { libc::eventfd(0, flags) };
    assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just made, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(target_os = "linux")]
fn write_u64(fd: RawFd, v: u64) {
    let bytes = v.to_ne_bytes();
    // SAFETY: 8 readable bytes.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), 8) };
    assert_eq!(n, 8, "write: {}", std::io::Error::last_os_error());
}

/// Case 1: `PollAdd` on descriptor -1, single or multishot: `-EBADF`.
#[test]
fn poll_on_minus_one_is_ebadf() {
    each_mode(|ring| {
        for multishot in [false, true] {
            let c = run1(
                ring,
                PollAdd::new(-1, libc::POLLIN as u32)
                    .multishot(multishot)
                    .build()
                    .user_data(1),
            );
            assert_eq!(
                (c.user_data(), c.result(), c.is_more()),
                (1, -libc::EBADF, false)
            );
        }
    });
}

/// Case 2: reads and writes with the default offset on an eventfd, a
/// timerfd, an inotify descriptor and an epoll descriptor read at the
/// current position (io_uring: 8 bytes, or wait until ready; an epoll
/// descriptor has no read: `-EINVAL`), never `-ESPIPE`. (Linux's kinds.)
#[cfg(target_os = "linux")]
#[test]
fn special_descriptors_read_like_streams() {
    each_mode(|ring| {
        // eventfd: a write of 8 bytes, then a read of them.
        let efd = eventfd(true);
        let c = run1(
            ring,
            Write::new(efd.as_raw_fd(), 5u64.to_ne_bytes().to_vec())
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 8, "{c:?}");
        let mut c = run1(
            ring,
            Read::new(efd.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 8, "{c:?}");
        assert_eq!(&take_mut(&mut c)[..], &5u64.to_ne_bytes());

        // A read that waits for the eventfd, at offset 0 and at the current
        // position.
        for offset in [0, u64::MAX] {
            start(
                ring,
                [Read::new(efd.as_raw_fd(), BytesMut::with_capacity(8))
                    .offset(offset)
                    .build()
                    .user_data(3)],
            );
            write_u64(efd.as_raw_fd(), 7);
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!((c.user_data(), c.result()), (3, 8), "{c:?}");
            assert_eq!(&take_mut(&mut c)[..], &7u64.to_ne_bytes());
        }

        // timerfd: the read waits for the expiry.
        // SAFETY: no pointers.
        let tfd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        assert!(tfd >= 0);
        // SAFETY: just made.
        let tfd = unsafe { OwnedFd::from_raw_fd(tfd) };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: 0,
                tv_nsec: 20_000_000,
            },
        };
        // SAFETY: a valid itimerspec; no old value asked for.
        assert_eq!(
            unsafe { libc::timerfd_settime(tfd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) },
            0
        );
        let mut c = run1(
            ring,
            Read::new(tfd.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), 8, "{c:?}");
        let expiries = u64::from_ne_bytes(take_mut(&mut c)[..].try_into().unwrap());
        assert!(expiries >= 1);

        // inotify: the read waits for an event.
        let dir = kqring_test_support::ScratchPath::new("hostile-inotify").unwrap();
        std::fs::create_dir(dir.path()).unwrap();
        // SAFETY: no pointers.
        let ifd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(ifd >= 0);
        // SAFETY: just made.
        let ifd = unsafe { OwnedFd::from_raw_fd(ifd) };
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        let wd =
            unsafe { libc::inotify_add_watch(ifd.as_raw_fd(), path.as_ptr(), libc::IN_CREATE) };
        assert!(wd >= 0);
        start(
            ring,
            [Read::new(ifd.as_raw_fd(), BytesMut::with_capacity(256))
                .build()
                .user_data(5)],
        );
        std::fs::write(dir.path().join("new"), b"x").unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(c.user_data(), 5);
        assert!(c.result() >= 16, "an inotify event: {c:?}");
        std::fs::remove_dir_all(dir.path()).unwrap();

        // epoll: no read at all. (io_uring fails it at once; kqring waits
        // until the descriptor is readable, docs/semantics.md, so it is
        // made readable first.)
        // SAFETY: no pointers.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0);
        // SAFETY: just made.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        // SAFETY: a valid epoll_event; both descriptors are open.
        let added = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                efd.as_raw_fd(),
                &mut ev,
            )
        };
        assert_eq!(added, 0);
        write_u64(efd.as_raw_fd(), 1);
        let c = run1(
            ring,
            Read::new(ep.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(6),
        );
        assert_eq!(c.result(), -libc::EINVAL, "{c:?}");
    });
}

/// Case 3: a read of a blocking eventfd waits for readiness in the driver,
/// not in a worker: a cancel gets `-ECANCELED`, a regular-file read behind
/// it on a one-worker pool completes, and the drop does not wait for the
/// eventfd. (An eventfd is Linux's.)
#[cfg(target_os = "linux")]
#[test]
fn a_blocking_eventfd_read_never_holds_a_worker() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).workers(1).build().unwrap();
        let efd = eventfd(false);
        start(
            &ring,
            [Read::new(efd.as_raw_fd(), BytesMut::with_capacity(8))
                .offset(u64::MAX)
                .build()
                .user_data(1)],
        );
        // The one worker is free for a file.
        let file = kqring_test_support::temp_file(b"file bytes").unwrap();
        let mut c = run1(
            &ring,
            Read::new(file.as_raw_fd(), BytesMut::with_capacity(16))
                .build()
                .user_data(2),
        );
        assert_eq!((c.user_data(), c.result()), (2, 10), "{c:?}");
        assert_eq!(&take_mut(&mut c)[..], b"file bytes");
        submit_all(&ring, [AsyncCancel::new(1).build().user_data(3)]);
        let got: Vec<_> = wait_sorted(&ring, 2)
            .iter()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        assert_eq!(got, [(1, -libc::ECANCELED), (3, 0)]);
        // Another read left waiting: the drop cancels it without waiting
        // for the eventfd.
        start(
            &ring,
            [Read::new(efd.as_raw_fd(), BytesMut::with_capacity(8))
                .offset(u64::MAX)
                .build()
                .user_data(4)],
        );
        let cq = ring.completion().clone();
        bounded("dropping the ring", move || drop(ring));
        let c = cq.pop().expect("the read's completion");
        assert_eq!((c.user_data(), c.result()), (4, -libc::ECANCELED));
        drop(efd);
    }
}

/// Case 4: `AsyncCancel` with "all" or "any" that matches nothing
/// completes with 0, the number cancelled; one without them `-ENOENT`.
#[test]
fn cancel_all_or_any_of_nothing_is_zero() {
    each_mode(|ring| {
        let cases = [
            (AsyncCancel::new(999).all(true), 0),
            (AsyncCancel::matching(CancelTarget::Any), 0),
            (AsyncCancel::matching(CancelTarget::Any).all(true), 0),
            (AsyncCancel::new(999), -libc::ENOENT),
        ];
        for (cancel, want) in cases {
            let c = run1(ring, cancel.build().user_data(7));
            assert_eq!(c.result(), want, "{cancel:?}");
        }
    });
}

/// Case 5: cancel by a descriptor that is not open: `-EBADF`.
#[test]
fn cancel_by_a_bad_descriptor_is_ebadf() {
    each_mode(|ring| {
        for fd in [-1, BAD_FD] {
            for all in [false, true] {
                let c = run1(
                    ring,
                    AsyncCancel::matching(CancelTarget::Fd(fd))
                        .all(all)
                        .build()
                        .user_data(1),
                );
                assert_eq!(c.result(), -libc::EBADF, "fd {fd}, all {all}");
            }
        }
    });
}

/// Case 6: a read, then two `LinkTimeout`s in a row: the second is
/// `-EINVAL`, which fails the chain: the read and the first timeout
/// complete `-ECANCELED`, in that order.
#[test]
fn two_link_timeouts_in_a_row() {
    each_mode(|ring| {
        let (_a, b) = pair();
        submit_all(
            ring,
            [
                recv64(b.as_raw_fd(), 1).flags(SqeFlags::IO_LINK),
                LinkTimeout::new(PATIENCE)
                    .build()
                    .user_data(2)
                    .flags(SqeFlags::IO_LINK),
                LinkTimeout::new(PATIENCE).build().user_data(3),
            ],
        );
        let got: Vec<_> = wait_n(ring, 3)
            .iter()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        assert_eq!(
            got,
            [
                (1, -libc::ECANCELED),
                (2, -libc::ECANCELED),
                (3, -libc::EINVAL)
            ]
        );
    });
}

/// Case 7: `Accept` on a connected socket that is not listening, in
/// blocking mode: `-EINVAL` at once.
#[test]
fn accept_on_a_connected_blocking_socket_is_einval() {
    each_mode(|ring| {
        let (a, _b) = kqring_test_support::unix_pair(false).unwrap();
        let c = run1(ring, Accept::new(a.as_raw_fd()).build().user_data(1));
        assert_eq!(c.result(), -libc::EINVAL, "{c:?}");
    });
}

/// Case 11: two receives on one socket over a group of one buffer, one
/// message: one receive gets the buffer, the other `-ENOBUFS`, in the same
/// wake-up (not when more data comes).
#[test]
fn a_group_running_dry_fails_the_next_receive_at_once() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        let fd = b.as_raw_fd();
        let c = run1(
            ring,
            ProvideBuffers::new(7, vec![BytesMut::with_capacity(16)], 0)
                .build()
                .user_data(9),
        );
        assert_eq!(c.result(), 0);
        start(
            ring,
            [
                Recv::select(fd, 7).build().user_data(1),
                Recv::select(fd, 7).build().user_data(2),
            ],
        );
        std::io::Write::write_all(&mut a, b"hello").unwrap();
        let got = wait_sorted(ring, 2);
        assert_eq!(
            (got[0].user_data(), got[0].result(), got[0].buffer_id()),
            (1, 5, Some(0))
        );
        assert_eq!((got[1].user_data(), got[1].result()), (2, -libc::ENOBUFS));
        drop::<UnixStream>(b);
    });
}

/// Also seen: a builder given 0 submission entries, completion entries or
/// workers is `EINVAL`, as io_uring rejects 0 entries.
#[test]
fn zero_sizes_are_einval() {
    let builders = [
        Ring::builder().sq_entries(0),
        Ring::builder().cq_entries(0),
        Ring::builder().workers(0),
    ];
    for b in builders {
        let err = b.clone().build().expect_err("0 is refused");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{b:?}");
    }
    assert!(Ring::builder().sq_entries(1).workers(1).build().is_ok());
}

/// Case 8: a descriptor closed behind the ring's back while a read waits
/// on it, its number then naming a new socket. kqueue forgot the old
/// registration at the close and the ring can't see it (docs/semantics.md,
/// "Close"): what a user does is cancel by the descriptor, which ends the
/// stranded read, and the new socket's operations then work.
#[test]
fn a_reused_number_serves_its_new_socket_after_a_cancel() {
    each_mode(|ring| {
        let (_old_peer, old) = pair();
        let number = old.as_raw_fd();
        start(ring, [recv64(number, 1)]);
        // The number names a new socket from now on (dup2 closes the old
        // one atomically, so no other thread can take the number).
        let (mut new_peer, new) = pair();
        // SAFETY: both descriptors are open; `number` is `old`'s, which is
        // forgotten below rather than closed again.
        assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), number) }, number);
        std::mem::forget(old);
        // SAFETY: `number` now holds a duplicate of `new`, owned here.
        let reused = unsafe { OwnedFd::from_raw_fd(number) };
        let c = run1(
            ring,
            AsyncCancel::matching(CancelTarget::Fd(number))
                .all(true)
                .build()
                .user_data(3),
        );
        assert_eq!((c.user_data(), c.result()), (1, -libc::ECANCELED), "{c:?}");
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (3, 1), "{c:?}");
        submit_all(ring, [recv64(number, 2)]);
        std::io::Write::write_all(&mut new_peer, b"fourteen bytes").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (2, 14), "{c:?}");
        assert_eq!(&take_mut(&mut c)[..], b"fourteen bytes");
        drop((reused, new));
    });
}
