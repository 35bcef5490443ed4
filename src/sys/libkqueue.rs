//! [`Kqueue`] over the system's libkqueue (Linux, feature `libkqueue`), and
//! a [`Waker`] that works there.
//!
//! libkqueue implements `kqueue()`/`kevent()` in user space over epoll, and
//! differs from a kernel kqueue in two ways kqring can't take as they are
//! (docs/semantics.md, "System libkqueue", lists them all):
//!
//! - Its `kevent()` writes the results of the change list (`EV_ERROR`
//!   entries, for failures and `EV_RECEIPT`) and then, if the event list
//!   has room left, waits for events with the full timeout; when that wait
//!   times out, it returns 0 and the results already written are lost. A
//!   kernel kqueue returns at once with the results. [`Kqueue::kevent`]
//!   gives the kernel's answer: it submits the changes with `EV_RECEIPT`
//!   on each and exactly one slot per change, so libkqueue fills the list
//!   with the results and returns without waiting; it keeps the results a
//!   kernel would have returned (failures, and receipts that were asked
//!   for) and returns them. Only when there are none does it make a second
//!   call, without changes, that waits for events.
//! - It holds the kqueue's lock for the whole wait, so a `kevent()` call on
//!   the same kqueue from another thread (an EVFILT_USER trigger, a
//!   registration) blocks until the waiting call returns. The [`Waker`]
//!   here is therefore a pipe registered for EVFILT_READ, which a waking
//!   thread writes to without calling `kevent()`.

// Field types differ per target; a cast that is a no-op on one is needed on
// another.
#![allow(clippy::unnecessary_cast)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::errno::{Errno, check, check_len, retry};
use super::kqueue;
use super::raw::{MAX_KEVENT, TIMER_UNITS};
use super::wait::Deadline;
use crate::sys::{Change, Event, Filter, Flags};

/// A kqueue: registrations keyed by (ident, filter) and the events they
/// produce.
///
/// `kevent` takes `&self` and may be called from several threads at once,
/// but with libkqueue a call waits for a call blocked on the same kqueue to
/// return: use a [`Waker`] to wake that one.
#[derive(Debug)]
pub struct Kqueue {
    kq: kqueue::Kqueue,
}

impl Kqueue {
    /// Whether `fd` is the kqueue's own descriptor.
    pub fn owns(&self, fd: RawFd) -> bool {
        self.kq.owns(fd)
    }

    /// Creates a kqueue whose descriptor is close-on-exec.
    pub fn new() -> io::Result<Kqueue> {
        Ok(Kqueue {
            kq: kqueue::Kqueue::new()?,
        })
    }

    /// A kqueue for callers that never read the `data` of EVFILT_READ and
    /// EVFILT_WRITE events: [`Kqueue::new`] (libkqueue counts anyway).
    pub fn uncounted() -> io::Result<Kqueue> {
        Kqueue::new()
    }

    /// Whether an `EVFILT_READ` event's `data` is the bytes readable when
    /// it was collected: not relied on over libkqueue, whose counts were
    /// not checked against every kind of file.
    pub fn counts_readable(&self) -> bool {
        false
    }

