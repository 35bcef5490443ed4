//! Every descriptor's waiters and registrations, indexed by descriptor
//! number: what the driver adds, re-adds and deletes, and what it has
//! learnt about each descriptor on the way.
//!
//! Idle registrations (`registration.rs`) are deleted by a sweep once they
//! have stayed idle a whole [`IDLE_SWEEP`] period, at a `Close`, and at
//! shutdown, so nothing stays behind for a descriptor kqring is done with.
//! Where the backend keeps a closed descriptor's registrations
//! (`sys::KEEPS_CLOSED_REGISTRATIONS`), none stays idle: each is deleted
//! in the turn its last waiter leaves.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::driver::registration::{Reg, change};
use crate::driver::table::OpKey;
use crate::driver::waiters::Waiters;
use crate::fdmap::FdMap;
use crate::ops::Dir;
use crate::sys::{self, Change, Flags};

/// How often idle registrations are swept; one idle through a whole
/// period is deleted.
pub(crate) const IDLE_SWEEP: Duration = Duration::from_secs(1);

const BOTH: [Dir; 2] = [Dir::Read, Dir::Write];

/// Whether a descriptor reads as one stream of bytes, as far as known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stream {
    #[default]
    Unknown,
    Bytes,
    Other,
}

/// One direction of one descriptor.
#[derive(Default, Debug)]
pub(crate) struct Side {
    waiters: Waiters,
    reg: Reg,
    /// In the sweep list.
    listed: bool,
    /// Read side: the last read returned less than it asked of a byte
    /// stream, so the descriptor was empty then.
    drained: bool,
    /// Read side: the read that emptied it was a socket's receive, so a
    /// receive may wait too (one on a descriptor that is no socket must
    /// be tried, and fail at once).
    drained_by_receive: bool,
    /// Read side: whether the descriptor is a byte stream, once asked.
    stream: Stream,
    /// An event of this registration carried the end of the stream, which
    /// no later event reports again.
    eof: bool,
}

impl Side {
    /// Forgets what was learnt about the descriptor: its number may name
    /// another file next.
    fn forget(&mut self) {
        self.drained = false;
        self.drained_by_receive = false;
        self.stream = Stream::Unknown;
        self.eof = false;
    }
}

/// Every descriptor's waiters, and the registrations to reconcile.
pub(crate) struct FdTable {
    slots: FdMap<[Side; 2]>,
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
    /// deleted before the turn's completions are seen.
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

    fn side(&self, fd: RawFd, dir: Dir) -> Option<&Side> {
        self.slots.get(fd).map(|s| &s[dir as usize])
    }

    fn side_mut(&mut self, fd: RawFd, dir: Dir) -> Option<&mut Side> {
        self.slots.get_mut(fd).map(|s| &mut s[dir as usize])
    }

    /// The waiters of (fd, dir).
    pub(crate) fn waiters(&self, fd: RawFd, dir: Dir) -> Option<&Waiters> {
        self.side(fd, dir).map(|s| &s.waiters)
    }

    /// The I/O operation served next on (fd, dir).
    pub(crate) fn first_io(&self, fd: RawFd, dir: Dir) -> Option<OpKey> {
        self.waiters(fd, dir).and_then(Waiters::first_io)
    }

    /// Whether operations already wait on (fd, dir): a new one must queue
    /// behind them rather than try its syscall, to keep submission order.
    pub(crate) fn has_io_waiters(&self, fd: RawFd, dir: Dir) -> bool {
        self.first_io(fd, dir).is_some()
    }

    /// Queues an I/O operation. A descriptor number that is not one
    /// (negative) never gets here: its syscall fails first.
    pub(crate) fn push_io(&mut self, fd: RawFd, dir: Dir, key: OpKey) {
        if let Some(s) = self.entry(fd, dir) {
            s.waiters.push_io(key);
        }
    }

    pub(crate) fn push_poll(&mut self, fd: RawFd, dir: Dir, key: OpKey) {
        if let Some(s) = self.entry(fd, dir) {
            s.waiters.push_poll(key);
        }
    }

    fn entry(&mut self, fd: RawFd, dir: Dir) -> Option<&mut Side> {
        let s = &mut self.slots.entry(fd)?[dir as usize];
        if !s.reg.is_active() {
            self.dirty.push(fd);
        }
        Some(s)
    }

