//! The blocking pool: a fixed set of worker threads for what can't be
//! polled (regular files, blocking descriptors, file-system calls).
//!
//! A worker takes a job, runs its syscall inside the operation's span, and
//! hands the operation back with its result; the driver posts the
//! completion, so links, counts and cancellation stay in one place.

use std::io::{self, PipeWriter};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::driver::exec;
use crate::ops::Op;
use crate::ring::Shared;

/// Work for the pool.
pub(crate) struct Job {
    pub(crate) id: usize,
    pub(crate) seq: u64,
    pub(crate) op: Op,
    pub(crate) span: tracing::Span,
    /// `IOSQE_ASYNC` on a socket: do the blocking call, not `MSG_DONTWAIT`.
    pub(crate) kind: Option<crate::sys::io::FdKind>,
}

/// A finished job.
pub(crate) struct Done {
    pub(crate) id: usize,
    pub(crate) seq: u64,
    pub(crate) op: Op,
    pub(crate) res: i32,
}

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
    /// The driver's handle on queued jobs, to take back unstarted ones at
    /// shutdown.
    queued: Receiver<Job>,
    pub(crate) done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
    /// Dropped at shutdown: its reader then reads as hung up, which stops
    /// every worker waiting for a socket, pipe or terminal.
    /// Every worker shares the reader, which lives as long as they do.
    stop: Option<PipeWriter>,
}

impl Pool {
    pub(crate) fn new(workers: usize, shared: &Arc<Shared>) -> io::Result<Pool> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let (stopped, stop) = io::pipe()?;
        let stopped = Arc::new(stopped);
        let mut threads = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let jobs = jobs_rx.clone();
            let done = done_tx.clone();
            let shared = Arc::clone(shared);
            let stopped = Arc::clone(&stopped);
            let thread = std::thread::Builder::new()
                .name(format!("kqring-worker-{i}"))
                .spawn(move || work(&jobs, &done, &shared, stopped.as_raw_fd()))?;
            threads.push(thread);
        }
        Ok(Pool {
            jobs: Some(jobs_tx),
            queued: jobs_rx,
            done: done_rx,
            threads,
            stop: Some(stop),
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

    /// Stops the pool: takes back the jobs no worker started, stops the
    /// running ones that wait for a descriptor (they end -ECANCELED), waits
    /// for the others, joins the workers. Returns the unstarted jobs and
    /// the results still unread.
    pub(crate) fn shutdown(&mut self) -> (Vec<Job>, Vec<Done>) {
        let unstarted: Vec<Job> = self.queued.try_iter().collect();
        self.jobs = None;
        self.stop = None;
        for t in self.threads.drain(..) {
            // A worker only panics on a bug in kqring; the others still
            // need joining, and the results they sent are still good.
            let _ = t.join();
        }
        (unstarted, self.done.try_iter().collect())
    }
}

fn work(jobs: &Receiver<Job>, done: &Sender<Done>, shared: &Shared, stopped: RawFd) {
    for mut job in jobs.iter() {
        let res = job
            .span
            .in_scope(|| exec::run_blocking(&mut job.op, job.kind, stopped));
        let finished = Done {
            id: job.id,
            seq: job.seq,
            op: job.op,
            res,
        };
        if done.send(finished).is_err() {
            return;
        }
        shared.wake();
    }
}
