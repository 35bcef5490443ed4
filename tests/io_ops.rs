//! Read, Write, Readv, Writev, Nop and Close: success, errors, cancel, and
//! the buffer coming back every time.

mod common;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{
    AsyncCancel, CancelTarget, Close, LinkTimeout, Nop, Read, Readv, Recv, Send, Write, Writev,
};
use kqring::{Cqe, Ring, Sqe, SqeFlags};

#[test]
fn nop_completes_with_zero_and_its_user_data() {
    each_mode(|ring| {
        submit_all(
            ring,
            [
                Nop::new().build().user_data(7),
                Nop::new().build().user_data(8),
            ],
        );
        let cqes = wait_n(ring, 2);
        assert_eq!(
            cqes.iter()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect::<Vec<_>>(),
            [(7, 0, 0), (8, 0, 0)]
        );
        assert!(!cqes[0].has_buf());
    });
}

#[test]
fn write_then_read_on_a_socket_pair() {
    each_mode(|ring| {
        let (a, b) = pair();
        let payload = Bytes::from_static(b"hello, kqring");
        submit_all(
            ring,
            [Write::new(a.as_raw_fd(), payload.clone())
                .build()
                .user_data(1)],
        );
        let mut w = wait_n(ring, 1).remove(0);
        assert_eq!((w.user_data(), w.result()), (1, 13));
        assert_eq!(w.take_buf::<Bytes>().ok(), Some(payload));

        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(64))
                .build()
                .user_data(2)],
        );
        let mut r = wait_n(ring, 1).remove(0);
        assert_eq!((r.user_data(), r.result()), (2, 13));
        let buf = take_mut(&mut r);
        assert_eq!(&buf[..], b"hello, kqring");
        assert_eq!(buf.capacity(), 64);
    });
}

#[test]
fn read_appends_after_existing_bytes() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        a.write_all(b"world").unwrap();
        let mut buf = BytesMut::with_capacity(32);
        buf.extend_from_slice(b"hello ");
        submit_all(ring, [Read::new(b.as_raw_fd(), buf).build().user_data(1)]);
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 5);
        assert_eq!(&take_mut(&mut c)[..], b"hello world");
    });
}

#[test]
fn read_waits_for_data() {
    each_mode(|ring| {
        let (mut a, b) = pair();
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(3)],
        );
        assert_quiet(ring);
        a.write_all(b"late").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (3, 4));
        assert_eq!(&take_mut(&mut c)[..], b"late");
    });
}

#[test]
fn bad_fd_is_ebadf_with_the_buffer_back() {
    each_mode(|ring| {
        let fd = BAD_FD;
        submit_all(
            ring,
            [
                Read::new(fd, BytesMut::with_capacity(16))
                    .build()
                    .user_data(1),
                Write::new(fd, Bytes::from_static(b"x"))
                    .build()
                    .user_data(2),
                Readv::new(fd, vec![BytesMut::with_capacity(4)])
                    .build()
                    .user_data(3),
                Writev::new(fd, vec![Bytes::from_static(b"y")])
                    .build()
                    .user_data(4),
                Close::new(fd).build().user_data(5),
            ],
        );
        let mut cqes = wait_sorted(ring, 5);
        for c in &cqes {
            assert_eq!(c.result(), -libc::EBADF, "user_data {}", c.user_data());
        }
        assert_eq!(take_mut(&mut cqes[0]).capacity(), 16);
        assert_eq!(cqes[1].take_buf::<Bytes>().ok().as_deref(), Some(&b"x"[..]));
        assert_eq!(
            cqes[2].take_buf::<Vec<BytesMut>>().ok().map(|v| v.len()),
            Some(1)
        );
        assert_eq!(
            cqes[3].take_buf::<Vec<Bytes>>().ok().map(|v| v.len()),
            Some(1)
        );
        assert!(!cqes[4].has_buf());
    });
}

#[test]
fn read_of_a_closed_peer_is_eof() {
    each_mode(|ring| {
        let (a, b) = pair();
        drop(a);
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 0);
    });
}

#[test]
fn pending_read_sees_eof_when_the_peer_closes() {
    each_mode(|ring| {
        let (a, b) = pair();
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        assert_quiet(ring);
        drop(a);
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 0));
    });
}

