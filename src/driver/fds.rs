//! Per-descriptor waiter queues and their kevent registrations.
//!
//! Operations waiting on one (fd, direction) queue in submission order;
//! however many there are, they share one registration, `EV_ADD |
//! EV_CLEAR`. Edge-triggered is right here because a waiter retries its
//! syscall until EAGAIN before waiting again, so no readiness goes unused,
//! and it costs no change per event: a busy descriptor's registration stays
//! put while waiters come and go. When a direction has no waiter left at the
//! end of a turn its registration is deleted, so nothing stays behind for a
//! descriptor kqring is done with.

use std::collections::{HashMap, VecDeque};
use std::os::fd::RawFd;

use crate::sys::{Change, Filter, Flags};

/// A readiness direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

impl Dir {
    pub(crate) fn filter(self) -> Filter {
        match self {
            Dir::Read => Filter::READ,
            Dir::Write => Filter::WRITE,
        }
    }

    pub(crate) fn from_filter(filter: Filter) -> Option<Dir> {
        match filter {
            Filter::READ => Some(Dir::Read),
            Filter::WRITE => Some(Dir::Write),
            _ => None,
        }
    }
}

/// The waiters of one direction of one descriptor.
#[derive(Default, Debug)]
pub(crate) struct Waiters {
    /// I/O operations, served head first so they complete in order.
    pub(crate) io: VecDeque<usize>,
    /// Poll operations: every one of them hears every readiness event.
    pub(crate) polls: Vec<usize>,
    /// Whether the kqueue holds a registration for this direction.
    registered: bool,
}

impl Waiters {
    fn is_empty(&self) -> bool {
        self.io.is_empty() && self.polls.is_empty()
    }

    fn remove(&mut self, id: usize) -> bool {
        if let Some(i) = self.io.iter().position(|&w| w == id) {
            self.io.remove(i);
            return true;
        }
        if let Some(i) = self.polls.iter().position(|&w| w == id) {
            self.polls.swap_remove(i);
            return true;
        }
        false
    }
}

/// Every descriptor with waiters, and the registrations to reconcile.
#[derive(Default)]
pub(crate) struct FdTable {
    fds: HashMap<RawFd, [Waiters; 2]>,
    /// Descriptors whose waiters changed since the last reconcile.
    dirty: Vec<RawFd>,
}

impl FdTable {
    pub(crate) fn waiters(&mut self, fd: RawFd, dir: Dir) -> Option<&mut Waiters> {
        self.fds.get_mut(&fd).map(|w| &mut w[dir as usize])
    }

    /// Whether operations already wait on (fd, dir): a new one must queue
    /// behind them rather than try its syscall, to keep submission order.
    pub(crate) fn has_io_waiters(&self, fd: RawFd, dir: Dir) -> bool {
        self.fds
            .get(&fd)
            .is_some_and(|w| !w[dir as usize].io.is_empty())
    }

    pub(crate) fn push_io(&mut self, fd: RawFd, dir: Dir, id: usize) {
        self.entry(fd)[dir as usize].io.push_back(id);
    }

    pub(crate) fn push_poll(&mut self, fd: RawFd, dir: Dir, id: usize) {
        self.entry(fd)[dir as usize].polls.push(id);
    }

    fn entry(&mut self, fd: RawFd) -> &mut [Waiters; 2] {
        self.mark(fd);
        self.fds.entry(fd).or_default()
    }

    /// Notes that (fd)'s waiters changed; `reconcile` looks at it.
    pub(crate) fn mark(&mut self, fd: RawFd) {
        self.dirty.push(fd);
    }

    /// Removes `id` from wherever it waits on `fd`.
    pub(crate) fn remove(&mut self, fd: RawFd, id: usize) -> bool {
        let Some(dirs) = self.fds.get_mut(&fd) else {
            return false;
        };
        let found = dirs
            .iter_mut()
            .map(|w| w.remove(id))
            .fold(false, |a, b| a | b);
        if found {
            self.dirty.push(fd);
        }
        found
    }

    /// Takes every waiter of `fd`, both directions, for a close.
    pub(crate) fn take_all(&mut self, fd: RawFd) -> Vec<usize> {
        let Some(dirs) = self.fds.get_mut(&fd) else {
            return Vec::new();
        };
        let mut ids = Vec::new();
        for w in dirs.iter_mut() {
            ids.extend(w.io.drain(..));
            ids.append(&mut w.polls);
        }
        self.dirty.push(fd);
        ids
    }

    /// Whether (fd, dir) is registered: an event for an unregistered pair
    /// is stale and ignored.
    pub(crate) fn is_registered(&self, fd: RawFd, dir: Dir) -> bool {
        self.fds
            .get(&fd)
            .is_some_and(|w| w[dir as usize].registered)
    }

    /// A registration failed to be added: it is not there.
    pub(crate) fn unregister(&mut self, fd: RawFd, dir: Dir) {
        if let Some(w) = self.fds.get_mut(&fd) {
            w[dir as usize].registered = false;
            self.dirty.push(fd);
        }
    }

    /// Adds the registrations that waiters need and deletes those nobody
    /// needs any more, as changes for the next `kevent` call.
    pub(crate) fn reconcile(&mut self, changes: &mut Vec<Change>) {
        for fd in self.dirty.drain(..) {
            let Some(dirs) = self.fds.get_mut(&fd) else {
                continue;
            };
            for (dir, w) in [Dir::Read, Dir::Write].into_iter().zip(dirs.iter_mut()) {
                let wanted = !w.is_empty();
                if wanted != w.registered {
                    let flags = if wanted {
                        Flags::ADD | Flags::CLEAR
                    } else {
                        Flags::DELETE
                    };
                    changes.push(Change::new(fd as usize, dir.filter(), flags).token(fd as u64));
                    w.registered = wanted;
                }
            }
            if dirs.iter().all(|w| w.is_empty() && !w.registered) {
                self.fds.remove(&fd);
            }
        }
    }

    /// Descriptors with waiters (for shutdown).
    pub(crate) fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }
}
