//! io_uring's chaining and flow control: IO_LINK, IO_HARDLINK, IO_DRAIN,
//! LinkTimeout, CQE_SKIP_SUCCESS, ASYNC, TimeoutUpdate — exact completion
//! sequences.

mod common;

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{LinkTimeout, Nop, Read, Readv, Timeout, TimeoutUpdate, Write, Writev};
use kqring::{Cqe, SqeFlags};

const LINK: SqeFlags = SqeFlags::IO_LINK;
const ETIME: i32 = kqring::sys::ETIME;

/// `(user_data, res)` of each completion, in order. No operation here is
/// multishot or selects a buffer, so every completion's flags must be 0.
fn seq(cqes: &[Cqe]) -> Vec<(u64, i32)> {
    for c in cqes {
        assert_eq!(c.flags(), 0, "{c:?}");
    }
    cqes.iter().map(|c| (c.user_data(), c.result())).collect()
}

#[test]
fn a_linked_chain_runs_in_order() {
    each_mode(|ring| {
        submit_all(
            ring,
            [
                Nop::new().build().user_data(1).flags(LINK),
                Nop::new().build().user_data(2).flags(LINK),
                Nop::new().build().user_data(3),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 3)), [(1, 0), (2, 0), (3, 0)]);
    });
}

#[test]
fn a_failed_link_cancels_the_rest_of_the_chain() {
    each_mode(|ring| {
        let fd = BAD_FD;
        submit_all(
            ring,
            [
                Read::new(fd, BytesMut::with_capacity(4))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                Nop::new().build().user_data(2).flags(LINK),
                Nop::new().build().user_data(3),
                Nop::new().build().user_data(4),
            ],
        );
        assert_eq!(
            seq(&wait_n(ring, 4)),
            [
                (1, -libc::EBADF),
                (2, -libc::ECANCELED),
                (3, -libc::ECANCELED),
                (4, 0)
            ]
        );
    });
}

#[test]
fn a_hard_link_goes_on_after_a_failure() {
    each_mode(|ring| {
        let fd = BAD_FD;
        submit_all(
            ring,
            [
                Read::new(fd, BytesMut::with_capacity(4))
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::IO_HARDLINK),
                Nop::new().build().user_data(2),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(1, -libc::EBADF), (2, 0)]);
    });
}

#[test]
fn a_chain_of_write_read_timeout() {
    each_mode(|ring| {
        let (a, b) = pair();
        submit_all(
            ring,
            [
                Write::new(a.as_raw_fd(), Bytes::from_static(b"abc"))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(3))
                    .build()
                    .user_data(2)
                    .flags(LINK),
                Timeout::new(Duration::from_millis(10))
                    .build()
                    .user_data(3)
                    .flags(LINK),
                Nop::new().build().user_data(4),
            ],
        );
        let mut cqes = wait_n(ring, 4);
        // The timeout's -ETIME is a failure to io_uring: the Nop after it is
        // cancelled.
        assert_eq!(
            seq(&cqes),
            [(1, 3), (2, 3), (3, -ETIME), (4, -libc::ECANCELED)]
        );
        assert_eq!(
            cqes[1].take_buf::<BytesMut>().ok().as_deref(),
            Some(&b"abc"[..])
        );
    });
}

#[test]
fn a_short_read_breaks_a_link() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        a.write_all(b"xy").unwrap();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                Nop::new().build().user_data(2),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(1, 2), (2, -libc::ECANCELED)]);
    });
}

/// Capacity of a fresh pipe on Linux and the BSDs: a bigger non-blocking
/// write into an empty pipe is short.
const PIPE_CAPACITY: usize = 65536;

