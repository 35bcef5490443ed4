//! kqueue semantics over Linux's readiness primitives.
//!
//! FreeBSD's kevent(2) is the reference. A [`Kqueue`] here is one epoll
//! instance (the *main* epoll, the descriptor [`AsRawFd`] returns) and a
//! registry of registrations keyed like kqueue's knotes, by
//! (ident, filter). Each filter has its own source, in its own file:
//!
//! | filter | source | file |
//! |---|---|---|
//! | `EVFILT_READ`, `EVFILT_WRITE` | one inner epoll per direction, nested in the main one | `readiness.rs` |
//! | `EVFILT_TIMER` | one timerfd (CLOCK_MONOTONIC) per timer | `timer.rs` |
//! | `EVFILT_USER` | state in the registry; one eventfd wakes blocked callers | `user.rs` |
//! | `EVFILT_PROC` | one pidfd per process | `process.rs` |
//! | `EVFILT_SIGNAL` | one signalfd per signal | `signal.rs` |
//! | `EVFILT_VNODE` | one inotify instance per kqueue | `vnode.rs` |
//!
//! A `kevent` call runs in three steps. The changes are applied under the
//! registry lock; if any produced an `EV_ERROR` event (a failure, or a
//! receipt) the call returns with those at once, as kqueue does. Otherwise
//! the call waits in `epoll_wait` on the main epoll *without* the lock (so
//! another thread can apply changes, and wake it), then takes the lock again
//! to turn what became ready into kevents: the descriptors of timers,
//! processes and signals report one event each; a ready inner epoll is
//! drained without blocking; inotify and the wake-up eventfd only update
//! the registry. Registrations whose state lives in the registry (triggered
//! user events, vnode changes, regular files) wait in a queue of pending
//! keys, delivered after the epoll sources; while that queue is not empty
//! the wait does not block, which is how a level-triggered user event is
//! reported on every call.
//!
//! What the compat cannot make identical to a kqueue is listed, with the
//! reasons, in `docs/semantics.md` ("Linux compat vs a real kqueue").

mod os;
mod process;
mod readiness;
mod signal;
mod timer;
mod user;
mod vnode;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use os::Errno;

use crate::sys::{Change, Event, Filter, Flags, note};

/// A registration's key, as kqueue keys knotes: (ident, filter).
type Key = (usize, Filter);

/// Main-epoll tokens of the compat's fixed sources. The per-registration
/// sources (timerfds, pidfds, signalfds) carry `serial << 32 | fd` with a
/// serial of at least 1, so they never collide with these.
const TOKEN_READ: u64 = 0;
const TOKEN_WRITE: u64 = 1;
const TOKEN_WAKE: u64 = 2;
const TOKEN_VNODE: u64 = 3;

/// How many ready entries one `epoll_wait` fetches at most; the buffer
/// lives on the stack, so a call allocates nothing.
const BATCH: usize = 64;

/// Idle timerfds kept for reuse: a one-shot timer costs one
/// `timerfd_settime` instead of a create, an `EPOLL_CTL_ADD` and a close.
const SPARE_TIMERS: usize = 64;

const EMPTY: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

/// The state kqueue keeps for every registration, whatever its filter.
#[derive(Debug, Clone, Copy)]
struct Registration {
    /// The flags its events carry back: the change's, minus the actions
    /// (`EV_ADD`, `EV_DELETE`, `EV_ENABLE`, `EV_DISABLE`), as FreeBSD
    /// stores them in the knote.
    flags: Flags,
    /// `sfflags`: the filter flags the registration was given.
    fflags: u32,
    /// `sdata`: the data the registration was given.
    data: i64,
    /// The token (`udata`).
    udata: u64,
    /// `EV_DISABLE`d registrations report nothing until `EV_ENABLE`.
    enabled: bool,
}

/// The flags a registration keeps from a change.
fn kept(flags: Flags) -> Flags {
    flags
        - (Flags::ADD | Flags::DELETE | Flags::ENABLE | Flags::DISABLE | Flags::EOF | Flags::ERROR)
}

