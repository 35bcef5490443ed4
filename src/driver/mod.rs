//! The driver: takes submissions, runs them, posts completions.
//!
//! One `Driver` serves a ring; whoever holds it runs `turn`s — the polling
//! thread, or an inline ring's caller inside `submit_and_wait`. There is
//! no `cfg` here: every platform difference is below, in `sys`. Its parts:
//!
//! | module | job |
//! |---|---|
//! | `table` | the operations in flight, by typed key, each with one state |
//! | `start` | taking an entry and starting its operation by kind |
//! | `chains` | link chains, linked timeouts, drain |
//! | `io` | the non-blocking attempts, readiness events, polls |
//! | `fds`, `waiters`, `registration` | per-(descriptor, direction) waiter queues and their kevent registration |
//! | `timers` | timeouts and completion counts |
//! | `events` | the event operations' own registrations (EVFILT_PROC, SIGNAL, VNODE) |
//! | `msg` | messages between rings: the inbox, `MsgRing` |
//! | `cancel` | `AsyncCancel`, `PollRemove`, `TimeoutRemove` |
//! | `completion` | ending an operation, posting, multishot, overflow |
//! | `offload`, `pool` | handing work to the blocking pool and back |
//! | `bufs`, `files` | provided buffer groups, registered files |

mod bufs;
mod cancel;
mod chains;
mod completion;
mod events;
mod fds;
mod files;
mod io;
mod msg;
mod offload;
mod pool;
mod registration;
mod start;
mod table;
mod timers;
mod waiters;

use std::io as stdio;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::ring::Shared;
use crate::sys::{Change, Event, Flags};

pub(crate) use files::dup;
pub(crate) use msg::{Inbox, Message};

/// The token of the ring's waker's events, which wake a parked driver.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// The largest batch of submissions one turn takes, so that completions
/// and events are served between batches.
const SUBMIT_BATCH: usize = 1024;

pub(crate) struct Driver {
    shared: Arc<Shared>,
    table: table::Table,
    fds: fds::FdTable,
    timers: timers::Timers,
    chains: chains::Chains,
    completions: completion::Completions,
    offload: offload::Offload,
    bufs: bufs::BufGroups,
    files: files::Files,
    event_regs: events::EventRegs,
    /// Ring-owned descriptors done with: closed once the `kevent` call
    /// that deletes their registrations has been made.
    retired: Vec<OwnedFd>,
    changes: Vec<Change>,
    events: Vec<Event>,
    /// Turns since one read the clock with no timer armed.
    turns_unclocked: u32,
    /// The kqueue's read events carry the bytes readable.
    counts_readable: bool,
}

/// With no timer armed, the idle sweep reads the clock once per this many
/// turns, and at the turn after a wait that may have blocked: a busy ring
/// turns many times per millisecond, and the sweep comes once a second.
const SWEEP_TURNS: u32 = 64;

impl Driver {
    pub(crate) fn new(shared: &Arc<Shared>, workers: usize, files: u32) -> stdio::Result<Driver> {
        Ok(Driver {
            shared: Arc::clone(shared),
            table: table::Table::with_capacity(256),
            fds: fds::FdTable::default(),
            timers: timers::Timers::default(),
            chains: chains::Chains::default(),
            completions: completion::Completions::default(),
            offload: offload::Offload::new(workers, shared)?,
            bufs: bufs::BufGroups::default(),
            files: files::Files::new(files),
            event_regs: events::EventRegs::default(),
            retired: Vec::new(),
            changes: Vec::with_capacity(64),
            events: Vec::with_capacity(256),
            turns_unclocked: 0,
            counts_readable: shared.kq.counts_readable(),
        })
    }

    /// Whether the next turn has something to do without waiting.
    pub(crate) fn has_ready_work(&self) -> bool {
        (!self.shared.sq.is_empty() && !self.completions.has_pending())
            || self.offload.has_sendable()
            || (self.completions.has_pending() && self.shared.cq.len() < self.shared.cq_capacity())
            || self.offload.has_results()
            || !self.changes.is_empty()
            || self.shared.inbox.has_pending()
    }

    /// Whether waiting in the kernel could produce anything: registrations
    /// or timers are outstanding.
    fn awaits_kernel(&self) -> bool {
        self.fds.has_active() || !self.timers.is_empty() || self.event_regs.has_any()
    }