#[test]
fn a_short_write_breaks_a_link() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let data = Bytes::from(vec![7u8; PIPE_CAPACITY + 1000]);
        submit_all(
            ring,
            [
                Write::new(w.as_raw_fd(), data.clone())
                    .build()
                    .user_data(1)
                    .flags(LINK),
                Nop::new().build().user_data(2),
            ],
        );
        let mut cqes = wait_n(ring, 2);
        assert_eq!(
            seq(&cqes),
            [(1, PIPE_CAPACITY as i32), (2, -libc::ECANCELED)]
        );
        // The whole buffer comes back, not only the part that was written.
        assert_eq!(cqes[0].take_buf::<Bytes>().ok(), Some(data));
        drop(r);
    });
}

#[test]
fn a_short_write_goes_on_in_a_hard_link() {
    each_mode(|ring| {
        let (_r, w) = nonblocking_pipe();
        submit_all(
            ring,
            [
                Write::new(w.as_raw_fd(), Bytes::from(vec![7u8; PIPE_CAPACITY + 1000]))
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::IO_HARDLINK),
                Nop::new().build().user_data(2),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(1, PIPE_CAPACITY as i32), (2, 0)]);
    });
}

#[test]
fn short_vectored_reads_and_writes_break_a_link() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let halves = vec![Bytes::from(vec![1u8; PIPE_CAPACITY / 2 + 500]); 2];
        submit_all(
            ring,
            [
                Writev::new(w.as_raw_fd(), halves)
                    .build()
                    .user_data(1)
                    .flags(LINK),
                Nop::new().build().user_data(2),
            ],
        );
        assert_eq!(
            seq(&wait_n(ring, 2)),
            [(1, PIPE_CAPACITY as i32), (2, -libc::ECANCELED)]
        );
        // Empty the pipe but for 3 bytes, then ask for 8 in two buffers.
        let mut sink = vec![0u8; PIPE_CAPACITY - 3];
        assert_eq!(
            nix_read(r.as_raw_fd(), &mut sink),
            PIPE_CAPACITY - 3,
            "drain"
        );
        submit_all(
            ring,
            [
                Readv::new(
                    r.as_raw_fd(),
                    vec![BytesMut::with_capacity(4), BytesMut::with_capacity(4)],
                )
                .build()
                .user_data(3)
                .flags(LINK),
                Nop::new().build().user_data(4),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(3, 3), (4, -libc::ECANCELED)]);
    });
}

/// A plain `read(2)` from a test's own descriptor.
fn nix_read(fd: std::os::fd::RawFd, buf: &mut [u8]) -> usize {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).expect("read")
}

#[test]
fn a_link_timeout_cancels_a_slow_operation() {
    each_mode(|ring| {
        let (_a, b) = pair();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                LinkTimeout::new(Duration::from_millis(20))
                    .build()
                    .user_data(2),
            ],
        );
        let mut cqes = wait_n(ring, 2);
        cqes.sort_by_key(Cqe::user_data);
        assert_eq!(seq(&cqes), [(1, -libc::ECANCELED), (2, -ETIME)]);
        assert_eq!(
            cqes[0].take_buf::<BytesMut>().ok().map(|b| b.capacity()),
            Some(8)
        );
    });
}

#[test]
fn a_link_timeout_is_cancelled_when_the_operation_finishes_first() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(2))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                LinkTimeout::new(Duration::from_secs(60))
                    .build()
                    .user_data(2),
            ],
        );
        assert_quiet(ring);
        a.write_all(b"ok").unwrap();
        let mut cqes = wait_n(ring, 2);
        cqes.sort_by_key(Cqe::user_data);
        assert_eq!(seq(&cqes), [(1, 2), (2, -libc::ECANCELED)]);
    });
}

#[test]
fn a_link_timeout_carries_the_chain_on() {
    each_mode(|ring| {
        let (_a, b) = pair();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                    .build()
                    .user_data(1)
                    .flags(LINK),
                LinkTimeout::new(Duration::from_millis(20))
                    .build()
                    .user_data(2)
                    .flags(LINK),
                Nop::new().build().user_data(3),
            ],
        );
        let mut cqes = wait_n(ring, 3);
        cqes.sort_by_key(Cqe::user_data);
        assert_eq!(
            seq(&cqes),
            [(1, -libc::ECANCELED), (2, -ETIME), (3, -libc::ECANCELED)]
        );
    });
}

