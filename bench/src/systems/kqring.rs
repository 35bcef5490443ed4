//! kqring, with its polling thread or driven inline, at the library's
//! default settings (`sq_idle` 1 ms, 4 blocking workers) unless
//! `--sq-idle-us`/`--workers` say otherwise.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use kqring::ops::{
    Close, Fd, FileSlot, FilesUpdate, Nop, OpenAt, Read, Recv, Send, Shutdown as ShutdownOp, Statx,
    Timeout, Write,
};
use kqring::{Builder, Cqe, IoBuf, Mode, Ring, Sqe, SubmissionQueue};

use super::echo::{Next, Op, Progress, tag, untag};
use super::{BATCH, Outcome, Params, System, on_rings};
use crate::fixtures::{
    BLOCK, COPY_DEPTH, CopyFiles, Messages, PipePartner, Rng, TcpPair, TestFile, tcp_pairs,
    timer_durations,
};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Result, ensure};

/// kqring in one driving mode.
#[derive(Debug, Clone, Copy)]
pub struct Kqring {
    mode: Mode,
    tuning: Tuning,
}

/// Builder settings that override the library's defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tuning {
    /// The polling thread's spin time before it parks.
    pub sq_idle: Option<Duration>,
    /// Threads in the blocking pool.
    pub workers: Option<usize>,
}

impl Kqring {
    /// kqring driven by `mode`, with the library's defaults.
    pub fn new(mode: Mode) -> Kqring {
        Kqring::tuned(mode, Tuning::default())
    }

    /// kqring driven by `mode`, with `tuning` over the defaults.
    pub fn tuned(mode: Mode, tuning: Tuning) -> Kqring {
        Kqring { mode, tuning }
    }

    /// The column name of a mode.
    pub fn column(mode: Mode) -> &'static str {
        match mode {
            Mode::Inline => "kqring-inline",
            _ => "kqring-poller",
        }
    }

    fn builder(&self) -> Builder {
        let mut b = Ring::builder().mode(self.mode);
        if let Some(idle) = self.tuning.sq_idle {
            b = b.sq_idle(idle);
        }
        if let Some(n) = self.tuning.workers {
            b = b.workers(n);
        }
        b
    }

    fn ring(&self, sq_entries: usize) -> io::Result<Ring> {
        self.builder().sq_entries(sq_entries).build()
    }

    /// TCP echo on one ring over `pairs`, counted in `window`.
    fn echo(&self, p: &Params, pairs: Vec<TcpPair>, window: Window) -> Result<Recorder> {
        for pair in &pairs {
            pair.client.set_nonblocking(true)?;
            pair.server.set_nonblocking(true)?;
        }
        // At most three ops per connection are in flight (client send and
        // receive, one server op), so neither queue can fill.
        let mut builder = self.builder().sq_entries(4 * pairs.len() + 16);
        if p.registered_files {
            builder = builder.files(2 * pairs.len() as u32);
        }
        let ring = builder.build()?;
        Echo::new(&ring, pairs, p, window).run()
    }

    /// NOPs in batches of [`BATCH`] (also the span-cost measurement).
    pub fn run_nop_batched(&self, duration: Duration) -> Result<Measurement> {
        let ring = self.ring(2 * BATCH as usize)?;
        let (sq, cq) = (ring.submission(), ring.completion());
        let mut rec = Recorder::counting(Window::new(duration));
        let mut start = Instant::now();
        loop {
            for i in 0..BATCH {
                push(sq, Nop::new().build().user_data(i))?;
            }
            sq.submit_and_wait(BATCH as usize)?;
            let mut n = 0;
            for cqe in cq.drain() {
                ensure!(
                    cqe.result() == 0 && cqe.user_data() < BATCH,
                    "NOP completed with {cqe:?}"
                );
                n += 1;
            }
            ensure!(n == BATCH, "{n} NOP completions for a batch of {BATCH}");
            let now = Instant::now();
            if !rec.record(BATCH, start, now) {
                return Ok(rec.finish());
            }
            start = now;
        }
    }
}

/// Queues `sqe` in a queue sized so that it cannot be full.
/// The open + statx + close workload's `user_data`: the kind in the top
/// byte, the file in the rest.
const META_KIND: u64 = 0xff << 56;
const META_OPEN: u64 = 1 << 56;
const META_STAT: u64 = 2 << 56;
const META_CLOSE: u64 = 3 << 56;

