//! kqueue semantics over Linux's readiness primitives.
//!
//! FreeBSD's kevent(2) is the reference. A [`Kqueue`] here is one epoll
//! instance (the *main* epoll, the descriptor [`AsRawFd`] returns) and a
//! registry of registrations keyed like kqueue's knotes, by
//! (ident, filter). This file is the registry and the wait; each filter is
//! a file of its own, a [`Source`] (`filter.rs`, FreeBSD's `filterops`)
//! that the registry drives without knowing which filter it is:
//!
//! | filter | source | file |
//! |---|---|---|
//! | `EVFILT_READ` | an entry in the main epoll itself | `readiness/` |
//! | `EVFILT_WRITE` | an entry in the write epoll, nested in the main one | `readiness/` |
//! | `EVFILT_TIMER` | one timerfd (CLOCK_MONOTONIC) per timer | `timer.rs` |
//! | `EVFILT_USER` | state in the registry; one eventfd wakes blocked callers | `user.rs` |
//! | `EVFILT_PROC` | one pidfd per process | `process.rs` |
//! | `EVFILT_SIGNAL` | one signalfd per signal | `signal.rs` |
//! | `EVFILT_VNODE` | one inotify instance per kqueue | `vnode.rs` |
//!
//! READ and WRITE keep their registrations in a descriptor-indexed table
//! of their own (`readiness/`), with the same [`Registration`] and flag
//! rules (`registration.rs`): every socket event goes through it.
//!
//! A `kevent` call runs in three steps. The changes are applied under the
//! registry lock; if any produced an `EV_ERROR` event (a failure, or a
//! receipt) the call returns with those at once, as kqueue does. Otherwise
//! the call waits in `epoll_wait` on the main epoll *without* the lock (so
//! another thread can apply changes, and wake it), then takes the lock again
//! to turn what became ready into kevents: a read entry reports its event;
//! a ready nested epoll (writes, the compat's own descriptors) is drained
//! without blocking, where the descriptors of timers, processes and signals
//! report one event each and inotify and the wake-up eventfd only update
//! the registry. Registrations whose state lives in the registry (triggered
//! user events, vnode changes, regular files) wait in a queue of pending
//! keys (`queue.rs`), delivered after the epoll sources; while that queue
//! is not empty the wait does not block, which is how a level-triggered
//! user event is reported on every call.
//!
//! The main epoll holds the user's read entries (the path every socket
//! read takes: one `epoll_wait` per `kevent` call) and two nested epolls:
//! the write epoll, and the *sources* epoll, which holds every descriptor
//! the compat opens for itself. Those never share the main epoll with the
//! user's descriptors, so a registration can never modify one of the
//! compat's entries, whatever number it names.
//!
//! What the compat cannot make identical to a kqueue is listed, with the
//! reasons, in `docs/semantics.md` ("Linux compat vs a real kqueue").

mod filter;
mod os;
mod process;
mod queue;
mod readiness;
mod registration;
mod signal;
mod timer;
mod user;
mod vnode;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use filter::{Ops, Report, Shared, Source};
use os::Errno;
use queue::{Out, Pending};
use registration::{After, Registration};

use crate::sys::wait::{Deadline, make_room};
use crate::sys::{Change, Event, Filter, Flags};

/// A registration's key, as kqueue keys knotes: (ident, filter).
type Key = (usize, Filter);

/// Main-epoll tokens of the nested epolls. A read entry's token carries a
/// generation of at least 1 above the descriptor (`generation << 32 |
/// fd`), so it never collides with these.
const TOKEN_SOURCES: u64 = 0;
const TOKEN_WRITE: u64 = 1;

/// Sources-epoll tokens of the compat's fixed sources. The
/// per-registration sources (timerfds, pidfds, signalfds) carry `serial <<
/// 32 | fd` with a serial of at least 1, so they never collide with these.
const TOKEN_WAKE: u64 = 2;
const TOKEN_VNODE: u64 = 3;

/// How many ready entries one `epoll_wait` of the sources epoll fetches
/// at most; the buffer lives on the stack.
const BATCH: usize = 64;

const EMPTY: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// The most entries one `epoll_wait` of the main epoll returns: each
/// read entry is an event, and a call takes as many as fit, as kqueue's.
const MAX_READY: usize = 1024;