#[test]
fn write_to_a_closed_peer_is_epipe_without_sigpipe() {
    // In a child where SIGPIPE would kill the process: it must live.
    const NAME: &str = "write_to_a_closed_peer_is_epipe_without_sigpipe";
    with_default_sigpipe(NAME, || {
        each_mode(|ring| {
            let (a, b) = pair();
            drop(b);
            submit_all(
                ring,
                [Write::new(a.as_raw_fd(), Bytes::from_static(b"nobody"))
                    .build()
                    .user_data(1)],
            );
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!((c.user_data(), c.result()), (1, -libc::EPIPE));
            assert_eq!(c.take_buf::<Bytes>().ok().as_deref(), Some(&b"nobody"[..]));
        });
    });
}

#[test]
fn writev_to_a_closed_peer_is_epipe_without_sigpipe() {
    const NAME: &str = "writev_to_a_closed_peer_is_epipe_without_sigpipe";
    with_default_sigpipe(NAME, || {
        each_mode(|ring| {
            let (a, b) = pair();
            drop(b);
            let parts = vec![Bytes::from_static(b"no"), Bytes::from_static(b"body")];
            let mut c = run1(
                ring,
                Writev::new(a.as_raw_fd(), parts.clone())
                    .build()
                    .user_data(1),
            );
            assert_eq!((c.user_data(), c.result()), (1, -libc::EPIPE));
            assert_eq!(c.take_buf::<Vec<Bytes>>().ok(), Some(parts));
        });
    });
}

#[test]
fn cancel_a_pending_read_returns_its_buffer() {
    each_mode(|ring| {
        let (_a, b) = pair();
        submit_all(
            ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(100))
                .build()
                .user_data(10)],
        );
        assert_quiet(ring);
        submit_all(ring, [AsyncCancel::new(10).build().user_data(11)]);
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (10, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (11, 0));
        let buf = take_mut(&mut cqes[0]);
        assert_eq!((buf.len(), buf.capacity()), (0, 100));
    });
}

#[test]
fn cancel_of_nothing_is_enoent() {
    each_mode(|ring| {
        submit_all(ring, [AsyncCancel::new(12345).build().user_data(1)]);
        assert_eq!(wait_n(ring, 1)[0].result(), -libc::ENOENT);
    });
}

