//! Per-descriptor waiter queues and their kevent registrations.
//!
//! Operations waiting on one (fd, direction) queue in submission order;
//! however many there are, they share one registration, `EV_ADD |
//! EV_CLEAR`. Edge-triggered is right here because a waiter retries its
//! syscall until EAGAIN before waiting again, so no readiness goes unused.
//!
//! A registration outlives its last waiter for a while ("idle"): servers
//! wait on the same descriptors over and over, and deleting and re-adding
//! costs two changes per wait (on the Linux compat, two `epoll_ctl` calls).
//! An idle registration is not trusted, though: the owner may have closed
//! the descriptor and opened another file under the same number, which
//! kqueue's `close()` and epoll's file release silently unregister. So the
//! first waiter after an idle spell re-adds it, one change that kqueue
//! applies to whatever file the number names now (the compat: one
//! `EPOLL_CTL_MOD`), and that reports the readiness already there as a new
//! registration would. The exception is a descriptor the ring owns (a
//! registered file): nobody else can close it, so its idle registration
//! is still its own and is taken back as it is. Idle registrations are
//! deleted by a sweep once they have stayed idle a whole [`IDLE_SWEEP`]
//! period, at a `Close`, and at shutdown, so nothing stays behind for a
//! descriptor kqring is done with.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::fdmap::FdMap;
use crate::sys::{self, Change, Filter, Flags};

/// How often idle registrations are swept; one idle through a whole
/// period is deleted.
pub(crate) const IDLE_SWEEP: Duration = Duration::from_secs(1);

/// A readiness direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

impl Dir {
    const BOTH: [Dir; 2] = [Dir::Read, Dir::Write];

    pub(crate) fn filter(self) -> Filter {
        match self {
            Dir::Read => Filter::READ,
            Dir::Write => Filter::WRITE,
        }
    }

    pub(crate) fn from_filter(filter: Filter) -> Option<Dir> {
        match filter {
            Filter::READ => Some(Dir::Read),
            Filter::WRITE => Some(Dir::Write),
            _ => None,
        }
    }
}

/// What the kqueue holds for one direction of one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Reg {
    /// Nothing.
    #[default]
    Off,
    /// A registration that waiters rely on.
    Active,
    /// A registration kept after its last waiter left; re-added before
    /// anyone relies on it again.
    Idle,
    /// The descriptor is being closed: deleted at the next reconcile,
    /// unless a new waiter wants it re-added.
    Closing,
}

/// The I/O operations waiting on one direction, head first. Most
/// directions have at most one: it is kept inline, and only a second
/// allocates.
#[derive(Default, Debug)]
enum Queue {
    #[default]
    Empty,
    One(usize),
    // Boxed so that the enum is two words, not four: it sits in every
    // descriptor's slot, and a second waiter is rare.
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<usize>>),
}

impl Queue {
    fn front(&self) -> Option<usize> {
        match self {
            Queue::Empty => None,
            Queue::One(id) => Some(*id),
            Queue::Many(q) => q.front().copied(),
        }
    }

    fn push(&mut self, id: usize) {
        match self {
            Queue::Empty => *self = Queue::One(id),
            Queue::One(first) => *self = Queue::Many(Box::new(VecDeque::from([*first, id]))),
            Queue::Many(q) => q.push_back(id),
        }
    }

    fn remove(&mut self, id: usize) -> bool {
        match self {
            Queue::Empty => false,
            Queue::One(only) => {
                let found = *only == id;
                if found {
                    *self = Queue::Empty;
                }
                found
            }
            Queue::Many(q) => {
                let Some(i) = q.iter().position(|&w| w == id) else {
                    return false;
                };
                q.remove(i);
                match q.len() {
                    0 => *self = Queue::Empty,
                    1 => *self = Queue::One(q[0]),
                    _ => {}
                }
                true
            }
        }
    }

    fn take(&mut self) -> Vec<usize> {
        match std::mem::take(self) {
            Queue::Empty => Vec::new(),
            Queue::One(id) => vec![id],
            Queue::Many(q) => Vec::from(*q),
        }
    }
}

