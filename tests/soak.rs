//! The soak: many TCP connections (loopback, port 0) echoing through a
//! kqring ring for a while, one ring per driving mode side by side, with
//! random cancels, linked timeouts and plain timeouts mixed in.
//!
//! Checked all along: every byte a client sends comes back to it, in
//! order; every `user_data` gets exactly one terminal completion (a
//! completion with `F_MORE` only for the multishot accept, which ends
//! with one without it); nothing is in flight at the end. And the
//! resident set at the end of the load is within [`RSS_GROWTH`] of what it
//! was after the warm-up (the first fifth of the run).
//!
//! How long: `KQRING_SOAK_SECS` seconds; without it, 60 under `CI=true`
//! and 5 otherwise. It prints one summary line. Every wait is bounded by
//! [`PATIENCE`]: a lost completion fails the run, it cannot hang it.
//!
//! ```sh
//! KQRING_SOAK_SECS=600 cargo test --release --test soak -- --nocapture
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kqring::ops::{Accept, AsyncCancel, Close, LinkTimeout, Recv, Send, Timeout, TimeoutRemove};
use kqring::{Cqe, Mode, Ring, Sqe, SqeFlags};

/// No completion may take longer than this.
const PATIENCE: Duration = Duration::from_secs(10);
/// Connections open at a time, per ring.
const CONNECTIONS: usize = 48;
/// How much the resident set may grow from the warm-up to the end.
const RSS_GROWTH: u64 = 16 << 20;
/// The largest message.
const MAX_MESSAGE: usize = 8192;

/// A small deterministic generator (xorshift), seeded per ring.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

/// What a `user_data` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Accept,
    ClientSend(usize),
    ClientRecv(usize),
    ServerRecv(usize),
    ServerSend(usize),
    ServerClose(usize),
    LinkTimeout,
    Cancel,
    Timeout,
    TimeoutRemove,
}

/// One connection: the client end (a plain socket driven through the
/// ring) and the server end (accepted by the ring).
struct Conn {
    client: Option<TcpStream>,
    server: Option<RawFd>,
    /// The message being echoed, what of it is still to be sent, and what
    /// has come back.
    message: Bytes,
    unsent: Bytes,
    echoed: BytesMut,
    /// Messages still to exchange before the client hangs up.
    left: u32,
    /// Bytes the server received and has not sent back yet.
    to_echo: VecDeque<Bytes>,
    /// In flight: the client's receive, the server's receive and send.
    client_recv: Option<u64>,
    server_recv: bool,
    server_send: bool,
    client_send: bool,
    closing: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    connections: u64,
    messages: u64,
    bytes: u64,
    cancels: u64,
    cancelled: u64,
    link_timeouts: u64,
    link_timeouts_fired: u64,
    timeouts: u64,
    completions: u64,
}

struct Soak {
    ring: Ring,
    rng: Rng,
    listener: TcpListener,
    addr: SocketAddr,
    next_ud: u64,
    in_flight: HashMap<u64, Kind>,
    conns: Vec<Option<Conn>>,
    /// Clients connected and not yet matched with their accepted end, by
    /// the client's local address.
    unmatched: HashMap<SocketAddr, usize>,
    accept_ud: Option<u64>,
    stopping: bool,
    totals: Totals,
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm's resident field");
    // SAFETY: sysconf takes no pointer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page as u64
}

fn soak_duration() -> Duration {
    let secs = match std::env::var("KQRING_SOAK_SECS") {
        Ok(v) => v.parse().expect("KQRING_SOAK_SECS: a number of seconds"),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => 60,
        Err(_) => 5,
    };
    Duration::from_secs(secs)
}

impl Soak {
    fn new(mode: Mode, seed: u64) -> Soak {
        let ring = Ring::builder()
            .mode(mode)
            .sq_entries(256)
            .cq_entries(4096)
            .build()
            .expect("ring");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen on port 0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        Soak {
            ring,
            rng: Rng(seed),
            listener,
            addr,
            next_ud: 1,
            in_flight: HashMap::new(),
            conns: (0..CONNECTIONS).map(|_| None).collect(),
            unmatched: HashMap::new(),
            accept_ud: None,
            stopping: false,
            totals: Totals::default(),
        }
    }

