//! Dropping the proactor's futures at every point: before the first poll,
//! while the operation is in flight, after its completion arrived but
//! before the last poll. The buffer is freed exactly once, and never while
//! the driver may use it; what a completion made (a connection) is closed;
//! the descriptor goes on working. Also: 10,000 futures at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use kqring::proactor::{Proactor, RawCqe, TcpListener, TcpStream, UnixStream};
use kqring::{IoBufMut, Mode, Ring, ops};

/// A buffer that counts its drops.
struct Tracked {
    buf: Vec<u8>,
    drops: Arc<AtomicUsize>,
}

impl Tracked {
    fn new(cap: usize, drops: &Arc<AtomicUsize>) -> Tracked {
        Tracked {
            buf: Vec::with_capacity(cap),
            drops: Arc::clone(drops),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every method is the inner Vec's.
unsafe impl IoBufMut for Tracked {
    fn spare_mut_ptr(&mut self) -> *mut u8 {
        self.buf.spare_mut_ptr()
    }
    fn buf_len(&self) -> usize {
        self.buf.buf_len()
    }
    fn buf_capacity(&self) -> usize {
        self.buf.buf_capacity()
    }
    unsafe fn set_buf_len(&mut self, len: usize) {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.buf.set_buf_len(len) }
    }
}

/// A waker that records that it fired.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn modes() -> [Mode; 2] {
    [Mode::Inline, Mode::PollingThread]
}

fn ring(mode: Mode) -> Ring {
    Ring::builder().mode(mode).build().expect("ring")
}

/// Turns the ring (an inline one needs someone to) until `done()`, for at
/// most a minute: a bound that only a hang reaches.
fn turn_until(ring: &Ring, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let io = ring.proactor();
    while !done() {
        assert!(Instant::now() < deadline, "not done after a minute");
        io.block_on(io.sleep(Duration::from_millis(1)))
            .expect("sleep");
    }
}

/// Polls `fut` once with a waker that sets `flag`.
fn poll_once<F: std::future::Future + Unpin>(fut: &mut F, flag: &Arc<Flag>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(flag));
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

fn pair(io: &Proactor) -> (UnixStream, UnixStream) {
    UnixStream::pair(io).expect("pair")
}

/// The next read of `b` gets what `a` writes now: no cancelled read took
/// it, and the descriptor still works.
fn still_works(io: &Proactor, a: &UnixStream, b: &UnixStream) {
    io.block_on(async {
        let (n, _) = a.write(b"after".as_slice()).await;
        assert_eq!(n.expect("write"), 5);
        let (n, buf) = b.read(Vec::with_capacity(16)).await;
        assert_eq!((n.expect("read"), &buf[..]), (5, &b"after"[..]));
    });
}

#[test]
fn dropped_before_the_first_poll_nothing_is_sent_and_the_buffer_goes_at_once() {
    for mode in modes() {
        let ring = ring(mode);
        let io = ring.proactor();
        let (a, b) = pair(&io);
        let drops = Arc::new(AtomicUsize::new(0));
        let fut = b.read(Tracked::new(16, &drops));
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "{mode:?}");
        still_works(&io, &a, &b);
    }
}

#[test]
fn dropped_in_flight_the_operation_is_cancelled_and_the_buffer_freed_on_its_completion() {
    for mode in modes() {
        let ring = ring(mode);
        let io = ring.proactor();
        let (a, b) = pair(&io);
        let drops = Arc::new(AtomicUsize::new(0));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut fut = b.read(Tracked::new(16, &drops));
        assert!(poll_once(&mut fut, &flag).is_pending());
        // Make sure the driver has it waiting on the socket.
        turn_until(&ring, || true);
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the operation holds the buffer"
        );
        drop(fut);
        turn_until(&ring, || drops.load(Ordering::SeqCst) == 1);
        assert!(
            !flag.0.load(Ordering::SeqCst),
            "a dropped future's waker was woken"
        );
        still_works(&io, &a, &b);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "{mode:?}: freed once");
    }
}