/// The waiters of one direction of one descriptor.
#[derive(Default, Debug)]
pub(crate) struct Waiters {
    /// I/O operations, served head first so they complete in order.
    io: Queue,
    /// Poll operations: every one of them hears every readiness event.
    /// Boxed (one word, not three): rare, and most descriptors never have
    /// one.
    #[allow(clippy::box_collection)]
    polls: Option<Box<Vec<usize>>>,
    reg: Reg,
    /// In the sweep list.
    listed: bool,
    /// The sweep period in which it last became idle.
    idle_since: u32,
    /// Read side: the last read returned less than it asked of a byte
    /// stream, so the descriptor was empty then.
    drained: bool,
    /// Read side: whether the descriptor is a byte stream, once asked.
    stream: Stream,
    /// The registration was added while the ring owned the descriptor (a
    /// registered file): nobody else can close it, so it stays current
    /// while idle and is taken back into use without a re-add.
    trusted: bool,
    /// An event of this registration carried the end of the stream, which
    /// no later event reports again.
    eof: bool,
}

/// Whether a descriptor reads as one stream of bytes, as far as known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stream {
    #[default]
    Unknown,
    Bytes,
    Other,
}

impl Waiters {
    fn is_empty(&self) -> bool {
        matches!(self.io, Queue::Empty) && self.polls.is_none()
    }

    /// The I/O operation served next.
    pub(crate) fn first_io(&self) -> Option<usize> {
        self.io.front()
    }

    /// The poll operations.
    pub(crate) fn polls(&self) -> &[usize] {
        self.polls.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Takes every waiter, I/O first.
    pub(crate) fn take(&mut self) -> Vec<usize> {
        let mut ids = self.io.take();
        if let Some(polls) = self.polls.take() {
            ids.extend(*polls);
        }
        ids
    }

    /// Forgets what was learnt about the descriptor: its number may name
    /// another file next.
    fn forget(&mut self) {
        self.drained = false;
        self.stream = Stream::Unknown;
        self.trusted = false;
        self.eof = false;
    }

    fn remove(&mut self, id: usize) -> bool {
        if self.io.remove(id) {
            return true;
        }
        let Some(polls) = &mut self.polls else {
            return false;
        };
        let Some(i) = polls.iter().position(|&w| w == id) else {
            return false;
        };
        polls.swap_remove(i);
        if polls.is_empty() {
            self.polls = None;
        }
        true
    }
}

/// Every descriptor's waiters, indexed by descriptor number, and the
/// registrations to reconcile.
pub(crate) struct FdTable {
    slots: FdMap<[Waiters; 2]>,
    /// Descriptors whose waiters changed since the last reconcile.
    dirty: Vec<RawFd>,
    /// Directions that may be idle, for the sweep.
    idle: Vec<(RawFd, Dir)>,
    /// The current sweep period.
    period: u32,
    next_sweep: Instant,
    /// Directions with an active registration.
    active: usize,
    /// Whether a registration left without waiters stays (idle), or is
    /// deleted before the turn's completions are seen: the latter where
    /// the backend keeps a closed descriptor's registrations
    /// (`sys::KEEPS_CLOSED_REGISTRATIONS`).
    keep_idle: bool,
    /// Registrations left without waiters, to delete (`keep_idle` off).
    deserted: Vec<(RawFd, Dir)>,
}

impl Default for FdTable {
    fn default() -> FdTable {
        FdTable::keeping_idle(!sys::KEEPS_CLOSED_REGISTRATIONS)
    }
}

impl FdTable {
    /// A table whose registrations stay idle without waiters, or not.
    fn keeping_idle(keep_idle: bool) -> FdTable {
        FdTable {
            slots: FdMap::default(),
            dirty: Vec::new(),
            idle: Vec::new(),
            period: 0,
            next_sweep: Instant::now() + IDLE_SWEEP,
            active: 0,
            keep_idle,
            deserted: Vec::new(),
        }
    }