    /// Removes `key` from wherever it waits on `fd`. A registration left
    /// without waiters goes idle, or is deleted (see `keep_idle`).
    pub(crate) fn remove(&mut self, fd: RawFd, key: OpKey) -> bool {
        let (period, keep_idle) = (self.period, self.keep_idle);
        let Some(sides) = self.slots.get_mut(fd) else {
            return false;
        };
        let mut found = false;
        for (dir, s) in BOTH.into_iter().zip(sides.iter_mut()) {
            if !s.waiters.remove(key) {
                continue;
            }
            found = true;
            if !s.waiters.is_empty() || !s.reg.is_active() {
                continue;
            }
            self.active -= 1;
            if s.reg.deserted(period, keep_idle).is_some() {
                // What the last read found stays true of the stream.
                s.eof = false;
                self.deserted.push((fd, dir));
            } else if !std::mem::replace(&mut s.listed, true) {
                self.idle.push((fd, dir));
            }
        }
        found
    }

    /// Takes the waiters of (fd, dir), whose registration failed.
    pub(crate) fn take_dir(&mut self, fd: RawFd, dir: Dir) -> Vec<OpKey> {
        self.side_mut(fd, dir)
            .map(|s| s.waiters.take())
            .unwrap_or_default()
    }

    /// Takes every waiter of `fd`, both directions, for a close: its
    /// registrations are deleted at the next reconcile.
    pub(crate) fn take_all(&mut self, fd: RawFd) -> Vec<OpKey> {
        let Some(sides) = self.slots.get_mut(fd) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for s in sides.iter_mut() {
            keys.extend(s.waiters.take());
            s.forget();
            self.active -= usize::from(s.reg.is_active());
            s.reg.close();
        }
        self.dirty.push(fd);
        keys
    }

