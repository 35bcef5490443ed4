//! EVFILT_USER: events a program triggers itself.
//!
//! There is nothing for the kernel to watch: the triggered state and the
//! user flags live in the registration, and a triggered registration waits
//! in the pending queue. The only kernel object is the kqueue's wake-up
//! eventfd (in `mod.rs`), written when a trigger must wake a caller blocked
//! in `epoll_wait` — that is how a trigger from another thread wakes a
//! blocked `kevent`.
//!
//! The flag arithmetic is FreeBSD's `filt_usertouch`: `NOTE_FFAND`,
//! `NOTE_FFOR` and `NOTE_FFCOPY` combine the change's `NOTE_FFLAGSMASK` bits
//! with the stored ones (`NOTE_FFNOP` leaves them), `NOTE_TRIGGER` triggers,
//! and a change carrying `EV_CLEAR` un-triggers. An event reports the
//! stored flags (control bits stripped) and the `data` of the last change.
//! After delivery, `EV_CLEAR` resets the triggered state; the stored flags
//! stay, as on FreeBSD, macOS and libkqueue. Without `EV_CLEAR` the event
//! stays triggered and is reported by every call.

use super::Key;
use super::Registration;
use super::filter::{Ops, Report, Shared, Source};
use super::os::Errno;
use crate::sys::{Change, Filter, Flags, note};

/// EVFILT_USER in the registry.
pub(super) const OPS: Ops = Ops::of::<User>(Filter::USER, false);

/// The filter state of one EVFILT_USER registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct User {
    triggered: bool,
    /// The user flags (`NOTE_FFLAGSMASK` bits).
    fflags: u32,
}

impl User {
    /// A new registration. Like kqueue's attach, it takes the change's user
    /// bits as they are (the `NOTE_FF*` operation only applies to an
    /// existing registration) and triggers on `NOTE_TRIGGER`.
    fn new(change: &Change) -> User {
        let fflags = change.get_fflags();
        User {
            triggered: fflags & note::TRIGGER != 0,
            fflags: fflags & note::FFLAGSMASK,
        }
    }

    /// A change to an existing registration.
    fn update(&mut self, change: &Change) {
        let fflags = change.get_fflags();
        if fflags & note::TRIGGER != 0 {
            self.triggered = true;
        }
        let bits = fflags & note::FFLAGSMASK;
        match fflags & note::FFCTRLMASK {
            note::FFAND => self.fflags &= bits,
            note::FFOR => self.fflags |= bits,
            note::FFCOPY => self.fflags = bits,
            _ => {}
        }
        if change.flags().contains(Flags::CLEAR) {
            self.triggered = false;
        }
    }

    /// The fflags one delivery reports; `clear` (the registration has
    /// `EV_CLEAR`) un-triggers it.
    fn deliver(&mut self, clear: bool) -> u32 {
        if clear {
            self.triggered = false;
        }
        self.fflags
    }
}

impl Source for User {
    fn attach(_: &mut Shared, _: Key, change: &Change) -> Result<User, Errno> {
        Ok(User::new(change))
    }

    fn modify(
        &mut self,
        _: &mut Shared,
        _: Key,
        reg: &mut Registration,
        change: &Change,
    ) -> Result<(), Errno> {
        // The data of the last change is what the event reports
        // (filt_usertouch stores it); the flags are the user's own.
        reg.modify(change, true);
        self.update(change);
        Ok(())
    }

    fn report(&mut self, reg: &Registration) -> Report {
        if !self.triggered {
            return Report::Nothing;
        }
        let fflags = self.deliver(reg.flags.contains(Flags::CLEAR));
        Report::event(fflags, reg.data)
    }

    fn detach(self: Box<Self>, _: &mut Shared, _: Key, _: bool) {}

    fn holds_event(&self) -> bool {
        self.triggered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(flags: Flags, fflags: u32) -> Change {
        Change::user(1, flags, fflags)
    }

    #[test]
    fn new_takes_bits_and_trigger() {
        let u = User::new(&change(Flags::ADD, note::FFCOPY | note::TRIGGER | 0x15));
        assert_eq!(
            u,
            User {
                triggered: true,
                fflags: 0x15
            }
        );
        let u = User::new(&change(Flags::ADD, note::FFAND | 0x3));
        assert_eq!(
            u,
            User {
                triggered: false,
                fflags: 0x3
            }
        );
    }

    #[test]
    fn flag_operations() {
        let mut u = User::new(&change(Flags::ADD, 0x6));
        u.update(&change(Flags::NONE, note::FFOR | 0x1));
        assert_eq!(u.fflags, 0x7);
        u.update(&change(Flags::NONE, note::FFAND | 0x5));
        assert_eq!(u.fflags, 0x5);
        u.update(&change(Flags::NONE, note::FFCOPY | 0x8));
        assert_eq!(u.fflags, 0x8);
        u.update(&change(Flags::NONE, note::FFNOP | 0xff));
        assert_eq!(u.fflags, 0x8);
        assert!(!u.triggered);
        u.update(&change(Flags::NONE, note::TRIGGER | note::FFOR | 0x1));
        assert_eq!(
            u,
            User {
                triggered: true,
                fflags: 0x9
            }
        );
    }

    #[test]
    fn clear_resets_the_trigger_not_the_flags() {
        let mut u = User::new(&change(Flags::ADD, 0x3));
        u.update(&change(Flags::NONE, note::TRIGGER));
        assert_eq!(u.deliver(true), 0x3);
        assert_eq!(
            u,
            User {
                triggered: false,
                fflags: 0x3
            }
        );
        u.update(&change(Flags::NONE, note::TRIGGER));
        assert_eq!(u.deliver(false), 0x3);
        assert!(u.triggered);
        // A change with EV_CLEAR un-triggers (FreeBSD's filt_usertouch).
        u.update(&change(Flags::CLEAR, note::FFNOP));
        assert!(!u.triggered);
    }
}
