//! Linux's own io_uring through the `io-uring` crate: no SQPOLL, one
//! `io_uring_enter` per `submit_and_wait`, buffers owned by the workload
//! and pinned (boxed) while the kernel holds them.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::{BATCH, Outcome, Params, System, on_rings};
use crate::fixtures::{
    BLOCK, Messages, PipePartner, Rng, TcpPair, TestFile, tcp_pairs, timer_durations,
};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Result, ensure};

/// The io_uring system (its rings are made per workload).
#[derive(Debug)]
pub struct IoUringSystem(());

impl IoUringSystem {
    /// Checks that the kernel lets this process make a ring.
    pub fn probe() -> std::result::Result<IoUringSystem, String> {
        IoUring::new(8)
            .map(|_| IoUringSystem(()))
            .map_err(|e| e.to_string())
    }
}

/// A ring and the completions taken from it.
struct Uring {
    ring: IoUring,
    reaped: Vec<(u64, i32)>,
}

impl Uring {
    fn new(entries: u32) -> io::Result<Uring> {
        Ok(Uring {
            ring: IoUring::new(entries.next_power_of_two())?,
            reaped: Vec::new(),
        })
    }

    /// Queues `e`, submitting first if the queue is full.
    ///
    /// # Safety
    /// Every buffer `e` points to must stay valid until its completion
    /// has been reaped.
    unsafe fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller's promise.
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    /// Submits and waits until `want` completions are ready, then takes
    /// every ready one into `reaped`.
    fn submit_and_reap(&mut self, want: usize) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(want) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            break;
        }
        self.reaped.clear();
        self.reaped.extend(
            self.ring
                .completion()
                .map(|c: cqueue::Entry| (c.user_data(), c.result())),
        );
        Ok(())
    }

    fn take(&mut self) -> Vec<(u64, i32)> {
        std::mem::take(&mut self.reaped)
    }
}

fn io_res(res: i32, what: &str) -> Result<usize> {
    ensure!(
        res >= 0,
        "{what} failed: {}",
        io::Error::from_raw_os_error(-res)
    );
    Ok(res as usize)
}