    /// One turn: take what was submitted, collect the pool's results, fire
    /// due timers, reconcile registrations, make one `kevent` call that
    /// both submits those changes and waits (at most `timeout`; `None`:
    /// until something happens), serve its events. Returns whether any
    /// work was done.
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> stdio::Result<bool> {
        self.turn_until(timeout, None)
    }

    /// A turn for a caller on this thread that waits for `want`
    /// completions in the CQ: it flushes the turn's completions before its
    /// `kevent` call and waits there, unless the CQ holds `want` then or
    /// other work is ready, rather than returning at once when it did
    /// work.
    pub(crate) fn wait_turn(
        &mut self,
        timeout: Option<Duration>,
        want: usize,
    ) -> stdio::Result<bool> {
        self.turn_until(timeout, Some(want))
    }

    fn turn_until(
        &mut self,
        timeout: Option<Duration>,
        want: Option<usize>,
    ) -> stdio::Result<bool> {
        crate::sys::driver_turns(&self.shared.kq);
        self.shared.stats.turns.fetch_add(1, Ordering::Relaxed);
        let mut work = self.flush();
        // What the flush could not move is the overflow list: no entry is
        // taken while it holds completions.
        let overflowing = self.completions.has_pending();
        // Pool results first: a cancel taken below then finds an operation
        // its worker handed back waiting, where it can cancel it.
        work |= self.take_pool_results();
        work |= self.take_messages();
        // Read before the queue's length: every entry of a submission
        // below it was pushed before, and is counted in the length, so a
        // take of all that length has taken the whole submission.
        let through = self.shared.submissions.load(Ordering::Acquire);
        let queued = self.shared.sq.len();
        if queued == 0 || (!overflowing && queued <= SUBMIT_BATCH) {
            self.offload.took_through(through);
        }
        if !overflowing {
            work |= self.take_submissions(queued);
        }
        // The clock only when a timer or the idle sweep needs it: on a VM
        // a read of it costs as much as a small operation.
        let now = self.clock_for_turn();
        if let Some(now) = now {
            work |= self.fire_timers(now);
        }
        let files = &self.files;
        self.fds.reconcile(&mut self.changes, |fd| files.owns(fd));
        if let Some(now) = now {
            self.fds.sweep(now, &mut self.changes);
        }

        let returns = match want {
            None => work || self.completions.has_pending(),
            Some(want) => {
                // The caller is this thread: what it waits for goes to the
                // CQ now, and the wait goes on only while it is not there
                // and nothing else is ready.
                work |= self.flush();
                self.completions.has_pending()
                    || self.shared.cq.len() >= want
                    || (!overflowing && !self.shared.sq.is_empty())
                    || self.offload.has_sendable()
                    || self.offload.has_results()
                    || !self.retired.is_empty()
                    || self.chains.can_release(&self.table)
            }
        };
        let mut wait = if returns {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if want.is_some() && !returns {
            self.shared.stats.parks.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(deadline) = self.timers.next_deadline() {
            // A timer is armed, so the clock was read.
            let until = now.map_or(Duration::ZERO, |now| {
                deadline.saturating_duration_since(now)
            });
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        if want.is_some() && wait != Some(Duration::ZERO) && self.spin_for_pool(wait) {
            wait = Some(Duration::ZERO);
        }
        // Descriptors retired before the reconcile have their deletions
        // in `changes`: they may close once those reach the kernel (on the
        // Linux compat, a registration outlives a closed descriptor whose
        // file is still open elsewhere).
        let closing = std::mem::take(&mut self.retired);
        // The event registrations left so far go in this call too, before
        // a descriptor of theirs closes.
        self.event_regs.take_deletes(&mut self.changes);
        // Nothing registered, nothing to submit, and no wait asked for:
        // skip the syscall.
        if wait == Some(Duration::ZERO) && self.changes.is_empty() && !self.awaits_kernel() {
            drop(closing);
            self.end_turn();
            return Ok(work);
        }
        let stats = &self.shared.stats;
        stats.kevent_calls.fetch_add(1, Ordering::Relaxed);
        stats
            .changes
            .fetch_add(self.changes.len() as u64, Ordering::Relaxed);
        self.events.clear();
        if wait != Some(Duration::ZERO) {
            // It may block for long: the next turn looks at the clock.
            self.turns_unclocked = SWEEP_TURNS;
        }
        match self.shared.kq.kevent(&self.changes, &mut self.events, wait) {
            Ok(_) => {}
            // Interrupted (the backends retry EINTR themselves; this is
            // one that got through): the changes may not have been made,
            // and go again in the next turn, which comes at once; making
            // one twice is harmless (an addition modifies, a deletion of
            // what is gone fails and needs nothing). What closes after
            // them waits for them.
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                self.retired.extend(closing);
                self.end_turn();
                return Ok(true);
            }
            // The call failed as a whole: each of its changes fails with
            // its errno, as the kernel reports one change's failure, so
            // the operations that relied on one end with it.
            Err(e) if !self.changes.is_empty() => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                tracing::warn!(error = %e, changes = self.changes.len(), "kqring driver: kevent failed");
                self.events.clear();
                self.events
                    .extend(self.changes.iter().map(|c| Event::failed(c, errno)));
            }
            // Nothing but a wait, and it failed: the kqueue itself is
            // unusable.
            Err(e) => {
                self.changes.clear();
                drop(closing);
                return Err(e);
            }
        }
        self.changes.clear();
        drop(closing);
        // Registrations made by this call: what joined them looks again.
        self.check_armed();
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            work |= self.on_event(ev);
        }
        self.events = events;
        work |= self.take_pool_results();
        if !self.timers.is_empty() {
            work |= self.fire_timers(Instant::now());
        }
        if !self.completions.has_pending() {
            work |= self.release_deferred();
        }
        if !self.retired.is_empty() {
            self.close_retired();
        }
        self.end_turn();
        Ok(work)
    }