#[test]
fn cancel_all_by_fd_counts_what_it_cancelled() {
    each_mode(|ring| {
        let (_a, b) = pair();
        let (_c, d) = pair();
        let fd = b.as_raw_fd();
        submit_all(
            ring,
            (1..=3)
                .map(|i| {
                    Read::new(fd, BytesMut::with_capacity(4))
                        .build()
                        .user_data(i)
                })
                .chain([Read::new(d.as_raw_fd(), BytesMut::with_capacity(4))
                    .build()
                    .user_data(9)]),
        );
        assert_quiet(ring);
        submit_all(
            ring,
            [AsyncCancel::matching(CancelTarget::Fd(fd))
                .all(true)
                .build()
                .user_data(100)],
        );
        let cqes = wait_sorted(ring, 4);
        let got: Vec<(u64, i32)> = cqes.iter().map(|c| (c.user_data(), c.result())).collect();
        assert_eq!(
            got,
            [
                (1, -libc::ECANCELED),
                (2, -libc::ECANCELED),
                (3, -libc::ECANCELED),
                (100, 3)
            ]
        );
        // The read on the other socket is untouched.
        submit_all(ring, [AsyncCancel::new(9).build().user_data(101)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (9, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (101, 0));
    });
}

#[test]
fn reads_and_writes_on_one_socket_complete_in_submission_order() {
    each_mode(|ring| {
        let (a, b) = pair();
        // Four reads wait; then one write of 16 bytes feeds them in order.
        submit_all(
            ring,
            (0..4).map(|i| {
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                    .build()
                    .user_data(i)
            }),
        );
        assert_quiet(ring);
        submit_all(
            ring,
            [
                Write::new(a.as_raw_fd(), Bytes::from_static(b"AAAABBBBCCCCDDDD"))
                    .build()
                    .user_data(10),
            ],
        );
        let mut cqes = wait_n(ring, 5);
        cqes.retain(|c| c.user_data() != 10);
        let order: Vec<u64> = cqes.iter().map(Cqe::user_data).collect();
        assert_eq!(order, [0, 1, 2, 3]);
        let data: Vec<BytesMut> = cqes.iter_mut().map(take_mut).collect();
        assert_eq!(data, [&b"AAAA"[..], b"BBBB", b"CCCC", b"DDDD"]);

        // Several writes in a row land in order.
        submit_all(
            ring,
            (0..4u8).map(|i| {
                Write::new(a.as_raw_fd(), Bytes::from(vec![b'0' + i; 3]))
                    .build()
                    .user_data(20 + u64::from(i))
            }),
        );
        let order: Vec<u64> = wait_n(ring, 4).iter().map(Cqe::user_data).collect();
        assert_eq!(order, [20, 21, 22, 23]);
        let mut got = [0u8; 12];
        let mut b = &b;
        common_read_exact(&mut b, &mut got);
        assert_eq!(&got, b"000111222333");
    });
}

fn common_read_exact(mut r: impl std::io::Read, buf: &mut [u8]) {
    let mut off = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while off < buf.len() {
        match r.read(&mut buf[off..]) {
            Ok(0) => panic!("eof"),
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "data did not come");
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn a_writer_past_eagain_completes_when_the_reader_drains() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let mut wf = File::from(w.try_clone().unwrap());
        let chunk = [7u8; 4096];
        let mut filled = 0;
        loop {
            match wf.write(&chunk) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        submit_all(
            ring,
            [Write::new(w.as_raw_fd(), Bytes::from(vec![9u8; 1000]))
                .build()
                .user_data(5)],
        );
        assert_quiet(ring);
        let mut rf = File::from(r);
        let mut sink = vec![0u8; filled];
        rf.read_exact(&mut sink).unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (5, 1000));
        let mut tail = vec![0u8; 1000];
        rf.read_exact(&mut tail).unwrap();
        assert!(tail.iter().all(|&b| b == 9));
    });
}

#[test]
fn readv_and_writev_spread_and_gather() {
    each_mode(|ring| {
        let (a, b) = pair();
        let parts = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"defgh"),
            Bytes::from_static(b"ij"),
        ];
        submit_all(
            ring,
            [Writev::new(a.as_raw_fd(), parts.clone())
                .build()
                .user_data(1)],
        );
        let mut w = wait_n(ring, 1).remove(0);
        assert_eq!(w.result(), 10);
        assert_eq!(w.take_buf::<Vec<Bytes>>().ok(), Some(parts));

        let bufs = vec![BytesMut::with_capacity(4), BytesMut::with_capacity(16)];
        submit_all(ring, [Readv::new(b.as_raw_fd(), bufs).build().user_data(2)]);
        let mut r = wait_n(ring, 1).remove(0);
        assert_eq!(r.result(), 10);
        let bufs = r.take_buf::<Vec<BytesMut>>().unwrap();
        assert_eq!(&bufs[0][..], b"abcd");
        assert_eq!(&bufs[1][..], b"efghij");
    });
}

