//! Provided buffer groups: ProvideBuffers, RemoveBuffers, and Recv, Read
//! and RecvMsg with BUFFER_SELECT — which buffer is picked, F_BUFFER and
//! the buffer id, ENOBUFS, multishot receives, and thousands of idle
//! connections that pin no buffer.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{
    AsyncCancel, Nop, ProvideBuffers, Read, Recv, RecvMsg, RemoveBuffers, Send, Write,
};
use kqring::{Cqe, Mode, Ring, SqeFlags, cqe_flags};

/// Counts the bytes the process holds on the heap, to measure what idle
/// operations cost.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const GROUP: u16 = 7;

fn bufs(n: usize, size: usize) -> Vec<BytesMut> {
    (0..n).map(|_| BytesMut::with_capacity(size)).collect()
}

fn provide(ring: &Ring, group: u16, n: usize, size: usize, bid: u16) {
    let c = run1(
        ring,
        ProvideBuffers::new(group, bufs(n, size), bid)
            .build()
            .user_data(1000),
    );
    assert_eq!((c.result(), c.has_buf()), (0, false));
}

/// Removes up to `n` buffers; the count and the buffers.
fn remove(ring: &Ring, group: u16, n: u16) -> (i32, Vec<BytesMut>) {
    let mut c = run1(ring, RemoveBuffers::new(group, n).build().user_data(1001));
    let v = c.take_buf::<Vec<BytesMut>>().ok().unwrap_or_default();
    (c.result(), v)
}

#[test]
fn recv_with_buffer_select_gets_f_buffer_the_id_and_the_bytes_in_fifo_order() {
    each_mode(|ring| {
        provide(ring, GROUP, 4, 16, 10);
        let (mut a, b) = pair();
        let mut seen = Vec::new();
        for (i, msg) in [&b"one"[..], b"two", b"three", b"four", b"five"]
            .into_iter()
            .enumerate()
        {
            a.write_all(msg).unwrap();
            let mut c = run1(
                ring,
                Recv::select(b.as_raw_fd(), GROUP)
                    .build()
                    .user_data(i as u64),
            );
            assert_eq!(c.result(), msg.len() as i32);
            assert_ne!(c.flags() & cqe_flags::BUFFER, 0);
            assert!(!c.is_more());
            let bid = c.buffer_id().expect("a buffer id");
            assert_eq!(u32::from(bid), c.flags() >> cqe_flags::BUFFER_SHIFT);
            let buf = take_mut(&mut c);
            assert_eq!(&buf[..], msg);
            assert_eq!(buf.capacity(), 16);
            seen.push(bid);
            // Give it back: it goes to the end of the group.
            let back = run1(
                ring,
                ProvideBuffers::one(GROUP, buf, bid).build().user_data(99),
            );
            assert_eq!(back.result(), 0);
        }
        // Oldest first, as Linux's legacy provided buffers since 5.19.
        assert_eq!(seen, [10, 11, 12, 13, 10]);
        assert_eq!(remove(ring, GROUP, 100).0, 4);
    });
}

#[test]
fn an_empty_or_unknown_group_is_enobufs_at_once() {
    each_mode(|ring| {
        let (_a, b) = pair();
        // No data and no buffer: io_uring answers -ENOBUFS at once too.
        let c = run1(ring, Recv::select(b.as_raw_fd(), 321).build().user_data(1));
        assert_eq!(
            (c.result(), c.flags(), c.has_buf()),
            (-libc::ENOBUFS, 0, false)
        );
        provide(ring, GROUP, 1, 8, 0);
        assert_eq!(remove(ring, GROUP, 1).0, 1);
        let c = run1(
            ring,
            Recv::select(b.as_raw_fd(), GROUP).build().user_data(2),
        );
        assert_eq!(c.result(), -libc::ENOBUFS);
    });
}

#[test]
fn a_waiting_receive_pins_no_buffer_and_takes_one_when_data_comes() {
    each_mode(|ring| {
        provide(ring, GROUP, 2, 8, 0);
        let (mut a, b) = pair();
        submit_all(
            ring,
            [Recv::select(b.as_raw_fd(), GROUP).build().user_data(1)],
        );
        assert_quiet(ring);
        // Both buffers are still in the group while the receive waits.
        let (n, back) = remove(ring, GROUP, 64);
        assert_eq!(n, 2);
        let c = run1(
            ring,
            ProvideBuffers::new(GROUP, back, 5).build().user_data(2),
        );
        assert_eq!(c.result(), 0);
        a.write_all(b"late").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result(), c.buffer_id()), (1, 4, Some(5)));
        assert_eq!(&take_mut(&mut c)[..], b"late");
        assert_eq!(remove(ring, GROUP, 64).0, 1);
    });
}

