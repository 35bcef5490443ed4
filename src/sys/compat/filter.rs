//! What a filter of the registry provides, in the shape of FreeBSD's
//! `filterops`.
//!
//! The registry (`mod.rs`) finds a registration by (ident, filter), keeps
//! the flags every filter shares and queues and reports events. A filter
//! ([`Source`], one per file) supplies the rest: it attaches a kernel
//! source to a new registration, takes later changes, says what an event
//! reports, and releases the source when the registration goes. [`Ops`] is
//! the filter's entry in the registry's table.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::os::{self, Errno};
use super::{Key, Registration, timer, vnode};
use crate::sys::{Change, Filter, Flags};

/// The filter-specific half of one registration.
pub(super) trait Source: fmt::Debug + Send {
    /// Sets up the source of a new registration (`EV_ADD` of a key the
    /// registry does not have).
    fn attach(shared: &mut Shared, key: Key, change: &Change) -> Result<Self, Errno>
    where
        Self: Sized;

    /// Applies a change to the registration: to its source, and to `reg`
    /// with [`Registration::modify`], saying whether the change's `fflags`
    /// and `data` replace the registration's. By default they do, and the
    /// source is left as it is (a FreeBSD filter without `f_touch`).
    fn modify(
        &mut self,
        _shared: &mut Shared,
        _key: Key,
        reg: &mut Registration,
        change: &Change,
    ) -> Result<(), Errno> {
        reg.modify(change, true);
        Ok(())
    }

    /// What an event of the registration reports now, read from its
    /// descriptor or its state.
    fn report(&mut self, reg: &Registration) -> Report;

    /// Releases the source. `fired`: the registration is deleted right
    /// after its event (`EV_ONESHOT`).
    fn detach(self: Box<Self>, shared: &mut Shared, key: Key, fired: bool);

    /// Its descriptor in the sources epoll, for a source the kernel signals.
    fn watched(&mut self) -> Option<&mut Watched> {
        None
    }

    /// Whether its state holds an event to deliver: a source the registry
    /// signals itself, through the pending queue.
    fn holds_event(&self) -> bool {
        false
    }

    /// A notification from a source that serves many registrations
    /// (inotify's events for EVFILT_VNODE), as FreeBSD's `knote()` passes a
    /// hint to `f_event`. Returns false once the registration no longer
    /// exists for kqueue (its descriptor was closed).
    fn notify(&mut self, _ident: usize, _reg: &Registration, _hint: u32) -> bool {
        true
    }

    /// For a descriptor filter: why its registration would no longer exist
    /// on a kqueue (EBADF, the descriptor is closed; ENOENT, its number
    /// names another file), checked before each change.
    fn gone(&self, _fd: RawFd) -> Option<Errno> {
        None
    }
}

/// What an event of a registration reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    /// Nothing to report (a wake-up that outlived its cause).
    Nothing,
    /// An event: the flags the filter adds to the registration's own, its
    /// `fflags` and `data`.
    Event {
        flags: Flags,
        fflags: u32,
        data: i64,
    },
    /// The registration goes without an event (FreeBSD's `EV_DROP`).
    Drop,
}

impl Report {
    /// An event with no flags of the filter's own.
    pub(super) fn event(fflags: u32, data: i64) -> Report {
        Report::Event {
            flags: Flags::NONE,
            fflags,
            data,
        }
    }
}

/// Sets up a new registration of one filter.
type Attach = fn(&mut Shared, Key, &Change) -> Result<Box<dyn Source>, Errno>;

/// A filter's entry in the registry's table.
pub(super) struct Ops {
    pub(super) filter: Filter,
    /// Whether the ident is a descriptor, which kqueue looks up before
    /// anything else (FreeBSD's `f_isfd`).
    pub(super) is_fd: bool,
    pub(super) attach: Attach,
}

impl Ops {
    /// The entry of the filter `S`.
    pub(super) const fn of<S: Source + 'static>(filter: Filter, is_fd: bool) -> Ops {
        Ops {
            filter,
            is_fd,
            attach: attach::<S>,
        }
    }
}

fn attach<S: Source + 'static>(
    shared: &mut Shared,
    key: Key,
    change: &Change,
) -> Result<Box<dyn Source>, Errno> {
    Ok(Box::new(S::attach(shared, key, change)?))
}