#[test]
fn a_link_timeout_without_a_link_is_einval() {
    each_mode(|ring| {
        submit_all(
            ring,
            [
                Nop::new().build().user_data(1),
                LinkTimeout::new(Duration::from_secs(1))
                    .build()
                    .user_data(2),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(1, 0), (2, -libc::EINVAL)]);
    });
}

#[test]
fn drain_waits_for_everything_before_it_and_holds_everything_after() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                    .build()
                    .user_data(1),
                Timeout::new(Duration::from_millis(20)).build().user_data(2),
                Nop::new().build().user_data(3).flags(SqeFlags::IO_DRAIN),
                Nop::new().build().user_data(4),
            ],
        );
        let first = wait_n(ring, 1);
        assert_eq!(
            seq(&first),
            [(2, -ETIME)],
            "only the timeout can finish while the read waits"
        );
        assert_quiet(ring);
        a.write_all(b"go").unwrap();
        let rest = wait_n(ring, 3);
        assert_eq!(seq(&rest), [(1, 2), (3, 0), (4, 0)]);
    });
}

#[test]
fn a_drain_in_its_own_batch_holds_the_batches_after_it() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                .build()
                .user_data(1)],
        );
        submit_all(
            ring,
            [Nop::new().build().user_data(2).flags(SqeFlags::IO_DRAIN)],
        );
        submit_all(ring, [Nop::new().build().user_data(3)]);
        assert_quiet(ring);
        a.write_all(b"go").unwrap();
        assert_eq!(seq(&wait_n(ring, 3)), [(1, 2), (2, 0), (3, 0)]);
    });
}

#[test]
fn skip_success_posts_only_failures() {
    each_mode(|ring| {
        let fd = BAD_FD;
        let skip = SqeFlags::CQE_SKIP_SUCCESS;
        submit_all(
            ring,
            [
                Nop::new().build().user_data(1).flags(skip),
                Read::new(fd, BytesMut::with_capacity(4))
                    .build()
                    .user_data(2)
                    .flags(skip),
                Nop::new().build().user_data(3),
            ],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(2, -libc::EBADF), (3, 0)]);
        assert_quiet(ring);
    });
}

#[test]
fn async_runs_a_socket_read_on_the_pool() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        a.write_all(b"pool").unwrap();
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                .build()
                .user_data(1)
                .flags(SqeFlags::ASYNC)],
        );
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 4);
        assert_eq!(c.take_buf::<BytesMut>().ok().as_deref(), Some(&b"pool"[..]));
        assert_eq!(ring.stats().offloaded, 1, "ASYNC ran it on the pool");
        a.write_all(b"poll").unwrap();
        let mut c = run1(
            ring,
            Read::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 4);
        assert_eq!(take_mut(&mut c), &b"poll"[..]);
        assert_eq!(ring.stats().offloaded, 1, "without ASYNC it stays inline");
    });
}

#[test]
fn timeout_update_moves_a_timeout() {
    each_mode(|ring| {
        submit_all(
            ring,
            [Timeout::new(Duration::from_secs(600)).build().user_data(1)],
        );
        submit_all(
            ring,
            [TimeoutUpdate::new(1, Duration::from_millis(10))
                .build()
                .user_data(2)],
        );
        assert_eq!(seq(&wait_n(ring, 2)), [(2, 0), (1, -ETIME)]);
        submit_all(
            ring,
            [TimeoutUpdate::new(1, Duration::from_millis(10))
                .build()
                .user_data(3)],
        );
        assert_eq!(seq(&wait_n(ring, 1)), [(3, -libc::ENOENT)]);
    });
}