#[test]
fn recv_len_caps_the_provided_buffer() {
    each_mode(|ring| {
        provide(ring, GROUP, 1, 32, 3);
        let (mut a, b) = pair();
        a.write_all(b"0123456789").unwrap();
        let mut c = run1(
            ring,
            Recv::select(b.as_raw_fd(), GROUP)
                .len(4)
                .build()
                .user_data(1),
        );
        assert_eq!((c.result(), c.buffer_id()), (4, Some(3)));
        assert_eq!(&take_mut(&mut c)[..], b"0123");
    });
}

#[test]
fn multishot_recv_posts_f_more_with_a_buffer_each_then_ends_at_eof() {
    each_mode(|ring| {
        provide(ring, GROUP, 4, 16, 0);
        let (mut a, b) = pair();
        submit_all(
            ring,
            [Recv::select(b.as_raw_fd(), GROUP)
                .multishot(true)
                .build()
                .user_data(9)],
        );
        assert_quiet(ring);
        for (i, msg) in [&b"alpha"[..], b"beta", b"gamma"].into_iter().enumerate() {
            a.write_all(msg).unwrap();
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!((c.user_data(), c.result()), (9, msg.len() as i32));
            assert!(c.is_more());
            assert_eq!(c.buffer_id(), Some(i as u16));
            assert_eq!(&take_mut(&mut c)[..], msg);
        }
        drop(a);
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result(), c.flags()), (9, 0, 0));
        assert!(!c.has_buf());
        // The end of the stream used no buffer: one is left.
        assert_eq!(remove(ring, GROUP, 64).0, 1);
    });
}

#[test]
fn multishot_recv_ends_with_enobufs_when_the_group_runs_dry() {
    each_mode(|ring| {
        provide(ring, GROUP, 2, 8, 0);
        let (mut a, b) = pair();
        submit_all(
            ring,
            [Recv::select(b.as_raw_fd(), GROUP)
                .multishot(true)
                .build()
                .user_data(4)],
        );
        for msg in [&b"one"[..], b"two"] {
            a.write_all(msg).unwrap();
            let c = wait_n(ring, 1).remove(0);
            assert!(c.is_more() && c.buffer_id().is_some());
        }
        a.write_all(b"three").unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!(
            (c.user_data(), c.result(), c.flags()),
            (4, -libc::ENOBUFS, 0)
        );
    });
}

#[test]
fn multishot_recv_cancel_and_reset_end_it_and_keep_the_buffers() {
    each_mode(|ring| {
        provide(ring, GROUP, 3, 8, 0);
        let (_a, b) = pair();
        submit_all(
            ring,
            [Recv::select(b.as_raw_fd(), GROUP)
                .multishot(true)
                .build()
                .user_data(5)],
        );
        assert_quiet(ring);
        submit_all(ring, [AsyncCancel::new(5).build().user_data(6)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!((cqes[0].result(), cqes[0].flags()), (-libc::ECANCELED, 0));
        assert_eq!(cqes[1].result(), 0);
        assert_eq!(remove(ring, GROUP, 64).0, 3);

        // A reset peer: the error ends it; no buffer is consumed.
        provide(ring, GROUP, 3, 8, 0);
        let (client, server) = tcp_pair();
        submit_all(
            ring,
            [Recv::select(server.as_raw_fd(), GROUP)
                .multishot(true)
                .build()
                .user_data(7)],
        );
        assert_quiet(ring);
        kqring_test_support::close_with_reset(client).unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.result(), c.flags()), (-libc::ECONNRESET, 0));
        assert_eq!(remove(ring, GROUP, 64).0, 3);
    });
}

#[test]
fn remove_buffers_counts_and_hands_the_buffers_back() {
    each_mode(|ring| {
        assert_eq!(remove(ring, 55, 1).0, -libc::ENOENT);
        provide(ring, 55, 5, 8, 0);
        let (n, v) = remove(ring, 55, 2);
        assert_eq!((n, v.len()), (2, 2));
        assert!(v.iter().all(|b| b.capacity() == 8));
        assert_eq!(remove(ring, 55, 10).0, 3);
        // The group outlives its last buffer, as in io_uring.
        assert_eq!(remove(ring, 55, 10).0, 0);
        assert_eq!(remove(ring, 55, 0).0, -libc::EINVAL);
    });
}