/// What kqueue answers for a change to a descriptor's registration that
/// does not exist: EBADF when the descriptor is closed, else ENOENT.
pub(super) fn missing(fd: RawFd) -> Errno {
    if os::is_open(fd) {
        Errno::ENOENT
    } else {
        Errno::EBADF
    }
}

/// A descriptor of the compat's own (timerfd, pidfd, signalfd) that sits
/// in the sources epoll, edge-triggered: each expiry, exit or signal
/// wakes the wait once, and the descriptor itself is read to learn what
/// happened, so a late or duplicate wake-up reads nothing and reports
/// nothing.
#[derive(Debug)]
pub(super) struct Watched {
    fd: OwnedFd,
    /// Its sources-epoll token: `serial << 32 | fd`.
    token: u64,
    /// Whether it is registered in the sources epoll. A disabled registration
    /// is taken out lazily, on its first event, so that disabling costs no
    /// syscall and a disabled periodic timer does not keep waking the wait.
    in_epoll: bool,
}

impl Watched {
    pub(super) fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub(super) fn token(&self) -> u64 {
        self.token
    }

    pub(super) fn in_epoll(&self) -> bool {
        self.in_epoll
    }

    /// Puts it in the sources epoll. EPOLL_CTL_ADD checks readiness at once,
    /// so an expiry, exit or signal that came while the registration was
    /// disabled is reported now.
    pub(super) fn add_to(&mut self, sources: RawFd) -> Result<(), Errno> {
        if !self.in_epoll {
            let events = (libc::EPOLLIN | libc::EPOLLET) as u32;
            os::epoll_ctl(sources, libc::EPOLL_CTL_ADD, self.raw(), events, self.token)?;
            self.in_epoll = true;
        }
        Ok(())
    }

    /// Takes it out of the sources epoll (a disabled registration, so that
    /// it stops waking the wait).
    pub(super) fn remove_from(&mut self, sources: RawFd) {
        if os::epoll_ctl(sources, libc::EPOLL_CTL_DEL, self.raw(), 0, 0).is_ok() {
            self.in_epoll = false;
        }
    }
}

/// What the registry-kept filters share across one kqueue.
#[derive(Debug)]
pub(super) struct Shared {
    /// The sources epoll (owned by `Kqueue`), where the compat's own
    /// descriptors sit.
    pub(super) sources: RawFd,
    /// Which registration a [`Watched`] descriptor serves.
    owners: HashMap<RawFd, Key>,
    /// The serial of the last main-epoll token handed out.
    serial: u32,
    /// Idle timerfds, still in the sources epoll, disarmed.
    pub(super) spare_timers: Vec<timer::Timer>,
    /// Created with the first EVFILT_VNODE registration.
    pub(super) inotify: Option<vnode::Inotify>,
}

impl Shared {
    pub(super) fn new(sources: RawFd) -> Shared {
        Shared {
            sources,
            owners: HashMap::new(),
            serial: 0,
            spare_timers: Vec::new(),
            inotify: None,
        }
    }

    /// Takes `fd` in as a watched descriptor, with a fresh sources-epoll
    /// token (not in the sources epoll yet).
    pub(super) fn watched(&mut self, fd: OwnedFd) -> Watched {
        self.serial = self.serial.checked_add(1).unwrap_or(1);
        let token = (u64::from(self.serial) << 32) | u64::from(fd.as_raw_fd() as u32);
        Watched {
            fd,
            token,
            in_epoll: false,
        }
    }

    /// Takes `fd` in as the watched descriptor of the registration `key`.
    pub(super) fn watch(&mut self, fd: OwnedFd, key: Key) -> Watched {
        let watched = self.watched(fd);
        self.own(&watched, key);
        watched
    }

    /// Makes `watched` the descriptor of the registration `key`.
    pub(super) fn own(&mut self, watched: &Watched, key: Key) {
        self.owners.insert(watched.raw(), key);
    }

    /// Forgets which registration `watched` serves. Closing the descriptor
    /// (the last reference) also takes it out of the sources epoll.
    pub(super) fn disown(&mut self, watched: &Watched) {
        self.owners.remove(&watched.raw());
    }

    /// The registration the sources-epoll event `token` belongs to.
    pub(super) fn owner(&self, token: u64) -> Option<Key> {
        self.owners.get(&(token as u32 as RawFd)).copied()
    }
}