#[test]
fn regular_files_use_offsets_on_the_blocking_pool() {
    each_mode(|ring| {
        let path = kqring_test_support::ScratchPath::new("file").unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let fd = file.as_raw_fd();
        submit_all(
            ring,
            [Write::new(fd, Bytes::from_static(b"hello world"))
                .offset(0)
                .build()
                .user_data(1)],
        );
        assert_eq!(wait_n(ring, 1)[0].result(), 11);
        submit_all(
            ring,
            [Write::new(fd, Bytes::from_static(b"W"))
                .offset(6)
                .build()
                .user_data(2)],
        );
        assert_eq!(wait_n(ring, 1)[0].result(), 1);
        submit_all(
            ring,
            [Read::new(fd, BytesMut::with_capacity(5))
                .offset(6)
                .build()
                .user_data(3)],
        );
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 5);
        assert_eq!(&take_mut(&mut c)[..], b"World");
        // Reading past the end is a zero-length success.
        submit_all(
            ring,
            [Read::new(fd, BytesMut::with_capacity(5))
                .offset(100)
                .build()
                .user_data(4)],
        );
        assert_eq!(wait_n(ring, 1)[0].result(), 0);
        // The current position: a fresh descriptor starts at 0 and advances.
        let f2 = File::open(&path).unwrap();
        for expect in [&b"hello"[..], b" Worl"] {
            submit_all(
                ring,
                [Read::new(f2.as_raw_fd(), BytesMut::with_capacity(5))
                    .offset(u64::MAX)
                    .build()
                    .user_data(5)],
            );
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!(&take_mut(&mut c)[..], expect);
        }
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn close_closes_and_ends_waiters() {
    each_mode(|ring| {
        let (a, b) = pair();
        let fd = b.into_raw_fd();
        submit_all(
            ring,
            [Read::new(fd, BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        assert_quiet(ring);
        submit_all(ring, [Close::new(fd).build().user_data(2)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (2, 0));
        // The socket's only descriptor is closed: its peer reads the end
        // of the stream. (Probing the number would race with other tests,
        // which may be given it as soon as it is free.)
        assert_eq!((&a).read(&mut [0u8; 1]).unwrap(), 0);
    });
}

/// A descriptor closed outside kqring and whose number then names another
/// file: a read on the new file waits on the new file, whatever kqring
/// kept for the old one (its registration outlives its last waiter), and
/// the old file, kept open through a duplicate, wakes nothing.
#[test]
fn a_reused_descriptor_number_waits_on_its_new_file() {
    each_mode(|ring| {
        let (mut old_peer, old) = pair();
        let number = old.as_raw_fd();
        let read = |ud| {
            Read::new(number, BytesMut::with_capacity(16))
                .build()
                .user_data(ud)
        };
        submit_all(ring, [read(1)]);
        assert_quiet(ring);
        old_peer.write_all(b"old").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 3));
        assert_eq!(&take_mut(&mut c)[..], b"old");

        // The old file stays open through a duplicate; the number is
        // closed and reopened on a new socket by dup2.
        let keep_old = old.try_clone().unwrap();
        let (mut new_peer, new) = pair();
        // SAFETY: dup2 onto `number`, which `old` owns: the descriptor
        // behind `old` is replaced, so `old` is forgotten, not closed.
        assert_eq!(unsafe { libc::dup2(new.as_raw_fd(), number) }, number);
        let _ = old.into_raw_fd();
        drop(new);

        submit_all(ring, [read(2)]);
        assert_quiet(ring);
        old_peer.write_all(b"stale").unwrap();
        assert_quiet(ring);
        new_peer.write_all(b"new").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (2, 3));
        assert_eq!(&take_mut(&mut c)[..], b"new");
        // SAFETY: `number` is the duplicate of the new socket, owned here.
        drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(number) });
        drop(keep_old);
    });
}

/// The thousand-pair tests take about 2,000 descriptors each: one at a
/// time.
static THOUSANDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// 1,000 receiving operations (made by `op` for a descriptor and a
/// user_data) wait on 1,000 socket pairs; a 4-byte message to each
/// completes every one of them with its own message.
fn a_thousand_pending(op: fn(RawFd, u64) -> Sqe) {
    const N: usize = 1000;
    let _one_at_a_time = THOUSANDS.lock().unwrap_or_else(|e| e.into_inner());
    let limit = raise_nofile();
    assert!(
        limit >= 2100,
        "this test needs about 2,100 descriptors ({N} socket pairs and the rest), \
         but the hard RLIMIT_NOFILE is {limit}: raise it (ulimit -Hn) to run it"
    );
    each_mode(|ring| {
        let pairs: Vec<_> = (0..N).map(|_| pair()).collect();
        let sq = ring.submission();
        for (i, (_, b)) in pairs.iter().enumerate() {
            let mut sqe = op(b.as_raw_fd(), i as u64);
            while let Err(back) = sq.push(sqe) {
                sq.submit().unwrap();
                sqe = back.into_inner();
                std::thread::yield_now();
            }
        }
        sq.submit().unwrap();
        assert_quiet(ring);
        for (i, (a, _)) in pairs.iter().enumerate() {
            let mut a = a;
            a.write_all(&(i as u32).to_le_bytes()).unwrap();
        }
        let mut cqes = wait_sorted(ring, N);
        for (i, c) in cqes.iter_mut().enumerate() {
            assert_eq!((c.user_data(), c.result()), (i as u64, 4));
            assert_eq!(&take_mut(c)[..], &(i as u32).to_le_bytes());
        }
        assert!(ring.completion().pop().is_none());
    });
}

#[test]
fn a_thousand_pending_reads_on_a_thousand_pairs_all_complete() {
    a_thousand_pending(|fd, ud| {
        Read::new(fd, BytesMut::with_capacity(8))
            .build()
            .user_data(ud)
    });
}

#[test]
fn a_thousand_pending_recvs_on_a_thousand_pairs_all_complete() {
    a_thousand_pending(|fd, ud| {
        Recv::new(fd, BytesMut::with_capacity(8))
            .build()
            .user_data(ud)
    });
}

/// The bytes `n` writes of `fill` put in, all read back from `r`: a write
/// that was cancelled wrote nothing. Then a new write to `w` lands alone,
/// so nothing cancelled was left waiting behind the filler either.
fn assert_only_filler_then(ring: &Ring, r: &impl AsRawFd, w: RawFd, filled: usize) {
    assert!(
        read_exactly(r, filled).iter().all(|&b| b == FILLER),
        "only the filler is in the pipe"
    );
    let c = run1(
        ring,
        Write::new(w, Bytes::from_static(b"after"))
            .build()
            .user_data(99),
    );
    assert_eq!((c.user_data(), c.result()), (99, 5));
    assert_eq!(read_exactly(r, 5), b"after");
    assert_nothing_to_read(r);
}

#[test]
fn a_write_with_a_bytes_mut_gives_back_buffer_mut() {
    each_mode(|ring| {
        let (a, b) = pair();
        let mut buf = BytesMut::with_capacity(32);
        buf.extend_from_slice(b"mutable bytes");
        let mut c = run1(ring, Write::new(a.as_raw_fd(), buf).build().user_data(1));
        assert_eq!((c.user_data(), c.result()), (1, 13));
        let back = c.take_buf::<BytesMut>().expect("the BytesMut it was given");
        assert_eq!(&back[..], b"mutable bytes");
        assert_eq!(back.capacity(), 32);
        assert_eq!(read_exactly(&b, 13), b"mutable bytes");
        assert_nothing_to_read(&b);
    });
}

#[test]
fn writes_cancelled_while_waiting_give_their_buffers_back_and_write_nothing() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let filled = fill(&w);
        let mut owned = BytesMut::with_capacity(16);
        owned.extend_from_slice(b"owned");
        start(
            ring,
            [
                Write::new(w.as_raw_fd(), Bytes::from_static(b"shared"))
                    .build()
                    .user_data(1),
                Write::new(w.as_raw_fd(), owned).build().user_data(2),
            ],
        );
        let mut cqes = cancel_one_and_two(ring);
        let shared = cqes[0].take_buf::<Bytes>().expect("the Bytes it was given");
        assert_eq!(&shared[..], b"shared");
        let owned = cqes[1]
            .take_buf::<BytesMut>()
            .expect("the BytesMut it was given");
        assert_eq!((&owned[..], owned.capacity()), (&b"owned"[..], 16));
        assert_only_filler_then(ring, &r, w.as_raw_fd(), filled);
    });
}

