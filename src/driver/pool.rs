//! The blocking pool: a fixed set of worker threads for what can't be
//! polled (regular files, blocking descriptors, file-system calls).
//!
//! A worker takes a job, runs its syscall inside the operation's span, and
//! hands the operation back with its result; the driver posts the
//! completion, so links, counts and cancellation stay in one place.

use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::driver::table::OpKey;
use crate::ops::{BlockingOp, IoOp, Op};
use crate::ring::Shared;

/// What a worker runs: an operation of one of the kinds that can run
/// there.
pub(crate) enum Work {
    Io(Box<dyn IoOp>),
    Blocking(Box<dyn BlockingOp>),
}

impl Work {
    pub(crate) fn into_op(self) -> Op {
        match self {
            Work::Io(op) => Op::Io(op),
            Work::Blocking(op) => Op::Blocking(op),
        }
    }

    fn run(&mut self, kind: Option<crate::sys::io::FdKind>) -> i32 {
        match self {
            Work::Io(op) => op.run_blocking(kind),
            Work::Blocking(op) => op.run_blocking(kind),
        }
    }
}

/// Work for the pool.
pub(crate) struct Job {
    pub(crate) key: OpKey,
    pub(crate) work: Work,
    pub(crate) span: tracing::Span,
    /// What the descriptor is, when the driver has found out already.
    pub(crate) kind: Option<crate::sys::io::FdKind>,
    /// Shared with the driver's entry, so a cancel can withdraw the job
    /// before a worker starts it.
    pub(crate) claim: Arc<Claim>,
}

/// Who has a job: a worker starts it, or a cancel withdraws it first, and
/// the worker then hands it back -ECANCELED without making its call (as
/// io_uring cancels work its workers have not started).
#[derive(Debug, Default)]
pub(crate) struct Claim(AtomicU8);

impl Claim {
    const QUEUED: u8 = 0;
    const STARTED: u8 = 1;
    const WITHDRAWN: u8 = 2;

    /// A worker takes the job; false if it was withdrawn.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(
                Self::QUEUED,
                Self::STARTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The driver withdraws the job; false if a worker has started it.
    pub(crate) fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(
                Self::QUEUED,
                Self::WITHDRAWN,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// A finished job.
pub(crate) struct Done {
    pub(crate) key: OpKey,
    pub(crate) work: Work,
    pub(crate) res: i32,
}

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    /// The driver's handle on queued jobs, to take back unstarted ones at
    /// shutdown.
    queued: Receiver<Job>,
    pub(crate) done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn new(workers: usize, shared: &Arc<Shared>) -> io::Result<Pool> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let jobs = jobs_rx.clone();
            let done = done_tx.clone();
            let shared = Arc::clone(shared);
            let thread = std::thread::Builder::new()
                .name(format!("kqring-worker-{i}"))
                .spawn(move || work(&jobs, &done, &shared))?;
            threads.push(thread);
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            queued: jobs_rx,
            done: done_rx,
            threads,
        })
    }

    /// Queues a job; gives it back (boxed: only the rare failure pays for
    /// the move) if the pool is shut down.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Box<Job>> {
        match &self.jobs {
            Some(tx) => tx.send(job).map_err(|e| Box::new(e.into_inner())),
            None => Err(Box::new(job)),
        }
    }

    /// Stops the pool: takes back the jobs no worker started, waits for the
    /// running ones, joins the workers. Returns the unstarted jobs and the
    /// results still unread.
    pub(crate) fn shutdown(&mut self) -> (Vec<Job>, Vec<Done>) {
        let unstarted: Vec<Job> = self.queued.try_iter().collect();
        self.jobs = None;
        for t in self.threads.drain(..) {
            // A worker only panics on a bug in kqring; the others still
            // need joining, and the results they sent are still good.
            let _ = t.join();
        }
        (unstarted, self.done.try_iter().collect())
    }
}

/// The result of an operation whose worker panicked in it (a bug in
/// kqring or in a buffer's trait implementation): the worker lives on.
const PANICKED: i32 = -libc::EIO;

/// Runs `work` on this worker; a panic in it ends the operation with
/// [`PANICKED`] rather than the thread, which would leave the operation
/// without a completion and the pool a worker short.
fn run(work: &mut Work, kind: Option<crate::sys::io::FdKind>, shared: &Shared) -> i32 {
    // The operation is handed back whatever state the panic left it in:
    // its buffer is still a valid value of its type, and the result says
    // the operation failed.
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
        crate::sys::worker_starts(&shared.kq);
        work.run(kind)
    }));
    ran.unwrap_or_else(|_| {
        tracing::error!("kqring worker: an operation panicked");
        PANICKED
    })
}

fn work(jobs: &Receiver<Job>, done: &Sender<Done>, shared: &Shared) {
    for mut job in jobs.iter() {
        let res = if job.claim.start() {
            job.span.in_scope(|| run(&mut job.work, job.kind, shared))
        } else {
            -libc::ECANCELED
        };
        let finished = Done {
            key: job.key,
            work: job.work,
            res,
        };
        if done.send(finished).is_err() {
            return;
        }
        shared.wake();
    }
}
