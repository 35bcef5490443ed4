//! Linux's own io_uring through the `io-uring` crate, in three setups: no
//! setup flags (one `io_uring_enter` per `submit_and_wait`); SQPOLL, a
//! kernel thread that takes the submissions, beside kqring's polling
//! thread; and `SINGLE_ISSUER | DEFER_TASKRUN`, completions run when the
//! ring's one thread waits, beside kqring inline. Buffers are owned by the
//! workload and pinned (boxed) while the kernel holds them.

use std::collections::VecDeque;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use super::echo::{Next, Op, Progress, tag, untag};
use super::{BATCH, Outcome, Params, System, on_rings};
use crate::fixtures::{
    BLOCK, COPY_CHUNK, COPY_DEPTH, CopyFiles, Messages, PipePartner, Rng, TcpPair, TestFile,
    tcp_pairs, timer_durations,
};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Result, ensure};

/// How a ring is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No setup flags.
    Plain,
    /// `IORING_SETUP_SQPOLL`: a kernel thread polls the submission queue.
    SqPoll,
    /// `IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`.
    DeferTaskrun,
}

/// The largest submission queue the kernel takes (`IORING_MAX_ENTRIES`).
const MAX_ENTRIES: u32 = 32768;

/// How long an SQPOLL ring's reaper spins on the CQ before it enters the
/// kernel to wait: what kqring's consumer does beside its polling thread.
const CQ_SPIN: Duration = Duration::from_micros(20);

/// An io_uring system (its rings are made per workload).
#[derive(Debug, Clone, Copy)]
pub struct IoUringSystem {
    variant: Variant,
    /// SQPOLL's idle time before its thread sleeps, in ms.
    sq_idle_ms: u32,
}

impl IoUringSystem {
    /// Checks that the kernel makes a ring of `variant`, and says what it
    /// found for the table's header; `sq_idle` (kqring's, default 1 ms)
    /// becomes SQPOLL's idle time, rounded up to whole milliseconds.
    pub fn probe(
        variant: Variant,
        sq_idle: Option<Duration>,
    ) -> std::result::Result<(IoUringSystem, Option<String>), String> {
        let idle = sq_idle.unwrap_or(Duration::from_millis(1));
        let sys = IoUringSystem {
            variant,
            sq_idle_ms: idle.as_micros().div_ceil(1000).clamp(1, u32::MAX as u128) as u32,
        };
        let u = Uring::new(8, sys).map_err(|e| format!("{variant:?}: {e}"))?;
        let note = match variant {
            Variant::Plain => None,
            Variant::SqPoll => {
                if !u.ring.params().is_setup_sqpoll() {
                    return Err("the kernel did not set up SQPOLL".into());
                }
                // Since Linux 5.12 the SQ thread is a thread of this
                // process (iou-sqp-PID), so process CPU time counts it;
                // before, it was a kernel thread that it did not count.
                let counted = sq_thread_listed();
                Some(format!(
                    "io_uring SQPOLL: set up by the kernel, sq_thread_idle {} ms; its thread \
                     {}",
                    sys.sq_idle_ms,
                    match counted {
                        Some(name) =>
                            format!("{name} is a thread of this process: its CPU is counted"),
                        None => "is not a thread of this process: its CPU is NOT counted".into(),
                    }
                ))
            }
            Variant::DeferTaskrun => Some(
                "io_uring DEFER_TASKRUN: SINGLE_ISSUER | DEFER_TASKRUN set up by the kernel".into(),
            ),
        };
        drop(u);
        Ok((sys, note))
    }

    fn ring(&self, entries: u32) -> io::Result<Uring> {
        Uring::new(entries, *self)
    }