impl Registration {
    fn new(change: &Change) -> Registration {
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
    fn touch(&mut self, change: &Change, params: bool) {
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

    /// What becomes of the registration once an event of it is returned.
    fn after(&self) -> After {
        after(self.flags)
    }
}

/// What kqueue_scan does to a knote it has just returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Level-triggered or `EV_CLEAR`: it stays.
    Keep,
    /// `EV_DISPATCH`: disabled until `EV_ENABLE`.
    Disable,
    /// `EV_ONESHOT`: deleted.
    Delete,
}

fn after(flags: Flags) -> After {
    if flags.contains(Flags::ONESHOT) {
        After::Delete
    } else if flags.contains(Flags::DISPATCH) {
        After::Disable
    } else {
        After::Keep
    }
}

/// The spare capacity of the caller's event vector: events are pushed
/// without ever growing it past the capacity it had when the call began.
struct Out<'a> {
    events: &'a mut Vec<Event>,
    start: usize,
    limit: usize,
}

impl<'a> Out<'a> {
    fn new(events: &'a mut Vec<Event>) -> Out<'a> {
        let start = events.len();
        let limit = events.capacity();
        Out {
            events,
            start,
            limit,
        }
    }

    fn room(&self) -> usize {
        self.limit.saturating_sub(self.events.len())
    }

    fn push(&mut self, event: Event) {
        if self.room() > 0 {
            self.events.push(event);
        }
    }

    fn count(&self) -> usize {
        self.events.len() - self.start
    }
}

/// Keys of registrations whose state says they have an event to deliver
/// (a triggered user event, vnode changes, a ready regular file). A key is
/// in the queue exactly when its registration's `queued` flag is set.
#[derive(Debug, Default)]
struct Pending {
    keys: VecDeque<Key>,
}

impl Pending {
    fn push(&mut self, key: Key) {
        self.keys.push_back(key);
    }

    fn pop(&mut self) -> Option<Key> {
        self.keys.pop_front()
    }

    fn remove(&mut self, key: Key) {
        self.keys.retain(|k| *k != key);
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A descriptor of the compat's own (timerfd, pidfd, signalfd) that sits
/// directly in the main epoll, edge-triggered: each expiry, exit or signal
/// wakes the wait once, and the descriptor itself is read to learn what
/// happened, so a late or duplicate wake-up reads nothing and reports
/// nothing.
#[derive(Debug)]
struct Watched {
    fd: OwnedFd,
    /// Its main-epoll token: `serial << 32 | fd`.
    token: u64,
    /// Whether it is registered in the main epoll. A disabled registration
    /// is taken out lazily, on its first event, so that disabling costs no
    /// syscall and a disabled periodic timer does not keep waking the wait.
    in_epoll: bool,
}

impl Watched {
    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The filter-specific part of a registration that is not READ/WRITE.
#[derive(Debug)]
enum Source {
    User(user::User),
    Timer(timer::Timer),
    Proc(process::Proc),
    Signal(signal::Signal),
    Vnode(vnode::Vnode),
}

impl Source {
    fn watched(&mut self) -> Option<&mut Watched> {
        match self {
            Source::Timer(t) => Some(&mut t.watched),
            Source::Proc(p) => Some(&mut p.watched),
            Source::Signal(s) => Some(&mut s.watched),
            Source::User(_) | Source::Vnode(_) => None,
        }
    }
}

/// A registration of a filter other than READ/WRITE.
#[derive(Debug)]
struct Knote {
    reg: Registration,
    /// In the pending queue.
    queued: bool,
    source: Source,
}

/// Everything behind the lock.
struct Registry {
    /// The main epoll (owned by [`Kqueue`]).
    main: RawFd,
    /// The wake-up eventfd.
    wake: OwnedFd,
    /// EVFILT_READ and EVFILT_WRITE registrations.
    fds: readiness::Readiness,
    /// Every other registration.
    knotes: HashMap<Key, Knote>,
    /// Which registration a compat-owned descriptor in the main epoll
    /// serves.
    owners: HashMap<RawFd, Key>,
    pending: Pending,
    /// Idle timerfds, still in the main epoll, disarmed.
    spare_timers: Vec<timer::Timer>,
    /// Created with the first EVFILT_VNODE registration.
    inotify: Option<vnode::Inotify>,
    /// The serial of the last main-epoll token handed out.
    serial: u32,
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
}

impl fmt::Debug for Kqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kqueue")
            .field("epoll", &self.epoll.as_raw_fd())
            .finish_non_exhaustive()
    }
}

impl Kqueue {
    /// Creates the emulated kqueue: the main epoll, an inner epoll per
    /// direction and the wake-up eventfd, all close-on-exec.
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
        let fds = readiness::Readiness::new(main, counted)?;
        let wake = os::eventfd()?;
        os::epoll_ctl(
            main,
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            TOKEN_WAKE,
        )?;
        let registry = Registry {
            main,
            wake,
            fds,
            knotes: HashMap::new(),
            owners: HashMap::new(),
            pending: Pending::default(),
            spare_timers: Vec::new(),
            inotify: None,
            serial: 0,
            wake_armed: false,
        };
        Ok(Kqueue {
            registry: Mutex::new(registry),
            epoll,
        })
    }