thread_local! {
    /// Each calling thread's main-epoll buffer, kept between its calls
    /// (the wait is made without the registry's lock, so it can't be the
    /// registry's).
    static READY: std::cell::Cell<Vec<libc::epoll_event>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// The calling thread's buffer for one `kevent` call; goes back on drop.
struct Ready(Vec<libc::epoll_event>);

impl Ready {
    fn take() -> Ready {
        // A call from a thread-local's destructor (a ring kept in one) finds
        // the buffer gone, and makes one for the call.
        Ready(READY.try_with(std::cell::Cell::take).unwrap_or_default())
    }

    /// The first `n` entries, grown to hold them.
    fn room(&mut self, n: usize) -> &mut [libc::epoll_event] {
        if self.0.len() < n {
            self.0.resize(n, EMPTY);
        }
        &mut self.0[..n]
    }

    fn first(&self, n: usize) -> &[libc::epoll_event] {
        &self.0[..n]
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        let _ = READY.try_with(|ready| ready.set(buffer));
    }
}

/// A registration of a filter the registry keeps (all but READ/WRITE).
#[derive(Debug)]
struct Knote {
    reg: Registration,
    /// In the pending queue.
    queued: bool,
    source: Box<dyn Source>,
}

/// The filters whose registrations the registry keeps, by filter.
fn ops(filter: Filter) -> Option<&'static Ops> {
    static FILTERS: [Ops; 5] = [user::OPS, timer::OPS, process::OPS, signal::OPS, vnode::OPS];
    FILTERS.iter().find(|ops| ops.filter == filter)
}

/// Everything behind the lock.
struct Registry {
    /// The wake-up eventfd.
    wake: OwnedFd,
    /// EVFILT_READ and EVFILT_WRITE registrations, in a table of their own
    /// indexed by descriptor (see `readiness/mod.rs`).
    fds: readiness::Readiness,
    /// Every other registration.
    knotes: HashMap<Key, Knote>,
    /// What the filters of `knotes` share.
    shared: Shared,
    pending: Pending,
    /// The eventfd was written and not read yet: it is kept readable while
    /// the pending queue has entries, so that a caller blocked in
    /// `epoll_wait` wakes up for them, and so that a poller the main epoll
    /// is nested in sees them.
    wake_armed: bool,
}

/// A kqueue emulated over epoll: registrations keyed by (ident, filter) and
/// the events they produce, with FreeBSD's kevent(2) semantics.
///
/// `kevent` takes `&self` and may be called from several threads at once:
/// an EVFILT_USER trigger from one thread wakes another blocked in
/// `kevent`. The lock around the registry is never held while waiting.
///
/// Every descriptor the compat opens is close-on-exec and closed on drop;
/// the caller's descriptors are never duplicated nor closed.
pub struct Kqueue {
    registry: Mutex<Registry>,
    epoll: OwnedFd,
    /// The sources epoll, nested in `epoll`: the compat's own descriptors.
    sources: OwnedFd,
    /// Read and write events carry counts (`Kqueue::new`).
    counted: bool,
}

