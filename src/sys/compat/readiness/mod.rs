//! EVFILT_READ and EVFILT_WRITE over the main epoll and a write epoll.
//!
//! kqueue keys registrations by (ident, filter): the read and the write
//! registration of one socket are independent, each with its own
//! `EV_ONESHOT`/`EV_CLEAR`/`EV_DISPATCH` and its own enabled state, and
//! deleting one leaves the other. epoll keys interest by descriptor, with a
//! single event mask and a single mode per descriptor. The compat gets
//! kqueue's model exactly with one epoll per direction: a descriptor sits
//! in the main epoll itself with `EPOLLIN | EPOLLRDHUP` and in the write
//! epoll, nested in the main one, with `EPOLLOUT`, each entry with the mode
//! of its own registration (`entry.rs`). A read event thus costs the one
//! `epoll_wait` of the `kevent` call; the write epoll is drained with a
//! single `epoll_wait` per call, so no registration is reported twice in
//! one call.
//!
//! These registrations live in a table indexed by descriptor rather than in
//! the registry's hash: a slot per descriptor, found by indexing, holds both
//! directions and what was learned about the file (`count.rs`), with no
//! allocation per registration — the path every socket event takes.
//!
//! The caller's descriptor is registered as it is: a `dup()` would keep a
//! socket open after the caller closed it. The compat cannot see a caller's
//! `close()`; changes to a registration whose descriptor was closed report
//! what kqueue would for a knote dropped at close: EBADF for a closed
//! number, ENOENT for a reused one. Files epoll refuses are evaluated
//! before each wait instead (`file.rs`).

mod count;
mod entry;
mod file;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use count::Facts;
use entry::{EPOLLIN, Entry, arm, disarm, events, gone, level, token};
use file::File;

use super::filter;
use super::os::{self, Errno};
use super::queue::{Out, Pending};
use super::registration::{After, Registration};
use super::{EMPTY, MAX_READY, TOKEN_WRITE};
use crate::fdmap::FdMap;
use crate::sys::{Change, Filter, Flags};

// The index of each direction in a slot's sides, and its filter.
const READ: usize = 0;
const WRITE: usize = 1;
const FILTERS: [Filter; 2] = [Filter::READ, Filter::WRITE];

/// One direction (read or write) of one descriptor.
#[derive(Debug, Default)]
struct Side {
    entry: Entry,
    /// The generation of the current registration, in its token.
    generation: u32,
    knote: Option<FdKnote>,
}

/// A READ or WRITE registration.
#[derive(Debug)]
struct FdKnote {
    reg: Registration,
    /// Set for a file epoll refuses (regular file, directory). Boxed:
    /// rare, and it would double the size of every socket's slot.
    file: Option<Box<File>>,
}

/// What one descriptor number is known to be: its read and write sides
/// (indexed by `READ`, `WRITE`) and what its events taught.
#[derive(Debug, Default)]
struct Slot {
    sides: [Side; 2],
    facts: Facts,
}

/// The bytes the compat keeps per descriptor with read or write
/// registrations: its slot in the descriptor-indexed table.
#[cfg(test)]
pub(in crate::sys::compat) fn slot_bytes() -> usize {
    std::mem::size_of::<Slot>()
}

/// EVFILT_READ and EVFILT_WRITE registrations, indexed by descriptor.
#[derive(Debug)]
pub(in crate::sys::compat) struct Readiness {
    /// The main epoll (owned by `Kqueue`), where reads sit.
    main: RawFd,
    write: OwnedFd,
    slots: FdMap<Slot>,
    /// Registrations on files epoll refuses, as (fd, direction).
    files: Vec<(RawFd, usize)>,
    /// Reused `epoll_wait` buffer; grows to the largest room seen.
    ready: Vec<libc::epoll_event>,
    /// Whether events count bytes readable and room to write (see
    /// `Kqueue::uncounted`).
    counted: bool,
}

impl Readiness {
    /// The write epoll's descriptor.
    #[cfg(test)]
    pub(in crate::sys::compat) fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// Whether `fd` is the write epoll.
    pub(in crate::sys::compat) fn owns(&self, fd: RawFd) -> bool {
        self.write.as_raw_fd() == fd
    }

    /// Creates the write epoll and nests it in `main`, where reads go.
    pub(in crate::sys::compat) fn new(main: RawFd, counted: bool) -> Result<Readiness, Errno> {
        let write = os::epoll_create()?;
        os::epoll_ctl(
            main,
            libc::EPOLL_CTL_ADD,
            write.as_raw_fd(),
            EPOLLIN,
            TOKEN_WRITE,
        )?;
        Ok(Readiness {
            main,
            write,
            slots: FdMap::default(),
            files: Vec::new(),
            ready: Vec::new(),
            counted,
        })
    }

