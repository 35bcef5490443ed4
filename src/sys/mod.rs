//! The kevent layer: one safe kqueue API over every platform kqring runs on.
//!
//! Everything above this module speaks only [`Kqueue`], [`Change`],
//! [`Event`] and [`Waker`]; no code outside `src/sys/` touches a raw `struct kevent`.
//! Which backend serves the API is decided here, once, at the module
//! boundary:
//!
//! | platform | backend | raw ABI |
//! |---|---|---|
//! | macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly | `kqueue.rs`: the native syscall | `libc` for the target |
//! | Linux (default) | `compat/`: kqueue semantics over epoll, eventfd, timerfd, pidfd, signalfd, inotify | `linux_abi.rs` |
//! | Linux, feature `libkqueue` | `libkqueue.rs` over `kqueue.rs`, linking the system's libkqueue | `linux_abi.rs` |
//!
//! The platform facts hidden here: the size and packing of `struct kevent`
//! (64 bytes on FreeBSD ≥ 12, `packed(4)` on macOS, 32 bytes elsewhere),
//! NetBSD's `u32` filter and flags, the value of `EVFILT_USER` (-11, -10, -9
//! or 8), and the timer-unit bits of `fflags`, which differ between FreeBSD
//! and everyone else.
//!
//! Every backend keeps one contract for `Kqueue::kevent`, written once in
//! `kevent.md` and put at the head of each one's documentation; each adds
//! only how it keeps it.

pub(crate) mod errno;
mod event;
pub(crate) mod fs;
pub(crate) mod io;
pub(crate) mod net;
pub(crate) mod process;
mod sockaddr;
pub(crate) mod stat;
mod wait;

pub use event::{Change, Event, Filter, Flags, TimerUnit, note};

// `build.rs` sets exactly one of `kq_native`, `kq_libkqueue`, `kq_compat`.

/// The raw kevent ABI: `libc`'s for the target on macOS and the BSDs.
#[cfg(kq_native)]
pub(crate) use libc as raw;
/// The raw kevent ABI: libkqueue's header shape on Linux.
#[cfg(not(kq_native))]
#[path = "linux_abi.rs"]
pub(crate) mod raw;

#[cfg(kq_compat)]
mod compat;
#[cfg(any(kq_native, kq_libkqueue))]
mod kqueue;
#[cfg(kq_libkqueue)]
mod libkqueue;

#[cfg(kq_compat)]
use self::compat as backend;
/// The backend serving [`Kqueue`].
#[cfg(kq_native)]
use self::kqueue as backend;
#[cfg(kq_libkqueue)]
use self::libkqueue as backend;

#[cfg(not(feature = "fault-injection"))]
pub use backend::Kqueue;
#[cfg(kq_libkqueue)]
pub use libkqueue::Waker;

// Tests' planned faults: the backend's kqueue behind a wrapper.
#[cfg(feature = "fault-injection")]
mod fault;
#[cfg(feature = "fault-injection")]
pub use fault::{Calls, Faults, Kqueue, PlannedPanic};

/// A blocking-pool worker starts an operation on the ring of `kq`: where
/// a planned worker panic happens. Nothing without `fault-injection`.
#[inline(always)]
pub(crate) fn worker_starts(kq: &Kqueue) {
    #[cfg(feature = "fault-injection")]
    kq.faults().worker_starts();
    #[cfg(not(feature = "fault-injection"))]
    let _ = kq;
}

/// The driver starts a turn on the ring of `kq`: where a planned driver
/// panic happens. Nothing without `fault-injection`.
#[inline(always)]
pub(crate) fn driver_turns(kq: &Kqueue) {
    #[cfg(feature = "fault-injection")]
    kq.faults().driver_turns();
    #[cfg(not(feature = "fault-injection"))]
    let _ = kq;
}

