//! The event operations (`WaitId`, `Signal`, `Watch`): each waits on a
//! kevent registration of its own — EVFILT_PROC, EVFILT_SIGNAL,
//! EVFILT_VNODE — rather than on a descriptor's readiness.
//!
//! kqueue keys registrations by (ident, filter), so operations with the
//! same pair (two `Watch`es of one descriptor, two `Signal`s of one
//! signal, a `WaitId` of any child beside a `Signal` of `SIGCHLD`) share
//! one, and each hears each of its events; a shared vnode registration
//! asks for every note one of them asked for, and each keeps the bits it
//! asked for. An addition goes in the turn's `changes`; an operation that
//! joins one not yet submitted checks again once the `kevent` call has
//! made it (a child that exited in between would bring no event). The
//! registration is deleted, in a `kevent` call of its own before the
//! turn's completions are seen, when its last operation leaves — or not
//! at all when kqueue has dropped it (a one-shot event: a process's exit,
//! a revoked file).

use std::collections::HashMap;
use std::os::fd::RawFd;

use crate::driver::Driver;
use crate::driver::table::OpKey;
use crate::ops::{EventOp, Interest, Op, Shot};
use crate::sys::errno::Errno;
use crate::sys::{Change, Event, Filter, Flags};

/// The token of every event operation's registration: apart from the
/// descriptor numbers the readiness path uses and the waker's
/// `u64::MAX`. Events are told apart by (ident, filter).
pub(super) const EVENT_TOKEN: u64 = u64::MAX - 1;

/// Whether `filter` is one the event operations use.
pub(super) fn is_event_filter(filter: Filter) -> bool {
    filter == Filter::PROC || filter == Filter::SIGNAL || filter == Filter::VNODE
}

type RegKey = (usize, Filter);

/// Where a registration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its `EV_ADD` is in the turn's `changes`, not yet submitted.
    Queued,
    /// In the kqueue.
    Armed,
}

#[derive(Debug)]
struct Reg {
    /// Its operations, in the order they started.
    waiters: Vec<OpKey>,
    fflags: u32,
    flags: Flags,
    stage: Stage,
}

impl Reg {
    fn change(&self, (ident, filter): RegKey, flags: Flags) -> Change {
        Change::new(ident, filter, flags)
            .fflags(self.fflags)
            .token(EVENT_TOKEN)
    }
}

/// The event operations' registrations.
#[derive(Debug, Default)]
pub(super) struct EventRegs {
    regs: HashMap<RegKey, Reg>,
    /// Operation → its registration.
    of: HashMap<OpKey, RegKey>,
    /// Operations that joined a registration not yet submitted: checked
    /// again once it is.
    unchecked: Vec<OpKey>,
    /// Deletions to make before this turn's completions are seen.
    deletes: Vec<Change>,
}

impl EventRegs {
    /// Whether any registration is outstanding (the driver may wait in
    /// the kernel for it).
    pub(super) fn has_any(&self) -> bool {
        !self.regs.is_empty()
    }

    /// Adds operation `key` to the registration `i` needs, queueing its
    /// addition (or, for a vnode registration that must ask for more
    /// notes, its modification) in `changes`.
    fn join(&mut self, key: OpKey, i: Interest, changes: &mut Vec<Change>) {
        let rk = (i.ident, i.filter);
        self.of.insert(key, rk);
        match self.regs.get_mut(&rk) {
            Some(reg) => {
                reg.waiters.push(key);
                if reg.stage == Stage::Queued {
                    self.unchecked.push(key);
                }
                if reg.fflags | i.fflags != reg.fflags {
                    reg.fflags |= i.fflags;
                    changes.retain(|c| !(c.ident() == rk.0 && c.filter() == rk.1));
                    changes.push(reg.change(rk, Flags::ADD | reg.flags));
                }
            }
            None => {
                // A deletion of the same registration not yet made would
                // come after this addition: withdraw it (the addition
                // modifies what is still there).
                self.deletes
                    .retain(|c| !(c.ident() == rk.0 && c.filter() == rk.1));
                let reg = Reg {
                    waiters: vec![key],
                    fflags: i.fflags,
                    flags: i.flags,
                    stage: Stage::Queued,
                };
                changes.push(reg.change(rk, Flags::ADD | reg.flags));
                self.regs.insert(rk, reg);
                self.unchecked.push(key);
            }
        }
    }

    /// Takes operation `key` off its registration; the last to leave
    /// deletes it (or withdraws its addition not yet submitted).
    #[inline]
    pub(super) fn leave(&mut self, key: OpKey, changes: &mut Vec<Change>) {
        // Every operation's end asks: spare the others the call and the
        // hashing.
        if !self.of.is_empty() {
            self.leave_registration(key, changes);
        }
    }

    fn leave_registration(&mut self, key: OpKey, changes: &mut Vec<Change>) {
        let Some(rk) = self.of.remove(&key) else {
            return;
        };
        self.unchecked.retain(|&k| k != key);
        let Some(reg) = self.regs.get_mut(&rk) else {
            return;
        };
        reg.waiters.retain(|&k| k != key);
        if !reg.waiters.is_empty() {
            return;
        }
        let Some(reg) = self.regs.remove(&rk) else {
            return;
        };
        match reg.stage {
            Stage::Queued => changes.retain(|c| !(c.ident() == rk.0 && c.filter() == rk.1)),
            Stage::Armed => self
                .deletes
                .push(reg.change(rk, Flags::DELETE | Flags::RECEIPT)),
        }
    }