    /// The time for this turn's timers and idle sweep: read when a timer
    /// is armed, else once per [`SWEEP_TURNS`] (a sweep a few turns late
    /// keeps an idle registration that much longer, nothing more).
    fn clock_for_turn(&mut self) -> Option<Instant> {
        self.turns_unclocked = self.turns_unclocked.saturating_add(1);
        if self.timers.is_empty() && self.turns_unclocked < SWEEP_TURNS {
            return None;
        }
        self.turns_unclocked = 0;
        Some(Instant::now())
    }

    /// What every turn ends with: pool work goes out, deserted
    /// registrations go, completions go to the CQ.
    fn end_turn(&mut self) {
        self.send_offloaded();
        self.delete_deserted();
        self.flush();
    }

    /// Takes the `queued` entries the turn found (at most
    /// [`SUBMIT_BATCH`]).
    fn take_submissions(&mut self, queued: usize) -> bool {
        let mut any = self.release_deferred();
        // The entries queued now, as io_uring takes the tail it finds: a
        // producer that keeps pushing must not keep one turn taking (and
        // its completions out of the CQ) for ever.
        for _ in 0..queued.min(SUBMIT_BATCH) {
            let Some(sqe) = self.shared.sq.pop() else {
                break;
            };
            any = true;
            // A message sent before this entry was pushed is taken before
            // it (the inbox's flag is set before the push, and the pop
            // sees the push): a proactor type's slot is given back before
            // the `Close` of its descriptor that follows runs.
            if self.shared.inbox.has_pending() {
                self.take_messages();
            }
            self.intake(sqe);
        }
        any
    }

    /// Deletes the registrations left without waiters in a call of their
    /// own, before this turn's completions are seen (where the backend
    /// keeps a closed descriptor's registrations).
    fn delete_deserted(&mut self) {
        let mut deletes = Vec::new();
        self.fds.take_deserted(&mut deletes, Flags::RECEIPT);
        self.event_regs.take_deletes(&mut deletes);
        if !deletes.is_empty() {
            self.delete_at_once(&deletes);
        }
    }

    /// Closes the ring-owned descriptors retired since this turn's
    /// `kevent` call, deleting their registrations first in a call of
    /// their own: waiting for the next turn's would keep them open until
    /// an inline ring's owner calls again.
    fn close_retired(&mut self) {
        let mut deletes = Vec::new();
        self.event_regs.take_deletes(&mut deletes);
        for fd in &self.retired {
            self.fds.delete_now(fd.as_raw_fd(), &mut deletes);
        }
        if !deletes.is_empty() {
            self.delete_at_once(&deletes);
        }
        self.retired.clear();
    }

    /// Deletes `fd`'s registrations (it closes next, on this thread) and
    /// those left without waiters, in a `kevent` call of their own: none
    /// may be deleted by its number after the close, when the number may
    /// be another descriptor's.
    pub(super) fn delete_registrations_now(&mut self, fd: std::os::fd::RawFd) {
        let mut deletes = Vec::new();
        self.fds.take_deserted(&mut deletes, Flags::RECEIPT);
        self.event_regs.take_deletes(&mut deletes);
        self.fds.delete_now(fd, &mut deletes);
        if !deletes.is_empty() {
            self.delete_at_once(&deletes);
        }
    }