    /// `n` buffers of `size` bytes, a ring of `2 * n` entries, and whether
    /// the buffers are registered with it (when tuned). Bind the three in
    /// this order (`let (bufs, ring, fixed) = ...`): the ring then drops,
    /// and cancels, before the buffers.
    fn ring_with_buffers(&self, n: usize, size: usize) -> io::Result<(Buffers, Uring, bool)> {
        let mut bufs: Buffers = (0..n).map(|_| vec![0u8; size].into_boxed_slice()).collect();
        let u = self.ring(2 * n as u32)?;
        let fixed = self.tuned();
        if fixed {
            let iov: Vec<libc::iovec> = (bufs.iter_mut())
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: the buffers are boxed (moving the Vec moves no
            // buffer), and the caller keeps them until the ring is gone.
            unsafe { u.ring.submitter().register_buffers(&iov)? };
        }
        Ok((bufs, u, fixed))
    }

    /// Whether the rings use what makes each workload fastest beyond the
    /// setup flags: registered buffers for file reads, a multishot receive
    /// over a provided-buffer ring for TCP echo's server ends.
    fn tuned(&self) -> bool {
        self.variant != Variant::Plain
    }
}

/// A workload's own buffers, each boxed so that it never moves.
type Buffers = Vec<Box<[u8]>>;

/// The name of this process's SQPOLL thread, if one is listed among its
/// threads. The thread names itself once it runs, so this looks for up to
/// a second.
fn sq_thread_listed() -> Option<String> {
    let find = || {
        let tasks = std::fs::read_dir("/proc/self/task").ok()?;
        tasks.flatten().find_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let comm = comm.trim();
            comm.starts_with("iou-sqp").then(|| comm.to_string())
        })
    };
    let since = Instant::now();
    loop {
        if let Some(name) = find() {
            return Some(name);
        }
        if since.elapsed() > Duration::from_secs(1) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A ring and the completions taken from it.
struct Uring {
    ring: IoUring,
    sqpoll: bool,
    reaped: Vec<(u64, i32, u32)>,
}

impl Uring {
    fn new(entries: u32, sys: IoUringSystem) -> io::Result<Uring> {
        Uring::with_cq(entries, None, sys)
    }

    /// A ring of `entries` (rounded up to a power of two, at most
    /// [`MAX_ENTRIES`]) and a CQ of `cq` entries (default: twice as many).
    fn with_cq(entries: u32, cq: Option<u32>, sys: IoUringSystem) -> io::Result<Uring> {
        let entries = entries.next_power_of_two().min(MAX_ENTRIES);
        let mut b = IoUring::builder();
        match sys.variant {
            Variant::Plain => {}
            Variant::SqPoll => {
                b.setup_sqpoll(sys.sq_idle_ms);
            }
            Variant::DeferTaskrun => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
        }
        if let Some(cq) = cq {
            b.setup_cqsize(cq.next_power_of_two());
        }
        Ok(Uring {
            ring: b.build(entries)?,
            sqpoll: sys.variant == Variant::SqPoll,
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
            if self.sqpoll && self.ring.submission().is_full() {
                // The SQ thread takes entries on its own time: wait for room.
                self.ring.submitter().squeue_wait()?;
            }
        }
    }

    /// Submits and waits until `want` completions are ready, then takes
    /// every ready one into `reaped`. With SQPOLL the submission needs no
    /// syscall unless the thread sleeps, and the wait spins on the CQ for
    /// [`CQ_SPIN`] before it enters the kernel.
    fn submit_and_reap(&mut self, want: usize) -> io::Result<()> {
        if self.sqpoll {
            self.ring.submit()?;
            let spin = Instant::now();
            while self.ring.completion().len() < want && spin.elapsed() < CQ_SPIN {
                std::hint::spin_loop();
            }
        }
        while !(self.sqpoll && self.ring.completion().len() >= want) {
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
                .map(|c: cqueue::Entry| (c.user_data(), c.result(), c.flags())),
        );
        Ok(())
    }

    /// The completions reaped: (user_data, result, flags).
    fn take(&mut self) -> Vec<(u64, i32, u32)> {
        std::mem::take(&mut self.reaped)
    }
}

/// The open + statx + close workload's `user_data`: the kind in the top
/// byte, the file in the rest.
const META_KIND: u64 = 0xff << 56;
const META_OPEN: u64 = 1 << 56;
const META_STAT: u64 = 2 << 56;
const META_CLOSE: u64 = 3 << 56;

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
        match self.variant {
            Variant::Plain => "io_uring",
            Variant::SqPoll => "io_uring-sqpoll",
            Variant::DeferTaskrun => "io_uring-defer",
        }
    }

    fn nop_batched(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let mut u = self.ring(2 * BATCH as u32)?;
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
                    got.iter().all(|&(_, res, _)| res == 0),
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
            let mut u = self.ring(8)?;
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut start = Instant::now();
            for i in 0.. {
                // SAFETY: a NOP references no memory.
                unsafe { u.push(&opcode::Nop::new().build().user_data(i))? };
                u.submit_and_reap(1)?;
                ensure!(
                    u.reaped.len() == 1 && u.reaped[0].0 == i && u.reaped[0].1 == 0,
                    "NOP {i} completed as {:?}",
                    u.reaped
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
            // io_uring answers EAGAIN on O_NONBLOCK pipes instead of
            // polling them, so it gets blocking ones.
            let pipes = PipePartner::spawn(false)?;
            let r = pipe_ping_pong(*self, p, pipes.ping.as_raw_fd(), pipes.pong.as_raw_fd());
            pipes.finish();
            r
        })())
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        // Blocking sockets: io_uring polls them itself.
        Some(
            tcp_pairs(conns)
                .map_err(Into::into)
                .and_then(|pairs| echo(*self, p, pairs, Window::new(p.duration)))
                .map(Recorder::finish),
        )
    }

    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, rings: usize) -> Outcome {
        let sys = *self;
        Some(
            tcp_pairs(conns)
                .map_err(Into::into)
                .and_then(|pairs| on_rings(p, pairs, rings, |share, w| echo(sys, p, share, w))),
        )
    }

    fn fs_meta(&mut self, p: &Params, files: &[std::ffi::CString]) -> Outcome {
        Some((|| {
            let n = files.len();
            // One status per file, written by the kernel: boxed, so they
            // do not move while a statx is in flight.
            // (`types::statx` is opaque: the buffer is libc's.)
            let mut stats: Vec<Box<std::mem::MaybeUninit<libc::statx>>> = (0..n)
                .map(|_| Box::new(std::mem::MaybeUninit::uninit()))
                .collect();
            // After the buffers, so that it drops (and cancels) before them.
            let mut u = self.ring(4 * n as u32)?;
            let cwd = types::Fd(libc::AT_FDCWD);
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut rounds = vec![(Instant::now(), 0u8); n];
            let open = |i: usize| {
                opcode::OpenAt::new(cwd, files[i].as_ptr())
                    .flags(libc::O_RDONLY | libc::O_CLOEXEC)
                    .build()
                    .user_data(META_OPEN | i as u64)
            };
            for i in 0..n {
                // SAFETY: the paths outlive the loop, which reaps every
                // entry before returning.
                unsafe { u.push(&open(i))? };
            }
            let (mut in_flight, mut going) = (n, true);
            while in_flight > 0 {
                u.submit_and_reap(1)?;
                for (ud, res, _) in u.take() {
                    let i = (ud & !META_KIND) as usize;
                    ensure!(res >= 0, "{ud:#x} completed with {res}");
                    if ud & META_KIND == META_OPEN {
                        let stat = opcode::Statx::new(
                            cwd,
                            files[i].as_ptr(),
                            stats[i].as_mut_ptr().cast(),
                        )
                        .mask(libc::STATX_BASIC_STATS)
                        .build()
                        .user_data(META_STAT | i as u64);
                        let close = opcode::Close::new(types::Fd(res))
                            .build()
                            .user_data(META_CLOSE | i as u64);
                        // SAFETY: the path and the status buffer outlive
                        // the loop, which reaps every entry.
                        unsafe {
                            u.push(&stat)?;
                            u.push(&close)?;
                        }
                        rounds[i].1 = 2;
                        continue;
                    }
                    rounds[i].1 -= 1;
                    if rounds[i].1 > 0 {
                        continue;
                    }
                    going &= rec.record(1, rounds[i].0, Instant::now());
                    if going {
                        rounds[i].0 = Instant::now();
                        // SAFETY: as above.
                        unsafe { u.push(&open(i))? };
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
            let (mut bufs, mut u, fixed) = self.ring_with_buffers(COPY_DEPTH, COPY_CHUNK)?;
            let src = types::Fd(files.source().as_raw_fd());
            let dst = types::Fd(files.destination().as_raw_fd());
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut plan = files.plan(&rec.window());
            // Per slot: its chunk and when its read was queued; user_data
            // 2 * slot for its read, 2 * slot + 1 for its write.
            let mut slots = vec![(0u64, 0usize, Instant::now()); COPY_DEPTH];
            let entry = |write: bool, slot: usize, off: u64, len: usize, ptr: *mut u8| {
                let (len32, idx) = (len as u32, slot as u16);
                let e = match (write, fixed) {
                    (false, true) => opcode::ReadFixed::new(src, ptr, len32, idx)
                        .offset(off)
                        .build(),
                    (false, false) => opcode::Read::new(src, ptr, len32).offset(off).build(),
                    (true, true) => opcode::WriteFixed::new(dst, ptr, len32, idx)
                        .offset(off)
                        .build(),
                    (true, false) => opcode::Write::new(dst, ptr, len32).offset(off).build(),
                };
                e.user_data(2 * slot as u64 + u64::from(write))
            };
            let mut in_flight = 0;
            for (slot, s) in slots.iter_mut().enumerate() {
                let Some((off, len)) = plan.next_chunk(Instant::now()) else {
                    break;
                };
                *s = (off, len, Instant::now());
                // SAFETY: `bufs` outlives the loop below, which reaps every
                // entry before returning.
                unsafe { u.push(&entry(false, slot, off, len, bufs[slot].as_mut_ptr()))? };
                in_flight += 1;
            }
            while in_flight > 0 {
                u.submit_and_reap(1)?;
                for (ud, res, _) in u.take() {
                    let (slot, write) = ((ud / 2) as usize, ud % 2 == 1);
                    let (off, len, start) = slots[slot];
                    ensure!(
                        res == len as i32,
                        "{} of {len} bytes at {off} gave {res}",
                        if write { "write" } else { "read" }
                    );
                    let ptr = bufs[slot].as_mut_ptr();
                    if !write {
                        // SAFETY: as above.
                        unsafe { u.push(&entry(true, slot, off, len, ptr))? };
                        continue;
                    }
                    let now = Instant::now();
                    rec.record(1, start, now);
                    match plan.next_chunk(now) {
                        Some((off, len)) => {
                            slots[slot] = (off, len, now);
                            // SAFETY: as above.
                            unsafe { u.push(&entry(false, slot, off, len, ptr))? };
                        }
                        None => in_flight -= 1,
                    }
                }
            }
            Ok(rec.finish())
        })())
    }

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        Some((|| {
            let qd = p.queue_depth;
            let (mut bufs, mut u, fixed) = self.ring_with_buffers(qd, BLOCK)?;
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
                let ptr = bufs[slot].as_mut_ptr();
                let e = if fixed {
                    opcode::ReadFixed::new(fd, ptr, BLOCK as u32, slot as u16)
                        .offset(block * BLOCK as u64)
                        .build()
                } else {
                    opcode::Read::new(fd, ptr, BLOCK as u32)
                        .offset(block * BLOCK as u64)
                        .build()
                }
                .user_data(slot as u64);
                let e = if p.file_async {
                    e.flags(squeue::Flags::ASYNC)
                } else {
                    e
                };
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
                for (ud, res, _) in u.take() {
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
            let mut u = Uring::with_cq(4096, Some(16384), *self)?;
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
            let reap = |u: &mut Uring, due: &[Instant], lateness: &mut Vec<u64>| -> Result<()> {
                for (ud, res, _) in u.take() {
                    ensure!(
                        res == -libc::ETIME,
                        "timer {ud} completed with {res}, want -ETIME"
                    );
                    lateness.push(lateness_ns(due[ud as usize], Instant::now())?);
                }
                Ok(())
            };
            let t0 = Instant::now();
            for (i, (d, spec)) in durations.iter().zip(&specs).enumerate() {
                due.push(Instant::now() + *d);
                let e = opcode::Timeout::new(spec).build().user_data(i as u64);
                // SAFETY: `specs` outlives the ring's use of it (see above).
                while unsafe { u.ring.submission().push(&e) }.is_err() {
                    u.submit_and_reap(0)?;
                    reap(&mut u, &due, &mut lateness)?;
                }
            }
            while lateness.len() < durations.len() {
                u.submit_and_reap(1)?;
                reap(&mut u, &due, &mut lateness)?;
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

fn pipe_ping_pong(sys: IoUringSystem, p: &Params, ping: RawFd, pong: RawFd) -> Result<Measurement> {
    const WRITE: u64 = 0;
    const READ: u64 = 1;
    let msgs = Messages::new(p.msg_size);
    let size = msgs.size();
    let mut rbuf = vec![0u8; size].into_boxed_slice();
    // After the buffers, so that it drops (and cancels) before them.
    let mut u = sys.ring(16)?;
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
            for (ud, res, _) in u.take() {
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

/// Both ends of one connection, with the buffers the kernel writes into.
struct Conn {
    pair: TcpPair,
    progress: Progress,
    rbuf: Box<[u8]>,
    sbuf: Box<[u8]>,
    /// Bytes the server holds, and how many of them it has sent back.
    held: usize,
    returned: usize,
    /// With the multishot receive: the provided buffers received into and
    /// not yet sent back, oldest first, as (buffer id, bytes); the front
    /// one is being sent (`returned` of it so far).
    pending: VecDeque<(u16, usize)>,
}

/// A socket of TCP echo: its descriptor, or its fixed file.
#[derive(Clone, Copy)]
enum Sock {
    Raw(RawFd),
    Fixed(u32),
}

/// The buffer group of the provided-buffer ring.
const GROUP: u16 = 1;

/// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) and its buffers:
/// the kernel picks a buffer when data arrives, and the workload hands it
/// back once it has sent its bytes on.
struct BufRing {
    entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    count: u16,
    tail: u16,
    bufs: Box<[u8]>,
    buf_size: usize,
}

impl BufRing {
    /// `count` (a power of two, at most 32768) buffers of `buf_size`
    /// bytes, every one handed to the kernel.
    fn new(count: u16, buf_size: usize) -> io::Result<BufRing> {
        let layout = std::alloc::Layout::from_size_align(
            count as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: a non-zero size; zeroed memory is a valid ring.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::other("out of memory for the buffer ring"));
        }
        let mut ring = BufRing {
            entries,
            layout,
            count,
            tail: 0,
            bufs: vec![0u8; count as usize * buf_size].into_boxed_slice(),
            buf_size,
        };
        for bid in 0..count {
            ring.give(bid);
        }
        Ok(ring)
    }

    fn register(&self, ring: &IoUring) -> io::Result<()> {
        // SAFETY: the entries and buffers live until after the ring is
        // dropped (the caller declares this before the ring).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(self.entries as u64, self.count, GROUP, 0)
        }
    }

    /// Hands buffer `bid` to the kernel.
    fn give(&mut self, bid: u16) {
        let slot = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `slot` is below `count`; the kernel reads an entry only
        // once the tail has passed it, and the tail is published after.
        unsafe {
            let e = &mut *self.entries.add(slot);
            e.set_addr(self.bufs.as_ptr().add(bid as usize * self.buf_size) as u64);
            e.set_len(self.buf_size as u32);
            e.set_bid(bid);
            self.tail = self.tail.wrapping_add(1);
            let tail = types::BufRingEntry::tail(self.entries).cast_mut();
            std::sync::atomic::AtomicU16::from_ptr(tail)
                .store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    /// The bytes of buffer `bid`.
    fn buf(&self, bid: u16) -> &[u8] {
        &self.bufs[bid as usize * self.buf_size..][..self.buf_size]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.entries.cast(), self.layout) };
    }
}

/// TCP echo on one ring, with [`Progress`] as kqring's, counted in
/// `window`. With a tuned variant the server ends receive with one
/// multishot receive each, into a provided-buffer ring, and send back from
/// the buffer the kernel picked.
fn echo(sys: IoUringSystem, p: &Params, pairs: Vec<TcpPair>, window: Window) -> Result<Recorder> {
    let msgs = Messages::new(p.msg_size);
    let size = msgs.size();
    let entries = (4 * pairs.len() + 16) as u32;
    let multishot = sys.tuned();
    let buf_ring = if multishot {
        let count = (pairs.len() + 16).next_power_of_two().min(32768) as u16;
        Some(BufRing::new(count, msgs.server_buf())?)
    } else {
        None
    };
    let mut buf_ring = buf_ring;
    let mut conns: Vec<Conn> = pairs
        .into_iter()
        .map(|pair| Conn {
            pair,
            progress: Progress::default(),
            rbuf: vec![0u8; size].into_boxed_slice(),
            sbuf: if multishot {
                Box::default()
            } else {
                vec![0u8; msgs.server_buf()].into_boxed_slice()
            },
            held: 0,
            returned: 0,
            pending: VecDeque::new(),
        })
        .collect();
    // After the buffers, so that it drops (and cancels) before them.
    let mut u = Uring::with_cq(entries, Some(2 * entries.min(MAX_ENTRIES)), sys)?;
    if let Some(b) = &buf_ring {
        b.register(&u.ring)?;
    }
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
    // Connections whose multishot receive ended for want of buffers: they
    // receive again once one comes back.
    let mut starved: Vec<usize> = Vec::new();
    // SAFETY (every push below): the buffers are boxed in `conns` and
    // `buf_ring`, which outlive the loop, and the loop ends only with
    // nothing in flight.
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
    let recv_multi = |fd: Sock, t: u64| {
        match fd {
            Sock::Raw(fd) => opcode::RecvMulti::new(types::Fd(fd), GROUP).build(),
            Sock::Fixed(i) => opcode::RecvMulti::new(types::Fixed(i), GROUP).build(),
        }
        .user_data(t)
    };
    let start_round =
        |u: &mut Uring, c: usize, conn: &mut Conn, in_flight: &mut usize| -> io::Result<()> {
            conn.progress.begin_round();
            let fd = client(c, conn);
            let msg = msgs.get(conn.progress.round);
            unsafe {
                u.push(&send(fd, msg, tag(c, Op::ClientSend)))?;
                u.push(&recv(fd, &mut conn.rbuf, tag(c, Op::ClientRecv)))?;
            }
            *in_flight += 2;
            Ok(())
        };
    for (c, conn) in conns.iter_mut().enumerate() {
        let fd = server(c, conn);
        let e = if multishot {
            recv_multi(fd, tag(c, Op::ServerRecv))
        } else {
            recv(fd, &mut conn.sbuf, tag(c, Op::ServerRecv))
        };
        unsafe { u.push(&e)? };
        in_flight += 1;
        start_round(&mut u, c, conn, &mut in_flight)?;
    }
    while conns.iter().any(|c| !c.progress.done()) {
        ensure!(in_flight > 0, "TCP echo stalled with nothing in flight");
        u.submit_and_reap(1)?;
        for (ud, res, flags) in u.take() {
            let (c, op) = untag(ud);
            let conn = &mut conns[c];
            // A multishot receive stays in flight while it says more comes.
            let more = op == Op::ServerRecv && multishot && cqueue::more(flags);
            if !more {
                in_flight -= 1;
            }
            let mut next = Next::Wait;
            match op {
                Op::ClientSend => next = conn.progress.sent(io_res(res, "client send")?, size),
                Op::ClientRecv => {
                    let n = io_res(res, "client receive")?;
                    next = conn.progress.received(n, size, c)?;
                    if next == Next::Check {
                        msgs.check(conn.progress.round, &conn.rbuf)?;
                        next = conn.progress.checked(size);
                    }
                }
                Op::ServerRecv if multishot => {
                    let ring = buf_ring.as_mut().ok_or("no buffer ring")?;
                    if res == -libc::ENOBUFS {
                        // Every buffer is out: receive again once one is back.
                        starved.push(c);
                        continue;
                    }
                    let n = io_res(res, "server receive")?;
                    if n == 0 {
                        ensure!(!more, "a receive at the end of the stream says more comes");
                        conn.progress.server_done = true;
                        continue;
                    }
                    let bid = cqueue::buffer_select(flags).ok_or("a receive without its buffer")?;
                    conn.pending.push_back((bid, n));
                    if conn.pending.len() == 1 {
                        conn.returned = 0;
                        let fd = server(c, conn);
                        unsafe { u.push(&send(fd, &ring.buf(bid)[..n], tag(c, Op::ServerSend)))? };
                        in_flight += 1;
                    }
                    if !more {
                        // The kernel ended it (its CQ was full, say): again.
                        let fd = server(c, conn);
                        unsafe { u.push(&recv_multi(fd, tag(c, Op::ServerRecv)))? };
                        in_flight += 1;
                    }
                }
                Op::ServerRecv => {
                    let n = io_res(res, "server receive")?;
                    if n == 0 {
                        conn.progress.server_done = true;
                    } else {
                        (conn.held, conn.returned) = (n, 0);
                        let fd = server(c, conn);
                        unsafe { u.push(&send(fd, &conn.sbuf[..n], tag(c, Op::ServerSend)))? };
                        in_flight += 1;
                    }
                }
                Op::ServerSend if multishot => {
                    let ring = buf_ring.as_mut().ok_or("no buffer ring")?;
                    conn.returned += io_res(res, "server send")?;
                    let &(bid, n) = conn.pending.front().ok_or("a send with nothing held")?;
                    let fd = server(c, conn);
                    if conn.returned < n {
                        let rest = &ring.buf(bid)[conn.returned..n];
                        unsafe { u.push(&send(fd, rest, tag(c, Op::ServerSend)))? };
                        in_flight += 1;
                        continue;
                    }
                    conn.pending.pop_front();
                    ring.give(bid);
                    conn.returned = 0;
                    if let Some(&(bid, n)) = conn.pending.front() {
                        unsafe { u.push(&send(fd, &ring.buf(bid)[..n], tag(c, Op::ServerSend)))? };
                        in_flight += 1;
                    }
                    // A buffer is back: the starved receives go again.
                    for k in starved.drain(..) {
                        let fd = server(k, &conns[k]);
                        unsafe { u.push(&recv_multi(fd, tag(k, Op::ServerRecv)))? };
                        in_flight += 1;
                    }
                }
                Op::ServerSend => {
                    conn.returned += io_res(res, "server send")?;
                    let fd = server(c, conn);
                    let e = if conn.returned < conn.held {
                        send(
                            fd,
                            &conn.sbuf[conn.returned..conn.held],
                            tag(c, Op::ServerSend),
                        )
                    } else {
                        recv(fd, &mut conn.sbuf, tag(c, Op::ServerRecv))
                    };
                    unsafe { u.push(&e)? };
                    in_flight += 1;
                }
            }
            let conn = &mut conns[c];
            let fd = client(c, conn);
            match next {
                Next::Send(from) => {
                    let rest = &msgs.get(conn.progress.round)[from..];
                    unsafe { u.push(&send(fd, rest, tag(c, Op::ClientSend)))? };
                    in_flight += 1;
                }
                Next::Recv(from) => {
                    let rest = &mut conn.rbuf[from..];
                    unsafe { u.push(&recv(fd, rest, tag(c, Op::ClientRecv)))? };
                    in_flight += 1;
                }
                Next::RoundDone if conn.progress.finish_round(&mut rec) => {
                    start_round(&mut u, c, conn, &mut in_flight)?;
                }
                Next::RoundDone => conn.pair.client.shutdown(Shutdown::Write)?,
                Next::Check | Next::Wait => {}
            }
        }
    }
    // The ring goes first: nothing of the kernel's may point into the
    // buffers once they are freed.
    drop(u);
    drop(buf_ring);
    Ok(rec)
}