#[test]
fn provide_buffers_errors_give_the_buffers_back() {
    each_mode(|ring| {
        let c = run1(
            ring,
            ProvideBuffers::new(GROUP, Vec::new(), 0)
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), -libc::E2BIG);
        let mut c = run1(
            ring,
            ProvideBuffers::new(GROUP, bufs(2, 8), u16::MAX)
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        assert_eq!(c.take_buf::<Vec<BytesMut>>().ok().map(|v| v.len()), Some(2));
        let c = run1(
            ring,
            ProvideBuffers::new(GROUP, vec![BytesMut::new()], 0)
                .build()
                .user_data(3),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        // A buffer with bytes in it is emptied: a receive fills it whole.
        let mut full = BytesMut::with_capacity(8);
        full.extend_from_slice(b"stale");
        let c = run1(
            ring,
            ProvideBuffers::one(GROUP, full, 0).build().user_data(4),
        );
        assert_eq!(c.result(), 0);
        let (mut a, b) = pair();
        a.write_all(b"fresh").unwrap();
        let mut c = run1(
            ring,
            Recv::select(b.as_raw_fd(), GROUP).build().user_data(5),
        );
        assert_eq!(&take_mut(&mut c)[..], b"fresh");
    });
}

#[test]
fn buffer_select_where_it_does_not_apply() {
    each_mode(|ring| {
        let (a, b) = pair();
        // Operations that can't select: EOPNOTSUPP, as io_uring answers.
        let mut c = run1(
            ring,
            Write::new(a.as_raw_fd(), Bytes::from_static(b"x"))
                .build()
                .flags(SqeFlags::BUFFER_SELECT)
                .user_data(1),
        );
        assert_eq!(c.result(), -libc::EOPNOTSUPP);
        assert_eq!(c.take_buf::<Bytes>().ok(), Some(Bytes::from_static(b"x")));
        let c = run1(
            ring,
            Send::new(a.as_raw_fd(), Bytes::from_static(b"x"))
                .build()
                .flags(SqeFlags::BUFFER_SELECT)
                .user_data(2),
        );
        assert_eq!(c.result(), -libc::EOPNOTSUPP);
        // An own buffer and BUFFER_SELECT: EINVAL, the buffer comes back.
        let mut c = run1(
            ring,
            Recv::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                .build()
                .flags(SqeFlags::BUFFER_SELECT)
                .user_data(3),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        assert_eq!(take_mut(&mut c).capacity(), 4);
        // Multishot receives need a group.
        let c = run1(
            ring,
            Recv::new(b.as_raw_fd(), BytesMut::with_capacity(4))
                .multishot(true)
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        // A select receive whose flag was dropped has no buffer at all.
        let c = run1(
            ring,
            Recv::select(b.as_raw_fd(), GROUP)
                .build()
                .clear_flags()
                .user_data(5),
        );
        assert_eq!(c.result(), -libc::EINVAL);
    });
}

#[test]
fn read_selects_on_pipes_and_files_and_consumes_a_buffer_at_eof() {
    each_mode(|ring| {
        provide(ring, GROUP, 3, 16, 20);
        let (r, w) = nonblocking_pipe();
        submit_all(
            ring,
            [Read::select(r.as_raw_fd(), GROUP).build().user_data(1)],
        );
        assert_quiet(ring);
        std::fs::File::from(w.try_clone().unwrap())
            .write_all(b"piped")
            .unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.result(), c.buffer_id()), (5, Some(20)));
        assert_eq!(&take_mut(&mut c)[..], b"piped");
        // End of file: io_uring's read reports the buffer used, empty.
        drop(w);
        let mut c = run1(
            ring,
            Read::select(r.as_raw_fd(), GROUP).build().user_data(2),
        );
        assert_eq!((c.result(), c.buffer_id()), (0, Some(21)));
        assert!(take_mut(&mut c).is_empty());

        // A regular file: on the pool, with the buffer taken beforehand.
        let f = kqring_test_support::temp_file(b"from a file").unwrap();
        let mut c = run1(
            ring,
            Read::select(f.as_raw_fd(), GROUP).build().user_data(3),
        );
        assert_eq!((c.result(), c.buffer_id()), (11, Some(22)));
        assert_eq!(&take_mut(&mut c)[..], b"from a file");
        // The group is empty now.
        let c = run1(
            ring,
            Read::select(f.as_raw_fd(), GROUP).build().user_data(4),
        );
        assert_eq!(c.result(), -libc::ENOBUFS);
    });
}

#[test]
fn recvmsg_selects_a_buffer_and_reports_the_sender() {
    each_mode(|ring| {
        provide(ring, GROUP, 2, 8, 40);
        let a = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let b = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        a.send_to(b"dgram", b.local_addr().unwrap()).unwrap();
        let mut c = run1(
            ring,
            RecvMsg::select(b.as_raw_fd(), GROUP).build().user_data(1),
        );
        assert_eq!((c.result(), c.buffer_id()), (5, Some(40)));
        assert_eq!(c.socket_addr(), Some(a.local_addr().unwrap()));
        assert_eq!(&take_mut(&mut c)[..], b"dgram");
        // A datagram larger than the buffer is truncated to it.
        a.send_to(&[7u8; 20], b.local_addr().unwrap()).unwrap();
        let mut c = run1(
            ring,
            Recv::select(b.as_raw_fd(), GROUP).build().user_data(2),
        );
        assert_eq!((c.result(), c.buffer_id()), (8, Some(41)));
        assert_eq!(&take_mut(&mut c)[..], &[7u8; 8]);
    });
}

/// A small deterministic generator (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pushes, submitting (and draining into `sink`) whenever the queue is
/// full.
fn push_all(ring: &Ring, sqes: impl IntoIterator<Item = kqring::Sqe>, sink: &mut Vec<Cqe>) {
    let sq = ring.submission();
    for mut sqe in sqes {
        loop {
            match sq.push(sqe) {
                Ok(()) => break,
                Err(back) => {
                    sqe = back.into_inner();
                    // EBUSY (completions in the overflow list) clears as we
                    // drain.
                    let _ = sq.submit();
                    sink.extend(ring.completion().drain());
                    std::thread::yield_now();
                }
            }
        }
    }
    while sq.submit().is_err() {
        sink.extend(ring.completion().drain());
    }
}

/// Waits for the Nop with `user_data`, keeping everything else in `sink`:
/// once it is back, every entry pushed before it has started.
fn sync(ring: &Ring, user_data: u64, sink: &mut Vec<Cqe>) {
    push_all(ring, [Nop::new().build().user_data(user_data)], sink);
    loop {
        let c = ring
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .expect("the sync Nop did not come");
        if c.user_data() == user_data {
            return;
        }
        sink.push(c);
    }
}

/// `sock` moved to the lowest free descriptor number at or above `floor`.
fn above(sock: UnixStream, floor: i32) -> UnixStream {
    // SAFETY: fcntl on a descriptor we own; the duplicate is owned below.
    let fd = unsafe { libc::fcntl(sock.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    assert!(
        fd >= floor,
        "F_DUPFD_CLOEXEC: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is the duplicate just made, owned by nothing else.
    UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[test]
fn ten_thousand_idle_connections_pin_no_buffer() {
    let limit = raise_nofile();
    let want = 10_000usize;
    // Two descriptors per connection, and room for the rest of the tests.
    let n = want.min((limit.saturating_sub(300) / 2) as usize);
    if n < want {
        println!("descriptor limit {limit}: using {n} connections instead of {want}");
    }
    assert!(
        n >= 1000,
        "descriptor limit {limit} is too low for this test"
    );
    let seed = std::env::var("KQRING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!("seed {seed} (set KQRING_SEED to repeat)");

    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder()
            .mode(mode)
            .sq_entries(1024)
            .cq_entries(4096)
            .build()
            .unwrap();
        let mut rng = Rng(seed);
        // A server's connections are its own descriptors only; here each
        // also has a peer in the process. The peers are moved above the
        // connections' numbers, so that what kqring keeps per descriptor
        // number is counted for the connections alone.
        let peers_from = limit as i32 - n as i32 - 50;
        assert!(peers_from > n as i32 + 150, "descriptor limit {limit}");
        let pairs: Vec<(UnixStream, UnixStream)> = (0..n)
            .map(|_| {
                let (peer, conn) = pair();
                (above(peer, peers_from), conn)
            })
            .collect();
        let mut stray = Vec::new();
        provide(&ring, GROUP, 64, 64, 0);
        sync(&ring, u64::MAX, &mut stray);

        let before = LIVE.load(Ordering::SeqCst);
        push_all(
            &ring,
            pairs.iter().enumerate().map(|(i, (_, b))| {
                Recv::select(b.as_raw_fd(), GROUP)
                    .multishot(true)
                    .build()
                    .user_data(i as u64)
            }),
            &mut stray,
        );
        sync(&ring, u64::MAX, &mut stray);
        let after = LIVE.load(Ordering::SeqCst);
        assert!(
            stray.is_empty(),
            "idle receives completed: {:?}",
            &stray[..1]
        );
        let per = (after - before) as f64 / n as f64;
        println!(
            "{mode:?}: {n} idle multishot receives: {} bytes of heap, {per:.0} bytes per connection",
            after - before
        );
        assert!(per < 512.0, "{per:.0} bytes of heap per idle connection");
        // All 64 buffers are still in the group: none is pinned.
        let (count, back) = remove(&ring, GROUP, 64);
        assert_eq!(count, 64, "buffers pinned by idle receives");
        let c = run1(
            &ring,
            ProvideBuffers::new(GROUP, back, 0)
                .build()
                .user_data(u64::MAX - 1),
        );
        assert_eq!(c.result(), 0);

        // Traffic on a random subset, in batches the group can hold; every
        // byte is checked and every buffer given back.
        let active = (n / 10).max(100);
        let mut pending: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut got = vec![Vec::<u8>::new(); n];
        let mut total = 0usize;
        for _ in 0..active / 32 {
            pending.clear();
            for _ in 0..32 {
                let i = rng.below(n as u64) as usize;
                if pending.iter().any(|(j, _)| *j == i) {
                    continue;
                }
                let len = 1 + rng.below(64) as usize;
                let msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                (&pairs[i].0).write_all(&msg).unwrap();
                pending.push((i, msg));
            }
            let expect: usize = pending.iter().map(|(_, m)| m.len()).sum();
            let mut bytes = 0;
            let mut give_back = Vec::new();
            while bytes < expect {
                let mut c = ring
                    .completion()
                    .wait_timeout(PATIENCE)
                    .unwrap()
                    .expect("traffic completion did not come");
                let i = c.user_data() as usize;
                assert!(c.result() > 0 && c.is_more(), "{c:?}");
                let bid = c.buffer_id().expect("a provided buffer");
                let buf = take_mut(&mut c);
                assert_eq!(buf.len(), c.result() as usize);
                got[i].extend_from_slice(&buf);
                bytes += buf.len();
                give_back.push(
                    ProvideBuffers::one(GROUP, buf, bid)
                        .build()
                        .user_data(u64::MAX - 2),
                );
            }
            let k = give_back.len();
            push_all(&ring, give_back, &mut stray);
            let returned = wait_n(&ring, k);
            assert!(
                returned
                    .iter()
                    .all(|c| c.result() == 0 && c.user_data() == u64::MAX - 2)
            );
            for (i, msg) in &pending {
                assert_eq!(&got[*i], msg, "connection {i}");
                got[*i].clear();
            }
            total += expect;
        }
        println!("{mode:?}: {total} bytes over random connections, all checked");
        // Idle again: every buffer is back in the group.
        sync(&ring, u64::MAX, &mut stray);
        assert!(stray.is_empty());
        let (count, back) = remove(&ring, GROUP, 64);
        assert_eq!(count, 64);
        let c = run1(
            &ring,
            ProvideBuffers::new(GROUP, back, 0)
                .build()
                .user_data(u64::MAX - 1),
        );
        assert_eq!(c.result(), 0);

        // Closing the peers ends every receive with one final completion.
        let (clients, servers): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        drop(clients);
        let mut ended = vec![false; n];
        for _ in 0..n {
            let c = ring
                .completion()
                .wait_timeout(PATIENCE)
                .unwrap()
                .expect("final completion did not come");
            assert_eq!((c.result(), c.flags()), (0, 0), "{c:?}");
            let i = c.user_data() as usize;
            assert!(!ended[i], "two final completions for {i}");
            ended[i] = true;
        }
        drop(servers);
    }
}
