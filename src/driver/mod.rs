//! The driver: takes submissions, runs them, posts completions.
//!
//! One `Driver` serves a ring; whoever holds it runs `turn`s — the polling
//! thread, or an inline ring's caller inside `submit_and_wait`. A turn:
//! takes submissions (each I/O tried at once, without blocking), collects
//! the pool's results, fires due timers, reconciles kevent registrations,
//! makes one `kevent` call that both submits those changes and waits, then
//! serves the events. There is no `cfg` here: every platform difference is
//! below, in `sys`.

mod bufs;
mod exec;
mod fds;
mod files;
mod net;
mod pool;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use slab::Slab;

use crate::cq::{Cqe, flags as cqe_flags};
use crate::ops::{CancelTarget, Op};
use crate::ring::Shared;
use crate::sq::{Sqe, SqeFlags};
use crate::sys;
use crate::sys::io::FdKind;
use crate::sys::{Change, Event, Flags};
use exec::Attempt;
use fds::{Dir, FdTable};

/// The token of the ring's waker's events, which wake a parked driver.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// The largest batch of submissions one turn takes, so that completions
/// and events are served between batches.
const SUBMIT_BATCH: usize = 1024;

/// Where an operation in the table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Queued on an fd's waiters.
    Waiting,
    /// On the blocking pool; can't be cancelled.
    Running,
    /// A timeout waiting for its time or its count.
    Timer,
    /// In a link chain, waiting for the operation before it.
    Linked,
}

/// The last entry taken with a link flag: the next entry joins its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenLink {
    None,
    /// Still in flight: the next entry waits for it.
    InFlight(usize, u64),
    /// Finished: the next entry starts at once, or is cancelled if it
    /// failed (and was not a hard link).
    Finished {
        failed: bool,
        /// The failure cancels the rest without CQEs (see `Entry::quiet`).
        quiet: bool,
    },
}

/// An operation in flight.
struct Entry {
    user_data: u64,
    flags: SqeFlags,
    /// Unique per submission: tells a slab slot's occupants apart.
    seq: u64,
    op: Op,
    /// The operation's descriptor, kept here because `op` is out on the
    /// pool while it runs there (for a registered file: the descriptor
    /// its slot held, once started).
    fd: Option<i32>,
    /// `fd` is a registered file's descriptor, held until completion.
    holds_file: bool,
    span: tracing::Span,
    state: State,
    kind: Option<FdKind>,
    /// The bytes a read or write asks for (a short transfer fails a link).
    want: Option<u32>,
    /// Its links and timer, boxed: most entries have none, and an idle
    /// connection's entry should stay small.
    links: Option<Box<Links>>,
    /// Cancelled by a failed link member that carried `CQE_SKIP_SUCCESS`:
    /// completes without a CQE, as io_uring does.
    quiet: bool,
    /// Cancelled because an earlier link member failed: the decision to
    /// post the rest of the chain was that member's, not this one's.
    chain_cancelled: bool,
    /// A cancel (or its linked timeout) found it running on the pool: if
    /// the worker hands it back to wait for readiness, it ends there with
    /// -ECANCELED instead (io_uring's worker marks such work cancelled).
    cancel_asked: bool,
    /// While on the pool: lets a cancel withdraw the job no worker started.
    claim: Option<Arc<pool::Claim>>,
}

/// An entry's place in link chains and its timer.
#[derive(Debug, Default)]
struct Links {
    /// The next entry of its link chain.
    next: Option<(usize, u64)>,
    /// The LinkTimeout bounding this operation.
    link_timeout: Option<(usize, u64)>,
    /// For a LinkTimeout: the operation it bounds.
    bounds: Option<(usize, u64)>,
    /// When a timeout falls due (heap entries with another time are stale).
    deadline: Option<Instant>,
}

const NO_LINKS: Links = Links {
    next: None,
    link_timeout: None,
    bounds: None,
    deadline: None,
};

impl Entry {
    fn links(&self) -> &Links {
        self.links.as_deref().unwrap_or(&NO_LINKS)
    }

    fn links_mut(&mut self) -> &mut Links {
        self.links.get_or_insert_default()
    }
}

/// A readiness event, as the operations it wakes see it.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    /// The peer finished (`EV_EOF`).
    eof: bool,
    /// With `eof`: the socket's pending error, the result of a read that
    /// sees the end of the stream (on Linux reading `SO_ERROR` clears it,
    /// so the compat carries it in the event).
    error: i32,
}

/// A timeout's count condition: completes once `posted` reaches `target`.
struct CountWait {
    target: u64,
    id: usize,
    seq: u64,
}

pub(crate) struct Driver {
    shared: Arc<Shared>,
    sq: Receiver<Sqe>,
    ops: Slab<Entry>,
    next_seq: u64,
    fds: FdTable,
    timers: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    counts: Vec<CountWait>,
    /// Completions posted that are not timeouts (what `count` counts).
    posted: u64,
    changes: Vec<Change>,
    events: Vec<Event>,
    /// Completions of this turn not yet in the CQ, and the overflow list
    /// when the CQ is full: kept in order, never dropped.
    pending: VecDeque<Cqe>,
    /// How many of `pending` were left over by the last flush.
    overflow_len: usize,
    pool: pool::Pool,
    /// Jobs for the pool, sent at the end of the turn once the submission
    /// of the entry that started them has been made (`submit` called): a
    /// cancel in the same submission then still finds them unstarted,
    /// however the pushes and the turns interleave and however fast a
    /// worker is; and a `Close` reaches the pool after its registrations'
    /// deletion has reached the kernel.
    outbox: Vec<(pool::Job, Option<u64>)>,
    /// The submission of the entry being taken, while it starts.
    taking: Option<u64>,
    open_link: OpenLink,
    /// The submission the open link's entries came in.
    open_link_batch: u64,
    /// Entries held back by IO_DRAIN, in order.
    deferred: VecDeque<Sqe>,
    /// A drain entry in flight: later entries wait for it.
    drain_op: Option<(usize, u64)>,
    /// Provided buffer groups.
    bufs: bufs::BufGroups,
    /// Registered files.
    files: files::Files,
    /// Ring-owned descriptors done with: closed once the `kevent` call
    /// that deletes their registrations has been made.
    retired: Vec<OwnedFd>,
}