    /// Deletes registrations in a `kevent` call of their own (the changes
    /// carry `RECEIPT`, so it returns their receipts alone).
    fn delete_at_once(&self, deletes: &[Change]) {
        let stats = &self.shared.stats;
        stats.kevent_calls.fetch_add(1, Ordering::Relaxed);
        stats
            .changes
            .fetch_add(deletes.len() as u64, Ordering::Relaxed);
        let mut receipts = Vec::with_capacity(deletes.len());
        // Deletions only: one that fails (the registration is gone
        // already) needs nothing, as in `on_event`. An interrupted call
        // goes again (a few times: a deletion that can't be made leaves
        // a registration nothing listens to, which is all it costs).
        for _ in 0..3 {
            receipts.clear();
            match self
                .shared
                .kq
                .kevent(deletes, &mut receipts, Some(Duration::ZERO))
            {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                _ => break,
            }
        }
    }

    /// A ring-owned descriptor is done with: what waits on it ends, its
    /// registrations go at the next reconcile, and it closes after that
    /// `kevent` call.
    fn retire(&mut self, fd: OwnedFd) {
        for waiter in self.fds.take_all(fd.as_raw_fd()) {
            self.cancel_waiting(waiter);
        }
        for waiter in self.event_regs.on_fd(fd.as_raw_fd()) {
            self.cancel_waiting(waiter);
        }
        self.retired.push(fd);
    }

    /// A ring-owned descriptor is done with and closes now, on this
    /// thread: what waits on it ends, and its registrations are deleted
    /// in a call of their own first.
    fn close_now(&mut self, fd: OwnedFd) {
        let raw = fd.as_raw_fd();
        for waiter in self.fds.take_all(raw) {
            self.cancel_waiting(waiter);
        }
        for waiter in self.event_regs.on_fd(raw) {
            self.cancel_waiting(waiter);
        }
        self.delete_registrations_now(raw);
        drop(fd);
    }

    /// Ends everything in flight with `-ECANCELED` (the ring is going
    /// away), stops the pool, and posts what the CQ can take.
    pub(crate) fn shutdown(&mut self) {
        while let Some(sqe) = self.chains.take_deferred() {
            self.post_cancelled(sqe);
        }
        while let Some(sqe) = self.shared.sq.pop() {
            self.post_cancelled(sqe);
        }
        // Other rings' messages: posted; files refused.
        self.close_inbox();
        self.stop_pool();
        // Completing one may complete others (its chain, its timeout).
        while let Some(key) = self.table.first() {
            self.cancel_waiting(key);
        }
        self.fds.release_all(&mut self.changes);
        self.event_regs.take_deletes(&mut self.changes);
        if !self.changes.is_empty() {
            self.events.clear();
            // Best effort: the kqueue is about to close, which drops every
            // registration anyway.
            let _ = self
                .shared
                .kq
                .kevent(&self.changes, &mut self.events, Some(Duration::ZERO));
            self.changes.clear();
        }
        // Registrations are gone: the ring's own descriptors may close.
        self.retired.clear();
        drop(self.files.take_all());
        // No turn follows to drain an overflow list: hand everything over.
        self.completions.post_all(&self.shared);
        self.shared.cq.close();
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use crate::driver::fds::Side;
    use crate::driver::table::{Entry, Table};

    /// What kqring keeps per idle connection with one multishot receive
    /// waiting over a buffer group: the operation's entry in the driver's
    /// table (its slot) and the operation itself (boxed), the descriptor's
    /// two directions in the fd table (a lone waiter is kept inline, without
    /// a queue on the heap), and the kevent layer's registration (the
    /// compat's per-descriptor slot on Linux). No buffer: a receive takes
    /// one only when data is there.
    #[test]
    fn idle_connection_footprint_is_under_512_bytes() {
        let entry = Table::slot_bytes();
        let op = size_of::<crate::ops::Recv<bytes::BytesMut>>();
        let sides = size_of::<[Side; 2]>();
        let registration = crate::sys::registration_bytes();
        let total = entry + op + sides + registration;
        println!(
            "idle connection: entry {entry} (of which span {}) + op {op} + fd sides {sides} \
             + kevent registration {registration} = {total} bytes",
            size_of::<tracing::Span>(),
        );
        assert!(size_of::<Entry>() <= entry);
        assert!(total < 512, "{total} bytes per idle connection");
    }
}
