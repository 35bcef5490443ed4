//! Changes and events: the owned, platform-neutral face of `struct kevent`.
//!
//! [`Change`] and [`Event`] wrap the target's raw `struct kevent` without
//! adding a byte (`repr(transparent)`), so a batch of changes goes to the
//! kernel and a batch of events comes back without copying. Every field is
//! read and written through accessors that widen it to one type on all
//! platforms (`filter` and `flags` are `u32` on NetBSD and 16-bit elsewhere,
//! `data` is `isize` on macOS and `i64` on FreeBSD), which is what keeps the
//! rest of kqring free of `cfg`.

// The casts below widen each field to one type; on some targets the field
// already has that type, so clippy sees a no-op there and a need elsewhere.
#![allow(clippy::unnecessary_cast)]

use std::fmt;
use std::io;
use std::time::Duration;

use super::raw;

/// A kevent filter: which kind of event a registration watches.
///
/// The value is the target's own constant (`EVFILT_USER` is -11 on FreeBSD,
/// -10 on macOS, 8 on NetBSD…), widened to `i32`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Filter(i32);

impl Filter {
    /// `EVFILT_READ`: the descriptor has data to read (or a connection to
    /// accept); `data` is the byte count.
    pub const READ: Filter = Filter(raw::EVFILT_READ as i32);
    /// `EVFILT_WRITE`: the descriptor has room to write; `data` is the room.
    pub const WRITE: Filter = Filter(raw::EVFILT_WRITE as i32);
    /// `EVFILT_VNODE`: a file changed; `fflags` says how (`note::WRITE`…).
    pub const VNODE: Filter = Filter(raw::EVFILT_VNODE as i32);
    /// `EVFILT_PROC`: a process event; with `note::EXIT`, `data` is the
    /// wait status.
    pub const PROC: Filter = Filter(raw::EVFILT_PROC as i32);
    /// `EVFILT_SIGNAL`: a signal was delivered; `data` counts deliveries.
    pub const SIGNAL: Filter = Filter(raw::EVFILT_SIGNAL as i32);
    /// `EVFILT_TIMER`: a timer expired; `data` counts expirations.
    pub const TIMER: Filter = Filter(raw::EVFILT_TIMER as i32);
    /// `EVFILT_USER`: an event triggered by a program (`note::TRIGGER`).
    pub const USER: Filter = Filter(raw::EVFILT_USER as i32);

    /// The raw value of the target's constant.
    pub const fn raw(self) -> i32 {
        self.0
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Filter::READ => "READ",
            Filter::WRITE => "WRITE",
            Filter::VNODE => "VNODE",
            Filter::PROC => "PROC",
            Filter::SIGNAL => "SIGNAL",
            Filter::TIMER => "TIMER",
            Filter::USER => "USER",
            _ => return None,
        })
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "EVFILT_{name}"),
            None => write!(f, "Filter({})", self.0),
        }
    }
}

bitflags::bitflags! {
    /// kevent flags (`EV_*`), as the target defines them, widened to `u32`
    /// (NetBSD's are `u32`, everyone else's `u16`). Bits the target defines
    /// and kqring does not name are kept as they come.
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Flags: u32 {
        /// `EV_ADD`: add the registration, or modify it when it exists.
        const ADD = raw::EV_ADD as u32;
        /// `EV_DELETE`: remove the registration.
        const DELETE = raw::EV_DELETE as u32;
        /// `EV_ENABLE`: let a disabled registration report again.
        const ENABLE = raw::EV_ENABLE as u32;
        /// `EV_DISABLE`: keep the registration but report nothing.
        const DISABLE = raw::EV_DISABLE as u32;
        /// `EV_ONESHOT`: delete the registration after its first event.
        const ONESHOT = raw::EV_ONESHOT as u32;
        /// `EV_CLEAR`: reset the state after each event (edge-triggered).
        const CLEAR = raw::EV_CLEAR as u32;
        /// `EV_DISPATCH`: disable the registration after each event.
        const DISPATCH = raw::EV_DISPATCH as u32;
        /// `EV_RECEIPT`: answer this change with an `EV_ERROR` event whose
        /// `data` is 0 on success or the errno.
        const RECEIPT = raw::EV_RECEIPT as u32;
        /// `EV_EOF` (output): end of file or hang-up; `fflags` may hold the
        /// socket error.
        const EOF = raw::EV_EOF as u32;
        /// `EV_ERROR` (output): the event reports a change's result; `data`
        /// is the errno, 0 for a receipt.
        const ERROR = raw::EV_ERROR as u32;
    }
}

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags::empty();
}

