//! PollAdd/PollRemove, Timeout/TimeoutRemove.

mod common;

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::*;
use kqring::SqeFlags;
use kqring::cqe_flags;
use kqring::ops::{
    AsyncCancel, LinkTimeout, Nop, PollAdd, PollRemove, Timeout, TimeoutRemove, monotonic_now,
};

const POLLIN: u32 = libc::POLLIN as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;

#[test]
fn poll_for_writable_completes_at_once() {
    each_mode(|ring| {
        let (a, _b) = pair();
        submit_all(
            ring,
            [PollAdd::new(a.as_raw_fd(), POLLOUT).build().user_data(1)],
        );
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(
            (c.user_data(), c.result() as u32, c.flags()),
            (1, POLLOUT, 0)
        );
    });
}

#[test]
fn poll_for_readable_waits_for_data() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [PollAdd::new(b.as_raw_fd(), POLLIN).build().user_data(2)],
        );
        assert_quiet(ring);
        a.write_all(b"x").unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(
            (c.user_data(), c.result() as u32, c.flags()),
            (2, POLLIN, 0)
        );
    });
}

#[test]
fn poll_reports_hang_up() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        submit_all(
            ring,
            [PollAdd::new(r.as_raw_fd(), POLLIN).build().user_data(3)],
        );
        assert_quiet(ring);
        drop(w);
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(
            c.result() as u32 & libc::POLLHUP as u32,
            libc::POLLHUP as u32,
            "res {:#x}",
            c.result()
        );
    });
}

#[test]
fn poll_on_a_bad_fd_is_ebadf() {
    each_mode(|ring| {
        let fd = BAD_FD;
        submit_all(ring, [PollAdd::new(fd, POLLIN).build().user_data(4)]);
        assert_eq!(wait_n(ring, 1)[0].result(), -libc::EBADF);
    });
}

#[test]
fn multishot_poll_posts_more_then_a_last_completion() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [PollAdd::new(b.as_raw_fd(), POLLIN)
                .multishot(true)
                .build()
                .user_data(5)],
        );
        assert_quiet(ring);
        for round in 0..3 {
            a.write_all(b"tick").unwrap();
            let c = wait_n(ring, 1).remove(0);
            assert_eq!(
                (c.user_data(), c.result() as u32),
                (5, POLLIN),
                "round {round}"
            );
            assert!(c.is_more(), "round {round}: F_MORE expected");
            assert_eq!(c.flags(), cqe_flags::MORE);
        }
        submit_all(ring, [PollRemove::new(5).build().user_data(6)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result(), cqes[0].is_more()),
            (5, -libc::ECANCELED, false)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (6, 0));
    });
}

#[test]
fn poll_remove_of_nothing_is_enoent() {
    each_mode(|ring| {
        submit_all(ring, [PollRemove::new(999).build().user_data(1)]);
        assert_eq!(wait_n(ring, 1)[0].result(), -libc::ENOENT);
    });
}

#[test]
fn cancel_a_poll() {
    each_mode(|ring| {
        let (_a, b) = pair();
        submit_all(
            ring,
            [PollAdd::new(b.as_raw_fd(), POLLIN).build().user_data(7)],
        );
        assert_quiet(ring);
        submit_all(ring, [AsyncCancel::new(7).build().user_data(8)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (7, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (8, 0));
    });
}

#[test]
fn timeout_expires_with_etime() {
    each_mode(|ring| {
        let start = Instant::now();
        submit_all(
            ring,
            [Timeout::new(Duration::from_millis(30)).build().user_data(1)],
        );
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, -kqring::sys::ETIME));
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "fired early: {:?}",
            start.elapsed()
        );
    });
}

#[test]
fn absolute_timeout_expires_at_its_time() {
    each_mode(|ring| {
        let at = monotonic_now() + Duration::from_millis(30);
        submit_all(ring, [Timeout::new(at).absolute(true).build().user_data(1)]);
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), -kqring::sys::ETIME);
        assert!(monotonic_now() >= at);
    });
}

#[test]
fn timeout_with_a_count_completes_after_that_many_completions() {
    each_mode(|ring| {
        submit_all(
            ring,
            [Timeout::new(Duration::from_secs(60))
                .count(2)
                .build()
                .user_data(1)],
        );
        submit_all(
            ring,
            [
                Nop::new().build().user_data(2),
                Nop::new().build().user_data(3),
            ],
        );
        let cqes = wait_n(ring, 3);
        let got: Vec<(u64, i32)> = cqes.iter().map(|c| (c.user_data(), c.result())).collect();
        assert_eq!(got, [(2, 0), (3, 0), (1, 0)]);
    });
}

#[test]
fn timeout_remove_cancels_the_timeout() {
    each_mode(|ring| {
        submit_all(
            ring,
            [Timeout::new(Duration::from_secs(60)).build().user_data(1)],
        );
        submit_all(ring, [TimeoutRemove::new(1).build().user_data(2)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (2, 0));
        submit_all(ring, [TimeoutRemove::new(1).build().user_data(3)]);
        assert_eq!(wait_n(ring, 1)[0].result(), -libc::ENOENT);
    });
}

#[test]
fn cancel_a_timeout() {
    each_mode(|ring| {
        submit_all(
            ring,
            [Timeout::new(Duration::from_secs(60)).build().user_data(1)],
        );
        submit_all(ring, [AsyncCancel::new(1).build().user_data(2)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!((cqes[0].result(), cqes[1].result()), (-libc::ECANCELED, 0));
    });
}

#[test]
fn a_link_timeout_cancels_a_waiting_poll() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [
                PollAdd::new(b.as_raw_fd(), POLLIN)
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::IO_LINK),
                LinkTimeout::new(Duration::from_millis(20))
                    .build()
                    .user_data(2),
            ],
        );
        let cqes = wait_sorted(ring, 2);
        let got: Vec<(u64, i32, u32)> = cqes
            .iter()
            .map(|c| (c.user_data(), c.result(), c.flags()))
            .collect();
        assert_eq!(got, [(1, -libc::ECANCELED, 0), (2, -kqring::sys::ETIME, 0)]);
        // The poll is gone: data now wakes nothing.
        a.write_all(b"x").unwrap();
        assert_quiet(ring);
        submit_all(ring, [PollRemove::new(1).build().user_data(3)]);
        assert_eq!(wait_n(ring, 1)[0].result(), -libc::ENOENT);
    });
}