impl System for IoUringSystem {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn nop_batched(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let mut u = Uring::new(2 * BATCH as u32)?;
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut start = Instant::now();
            loop {
                for i in 0..BATCH {
                    // SAFETY: a NOP references no memory.
                    unsafe { u.push(&opcode::Nop::new().build().user_data(i))? };
                }
                u.submit_and_reap(BATCH as usize)?;
                let got = u.take();
                ensure!(
                    got.len() as u64 == BATCH,
                    "{} NOP completions for {BATCH}",
                    got.len()
                );
                ensure!(
                    got.iter().all(|&(_, res)| res == 0),
                    "a NOP failed: {got:?}"
                );
                let now = Instant::now();
                if !rec.record(BATCH, start, now) {
                    return Ok(rec.finish());
                }
                start = now;
            }
        })())
    }

    fn nop_rtt(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let mut u = Uring::new(8)?;
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut start = Instant::now();
            for i in 0.. {
                // SAFETY: a NOP references no memory.
                unsafe { u.push(&opcode::Nop::new().build().user_data(i))? };
                u.submit_and_reap(1)?;
                ensure!(u.reaped == [(i, 0)], "NOP {i} completed as {:?}", u.reaped);
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
            // io_uring answers EAGAIN on O_NONBLOCK pipes instead of
            // polling them, so it gets blocking ones.
            let pipes = PipePartner::spawn(false)?;
            let r = pipe_ping_pong(p, pipes.ping.as_raw_fd(), pipes.pong.as_raw_fd());
            pipes.finish();
            r
        })())
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        // Blocking sockets: io_uring polls them itself.
        Some(
            tcp_pairs(conns)
                .map_err(Into::into)
                .and_then(|pairs| echo(p, pairs, Window::new(p.duration)))
                .map(Recorder::finish),
        )
    }

    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, rings: usize) -> Outcome {
        Some(
            tcp_pairs(conns)
                .map_err(Into::into)
                .and_then(|pairs| on_rings(p, pairs, rings, |share, w| echo(p, share, w))),
        )
    }

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        Some((|| {
            let qd = p.queue_depth;
            let mut bufs: Vec<Box<[u8]>> = (0..qd)
                .map(|_| vec![0u8; BLOCK].into_boxed_slice())
                .collect();
            // After the buffers, so that it drops (and cancels) before them.
            let mut u = Uring::new(2 * qd as u32)?;
            let fd = types::Fd(file.file().as_raw_fd());
            let mut slots = vec![(0u64, Instant::now()); qd];
            let mut rng = Rng::new(1);
            let mut rec = Recorder::counting(Window::new(p.duration));
            let issue = |u: &mut Uring,
                         slot: usize,
                         bufs: &mut [Box<[u8]>],
                         rng: &mut Rng,
                         slots: &mut [(u64, Instant)]| {
                let block = rng.below(file.blocks());
                slots[slot] = (block, Instant::now());
                let e = opcode::Read::new(fd, bufs[slot].as_mut_ptr(), BLOCK as u32)
                    .offset(block * BLOCK as u64)
                    .build()
                    .user_data(slot as u64);
                // SAFETY: `bufs` outlives the loop below, which reaps every
                // read before returning.
                unsafe { u.push(&e) }
            };
            for slot in 0..qd {
                issue(&mut u, slot, &mut bufs, &mut rng, &mut slots)?;
            }
            let mut in_flight = qd;
            let mut going = true;
            while in_flight > 0 {
                u.submit_and_reap(1)?;
                for (ud, res) in u.take() {
                    let slot = ud as usize;
                    let (block, start) = slots[slot];
                    file.check(block, res.into(), &bufs[slot])?;
                    going &= rec.record(1, start, Instant::now());
                    if going {
                        issue(&mut u, slot, &mut bufs, &mut rng, &mut slots)?;
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
            let mut ring: IoUring = IoUring::builder().setup_cqsize(16384).build(4096)?;
            // The kernel copies a timespec when it takes the entry; these
            // outlive every submit anyway.
            let specs: Vec<types::Timespec> = durations
                .iter()
                .map(|d| {
                    types::Timespec::new()
                        .sec(d.as_secs())
                        .nsec(d.subsec_nanos())
                })
                .collect();
            let mut due = Vec::with_capacity(durations.len());
            let mut lateness = Vec::with_capacity(durations.len());
            let reap =
                |ring: &mut IoUring, due: &[Instant], lateness: &mut Vec<u64>| -> Result<()> {
                    for c in ring.completion() {
                        ensure!(
                            c.result() == -libc::ETIME,
                            "timer {} completed with {}, want -ETIME",
                            c.user_data(),
                            c.result()
                        );
                        lateness.push(lateness_ns(due[c.user_data() as usize], Instant::now())?);
                    }
                    Ok(())
                };
            let t0 = Instant::now();
            for (i, (d, spec)) in durations.iter().zip(&specs).enumerate() {
                due.push(Instant::now() + *d);
                let e = opcode::Timeout::new(spec).build().user_data(i as u64);
                // SAFETY: `specs` outlives the ring's use of it (see above).
                while unsafe { ring.submission().push(&e) }.is_err() {
                    ring.submit()?;
                    reap(&mut ring, &due, &mut lateness)?;
                }
            }
            while lateness.len() < durations.len() {
                match ring.submit_and_wait(1) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e.into()),
                    _ => reap(&mut ring, &due, &mut lateness)?,
                }
            }
            Ok(Measurement {
                ops: durations.len() as u64,
                elapsed: t0.elapsed(),
                latency: Some(Samples::new(lateness)),
            })
        })())
    }
}