// A kernel kqueue and the compat wake a blocked `kevent` with an
// EVFILT_USER trigger; libkqueue can't (see `libkqueue.rs`).
#[cfg(not(kq_libkqueue))]
mod user_waker;
#[cfg(not(kq_libkqueue))]
pub use user_waker::Waker;

#[cfg(not(kq_native))]
use raw::{NOTE_EXIT_STATUS, TIMER_UNITS};

/// `fflags` selecting EVFILT_TIMER's unit: seconds, microseconds,
/// nanoseconds (milliseconds is `0` everywhere). OpenBSD and DragonFly
/// offer only milliseconds.
#[cfg(all(kq_native, not(any(target_os = "openbsd", target_os = "dragonfly"))))]
const TIMER_UNITS: [Option<u32>; 3] = [
    Some(libc::NOTE_SECONDS),
    Some(libc::NOTE_USECONDS),
    Some(libc::NOTE_NSECONDS),
];
#[cfg(all(kq_native, any(target_os = "openbsd", target_os = "dragonfly")))]
const TIMER_UNITS: [Option<u32>; 3] = [None, None, None];

/// `fflags` for EVFILT_PROC that put the exit status in `data`: Apple's
/// kernels need NOTE_EXITSTATUS for it, the BSDs give it with NOTE_EXIT.
#[cfg(all(kq_native, target_vendor = "apple"))]
const NOTE_EXIT_STATUS: u32 = libc::NOTE_EXIT | libc::NOTE_EXITSTATUS;
#[cfg(all(kq_native, not(target_vendor = "apple")))]
const NOTE_EXIT_STATUS: u32 = libc::NOTE_EXIT;

/// The errno of an expired timeout (`res == -ETIME`). io_uring's is
/// `ETIME`; FreeBSD, OpenBSD and DragonFly have no `ETIME`, so kqring uses
/// `ETIMEDOUT` there.
#[cfg(any(target_os = "linux", target_vendor = "apple", target_os = "netbsd"))]
pub const ETIME: i32 = libc::ETIME;
/// The errno of an expired timeout (`res == -ETIME`). io_uring's is
/// `ETIME`; FreeBSD, OpenBSD and DragonFly have no `ETIME`, so kqring uses
/// `ETIMEDOUT` there.
#[cfg(not(any(target_os = "linux", target_vendor = "apple", target_os = "netbsd")))]
pub const ETIME: i32 = libc::ETIMEDOUT;

/// The bytes kqring's kevent layer keeps in user space per descriptor with
/// a read or write registration: the compat's table slot on Linux; none
/// with a kernel kqueue or libkqueue (which keep their own).
#[cfg(test)]
#[cfg(kq_compat)]
pub(crate) fn registration_bytes() -> usize {
    compat::registration_bytes()
}

/// The bytes kqring's kevent layer keeps in user space per descriptor with
/// a read or write registration: the compat's table slot on Linux; none
/// with a kernel kqueue or libkqueue (which keep their own).
#[cfg(test)]
#[cfg(not(kq_compat))]
pub(crate) fn registration_bytes() -> usize {
    0
}

/// Whether a descriptor's registrations outlive its `close()`: a kernel
/// kqueue forgets them, and the compat notices the number naming another
/// file when it is registered again; libkqueue keeps its state for the
/// closed file, so a registration added again after the number was reused
/// never reports. The driver then deletes a registration as soon as its
/// last waiter leaves, before that waiter's completion can be seen.
pub(crate) const KEEPS_CLOSED_REGISTRATIONS: bool = cfg!(kq_libkqueue);

/// The name of the backend serving [`Kqueue`] in this build, for logs and
/// benchmark tables, and for tests whose expectation a backend can't meet
/// (docs/semantics.md lists where libkqueue differs from a kernel kqueue):
/// `"kqueue"` (the kernel's), `"linux-compat"` or `"libkqueue"`.
pub const BACKEND: &str = if cfg!(kq_libkqueue) {
    "libkqueue"
} else if cfg!(kq_compat) {
    "linux-compat"
} else {
    "kqueue"
};