#[test]
fn dropped_after_its_completion_arrived_the_completion_and_buffer_go_with_it() {
    for mode in modes() {
        let ring = ring(mode);
        let io = ring.proactor();
        let (a, b) = pair(&io);
        let drops = Arc::new(AtomicUsize::new(0));
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut fut = b.read(Tracked::new(16, &drops));
        assert!(poll_once(&mut fut, &flag).is_pending());
        io.block_on(async {
            let (n, _) = a.write(b"taken".as_slice()).await;
            assert_eq!(n.expect("write"), 5);
        });
        turn_until(&ring, || flag.0.load(Ordering::SeqCst));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the slot holds the completion"
        );
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "{mode:?}");
        // The dropped read took the data: nothing is left to read.
        let (res, _) = io.block_on(
            b.read(Vec::with_capacity(8))
                .timeout(Duration::from_millis(10)),
        );
        assert_eq!(
            res.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::TimedOut)
        );
        still_works(&io, &a, &b);
    }
}

#[test]
fn an_accept_dropped_after_its_completion_closes_the_connection() {
    for mode in modes() {
        let ring = ring(mode);
        let io = ring.proactor();
        let listener = TcpListener::bind(&io, "127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut accept = listener.accept();
        assert!(poll_once(&mut accept, &flag).is_pending());
        let client = io.block_on(TcpStream::connect(&io, addr)).expect("connect");
        turn_until(&ring, || flag.0.load(Ordering::SeqCst));
        drop(accept);
        // Nobody took the connection: it was closed, and the client reads
        // the end.
        let (n, _) = io.block_on(client.read(Vec::with_capacity(4)));
        assert_eq!(n.expect("read"), 0, "{mode:?}");
        // The listener goes on.
        let (c2, accepted) =
            io.block_on(async { futures::join!(TcpStream::connect(&io, addr), listener.accept()) });
        let (_s2, peer) = accepted.expect("accept");
        assert_eq!(peer, c2.expect("connect").local_addr().expect("addr"));
    }
}

#[test]
fn a_dropped_incoming_stream_cancels_its_multishot_accept() {
    for mode in modes() {
        let ring = ring(mode);
        let io = ring.proactor();
        let listener = TcpListener::bind(&io, "127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        io.block_on(async {
            let mut incoming = listener.incoming();
            let c1 = TcpStream::connect(&io, addr).await.expect("connect");
            let (_s1, peer) = incoming.next().await.expect("one").expect("accept");
            assert_eq!(peer, c1.local_addr().expect("addr"));
        });
        // The multishot accept is gone: a single accept gets the next one.
        let (c2, accepted) =
            io.block_on(async { futures::join!(TcpStream::connect(&io, addr), listener.accept()) });
        let (_s2, peer) = accepted.expect("accept");
        assert_eq!(
            peer,
            c2.expect("connect").local_addr().expect("addr"),
            "{mode:?}"
        );
    }
}

#[test]
fn ten_thousand_futures_at_once_complete_and_ten_thousand_dropped_ones_free_their_buffers() {
    // Without a file table, and with one that gives each socket a slot.
    for (mode, files) in modes().into_iter().flat_map(|m| [(m, 0), (m, 256)]) {
        let ring = Ring::builder()
            .mode(mode)
            .files(files)
            .build()
            .expect("ring");
        let io = ring.proactor();
        // More than the SQ holds (256): pushes that find it full retry.
        let nops = io.block_on(join_all(
            (0..10_000u64).map(|i| io.run(ops::Nop::new().build().user_data(i), RawCqe)),
        ));
        assert!(
            nops.iter()
                .enumerate()
                .all(|(i, c)| c.user_data() == i as u64 && c.result() == 0)
        );
        let sleeps = io.block_on(join_all(
            (0..10_000).map(|i| io.sleep(Duration::from_micros(i % 100))),
        ));
        assert!(sleeps.iter().all(Result::is_ok), "{mode:?}");
        // 100 reads in flight on each of 100 sockets, then all dropped.
        let drops = Arc::new(AtomicUsize::new(0));
        let pairs: Vec<_> = (0..100).map(|_| pair(&io)).collect();
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let mut reads: Vec<_> = pairs
            .iter()
            .flat_map(|(_, b)| (0..100).map(|_| b.read(Tracked::new(8, &drops))))
            .collect();
        for r in &mut reads {
            assert!(poll_once(r, &flag).is_pending());
        }
        drop(reads);
        turn_until(&ring, || drops.load(Ordering::SeqCst) == 10_000);
        for (a, b) in &pairs {
            still_works(&io, a, b);
            // The table had room for every socket.
            assert_eq!(b.fixed_file().is_some(), files > 0, "{mode:?}");
        }
        assert_eq!(
            drops.load(Ordering::SeqCst),
            10_000,
            "{mode:?}, {files} slots: each freed once"
        );
    }
}
