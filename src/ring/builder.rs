//! The ring's builder: its sizes, its mode, its file table.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;

use crate::cq::{CompletionQueue, CqInner};
use crate::driver::{Driver, Inbox, WAKE_TOKEN};
use crate::ring::drive::poll_loop;
use crate::ring::{Counters, Mode, Ring, Shared};
use crate::sq::SubmissionQueue;
use crate::sys::{Kqueue, Waker};

/// Builds a [`Ring`].
#[derive(Debug, Clone)]
pub struct Builder {
    sq_entries: usize,
    cq_entries: Option<usize>,
    sq_idle: Duration,
    workers: usize,
    mode: Mode,
    files: u32,
    proactor_files: bool,
    /// Read events carry the bytes readable even where counting costs
    /// system calls (the Linux compat): tests of the driver's use of the
    /// counts.
    counted: bool,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            sq_entries: 256,
            cq_entries: None,
            sq_idle: Duration::from_millis(1),
            // One per CPU: on a 2-CPU machine 4 workers halved poller-mode
            // file reads against 2 (docs/performance.md), and cached reads
            // gain nothing from more threads than CPUs.
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            mode: Mode::PollingThread,
            files: 0,
            proactor_files: true,
            counted: false,
        }
    }
}

impl Builder {
    /// Submission queue capacity (default 256); 0 makes
    /// [`build`](Builder::build) fail with `EINVAL`.
    #[must_use]
    pub fn sq_entries(mut self, n: usize) -> Builder {
        self.sq_entries = n;
        self
    }

    /// Completion queue capacity (default twice `sq_entries`). Completions
    /// beyond it wait in an overflow list; none is dropped. 0 makes
    /// [`build`](Builder::build) fail with `EINVAL`.
    #[must_use]
    pub fn cq_entries(mut self, n: usize) -> Builder {
        self.cq_entries = Some(n);
        self
    }

    /// How long the polling thread spins after its last work before it
    /// parks (io_uring's `sq_thread_idle`; default 1 ms).
    #[must_use]
    pub fn sq_idle(mut self, idle: Duration) -> Builder {
        self.sq_idle = idle;
        self
    }

    /// Threads in the blocking pool (default: one per CPU); 0 makes
    /// [`build`](Builder::build) fail with `EINVAL`.
    /// Work that blocks on a slow disk or network file system may want
    /// more.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = n;
        self
    }

    /// A file table of `n` empty slots for registered files (default: no
    /// table), as io_uring's sparse registration makes right after setup.
    /// [`ops::FilesUpdate`](crate::ops::FilesUpdate) and direct
    /// `Accept`/`Socket` fill it; operations name a slot with
    /// [`ops::Fixed`](crate::ops::Fixed).
    ///
    /// The [proactor's](crate::proactor) types then take a slot each (see
    /// [`proactor_files`](Builder::proactor_files)).
    #[must_use]
    pub fn files(mut self, n: u32) -> Builder {
        self.files = n;
        self
    }

    /// Whether the [proactor's](crate::proactor#registered-files) types
    /// take a slot each in the file table, holding a duplicate of their
    /// descriptor, which their operations name (default: yes, when the
    /// ring has a table). Off, the table is the raw user's alone, and
    /// the types work on their descriptors.
    #[must_use]
    pub fn proactor_files(mut self, on: bool) -> Builder {
        self.proactor_files = on;
        self
    }

    /// A kqueue whose read events count the bytes readable, whatever it
    /// costs the backend.
    #[cfg(test)]
    pub(crate) fn counted_events(mut self) -> Builder {
        self.counted = true;
        self
    }

    /// How the ring is driven (default: a polling thread).
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Builder {
        self.mode = mode;
        self
    }

    /// Drives the ring on the caller's thread (`mode(Mode::Inline)`).
    #[must_use]
    pub fn inline(self) -> Builder {
        self.mode(Mode::Inline)
    }

    /// Creates the ring: its kqueue, its blocking pool and, in
    /// polling-thread mode, the polling thread. `EINVAL` for 0 submission
    /// entries, completion entries or workers.
    pub fn build(self) -> io::Result<Ring> {
        // io_uring refuses a ring of 0 entries; a pool of 0 workers could
        // run nothing.
        if self.sq_entries == 0 || self.cq_entries == Some(0) || self.workers == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let cq_entries = self.cq_entries.unwrap_or(self.sq_entries.saturating_mul(2));
        // Where counting costs calls (the Linux compat), the driver goes
        // without the counts: it retries its syscall until EAGAIN. A kernel
        // kqueue counts for free, and a read that takes what an event
        // counted lets the next one wait untried.
        let kq = if self.counted {
            Kqueue::new()?
        } else {
            Kqueue::uncounted()?
        };
        let waker = Waker::new(&kq, WAKE_TOKEN)?;
        let shared = Arc::new(Shared {
            sq: ArrayQueue::new(self.sq_entries),
            sq_open: RwLock::new(true),
            cq: CqInner::new(cq_entries),
            cq_capacity: cq_entries,
            kq,
            waker,
            parked: AtomicBool::new(false),
            submissions: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            stats: Counters::default(),
            mode: self.mode,
            inline: Mutex::new(None),
            inbox: Inbox::default(),
            proactor_files: self.files > 0 && self.proactor_files,
        });
        let driver = Driver::new(&shared, self.workers, self.files)?;
        let thread = match self.mode {
            Mode::Inline => {
                *shared.lock_inline() = Some(driver);
                None
            }
            Mode::PollingThread => {
                let s = Arc::clone(&shared);
                let idle = self.sq_idle;
                Some(
                    std::thread::Builder::new()
                        .name("kqring-poller".into())
                        .spawn(move || poll_loop(s, driver, idle))?,
                )
            }
        };
        Ok(Ring {
            sq: SubmissionQueue {
                shared: Arc::clone(&shared),
            },
            cq: CompletionQueue {
                shared: Arc::clone(&shared),
            },
            shared,
            thread,
            pid: std::process::id(),
        })
    }
}