fn push(sq: &SubmissionQueue, sqe: Sqe) -> Result<()> {
    sq.push(sqe)
        .map_err(|sqe| format!("submission queue full at {sqe:?}").into())
}

/// `submit`, where `EBUSY` (completions held back in the overflow list)
/// only means "reap first".
fn submit_or_busy(sq: &SubmissionQueue) -> io::Result<()> {
    match sq.submit() {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
        r => r,
    }
}

/// The result of a read or write: bytes moved, or the error.
fn io_res(cqe: &Cqe, what: &str) -> Result<usize> {
    ensure!(
        cqe.result() >= 0,
        "{what} failed: {}",
        io::Error::from_raw_os_error(-cqe.result())
    );
    Ok(cqe.result() as usize)
}

/// The buffer a read or a `BytesMut` write hands back.
fn take_mut(cqe: &mut Cqe) -> Result<BytesMut> {
    cqe.take_buf::<BytesMut>()
        .ok()
        .ok_or_else(|| "completion without its buffer".into())
}

// The two ops TCP echo uses on a socket: each tries `recv`/`send` with
// MSG_DONTWAIT first and waits for readiness only on EAGAIN.

/// Receives into `buf`'s spare capacity.
fn recv(fd: Fd, buf: BytesMut) -> Sqe {
    Recv::new(fd, buf).build()
}

/// Sends `buf`.
fn send(fd: Fd, buf: impl IoBuf) -> Sqe {
    Send::new(fd, buf).build()
}