    #[doc = include_str!("kevent.md")]
    ///
    /// Over libkqueue the changes go in a first call, with `EV_RECEIPT` on
    /// each and one event slot per change, that returns at once; only
    /// without results does a second call, without changes, wait. Change
    /// results come back alone.
    pub fn kevent(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let deadline = Deadline::after(timeout);
        let before = events.len();
        if !changes.is_empty() {
            let mut sent = Vec::with_capacity(changes.len().min(MAX_KEVENT));
            let mut origin = Vec::with_capacity(sent.capacity());
            // libkqueue takes at most MAX_KEVENT event slots per call, and
            // a change may be sent as two: more changes go in several calls.
            for chunk in changes.chunks(MAX_KEVENT / 2) {
                sent.clear();
                origin.clear();
                for (i, c) in chunk.iter().enumerate() {
                    let flags = c.flags() | Flags::RECEIPT;
                    if splits_disabled_add(c) {
                        // Added enabled, then disabled, in the same call:
                        // nothing can be reported in between.
                        sent.push(c.with_flags(flags - Flags::DISABLE));
                        sent.push(c.with_flags(flags - Flags::ADD));
                        origin.extend([i, i]);
                    } else {
                        sent.push(c.with_flags(flags));
                        origin.push(i);
                    }
                }
                events.reserve(sent.len());
                let at = events.len();
                let n = self
                    .kq
                    .kevent_into(&sent, events, sent.len(), Some(Duration::ZERO))?;
                keep_kernel_results(chunk, &origin, events, at, n);
            }
            if events.len() > before {
                return Ok(events.len() - before);
            }
        }
        let n = self.kq.kevent(&[], events, deadline.left())?;
        // A registration keeps the flags it was added with, EV_RECEIPT
        // included, and libkqueue echoes them in its events: take back the
        // one added above, which the caller may not have asked for.
        // Likewise a timer's events echo the unit bits of its `fflags`,
        // which a kernel kqueue does not report.
        let units = TIMER_UNITS.into_iter().flatten().fold(0, |a, b| a | b);
        for ev in &mut events[before..] {
            let timer = ev.filter() == Filter::TIMER;
            if ev.flags().contains(Flags::RECEIPT) || (timer && ev.fflags() & units != 0) {
                let fflags = if timer {
                    ev.fflags() & !units
                } else {
                    ev.fflags()
                };
                *ev = Event::from_parts(
                    ev.ident(),
                    ev.filter(),
                    ev.flags() - Flags::RECEIPT,
                    fflags,
                    ev.data(),
                    ev.token(),
                );
            }
        }
        Ok(n)
    }
}

/// Whether `change` adds a registration disabled, which libkqueue gets
/// wrong for EVFILT_READ and EVFILT_WRITE (the registration reports
/// anyway): such a change is sent as an `EV_ADD` and an `EV_DISABLE`.
fn splits_disabled_add(change: &Change) -> bool {
    change.flags().contains(Flags::ADD | Flags::DISABLE)
        && (change.filter() == Filter::READ || change.filter() == Filter::WRITE)
}

/// Filters the `n` results libkqueue wrote at `events[at..]` for the
/// changes sent for `chunk` (with `EV_RECEIPT` on each, so one result per
/// change sent, in order; `origin` maps each to its change in `chunk`) down
/// to those a kernel kqueue would have returned: failures, and receipts the
/// change asked for, one per change of `chunk`. Each keeps the flags of its
/// change as given, plus `EV_ERROR`.
fn keep_kernel_results(
    chunk: &[Change],
    origin: &[usize],
    events: &mut Vec<Event>,
    at: usize,
    n: usize,
) {
    let results: Vec<Event> = events.drain(at..at + n).collect();
    if n != origin.len() {
        // Not one result per change (libkqueue's query filter answers
        // differently; kqring never uses it): keep the failures.
        events.extend(results.into_iter().filter(|ev| ev.error().is_some()));
        return;
    }
    let mut i = 0;
    while i < n {
        let k = origin[i];
        let change = &chunk[k];
        // The first failure among the results of this change, else 0.
        let mut errno = 0;
        while i < n && origin[i] == k {
            if errno == 0 {
                errno = results[i].data();
            }
            i += 1;
        }
        if errno == i64::from(libc::EFAULT) || errno == i64::from(libc::ENOENT) {
            errno = kernel_errno(change).map_or(errno, |e| i64::from(e.raw()));
        }
        if errno != 0 || change.flags().contains(Flags::RECEIPT) {
            let flags = change.flags() | Flags::ERROR;
            events.push(Event::from_parts(
                change.ident(),
                change.filter(),
                flags,
                change.get_fflags(),
                errno,
                change.get_token(),
            ));
        }
    }
}

