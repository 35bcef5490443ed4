//! EVFILT_TIMER over one timerfd (CLOCK_MONOTONIC) per timer.
//!
//! The period is `data` in milliseconds, or in the unit `fflags` selects
//! (`NOTE_SECONDS`, `NOTE_USECONDS`, `NOTE_NSECONDS`); the timer is periodic
//! unless the registration is `EV_ONESHOT`. A timerfd counts its expirations
//! itself, which is exactly kqueue's `data` ("expirations since the last
//! delivery"), and reading it resets the count, which is the `EV_CLEAR`
//! kqueue forces on timers. Validation follows FreeBSD's filt_timerattach:
//! a negative period or an unknown `fflags` bit is EINVAL, and a zero
//! period is one unit for a periodic timer (it would spin) and fires at
//! once for a one-shot.
//!
//! The timerfd sits in the sources epoll, edge-triggered. A wake-up that
//! outlived its timer (deleted, re-added, recycled) reads an empty counter
//! and reports nothing.

use super::filter::{Ops, Report, Shared, Source, Watched};
use super::os::{self, Errno};
use super::{Key, Registration};
use crate::sys::{Change, Filter, Flags, raw};

/// EVFILT_TIMER in the registry.
pub(super) const OPS: Ops = Ops::of::<Timer>(Filter::TIMER, false);

/// Idle timerfds kept for reuse: a one-shot timer costs one
/// `timerfd_settime` instead of a create, an `EPOLL_CTL_ADD` and a close.
const SPARE_TIMERS: usize = 64;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A validated period, as timerfd wants it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    value: libc::timespec,
    interval: libc::timespec,
}

impl Spec {
    /// The timer `change` describes.
    fn of(change: &Change) -> Result<Spec, Errno> {
        let oneshot = change.flags().contains(Flags::ONESHOT);
        Spec::new(change.get_data(), change.get_fflags(), oneshot)
    }

    /// The timer of a period `data` in the unit of `fflags`.
    fn new(data: i64, fflags: u32, oneshot: bool) -> Result<Spec, Errno> {
        let units = raw::NOTE_SECONDS | raw::NOTE_USECONDS | raw::NOTE_NSECONDS;
        if data < 0 || fflags & !units != 0 {
            return Err(Errno::EINVAL);
        }
        let per_unit: u128 = match fflags & units {
            0 => 1_000_000,
            raw::NOTE_SECONDS => NANOS_PER_SEC,
            raw::NOTE_USECONDS => 1_000,
            raw::NOTE_NSECONDS => 1,
            // More than one unit.
            _ => return Err(Errno::EINVAL),
        };
        let ticks = if data == 0 && !oneshot { 1 } else { data };
        let period = timespec(ticks as u128 * per_unit);
        // A zero it_value would disarm the timerfd: a zero one-shot fires
        // after one nanosecond instead, i.e. at once.
        let value = if ticks == 0 { timespec(1) } else { period };
        let interval = if oneshot { timespec(0) } else { period };
        Ok(Spec { value, interval })
    }
}

/// A timespec of `nanos`, saturating at the largest representable time.
fn timespec(nanos: u128) -> libc::timespec {
    let secs = nanos / NANOS_PER_SEC;
    libc::timespec {
        tv_sec: secs.min(libc::time_t::MAX as u128) as libc::time_t,
        tv_nsec: (nanos % NANOS_PER_SEC) as libc::c_long,
    }
}

/// The timerfd of one EVFILT_TIMER registration.
#[derive(Debug)]
pub(super) struct Timer {
    watched: Watched,
}

impl Timer {
    /// (Re)starts the timer from now; expirations not yet read are
    /// dropped.
    fn arm(&self, spec: &Spec) -> Result<(), Errno> {
        os::timerfd_settime(self.watched.raw(), spec.value, spec.interval)
    }

    /// Stops the timer and drops its count (for reuse).
    fn disarm(&self) -> Result<(), Errno> {
        os::timerfd_settime(self.watched.raw(), timespec(0), timespec(0))
    }

    /// Expirations since the last call (0 when none).
    fn expirations(&self) -> i64 {
        match os::read_u64(self.watched.raw()) {
            Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

impl Source for Timer {
    /// Takes an idle timerfd if there is one, else makes one.
    fn attach(shared: &mut Shared, key: Key, change: &Change) -> Result<Timer, Errno> {
        let spec = Spec::of(change)?;
        let timer = match shared.spare_timers.pop() {
            Some(timer) => timer,
            None => Timer {
                watched: shared.watched(os::timerfd()?),
            },
        };
        timer.arm(&spec)?;
        shared.own(&timer.watched, key);
        Ok(timer)
    }

    /// Re-adding a timer restarts it with the new period and forgets
    /// expirations not yet reported (FreeBSD's filt_timertouch); other
    /// changes leave it running.
    fn modify(
        &mut self,
        _: &mut Shared,
        _: Key,
        reg: &mut Registration,
        change: &Change,
    ) -> Result<(), Errno> {
        let adding = change.flags().contains(Flags::ADD);
        if adding {
            self.arm(&Spec::of(change)?)?;
        }
        reg.modify(change, adding);
        Ok(())
    }

    /// kqueue sets EV_CLEAR on timers itself (filt_timerattach).
    fn report(&mut self, _: &Registration) -> Report {
        match self.expirations() {
            0 => Report::Nothing,
            n => Report::Event {
                flags: Flags::CLEAR,
                fflags: 0,
                data: n,
            },
        }
    }

    /// Keeps an idle timerfd for the next timer, or closes it. `fired`: it
    /// has just fired its only expiry, so it is disarmed already.
    fn detach(self: Box<Self>, shared: &mut Shared, _: Key, fired: bool) {
        shared.disown(&self.watched);
        if !self.watched.in_epoll() || shared.spare_timers.len() >= SPARE_TIMERS {
            return;
        }
        if fired || self.disarm().is_ok() {
            shared.spare_timers.push(*self);
        }
    }

    fn watched(&mut self) -> Option<&mut Watched> {
        Some(&mut self.watched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(t: libc::timespec) -> i128 {
        i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
    }

    #[test]
    fn units() {
        let s = Spec::new(5, 0, false).unwrap();
        assert_eq!((ns(s.value), ns(s.interval)), (5_000_000, 5_000_000));
        let s = Spec::new(2, raw::NOTE_SECONDS, true).unwrap();
        assert_eq!((ns(s.value), ns(s.interval)), (2_000_000_000, 0));
        let s = Spec::new(7, raw::NOTE_USECONDS, false).unwrap();
        assert_eq!(ns(s.value), 7_000);
        let s = Spec::new(9, raw::NOTE_NSECONDS, false).unwrap();
        assert_eq!(ns(s.value), 9);
    }

    #[test]
    fn zero_and_invalid() {
        let s = Spec::new(0, 0, false).unwrap();
        assert_eq!((ns(s.value), ns(s.interval)), (1_000_000, 1_000_000));
        let s = Spec::new(0, 0, true).unwrap();
        assert_eq!((ns(s.value), ns(s.interval)), (1, 0));
        assert_eq!(Spec::new(-1, 0, false).err(), Some(Errno::EINVAL));
        assert_eq!(
            Spec::new(1, raw::NOTE_SECONDS | raw::NOTE_NSECONDS, false).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(Spec::new(1, 0x100, false).err(), Some(Errno::EINVAL));
    }

    #[test]
    fn huge_periods_saturate() {
        let s = Spec::new(i64::MAX, raw::NOTE_SECONDS, false).unwrap();
        assert_eq!(s.value.tv_sec, libc::time_t::MAX);
    }
}