    fn ud(&mut self, kind: Kind) -> u64 {
        let ud = self.next_ud;
        self.next_ud += 1;
        let before = self.in_flight.insert(ud, kind);
        assert!(before.is_none(), "user_data {ud} reused");
        ud
    }

    fn push(&mut self, sqe: Sqe) {
        let sq = self.ring.submission();
        let mut sqe = sqe;
        let deadline = Instant::now() + PATIENCE;
        loop {
            match sq.push(sqe) {
                Ok(()) => return,
                Err(back) => {
                    // Full: hand what is there to the ring, then retry.
                    sq.submit().expect("submit");
                    assert!(Instant::now() < deadline, "the submission queue stays full");
                    sqe = back.into_inner();
                    std::thread::yield_now();
                }
            }
        }
    }

    fn submit(&self) {
        self.ring.submission().submit().expect("submit");
    }

    fn message(&mut self) -> Bytes {
        let len = 1 + self.rng.below(MAX_MESSAGE as u64) as usize;
        let seed = self.rng.next();
        (0..len)
            .map(|i| (seed.wrapping_add(i as u64 * 31) >> 3) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// Opens connection `i`: connects a client, which the multishot
    /// accept then brings in.
    fn open(&mut self, i: usize) {
        let client = TcpStream::connect(self.addr).expect("connect to the listener");
        client.set_nonblocking(true).unwrap();
        client.set_nodelay(true).unwrap();
        let local = client.local_addr().unwrap();
        self.unmatched.insert(local, i);
        let left = 1 + self.rng.below(40) as u32;
        self.conns[i] = Some(Conn {
            client: Some(client),
            server: None,
            message: Bytes::new(),
            unsent: Bytes::new(),
            echoed: BytesMut::new(),
            left,
            to_echo: VecDeque::new(),
            client_recv: None,
            server_recv: false,
            server_send: false,
            client_send: false,
            closing: false,
        });
        self.totals.connections += 1;
        self.next_message(i);
    }

    fn conn(&mut self, i: usize) -> &mut Conn {
        self.conns[i].as_mut().expect("a live connection")
    }

    /// Starts connection `i`'s next message, or hangs up its client.
    fn next_message(&mut self, i: usize) {
        if self.conn(i).left == 0 || self.stopping {
            self.conn(i).closing = true;
            return self.hang_up(i);
        }
        let m = self.message();
        let c = self.conn(i);
        c.left -= 1;
        c.message = m.clone();
        c.unsent = m;
        c.echoed.clear();
        self.client_send(i);
        self.client_recv(i);
    }

    /// Closes a closing connection's client once none of its entries is
    /// in flight: the server's receive then sees the end of the stream.
    fn hang_up(&mut self, i: usize) {
        let c = self.conn(i);
        if c.closing && !c.client_send && c.client_recv.is_none() {
            c.client = None;
        }
    }

    fn client_fd(&mut self, i: usize) -> RawFd {
        self.conn(i)
            .client
            .as_ref()
            .expect("the client is open")
            .as_raw_fd()
    }

    fn client_send(&mut self, i: usize) {
        let fd = self.client_fd(i);
        let data = self.conn(i).unsent.clone();
        self.conn(i).client_send = true;
        let ud = self.ud(Kind::ClientSend(i));
        self.push(Send::new(fd, data).build().user_data(ud));
    }

    fn client_recv(&mut self, i: usize) {
        let fd = self.client_fd(i);
        let ud = self.ud(Kind::ClientRecv(i));
        self.conn(i).client_recv = Some(ud);
        self.push(
            Recv::new(fd, BytesMut::with_capacity(MAX_MESSAGE))
                .build()
                .user_data(ud),
        );
        if self.rng.one_in(8) {
            // A cancel that may find it waiting, or done.
            let cancel = self.ud(Kind::Cancel);
            self.totals.cancels += 1;
            self.push(AsyncCancel::new(ud).build().user_data(cancel));
        }
    }

    fn server_recv(&mut self, i: usize) {
        let Some(fd) = self.conn(i).server else {
            return;
        };
        self.conn(i).server_recv = true;
        let ud = self.ud(Kind::ServerRecv(i));
        let recv = Recv::new(fd, BytesMut::with_capacity(MAX_MESSAGE))
            .build()
            .user_data(ud);
        if self.rng.one_in(6) {
            // Bounded by a short linked timeout: it fires, or the data
            // comes first; a cancelled receive takes no bytes.
            let lt = self.ud(Kind::LinkTimeout);
            self.totals.link_timeouts += 1;
            let ms = 1 + self.rng.below(5);
            self.push(recv.flags(SqeFlags::IO_LINK));
            self.push(
                LinkTimeout::new(Duration::from_millis(ms))
                    .build()
                    .user_data(lt),
            );
        } else {
            self.push(recv);
        }
    }

    fn server_send(&mut self, i: usize) {
        let c = self.conn(i);
        if c.server_send {
            return;
        }
        let (Some(fd), Some(data)) = (c.server, c.to_echo.pop_front()) else {
            return;
        };
        c.server_send = true;
        c.to_echo.push_front(data.clone());
        let ud = self.ud(Kind::ServerSend(i));
        self.push(Send::new(fd, data).build().user_data(ud));
    }

    fn timer(&mut self) {
        let ud = self.ud(Kind::Timeout);
        self.totals.timeouts += 1;
        if self.rng.one_in(2) {
            let ms = 1 + self.rng.below(3);
            self.push(
                Timeout::new(Duration::from_millis(ms))
                    .build()
                    .user_data(ud),
            );
        } else {
            // A long one, removed at once.
            self.push(Timeout::new(Duration::from_secs(60)).build().user_data(ud));
            let rm = self.ud(Kind::TimeoutRemove);
            self.push(TimeoutRemove::new(ud).build().user_data(rm));
        }
    }

    fn start_accept(&mut self) {
        let ud = self.ud(Kind::Accept);
        self.accept_ud = Some(ud);
        self.push(
            Accept::new(self.listener.as_raw_fd())
                .multishot(true)
                .build()
                .user_data(ud),
        );
    }

    fn accepted(&mut self, fd: RawFd) {
        // SAFETY: getpeername with a buffer of its size.
        let peer = unsafe {
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let r = libc::getpeername(fd, (&raw mut addr).cast(), &mut len);
            assert_eq!(r, 0, "getpeername: {}", std::io::Error::last_os_error());
            SocketAddr::from((
                Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                u16::from_be(addr.sin_port),
            ))
        };
        let i = self
            .unmatched
            .remove(&peer)
            .unwrap_or_else(|| panic!("accepted {peer}, which no client is"));
        self.conn(i).server = Some(fd);
        self.server_recv(i);
    }

    fn complete(&mut self, mut cqe: Cqe) {
        self.totals.completions += 1;
        let ud = cqe.user_data();
        let res = cqe.result();
        let kind = if cqe.is_more() {
            let kind = *self
                .in_flight
                .get(&ud)
                .unwrap_or_else(|| panic!("F_MORE for {ud}, not in flight: {cqe:?}"));
            assert_eq!(kind, Kind::Accept, "F_MORE on a one-shot entry: {cqe:?}");
            kind
        } else {
            self.in_flight
                .remove(&ud)
                .unwrap_or_else(|| panic!("a second terminal completion for {ud}: {cqe:?}"))
        };
        match kind {
            Kind::Accept => {
                if res >= 0 {
                    self.accepted(res);
                }
                if !cqe.is_more() {
                    self.accept_ud = None;
                    if self.stopping {
                        assert!(res == -libc::ECANCELED || res >= 0, "accept ended: {cqe:?}");
                    } else {
                        // It may end (e.g. out of room); it comes back.
                        self.start_accept();
                    }
                }
            }
            Kind::ClientSend(i) => {
                assert!(res > 0, "client send: {cqe:?}");
                let c = self.conn(i);
                c.client_send = false;
                let _ = c.unsent.split_to(res as usize);
                if !c.unsent.is_empty() {
                    self.client_send(i);
                }
                self.hang_up(i);
            }
            Kind::ClientRecv(i) => {
                self.conn(i).client_recv = None;
                if res == -libc::ECANCELED {
                    self.totals.cancelled += 1;
                    return self.client_recv(i);
                }
                assert!(res > 0, "client receive: {cqe:?}");
                let buf: BytesMut = cqe.take_buf().expect("the receive's buffer");
                assert_eq!(buf.len(), res as usize);
                let c = self.conn(i);
                c.echoed.extend_from_slice(&buf);
                let n = c.echoed.len();
                assert!(n <= c.message.len(), "more came back than was sent");
                assert_eq!(&c.echoed[..], &c.message[..n], "the echo differs");
                if n < c.message.len() {
                    return self.client_recv(i);
                }
                let bytes = n as u64;
                self.totals.messages += 1;
                self.totals.bytes += bytes;
                self.next_message(i);
            }
            Kind::ServerRecv(i) => {
                self.conn(i).server_recv = false;
                match res {
                    0 => {
                        // The client hung up: close the server's end.
                        let fd = self.conn(i).server.take().expect("server end");
                        let ud = self.ud(Kind::ServerClose(i));
                        self.push(Close::new(fd).build().user_data(ud));
                    }
                    r if r > 0 => {
                        let buf: BytesMut = cqe.take_buf().expect("the receive's buffer");
                        assert_eq!(buf.len(), r as usize);
                        self.conn(i).to_echo.push_back(buf.freeze());
                        self.server_send(i);
                        self.server_recv(i);
                    }
                    r if r == -libc::ECANCELED => {
                        self.totals.link_timeouts_fired += 1;
                        self.server_recv(i);
                    }
                    _ => panic!("server receive: {cqe:?}"),
                }
            }
            Kind::ServerSend(i) => {
                assert!(res > 0, "server send: {cqe:?}");
                let c = self.conn(i);
                c.server_send = false;
                let front = c.to_echo.front_mut().expect("what was sent");
                let _ = front.split_to(res as usize);
                if front.is_empty() {
                    c.to_echo.pop_front();
                }
                self.server_send(i);
            }
            Kind::ServerClose(i) => {
                assert_eq!(res, 0, "close: {cqe:?}");
                let c = self.conns[i].take().expect("the connection");
                assert!(c.closing && c.client.is_none() && c.to_echo.is_empty());
                if !self.stopping {
                    self.open(i);
                }
            }
            Kind::LinkTimeout => {
                assert!(
                    res == -kqring::sys::ETIME || res == -libc::ECANCELED,
                    "link timeout: {cqe:?}"
                );
            }
            Kind::Cancel => {
                assert!(
                    [0, -libc::ENOENT, -libc::EALREADY].contains(&res),
                    "cancel: {cqe:?}"
                );
            }
            Kind::Timeout => {
                assert!(
                    res == -kqring::sys::ETIME || res == -libc::ECANCELED,
                    "timeout: {cqe:?}"
                );
            }
            Kind::TimeoutRemove => assert!(res == 0 || res == -libc::ENOENT, "{cqe:?}"),
        }
    }

    /// Waits for the next completion (bounded) and takes every one there.
    fn turn(&mut self) {
        self.submit();
        let first = self
            .ring
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .unwrap_or_else(|| {
                panic!(
                    "no completion in {PATIENCE:?}; in flight: {:?}",
                    self.in_flight
                )
            });
        self.complete(first);
        while let Some(cqe) = self.ring.completion().pop() {
            self.complete(cqe);
        }
    }

    fn run(mut self, duration: Duration, warm: mpsc::Sender<()>) -> Totals {
        self.start_accept();
        for i in 0..CONNECTIONS {
            self.open(i);
        }
        let started = Instant::now();
        let mut warmed = false;
        while started.elapsed() < duration {
            if !warmed && started.elapsed() >= duration / 5 {
                warmed = true;
                warm.send(()).unwrap();
            }
            if self.rng.one_in(4) {
                self.timer();
            }
            self.turn();
        }
        if !warmed {
            warm.send(()).unwrap();
        }
        // The load is over: the resident set is measured now.
        warm.send(()).unwrap();
        // Every connection finishes its message and hangs up; then the
        // multishot accept is cancelled and everything must end.
        self.stopping = true;
        let deadline = Instant::now() + PATIENCE * 3;
        while self.conns.iter().any(Option::is_some) {
            assert!(Instant::now() < deadline, "connections do not end");
            self.turn();
        }
        if let Some(ud) = self.accept_ud {
            let cancel = self.ud(Kind::Cancel);
            self.push(AsyncCancel::new(ud).build().user_data(cancel));
        }
        while !self.in_flight.is_empty() {
            assert!(
                Instant::now() < deadline,
                "still in flight: {:?}",
                self.in_flight
            );
            self.turn();
        }
        assert!(self.unmatched.is_empty(), "clients never accepted");
        assert!(
            self.ring
                .completion()
                .wait_timeout(Duration::from_millis(20))
                .unwrap()
                .is_none(),
            "a completion after every entry has ended"
        );
        self.totals
    }
}

#[test]
fn echo_soak() {
    let duration = soak_duration();
    let (warm_tx, warm_rx) = mpsc::channel();
    let started = Instant::now();
    let threads: Vec<_> = [
        (Mode::PollingThread, 0x9e37_79b9_7f4a_7c15),
        (Mode::Inline, 0x2545_f491_4f6c_dd1d),
    ]
    .into_iter()
    .map(|(mode, seed)| {
        let warm = warm_tx.clone();
        std::thread::Builder::new()
            .name(format!("soak-{mode:?}"))
            .spawn(move || (mode, Soak::new(mode, seed).run(duration, warm)))
            .unwrap()
    })
    .collect();
    drop(warm_tx);
    for _ in 0..2 {
        warm_rx
            .recv_timeout(duration + PATIENCE)
            .expect("a ring never got past its warm-up");
    }
    let rss_warm = rss_bytes();
    for _ in 0..2 {
        warm_rx
            .recv_timeout(duration + PATIENCE)
            .expect("a ring never got to the end of its load");
    }
    let rss_end = rss_bytes();
    let mut total = Totals::default();
    for t in threads {
        let (mode, t) = t.join().expect("a soak thread failed");
        kqring_test_support::report(&format!("soak {mode:?}: {t:?}"));
        total.connections += t.connections;
        total.messages += t.messages;
        total.bytes += t.bytes;
        total.cancels += t.cancels;
        total.cancelled += t.cancelled;
        total.link_timeouts += t.link_timeouts;
        total.link_timeouts_fired += t.link_timeouts_fired;
        total.timeouts += t.timeouts;
        total.completions += t.completions;
    }
    let rss_after = rss_bytes();
    kqring_test_support::report(&format!(
        "soak: {} connections, {} messages, {} bytes echoed, {} cancels ({} cancelled), {} linked \
         timeouts ({} fired), {} timeouts, {} completions in {:.1} s (both modes); RSS {} KiB \
         after the warm-up, {} KiB at the end of the load ({} KiB once the rings are gone)",
        total.connections,
        total.messages,
        total.bytes,
        total.cancels,
        total.cancelled,
        total.link_timeouts,
        total.link_timeouts_fired,
        total.timeouts,
        total.completions,
        started.elapsed().as_secs_f64(),
        rss_warm >> 10,
        rss_end >> 10,
        rss_after >> 10,
    ));
    assert!(total.messages > 0 && total.connections > CONNECTIONS as u64);
    assert!(
        rss_end <= rss_warm + RSS_GROWTH,
        "the resident set grew from {rss_warm} to {rss_end} bytes"
    );
}
