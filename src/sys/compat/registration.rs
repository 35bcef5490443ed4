//! The state kqueue keeps for every registration, whatever its filter, and
//! what its flags make of it: FreeBSD's knote fields and the rules of
//! kqueue_register and kqueue_scan that every filter shares.

use super::Key;
use crate::sys::{Change, Event, Flags};

/// The state kqueue keeps for every registration, whatever its filter.
#[derive(Debug, Clone, Copy)]
pub(super) struct Registration {
    /// The flags its events carry back: the change's, minus the actions
    /// (`EV_ADD`, `EV_DELETE`, `EV_ENABLE`, `EV_DISABLE`), as FreeBSD
    /// stores them in the knote.
    pub(super) flags: Flags,
    /// `sfflags`: the filter flags the registration was given.
    pub(super) fflags: u32,
    /// `sdata`: the data the registration was given.
    pub(super) data: i64,
    /// The token (`udata`).
    pub(super) udata: u64,
    /// `EV_DISABLE`d registrations report nothing until `EV_ENABLE`.
    pub(super) enabled: bool,
}

/// The flags a registration keeps from a change.
fn kept(flags: Flags) -> Flags {
    flags
        - (Flags::ADD | Flags::DELETE | Flags::ENABLE | Flags::DISABLE | Flags::EOF | Flags::ERROR)
}

impl Registration {
    pub(super) fn new(change: &Change) -> Registration {
        let flags = change.flags();
        Registration {
            flags: kept(flags),
            fflags: change.get_fflags(),
            data: change.get_data(),
            udata: change.get_token(),
            // EV_ADD enables unless EV_DISABLE says otherwise (EV_ENABLE
            // wins when both are given).
            enabled: flags.contains(Flags::ENABLE) || !flags.contains(Flags::DISABLE),
        }
    }

    /// Applies a change to an existing registration. Like FreeBSD's
    /// kqueue_register, every change replaces the token, and, for filters
    /// without a `touch` routine (`params`), the filter flags and data;
    /// `EV_ADD` also replaces the mode flags (`EV_ONESHOT`, `EV_CLEAR`,
    /// `EV_DISPATCH`, which FreeBSD keeps from the first add).
    pub(super) fn modify(&mut self, change: &Change, params: bool) {
        let flags = change.flags();
        self.udata = change.get_token();
        if flags.contains(Flags::ADD) {
            self.flags = kept(flags);
        }
        if params {
            self.fflags = change.get_fflags();
            self.data = change.get_data();
        }
        if flags.contains(Flags::ENABLE) {
            self.enabled = true;
        } else if flags.contains(Flags::DISABLE) {
            self.enabled = false;
        }
    }

    /// The event the registration `key` reports, with the flags its filter
    /// adds (`extra`), and what becomes of the registration once it is
    /// returned.
    pub(super) fn event(&self, key: Key, extra: Flags, fflags: u32, data: i64) -> (Event, After) {
        let flags = self.flags | extra;
        let event = Event::from_parts(key.0, key.1, flags, fflags, data, self.udata);
        let after = if flags.contains(Flags::ONESHOT) {
            After::Delete
        } else if flags.contains(Flags::DISPATCH) {
            After::Disable
        } else {
            After::Keep
        };
        (event, after)
    }
}

/// What kqueue_scan does to a knote it has just returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum After {
    /// Level-triggered or `EV_CLEAR`: it stays.
    Keep,
    /// `EV_DISPATCH`: disabled until `EV_ENABLE`.
    Disable,
    /// `EV_ONESHOT`: deleted.
    Delete,
}