    /// The epoll of direction `dir`.
    fn epoll(&self, dir: usize) -> RawFd {
        if dir == READ {
            self.main
        } else {
            self.write.as_raw_fd()
        }
    }

    fn side(&self, fd: RawFd, dir: usize) -> Option<&Side> {
        self.slots.get(fd).map(|slot| &slot.sides[dir])
    }

    fn side_mut(&mut self, fd: RawFd, dir: usize) -> Option<&mut Side> {
        self.slots.get_mut(fd).map(|slot| &mut slot.sides[dir])
    }

    /// The slot of a descriptor the kernel just accepted (so the number is
    /// bounded by the descriptor table).
    fn slot_mut(&mut self, fd: RawFd) -> Option<&mut Slot> {
        self.slots.entry(fd)
    }

    /// Applies one READ or WRITE change. Returns whether a blocked caller
    /// must be woken (a file registration to evaluate).
    pub(in crate::sys::compat) fn apply(
        &mut self,
        change: &Change,
        pending: &mut Pending,
    ) -> Result<bool, Errno> {
        let dir = if change.filter() == Filter::WRITE {
            WRITE
        } else {
            READ
        };
        let fd = RawFd::try_from(change.ident()).map_err(|_| Errno::EBADF)?;
        if fd == self.epoll(WRITE) {
            // The compat's own: as a read it would take over its entry in
            // the main epoll, and as a write it would watch itself.
            return Err(Errno::EINVAL);
        }
        let flags = change.flags();
        if self.side(fd, dir).is_none_or(|side| side.knote.is_none()) {
            if !flags.contains(Flags::ADD) {
                return Err(filter::missing(fd));
            }
            if flags.contains(Flags::DELETE) {
                // Added and deleted at once: only the lookup can fail.
                return if os::is_open(fd) {
                    Ok(false)
                } else {
                    Err(Errno::EBADF)
                };
            }
            return self.add(fd, dir, change);
        }
        if flags.contains(Flags::DELETE) {
            return self.delete(fd, dir, pending).map(|()| false);
        }
        self.modify(fd, dir, change, pending)
    }

    fn add(&mut self, fd: RawFd, dir: usize, change: &Change) -> Result<bool, Errno> {
        let reg = Registration::new(change);
        let (mut entry, generation) = self
            .side(fd, dir)
            .map_or((Entry::Out, 0), |side| (side.entry, side.generation));
        // A new registration: events of the previous one must not match.
        let mut generation = entry::next_generation(generation);
        let mut file = None;
        let mut fresh = false;
        if reg.enabled {
            let ep = self.epoll(dir);
            let events = events(dir, reg.flags);
            match arm(ep, &mut entry, &mut generation, fd, events, true) {
                Ok(made) => fresh = made,
                Err(Errno::EPERM) => file = Some(Box::new(File::open(fd)?)),
                Err(errno) => {
                    if let Some(side) = self.side_mut(fd, dir) {
                        side.entry = entry;
                    }
                    return Err(errno);
                }
            }
        } else if !os::is_open(fd) {
            // A disabled registration is checked only for the descriptor;
            // whether epoll takes it is found out at EV_ENABLE.
            return Err(Errno::EBADF);
        }
        let is_file = file.is_some();
        let Some(slot) = self.slot_mut(fd) else {
            return Err(Errno::EBADF);
        };
        if fresh {
            slot.facts = Facts::default();
        }
        slot.sides[dir] = Side {
            entry,
            generation,
            knote: Some(FdKnote { reg, file }),
        };
        if is_file {
            self.files.push((fd, dir));
        }
        Ok(is_file)
    }