    fn slot(&self, fd: RawFd) -> Option<&[Waiters; 2]> {
        self.slots.get(fd)
    }

    fn slot_mut(&mut self, fd: RawFd) -> Option<&mut [Waiters; 2]> {
        self.slots.get_mut(fd)
    }

    pub(crate) fn waiters(&mut self, fd: RawFd, dir: Dir) -> Option<&mut Waiters> {
        self.slot_mut(fd).map(|w| &mut w[dir as usize])
    }

    /// Whether operations already wait on (fd, dir): a new one must queue
    /// behind them rather than try its syscall, to keep submission order.
    pub(crate) fn has_io_waiters(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd)
            .is_some_and(|w| w[dir as usize].io.front().is_some())
    }

    /// Queues an I/O operation. A descriptor number that is not one
    /// (negative) never gets here: its syscall fails first.
    pub(crate) fn push_io(&mut self, fd: RawFd, dir: Dir, id: usize) {
        if let Some(w) = self.entry(fd, dir) {
            w.io.push(id);
        }
    }

    pub(crate) fn push_poll(&mut self, fd: RawFd, dir: Dir, id: usize) {
        if let Some(w) = self.entry(fd, dir) {
            w.polls.get_or_insert_default().push(id);
        }
    }

    fn entry(&mut self, fd: RawFd, dir: Dir) -> Option<&mut Waiters> {
        let w = &mut self.slots.entry(fd)?[dir as usize];
        if w.reg != Reg::Active {
            self.dirty.push(fd);
        }
        Some(w)
    }

    /// Removes `id` from wherever it waits on `fd`. A registration left
    /// without waiters goes idle.
    pub(crate) fn remove(&mut self, fd: RawFd, id: usize) -> bool {
        let period = self.period;
        let keep_idle = self.keep_idle;
        let Some(dirs) = self.slot_mut(fd) else {
            return false;
        };
        let mut found = false;
        let mut went_idle = [false; 2];
        let mut to_list = [false; 2];
        let mut deserted = [false; 2];
        for (i, w) in dirs.iter_mut().enumerate() {
            if w.remove(id) {
                found = true;
                if w.is_empty() && w.reg == Reg::Active {
                    went_idle[i] = true;
                    if !keep_idle && !w.trusted {
                        // Its owner may close it the moment it sees the
                        // completion: the registration goes first. What
                        // the last read found stays true of the stream.
                        w.reg = Reg::Off;
                        w.trusted = false;
                        w.eof = false;
                        deserted[i] = true;
                    } else {
                        w.reg = Reg::Idle;
                        w.idle_since = period;
                        to_list[i] = !std::mem::replace(&mut w.listed, true);
                    }
                }
            }
        }
        for dir in Dir::BOTH {
            self.active -= usize::from(went_idle[dir as usize]);
            if to_list[dir as usize] {
                self.idle.push((fd, dir));
            }
            if deserted[dir as usize] {
                self.deserted.push((fd, dir));
            }
        }
        found
    }

    /// Takes every waiter of `fd`, both directions, for a close: its
    /// registrations are deleted at the next reconcile.
    pub(crate) fn take_all(&mut self, fd: RawFd) -> Vec<usize> {
        let Some(dirs) = self.slots.get_mut(fd) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for w in dirs.iter_mut() {
            ids.extend(w.take());
            w.forget();
            if w.reg != Reg::Off {
                self.active -= usize::from(w.reg == Reg::Active);
                w.reg = Reg::Closing;
            }
        }
        self.dirty.push(fd);
        ids
    }