impl Driver {
    pub(crate) fn new(
        shared: &Arc<Shared>,
        sq: Receiver<Sqe>,
        workers: usize,
        files: u32,
    ) -> io::Result<Driver> {
        let events = Vec::with_capacity(256);
        Ok(Driver {
            shared: Arc::clone(shared),
            sq,
            ops: Slab::with_capacity(256),
            next_seq: 0,
            fds: FdTable::default(),
            timers: BinaryHeap::new(),
            counts: Vec::new(),
            posted: 0,
            changes: Vec::with_capacity(64),
            events,
            pending: VecDeque::new(),
            overflow_len: 0,
            pool: pool::Pool::new(workers, shared)?,
            outbox: Vec::new(),
            taking: None,
            open_link: OpenLink::None,
            open_link_batch: 0,
            deferred: VecDeque::new(),
            drain_op: None,
            bufs: bufs::BufGroups::default(),
            files: files::Files::new(files),
            retired: Vec::new(),
        })
    }

    /// Whether the next turn has something to do without waiting.
    pub(crate) fn has_ready_work(&self) -> bool {
        (!self.sq.is_empty() && self.pending.is_empty())
            || self.outbox.iter().any(|&(_, batch)| self.submitted(batch))
            || (!self.pending.is_empty() && self.shared.cq.len() < self.shared.cq_capacity())
            || !self.pool.done.is_empty()
            || !self.changes.is_empty()
    }

    /// Whether waiting in the kernel could produce anything: registrations
    /// or timers are outstanding.
    fn awaits_kernel(&self) -> bool {
        self.fds.has_active() || !self.timers.is_empty()
    }

