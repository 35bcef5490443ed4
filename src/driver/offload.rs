//! Handing work to the blocking pool and taking its results back.
//!
//! Jobs are sent at the end of the turn once every entry of the submission
//! that started them has been taken (`submit` called, and a later take
//! found the queue with all of its entries): a cancel in the same
//! submission then still finds them unstarted, however the pushes and the
//! turns interleave and however fast a worker is; and an `ASYNC` `Close`
//! reaches the pool after its registrations' deletion has reached the
//! kernel.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::driver::Driver;
use crate::driver::pool::{Claim, Job, Pool, Work};
use crate::driver::table::{OpKey, State};
use crate::ring::Shared;

pub(super) struct Offload {
    pool: Pool,
    /// Jobs waiting for their submission to be made.
    outbox: Vec<(Job, Option<u64>)>,
    /// The submission of the entry being taken, while it starts.
    taking: Option<u64>,
    /// Jobs sent to the pool whose results are not taken back yet.
    on_pool: usize,
    /// The submissions whose entries have all been taken: those numbered
    /// below it.
    taken_through: u64,
}

/// How long a caller's wait on an inline ring spins for a worker's result
/// before it parks in `kevent`: a result within it costs neither a
/// wake-up call on the worker's side nor a sleep and a switch back on the
/// driver's (a file-system call on a warm cache takes a few µs).
const POOL_SPIN: Duration = Duration::from_micros(20);

impl Offload {
    pub(super) fn new(workers: usize, shared: &Arc<Shared>) -> std::io::Result<Offload> {
        Ok(Offload {
            pool: Pool::new(workers, shared)?,
            outbox: Vec::new(),
            taking: None,
            on_pool: 0,
            taken_through: 0,
        })
    }

    /// Whether every entry of `batch` (a submission's number) has been
    /// taken, so that a cancel among them has been seen.
    fn taken_all(&self, batch: Option<u64>) -> bool {
        batch.is_none_or(|b| b < self.taken_through)
    }

    /// A take found every entry of the submissions below `through` (the
    /// count of submissions read before the queue's length).
    pub(super) fn took_through(&mut self, through: u64) {
        self.taken_through = self.taken_through.max(through);
    }

    /// Entry taking begins, for submission `batch`; returns what to hand
    /// [`taken`](Self::taken) after.
    pub(super) fn taking(&mut self, batch: u64) -> Option<u64> {
        self.taking.replace(batch)
    }

    pub(super) fn taken(&mut self, before: Option<u64>) {
        self.taking = before;
    }

    /// Whether a job may go to the pool now.
    pub(super) fn has_sendable(&self) -> bool {
        self.outbox.iter().any(|&(_, batch)| self.taken_all(batch))
    }

    /// Whether a worker has handed a result back.
    pub(super) fn has_results(&self) -> bool {
        self.on_pool > 0 && !self.pool.done.is_empty()
    }
}

impl Driver {
    /// Whether jobs are on the pool, their results not yet taken.
    pub(crate) fn has_pool_jobs(&self) -> bool {
        self.offload.on_pool > 0
    }