#[test]
fn a_readv_cancelled_while_waiting_gives_all_its_buffers_back() {
    each_mode(|ring| {
        let (_a, b) = pair();
        let mut second = BytesMut::with_capacity(8);
        second.extend_from_slice(b"pre");
        start(
            ring,
            [
                Readv::new(b.as_raw_fd(), vec![BytesMut::with_capacity(4), second])
                    .build()
                    .user_data(1),
            ],
        );
        submit_all(ring, [AsyncCancel::new(1).build().user_data(2)]);
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (2, 0));
        let bufs = cqes[0]
            .take_buf::<Vec<BytesMut>>()
            .expect("the buffers come back");
        let shapes: Vec<(&[u8], usize)> = bufs.iter().map(|b| (&b[..], b.capacity())).collect();
        assert_eq!(shapes, [(&b""[..], 4), (&b"pre"[..], 8)]);
    });
}

#[test]
fn a_writev_cancelled_while_waiting_gives_all_its_buffers_back_and_writes_nothing() {
    each_mode(|ring| {
        let (a, b) = pair();
        let filled = fill(&a);
        let parts = vec![
            Bytes::from_static(b"one"),
            Bytes::from_static(b"two"),
            Bytes::from_static(b"three"),
        ];
        start(
            ring,
            [Writev::new(a.as_raw_fd(), parts.clone())
                .build()
                .user_data(1)],
        );
        submit_all(ring, [AsyncCancel::new(1).build().user_data(2)]);
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (2, 0));
        assert_eq!(cqes[0].take_buf::<Vec<Bytes>>().ok(), Some(parts));
        assert_only_filler_then(ring, &b, a.as_raw_fd(), filled);
    });
}

