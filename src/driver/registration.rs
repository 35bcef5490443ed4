//! The kevent registration of one (descriptor, direction), as a state
//! machine whose transitions say which change the kqueue needs.
//!
//! However many operations wait on one (fd, direction), they share one
//! registration, `EV_ADD | EV_CLEAR`. Edge-triggered is right here because
//! a waiter retries its syscall until EAGAIN before waiting again, so no
//! readiness goes unused.
//!
//! A registration outlives its last waiter for a while (idle): servers
//! wait on the same descriptors over and over, and deleting and re-adding
//! costs two changes per wait. An idle registration is not trusted,
//! though: the owner may have closed the descriptor and opened another
//! file under the same number, which kqueue's `close()` and epoll's file
//! release silently unregister. So the first waiter after an idle spell
//! re-adds it, one change that applies to whatever file the number names
//! now and that reports the readiness already there as a new registration
//! would. A descriptor the ring owns (a registered file) is the exception:
//! nobody else can close it, so its idle registration is still its own
//! and is taken back as it is.

use std::os::fd::RawFd;

use crate::ops::Dir;
use crate::sys::{Change, Filter, Flags};

/// What the kqueue holds for one direction of one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Reg {
    /// Nothing.
    #[default]
    Off,
    /// A registration that waiters rely on. `trusted`: added while the
    /// ring owned the descriptor, so it stays current while idle.
    Active { trusted: bool },
    /// Kept after its last waiter left, in sweep period `since`; re-added
    /// before anyone relies on it again, unless trusted.
    Idle { since: u32, trusted: bool },
    /// The descriptor is being closed: deleted at the next reconcile,
    /// unless a new waiter wants it re-added.
    Closing,
}

/// What a transition asks of the kqueue.
pub(crate) type Todo = Option<Flags>;

impl Reg {
    /// A waiter relies on it from now on. `owned`: the ring owns the
    /// descriptor now.
    pub(crate) fn wanted(&mut self, owned: bool) -> Todo {
        match *self {
            Reg::Active { .. } => None,
            Reg::Idle { trusted: true, .. } => {
                *self = Reg::Active { trusted: true };
                None
            }
            _ => {
                *self = Reg::Active { trusted: owned };
                Some(Flags::ADD | Flags::CLEAR)
            }
        }
    }

    /// Nothing waits on it any more; with `keep_idle` it stays, idle
    /// since `period`. Returns the deletion when it goes: the owner may
    /// close the descriptor as soon as it sees the completion, so the
    /// registration goes first.
    pub(crate) fn deserted(&mut self, period: u32, keep_idle: bool) -> Todo {
        let Reg::Active { trusted } = *self else {
            return None;
        };
        if keep_idle || trusted {
            *self = Reg::Idle {
                since: period,
                trusted,
            };
            None
        } else {
            *self = Reg::Off;
            Some(Flags::DELETE)
        }
    }

    /// The reconcile found no waiter: a closing descriptor's registration
    /// goes.
    pub(crate) fn unwanted(&mut self) -> Todo {
        if *self == Reg::Closing {
            *self = Reg::Off;
            return Some(Flags::DELETE);
        }
        None
    }

    /// Its descriptor is closing.
    pub(crate) fn close(&mut self) {
        if *self != Reg::Off {
            *self = Reg::Closing;
        }
    }

    /// The add failed: it is not there.
    pub(crate) fn failed(&mut self) {
        *self = Reg::Off;
    }

    /// The sweep of the period after `period`: an idle one that stayed so
    /// through a whole period goes.
    pub(crate) fn sweep(&mut self, period: u32) -> Todo {
        match *self {
            Reg::Idle { since, .. } if since != period => {
                *self = Reg::Off;
                Some(Flags::DELETE)
            }
            _ => None,
        }
    }

    /// Shutdown, or a close that deletes at once: whatever is there goes.
    pub(crate) fn release(&mut self) -> Todo {
        match std::mem::take(self) {
            Reg::Off => None,
            _ => Some(Flags::DELETE),
        }
    }

    /// Whether the kqueue holds it: an event for one that is off is stale.
    pub(crate) fn is_registered(self) -> bool {
        self != Reg::Off
    }

    pub(crate) fn is_active(self) -> bool {
        matches!(self, Reg::Active { .. })
    }

    pub(crate) fn is_idle(self) -> bool {
        matches!(self, Reg::Idle { .. })
    }

    /// Whether a waiter now would make the next reconcile add it, which
    /// reports the readiness already there; false when the registration in
    /// place is used as it is.
    pub(crate) fn reports_current(self) -> bool {
        !matches!(self, Reg::Active { .. } | Reg::Idle { trusted: true, .. })
    }
}

/// The change that carries out `flags` for (fd, dir); its events carry
/// the descriptor as their token.
pub(crate) fn change(fd: RawFd, dir: Dir, flags: Flags) -> Change {
    let filter = match dir {
        Dir::Read => Filter::READ,
        Dir::Write => Filter::WRITE,
    };
    Change::new(fd as usize, filter, flags).token(fd as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_say_the_change_to_make() {
        let mut r = Reg::Off;
        assert_eq!(r.wanted(false), Some(Flags::ADD | Flags::CLEAR));
        assert_eq!(r.wanted(false), None, "shared by later waiters");
        assert_eq!(r.deserted(3, true), None);
        assert_eq!(
            r,
            Reg::Idle {
                since: 3,
                trusted: false
            }
        );
        assert_eq!(r.sweep(3), None, "not in the period it went idle");
        // Untrusted: re-added for the next waiter.
        assert_eq!(r.wanted(true), Some(Flags::ADD | Flags::CLEAR));
        assert_eq!(r, Reg::Active { trusted: true });
        assert_eq!(r.deserted(4, false), None, "trusted ones stay idle");
        assert!(!r.reports_current());
        assert_eq!(r.wanted(false), None, "taken back as it is");
        assert_eq!(r.deserted(5, false), None);
        assert_eq!(r.sweep(6), Some(Flags::DELETE));
        assert!(!r.is_registered());
        r.wanted(false);
        assert_eq!(r.deserted(7, false), Some(Flags::DELETE));
        r.wanted(false);
        r.close();
        assert_eq!(r.unwanted(), Some(Flags::DELETE));
        assert_eq!(r.unwanted(), None);
        r.wanted(false);
        assert_eq!(r.release(), Some(Flags::DELETE));
        assert_eq!(r.release(), None);
    }
}
