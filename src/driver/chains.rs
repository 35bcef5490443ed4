//! Link chains, linked timeouts and drain, with io_uring's rules: a
//! failed link member cancels the rest of its chain with `-ECANCELED`; a
//! `LinkTimeout` bounds the entry before it; a chain left open at the end
//! of a submission ends there; a drained entry starts only after every
//! earlier entry has completed, and later ones wait for it.

use std::collections::VecDeque;

use crate::driver::Driver;
use crate::driver::completion::Ending;
use crate::driver::table::{OpKey, State};
use crate::sq::{Sqe, SqeFlags};

/// The last entry taken with a link flag: the next entry joins its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum OpenLink {
    #[default]
    None,
    /// Still in flight: the next entry waits for it.
    InFlight(OpKey),
    /// Finished: the next entry starts at once, or is cancelled if it
    /// failed (and was not a hard link).
    Finished {
        failed: bool,
        /// The failure cancels the rest without CQEs (see `Ending::quiet`).
        quiet: bool,
    },
}

#[derive(Default)]
pub(super) struct Chains {
    open: OpenLink,
    /// The submission the open link's entries came in.
    open_batch: u64,
    /// Entries held back by IO_DRAIN, in order.
    deferred: VecDeque<Sqe>,
    /// A drain entry in flight: later entries wait for it.
    drain: Option<OpKey>,
}

impl Chains {
    /// The entry `key` finished: if the open link is it, the next entry
    /// knows how.
    pub(super) fn finished(&mut self, key: OpKey, failed: bool, quiet: bool) {
        if self.open == OpenLink::InFlight(key) {
            self.open = OpenLink::Finished { failed, quiet };
        }
    }

    /// Whether a held-back entry could start now.
    pub(super) fn can_release(&self, table: &crate::driver::table::Table) -> bool {
        let drained = self.drain.is_none_or(|key| !table.contains(key));
        self.deferred.front().is_some_and(|f| {
            self.joins_chain(f)
                || drained && (!f.flags.contains(SqeFlags::IO_DRAIN) || table.is_empty())
        })
    }

    /// Whether `sqe` is the next member of the chain whose earlier members
    /// have started: it goes with its chain, whatever drain holds the
    /// entries after it (a chain's own drain would otherwise wait for it).
    fn joins_chain(&self, sqe: &Sqe) -> bool {
        self.open != OpenLink::None && sqe.batch == self.open_batch
    }

    /// A held-back entry, for shutdown.
    pub(super) fn take_deferred(&mut self) -> Option<Sqe> {
        self.deferred.pop_front()
    }
}

impl Driver {
    /// Takes one entry: starts it, or holds it back behind a drain.
    pub(super) fn intake(&mut self, sqe: Sqe) {
        let drains = sqe.flags.contains(SqeFlags::IO_DRAIN);
        let c = &self.chains;
        if c.joins_chain(&sqe) {
            self.submit(sqe);
        } else if !c.deferred.is_empty() || c.drain.is_some() || (drains && !self.table.is_empty())
        {
            self.chains.deferred.push_back(sqe);
        } else {
            self.submit(sqe);
        }
    }

    /// Starts held-back entries whose drain condition is met: a drain
    /// entry once nothing is in flight, the entries after it once it has
    /// completed.
    pub(super) fn release_deferred(&mut self) -> bool {
        let mut any = false;
        loop {
            let Some(front) = self.chains.deferred.front() else {
                return any;
            };
            if !self.chains.joins_chain(front) {
                if let Some(key) = self.chains.drain {
                    if self.table.contains(key) {
                        return any;
                    }
                    self.chains.drain = None;
                }
                if front.flags.contains(SqeFlags::IO_DRAIN) && !self.table.is_empty() {
                    return any;
                }
            }
            if let Some(sqe) = self.chains.deferred.pop_front() {
                any = true;
                self.submit(sqe);
            }
        }
    }