#[test]
fn a_link_timeout_cancels_a_write_waiting_on_a_full_pipe() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let filled = fill(&w);
        submit_all(
            ring,
            [
                Write::new(w.as_raw_fd(), Bytes::from_static(b"late"))
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::IO_LINK),
                LinkTimeout::new(Duration::from_millis(20))
                    .build()
                    .user_data(2),
            ],
        );
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!(
            (cqes[1].user_data(), cqes[1].result()),
            (2, -kqring::sys::ETIME)
        );
        let late = cqes[0].take_buf::<Bytes>().expect("the Bytes it was given");
        assert_eq!(&late[..], b"late");
        assert_only_filler_then(ring, &r, w.as_raw_fd(), filled);
    });
}

/// A read forced onto the pool (ASYNC) on a blocking socket blocks a
/// worker: a cancel can't stop it (-EALREADY), and it completes with the
/// data when it comes.
#[test]
fn cancel_of_a_write_under_way_on_a_worker_is_ealready() {
    each_mode(|ring| {
        // A blocking pipe: the write runs on the pool once the pipe has
        // room, and blocks there until the reader has taken all of it.
        let (mut r, w) = std::io::pipe().unwrap();
        let data = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let offloaded = ring.stats().offloaded;
        submit_all(
            ring,
            [Write::new(w.as_raw_fd(), data.clone()).build().user_data(1)],
        );
        wait_until("the write is handed to the pool", || {
            ring.stats().offloaded == offloaded + 1
        });
        // Bytes in the pipe: a worker has made the call, which can't have
        // finished (the pipe holds far less than the write).
        let mut pfd = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, PATIENCE.as_millis() as i32) };
        assert_eq!(n, 1, "the write never started");
        let c = run1(ring, AsyncCancel::new(1).build().user_data(2));
        assert_eq!((c.user_data(), c.result()), (2, -libc::EALREADY));
        assert_eq!(
            c.io_result().unwrap_err().raw_os_error(),
            Some(libc::EALREADY)
        );
        // The call goes on: every byte arrives, and the write completes
        // with all of them and its buffer.
        let mut got = vec![0u8; data.len()];
        r.read_exact(&mut got).unwrap();
        assert!(got == data[..], "the bytes arrive in order");
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, data.len() as i32));
        assert_eq!(c.take_buf::<Bytes>().ok(), Some(data));
        assert!(ring.completion().pop().is_none());
    });
}

#[test]
fn cancel_of_an_async_read_in_its_batch_withdraws_it_from_the_pool() {
    each_mode(|ring| {
        let (_a, b) = UnixStream::pair().unwrap();
        submit_all(
            ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(16))
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::ASYNC),
                AsyncCancel::new(1).build().user_data(2),
            ],
        );
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            [
                (cqes[0].user_data(), cqes[0].result()),
                (cqes[1].user_data(), cqes[1].result())
            ],
            [(1, -libc::ECANCELED), (2, 0)]
        );
        assert_eq!(take_mut(&mut cqes[0]).capacity(), 16);
    });
}

/// The same, over and over, with the polling thread taking entries while
/// they are pushed: however the take and the pushes interleave, the read
/// goes to the pool only once its whole submission, the cancel included,
/// has been taken (a take of the read alone, with the cancel pushed and
/// the submission made before the turn ended, once sent the read first).
#[test]
fn cancel_of_an_async_read_in_its_batch_withdraws_it_however_the_take_interleaves() {
    let ring = Ring::builder().sq_idle(PATIENCE).build().unwrap();
    let (_a, b) = UnixStream::pair().unwrap();
    for round in 0..100_000u64 {
        let read = 2 * round;
        submit_all(
            &ring,
            [
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(16))
                    .build()
                    .user_data(read)
                    .flags(SqeFlags::ASYNC),
                AsyncCancel::new(read).build().user_data(read + 1),
            ],
        );
        let cqes = wait_sorted(&ring, 2);
        assert_eq!(
            [
                (cqes[0].user_data(), cqes[0].result()),
                (cqes[1].user_data(), cqes[1].result())
            ],
            [(read, -libc::ECANCELED), (read + 1, 0)],
            "round {round}"
        );
    }
}