impl fmt::Debug for Flags {
    /// `EV_ADD|EV_CLEAR`, with any bits kqring does not name in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, _) in self.iter_names() {
            write!(f, "{}EV_{name}", if first { "" } else { "|" })?;
            first = false;
        }
        let rest = self.bits() & !Flags::all().bits();
        if rest != 0 || first {
            write!(f, "{}{rest:#x}", if first { "" } else { "|" })?;
        }
        Ok(())
    }
}

/// Filter-specific flags (`NOTE_*`) for [`Change::fflags`] and
/// [`Event::fflags`], as the target defines them.
pub mod note {
    use super::raw;

    /// EVFILT_USER: trigger the event.
    pub const TRIGGER: u32 = raw::NOTE_TRIGGER as u32;
    /// EVFILT_USER: leave the stored flags as they are.
    pub const FFNOP: u32 = raw::NOTE_FFNOP as u32;
    /// EVFILT_USER: AND the stored flags with the given ones.
    pub const FFAND: u32 = raw::NOTE_FFAND as u32;
    /// EVFILT_USER: OR the given flags into the stored ones.
    pub const FFOR: u32 = raw::NOTE_FFOR as u32;
    /// EVFILT_USER: replace the stored flags.
    pub const FFCOPY: u32 = raw::NOTE_FFCOPY as u32;
    /// EVFILT_USER: the bits that select the operation above.
    pub const FFCTRLMASK: u32 = raw::NOTE_FFCTRLMASK as u32;
    /// EVFILT_USER: the bits that carry user flags.
    pub const FFLAGSMASK: u32 = raw::NOTE_FFLAGSMASK as u32;

    /// EVFILT_VNODE: the file was unlinked.
    pub const DELETE: u32 = raw::NOTE_DELETE as u32;
    /// EVFILT_VNODE: the file was written.
    pub const WRITE: u32 = raw::NOTE_WRITE as u32;
    /// EVFILT_VNODE: the file grew.
    pub const EXTEND: u32 = raw::NOTE_EXTEND as u32;
    /// EVFILT_VNODE: the file's attributes changed.
    pub const ATTRIB: u32 = raw::NOTE_ATTRIB as u32;
    /// EVFILT_VNODE: the file's link count changed.
    pub const LINK: u32 = raw::NOTE_LINK as u32;
    /// EVFILT_VNODE: the file was renamed.
    pub const RENAME: u32 = raw::NOTE_RENAME as u32;
    /// EVFILT_VNODE: access to the file was revoked (`revoke(2)`, a forced
    /// unmount); the registration ends with it. The Linux compat never
    /// reports it.
    pub const REVOKE: u32 = raw::NOTE_REVOKE as u32;

    /// EVFILT_PROC: the process exited. Use [`EXIT_STATUS`] to also get the
    /// wait status in `data` on every platform.
    pub const EXIT: u32 = raw::NOTE_EXIT as u32;
    /// EVFILT_PROC: the process exited, and `data` carries its wait status
    /// (macOS needs `NOTE_EXITSTATUS` for that; the others give it anyway).
    pub const EXIT_STATUS: u32 = super::super::NOTE_EXIT_STATUS as u32;
}

/// The unit of an EVFILT_TIMER period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerUnit {
    /// Seconds (`NOTE_SECONDS`).
    Seconds,
    /// Milliseconds: kqueue's default, `fflags` 0 on every platform.
    Millis,
    /// Microseconds (`NOTE_USECONDS`).
    Micros,
    /// Nanoseconds (`NOTE_NSECONDS`).
    Nanos,
}