/// libkqueue answers every failure of a filter to attach a registration
/// with EFAULT, and a change on a closed descriptor it has no registration
/// for with ENOENT. The errno a kernel kqueue gives instead, where the
/// system can tell it: EBADF for a descriptor that is not open (checked
/// before anything else), ESRCH for a process that does not exist.
fn kernel_errno(change: &Change) -> Option<Errno> {
    let filter = change.filter();
    if filter == Filter::READ || filter == Filter::WRITE || filter == Filter::VNODE {
        let fd = RawFd::try_from(change.ident()).ok()?;
        // SAFETY: F_GETFD only reads the descriptor table.
        let closed = check(unsafe { libc::fcntl(fd, libc::F_GETFD) }) == Err(Errno::EBADF);
        closed.then_some(Errno::EBADF)
    } else if filter == Filter::PROC && change.flags().contains(Flags::ADD) {
        let pid = libc::pid_t::try_from(change.ident()).ok()?;
        // SAFETY: signal 0 only checks that the process exists.
        let gone = check(unsafe { libc::kill(pid, 0) }) == Err(Errno::ESRCH);
        gone.then_some(Errno::ESRCH)
    } else {
        None
    }
}

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.kq.as_raw_fd()
    }
}

/// Wakes a thread blocked in [`Kqueue::kevent`] from another thread.
///
/// With libkqueue it is a pipe whose read end is registered for EVFILT_READ
/// with `EV_CLEAR`: [`Waker::wake`] writes a byte to it and never calls
/// `kevent()`, which would wait for the blocked call to return. Its event
/// has filter EVFILT_READ, the pipe's read end as ident, and the token;
/// the thread that sees it calls [`Waker::reset`].
#[derive(Debug)]
pub struct Waker {
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Waker {
    /// Whether `fd` is one of the waker's own descriptors (its pipe).
    pub fn owns(&self, fd: RawFd) -> bool {
        fd == self.rx.as_raw_fd() || fd == self.tx.as_raw_fd()
    }

    /// Registers a waker with `kq`; its events carry `token`.
    pub fn new(kq: &Kqueue, token: u64) -> io::Result<Waker> {
        let mut fds = [-1; 2];
        // SAFETY: pipe2 writes two descriptors into the array it is given.
        check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
        // SAFETY: both descriptors were just created and are owned by
        // nothing else.
        let (rx, tx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let add =
            Change::read(rx.as_raw_fd(), Flags::ADD | Flags::CLEAR | Flags::RECEIPT).token(token);
        let mut receipt = Vec::with_capacity(1);
        kq.kevent(&[add], &mut receipt, Some(Duration::ZERO))?;
        if let Some(err) = receipt.iter().find_map(Event::error) {
            return Err(err);
        }
        Ok(Waker { rx, tx })
    }

    /// Makes a `kevent` call on `kq` blocked in another thread return (or
    /// the next one, if none is blocked) with the waker's event. Never
    /// blocks; `kq` must be the kqueue the waker was registered with.
    pub fn wake(&self, _kq: &Kqueue) -> io::Result<()> {
        let written = retry(|| {
            // SAFETY: writes one byte from a live local to a descriptor we
            // own.
            check_len(unsafe { libc::write(self.tx.as_raw_fd(), [1u8].as_ptr().cast(), 1) })
        });
        match written {
            Ok(_) => Ok(()),
            // A full pipe is a wake-up that has not been seen yet.
            Err(errno) if errno.would_block() => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }

    /// Re-arms the waker after its event was delivered: empties the pipe,
    /// so it never fills and the next byte is new data for `EV_CLEAR`.
    pub fn reset(&self) {
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live local buffer of the given length
            // from a descriptor we own.
            let n = unsafe { libc::read(self.rx.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            match check_len(n) {
                Ok(1..) | Err(Errno::EINTR) => continue,
                // Empty (EAGAIN) or, impossibly, closed.
                _ => return,
            }
        }
    }
}
