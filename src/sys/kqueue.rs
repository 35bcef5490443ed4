//! [`Kqueue`] over a real kqueue: the BSDs' and macOS' syscall, or the
//! system's libkqueue on Linux. Both take the same `kqueue()`/`kevent()`
//! calls; only the `raw` ABI module differs.

// Field types differ per target; a cast that is a no-op on one is needed on
// another.
#![allow(clippy::unnecessary_cast)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::errno::{Errno, check};
use super::raw;
use super::wait::{Deadline, make_room};
use crate::sys::{Change, Event};

/// A kqueue: registrations keyed by (ident, filter) and the events they
/// produce.
///
/// `kevent` takes `&self`: like the syscall, it may be called from several
/// threads at once (an EVFILT_USER trigger from one thread wakes another
/// blocked in `kevent`).
#[derive(Debug)]
pub struct Kqueue {
    fd: OwnedFd,
}

impl Kqueue {
    /// Whether `fd` is the kqueue's own descriptor.
    pub fn owns(&self, fd: RawFd) -> bool {
        fd == self.fd.as_raw_fd()
    }

    /// Creates a kqueue whose descriptor is close-on-exec.
    pub fn new() -> io::Result<Kqueue> {
        // SAFETY: kqueue() takes no arguments and returns a new fd or -1.
        let fd = check(unsafe { raw::kqueue() })?;
        // SAFETY: `fd` was just returned to us and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // kqueue descriptors are not inherited across fork() anyway; the
        // flag keeps an exec'd program from holding one. (kqueue1/kqueuex
        // would avoid the window between the two calls, but are not on
        // every target.)
        // SAFETY: fcntl on an fd we own, with integer arguments.
        check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(Kqueue { fd })
    }

    /// A kqueue for callers that never read the `data` of EVFILT_READ and
    /// EVFILT_WRITE events. The kernel counts for free, so this is
    /// [`Kqueue::new`]; the Linux compat skips the calls that count.
    #[cfg_attr(kq_libkqueue, allow(dead_code))]
    pub fn uncounted() -> io::Result<Kqueue> {
        Kqueue::new()
    }

    /// Whether an `EVFILT_READ` event's `data` is the bytes readable when
    /// it was collected: the kernel's count, always.
    #[cfg_attr(kq_libkqueue, allow(dead_code))]
    pub fn counts_readable(&self) -> bool {
        true
    }

    #[doc = include_str!("kevent.md")]
    ///
    /// Here it is one `kevent()` call (another only after EINTR); the
    /// kernel may return events it found ready along with the results.
    pub fn kevent(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        make_room(changes, events);
        let capacity = events.capacity() - events.len();
        self.kevent_into(changes, events, capacity, timeout)
    }

    /// One `kevent` call as the syscall makes it: submits `changes` and
    /// collects events into at most `capacity` slots of the spare capacity
    /// of `events` (fewer if there are fewer), waiting up to `timeout`.
    /// EINTR is retried with the time that is left, without the changes.
    pub(crate) fn kevent_into(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        capacity: usize,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let capacity = capacity
            .min(events.capacity() - events.len())
            .min(i32::MAX as usize);
        let deadline = Deadline::after(timeout);
        let mut pending = changes;
        loop {
            let ts = deadline.left().map(|d| libc::timespec {
                tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                tv_nsec: d.subsec_nanos() as _,
            });
            let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |ts| ts as *const _);
            // SAFETY: `Change` and `Event` are `repr(transparent)` over
            // `raw::kevent`, so the change slice is `pending.len()` valid
            // kevents; the event pointer addresses `capacity` slots of
            // spare, writable capacity of `events`; `ts_ptr` is null or
            // points at `ts`, alive for the call.
            let n = unsafe {
                raw::kevent(
                    self.fd.as_raw_fd(),
                    pending.as_ptr().cast::<raw::kevent>(),
                    pending.len() as _,
                    events.as_mut_ptr().add(events.len()).cast::<raw::kevent>(),
                    capacity as _,
                    ts_ptr,
                )
            };
            match check(n) {
                Ok(n) => {
                    let n = n as usize;
                    // SAFETY: the kernel initialised the first `n` spare
                    // slots, and `n <= capacity`.
                    unsafe { events.set_len(events.len() + n) };
                    return Ok(n);
                }
                // The kernel applies the change list before it sleeps, so
                // a signal can only have interrupted the wait.
                Err(Errno::EINTR) => pending = &[],
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