#[test]
fn result_gives_the_count_or_the_errno() {
    each_mode(|ring| {
        let (a, _b) = pair();
        let c = run1(
            ring,
            Write::new(a.as_raw_fd(), Bytes::from_static(b"12345"))
                .build()
                .user_data(1),
        );
        assert_eq!(c.io_result().unwrap(), 5);
        let c = run1(
            ring,
            Read::new(BAD_FD, BytesMut::with_capacity(1))
                .build()
                .user_data(2),
        );
        let e = c.io_result().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        assert_eq!(
            e.kind(),
            std::io::Error::from_raw_os_error(libc::EBADF).kind()
        );
        let c = run1(ring, AsyncCancel::new(12345).build().user_data(3));
        assert_eq!(
            c.io_result().unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        let c = run1(
            ring,
            kqring::ops::Timeout::new(Duration::from_millis(1))
                .build()
                .user_data(4),
        );
        assert_eq!(
            c.io_result().unwrap_err().raw_os_error(),
            Some(kqring::sys::ETIME)
        );
    });
}

/// Writes that find the socket full queue up, and once the peer drains
/// it they complete in submission order, their bytes in that order too,
/// whatever their kind (Write, Writev, Send; Bytes or BytesMut).
#[test]
fn writes_queued_behind_eagain_complete_in_submission_order() {
    each_mode(|ring| {
        let (a, b) = pair();
        let filled = fill(&a);
        let fd = a.as_raw_fd();
        let mut d = BytesMut::with_capacity(1000);
        d.extend_from_slice(&[b'D'; 1000]);
        start(
            ring,
            [
                Write::new(fd, Bytes::from(vec![b'A'; 1000]))
                    .build()
                    .user_data(1),
                Writev::new(
                    fd,
                    vec![Bytes::from(vec![b'B'; 600]), Bytes::from(vec![b'b'; 400])],
                )
                .build()
                .user_data(2),
                Send::new(fd, Bytes::from(vec![b'C'; 1000]))
                    .build()
                    .user_data(3),
                Write::new(fd, d).build().user_data(4),
                Write::new(fd, Bytes::from(vec![b'E'; 1000]))
                    .build()
                    .user_data(5),
            ],
        );
        assert!(
            read_exactly(&b, filled).iter().all(|&x| x == FILLER),
            "the filler comes first, whole"
        );
        let cqes = wait_n(ring, 5);
        let got: Vec<(u64, i32)> = cqes.iter().map(|c| (c.user_data(), c.result())).collect();
        assert_eq!(got, [(1, 1000), (2, 1000), (3, 1000), (4, 1000), (5, 1000)]);
        let mut want = Vec::new();
        for (byte, n) in [
            (b'A', 1000),
            (b'B', 600),
            (b'b', 400),
            (b'C', 1000),
            (b'D', 1000),
            (b'E', 1000),
        ] {
            want.extend(std::iter::repeat_n(byte, n));
        }
        assert!(
            read_exactly(&b, want.len()) == want,
            "the bytes came in submission order"
        );
        assert_nothing_to_read(&b);
    });
}

/// An inline ring's wait spins a little for the pool's results before it
/// parks in `kevent`, with its park withdrawn meanwhile: a worker's result
/// that comes long after the spin must still wake it. The write that ends
/// the worker's read is made once the waiting thread is seen blocked in
/// `epoll_wait` (Linux's /proc), so the result can't come within the spin.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[test]
fn an_inline_wait_parked_for_the_pool_wakes_for_a_late_result() {
    let ring = Ring::builder().inline().build().unwrap();
    // Blocking: the worker's read waits in the kernel for the write.
    let (a, b) = UnixStream::pair().unwrap();
    submit_all(
        &ring,
        [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
            .build()
            .user_data(1)
            .flags(SqeFlags::ASYNC)],
    );
    // SAFETY: gettid has no preconditions.
    let waiter = unsafe { libc::gettid() };
    std::thread::scope(|s| {
        s.spawn(|| {
            wait_until("the waiting thread parks in epoll_wait", || {
                std::fs::read_to_string(format!("/proc/self/task/{waiter}/syscall")).is_ok_and(
                    |s| s.split_whitespace().next() == Some(&libc::SYS_epoll_wait.to_string()),
                )
            });
            (&a).write_all(b"late").unwrap();
        });
        let mut c = ring
            .completion()
            .wait_timeout(PATIENCE)
            .unwrap()
            .expect("the parked wait never woke for the worker's result");
        assert_eq!((c.user_data(), c.result()), (1, 4));
        assert_eq!(&take_mut(&mut c)[..], b"late");
    });
}