impl TimerUnit {
    /// The `fflags` that select this unit on the target, or `None` where the
    /// platform only counts milliseconds (OpenBSD, DragonFly).
    pub fn fflags(self) -> Option<u32> {
        let [secs, micros, nanos] = super::TIMER_UNITS;
        match self {
            TimerUnit::Millis => Some(0),
            TimerUnit::Seconds => secs,
            TimerUnit::Micros => micros,
            TimerUnit::Nanos => nanos,
        }
    }

    /// The unit that `fflags` selects on the target (`Millis` when no unit
    /// bit is set).
    pub fn from_fflags(fflags: u32) -> TimerUnit {
        let [secs, micros, nanos] = super::TIMER_UNITS;
        let unit_bits = [secs, micros, nanos]
            .into_iter()
            .flatten()
            .fold(0, |acc, bits| acc | bits);
        let bits = fflags & unit_bits;
        // Compared in this order because NetBSD encodes units as a small
        // enumeration (NSECONDS == SECONDS | USECONDS) rather than bits.
        if bits != 0 && Some(bits) == nanos {
            TimerUnit::Nanos
        } else if bits != 0 && Some(bits) == micros {
            TimerUnit::Micros
        } else if bits != 0 && Some(bits) == secs {
            TimerUnit::Seconds
        } else {
            TimerUnit::Millis
        }
    }

    /// How long one tick of this unit lasts.
    pub fn tick(self) -> Duration {
        match self {
            TimerUnit::Seconds => Duration::from_secs(1),
            TimerUnit::Millis => Duration::from_millis(1),
            TimerUnit::Micros => Duration::from_micros(1),
            TimerUnit::Nanos => Duration::from_nanos(1),
        }
    }
}

