//! Planned faults, for tests (cargo feature `fault-injection`): a
//! [`Kqueue`] over the platform's backend whose `kevent` calls fail as
//! planned, the panic of a blocking-pool worker inside an operation, and
//! the panic of the driver itself at the start of a turn.
//!
//! Without the feature none of this exists and the backend's `Kqueue` is
//! the one the ring uses; with it and nothing planned, a call costs one
//! atomic load more.

use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::backend;
use crate::sys::{Change, Event, Flags};

/// Which `kevent` calls a planned failure of the whole call hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Calls whose changes include one for this ident (a descriptor, a
    /// process id…).
    Changing(usize),
    /// Calls without changes that may wait (a timeout other than zero).
    Waiting,
}

#[derive(Debug)]
enum Plan {
    /// The whole call fails with the errno, before the backend sees it.
    Call { calls: Calls, errno: i32 },
    /// An `EV_ADD` change for the ident fails alone: `EV_ERROR` with the
    /// errno in `data`; the call's other changes are made.
    Change { ident: usize, errno: i32 },
    /// A worker panics as it starts its next operation.
    WorkerPanic,
    /// The driver panics as it starts its next turn.
    DriverPanic,
}

/// The faults planned for one ring, and how many were injected.
#[derive(Debug, Default)]
pub struct Faults {
    /// Each planned fault, once per time it is to happen, in order.
    plan: Mutex<Vec<Plan>>,
    /// How many of `plan` are left: checked without the lock.
    planned: AtomicU64,
    injected: AtomicU64,
}

/// The payload of a planned worker panic.
#[derive(Debug)]
pub struct PlannedPanic;

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Vec<Plan>> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, times: u32, plan: impl Fn() -> Plan) {
        let mut p = self.lock();
        for _ in 0..times {
            p.push(plan());
        }
        self.planned.store(p.len() as u64, Ordering::Release);
    }

    /// The next `times` `kevent` calls that `calls` describes fail with
    /// `errno`, before the backend sees them.
    pub fn fail_calls(&self, calls: Calls, errno: i32, times: u32) {
        self.add(times, || Plan::Call { calls, errno });
    }

    /// The next `times` `EV_ADD` changes for `ident` fail alone, reported
    /// as a kernel reports a failed change: an `EV_ERROR` event with
    /// `errno` in `data`.
    pub fn fail_change(&self, ident: usize, errno: i32, times: u32) {
        self.add(times, || Plan::Change { ident, errno });
    }

    /// The next `times` operations a blocking-pool worker starts panic
    /// there (with [`PlannedPanic`], through `resume_unwind`: the panic
    /// hook does not run).
    pub fn panic_workers(&self, times: u32) {
        self.add(times, || Plan::WorkerPanic);
    }

    /// The driver's next `times` turns panic as they start (with
    /// [`PlannedPanic`], through `resume_unwind`): on the polling thread,
    /// or in the inline caller's call that turns.
    pub fn panic_driver(&self, times: u32) {
        self.add(times, || Plan::DriverPanic);
    }

    /// Drops the faults planned and not yet injected; returns how many.
    pub fn clear(&self) -> u64 {
        let mut p = self.lock();
        let left = p.len() as u64;
        p.clear();
        self.planned.store(0, Ordering::Release);
        left
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Acquire)
    }

    /// How many planned faults have not happened yet.
    pub fn planned(&self) -> u64 {
        self.planned.load(Ordering::Acquire)
    }

    /// Takes the first planned fault that `hits`; `None` when none does.
    fn take(&self, hits: impl Fn(&Plan) -> bool) -> Option<Plan> {
        if self.planned.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut p = self.lock();
        let i = p.iter().position(hits)?;
        let plan = p.remove(i);
        self.planned.store(p.len() as u64, Ordering::Release);
        self.injected.fetch_add(1, Ordering::AcqRel);
        Some(plan)
    }

    /// A worker starts an operation: panics if planned.
    pub(crate) fn worker_starts(&self) {
        if self.take(|p| matches!(p, Plan::WorkerPanic)).is_some() {
            std::panic::resume_unwind(Box::new(PlannedPanic));
        }
    }

    /// The driver starts a turn: panics if planned.
    pub(crate) fn driver_turns(&self) {
        if self.take(|p| matches!(p, Plan::DriverPanic)).is_some() {
            std::panic::resume_unwind(Box::new(PlannedPanic));
        }
    }
}

/// The backend's kqueue, whose calls fail as its [`Faults`] plan.
#[derive(Debug)]
pub struct Kqueue {
    inner: backend::Kqueue,
    faults: Faults,
}

impl Deref for Kqueue {
    type Target = backend::Kqueue;

    fn deref(&self) -> &backend::Kqueue {
        &self.inner
    }
}

impl Kqueue {
    /// The backend's kqueue, as its `new` makes it, nothing planned.
    pub fn new() -> io::Result<Kqueue> {
        backend::Kqueue::new().map(Kqueue::over)
    }

    /// The backend's kqueue, as its `uncounted` makes it, nothing
    /// planned.
    pub fn uncounted() -> io::Result<Kqueue> {
        backend::Kqueue::uncounted().map(Kqueue::over)
    }

    fn over(inner: backend::Kqueue) -> Kqueue {
        Kqueue {
            inner,
            faults: Faults::default(),
        }
    }

    /// The backend's [`counts_readable`](backend::Kqueue::counts_readable).
    pub fn counts_readable(&self) -> bool {
        self.inner.counts_readable()
    }

    /// What is planned for this kqueue.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Whether `fd` is one of the backend's own descriptors.
    pub fn owns(&self, fd: RawFd) -> bool {
        self.inner.owns(fd)
    }

    /// The backend's `kevent`, unless a planned fault hits the call (it
    /// fails) or one of its changes (that one fails alone, and the call
    /// returns at once with its result).
    pub fn kevent(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        if self.faults.planned() == 0 {
            return self.inner.kevent(changes, events, timeout);
        }
        let waits = changes.is_empty() && timeout != Some(Duration::ZERO);
        let call = self.faults.take(|p| match *p {
            Plan::Call {
                calls: Calls::Waiting,
                ..
            } => waits,
            Plan::Call {
                calls: Calls::Changing(ident),
                ..
            } => changes.iter().any(|c| c.ident() == ident),
            _ => false,
        });
        if let Some(Plan::Call { errno, .. }) = call {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let mut failed = Vec::new();
        let mut made = Vec::new();
        for change in changes {
            let fault = if change.flags().contains(Flags::ADD) {
                self.faults
                    .take(|p| matches!(*p, Plan::Change { ident, .. } if ident == change.ident()))
            } else {
                None
            };
            match fault {
                Some(Plan::Change { errno, .. }) => failed.push(Event::failed(change, errno)),
                _ => made.push(*change),
            }
        }
        if failed.is_empty() {
            return self.inner.kevent(changes, events, timeout);
        }
        let before = events.len();
        if !made.is_empty() {
            self.inner.kevent(&made, events, Some(Duration::ZERO))?;
        }
        events.extend(failed);
        Ok(events.len() - before)
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}