    /// Whether (fd, dir) is registered: an event for an unregistered pair
    /// is stale and ignored.
    pub(crate) fn is_registered(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir).is_some_and(|s| s.reg.is_registered())
    }

    /// Whether (fd, dir) has a registration that stays as it is: one that
    /// won't report readiness that is already there.
    #[cfg(test)]
    pub(crate) fn is_active(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir).is_some_and(|s| s.reg.is_active())
    }

    /// Whether a waiter of (fd, dir) now would make the next reconcile
    /// add its registration, which reports the readiness already there;
    /// false when a registration in place is used as it is.
    pub(crate) fn reports_current(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir).is_none_or(|s| s.reg.reports_current())
    }

    /// Whether an event of (fd, dir) has carried the end of the stream.
    pub(crate) fn eof_seen(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir).is_some_and(|s| s.eof)
    }

    /// Records that an event of (fd, dir) carried the end of the stream.
    pub(crate) fn set_eof(&mut self, fd: RawFd, dir: Dir) {
        if let Some(s) = self.side_mut(fd, dir) {
            s.eof = true;
        }
    }

    /// Whether the last read of (fd, dir) emptied it.
    pub(crate) fn is_drained(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir).is_some_and(|s| s.drained)
    }

    /// Whether the last read of (fd, dir) emptied it, and was a socket's
    /// receive.
    pub(crate) fn is_drained_by_receive(&self, fd: RawFd, dir: Dir) -> bool {
        self.side(fd, dir)
            .is_some_and(|s| s.drained && s.drained_by_receive)
    }

    /// Records whether the last read of (fd, dir) emptied it.
    pub(crate) fn set_drained(&mut self, fd: RawFd, dir: Dir, drained: bool) {
        self.set_drained_by(fd, dir, drained, false);
    }

    /// Records whether the last read of (fd, dir) emptied it, and whether
    /// that read was a socket's receive.
    pub(crate) fn set_drained_by(&mut self, fd: RawFd, dir: Dir, drained: bool, receive: bool) {
        let sides = if drained {
            self.slots.entry(fd)
        } else {
            self.slots.get_mut(fd)
        };
        if let Some(sides) = sides {
            sides[dir as usize].drained = drained;
            sides[dir as usize].drained_by_receive = drained && receive;
        }
    }

    /// Whether `fd` is a byte stream; `probe` asks the system the first
    /// time, and the answer is kept until a `Close`, a failed
    /// registration or the idle sweep forgets it. A stale answer (the
    /// number closed behind the ring's back and reused) costs only time:
    /// a read that waits needlessly is still woken.
    pub(crate) fn is_byte_stream(&mut self, fd: RawFd, probe: impl FnOnce(RawFd) -> bool) -> bool {
        let Some(sides) = self.slots.entry(fd) else {
            return false;
        };
        let s = &mut sides[Dir::Read as usize];
        if s.stream == Stream::Unknown {
            s.stream = if probe(fd) {
                Stream::Bytes
            } else {
                Stream::Other
            };
        }
        s.stream == Stream::Bytes
    }

    /// Deletes the registrations of `fd`, which is closing, at once
    /// rather than at the next reconcile: changes that carry `RECEIPT`, so
    /// that the `kevent` call making them returns their receipts alone.
    pub(crate) fn delete_now(&mut self, fd: RawFd, changes: &mut Vec<Change>) {
        let Some(sides) = self.slots.get_mut(fd) else {
            return;
        };
        for (dir, s) in BOTH.into_iter().zip(sides.iter_mut()) {
            if s.reg == Reg::Closing
                && s.waiters.is_empty()
                && let Some(flags) = s.reg.release()
            {
                changes.push(change(fd, dir, flags | Flags::RECEIPT));
            }
        }
    }

    /// A registration failed to be added: it is not there.
    pub(crate) fn unregister(&mut self, fd: RawFd, dir: Dir) {
        if let Some(s) = self.side_mut(fd, dir) {
            let was_active = s.reg.is_active();
            s.reg.failed();
            s.forget();
            self.active -= usize::from(was_active);
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
            let Some(sides) = self.slots.get_mut(fd) else {
                continue;
            };
            for (dir, s) in BOTH.into_iter().zip(sides.iter_mut()) {
                let todo = if s.waiters.is_empty() {
                    s.reg.unwanted()
                } else {
                    let was_active = s.reg.is_active();
                    let todo = s.reg.wanted(owned(fd));
                    self.active += usize::from(!was_active);
                    todo
                };
                if let Some(flags) = todo {
                    changes.push(change(fd, dir, flags));
                }
            }
        }
    }

    /// Deletions of the registrations left without waiters since the last
    /// call (see `KEEPS_CLOSED_REGISTRATIONS`), with `extra` flags.
    pub(crate) fn take_deserted(&mut self, changes: &mut Vec<Change>, extra: Flags) {
        for (fd, dir) in self.deserted.drain(..) {
            changes.push(change(fd, dir, Flags::DELETE | extra));
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
            let Some(s) = self.side_mut(fd, dir) else {
                return false;
            };
            if !s.reg.is_idle() {
                s.listed = false;
                return false;
            }
            match s.reg.sweep(period) {
                Some(flags) => {
                    s.forget();
                    s.listed = false;
                    changes.push(change(fd, dir, flags));
                    false
                }
                // Went idle during the last period: give it the next one.
                None => true,
            }
        });
        self.idle = idle;
    }

    /// Deletes every registration, for shutdown.
    pub(crate) fn release_all(&mut self, changes: &mut Vec<Change>) {
        self.dirty.clear();
        self.take_deserted(changes, Flags::NONE);
        for (fd, sides) in self.slots.iter_mut() {
            for (dir, s) in BOTH.into_iter().zip(sides.iter_mut()) {
                if let Some(flags) = s.reg.release() {
                    changes.push(change(fd, dir, flags));
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
    use crate::sys::Filter;

    fn k(n: u32) -> OpKey {
        OpKey::test(n)
    }

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
        t.push_io(5, Dir::Read, k(1));
        changes(&mut t);
        t.set_drained(5, Dir::Read, true);
        assert!(t.remove(5, k(1)));
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
        t.push_io(5, Dir::Read, k(2));
        assert_eq!(changes(&mut t), [(5, Filter::READ, add())]);
        // A registered file's registration is trusted: it stays idle.
        let mut t = FdTable::keeping_idle(false);
        t.push_io(9, Dir::Read, k(1));
        t.reconcile(&mut Vec::new(), |_| true);
        assert!(t.remove(9, k(1)));
        assert!(t.is_registered(9, Dir::Read));
        t.take_deserted(&mut out, Flags::NONE);
        assert_eq!(out.len(), 1, "nothing more to delete");
    }

    #[test]
    fn first_waiter_adds_and_later_waiters_share_it() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(7, Dir::Read, k(1));
        t.push_io(7, Dir::Read, k(2));
        assert_eq!(changes(&mut t), [(7, Filter::READ, add())]);
        assert!(t.is_active(7, Dir::Read) && t.has_active());
        t.push_io(7, Dir::Read, k(3));
        assert_eq!(changes(&mut t), []);
        assert!(!t.is_registered(7, Dir::Write));
    }

    #[test]
    fn an_idle_registration_stays_and_is_re_added_for_the_next_waiter() {
        let mut t = FdTable::keeping_idle(true);
        t.push_io(5, Dir::Write, k(1));
        changes(&mut t);
        assert!(t.remove(5, k(1)));
        assert_eq!(changes(&mut t), [], "no delete when the queue empties");
        assert!(
            t.is_registered(5, Dir::Write),
            "events of it are still its own"
        );
        assert!(!t.is_active(5, Dir::Write) && !t.has_active());
        // The number may name another file by now: re-added, not trusted.
        t.push_io(5, Dir::Write, k(2));
        assert_eq!(changes(&mut t), [(5, Filter::WRITE, add())]);
        assert!(t.is_active(5, Dir::Write));
    }

    #[test]
    fn the_sweep_deletes_what_stayed_idle_for_a_whole_period() {
        let mut t = FdTable::keeping_idle(true);
        let start = Instant::now();
        for fd in [3, 4] {
            t.push_io(fd, Dir::Read, k(fd as u32));
        }
        changes(&mut t);
        t.remove(3, k(3));
        t.remove(4, k(4));
        let mut out = Vec::new();
        t.sweep(start, &mut out);
        assert!(out.is_empty(), "not before a period has passed");
        // Idle since the period that just ended: kept one more period.
        t.sweep(start + IDLE_SWEEP, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Fd 4 works again in the meantime.
        t.push_io(4, Dir::Read, k(40));
        changes(&mut t);
        t.sweep(start + 2 * IDLE_SWEEP, &mut out);
        let deleted: Vec<_> = out.iter().map(|c| (c.ident(), c.flags())).collect();
        assert_eq!(deleted, [(3, Flags::DELETE)]);
        assert!(!t.is_registered(3, Dir::Read));
        assert!(t.is_active(4, Dir::Read));
        // Idle again: listed again, and swept two periods later.
        t.remove(4, k(40));
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
        t.push_io(8, Dir::Read, k(1));
        t.push_poll(8, Dir::Write, k(2));
        t.push_io(9, Dir::Read, k(3));
        t.push_io(10, Dir::Read, k(4));
        changes(&mut t);
        t.remove(9, k(3));
        t.remove(10, k(4));
        // An idle registration goes at its descriptor's close too.
        assert_eq!(t.take_all(10), []);
        assert_eq!(changes(&mut t), [(10, Filter::READ, Flags::DELETE)]);
        // A waiter that comes before the reconcile re-adds it instead.
        t.take_all(9);
        t.push_io(9, Dir::Read, k(5));
        assert_eq!(changes(&mut t), [(9, Filter::READ, add())]);
        t.remove(9, k(5));
        let mut taken = t.take_all(8);
        taken.sort();
        assert_eq!(taken, [k(1), k(2)]);
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
            t.push_io(fd, Dir::Read, k(fd as u32));
        }
        assert_eq!(changes(&mut t), [(5, add()), (6, add())]);
        t.remove(5, k(5));
        t.remove(6, k(6));
        assert!(t.reports_current(6, Dir::Read) && !t.reports_current(5, Dir::Read));
        t.push_io(5, Dir::Read, k(50));
        t.push_io(6, Dir::Read, k(60));
        assert_eq!(changes(&mut t), [(6, add())], "only the other is re-added");
        assert!(t.is_active(5, Dir::Read) && t.has_active());
        // A close forgets the trust, and the end of stream seen.
        t.set_eof(5, Dir::Read);
        assert!(t.eof_seen(5, Dir::Read));
        t.remove(5, k(50));
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
        t.push_io(6, Dir::Read, k(1));
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
        t.push_io(-1, Dir::Read, k(1));
        assert_eq!(changes(&mut t), []);
        assert!(!t.remove(-1, k(1)));
    }
}