    /// One turn. `timeout` bounds the wait in `kevent` (`None`: until
    /// something happens). Returns whether any work was done.
    pub(crate) fn turn(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        self.shared.stats.turns.fetch_add(1, Ordering::Relaxed);
        let mut work = self.flush();
        // What the flush could not move is the overflow list: no entry is
        // taken while it holds completions.
        let overflowing = !self.pending.is_empty();
        // Pool results first: a cancel taken below then finds an operation
        // its worker handed back waiting, where it can cancel it.
        work |= self.take_pool_results();
        if !overflowing {
            work |= self.take_submissions();
        }
        let now = Instant::now();
        work |= self.fire_timers(now);
        let files = &self.files;
        self.fds.reconcile(&mut self.changes, |fd| files.owns(fd));
        self.fds.sweep(now, &mut self.changes);

        let mut wait = if work || !self.pending.is_empty() {
            Some(Duration::ZERO)
        } else {
            timeout
        };
        if let Some(Reverse((deadline, _, _))) = self.timers.peek() {
            let until = deadline.saturating_duration_since(now);
            wait = Some(wait.map_or(until, |w| w.min(until)));
        }
        // Descriptors retired before the reconcile have their deletions
        // in `changes`: they may close once those reach the kernel (on the
        // Linux compat, a registration outlives a closed descriptor whose
        // file is still open elsewhere).
        let closing = std::mem::take(&mut self.retired);
        // Nothing registered, nothing to submit, and no wait asked for:
        // skip the syscall.
        if wait == Some(Duration::ZERO) && self.changes.is_empty() && !self.awaits_kernel() {
            drop(closing);
            self.send_offloaded();
            self.delete_deserted();
            self.flush();
            return Ok(work);
        }
        self.shared
            .stats
            .kevent_calls
            .fetch_add(1, Ordering::Relaxed);
        self.shared
            .stats
            .changes
            .fetch_add(self.changes.len() as u64, Ordering::Relaxed);
        self.events.clear();
        let result = self.shared.kq.kevent(&self.changes, &mut self.events, wait);
        self.changes.clear();
        drop(closing);
        result?;
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            work |= self.on_event(ev);
        }
        self.events = events;
        work |= self.take_pool_results();
        work |= self.fire_timers(Instant::now());
        if self.pending.is_empty() {
            work |= self.release_deferred();
        }
        self.send_offloaded();
        if !self.retired.is_empty() {
            self.close_retired();
        }
        self.delete_deserted();
        self.flush();
        Ok(work)
    }

    /// Closes the ring-owned descriptors retired since this turn's
    /// `kevent` call, deleting their registrations first in a call of
    /// their own: waiting for the next turn's would keep them open until
    /// an inline ring's owner calls again.
    fn delete_deserted(&mut self) {
        let mut deletes = Vec::new();
        self.fds.take_deserted(&mut deletes, Flags::RECEIPT);
        if !deletes.is_empty() {
            self.delete_at_once(&deletes);
        }
    }

    fn close_retired(&mut self) {
        let mut deletes = Vec::new();
        for fd in &self.retired {
            self.fds.delete_now(fd.as_raw_fd(), &mut deletes);
        }
        if !deletes.is_empty() {
            self.delete_at_once(&deletes);
        }
        self.retired.clear();
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
        // already) needs nothing, as in `on_event`.
        let _ = self
            .shared
            .kq
            .kevent(deletes, &mut receipts, Some(Duration::ZERO));
    }

    /// Moves this turn's completions into the CQ; what does not fit stays
    /// in order in `pending` (the overflow list). Returns whether anything
    /// moved.
    fn flush(&mut self) -> bool {
        let before = self.pending.len();
        self.shared.cq.post(&mut self.pending);
        let moved = before - self.pending.len();
        // Entries left over from an earlier flush were counted then.
        let old_left = self.overflow_len.saturating_sub(moved);
        let newly = self.pending.len() - old_left;
        if newly > 0 {
            self.shared
                .stats
                .overflowed
                .fetch_add(newly as u64, Ordering::Relaxed);
        }
        self.overflow_len = self.pending.len();
        moved > 0
    }

    fn take_submissions(&mut self) -> bool {
        let mut any = self.release_deferred();
        // The entries queued now, as io_uring takes the tail it finds: a
        // producer that keeps pushing must not keep one turn taking (and
        // its completions out of the CQ) for ever.
        for _ in 0..self.sq.len().min(SUBMIT_BATCH) {
            let Ok(sqe) = self.sq.try_recv() else { break };
            any = true;
            self.intake(sqe);
        }
        any
    }

    /// Takes one entry: starts it, or holds it back behind a drain.
    fn intake(&mut self, sqe: Sqe) {
        let drains = sqe.flags.contains(SqeFlags::IO_DRAIN);
        if !self.deferred.is_empty() || self.drain_op.is_some() || (drains && !self.ops.is_empty())
        {
            self.deferred.push_back(sqe);
        } else {
            self.submit(sqe);
        }
    }

    /// Starts held-back entries whose drain condition is met: a drain
    /// entry once nothing is in flight, the entries after it once it has
    /// completed.
    fn release_deferred(&mut self) -> bool {
        let mut any = false;
        loop {
            if let Some((id, seq)) = self.drain_op {
                if self.is_live(id, seq) {
                    return any;
                }
                self.drain_op = None;
            }
            let Some(front) = self.deferred.front() else {
                return any;
            };
            if front.flags.contains(SqeFlags::IO_DRAIN) && !self.ops.is_empty() {
                return any;
            }
            if let Some(sqe) = self.deferred.pop_front() {
                any = true;
                self.submit(sqe);
            }
        }
    }

    fn is_live(&self, id: usize, seq: u64) -> bool {
        self.ops.get(id).is_some_and(|e| e.seq == seq)
    }

    /// Enters one operation in the table and starts it, unless its link
    /// chain makes it wait.
    fn submit(&mut self, sqe: Sqe) {
        let taking = self.taking.replace(sqe.batch);
        self.start_entry(sqe);
        self.taking = taking;
    }

    fn start_entry(&mut self, sqe: Sqe) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let Sqe {
            op,
            user_data,
            flags,
            batch,
        } = sqe;
        // A registered file's descriptor is known once the operation
        // starts; until then its number is a slot (the span shows that).
        let fixed = flags.contains(SqeFlags::FIXED_FILE) && op.takes_fixed_file();
        let fd = if fixed { None } else { op.fd() };
        // A result is an i32: a request past it is short whatever happens.
        let want = op.wanted_len().map(|w| w.min(u32::MAX as usize) as u32);
        let span = tracing::trace_span!(
            "op",
            op = op.name(),
            user_data,
            fd = op.fd().unwrap_or(-1),
            fixed,
            res = tracing::field::Empty
        );
        let is_link_timeout = matches!(op, Op::LinkTimeout(_));
        let id = self.ops.insert(Entry {
            user_data,
            flags,
            seq,
            op,
            fd,
            span,
            state: State::Waiting,
            holds_file: false,
            kind: None,
            want,
            links: None,
            quiet: false,
            chain_cancelled: false,
            cancel_asked: false,
            claim: None,
        });
        if flags.contains(SqeFlags::IO_DRAIN) {
            self.drain_op = Some((id, seq));
        }
        let links_on = flags.contains(SqeFlags::IO_LINK) || flags.contains(SqeFlags::IO_HARDLINK);
        let mut pred = std::mem::replace(&mut self.open_link, OpenLink::None);
        // A chain left open at the end of a submission ends there.
        if batch != self.open_link_batch {
            pred = OpenLink::None;
        }
        self.open_link_batch = batch;
        if is_link_timeout {
            return self.attach_link_timeout(id, seq, pred, links_on);
        }
        let start_now = match pred {
            OpenLink::InFlight(pid, pseq) if self.is_live(pid, pseq) => {
                self.ops[pid].links_mut().next = Some((id, seq));
                self.ops[id].state = State::Linked;
                false
            }
            OpenLink::Finished {
                failed: true,
                quiet,
            } => {
                if links_on {
                    self.open_link = OpenLink::InFlight(id, seq);
                }
                self.ops[id].quiet = quiet;
                self.ops[id].chain_cancelled = true;
                return self.complete(id, -libc::ECANCELED);
            }
            _ => true,
        };
        // Set before starting: an operation that completes at once turns
        // it into `Finished`.
        if links_on {
            self.open_link = OpenLink::InFlight(id, seq);
        }
        if start_now {
            self.start(id);
        }
    }

    /// A LinkTimeout binds to the entry before it, which must carry a
    /// link flag; its own link flag carries that entry's chain on.
    fn attach_link_timeout(&mut self, id: usize, seq: u64, pred: OpenLink, links_on: bool) {
        self.ops[id].state = State::Timer;
        match pred {
            OpenLink::InFlight(pid, pseq) if self.is_live(pid, pseq) => {
                self.ops[pid].links_mut().link_timeout = Some((id, seq));
                self.ops[id].links_mut().bounds = Some((pid, pseq));
                if self.ops[pid].state != State::Linked {
                    self.arm_link_timeout(id);
                }
                if links_on {
                    self.open_link = pred;
                }
            }
            OpenLink::Finished { failed, quiet } => {
                // The operation it would bound has already finished.
                self.ops[id].quiet = quiet && failed;
                self.complete(id, -libc::ECANCELED);
                if links_on {
                    self.open_link = OpenLink::Finished { failed, quiet };
                }
            }
            _ => {
                self.complete(id, -libc::EINVAL);
                if links_on {
                    self.open_link = OpenLink::Finished {
                        failed: true,
                        quiet: false,
                    };
                }
            }
        }
    }

    fn arm_link_timeout(&mut self, id: usize) {
        let entry = &mut self.ops[id];
        if let Op::LinkTimeout(t) = entry.op {
            entry.links_mut().deadline =
                crate::ops::time::deadline(t.time, t.absolute, Instant::now());
            if let Some(d) = entry.links().deadline {
                self.timers.push(Reverse((d, entry.seq, id)));
            }
        }
    }

    fn start(&mut self, id: usize) {
        let entry = &mut self.ops[id];
        entry.state = State::Waiting;
        if let Some((lt, lseq)) = entry.links().link_timeout
            && self
                .ops
                .get(lt)
                .is_some_and(|e| e.seq == lseq && e.links().deadline.is_none())
        {
            self.arm_link_timeout(lt);
        }
        let entry = &mut self.ops[id];
        let _enter = entry.span.clone().entered();
        let select = entry.flags.contains(SqeFlags::BUFFER_SELECT);
        let checked = if select {
            entry.op.enable_select()
        } else {
            Ok(())
        };
        if let Err(res) = checked.and_then(|()| entry.op.validate(select)) {
            return self.complete(id, res);
        }
        if entry.flags.contains(SqeFlags::FIXED_FILE)
            && let Err(res) = self.take_fixed_file(id)
        {
            return self.complete(id, res);
        }
        let entry = &mut self.ops[id];
        match &entry.op {
            Op::Nop(_) => self.complete(id, 0),
            Op::Read(_)
            | Op::Write(_)
            | Op::Readv(_)
            | Op::Writev(_)
            | Op::Accept(_)
            | Op::Connect(_)
            | Op::Recv(_)
            | Op::Send(_)
            | Op::RecvMsg(_)
            | Op::SendMsg(_) => self.start_io(id),
            Op::Socket(_) | Op::Bind(_) | Op::Listen(_) | Op::Shutdown(_) => {
                let res = net::direct(&entry.op);
                let res = self.install_direct(id, res);
                self.complete(id, res);
            }
            Op::FilesUpdate(_) => {
                let mut retired = Vec::new();
                let res = match &mut self.ops[id].op {
                    Op::FilesUpdate(u) => self.files.update(u, &mut retired),
                    _ => -libc::EINVAL,
                };
                for fd in retired {
                    self.retire(fd);
                }
                self.complete(id, res);
            }
            Op::ProvideBuffers(_) | Op::RemoveBuffers(_) => {
                let res = self.run_buffers_op(id);
                self.complete(id, res);
            }
            Op::PollAdd(p) => {
                let p = *p;
                self.start_poll(id, p.fd, p.events, p.multishot);
            }
            Op::PollRemove(r) => {
                let target = r.target;
                let res = self
                    .remove_matching(|e| matches!(e.op, Op::PollAdd(_)) && e.user_data == target);
                self.complete(id, res);
            }
            Op::Timeout(t) => {
                let t = *t;
                self.start_timeout(id, t);
            }
            Op::TimeoutRemove(r) => {
                let target = r.target;
                let res = self
                    .remove_matching(|e| matches!(e.op, Op::Timeout(_)) && e.user_data == target);
                self.complete(id, res);
            }
            Op::TimeoutUpdate(u) => {
                let u = *u;
                let res = self.update_timeout(u);
                self.complete(id, res);
            }
            // Armed when the operation it bounds starts.
            Op::LinkTimeout(_) => {}
            Op::AsyncCancel(c) => {
                let c = *c;
                let res = self.cancel(id, c.target, c.all);
                self.complete(id, res);
            }
            Op::Close(c) if c.fixed => {
                let res = match self.files.remove(c.fd as u32) {
                    Ok(last) => {
                        if let Some(fd) = last {
                            self.retire(fd);
                        }
                        0
                    }
                    Err(res) => res,
                };
                self.complete(id, res);
            }
            Op::Close(c) => {
                let fd = c.fd;
                // kqueue drops a descriptor's registrations when it closes,
                // so whatever waits on it would wait forever: end it now.
                for waiter in self.fds.take_all(fd) {
                    self.complete(waiter, -libc::ECANCELED);
                }
                self.offload(id);
            }
        }
    }

    /// Puts the descriptor that the entry's slot holds in place of the
    /// slot index, held until the operation completes. A `Close` names a
    /// slot its own way: the flag on one is `-EBADF`, as in io_uring.
    fn take_fixed_file(&mut self, id: usize) -> Result<(), i32> {
        let entry = &mut self.ops[id];
        if matches!(entry.op, Op::Close(_)) {
            return Err(-libc::EBADF);
        }
        let Some(fd) = entry.op.fd_mut() else {
            // io_uring ignores the flag on an operation without a file.
            return Ok(());
        };
        let held = self.files.hold(*fd as u32)?;
        *fd = held;
        entry.fd = Some(held);
        entry.holds_file = true;
        Ok(())
    }

    /// A descriptor that a direct `Accept` or `Socket` made (`res`) goes
    /// into the file table; returns the operation's `res` then.
    fn install_direct(&mut self, id: usize, res: i32) -> i32 {
        let Some(slot) = self.ops[id].op.direct_slot() else {
            return res;
        };
        if res < 0 {
            return res;
        }
        // SAFETY: `res` is the descriptor the operation's syscall just
        // made; nothing else knows of it.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        match self.files.install(slot, fd) {
            Ok((res, replaced)) => {
                if let Some(old) = replaced {
                    self.retire(old);
                }
                res
            }
            Err(res) => res,
        }
    }

    /// A ring-owned descriptor is done with: its registrations go at the
    /// next reconcile, and it closes after that `kevent` call.
    fn retire(&mut self, fd: OwnedFd) {
        for waiter in self.fds.take_all(fd.as_raw_fd()) {
            self.remove_from_fds(waiter);
            self.complete(waiter, -libc::ECANCELED);
        }
        self.retired.push(fd);
    }

    fn start_io(&mut self, id: usize) {
        let entry = &mut self.ops[id];
        let Some(dir) = exec::direction(&entry.op) else {
            return self.complete(id, -libc::EINVAL);
        };
        let fd = entry.op.fd().unwrap_or(-1);
        // Network operations are always evented.
        if entry.flags.contains(SqeFlags::ASYNC) && !entry.op.is_net() {
            return self.offload(id);
        }
        // Queue behind earlier operations on the same (fd, direction) so
        // they complete in submission order. A read whose buffer group is
        // empty is tried, though: it fails with -ENOBUFS at once, as in
        // io_uring, whether data is there or not.
        if self.fds.has_io_waiters(fd, dir)
            || (self.may_skip_try(fd, dir) && !self.bufs.runs_dry(&mut self.ops[id].op))
        {
            self.fds.push_io(fd, dir, id);
            return;
        }
        if let Some(dir) = self.attempt_until_wait(id, fd, None) {
            self.fds.push_io(fd, dir, id);
        }
    }

    /// Whether a read of (fd, dir) may wait without trying first, because
    /// the last read emptied the descriptor and trying would only say
    /// EAGAIN (a syscall saved per message in request-response traffic).
    /// Whatever comes after that read brings a readiness event, which
    /// clears the mark; but an end of stream already reported brings no
    /// other. So either the wait adds the registration, which reports the
    /// state already there, or no event of the registration in place has
    /// carried the end of the stream.
    fn may_skip_try(&self, fd: i32, dir: Dir) -> bool {
        self.fds.is_drained(fd, dir)
            && (self.fds.reports_current(fd, dir) || !self.fds.eof_seen(fd, dir))
    }

    /// Tries operation `id` once without blocking. One that selects a
    /// provided buffer takes it first, and puts it back unless the attempt
    /// used it: nothing was ready, or the call failed (or, for a receive,
    /// saw the end of the stream, as io_uring recycles the buffer then).
    fn try_io(&mut self, id: usize) -> Attempt {
        let entry = &mut self.ops[id];
        let _enter = entry.span.enter();
        if let Err(res) = self.bufs.pick(&mut entry.op) {
            return Attempt::Done(res);
        }
        let asked = exec::read_request(&entry.op);
        let attempt = exec::attempt(&mut entry.op, &mut entry.kind);
        if let Some(fd) = entry.op.fd()
            && exec::direction(&entry.op) == Some(Dir::Read)
        {
            let short = matches!((attempt, asked), (Attempt::Done(n), Some(asked))
                if n > 0 && (n as usize) < asked);
            let drained = short && self.fds.is_byte_stream(fd, sys::io::is_byte_stream);
            self.fds.set_drained(fd, Dir::Read, drained);
        }
        if matches!(attempt, Attempt::Wait(_)) {
            self.shared
                .stats
                .would_block
                .fetch_add(1, Ordering::Relaxed);
        }
        let unused = match attempt {
            Attempt::Wait(_) => true,
            Attempt::Done(res) => {
                res < 0 || (res == 0 && matches!(entry.op, Op::Recv(_) | Op::RecvMsg(_)))
            }
            Attempt::Offload => false,
        };
        if unused {
            self.bufs.unpick(&mut entry.op);
        }
        attempt
    }

    /// Tries operation `id` until it has to wait — returns the direction
    /// it waits in — or has finished. A multishot operation posts a
    /// completion with `F_MORE` for each success and tries again, unless
    /// that emptied the descriptor. `ready`: the readiness event being
    /// served, `id` at the head of `fd`'s waiters (it leaves them when it
    /// finishes); `None` for an operation just submitted.
    fn attempt_until_wait(&mut self, id: usize, fd: i32, ready: Option<Readiness>) -> Option<Dir> {
        let queued = ready.is_some();
        let eof_error = ready.map_or(0, |r| r.error);
        loop {
            match self.try_io(id) {
                // A connect in progress whose socket failed: the error came
                // with the event (the compat has read, and so cleared,
                // SO_ERROR).
                Attempt::Wait(_)
                    if eof_error != 0
                        && matches!(&self.ops[id].op, Op::Connect(c) if c.started) =>
                {
                    if queued {
                        self.fds.remove(fd, id);
                    }
                    self.complete(id, -eof_error);
                    return None;
                }
                Attempt::Wait(dir) => return Some(dir),
                Attempt::Offload => {
                    if queued {
                        self.fds.remove(fd, id);
                    }
                    self.offload(id);
                    return None;
                }
                Attempt::Done(res) => {
                    let res = self.install_direct(id, res);
                    let op = &self.ops[id].op;
                    let res = if res == 0 && eof_error != 0 && op.zero_is_eof() {
                        -eof_error
                    } else {
                        res
                    };
                    if op.continues(res) {
                        self.post_shot(id, res);
                        if self.may_skip_try(fd, Dir::Read) {
                            return Some(Dir::Read);
                        }
                        continue;
                    }
                    if queued {
                        self.fds.remove(fd, id);
                    }
                    self.complete(id, res);
                    return None;
                }
            }
        }
    }

    /// Runs a `ProvideBuffers` or `RemoveBuffers`; returns its `res`.
    fn run_buffers_op(&mut self, id: usize) -> i32 {
        match &mut self.ops[id].op {
            Op::ProvideBuffers(p) => self.bufs.provide(p.group, p.bid, &mut p.bufs),
            Op::RemoveBuffers(r) => match self.bufs.remove(r.group, r.n) {
                Ok(removed) => {
                    let n = removed.len() as i32;
                    r.removed = Some(removed);
                    n
                }
                Err(res) => res,
            },
            _ => -libc::EINVAL,
        }
    }

    fn start_poll(&mut self, id: usize, fd: i32, events: u32, multishot: bool) {
        match exec::poll_ready(fd, events) {
            Err(res) => return self.complete(id, res),
            Ok(0) => {}
            Ok(mask) if !multishot => return self.complete(id, mask as i32),
            // A new registration reports the readiness already there as
            // its first event, which posts then: posting now as well would
            // report the same readiness twice. Only registrations that
            // exist already (and won't fire for old news) need it now.
            Ok(mask) => {
                let registered = exec::poll_dirs(events)
                    .into_iter()
                    .flatten()
                    .all(|dir| !self.fds.reports_current(fd, dir));
                if registered {
                    self.post_more(id, mask as i32);
                }
            }
        }
        for dir in exec::poll_dirs(events).into_iter().flatten() {
            self.fds.push_poll(fd, dir, id);
        }
    }

    fn start_timeout(&mut self, id: usize, t: crate::ops::Timeout) {
        let entry = &mut self.ops[id];
        entry.state = State::Timer;
        entry.links_mut().deadline = crate::ops::time::deadline(t.time, t.absolute, Instant::now());
        let seq = entry.seq;
        if let Some(deadline) = entry.links().deadline {
            self.timers.push(Reverse((deadline, seq, id)));
        }
        if t.count > 0 {
            self.counts.push(CountWait {
                target: self.posted + u64::from(t.count),
                id,
                seq,
            });
        }
    }

    fn update_timeout(&mut self, u: crate::ops::TimeoutUpdate) -> i32 {
        let found = self.ops.iter_mut().find(|(_, e)| {
            e.user_data == u.target && e.state == State::Timer && matches!(e.op, Op::Timeout(_))
        });
        let Some((id, entry)) = found else {
            return -libc::ENOENT;
        };
        entry.links_mut().deadline = crate::ops::time::deadline(u.time, u.absolute, Instant::now());
        if let Some(d) = entry.links().deadline {
            self.timers.push(Reverse((d, entry.seq, id)));
        }
        0
    }

    fn offload(&mut self, id: usize) {
        let entry = &mut self.ops[id];
        // A read that selects a buffer takes it now: the pool is where its
        // data is ready.
        if let Err(res) = self.bufs.pick(&mut entry.op) {
            return self.complete(id, res);
        }
        entry.state = State::Running;
        let claim = Arc::new(pool::Claim::default());
        entry.claim = Some(Arc::clone(&claim));
        let op = std::mem::replace(&mut entry.op, Op::Nop(crate::ops::Nop::new()));
        let job = pool::Job {
            id,
            seq: entry.seq,
            op,
            span: entry.span.clone(),
            kind: entry.kind,
            claim,
        };
        self.outbox.push((job, self.taking));
    }

    /// Whether `batch` (a submission's number) has been submitted.
    fn submitted(&self, batch: Option<u64>) -> bool {
        batch.is_none_or(|b| b < self.shared.submissions.load(Ordering::Acquire))
    }

    /// Hands the pool the jobs of submissions made.
    fn send_offloaded(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.outbox)
            .into_iter()
            .partition(|&(_, batch)| self.submitted(batch));
        self.outbox = waiting;
        for (job, _) in ready {
            match self.pool.submit(job) {
                Ok(()) => {
                    self.shared.stats.offloaded.fetch_add(1, Ordering::Relaxed);
                }
                Err(job) => {
                    self.ops[job.id].op = job.op;
                    self.complete(job.id, -libc::ECANCELED);
                }
            }
        }
    }

    /// Withdraws operation `id` from the pool if no worker has started it.
    fn withdraw(&self, id: usize) -> bool {
        self.ops[id].claim.as_ref().is_some_and(|c| c.withdraw())
    }

    fn take_pool_results(&mut self) -> bool {
        let mut any = false;
        while let Ok(done) = self.pool.done.try_recv() {
            any = true;
            if self.ops.get(done.id).is_some_and(|e| e.seq == done.seq) {
                let entry = &mut self.ops[done.id];
                entry.op = done.op;
                entry.claim = None;
                // An ASYNC operation on a non-blocking descriptor that was
                // not ready waits for readiness like any other, as
                // io_uring's worker punts it to poll.
                if crate::sys::errno::Errno::new(-done.res).would_block()
                    && !entry.cancel_asked
                    && let (Some(fd), Some(dir)) = (entry.fd, exec::direction(&entry.op))
                {
                    entry.state = State::Waiting;
                    self.fds.push_io(fd, dir, done.id);
                    continue;
                }
                let res = if crate::sys::errno::Errno::new(-done.res).would_block()
                    && entry.cancel_asked
                {
                    -libc::ECANCELED
                } else {
                    self.install_direct(done.id, done.res)
                };
                self.complete(done.id, res);
            }
        }
        any
    }

    fn fire_timers(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&Reverse((deadline, seq, id))) = self.timers.peek() {
            if deadline > now {
                break;
            }
            self.timers.pop();
            let due = self.ops.get(id).is_some_and(|e| {
                e.seq == seq && e.state == State::Timer && e.links().deadline == Some(deadline)
            });
            if !due {
                continue;
            }
            any = true;
            match self.ops[id].links().bounds {
                Some((target, tseq)) if self.is_live(target, tseq) => {
                    if self.ops[target].state == State::Running && !self.withdraw(target) {
                        self.ops[target].cancel_asked = true;
                        self.complete(id, -libc::EALREADY);
                    } else if self.ops[target].state == State::Running {
                        // Withdrawn: the pool hands it back -ECANCELED.
                        self.complete(id, -crate::sys::ETIME);
                    } else {
                        self.complete(id, -crate::sys::ETIME);
                        self.remove_from_fds(target);
                        self.complete(target, -libc::ECANCELED);
                    }
                }
                _ => self.complete(id, -crate::sys::ETIME),
            }
        }
        any
    }

    /// Completes count-bound timeouts whose count has been reached.
    fn check_counts(&mut self) {
        let mut i = 0;
        while i < self.counts.len() {
            let c = &self.counts[i];
            if self.posted >= c.target {
                let (id, seq) = (c.id, c.seq);
                self.counts.swap_remove(i);
                if self
                    .ops
                    .get(id)
                    .is_some_and(|e| e.seq == seq && e.state == State::Timer)
                {
                    self.complete(id, 0);
                }
            } else {
                i += 1;
            }
        }
    }

    fn on_event(&mut self, ev: &Event) -> bool {
        if ev.token() == WAKE_TOKEN {
            self.shared.waker.reset();
            return false;
        }
        let Some(dir) = Dir::from_filter(ev.filter()) else {
            return false;
        };
        let fd = ev.ident() as i32;
        if ev.is_error() {
            // A failed EV_ADD leaves the waiters with nothing to wake them:
            // fail them. A failed EV_DELETE (the fd was closed first) needs
            // nothing.
            if let Some(err) = ev.error()
                && self.fds.is_registered(fd, dir)
            {
                self.fds.unregister(fd, dir);
                let res = -err.raw_os_error().unwrap_or(libc::EIO);
                if let Some(w) = self.fds.waiters(fd, dir) {
                    for id in w.take() {
                        self.remove_from_fds(id);
                        self.complete(id, res);
                    }
                }
            }
            return true;
        }
        if !self.fds.is_registered(fd, dir) {
            return false;
        }
        // A read that sees a plain end of stream reports the error the
        // event carried, as it would on BSD.
        let ready = Readiness {
            eof: ev.is_eof(),
            error: if ev.is_eof() { ev.fflags() as i32 } else { 0 },
        };
        // New readiness: whatever the last read found is old news.
        self.fds.set_drained(fd, dir, false);
        if ready.eof {
            self.fds.set_eof(fd, dir);
        }
        self.serve_polls(fd, dir);
        self.serve_io(fd, dir, ready);
        true
    }

    fn serve_polls(&mut self, fd: i32, dir: Dir) {
        let Some(w) = self.fds.waiters(fd, dir) else {
            return;
        };
        let polls = w.polls().to_vec();
        for id in polls {
            let Some(Op::PollAdd(p)) = self.ops.get(id).map(|e| &e.op) else {
                continue;
            };
            let p = *p;
            match exec::poll_ready(fd, p.events) {
                Ok(0) => {}
                Ok(mask) if p.multishot => self.post_more(id, mask as i32),
                Ok(mask) => {
                    self.fds.remove(fd, id);
                    self.complete(id, mask as i32);
                }
                Err(res) => {
                    self.fds.remove(fd, id);
                    self.complete(id, res);
                }
            }
        }
    }

    fn serve_io(&mut self, fd: i32, dir: Dir, ready: Readiness) {
        while let Some(id) = self.fds.waiters(fd, dir).and_then(|w| w.first_io()) {
            if self.attempt_until_wait(id, fd, Some(ready)).is_some() || self.may_skip_try(fd, dir)
            {
                break;
            }
        }
    }

    /// Cancels what `target` matches (not `canceller` itself). Returns the
    /// AsyncCancel's `res`.
    fn cancel(&mut self, canceller: usize, target: CancelTarget, all: bool) -> i32 {
        // io_uring: IORING_ASYNC_CANCEL_ANY implies ALL.
        let all = all || target == CancelTarget::Any;
        let target = match target {
            CancelTarget::Fixed(slot) => match self.files.lookup(slot) {
                Ok(fd) => CancelTarget::Fd(fd),
                Err(res) => return res,
            },
            t => t,
        };
        let matches: Vec<(usize, u64)> = self
            .ops
            .iter()
            .filter(|(id, e)| {
                // A link member that has not started is in no list io_uring
                // searches: it can only go with its chain.
                *id != canceller
                    && e.state != State::Linked
                    && match target {
                        CancelTarget::UserData(ud) => e.user_data == ud,
                        CancelTarget::Fd(fd) => e.fd == Some(fd),
                        CancelTarget::Any => true,
                        CancelTarget::Fixed(_) => false,
                    }
            })
            .map(|(id, e)| (id, e.seq))
            .collect();
        let mut cancelled = 0;
        let mut running = 0;
        for (id, seq) in matches {
            if !all && cancelled + running > 0 {
                break;
            }
            // Completing one match can complete others (the rest of its
            // chain, its link timeout): those are already answered.
            if !self.is_live(id, seq) {
                continue;
            }
            if self.ops[id].state == State::Running && self.withdraw(id) {
                // The pool hands it back -ECANCELED, with its buffer.
                cancelled += 1;
            } else if self.ops[id].state == State::Running {
                self.ops[id].cancel_asked = true;
                running += 1;
            } else {
                self.remove_from_fds(id);
                self.complete(id, -libc::ECANCELED);
                cancelled += 1;
            }
        }
        match (all, cancelled, running) {
            (_, 0, 0) => -libc::ENOENT,
            (_, 0, _) => -libc::EALREADY,
            (true, n, _) => n,
            (false, _, _) => 0,
        }
    }

    /// Removes the first operation `pred` matches, completing it with
    /// `-ECANCELED`; the remover's `res` (0, or `-ENOENT`).
    fn remove_matching(&mut self, pred: impl Fn(&Entry) -> bool) -> i32 {
        let found = self
            .ops
            .iter()
            .find(|(_, e)| e.state != State::Running && pred(e))
            .map(|(id, _)| id);
        match found {
            Some(id) => {
                self.remove_from_fds(id);
                self.complete(id, -libc::ECANCELED);
                0
            }
            None => -libc::ENOENT,
        }
    }

    fn remove_from_fds(&mut self, id: usize) {
        let entry = &self.ops[id];
        if entry.state == State::Waiting
            && let Some(fd) = entry.fd
        {
            self.fds.remove(fd, id);
        }
    }

    /// Posts a completion with `F_MORE` for a multishot operation that
    /// stays in flight.
    fn post_more(&mut self, id: usize, res: i32) {
        let entry = &self.ops[id];
        let cqe = Cqe {
            user_data: entry.user_data,
            res,
            flags: cqe_flags::MORE,
            buf: None,
            addr: None,
        };
        self.post(cqe, true);
    }

    /// Posts a multishot network operation's completion with `F_MORE`,
    /// with the buffer and address of this shot.
    fn post_shot(&mut self, id: usize, res: i32) {
        let entry = &mut self.ops[id];
        let flags = cqe_flags::MORE | bufs::held_flags(&mut entry.op);
        let cqe = Cqe {
            user_data: entry.user_data,
            res,
            flags,
            buf: entry.op.take_buffer(),
            addr: entry.op.take_addr(),
        };
        self.post(cqe, true);
    }

    /// Ends operation `id` with `res`: its span records the result, its
    /// buffer rides back in the completion, and its link chain goes on or
    /// is cancelled.
    fn complete(&mut self, id: usize, res: i32) {
        let mut entry = self.ops.remove(id);
        entry.span.record("res", res);
        if entry.holds_file
            && let Some(fd) = entry.fd
            && let Some(last) = self.files.release(fd)
        {
            self.retire(last);
        }
        let counts = !matches!(entry.op, Op::Timeout(_) | Op::LinkTimeout(_));
        // A failed operation's provided buffer goes back to its group.
        if res < 0 {
            self.bufs.unpick(&mut entry.op);
        }
        let flags = bufs::held_flags(&mut entry.op);
        // A read into a provided buffer asked for that buffer's size.
        let want = entry.want.or_else(|| entry.op.selected_len());
        let buf = entry.op.take_buffer();
        let addr = entry.op.take_addr();
        if !entry.quiet && (res < 0 || !entry.flags.contains(SqeFlags::CQE_SKIP_SUCCESS)) {
            self.post(
                Cqe {
                    user_data: entry.user_data,
                    res,
                    flags,
                    buf,
                    addr,
                },
                counts,
            );
        }
        // io_uring fails a link on an error, and on a short read or write.
        let short = res >= 0 && want.is_some_and(|w| (res as u32) < w);
        let failed = (res < 0 || short) && !entry.flags.contains(SqeFlags::IO_HARDLINK);
        // A failure of an entry with CQE_SKIP_SUCCESS posts its own CQE
        // but none for the members it cancels (io_uring's
        // REQ_F_SKIP_LINK_CQES); a quiet member passes that on.
        let quiet_rest = failed
            && if entry.chain_cancelled {
                entry.quiet
            } else {
                entry.flags.contains(SqeFlags::CQE_SKIP_SUCCESS)
            };
        if let Some((lt, lseq)) = entry.links().link_timeout
            && self.is_live(lt, lseq)
        {
            // The operation finished before its LinkTimeout.
            self.ops[lt].quiet |= entry.quiet;
            self.complete(lt, -libc::ECANCELED);
        }
        if let Some((next, nseq)) = entry.links().next
            && self.is_live(next, nseq)
        {
            if failed {
                self.ops[next].quiet |= quiet_rest;
                self.ops[next].chain_cancelled = true;
                self.complete(next, -libc::ECANCELED)
            } else {
                self.start(next)
            }
        }
        if self.open_link == OpenLink::InFlight(id, entry.seq) {
            self.open_link = OpenLink::Finished {
                failed,
                quiet: quiet_rest,
            };
        }
    }

    fn post(&mut self, cqe: Cqe, counts: bool) {
        self.pending.push_back(cqe);
        if counts {
            self.posted += 1;
            if !self.counts.is_empty() {
                self.check_counts();
            }
        }
    }

    /// Ends everything in flight with `-ECANCELED` (the ring is going
    /// away), stops the pool, and posts what the CQ can take.
    pub(crate) fn shutdown(&mut self) {
        while let Some(sqe) = self.deferred.pop_front() {
            self.submit_cancelled(sqe);
        }
        while let Ok(sqe) = self.sq.try_recv() {
            self.submit_cancelled(sqe);
        }
        // Never sent: as good as unstarted.
        for (job, _) in std::mem::take(&mut self.outbox) {
            self.ops[job.id].op = job.op;
            self.complete(job.id, -libc::ECANCELED);
        }
        let (unstarted, done) = self.pool.shutdown();
        for job in unstarted {
            if self.ops.get(job.id).is_some_and(|e| e.seq == job.seq) {
                self.ops[job.id].op = job.op;
                self.complete(job.id, -libc::ECANCELED);
            }
        }
        for d in done {
            if self.ops.get(d.id).is_some_and(|e| e.seq == d.seq) {
                self.ops[d.id].op = d.op;
                // One the worker handed back to wait is cancelled with the
                // rest.
                let res = if crate::sys::errno::Errno::new(-d.res).would_block() {
                    -libc::ECANCELED
                } else {
                    d.res
                };
                self.complete(d.id, res);
            }
        }
        // Completing one may complete others (its chain, its timeout).
        while let Some(id) = self.ops.iter().next().map(|(id, _)| id) {
            self.remove_from_fds(id);
            self.complete(id, -libc::ECANCELED);
        }
        self.fds.release_all(&mut self.changes);
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
        self.shared.cq.post_all(&mut self.pending);
        self.shared.cq.close();
    }

    /// An entry taken during shutdown completes as cancelled without
    /// running.
    fn submit_cancelled(&mut self, sqe: Sqe) {
        let Sqe {
            mut op, user_data, ..
        } = sqe;
        let buf = op.take_buffer();
        self.post(
            Cqe {
                user_data,
                res: -libc::ECANCELED,
                flags: 0,
                buf,
                addr: None,
            },
            true,
        );
    }
}