    /// Submits `changes` and collects events into the spare capacity of
    /// `events`, waiting up to `timeout` (`None`: until an event comes,
    /// `Some(Duration::ZERO)`: not at all). Returns how many events were
    /// appended.
    ///
    /// A change that fails (or carries `EV_RECEIPT`) comes back as an event
    /// with `EV_ERROR` and the errno in `data` (0 for a receipt); `events`
    /// is grown to hold one event per change when it is smaller, so none is
    /// lost. When change results come back, the call returns at once with
    /// them. EINTR is retried with the time that is left; the changes are
    /// not applied twice.
    pub fn kevent(
        &self,
        changes: &[Change],
        events: &mut Vec<Event>,
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let wanted = changes.len().max(1);
        if events.capacity() - events.len() < wanted {
            events.reserve(wanted);
        }
        let mut out = Out::new(events);
        let deadline = timeout.map(|t| Instant::now().checked_add(t));

        let mut reg = self.lock();
        for change in changes {
            reg.submit(change, &mut out);
        }
        if out.count() > 0 {
            return Ok(out.count());
        }

        let mut ready = [EMPTY; BATCH];
        loop {
            // Registrations already known to have an event make the wait a
            // poll: their events are delivered after it.
            let timeout_ms = if reg.ready_now() {
                0
            } else {
                remaining_ms(deadline)
            };
            drop(reg);

            let room = out.room().clamp(1, BATCH);
            let result = os::epoll_wait(self.epoll.as_raw_fd(), &mut ready[..room], timeout_ms);

            reg = self.lock();
            match result {
                Ok(n) => reg.process(&ready[..n], &mut out),
                // A signal: wait again for what is left of the timeout.
                Err(Errno::EINTR) => {}
                Err(errno) => return Err(errno.into()),
            }
            reg.sync_wake();
            if out.count() > 0 || expired(deadline) {
                return Ok(out.count());
            }
        }
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
fn remaining_ms(deadline: Option<Option<Instant>>) -> libc::c_int {
    match deadline {
        // No timeout, or one too far away to represent: wait forever.
        None | Some(None) => -1,
        Some(Some(deadline)) => {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

fn expired(deadline: Option<Option<Instant>>) -> bool {
    match deadline {
        None | Some(None) => false,
        Some(Some(deadline)) => Instant::now() >= deadline,
    }
}

impl Registry {
    /// Applies one change and reports its result as kqueue does: an
    /// `EV_ERROR` event carrying the change's ident, filter, fflags and
    /// token, with the errno (or 0 for `EV_RECEIPT`) in `data`.
    fn submit(&mut self, change: &Change, out: &mut Out<'_>) {
        let result = match change.filter() {
            Filter::READ | Filter::WRITE => {
                self.fds.apply(change, &mut self.pending).map(|files| {
                    // A file registration is evaluated before each wait: a
                    // caller blocked in epoll_wait must come round.
                    if files {
                        self.arm_wake();
                    }
                })
            }
            Filter::USER | Filter::TIMER | Filter::PROC | Filter::SIGNAL | Filter::VNODE => {
                self.apply(change)
            }
            _ => Err(Errno::EINVAL),
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

    /// Applies a change to a registration of a non-READ/WRITE filter,
    /// following kqueue_register: find the knote; create it on `EV_ADD`
    /// (ENOENT without); `EV_DELETE` removes it; otherwise touch it, apply
    /// `EV_ENABLE`/`EV_DISABLE`, and re-evaluate it.
    fn apply(&mut self, change: &Change) -> Result<(), Errno> {
        let key = (change.ident(), change.filter());
        let flags = change.flags();

        if change.filter() == Filter::VNODE {
            // An fd filter: kqueue looks the descriptor up first, and a
            // knote whose descriptor was closed no longer exists.
            let fd = RawFd::try_from(change.ident()).map_err(|_| Errno::EBADF)?;
            let stale = match self.knotes.get(&key) {
                Some(Knote {
                    source: Source::Vnode(v),
                    ..
                }) => v.same_file(fd).err(),
                _ => None,
            };
            if let Some(errno) = stale {
                self.remove(key, false);
                if !flags.contains(Flags::ADD) {
                    return Err(errno);
                }
            }
            if !self.knotes.contains_key(&key) && !os::is_open(fd) {
                return Err(Errno::EBADF);
            }
        }

        if !self.knotes.contains_key(&key) {
            if !flags.contains(Flags::ADD) {
                return Err(Errno::ENOENT);
            }
            let source = self.attach(key, change)?;
            let knote = Knote {
                reg: Registration::new(change),
                queued: false,
                source,
            };
            self.knotes.insert(key, knote);
            if flags.contains(Flags::DELETE) {
                self.remove(key, false);
                return Ok(());
            }
            return self.settle(key);
        }

        if flags.contains(Flags::DELETE) {
            self.remove(key, false);
            return Ok(());
        }

        let inotify = self.inotify.as_mut();
        let Some(knote) = self.knotes.get_mut(&key) else {
            return Err(Errno::ENOENT);
        };
        match &mut knote.source {
            Source::User(u) => {
                // The data of the last change is what the event reports
                // (filt_usertouch stores it); the flags are the user's own.
                knote.reg.touch(change, true);
                u.touch(change);
            }
            Source::Timer(t) => {
                // Re-adding a timer restarts it with the new period and
                // forgets expirations not yet reported (FreeBSD's
                // filt_timertouch); other changes leave it running.
                if flags.contains(Flags::ADD) {
                    let oneshot = flags.contains(Flags::ONESHOT);
                    let spec = timer::Spec::new(change.get_data(), change.get_fflags(), oneshot)?;
                    t.arm(&spec)?;
                    knote.reg.touch(change, true);
                } else {
                    knote.reg.touch(change, false);
                }
            }
            Source::Proc(_) | Source::Signal(_) => knote.reg.touch(change, true),
            Source::Vnode(v) => {
                knote.reg.touch(change, true);
                if let Some(inotify) = inotify {
                    v.rewatch(inotify, key.0, change.get_fflags())?;
                }
            }
        }
        self.settle(key)
    }

    /// Creates the source of a new registration.
    fn attach(&mut self, key: Key, change: &Change) -> Result<Source, Errno> {
        let source = match change.filter() {
            Filter::USER => Source::User(user::User::new(change)),
            Filter::TIMER => {
                let oneshot = change.flags().contains(Flags::ONESHOT);
                let spec = timer::Spec::new(change.get_data(), change.get_fflags(), oneshot)?;
                let timer = match self.spare_timers.pop() {
                    Some(timer) => timer,
                    None => {
                        let fd = os::timerfd()?;
                        let token = self.token_for(fd.as_raw_fd());
                        timer::Timer::new(Watched {
                            fd,
                            token,
                            in_epoll: false,
                        })
                    }
                };
                timer.arm(&spec)?;
                self.owners.insert(timer.watched.raw(), key);
                Source::Timer(timer)
            }
            Filter::PROC => {
                let fd = process::open(change.ident())?;
                let token = self.token_for(fd.as_raw_fd());
                self.owners.insert(fd.as_raw_fd(), key);
                Source::Proc(process::Proc::new(Watched {
                    fd,
                    token,
                    in_epoll: false,
                }))
            }
            Filter::SIGNAL => {
                let fd = signal::open(change.ident())?;
                let token = self.token_for(fd.as_raw_fd());
                self.owners.insert(fd.as_raw_fd(), key);
                Source::Signal(signal::Signal::new(Watched {
                    fd,
                    token,
                    in_epoll: false,
                }))
            }
            Filter::VNODE => {
                let fd = RawFd::try_from(change.ident()).map_err(|_| Errno::EBADF)?;
                let main = self.main;
                let inotify = match &mut self.inotify {
                    Some(inotify) => inotify,
                    slot @ None => slot.insert(vnode::Inotify::new(main, TOKEN_VNODE)?),
                };
                Source::Vnode(vnode::Vnode::watch(
                    inotify,
                    key.0,
                    fd,
                    change.get_fflags(),
                )?)
            }
            _ => return Err(Errno::EINVAL),
        };
        Ok(source)
    }

    /// Brings the sources in line with a registration after a change:
    /// queues what has an event to deliver (waking a blocked caller), puts
    /// enabled descriptors back in the main epoll.
    fn settle(&mut self, key: Key) -> Result<(), Errno> {
        let Some(knote) = self.knotes.get_mut(&key) else {
            return Ok(());
        };
        if !knote.reg.enabled {
            // Disabled: nothing to do now; a descriptor still in the main
            // epoll is taken out on its first event.
            return Ok(());
        }
        let deliverable = match &mut knote.source {
            Source::User(u) => u.triggered,
            Source::Vnode(v) => v.fired != 0,
            Source::Timer(_) | Source::Proc(_) | Source::Signal(_) => false,
        };
        if deliverable {
            if !knote.queued {
                knote.queued = true;
                self.pending.push(key);
            }
            self.arm_wake();
            return Ok(());
        }
        let Some(watched) = knote.source.watched() else {
            return Ok(());
        };
        if !watched.in_epoll {
            // EPOLL_CTL_ADD checks readiness at once, so an expiry, exit or
            // signal that came while the registration was disabled is
            // reported now.
            os::epoll_ctl(
                self.main,
                libc::EPOLL_CTL_ADD,
                watched.raw(),
                (libc::EPOLLIN | libc::EPOLLET) as u32,
                watched.token,
            )?;
            watched.in_epoll = true;
        }
        Ok(())
    }

    /// Deletes a registration and releases its source. `expired`: a timer
    /// that has just fired its only expiry (already disarmed).
    fn remove(&mut self, key: Key, expired: bool) {
        let Some(knote) = self.knotes.remove(&key) else {
            return;
        };
        if knote.queued {
            self.pending.remove(key);
        }
        match knote.source {
            Source::User(_) => {}
            Source::Timer(timer) => {
                self.owners.remove(&timer.watched.raw());
                self.recycle(timer, expired);
            }
            // Closing our only reference also takes it out of the epoll.
            Source::Proc(p) => {
                self.owners.remove(&p.watched.raw());
            }
            Source::Signal(s) => {
                self.owners.remove(&s.watched.raw());
            }
            Source::Vnode(v) => {
                if let Some(inotify) = &mut self.inotify {
                    inotify.unwatch(v.wd, key.0);
                }
            }
        }
    }

    /// Keeps an idle timerfd for the next timer, or closes it.
    fn recycle(&mut self, timer: timer::Timer, expired: bool) {
        if !timer.watched.in_epoll || self.spare_timers.len() >= SPARE_TIMERS {
            return;
        }
        if expired || timer.disarm().is_ok() {
            self.spare_timers.push(timer);
        }
    }

    /// A fresh main-epoll token for the compat-owned descriptor `fd`.
    fn token_for(&mut self, fd: RawFd) -> u64 {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        (u64::from(self.serial) << 32) | u64::from(fd as u32)
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
    fn process(&mut self, ready: &[libc::epoll_event], out: &mut Out<'_>) {
        let mut inner = [false; 2];
        // Descriptors of timers, processes and signals first: each gives
        // at most one event, and `ready` was sized to the room left, so
        // none is consumed without being delivered.
        for entry in ready {
            match entry.u64 {
                TOKEN_READ => inner[0] = true,
                TOKEN_WRITE => inner[1] = true,
                // Only a wake-up: the pending queue says what to deliver,
                // and `sync_wake` reads the eventfd once it is empty.
                TOKEN_WAKE => {}
                TOKEN_VNODE => self.vnode_events(),
                token => self.source_event(token, out),
            }
        }
        for (dir, ready) in inner.into_iter().enumerate() {
            if ready {
                self.fds.collect(dir, out);
            }
        }
        self.deliver_pending(out);
    }

    /// An event of a timerfd, pidfd or signalfd.
    fn source_event(&mut self, token: u64, out: &mut Out<'_>) {
        let fd = token as u32 as RawFd;
        let Some(&key) = self.owners.get(&fd) else {
            return;
        };
        let Some(knote) = self.knotes.get_mut(&key) else {
            return;
        };
        let enabled = knote.reg.enabled;
        let Some(watched) = knote.source.watched() else {
            return;
        };
        if watched.token != token {
            // A wake-up meant for a descriptor since closed whose number
            // was reused.
            return;
        }
        if !enabled {
            // A disabled registration reports nothing; stop epoll waking
            // us for it until EV_ENABLE puts it back (and re-checks it).
            if os::epoll_ctl(self.main, libc::EPOLL_CTL_DEL, fd, 0, 0).is_ok() {
                watched.in_epoll = false;
            }
            return;
        }
        // kqueue sets EV_CLEAR on timer, process and signal knotes itself
        // (filt_timerattach, filt_procattach, filt_sigattach), and marks an
        // exited process EV_EOF | EV_ONESHOT.
        let (extra, fflags, data) = match &mut knote.source {
            Source::Timer(t) => match t.expirations() {
                0 => return,
                n => (Flags::CLEAR, 0, n),
            },
            Source::Signal(s) => match s.deliveries() {
                0 => return,
                n => (Flags::CLEAR, 0, n),
            },
            Source::Proc(p) => match p.exit_status() {
                None => return,
                Some(status) => {
                    if knote.reg.fflags & note::EXIT == 0 {
                        // Nobody asked for the exit: FreeBSD drops the
                        // knote silently (EV_DROP).
                        self.remove(key, false);
                        return;
                    }
                    (
                        Flags::CLEAR | Flags::EOF | Flags::ONESHOT,
                        note::EXIT,
                        status,
                    )
                }
            },
            Source::User(_) | Source::Vnode(_) => return,
        };
        let flags = knote.reg.flags | extra;
        out.push(Event::from_parts(
            key.0,
            key.1,
            flags,
            fflags,
            data,
            knote.reg.udata,
        ));
        match after(flags) {
            After::Keep => {}
            After::Disable => knote.reg.enabled = false,
            After::Delete => self.remove(key, true),
        }
    }

    /// Reads inotify and records the changes on the vnode registrations.
    fn vnode_events(&mut self) {
        let Some(inotify) = &mut self.inotify else {
            return;
        };
        let knotes = &mut self.knotes;
        let pending = &mut self.pending;
        let stale = inotify.read(|ident, mask| {
            let key = (ident, Filter::VNODE);
            let Some(knote) = knotes.get_mut(&key) else {
                return true;
            };
            let Source::Vnode(v) = &mut knote.source else {
                return true;
            };
            match v.observe(ident, mask, knote.reg.fflags) {
                // The descriptor was closed (or now names another file):
                // kqueue would have dropped the knote at close().
                None => false,
                Some(0) => true,
                Some(bits) => {
                    v.fired |= bits;
                    if knote.reg.enabled && !knote.queued {
                        knote.queued = true;
                        pending.push(key);
                    }
                    true
                }
            }
        });
        for ident in stale {
            self.remove((ident, Filter::VNODE), false);
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
            let clear = knote.reg.flags.contains(Flags::CLEAR);
            let (fflags, data, still) = match &mut knote.source {
                Source::User(u) => {
                    if !u.triggered {
                        continue;
                    }
                    let fflags = u.deliver(clear);
                    (fflags, knote.reg.data, u.triggered)
                }
                Source::Vnode(v) => {
                    if v.fired == 0 {
                        continue;
                    }
                    let fflags = v.fired;
                    // Without EV_CLEAR the changes stay recorded and are
                    // reported on every call, as filt_vnode does.
                    if clear {
                        v.fired = 0;
                    }
                    (fflags, 0, v.fired != 0)
                }
                Source::Timer(_) | Source::Proc(_) | Source::Signal(_) => continue,
            };
            out.push(Event::from_parts(
                key.0,
                key.1,
                knote.reg.flags,
                fflags,
                data,
                knote.reg.udata,
            ));
            match knote.reg.after() {
                After::Delete => self.remove(key, false),
                After::Disable => knote.reg.enabled = false,
                After::Keep if still => {
                    knote.queued = true;
                    self.pending.push(key);
                }
                After::Keep => {}
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