impl fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kqueue")
            .field("epoll", &self.epoll.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl Kqueue {
    /// Creates the emulated kqueue: the main epoll, the write and sources
    /// epolls nested in it and the wake-up eventfd, all close-on-exec.
    pub fn new() -> io::Result<Kqueue> {
        Kqueue::create(true)
    }

    /// Creates a kqueue whose EVFILT_READ and EVFILT_WRITE events do not
    /// count: their `data` is 1 while readable or writable instead of the
    /// bytes readable or the room to write, which the compat learns with
    /// one to two system calls per event. For callers that retry their I/O
    /// until EAGAIN and never read `data`. A kernel kqueue counts for free;
    /// there this is [`Kqueue::new`].
    pub fn uncounted() -> io::Result<Kqueue> {
        Kqueue::create(false)
    }

    fn create(counted: bool) -> io::Result<Kqueue> {
        let epoll = os::epoll_create()?;
        let main = epoll.as_raw_fd();
        let sources = os::epoll_create()?;
        os::epoll_ctl(
            main,
            libc::EPOLL_CTL_ADD,
            sources.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_SOURCES,
        )?;
        let fds = readiness::Readiness::new(main, counted)?;
        let wake = os::eventfd()?;
        os::epoll_ctl(
            sources.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_WAKE,
        )?;
        let registry = Registry {
            wake,
            fds,
            knotes: HashMap::new(),
            shared: Shared::new(sources.as_raw_fd()),
            pending: Pending::default(),
            wake_armed: false,
        };
        Ok(Kqueue {
            registry: Mutex::new(registry),
            epoll,
            sources,
            counted,
        })
    }

    /// Whether an `EVFILT_READ` event's `data` is the bytes readable when
    /// it was collected (not so for [`Kqueue::uncounted`]).
    pub fn counts_readable(&self) -> bool {
        self.counted
    }

    #[doc = include_str!("../kevent.md")]
    ///
    /// Here the changes are applied under the registry lock and the wait
    /// in `epoll_wait` is made without it. Change results come back alone.
    pub fn kevent(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        make_room(changes, events);
        let mut out = Out::new(events);
        let deadline = Deadline::after(timeout);

        let mut reg = self.lock();
        for change in changes {
            reg.submit(change, self.sources.as_raw_fd(), &mut out);
        }
        if out.count() > 0 {
            return Ok(out.count());
        }

        let mut ready = Ready::take();
        loop {
            // Registrations already known to have an event make the wait a
            // poll: their events are delivered after it.
            let timeout_ms = if reg.ready_now() {
                0
            } else {
                remaining_ms(deadline)
            };
            drop(reg);

            let room = out.room().clamp(1, MAX_READY);
            let result = os::epoll_wait(self.epoll.as_raw_fd(), ready.room(room), timeout_ms);

            reg = self.lock();
            match result {
                Ok(n) => reg.process(ready.first(n), self.sources.as_raw_fd(), &mut out),
                // A signal: wait again for what is left of the timeout.
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
            reg.sync_wake();
            if out.count() > 0 || deadline.passed() {
                return Ok(out.count());
            }
        }
    }

    /// Whether `fd` is one of the compat's fixed descriptors: the main
    /// epoll, the nested ones, the wake-up eventfd. (A registration's own
    /// timerfd, pidfd or signalfd is not counted.)
    pub fn owns(&self, fd: RawFd) -> bool {
        let reg = self.lock();
        fd == self.epoll.as_raw_fd()
            || fd == self.sources.as_raw_fd()
            || fd == reg.wake.as_raw_fd()
            || reg.fds.owns(fd)
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing panics while holding the lock; should it ever happen, the
        // registry is still consistent enough to go on with.
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AsRawFd for Kqueue {
    /// The main epoll: readable when `kevent` has something to report, so
    /// the emulated kqueue can itself be watched by another poller.
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

/// Milliseconds to the deadline, rounded up (epoll counts in whole
/// milliseconds; rounding down would return before the timeout), or -1 to
/// wait forever.
fn remaining_ms(deadline: Deadline) -> libc::c_int {
    match deadline.left() {
        None => -1,
        Some(left) => {
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

impl Registry {
    /// Applies one change and reports its result as kqueue does: an
    /// `EV_ERROR` event carrying the change's ident, filter, fflags and
    /// token, with the errno (or 0 for `EV_RECEIPT`) in `data`.
    fn submit(&mut self, change: &Change, sources: RawFd, out: &mut Out<'_>) {
        let filter = change.filter();
        let result = if filter == Filter::READ && change.ident() == sources as usize {
            // Its entry in the main epoll is the compat's own.
            Err(Errno::EINVAL)
        } else if filter == Filter::READ || filter == Filter::WRITE {
            self.fds.apply(change, &mut self.pending).map(|files| {
                // A file registration is evaluated before each wait: a
                // caller blocked in epoll_wait must come round.
                if files {
                    self.arm_wake();
                }
            })
        } else {
            match ops(filter) {
                Some(ops) => self.apply(ops, change),
                None => Err(Errno::EINVAL),
            }
        };
        let errno = match result {
            Ok(()) if change.flags().contains(Flags::RECEIPT) => 0,
            Ok(()) => return,
            Err(errno) => errno.raw(),
        };
        out.push(Event::from_parts(
            change.ident(),
            change.filter(),
            Flags::ERROR,
            change.get_fflags(),
            i64::from(errno),
            change.get_token(),
        ));
    }

    /// Applies a change to a registration of a registry-kept filter,
    /// following kqueue_register: find the knote; create it on `EV_ADD`
    /// (ENOENT without); `EV_DELETE` removes it; otherwise modify it, apply
    /// `EV_ENABLE`/`EV_DISABLE`, and re-evaluate it.
    fn apply(&mut self, ops: &Ops, change: &Change) -> Result<(), Errno> {
        let key = (change.ident(), change.filter());
        let flags = change.flags();

        if ops.is_fd {
            // kqueue looks the descriptor up first, and a knote whose
            // descriptor was closed no longer exists.
            let fd = RawFd::try_from(change.ident()).map_err(|_| Errno::EBADF)?;
            if let Some(errno) = self.knotes.get(&key).and_then(|k| k.source.gone(fd)) {
                self.remove(key, false);
                if !flags.contains(Flags::ADD) {
                    return Err(errno);
                }
            }
            if !self.knotes.contains_key(&key) && !os::is_open(fd) {
                return Err(Errno::EBADF);
            }
        }

        let Some(knote) = self.knotes.get_mut(&key) else {
            if !flags.contains(Flags::ADD) {
                return Err(Errno::ENOENT);
            }
            let knote = Knote {
                reg: Registration::new(change),
                queued: false,
                source: (ops.attach)(&mut self.shared, key, change)?,
            };
            self.knotes.insert(key, knote);
            if flags.contains(Flags::DELETE) {
                self.remove(key, false);
                return Ok(());
            }
            return self.settle(key);
        };
        if flags.contains(Flags::DELETE) {
            self.remove(key, false);
            return Ok(());
        }
        knote
            .source
            .modify(&mut self.shared, key, &mut knote.reg, change)?;
        self.settle(key)
    }

    /// Brings the sources in line with a registration after a change:
    /// queues what has an event to deliver (waking a blocked caller), puts
    /// enabled descriptors back in the sources epoll.
    fn settle(&mut self, key: Key) -> Result<(), Errno> {
        let Some(knote) = self.knotes.get_mut(&key) else {
            return Ok(());
        };
        if !knote.reg.enabled {
            // Disabled: nothing to do now; a descriptor still in the main
            // epoll is taken out on its first event.
            return Ok(());
        }
        if knote.source.holds_event() {
            if !knote.queued {
                knote.queued = true;
                self.pending.push(key);
            }
            self.arm_wake();
            return Ok(());
        }
        match knote.source.watched() {
            Some(watched) => watched.add_to(self.shared.sources),
            None => Ok(()),
        }
    }

    /// Deletes a registration and releases its source. `fired`: deleted
    /// right after its event (`EV_ONESHOT`).
    fn remove(&mut self, key: Key, fired: bool) {
        let Some(knote) = self.knotes.remove(&key) else {
            return;
        };
        if knote.queued {
            self.pending.remove(key);
        }
        knote.source.detach(&mut self.shared, key, fired);
    }

    /// Makes the wake-up eventfd readable (one write until it is read):
    /// a caller blocked in `epoll_wait` returns and sees the pending queue.
    fn arm_wake(&mut self) {
        if !self.wake_armed && os::write_u64(self.wake.as_raw_fd(), 1).is_ok() {
            self.wake_armed = true;
        }
    }

    /// Keeps the eventfd readable exactly while the pending queue has
    /// entries (a level-triggered user event keeps it readable without a
    /// syscall per call).
    fn sync_wake(&mut self) {
        if !self.pending.is_empty() {
            self.arm_wake();
        } else if self.wake_armed {
            let _ = os::read_u64(self.wake.as_raw_fd());
            self.wake_armed = false;
        }
    }

    /// Whether something can be delivered without waiting.
    fn ready_now(&mut self) -> bool {
        self.fds.poll_files(&mut self.pending);
        !self.pending.is_empty()
    }

    /// Turns what the main epoll reported into events.
    fn process(&mut self, ready: &[libc::epoll_event], sources: RawFd, out: &mut Out<'_>) {
        let (mut own, mut writes) = (false, false);
        // Each read entry gives at most one event, and `ready` was sized
        // to the room left, so none is consumed without being delivered;
        // the nested epolls are drained as far as room is left after.
        for entry in ready {
            match entry.u64 {
                TOKEN_SOURCES => own = true,
                TOKEN_WRITE => writes = true,
                token => self.fds.report_read(entry.events, token, out),
            }
        }
        if own {
            self.collect_sources(sources, out);
        }
        if writes {
            self.fds.collect_writes(out);
        }
        self.deliver_pending(out);
    }

    /// Drains the sources epoll without blocking, as far as there is room:
    /// descriptors of timers, processes and signals give one event each.
    fn collect_sources(&mut self, sources: RawFd, out: &mut Out<'_>) {
        let room = out.room().min(BATCH);
        if room == 0 {
            return;
        }
        let mut ready = [EMPTY; BATCH];
        let Ok(n) = os::epoll_wait(sources, &mut ready[..room], 0) else {
            return;
        };
        for entry in &ready[..n] {
            match entry.u64 {
                // Only a wake-up: the pending queue says what to deliver,
                // and `sync_wake` reads the eventfd once it is empty.
                TOKEN_WAKE => {}
                TOKEN_VNODE => self.inotify_events(),
                token => self.watched_event(token, out),
            }
        }
    }

    /// An event of a watched descriptor (timerfd, pidfd, signalfd).
    fn watched_event(&mut self, token: u64, out: &mut Out<'_>) {
        let Some(key) = self.shared.owner(token) else {
            return;
        };
        let Some(knote) = self.knotes.get_mut(&key) else {
            return;
        };
        let enabled = knote.reg.enabled;
        let Some(watched) = knote.source.watched() else {
            return;
        };
        if watched.token() != token {
            // A wake-up meant for a descriptor since closed whose number
            // was reused.
            return;
        }
        if !enabled {
            // A disabled registration reports nothing; stop epoll waking
            // us for it until EV_ENABLE puts it back (and re-checks it).
            watched.remove_from(self.shared.sources);
            return;
        }
        self.deliver(key, out);
    }

    /// Reads inotify and hands its events to the vnode registrations they
    /// concern, queueing those that now have notes to deliver.
    fn inotify_events(&mut self) {
        let Some(inotify) = &mut self.shared.inotify else {
            return;
        };
        let knotes = &mut self.knotes;
        let pending = &mut self.pending;
        let stale = inotify.read(|ident, mask| {
            let key = (ident, Filter::VNODE);
            let Some(knote) = knotes.get_mut(&key) else {
                return true;
            };
            if !knote.source.notify(ident, &knote.reg, mask) {
                return false;
            }
            if knote.source.holds_event() && knote.reg.enabled && !knote.queued {
                knote.queued = true;
                pending.push(key);
            }
            true
        });
        for ident in stale {
            self.remove((ident, Filter::VNODE), false);
        }
    }

    /// Reports the registration `key` if its source has an event, and does
    /// to it what its flags say comes after. Returns whether it still holds
    /// an event (level-triggered, to be reported again).
    fn deliver(&mut self, key: Key, out: &mut Out<'_>) -> bool {
        let Some(knote) = self.knotes.get_mut(&key) else {
            return false;
        };
        let (extra, fflags, data) = match knote.source.report(&knote.reg) {
            Report::Nothing => return false,
            Report::Drop => {
                self.remove(key, false);
                return false;
            }
            Report::Event {
                flags,
                fflags,
                data,
            } => (flags, fflags, data),
        };
        let (event, after) = knote.reg.event(key, extra, fflags, data);
        out.push(event);
        match after {
            After::Keep => knote.source.holds_event(),
            After::Disable => {
                knote.reg.enabled = false;
                false
            }
            After::Delete => {
                self.remove(key, true);
                false
            }
        }
    }

    /// Delivers queued registrations, oldest first, as many as fit; those
    /// that stay deliverable (level-triggered) go to the back.
    fn deliver_pending(&mut self, out: &mut Out<'_>) {
        for _ in 0..self.pending.len() {
            if out.room() == 0 {
                return;
            }
            let Some(key) = self.pending.pop() else {
                return;
            };
            if key.1 == Filter::READ || key.1 == Filter::WRITE {
                self.fds.deliver_file(key, out);
                continue;
            }
            let Some(knote) = self.knotes.get_mut(&key) else {
                continue;
            };
            knote.queued = false;
            if !knote.reg.enabled {
                continue;
            }
            if self.deliver(key, out)
                && let Some(knote) = self.knotes.get_mut(&key)
            {
                knote.queued = true;
                self.pending.push(key);
            }
        }
    }
}

// The API promises a kqueue can be shared between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Kqueue>();
};

#[cfg(test)]
mod tests;

/// The bytes the compat keeps per descriptor with an `EVFILT_READ` or
/// `EVFILT_WRITE` registration (both directions share it).
#[cfg(test)]
pub(crate) fn registration_bytes() -> usize {
    readiness::slot_bytes()
}