    /// Whether (fd, dir) is registered: an event for an unregistered pair
    /// is stale and ignored.
    pub(crate) fn is_registered(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd)
            .is_some_and(|w| w[dir as usize].reg != Reg::Off)
    }

    /// Whether (fd, dir) has a registration that stays as it is: one that
    /// won't report readiness that is already there.
    #[cfg(test)]
    pub(crate) fn is_active(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd)
            .is_some_and(|w| w[dir as usize].reg == Reg::Active)
    }

    /// Whether a waiter of (fd, dir) now would make the next reconcile
    /// add its registration, which reports the readiness already there;
    /// false when a registration in place is used as it is.
    pub(crate) fn reports_current(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd).is_none_or(|w| {
            let w = &w[dir as usize];
            !(w.reg == Reg::Active || (w.reg == Reg::Idle && w.trusted))
        })
    }

    /// Whether an event of (fd, dir) has carried the end of the stream.
    pub(crate) fn eof_seen(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd).is_some_and(|w| w[dir as usize].eof)
    }

    /// Records that an event of (fd, dir) carried the end of the stream.
    pub(crate) fn set_eof(&mut self, fd: RawFd, dir: Dir) {
        if let Some(w) = self.waiters(fd, dir) {
            w.eof = true;
        }
    }

    /// Whether the last read of (fd, dir) emptied it.
    pub(crate) fn is_drained(&self, fd: RawFd, dir: Dir) -> bool {
        self.slot(fd).is_some_and(|w| w[dir as usize].drained)
    }

    /// Records whether the last read of (fd, dir) emptied it.
    pub(crate) fn set_drained(&mut self, fd: RawFd, dir: Dir, drained: bool) {
        let w = if drained {
            self.slots.entry(fd)
        } else {
            self.slots.get_mut(fd)
        };
        if let Some(w) = w {
            w[dir as usize].drained = drained;
        }
    }

    /// Whether `fd` is a byte stream; `probe` asks the system the first
    /// time, and the answer is kept until a `Close`, a failed
    /// registration or the idle sweep forgets it. A stale answer (the
    /// number closed behind the ring's back and reused) costs only time:
    /// a read that waits needlessly is still woken.
    pub(crate) fn is_byte_stream(&mut self, fd: RawFd, probe: impl FnOnce(RawFd) -> bool) -> bool {
        let Some(dirs) = self.slots.entry(fd) else {
            return false;
        };
        let w = &mut dirs[Dir::Read as usize];
        if w.stream == Stream::Unknown {
            w.stream = if probe(fd) {
                Stream::Bytes
            } else {
                Stream::Other
            };
        }
        w.stream == Stream::Bytes
    }

    /// Deletes the registrations of `fd`, which is closing, at once
    /// rather than at the next reconcile: changes that carry `RECEIPT`, so
    /// that the `kevent` call making them returns their receipts alone.
    pub(crate) fn delete_now(&mut self, fd: RawFd, changes: &mut Vec<Change>) {
        let Some(dirs) = self.slots.get_mut(fd) else {
            return;
        };
        for (dir, w) in Dir::BOTH.into_iter().zip(dirs.iter_mut()) {
            if w.reg == Reg::Closing && w.is_empty() {
                w.reg = Reg::Off;
                changes.push(
                    Change::new(fd as usize, dir.filter(), Flags::DELETE | Flags::RECEIPT)
                        .token(fd as u64),
                );
            }
        }
    }

    /// A registration failed to be added: it is not there.
    pub(crate) fn unregister(&mut self, fd: RawFd, dir: Dir) {
        if let Some(w) = self.waiters(fd, dir) {
            let was = std::mem::take(&mut w.reg);
            w.forget();
            self.active -= usize::from(was == Reg::Active);
            self.dirty.push(fd);
        }
    }

    /// Adds the registrations that waiters need, re-adds idle ones that
    /// have waiters again (unless `owned` says the ring owns the
    /// descriptor and had it when it added them), and deletes those of a
    /// closing descriptor, as changes for the next `kevent` call.
    pub(crate) fn reconcile(&mut self, changes: &mut Vec<Change>, owned: impl Fn(RawFd) -> bool) {
        // Deletions first: a waiter that came since is added afresh after.
        self.take_deserted(changes, Flags::NONE);
        for fd in self.dirty.drain(..) {
            let Some(dirs) = self.slots.get_mut(fd) else {
                continue;
            };
            for (dir, w) in Dir::BOTH.into_iter().zip(dirs.iter_mut()) {
                let wanted = !w.is_empty();
                let flags = match (wanted, w.reg) {
                    (true, Reg::Active) => continue,
                    (true, Reg::Idle) if w.trusted => {
                        self.active += 1;
                        w.reg = Reg::Active;
                        continue;
                    }
                    (true, _) => {
                        self.active += 1;
                        w.trusted = owned(fd);
                        Flags::ADD | Flags::CLEAR
                    }
                    (false, Reg::Closing) => Flags::DELETE,
                    // Idle, or never added; an active one without waiters
                    // went idle when its last one left.
                    (false, _) => continue,
                };
                w.reg = if wanted { Reg::Active } else { Reg::Off };
                changes.push(Change::new(fd as usize, dir.filter(), flags).token(fd as u64));
            }
        }
    }

    /// Deletions of the registrations left without waiters since the last
    /// call (see `KEEPS_CLOSED_REGISTRATIONS`), with `extra` flags.
    pub(crate) fn take_deserted(&mut self, changes: &mut Vec<Change>, extra: Flags) {
        for (fd, dir) in self.deserted.drain(..) {
            changes.push(
                Change::new(fd as usize, dir.filter(), Flags::DELETE | extra).token(fd as u64),
            );
        }
    }

    /// Once per [`IDLE_SWEEP`]: deletes the registrations that stayed idle
    /// through the whole last period.
    pub(crate) fn sweep(&mut self, now: Instant, changes: &mut Vec<Change>) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + IDLE_SWEEP;
        let period = self.period;
        self.period = period.wrapping_add(1);
        let mut idle = std::mem::take(&mut self.idle);
        idle.retain(|&(fd, dir)| {
            let Some(w) = self.waiters(fd, dir) else {
                return false;
            };
            if w.reg == Reg::Idle && w.idle_since == period {
                // Went idle during the last period: give it the next one.
                return true;
            }
            if w.reg == Reg::Idle {
                w.reg = Reg::Off;
                w.forget();
                changes
                    .push(Change::new(fd as usize, dir.filter(), Flags::DELETE).token(fd as u64));
            }
            w.listed = false;
            false
        });
        self.idle = idle;
    }

    /// Deletes every registration, for shutdown.
    pub(crate) fn release_all(&mut self, changes: &mut Vec<Change>) {
        self.dirty.clear();
        self.take_deserted(changes, Flags::NONE);
        for (fd, dirs) in self.slots.iter_mut() {
            for (dir, w) in Dir::BOTH.into_iter().zip(dirs.iter_mut()) {
                if std::mem::take(&mut w.reg) != Reg::Off {
                    changes.push(
                        Change::new(fd as usize, dir.filter(), Flags::DELETE).token(fd as u64),
                    );
                }
            }
        }
        self.active = 0;
        self.idle.clear();
    }

    /// Whether some waiter relies on a registration.
    pub(crate) fn has_active(&self) -> bool {
        self.active > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add() -> Flags {
        Flags::ADD | Flags::CLEAR
    }

    fn changes(table: &mut FdTable) -> Vec<(usize, Filter, Flags)> {
        let mut out = Vec::new();
        table.reconcile(&mut out, |_| false);
        out.iter()
            .map(|c| (c.ident(), c.filter(), c.flags()))
            .collect()
    }

    #[test]
    fn without_idle_registrations_the_last_waiter_deletes_at_once() {
        let mut t = FdTable::keeping_idle(false);
        t.push_io(5, Dir::Read, 1);
        changes(&mut t);
        t.set_drained(5, Dir::Read, true);
        assert!(t.remove(5, 1));
        assert!(!t.is_registered(5, Dir::Read) && !t.has_active());
        let mut out = Vec::new();
        t.take_deserted(&mut out, Flags::RECEIPT);
        let got: Vec<_> = out
            .iter()
            .map(|c| (c.ident(), c.filter(), c.flags()))
            .collect();
        assert_eq!(got, [(5, Filter::READ, Flags::DELETE | Flags::RECEIPT)]);
        // The stream stays emptied, and the next waiter adds afresh, which
        // reports what is there: it may wait without trying.
        assert!(t.is_drained(5, Dir::Read) && t.reports_current(5, Dir::Read));
        t.push_io(5, Dir::Read, 2);
        assert_eq!(changes(&mut t), [(5, Filter::READ, add())]);
        // A registered file's registration is trusted: it stays idle.
        let mut t = FdTable::keeping_idle(false);
        t.push_io(9, Dir::Read, 1);
        t.reconcile(&mut Vec::new(), |_| true);
        assert!(t.remove(9, 1));
        assert!(t.is_registered(9, Dir::Read));
        t.take_deserted(&mut out, Flags::NONE);
        assert_eq!(out.len(), 1, "nothing more to delete");
    }

    #[test]
    fn first_waiter_adds_and_later_waiters_share_it() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(7, Dir::Read, 1);
        t.push_io(7, Dir::Read, 2);
        assert_eq!(changes(&mut t), [(7, Filter::READ, add())]);
        assert!(t.is_active(7, Dir::Read) && t.has_active());
        t.push_io(7, Dir::Read, 3);
        assert_eq!(changes(&mut t), []);
        assert!(!t.is_registered(7, Dir::Write));
    }

    #[test]
    fn an_idle_registration_stays_and_is_re_added_for_the_next_waiter() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(5, Dir::Write, 1);
        changes(&mut t);
        assert!(t.remove(5, 1));
        assert_eq!(changes(&mut t), [], "no delete when the queue empties");
        assert!(
            t.is_registered(5, Dir::Write),
            "events of it are still its own"
        );
        assert!(!t.is_active(5, Dir::Write) && !t.has_active());
        // The number may name another file by now: re-added, not trusted.
        t.push_io(5, Dir::Write, 2);
        assert_eq!(changes(&mut t), [(5, Filter::WRITE, add())]);
        assert!(t.is_active(5, Dir::Write));
    }

    #[test]
    fn the_sweep_deletes_what_stayed_idle_for_a_whole_period() {
        let mut t = FdTable::keeping_idle(true);
        let start = Instant::now();
        for fd in [3, 4] {
            t.push_io(fd, Dir::Read, fd as usize);
        }
        changes(&mut t);
        t.remove(3, 3);
        t.remove(4, 4);
        let mut out = Vec::new();
        t.sweep(start, &mut out);
        assert!(out.is_empty(), "not before a period has passed");
        // Idle since the period that just ended: kept one more period.
        t.sweep(start + IDLE_SWEEP, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Fd 4 works again in the meantime.
        t.push_io(4, Dir::Read, 40);
        changes(&mut t);
        t.sweep(start + 2 * IDLE_SWEEP, &mut out);
        let deleted: Vec<_> = out.iter().map(|c| (c.ident(), c.flags())).collect();
        assert_eq!(deleted, [(3, Flags::DELETE)]);
        assert!(!t.is_registered(3, Dir::Read));
        assert!(t.is_active(4, Dir::Read));
        // Idle again: listed again, and swept two periods later.
        t.remove(4, 40);
        out.clear();
        t.sweep(start + 3 * IDLE_SWEEP, &mut out);
        assert!(out.is_empty(), "{out:?}");
        t.sweep(start + 4 * IDLE_SWEEP, &mut out);
        let deleted: Vec<_> = out.iter().map(|c| c.ident()).collect();
        assert_eq!(deleted, [4]);
        assert!(t.idle.is_empty());
    }

    #[test]
    fn a_close_deletes_at_once_and_shutdown_deletes_everything() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(8, Dir::Read, 1);
        t.push_poll(8, Dir::Write, 2);
        t.push_io(9, Dir::Read, 3);
        t.push_io(10, Dir::Read, 4);
        changes(&mut t);
        t.remove(9, 3);
        t.remove(10, 4);
        // An idle registration goes at its descriptor's close too.
        assert_eq!(t.take_all(10), []);
        assert_eq!(changes(&mut t), [(10, Filter::READ, Flags::DELETE)]);
        // A waiter that comes before the reconcile re-adds it instead.
        t.take_all(9);
        t.push_io(9, Dir::Read, 5);
        assert_eq!(changes(&mut t), [(9, Filter::READ, add())]);
        t.remove(9, 5);
        let mut taken = t.take_all(8);
        taken.sort();
        assert_eq!(taken, [1, 2]);
        assert_eq!(
            changes(&mut t),
            [
                (8, Filter::READ, Flags::DELETE),
                (8, Filter::WRITE, Flags::DELETE)
            ]
        );
        assert!(!t.has_active());
        let mut out = Vec::new();
        t.release_all(&mut out);
        let deleted: Vec<_> = out.iter().map(|c| (c.ident(), c.flags())).collect();
        assert_eq!(deleted, [(9, Flags::DELETE)]);
    }

    #[test]
    fn an_owned_descriptors_idle_registration_is_taken_back_as_it_is() {
        let mut t = FdTable::keeping_idle(true);
        let owned = |fd| fd == 5;
        let changes = |t: &mut FdTable| {
            let mut out = Vec::new();
            t.reconcile(&mut out, owned);
            out.iter()
                .map(|c| (c.ident(), c.flags()))
                .collect::<Vec<_>>()
        };
        for fd in [5, 6] {
            t.push_io(fd, Dir::Read, fd as usize);
        }
        assert_eq!(changes(&mut t), [(5, add()), (6, add())]);
        t.remove(5, 5);
        t.remove(6, 6);
        assert!(t.reports_current(6, Dir::Read) && !t.reports_current(5, Dir::Read));
        t.push_io(5, Dir::Read, 50);
        t.push_io(6, Dir::Read, 60);
        assert_eq!(changes(&mut t), [(6, add())], "only the other is re-added");
        assert!(t.is_active(5, Dir::Read) && t.has_active());
        // A close forgets the trust, and the end of stream seen.
        t.set_eof(5, Dir::Read);
        assert!(t.eof_seen(5, Dir::Read));
        t.remove(5, 50);
        t.take_all(5);
        assert!(!t.eof_seen(5, Dir::Read) && t.reports_current(5, Dir::Read));
        let mut out = Vec::new();
        t.delete_now(5, &mut out);
        let deleted: Vec<_> = out.iter().map(|c| (c.ident(), c.flags())).collect();
        assert_eq!(deleted, [(5, Flags::DELETE | Flags::RECEIPT)]);
        assert!(!t.is_registered(5, Dir::Read));
        assert_eq!(changes(&mut t), [], "deleted already");
    }

    #[test]
    fn a_failed_add_unregisters() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(6, Dir::Read, 1);
        changes(&mut t);
        t.unregister(6, Dir::Read);
        assert!(!t.is_registered(6, Dir::Read) && !t.has_active());
        // Its waiter is still queued: the next reconcile tries again.
        assert_eq!(changes(&mut t), [(6, Filter::READ, add())]);
    }

    #[test]
    fn the_emptied_mark_and_the_stream_kind_go_with_the_registration() {
        let mut t = FdTable::keeping_idle(true);
        assert!(!t.is_drained(4, Dir::Read));
        t.set_drained(4, Dir::Read, true);
        assert!(t.is_drained(4, Dir::Read) && !t.is_drained(4, Dir::Write));
        t.set_drained(4, Dir::Read, false);
        assert!(!t.is_drained(4, Dir::Read));
        // Asked once, then remembered.
        let mut asked = 0;
        for _ in 0..3 {
            assert!(t.is_byte_stream(4, |_| {
                asked += 1;
                true
            }));
        }
        assert_eq!(asked, 1);
        // A close forgets both: the number may name another file next.
        t.set_drained(4, Dir::Read, true);
        t.take_all(4);
        assert!(!t.is_drained(4, Dir::Read));
        assert!(!t.is_byte_stream(4, |_| false));
        assert!(!t.is_byte_stream(-1, |_| true));
    }

    #[test]
    fn negative_descriptors_are_ignored() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(-1, Dir::Read, 1);
        assert_eq!(changes(&mut t), []);
        assert!(!t.remove(-1, 1));
    }
}