    /// For a wait that would park in `kevent`: spins up to [`POOL_SPIN`]
    /// while jobs are on the pool, and returns whether work came meanwhile
    /// (so the wait need not park). The park announced for the wait is
    /// withdrawn while it spins, so that a worker's result makes no
    /// wake-up call, and announced again before the last look.
    pub(super) fn spin_for_pool(&self, wait: Option<Duration>) -> bool {
        if self.offload.on_pool == 0 || wait.is_some_and(|w| w <= POOL_SPIN) {
            return false;
        }
        let shared = &self.shared;
        let parked = shared.withdraw_park();
        let until = Instant::now() + POOL_SPIN;
        let mut spins = 0u32;
        let came = loop {
            if self.offload.has_results() || !shared.sq.is_empty() || shared.inbox.has_pending() {
                break true;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && Instant::now() >= until {
                break false;
            }
            std::hint::spin_loop();
        };
        if parked {
            shared.announce_park();
        }
        came || self.has_ready_work()
    }

    /// Sends operation `key`'s `work` to the pool (at the end of the turn).
    /// One that selects a buffer takes it now: the pool is where its data
    /// is ready.
    pub(super) fn offload(&mut self, key: OpKey, mut work: Work) {
        if let Work::Io(op) = &mut work
            && let Err(e) = self.bufs.pick(op.select())
        {
            self.put_op(key, work.into_op());
            return self.complete(key, e.res());
        }
        let Some(entry) = self.table.get_mut(key) else {
            return;
        };
        let claim = Arc::new(Claim::default());
        entry.state = State::Running {
            claim: Arc::clone(&claim),
            cancel_asked: false,
        };
        let job = Job {
            key,
            work,
            span: entry.span.clone(),
            kind: entry.kind,
            claim,
        };
        let taking = self.offload.taking;
        self.offload.outbox.push((job, taking));
    }

    /// Hands the pool the jobs of submissions made.
    pub(super) fn send_offloaded(&mut self) {
        if self.offload.outbox.is_empty() {
            return;
        }
        let mut ready = std::mem::take(&mut self.offload.outbox);
        let offload = &self.offload;
        if !ready.iter().all(|&(_, batch)| offload.taken_all(batch)) {
            let waiting;
            (ready, waiting) = ready
                .into_iter()
                .partition(|&(_, batch)| offload.taken_all(batch));
            self.offload.outbox = waiting;
        }
        for (job, _) in ready.drain(..) {
            match self.offload.pool.submit(job) {
                Ok(()) => {
                    self.offload.on_pool += 1;
                    self.shared.stats.offloaded.fetch_add(1, Ordering::Relaxed);
                }
                Err(job) => {
                    let Job { key, work, .. } = *job;
                    self.back_from_pool(key, work);
                    self.complete(key, -libc::ECANCELED);
                }
            }
        }
        // The usual turn: every job went, and its allocation serves the
        // next turn's.
        if self.offload.outbox.is_empty() {
            self.offload.outbox = ready;
        }
    }

    /// The operation is back from a worker: in its entry again, and off
    /// the pool.
    fn back_from_pool(&mut self, key: OpKey, work: Work) -> Option<bool> {
        let entry = self.table.get_mut(key)?;
        let State::Running { cancel_asked, .. } = entry.state else {
            return None;
        };
        entry.state = State::Started;
        entry.op = Some(work.into_op());
        Some(cancel_asked)
    }

    pub(super) fn take_pool_results(&mut self) -> bool {
        // Every turn asks, twice: with nothing on the pool, the channel's
        // own look is not made.
        if self.offload.on_pool == 0 {
            return false;
        }
        let mut any = false;
        while let Ok(done) = self.offload.pool.done.try_recv() {
            any = true;
            self.offload.on_pool -= 1;
            let dir = match &done.work {
                Work::Io(op) => Some(op.transfer().dir()),
                Work::Blocking(_) => None,
            };
            let Some(cancel_asked) = self.back_from_pool(done.key, done.work) else {
                continue;
            };
            let not_ready = crate::sys::errno::Errno::new(-done.res).would_block();
            // An ASYNC operation on a non-blocking descriptor that was not
            // ready waits for readiness like any other, as io_uring's
            // worker punts it to poll.
            if not_ready
                && !cancel_asked
                && let (Some(fd), Some(dir)) = (self.table.get(done.key).and_then(|e| e.fd), dir)
            {
                self.fds.push_io(fd, dir, done.key);
                continue;
            }
            let res = if not_ready && cancel_asked {
                -libc::ECANCELED
            } else {
                self.install_made(done.key, done.res)
            };
            self.complete(done.key, res);
        }
        any
    }

    /// A descriptor that operation `key` made on the pool (`res`) goes
    /// into the file table if it asked for a slot; its `res` then.
    fn install_made(&mut self, key: OpKey, res: i32) -> i32 {
        let slot = self
            .table
            .get(key)
            .and_then(|e| e.op())
            .and_then(|op| op.direct_slot());
        self.install_direct(slot, res)
    }

    /// Stops the pool for shutdown: what never ran completes cancelled,
    /// what ran completes with its result.
    pub(super) fn stop_pool(&mut self) {
        // Never sent: as good as unstarted.
        for (job, _) in std::mem::take(&mut self.offload.outbox) {
            self.back_from_pool(job.key, job.work);
            self.complete(job.key, -libc::ECANCELED);
        }
        let (unstarted, done) = self.offload.pool.shutdown();
        self.offload.on_pool = 0;
        for job in unstarted {
            if self.back_from_pool(job.key, job.work).is_some() {
                self.complete(job.key, -libc::ECANCELED);
            }
        }
        for d in done {
            if self.back_from_pool(d.key, d.work).is_some() {
                // One the worker handed back to wait is cancelled with the
                // rest.
                let res = if crate::sys::errno::Errno::new(-d.res).would_block() {
                    -libc::ECANCELED
                } else {
                    // A direct open's descriptor goes to its slot, and is
                    // closed with the table, rather than lost.
                    self.install_made(d.key, d.res)
                };
                self.complete(d.key, res);
            }
        }
    }
}