impl System for Kqring {
    fn name(&self) -> &'static str {
        Kqring::column(self.mode)
    }

    fn nop_batched(&mut self, p: &Params) -> Outcome {
        Some(self.run_nop_batched(p.duration))
    }

    fn nop_rtt(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let ring = self.ring(8)?;
            let (sq, cq) = (ring.submission(), ring.completion());
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut start = Instant::now();
            for i in 0.. {
                push(sq, Nop::new().build().user_data(i))?;
                sq.submit_and_wait(1)?;
                let cqe = cq.pop().ok_or("no completion after submit_and_wait(1)")?;
                ensure!(
                    cqe.result() == 0 && cqe.user_data() == i,
                    "NOP {i} completed with {cqe:?}"
                );
                let now = Instant::now();
                if !rec.record(1, start, now) {
                    break;
                }
                start = now;
            }
            Ok(rec.finish())
        })())
    }

    fn pipe(&mut self, p: &Params) -> Outcome {
        Some((|| {
            // kqring polls pipes that are non-blocking and sends blocking
            // ones to its pool, so the workload's ends are non-blocking.
            let pipes = PipePartner::spawn(true)?;
            let r = pipe_ping_pong(self, p, pipes.ping.as_raw_fd(), pipes.pong.as_raw_fd());
            pipes.finish();
            r
        })())
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        Some((|| {
            let pairs = tcp_pairs(conns)?;
            self.echo(p, pairs, Window::new(p.duration))
                .map(Recorder::finish)
        })())
    }

    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, rings: usize) -> Outcome {
        let this = *self;
        Some(
            tcp_pairs(conns)
                .map_err(Into::into)
                .and_then(|pairs| on_rings(p, pairs, rings, |share, w| this.echo(p, share, w))),
        )
    }

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        Some((|| {
            let qd = p.queue_depth;
            let ring = self.ring(2 * qd)?;
            let (sq, cq) = (ring.submission(), ring.completion());
            let fd = file.file().as_raw_fd();
            let mut rng = Rng::new(1);
            let mut rec = Recorder::counting(Window::new(p.duration));
            // Per slot: the block it reads and when the read was queued.
            let mut slots = vec![(0u64, Instant::now()); qd];
            let issue =
                |slot: usize, buf: BytesMut, rng: &mut Rng, slots: &mut [(u64, Instant)]| {
                    let block = rng.below(file.blocks());
                    slots[slot] = (block, Instant::now());
                    let mut sqe = Read::new(fd, buf).offset(block * BLOCK as u64).build();
                    if p.file_async {
                        sqe = sqe.flags(kqring::SqeFlags::ASYNC);
                    }
                    push(sq, sqe.user_data(slot as u64))
                };
            for slot in 0..qd {
                issue(slot, BytesMut::with_capacity(BLOCK), &mut rng, &mut slots)?;
            }
            let mut in_flight = qd;
            let mut going = true;
            while in_flight > 0 {
                sq.submit_and_wait(1)?;
                for mut cqe in cq.drain() {
                    let slot = cqe.user_data() as usize;
                    let (block, start) = slots[slot];
                    let mut buf = take_mut(&mut cqe)?;
                    file.check(block, cqe.result().into(), &buf)?;
                    going &= rec.record(1, start, Instant::now());
                    if going {
                        buf.clear();
                        issue(slot, buf, &mut rng, &mut slots)?;
                    } else {
                        in_flight -= 1;
                    }
                }
            }
            Ok(rec.finish())
        })())
    }

    fn copy(&mut self, p: &Params, files: &CopyFiles) -> Outcome {
        Some((|| {
            let ring = self.ring(2 * COPY_DEPTH)?;
            let (sq, cq) = (ring.submission(), ring.completion());
            let (src, dst) = (files.source().as_raw_fd(), files.destination().as_raw_fd());
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut plan = files.plan(&rec.window());
            // Per slot: its chunk (offset, length) and when its read was
            // queued. A slot's user_data says read (even) or write (odd).
            let mut slots = vec![(0u64, 0usize, Instant::now()); COPY_DEPTH];
            let read = |slot: usize, off: u64, buf: BytesMut| {
                Read::new(src, buf)
                    .offset(off)
                    .build()
                    .user_data(2 * slot as u64)
            };
            let mut in_flight = 0;
            for (slot, s) in slots.iter_mut().enumerate() {
                let Some((off, len)) = plan.next_chunk(Instant::now()) else {
                    break;
                };
                *s = (off, len, Instant::now());
                push(sq, read(slot, off, BytesMut::with_capacity(len)))?;
                in_flight += 1;
            }
            while in_flight > 0 {
                sq.submit_and_wait(1)?;
                for mut cqe in cq.drain() {
                    let slot = (cqe.user_data() / 2) as usize;
                    let (off, len, start) = slots[slot];
                    let res = cqe.result();
                    ensure!(
                        res == len as i32,
                        "{} of {len} bytes at {off} gave {res}",
                        if cqe.user_data() % 2 == 0 {
                            "read"
                        } else {
                            "write"
                        }
                    );
                    let mut buf = take_mut(&mut cqe)?;
                    if cqe.user_data() % 2 == 0 {
                        let write = Write::new(dst, buf).offset(off).build();
                        push(sq, write.user_data(2 * slot as u64 + 1))?;
                        continue;
                    }
                    let now = Instant::now();
                    rec.record(1, start, now);
                    match plan.next_chunk(now) {
                        Some((off, len)) => {
                            slots[slot] = (off, len, now);
                            buf.clear();
                            buf.reserve(len);
                            push(sq, read(slot, off, buf))?;
                        }
                        None => in_flight -= 1,
                    }
                }
            }
            Ok(rec.finish())
        })())
    }

    fn fs_meta(&mut self, p: &Params, files: &[std::ffi::CString]) -> Outcome {
        use std::os::unix::ffi::OsStrExt;
        Some((|| {
            let n = files.len();
            let ring = self.ring(4 * n)?;
            let (sq, cq) = (ring.submission(), ring.completion());
            let paths: Vec<std::path::PathBuf> = files
                .iter()
                .map(|c| std::ffi::OsStr::from_bytes(c.as_bytes()).into())
                .collect();
            let mut rec = Recorder::counting(Window::new(p.duration));
            // Per file: when its round began, and its statx and close still
            // to complete.
            let mut rounds = vec![(Instant::now(), 0u8); n];
            let open = |i: usize| {
                OpenAt::new(paths[i].clone(), libc::O_RDONLY | libc::O_CLOEXEC)
                    .build()
                    .user_data(META_OPEN | i as u64)
            };
            for i in 0..n {
                push(sq, open(i))?;
            }
            let (mut in_flight, mut going) = (n, true);
            while in_flight > 0 {
                sq.submit_and_wait(1)?;
                for cqe in cq.drain() {
                    let i = (cqe.user_data() & !META_KIND) as usize;
                    let res = cqe.result();
                    ensure!(res >= 0, "{:#x} completed with {res}", cqe.user_data());
                    if cqe.user_data() & META_KIND == META_OPEN {
                        let stat = Statx::new(paths[i].clone()).build();
                        push(sq, stat.user_data(META_STAT | i as u64))?;
                        push(sq, Close::new(res).build().user_data(META_CLOSE | i as u64))?;
                        rounds[i].1 = 2;
                        continue;
                    }
                    ensure!(
                        cqe.user_data() & META_KIND != META_STAT || cqe.statx().is_some(),
                        "a statx with no status"
                    );
                    rounds[i].1 -= 1;
                    if rounds[i].1 > 0 {
                        continue;
                    }
                    going &= rec.record(1, rounds[i].0, Instant::now());
                    if going {
                        rounds[i].0 = Instant::now();
                        push(sq, open(i))?;
                    } else {
                        in_flight -= 1;
                    }
                }
            }
            Ok(rec.finish())
        })())
    }

    fn timeouts(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let durations = timer_durations(p.timers);
            let ring = self.builder().sq_entries(4096).cq_entries(16384).build()?;
            let (sq, cq) = (ring.submission(), ring.completion());
            let mut due = Vec::with_capacity(durations.len());
            let mut lateness = Vec::with_capacity(durations.len());
            let reap = |due: &[Instant], lateness: &mut Vec<u64>| -> Result<()> {
                for cqe in cq.drain() {
                    ensure!(
                        cqe.result() == -kqring::sys::ETIME,
                        "timer {} completed with {}, want -ETIME",
                        cqe.user_data(),
                        cqe.result()
                    );
                    lateness.push(lateness_ns(due[cqe.user_data() as usize], Instant::now())?);
                }
                Ok(())
            };
            let t0 = Instant::now();
            for (i, &d) in durations.iter().enumerate() {
                due.push(Instant::now() + d);
                let mut sqe = Timeout::new(d).build().user_data(i as u64);
                while let Err(back) = sq.push(sqe) {
                    sqe = back.into_inner();
                    submit_or_busy(sq)?;
                    reap(&due, &mut lateness)?;
                    std::thread::yield_now();
                }
            }
            while lateness.len() < durations.len() {
                match sq.submit_and_wait(1) {
                    Err(e) if e.raw_os_error() != Some(libc::EBUSY) => return Err(e.into()),
                    _ => reap(&due, &mut lateness)?,
                }
            }
            Ok(Measurement {
                ops: durations.len() as u64,
                elapsed: t0.elapsed(),
                latency: Some(Samples::new(lateness)),
                cpu: None,
            })
        })())
    }
}