fn pipe_ping_pong(p: &Params, ping: RawFd, pong: RawFd) -> Result<Measurement> {
    const WRITE: u64 = 0;
    const READ: u64 = 1;
    let msgs = Messages::new(p.msg_size);
    let size = msgs.size();
    let mut rbuf = vec![0u8; size].into_boxed_slice();
    // After the buffers, so that it drops (and cancels) before them.
    let mut u = Uring::new(16)?;
    let mut rec = Recorder::sampling(Window::new(p.duration));
    let write = |msg: &[u8]| {
        opcode::Write::new(types::Fd(ping), msg.as_ptr(), msg.len() as u32)
            .offset(u64::MAX)
            .build()
            .user_data(WRITE)
    };
    let read = |buf: &mut [u8]| {
        opcode::Read::new(types::Fd(pong), buf.as_mut_ptr(), buf.len() as u32)
            .offset(u64::MAX)
            .build()
            .user_data(READ)
    };
    for round in 0.. {
        let start = Instant::now();
        let msg = msgs.get(round);
        let (mut written, mut got) = (0, 0);
        // SAFETY: `msgs` and `rbuf` outlive the round, which reaps both
        // operations (and any continuation) before it ends.
        unsafe {
            u.push(&write(msg))?;
            u.push(&read(&mut rbuf))?;
        }
        while written < size || got < size {
            u.submit_and_reap(1)?;
            for (ud, res) in u.take() {
                if ud == WRITE {
                    written += io_res(res, "pipe write")?;
                    if written < size {
                        // SAFETY: as above.
                        unsafe { u.push(&write(&msg[written..]))? };
                    }
                } else {
                    let n = io_res(res, "pipe read")?;
                    ensure!(n > 0, "pipe closed by the partner");
                    got += n;
                    if got < size {
                        // SAFETY: as above.
                        unsafe { u.push(&read(&mut rbuf[got..]))? };
                    }
                }
            }
        }
        msgs.check(round, &rbuf)?;
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    Ok(rec.finish())
}

/// Op kinds of TCP echo, in the low bits of `user_data`.
const CLIENT_SEND: u64 = 0;
const CLIENT_RECV: u64 = 1;
const SERVER_RECV: u64 = 2;
const SERVER_SEND: u64 = 3;

fn tag(conn: usize, kind: u64) -> u64 {
    ((conn as u64) << 2) | kind
}

/// Both ends of one connection, with the buffers the kernel writes into.
struct Conn {
    pair: TcpPair,
    round: u64,
    start: Instant,
    sent: usize,
    got: usize,
    rbuf: Box<[u8]>,
    sbuf: Box<[u8]>,
    /// Bytes the server holds, and how many of them it has sent back.
    held: usize,
    returned: usize,
    client_done: bool,
    server_done: bool,
}

/// A socket of TCP echo: its descriptor, or its fixed file.
#[derive(Clone, Copy)]
enum Sock {
    Raw(RawFd),
    Fixed(u32),
}

/// TCP echo on one ring, the same state machine as kqring's, counted in
/// `window`.
fn echo(p: &Params, pairs: Vec<TcpPair>, window: Window) -> Result<Recorder> {
    let msgs = Messages::new(p.msg_size);
    let size = msgs.size();
    let entries = (4 * pairs.len() + 16) as u32;
    let mut conns: Vec<Conn> = pairs
        .into_iter()
        .map(|pair| Conn {
            pair,
            round: 0,
            start: Instant::now(),
            sent: 0,
            got: 0,
            rbuf: vec![0u8; size].into_boxed_slice(),
            sbuf: vec![0u8; msgs.server_buf()].into_boxed_slice(),
            held: 0,
            returned: 0,
            client_done: false,
            server_done: false,
        })
        .collect();
    // After the buffers, so that it drops (and cancels) before them.
    let mut u = Uring::new(entries)?;
    // Connection `c`'s client end is fixed file `2c`, its server end
    // `2c + 1`.
    let registered = p.registered_files;
    if registered {
        let fds: Vec<RawFd> = (conns.iter())
            .flat_map(|c| [c.pair.client.as_raw_fd(), c.pair.server.as_raw_fd()])
            .collect();
        u.ring.submitter().register_files(&fds)?;
    }
    let client = |c: usize, conn: &Conn| match registered {
        true => Sock::Fixed(2 * c as u32),
        false => Sock::Raw(conn.pair.client.as_raw_fd()),
    };
    let server = |c: usize, conn: &Conn| match registered {
        true => Sock::Fixed(2 * c as u32 + 1),
        false => Sock::Raw(conn.pair.server.as_raw_fd()),
    };
    let mut rec = Recorder::sampling(window);
    let mut in_flight = 0usize;
    // SAFETY (every push below): the buffers are boxed in `conns`, which
    // outlives the loop, and the loop ends only with nothing in flight.
    let send = |fd: Sock, b: &[u8], t: u64| {
        let (ptr, len) = (b.as_ptr(), b.len() as u32);
        match fd {
            Sock::Raw(fd) => opcode::Send::new(types::Fd(fd), ptr, len).build(),
            Sock::Fixed(i) => opcode::Send::new(types::Fixed(i), ptr, len).build(),
        }
        .user_data(t)
    };
    let recv = |fd: Sock, b: &mut [u8], t: u64| {
        let (ptr, len) = (b.as_mut_ptr(), b.len() as u32);
        match fd {
            Sock::Raw(fd) => opcode::Recv::new(types::Fd(fd), ptr, len).build(),
            Sock::Fixed(i) => opcode::Recv::new(types::Fixed(i), ptr, len).build(),
        }
        .user_data(t)
    };
    let start_round =
        |u: &mut Uring, c: usize, conn: &mut Conn, in_flight: &mut usize| -> io::Result<()> {
            conn.start = Instant::now();
            conn.sent = 0;
            conn.got = 0;
            let fd = client(c, conn);
            unsafe {
                u.push(&send(fd, msgs.get(conn.round), tag(c, CLIENT_SEND)))?;
                u.push(&recv(fd, &mut conn.rbuf, tag(c, CLIENT_RECV)))?;
            }
            *in_flight += 2;
            Ok(())
        };
    for (c, conn) in conns.iter_mut().enumerate() {
        let fd = server(c, conn);
        unsafe { u.push(&recv(fd, &mut conn.sbuf, tag(c, SERVER_RECV)))? };
        in_flight += 1;
        start_round(&mut u, c, conn, &mut in_flight)?;
    }
    while conns.iter().any(|c| !(c.client_done && c.server_done)) {
        ensure!(in_flight > 0, "TCP echo stalled with nothing in flight");
        u.submit_and_reap(1)?;
        for (ud, res) in u.take() {
            in_flight -= 1;
            let c = (ud >> 2) as usize;
            let conn = &mut conns[c];
            let mut round_done = false;
            match ud & 3 {
                CLIENT_SEND => {
                    conn.sent += io_res(res, "client send")?;
                    if conn.sent < size {
                        let rest = &msgs.get(conn.round)[conn.sent..];
                        let fd = client(c, conn);
                        unsafe { u.push(&send(fd, rest, tag(c, CLIENT_SEND)))? };
                        in_flight += 1;
                    } else {
                        round_done = conn.got == size;
                    }
                }
                CLIENT_RECV => {
                    let n = io_res(res, "client receive")?;
                    ensure!(n > 0, "server closed connection {c}");
                    conn.got += n;
                    if conn.got < size {
                        let fd = client(c, conn);
                        let rest = &mut conn.rbuf[conn.got..];
                        unsafe { u.push(&recv(fd, rest, tag(c, CLIENT_RECV)))? };
                        in_flight += 1;
                    } else {
                        msgs.check(conn.round, &conn.rbuf)?;
                        round_done = conn.sent == size;
                    }
                }
                SERVER_RECV => {
                    let n = io_res(res, "server receive")?;
                    if n == 0 {
                        conn.server_done = true;
                    } else {
                        (conn.held, conn.returned) = (n, 0);
                        let fd = server(c, conn);
                        unsafe { u.push(&send(fd, &conn.sbuf[..n], tag(c, SERVER_SEND)))? };
                        in_flight += 1;
                    }
                }
                _ => {
                    conn.returned += io_res(res, "server send")?;
                    let fd = server(c, conn);
                    let e = if conn.returned < conn.held {
                        send(
                            fd,
                            &conn.sbuf[conn.returned..conn.held],
                            tag(c, SERVER_SEND),
                        )
                    } else {
                        recv(fd, &mut conn.sbuf, tag(c, SERVER_RECV))
                    };
                    unsafe { u.push(&e)? };
                    in_flight += 1;
                }
            }
            if round_done {
                if rec.record(1, conn.start, Instant::now()) {
                    conn.round += 1;
                    start_round(&mut u, c, conn, &mut in_flight)?;
                } else {
                    conn.client_done = true;
                    conn.pair.client.shutdown(Shutdown::Write)?;
                }
            }
        }
    }
    Ok(rec)
}