/// A zeroed `struct kevent`.
fn zeroed() -> raw::kevent {
    // SAFETY: `struct kevent` is plain old data on every target (integers,
    // a `udata` pointer that may be null, FreeBSD's `ext` integers), so the
    // all-zero pattern is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Accessors of a type over a raw kevent (`Change`, `Event`), each
/// returning one field of [`Fields`].
macro_rules! read_fields {
    ($ty:ident; $($(#[$doc:meta])* $method:ident => $field:ident: $t:ty;)*) => {
        impl $ty {
            $(
                $(#[$doc])*
                pub fn $method(&self) -> $t {
                    Fields::of(&self.0).$field
                }
            )*
        }
    };
}

/// The fields of a `struct kevent`, each widened to the one type kqring
/// uses on every target.
#[derive(Clone, Copy)]
struct Fields {
    ident: usize,
    filter: Filter,
    flags: Flags,
    fflags: u32,
    data: i64,
    token: u64,
}

impl Fields {
    fn of(kev: &raw::kevent) -> Fields {
        Fields {
            ident: kev.ident as usize,
            filter: Filter(kev.filter as i32),
            flags: Flags::from_bits_retain(kev.flags as u32),
            fflags: kev.fflags as u32,
            data: kev.data as i64,
            token: kev.udata as usize as u64,
        }
    }

    /// `name { ident, filter, flags, fflags, data, token }`.
    fn debug(self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("ident", &self.ident)
            .field("filter", &self.filter)
            .field("flags", &self.flags)
            .field("fflags", &format_args!("{:#x}", self.fflags))
            .field("data", &self.data)
            .field("token", &self.token)
            .finish()
    }
}

/// One change to submit: a registration to add, modify, enable, disable or
/// delete, or an EVFILT_USER trigger.
///
/// ```
/// use kqring::sys::{Change, Filter, Flags};
/// let c = Change::new(3, Filter::READ, Flags::ADD | Flags::CLEAR).token(7);
/// assert_eq!((c.ident(), c.filter(), c.get_token()), (3, Filter::READ, 7));
/// ```
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Change(raw::kevent);

impl Change {
    /// A change for the registration (`ident`, `filter`) with `flags`;
    /// `fflags`, `data` and the token start at 0.
    pub fn new(ident: usize, filter: Filter, flags: Flags) -> Change {
        let mut kev = zeroed();
        kev.ident = ident as _;
        kev.filter = filter.0 as _;
        kev.flags = flags.bits() as _;
        Change(kev)
    }

    /// The same change with `flags` instead of its own.
    #[must_use]
    pub fn with_flags(mut self, flags: Flags) -> Change {
        self.0.flags = flags.bits() as _;
        self
    }

    /// Sets the filter-specific flags.
    #[must_use]
    pub fn fflags(mut self, fflags: u32) -> Change {
        self.0.fflags = fflags as _;
        self
    }

    /// Sets the filter-specific data (the timer period, say).
    #[must_use]
    pub fn data(mut self, data: i64) -> Change {
        self.0.data = data as _;
        self
    }

    /// Sets the token that every event of this registration carries back
    /// (`udata`). Only the low `usize` bits survive on 32-bit targets.
    #[must_use]
    pub fn token(mut self, token: u64) -> Change {
        self.0.udata = token as usize as _;
        self
    }

    /// EVFILT_READ on `fd`.
    pub fn read(fd: i32, flags: Flags) -> Change {
        Change::new(fd as usize, Filter::READ, flags)
    }

    /// EVFILT_WRITE on `fd`.
    pub fn write(fd: i32, flags: Flags) -> Change {
        Change::new(fd as usize, Filter::WRITE, flags)
    }

    /// EVFILT_USER `ident` with `fflags` (a `note::FF*` operation and user
    /// bits, and `note::TRIGGER` to fire it).
    pub fn user(ident: usize, flags: Flags, fflags: u32) -> Change {
        Change::new(ident, Filter::USER, flags).fflags(fflags)
    }

    /// Triggers the EVFILT_USER registration `ident`.
    pub fn trigger(ident: usize) -> Change {
        Change::user(ident, Flags::NONE, note::TRIGGER)
    }

    /// EVFILT_TIMER `ident` firing every `period` (once with
    /// `Flags::ONESHOT`). Picks the coarsest exact unit the platform has,
    /// and rounds up to whole milliseconds where it has no finer one.
    pub fn timer(ident: usize, flags: Flags, period: Duration) -> Change {
        let nanos = period.as_nanos();
        let candidates = [
            (TimerUnit::Millis, 1_000_000u128),
            (TimerUnit::Micros, 1_000),
            (TimerUnit::Nanos, 1),
        ];
        for (unit, per_tick) in candidates {
            if nanos.is_multiple_of(per_tick) && unit.fflags().is_some() {
                return Change::timer_in(ident, flags, (nanos / per_tick) as i64, unit);
            }
        }
        let millis = nanos.div_ceil(1_000_000);
        Change::timer_in(
            ident,
            flags,
            millis.min(i64::MAX as u128) as i64,
            TimerUnit::Millis,
        )
    }

    /// EVFILT_TIMER `ident` with a period of `value` in `unit`. Where the
    /// platform lacks `unit`, the value is converted to milliseconds,
    /// rounding up.
    pub fn timer_in(ident: usize, flags: Flags, value: i64, unit: TimerUnit) -> Change {
        match unit.fflags() {
            Some(bits) => Change::new(ident, Filter::TIMER, flags)
                .fflags(bits)
                .data(value),
            None => {
                let nanos = unit.tick().as_nanos() * value.max(0) as u128;
                let millis = nanos.div_ceil(1_000_000).min(i64::MAX as u128) as i64;
                Change::new(ident, Filter::TIMER, flags).data(millis)
            }
        }
    }

    /// EVFILT_PROC `NOTE_EXIT` (with the status in `data`) for `pid`.
    pub fn proc_exit(pid: libc::pid_t, flags: Flags) -> Change {
        Change::new(pid as usize, Filter::PROC, flags).fflags(note::EXIT_STATUS)
    }

    /// EVFILT_SIGNAL for `signal`.
    pub fn signal(signal: i32, flags: Flags) -> Change {
        Change::new(signal as usize, Filter::SIGNAL, flags)
    }

    /// EVFILT_VNODE on `fd` for the `note::*` changes in `fflags`.
    pub fn vnode(fd: i32, flags: Flags, fflags: u32) -> Change {
        Change::new(fd as usize, Filter::VNODE, flags).fflags(fflags)
    }
}

read_fields! {
    Change;
    /// The identifier: an fd, a pid, a signal number or a user number.
    ident => ident: usize;
    /// The filter.
    filter => filter: Filter;
    /// The flags.
    flags => flags: Flags;
    /// The filter-specific flags.
    get_fflags => fflags: u32;
    /// The filter-specific data.
    get_data => data: i64;
    /// The token.
    get_token => token: u64;
}

impl fmt::Debug for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Fields::of(&self.0).debug("Change", f)
    }
}

/// One event that `kevent` returned: readiness, a timer, a signal… or, with
/// [`Flags::ERROR`], the result of one of the submitted changes.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Event(raw::kevent);

impl Event {
    /// Builds an event from its fields (what a backend that is not the
    /// kernel reports).
    pub(crate) fn from_parts(
        ident: usize,
        filter: Filter,
        flags: Flags,
        fflags: u32,
        data: i64,
        token: u64,
    ) -> Event {
        Event(
            Change::new(ident, filter, flags)
                .fflags(fflags)
                .data(data)
                .token(token)
                .0,
        )
    }

    /// The result of `change` failing with `errno`, as a kernel reports
    /// one: `EV_ERROR`, the errno in `data`, the change's identity.
    pub(crate) fn failed(change: &Change, errno: i32) -> Event {
        Event::from_parts(
            change.ident(),
            change.filter(),
            Flags::ERROR,
            change.get_fflags(),
            i64::from(errno),
            change.get_token(),
        )
    }

    /// Whether `EV_EOF` is set.
    pub fn is_eof(&self) -> bool {
        self.flags().contains(Flags::EOF)
    }

    /// Whether this event reports a change's result (`EV_ERROR`), whether
    /// it failed or, for `EV_RECEIPT`, succeeded.
    pub fn is_error(&self) -> bool {
        self.flags().contains(Flags::ERROR)
    }

    /// The error a change failed with: `Some` only for an `EV_ERROR` event
    /// with a non-zero `data`.
    pub fn error(&self) -> Option<io::Error> {
        (self.is_error() && self.data() != 0)
            .then(|| io::Error::from_raw_os_error(self.data() as i32))
    }
}

read_fields! {
    Event;
    /// The identifier of the registration.
    ident => ident: usize;
    /// The filter of the registration.
    filter => filter: Filter;
    /// The flags (`EV_EOF`, `EV_ERROR`, and those of the registration).
    flags => flags: Flags;
    /// The filter-specific flags (`note::*`, or the socket error on EOF).
    fflags => fflags: u32;
    /// The filter-specific data: bytes readable, room to write, timer
    /// expirations, signal deliveries, wait status, or an errno with
    /// `EV_ERROR`.
    data => data: i64;
    /// The token given with the registration (`udata`).
    token => token: u64;
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Fields::of(&self.0).debug("Event", f)
    }
}

// SAFETY: the only pointer inside is `udata`, which kqring uses as an opaque
// integer token and never dereferences.
unsafe impl Send for Change {}
// SAFETY: as above; nothing is reachable through `udata`.
unsafe impl Sync for Change {}
// SAFETY: as above.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_themselves_and_keep_unnamed_bits() {
        assert_eq!(
            format!("{:?}", Flags::ADD | Flags::CLEAR),
            "EV_ADD|EV_CLEAR"
        );
        assert_eq!(format!("{:?}", Flags::NONE), "0x0");
        let all = Flags::all().bits();
        let unnamed = (0..16).map(|b| 1u32 << b).find(|b| all & b == 0);
        if let Some(bit) = unnamed {
            let c = Change::new(1, Filter::USER, Flags::from_bits_retain(bit) | Flags::ADD);
            assert_eq!(c.flags().bits(), bit | Flags::ADD.bits());
            assert_eq!(format!("{:?}", c.flags()), format!("EV_ADD|{bit:#x}"));
            assert_eq!(c.flags() - Flags::ADD, Flags::from_bits_retain(bit));
        }
    }
}