fn pipe_ping_pong(kq: &Kqring, p: &Params, ping: RawFd, pong: RawFd) -> Result<Measurement> {
    const WRITE: u64 = 0;
    const READ: u64 = 1;
    let ring = kq.ring(16)?;
    let (sq, cq) = (ring.submission(), ring.completion());
    let msgs = Messages::new(p.msg_size);
    let size = msgs.size();
    let mut rec = Recorder::sampling(Window::new(p.duration));
    let mut rbuf = Some(BytesMut::with_capacity(size));
    for round in 0.. {
        let start = Instant::now();
        let msg = msgs.get(round).clone();
        push(sq, Write::new(ping, msg.clone()).build().user_data(WRITE))?;
        let mut buf = rbuf.take().ok_or("read buffer lost")?;
        buf.clear();
        push(sq, Read::new(pong, buf).build().user_data(READ))?;
        let mut written = 0;
        while written < size || rbuf.is_none() {
            sq.submit_and_wait(1)?;
            for mut cqe in cq.drain() {
                if cqe.user_data() == WRITE {
                    written += io_res(&cqe, "pipe write")?;
                    if written < size {
                        push(
                            sq,
                            Write::new(ping, msg.slice(written..))
                                .build()
                                .user_data(WRITE),
                        )?;
                    }
                } else {
                    ensure!(io_res(&cqe, "pipe read")? > 0, "pipe closed by the partner");
                    let buf = take_mut(&mut cqe)?;
                    if buf.len() < size {
                        push(sq, Read::new(pong, buf).build().user_data(READ))?;
                    } else {
                        msgs.check(round, &buf)?;
                        rbuf = Some(buf);
                    }
                }
            }
        }
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    Ok(rec.finish())
}

/// The `user_data` of the client ends' final shutdown on registered files
/// (the connection in the low bits).
const SHUTDOWN: u64 = 1 << 63;

/// One connection of TCP echo, both ends.
struct Conn {
    /// The std sockets; closed once both ends are registered files (the
    /// ring holds its own duplicates), as a server that accepted into its
    /// file table holds no other descriptor.
    pair: Option<TcpPair>,
    progress: Progress,
    /// The client's receive buffer, while no receive holds it.
    rbuf: Option<BytesMut>,
}

/// TCP echo on one ring: every connection's client and server ends are ops
/// on it, so the one thread that reaps also runs both sides' logic.
struct Echo<'r> {
    sq: &'r SubmissionQueue,
    ring: &'r Ring,
    conns: Vec<Conn>,
    msgs: Messages,
    rec: Recorder,
    in_flight: usize,
    /// Connection `c`'s client end is slot `2c` of the ring's file table
    /// and its server end slot `2c + 1`.
    registered: bool,
}