    fn modify(
        &mut self,
        fd: RawFd,
        dir: usize,
        change: &Change,
        pending: &mut Pending,
    ) -> Result<bool, Errno> {
        let adding = change.flags().contains(Flags::ADD);
        let ep = self.epoll(dir);
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let Some(slot) = self.slots.get_mut(fd) else {
            return Err(Errno::ENOENT);
        };
        let side = &mut slot.sides[dir];
        let Some(knote) = side.knote.as_mut() else {
            return Err(Errno::ENOENT);
        };
        knote.reg.modify(change, true);

        if let Some(file) = &knote.file {
            if let Err(errno) = file.check(fd) {
                let queued = file.queued;
                side.knote = None;
                self.forget_file(fd, dir, queued, pending);
                return if adding {
                    self.add(fd, dir, change)
                } else {
                    Err(errno)
                };
            }
            // Re-evaluated before the next wait.
            return Ok(knote.reg.enabled);
        }

        let result = if knote.reg.enabled {
            let events = events(dir, knote.reg.flags);
            arm(
                ep,
                &mut side.entry,
                &mut side.generation,
                fd,
                events,
                adding,
            )
        } else {
            disarm(ep, &mut side.entry, fd).map(|()| false)
        };
        match result {
            Ok(fresh) => {
                if fresh {
                    slot.facts = Facts::default();
                }
                Ok(false)
            }
            Err(Errno::EPERM) if adding => {
                // The number now names a file epoll refuses.
                knote.file = Some(Box::new(File::open(fd)?));
                self.files.push((fd, dir));
                Ok(true)
            }
            Err(errno) => {
                if gone(errno) {
                    side.knote = None;
                }
                Err(errno)
            }
        }
    }

    fn delete(&mut self, fd: RawFd, dir: usize, pending: &mut Pending) -> Result<(), Errno> {
        let ep = self.epoll(dir);
        let Some(side) = self.side_mut(fd, dir) else {
            return Err(Errno::ENOENT);
        };
        let Some(knote) = side.knote.take() else {
            return Err(Errno::ENOENT);
        };
        match knote.file {
            Some(file) => {
                self.forget_file(fd, dir, file.queued, pending);
                file.check(fd).map(drop)
            }
            // EBADF for a closed descriptor, ENOENT for a reused number:
            // what kqueue answers once close() has dropped the knote.
            None => disarm(ep, &mut side.entry, fd),
        }
    }

    /// A read entry's event, from the main epoll's wait.
    pub(in crate::sys::compat) fn report_read(&mut self, bits: u32, token: u64, out: &mut Out<'_>) {
        self.report(READ, bits, token, out);
    }

    /// Drains the write epoll without blocking, as far as there is room.
    /// One `epoll_wait`: a second one could return a re-armed
    /// level-triggered entry again.
    pub(in crate::sys::compat) fn collect_writes(&mut self, out: &mut Out<'_>) {
        let dir = WRITE;
        let want = out.room().min(MAX_READY);
        if want == 0 {
            return;
        }
        if self.ready.len() < want {
            self.ready.resize(want, EMPTY);
        }
        let ep = self.epoll(dir);
        let Ok(n) = os::epoll_wait(ep, &mut self.ready[..want], 0) else {
            return;
        };
        for i in 0..n {
            let entry = self.ready[i];
            let (bits, data) = (entry.events, entry.u64);
            self.report(dir, bits, data, out);
        }
    }

    /// One entry's event: the kevent it stands for, unless the
    /// descriptor turns out to be closed or replaced.
    fn report(&mut self, dir: usize, bits: u32, data: u64, out: &mut Out<'_>) {
        let fd = data as u32 as RawFd;
        let generation = (data >> 32) as u32;
        let ep = self.epoll(dir);
        let Some(slot) = self.slots.get_mut(fd) else {
            return;
        };
        let Slot { sides, facts } = slot;
        let side = &mut sides[dir];
        let Some(knote) = side.knote.as_mut() else {
            return;
        };
        if side.generation != generation || !knote.reg.enabled || knote.file.is_some() {
            return;
        }
        let Some(status) = facts.status(fd, dir, bits, self.counted) else {
            // The number was closed: kqueue dropped the registration then.
            side.knote = None;
            side.entry = Entry::Out;
            return;
        };
        if level(knote.reg.flags) {
            let events = events(dir, knote.reg.flags);
            if let Err(errno) =
                os::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, events, token(fd, generation))
            {
                side.entry = Entry::Parked;
                if gone(errno) {
                    // Closed, or the number names another file now.
                    side.knote = None;
                    side.entry = Entry::Out;
                    return;
                }
            }
        }
        let extra = if status.eof { Flags::EOF } else { Flags::NONE };
        let key = (fd as usize, FILTERS[dir]);
        let (event, after) = knote.reg.event(key, extra, status.fflags, status.data);
        out.push(event);
        match after {
            After::Keep => {}
            // EPOLLONESHOT has disarmed the entry; it stays parked.
            After::Disable => {
                knote.reg.enabled = false;
                side.entry = Entry::Parked;
            }
            After::Delete => {
                side.knote = None;
                side.entry = Entry::Parked;
            }
        }
    }
}