    /// Places a new entry in its chain: `Some(true)` to start it now,
    /// `Some(false)` when it waits for the entry before it, `None` when
    /// it has been completed already (its chain failed). A link timeout
    /// is attached to the entry it bounds instead.
    pub(super) fn link(&mut self, key: OpKey, flags: SqeFlags, batch: u64) -> Option<bool> {
        if flags.contains(SqeFlags::IO_DRAIN) {
            self.chains.drain = Some(key);
        }
        let links_on = flags.intersects(SqeFlags::IO_LINK | SqeFlags::IO_HARDLINK);
        let mut pred = std::mem::take(&mut self.chains.open);
        // A chain left open at the end of a submission ends there.
        if batch != self.chains.open_batch {
            pred = OpenLink::None;
        }
        self.chains.open_batch = batch;
        let waits = match pred {
            OpenLink::InFlight(p) if self.table.contains(p) => {
                if let Some(e) = self.table.get_mut(p) {
                    e.links_mut().next = Some(key);
                }
                if let Some(e) = self.table.get_mut(key) {
                    e.state = State::Linked;
                }
                true
            }
            OpenLink::Finished {
                failed: true,
                quiet,
            } => {
                if links_on {
                    self.chains.open = OpenLink::InFlight(key);
                }
                let ending = Ending {
                    quiet,
                    chained: true,
                };
                self.end(key, -libc::ECANCELED, ending);
                return None;
            }
            _ => false,
        };
        // Set before starting: an operation that completes at once turns
        // it into `Finished`.
        if links_on {
            self.chains.open = OpenLink::InFlight(key);
        }
        Some(!waits)
    }

    /// A LinkTimeout binds to the entry before it, which must carry a
    /// link flag; its own link flag carries that entry's chain on.
    pub(super) fn attach_link_timeout(&mut self, key: OpKey, flags: SqeFlags, batch: u64) {
        if flags.contains(SqeFlags::IO_DRAIN) {
            self.chains.drain = Some(key);
        }
        let links_on = flags.intersects(SqeFlags::IO_LINK | SqeFlags::IO_HARDLINK);
        let mut pred = std::mem::take(&mut self.chains.open);
        if batch != self.chains.open_batch {
            pred = OpenLink::None;
        }
        self.chains.open_batch = batch;
        if let Some(e) = self.table.get_mut(key) {
            e.state = State::Timer;
        }
        let bound_already = |p| {
            self.table
                .get(p)
                .is_some_and(|e| e.links().link_timeout.is_some())
        };
        match pred {
            // A LinkTimeout after a LinkTimeout is invalid, and fails the
            // chain (io_uring checks it when the second is prepared).
            OpenLink::InFlight(p) if bound_already(p) => {
                self.fail_in_flight(p);
                self.complete(key, -libc::EINVAL);
                if links_on {
                    self.chains.open = OpenLink::Finished {
                        failed: true,
                        quiet: false,
                    };
                }
            }
            OpenLink::InFlight(p) if self.table.contains(p) => {
                let mut bounded_started = false;
                if let Some(e) = self.table.get_mut(p) {
                    e.links_mut().link_timeout = Some(key);
                    bounded_started = !matches!(e.state, State::Linked);
                }
                if let Some(e) = self.table.get_mut(key) {
                    e.links_mut().bounds = Some(p);
                }
                if bounded_started {
                    self.arm_link_timeout(key);
                }
                if links_on {
                    self.chains.open = pred;
                }
            }
            OpenLink::Finished { failed, quiet } => {
                // The operation it would bound has already finished.
                let ending = Ending {
                    quiet: quiet && failed,
                    chained: false,
                };
                self.end(key, -libc::ECANCELED, ending);
                if links_on {
                    self.chains.open = OpenLink::Finished { failed, quiet };
                }
            }
            _ => {
                self.complete(key, -libc::EINVAL);
                if links_on {
                    self.chains.open = OpenLink::Finished {
                        failed: true,
                        quiet: false,
                    };
                }
            }
        }
    }
}