impl<'r> Echo<'r> {
    fn new(ring: &'r Ring, pairs: Vec<TcpPair>, p: &Params, window: Window) -> Echo<'r> {
        let size = p.msg_size;
        Echo {
            sq: ring.submission(),
            ring,
            conns: pairs
                .into_iter()
                .map(|pair| Conn {
                    pair: Some(pair),
                    progress: Progress::default(),
                    rbuf: Some(BytesMut::with_capacity(size)),
                })
                .collect(),
            msgs: Messages::new(size),
            rec: Recorder::sampling(window),
            in_flight: 0,
            registered: p.registered_files,
        }
    }

    fn push(&mut self, sqe: Sqe) -> Result<()> {
        push(self.sq, sqe)?;
        self.in_flight += 1;
        Ok(())
    }

    fn client_fd(&self, c: usize) -> Fd {
        match &self.conns[c].pair {
            Some(pair) if !self.registered => Fd::Raw(pair.client.as_raw_fd()),
            _ => Fd::Fixed(2 * c as u32),
        }
    }

    fn server_fd(&self, c: usize) -> Fd {
        match &self.conns[c].pair {
            Some(pair) if !self.registered => Fd::Raw(pair.server.as_raw_fd()),
            _ => Fd::Fixed(2 * c as u32 + 1),
        }
    }

    /// Puts both ends of every connection into the file table, then
    /// closes the std sockets: the ring's duplicates are the connections.
    /// A few connections at a time, so that the duplicates and the
    /// originals never need much more than one descriptor per end at once
    /// (10,000 connections fit a limit of 20,000).
    fn register(&mut self) -> Result<()> {
        const CHUNK: usize = 16;
        for first in (0..self.conns.len()).step_by(CHUNK) {
            let chunk = first..(first + CHUNK).min(self.conns.len());
            let fds: Vec<RawFd> = (self.conns[chunk.clone()].iter())
                .filter_map(|c| c.pair.as_ref())
                .flat_map(|p| [p.client.as_raw_fd(), p.server.as_raw_fd()])
                .collect();
            let want = fds.len() as i32;
            let slot = FileSlot::Index(2 * first as u32);
            push(self.sq, FilesUpdate::new(slot, fds).build())?;
            self.sq.submit_and_wait(1)?;
            let cqe = self
                .ring
                .completion()
                .pop()
                .ok_or("no completion for FilesUpdate")?;
            ensure!(
                cqe.result() == want,
                "FilesUpdate completed with {}",
                cqe.result()
            );
            for conn in &mut self.conns[chunk] {
                conn.pair = None;
            }
        }
        Ok(())
    }

    /// Sends this round's message and posts the receive for its echo.
    fn start_round(&mut self, c: usize) -> Result<()> {
        let fd = self.client_fd(c);
        let conn = &mut self.conns[c];
        conn.progress.begin_round();
        let msg = self.msgs.get(conn.progress.round).clone();
        let mut buf = conn.rbuf.take().ok_or("client buffer lost")?;
        buf.clear();
        self.push(send(fd, msg).user_data(tag(c, Op::ClientSend)))?;
        self.push(recv(fd, buf).user_data(tag(c, Op::ClientRecv)))
    }

    fn server_recv(&mut self, c: usize, mut buf: BytesMut) -> Result<()> {
        buf.clear();
        buf.reserve(self.msgs.server_buf());
        let fd = self.server_fd(c);
        self.push(recv(fd, buf).user_data(tag(c, Op::ServerRecv)))
    }

    fn round_done(&mut self, c: usize) -> Result<()> {
        if self.conns[c].progress.finish_round(&mut self.rec) {
            return self.start_round(c);
        }
        // The server's receive sees the end of the stream and stops.
        match &self.conns[c].pair {
            Some(pair) => pair.client.shutdown(Shutdown::Write)?,
            None => {
                let fd = self.client_fd(c);
                let sqe = ShutdownOp::new(fd, Shutdown::Write).build();
                self.push(sqe.user_data(SHUTDOWN | c as u64))?;
            }
        }
        Ok(())
    }

    /// Acts on what the client's progress says comes next.
    fn client_next(&mut self, c: usize, next: Next, buf: Option<BytesMut>) -> Result<()> {
        let fd = self.client_fd(c);
        match next {
            Next::Send(from) => {
                let rest = self.msgs.get(self.conns[c].progress.round).slice(from..);
                self.push(send(fd, rest).user_data(tag(c, Op::ClientSend)))
            }
            Next::Recv(_) => {
                let buf = buf.ok_or("client buffer lost")?;
                self.push(recv(fd, buf).user_data(tag(c, Op::ClientRecv)))
            }
            Next::Check => {
                let buf = buf.ok_or("client buffer lost")?;
                let size = self.msgs.size();
                let conn = &mut self.conns[c];
                self.msgs.check(conn.progress.round, &buf)?;
                conn.rbuf = Some(buf);
                let next = conn.progress.checked(size);
                self.client_next(c, next, None)
            }
            Next::RoundDone => self.round_done(c),
            Next::Wait => Ok(()),
        }
    }

    fn on_completion(&mut self, mut cqe: Cqe) -> Result<()> {
        self.in_flight -= 1;
        if cqe.user_data() & SHUTDOWN != 0 {
            ensure!(
                cqe.result() == 0,
                "client shutdown completed with {}",
                cqe.result()
            );
            return Ok(());
        }
        let (c, op) = untag(cqe.user_data());
        let size = self.msgs.size();
        match op {
            Op::ClientSend => {
                let n = io_res(&cqe, "client send")?;
                let next = self.conns[c].progress.sent(n, size);
                self.client_next(c, next, None)
            }
            Op::ClientRecv => {
                let n = io_res(&cqe, "client receive")?;
                let next = self.conns[c].progress.received(n, size, c)?;
                // The receive appends to the buffer: its length is the echo
                // so far, and the rest goes in after it.
                let buf = take_mut(&mut cqe)?;
                self.client_next(c, next, Some(buf))
            }
            Op::ServerRecv => {
                let n = io_res(&cqe, "server receive")?;
                let buf = take_mut(&mut cqe)?;
                if n == 0 {
                    self.conns[c].progress.server_done = true;
                    Ok(())
                } else {
                    let fd = self.server_fd(c);
                    self.push(send(fd, buf).user_data(tag(c, Op::ServerSend)))
                }
            }
            Op::ServerSend => {
                let n = io_res(&cqe, "server send")?;
                let mut buf = take_mut(&mut cqe)?;
                if n < buf.len() {
                    buf.advance(n);
                    let fd = self.server_fd(c);
                    self.push(send(fd, buf).user_data(tag(c, Op::ServerSend)))
                } else {
                    self.server_recv(c, buf)
                }
            }
        }
    }

    fn run(mut self) -> Result<Recorder> {
        if self.registered {
            self.register()?;
        }
        for c in 0..self.conns.len() {
            self.server_recv(c, BytesMut::new())?;
            self.start_round(c)?;
        }
        let cq = self.ring.completion();
        while self.in_flight > 0 || self.conns.iter().any(|c| !c.progress.done()) {
            ensure!(
                self.in_flight > 0,
                "TCP echo stalled with nothing in flight"
            );
            self.sq.submit_and_wait(1)?;
            while let Some(cqe) = cq.pop() {
                self.on_completion(cqe)?;
            }
        }
        Ok(self.rec)
    }
}