    /// The `kevent` call has submitted the queued registrations: returns
    /// the operations to check again.
    pub(super) fn submitted(&mut self) -> Vec<OpKey> {
        for reg in self.regs.values_mut() {
            reg.stage = Stage::Armed;
        }
        std::mem::take(&mut self.unchecked)
    }

    /// The operations of (ident, filter), if it is registered.
    fn waiters(&self, rk: RegKey) -> Option<Vec<OpKey>> {
        self.regs.get(&rk).map(|r| r.waiters.clone())
    }

    /// kqueue dropped the registration (a one-shot event, or a failed
    /// addition): forget it without deleting it. Its operations stay
    /// listed until they leave.
    fn dropped(&mut self, rk: RegKey) -> Option<Reg> {
        let reg = self.regs.remove(&rk)?;
        for k in &reg.waiters {
            self.of.remove(k);
            self.unchecked.retain(|u| u != k);
        }
        Some(reg)
    }

    /// The operations watching descriptor `fd` (a `Close` of it ends them).
    pub(super) fn on_fd(&self, fd: RawFd) -> Vec<OpKey> {
        self.waiters((fd as usize, Filter::VNODE))
            .unwrap_or_default()
    }

    /// The deletions to make now.
    pub(super) fn take_deletes(&mut self, out: &mut Vec<Change>) {
        out.append(&mut self.deletes);
    }
}

impl Driver {
    /// Takes the event operation `key` out of its entry.
    fn take_event_op(&mut self, key: OpKey) -> Option<Box<dyn EventOp>> {
        let entry = self.table.get_mut(key)?;
        match entry.op.take() {
            Some(Op::Event(op)) => Some(op),
            other => {
                entry.op = other;
                None
            }
        }
    }

    /// Starts an event operation: its arguments and what it holds, a check
    /// of what is there already, then its registration.
    pub(super) fn start_event(&mut self, key: OpKey, mut op: Box<dyn EventOp>) {
        let interest = match op.arm() {
            Ok(i) => i,
            Err(e) => {
                self.put_op(key, Op::Event(op));
                return self.complete(key, e.res());
            }
        };
        let shot = op.check();
        self.put_op(key, Op::Event(op));
        if self.settle_event(key, shot) {
            self.event_regs.join(key, interest, &mut self.changes);
        }
    }

    /// Posts what `shot` says for operation `key`; returns whether it
    /// goes on waiting.
    fn settle_event(&mut self, key: OpKey, shot: Shot) -> bool {
        match shot {
            Shot::Pending => true,
            Shot::More { res, extra } => {
                self.post_more_with(key, res, extra);
                true
            }
            Shot::Last(res) => {
                self.complete(key, res);
                false
            }
        }
    }

    /// Runs `f` on the event operation `key` and settles what it says.
    fn with_event_op(&mut self, key: OpKey, f: impl FnOnce(&mut dyn EventOp) -> Shot) -> bool {
        let Some(mut op) = self.take_event_op(key) else {
            return false;
        };
        let shot = {
            let span = self.table.get(key).map(|e| e.span.clone());
            let _enter = span.as_ref().map(|s| s.enter());
            f(op.as_mut())
        };
        self.put_op(key, Op::Event(op));
        self.settle_event(key, shot)
    }

    /// After the `kevent` call: the operations that joined a registration
    /// it submitted look again.
    pub(super) fn check_armed(&mut self) {
        for key in self.event_regs.submitted() {
            self.with_event_op(key, |op| op.check());
        }
    }

    /// Serves an event (or a failed change) of an event registration.
    pub(super) fn on_event_op(&mut self, ev: &Event) -> bool {
        let rk = (ev.ident(), ev.filter());
        if ev.is_error() {
            let Some(err) = ev.error() else {
                // A receipt.
                return false;
            };
            let err = Errno::new(err.raw_os_error().unwrap_or(libc::EIO));
            let Some(reg) = self.event_regs.dropped(rk) else {
                return false;
            };
            for key in reg.waiters {
                let res = match self.take_event_op(key) {
                    Some(mut op) => {
                        let res = op.on_error(err);
                        self.put_op(key, Op::Event(op));
                        res
                    }
                    None => err.res(),
                };
                self.complete(key, res);
            }
            return true;
        }
        let Some(waiters) = self.event_regs.waiters(rk) else {
            return false;
        };
        // kqueue deleted a one-shot registration with its event.
        let gone = ev.flags().contains(Flags::ONESHOT);
        let interest = gone.then(|| self.event_regs.dropped(rk)).flatten();
        for key in waiters {
            let waits = self.with_event_op(key, |op| op.on_event(ev));
            // One still waiting after the registration went needs a new
            // one (it reports at once what is there, or fails).
            if waits
                && let Some(reg) = &interest
                && self.table.contains(key)
            {
                let i = Interest {
                    ident: rk.0,
                    filter: rk.1,
                    fflags: reg.fflags,
                    flags: reg.flags,
                };
                self.event_regs.join(key, i, &mut self.changes);
            }
        }
        true
    }
}
