//! EVFILT_READ and EVFILT_WRITE over two inner epoll instances.
//!
//! kqueue keys registrations by (ident, filter): the read and the write
//! registration of one socket are independent, each with its own
//! `EV_ONESHOT`/`EV_CLEAR`/`EV_DISPATCH` and its own enabled state, and
//! deleting one leaves the other. epoll keys interest by descriptor, with a
//! single event mask and a single mode per descriptor. The compat gets
//! kqueue's model exactly with one inner epoll per direction, both nested in
//! the main epoll: a descriptor sits in the read epoll with
//! `EPOLLIN | EPOLLRDHUP` and in the write epoll with `EPOLLOUT`, each entry
//! with the mode of its own registration:
//!
//! | kqueue | inner epoll entry |
//! |---|---|
//! | level (default) | `EPOLLONESHOT`, re-armed with `EPOLL_CTL_MOD` after each event |
//! | `EV_CLEAR` | `EPOLLET` |
//! | `EV_ONESHOT`, `EV_DISPATCH` | `EPOLLONESHOT`; `EV_ENABLE` re-arms it with `EPOLL_CTL_MOD` |
//! | `EV_DISABLE` | `EPOLL_CTL_DEL` (epoll reports `EPOLLERR`/`EPOLLHUP` even for an empty mask, so only removal silences it) |
//!
//! Level-triggered registrations are not plain level-triggered entries
//! because of `close()`. kqueue drops a descriptor's registrations when the
//! descriptor is closed; epoll drops an entry only when the open file goes
//! away, so after `dup(fd); close(fd)` the entry of the closed number lives
//! on, and a plain level-triggered one would keep the wait spinning forever,
//! with no way to remove it (`EPOLL_CTL_DEL` needs the closed number). A
//! one-shot entry fires at most once more, and its re-arming doubles as the
//! check that the number still names the registered file: `EPOLL_CTL_MOD`
//! fails with EBADF once the number is closed and with ENOENT once it names
//! another file, and the registration is then dropped unreported, as
//! kqueue's would have been at close(). The other modes are checked on each
//! event by the call that computes `data`, which fails with EBADF on a
//! closed number; an `EV_CLEAR` entry of a closed number can only wake the
//! wait on new activity, and its events are dropped.
//!
//! The caller's descriptor is registered as it is: a `dup()` would keep a
//! socket open after the caller closed it.
//!
//! After an `EV_ONESHOT` (or `EV_DISPATCH`) event the entry stays in the
//! inner epoll, disarmed by `EPOLLONESHOT` ("parked"), so the next `EV_ADD`
//! (or `EV_ENABLE`) is one `EPOLL_CTL_MOD`: the driver's hot path costs one
//! syscall per registration. Each inner epoll is drained with a single
//! `epoll_wait` per `kevent` call, so no registration is reported twice in
//! one call.
//!
//! The compat cannot see a caller's `close()`. epoll drops an entry when the
//! open file goes away, so an entry we believe in may be gone, or the
//! number may name another file: `EPOLL_CTL_MOD` then fails with ENOENT,
//! and an `EV_ADD` falls back to `EPOLL_CTL_ADD` (an `EPOLL_CTL_ADD` that
//! finds an entry, EEXIST, falls back to `EPOLL_CTL_MOD`), so re-adding
//! always works. Other changes report what kqueue would for a knote dropped
//! at close: EBADF for a closed number, ENOENT for a reused one. Each entry's
//! token carries a generation besides the descriptor, so an event of an
//! entry epoll kept alive through a `dup` is never reported as the event of
//! a newer registration on the same number.
//!
//! `data` comes from the file: bytes readable (FIONREAD), the accept
//! backlog of a TCP listener (TCP_INFO), room to write (socket: SO_SNDBUF
//! minus SIOCOUTQ; pipe: F_GETPIPE_SZ minus FIONREAD). What kind of file a
//! descriptor is gets learned from the first event and remembered while
//! its entry stays in the inner epoll (a successful `EPOLL_CTL_MOD` proves
//! the number still names the same file), so steady state costs one ioctl
//! per read event and two calls per write event.
//!
//! A kqueue made with `Kqueue::uncounted` skips those calls: its events
//! carry `data` 1 while readable or writable, and only the first write
//! event of a file probes what it is. Without the calls an event is not
//! checked against a closed number either: an `EV_CLEAR`
//! entry whose file lives on in a duplicate after the number was closed
//! can still report. The ring's driver, which never reads `data` and
//! retries its syscall on every event, uses it.
//!
//! Regular files and directories cannot be in an epoll (EPERM). kqueue's
//! vnode filters treat them as always writable and readable while the
//! offset is before the end; the compat evaluates such registrations before
//! each wait instead (fstat and lseek), through the pending queue.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::os::{self, Errno};
use super::{After, EMPTY, Key, Out, Pending, Registration, TOKEN_READ, TOKEN_WRITE};
use crate::fdmap::FdMap;
use crate::sys::{Change, Event, Filter, Flags};

const READ: usize = 0;
const WRITE: usize = 1;
const FILTERS: [Filter; 2] = [Filter::READ, Filter::WRITE];

/// `TCP_LISTEN` from the kernel's `include/net/tcp_states.h` (`tcpi_state`).
const TCP_LISTEN: u8 = 10;

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// What an inner epoll holds for one descriptor and direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Entry {
    /// Nothing.
    #[default]
    Out,
    /// An entry that reports.
    Armed,
    /// An entry disarmed by `EPOLLONESHOT` after its event.
    Parked,
}

/// One direction of one descriptor.
#[derive(Debug, Default)]
struct Dir {
    entry: Entry,
    /// The generation of the current registration, in its token.
    generation: u32,
    knote: Option<FdKnote>,
}

#[derive(Debug)]
struct FdKnote {
    reg: Registration,
    /// Set for a file epoll refuses (regular file, directory). Boxed:
    /// rare, and it would double the size of every socket's slot.
    file: Option<Box<File>>,
}

/// What one descriptor number is known to be.
#[derive(Debug, Default)]
struct Slot {
    dirs: [Dir; 2],
    facts: Facts,
}

/// Facts about the open file behind a descriptor, learned from its events.
#[derive(Debug, Default)]
struct Facts {
    readable: ReadCount,
    room: WriteRoom,
    /// The last socket error read with SO_ERROR (which clears it), kept so
    /// that later EOF events of either direction still carry it, as a BSD
    /// socket's `so_error` stays set.
    so_error: i32,
}

/// How to count the bytes readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ReadCount {
    #[default]
    Fionread,
    /// A listening TCP socket: the accept queue from TCP_INFO.
    TcpBacklog,
    /// No count available: 1 while readable.
    Unknown,
}

/// How to measure the room to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum WriteRoom {
    #[default]
    Unprobed,
    Socket,
    Pipe,
    /// Neither: 0.
    Unknown,
}

/// A regular file (or another file epoll refuses), evaluated before each
/// wait.
#[derive(Debug)]
struct File {
    dev: u64,
    ino: u64,
    regular: bool,
    /// In the pending queue, with `data` to report.
    queued: bool,
    data: i64,
    /// The `data` last reported, for `EV_CLEAR`.
    last: Option<i64>,
}

impl File {
    fn open(fd: RawFd) -> Result<File, Errno> {
        let st = os::fstat(fd)?;
        Ok(File {
            dev: st.st_dev,
            ino: st.st_ino,
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
            queued: false,
            data: 0,
            last: None,
        })
    }

    /// EBADF once the descriptor is closed, ENOENT once its number names
    /// another file: either way kqueue would have dropped the knote.
    fn check(&self, fd: RawFd) -> Result<libc::stat, Errno> {
        let st = os::fstat(fd)?;
        if (st.st_dev, st.st_ino) == (self.dev, self.ino) {
            Ok(st)
        } else {
            Err(Errno::ENOENT)
        }
    }

    /// kqueue's vnode filters: readable while the offset is not at the end
    /// (`data` = size - offset), always writable (`data` 0). `None`: not
    /// ready.
    fn evaluate(&self, fd: RawFd, dir: usize) -> Result<Option<i64>, Errno> {
        let st = self.check(fd)?;
        if dir == WRITE || !self.regular {
            return Ok(Some(0));
        }
        let left = st.st_size - os::offset(fd)?;
        Ok((left != 0).then_some(left))
    }
}

/// Whether a registration is level-triggered (re-armed after each event).
fn level(flags: Flags) -> bool {
    !flags.intersects(Flags::ONESHOT | Flags::DISPATCH | Flags::CLEAR)
}

/// The epoll events of a registration.
fn events(dir: usize, flags: Flags) -> u32 {
    let mut events = if dir == READ {
        EPOLLIN | EPOLLRDHUP
    } else {
        EPOLLOUT
    };
    if flags.intersects(Flags::ONESHOT | Flags::DISPATCH) || level(flags) {
        events |= EPOLLONESHOT;
    }
    if flags.contains(Flags::CLEAR) {
        events |= EPOLLET;
    }
    events
}

fn token(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

/// Errors after which kqueue would no longer have the registration: the
/// descriptor was closed, or its number now names another file.
fn gone(errno: Errno) -> bool {
    errno == Errno::EBADF || errno == Errno::ENOENT
}

/// What kqueue answers for a change to a registration that does not exist.
fn missing(fd: RawFd) -> Errno {
    if os::is_open(fd) {
        Errno::ENOENT
    } else {
        Errno::EBADF
    }
}

/// Makes the inner epoll `ep` report `fd` with `events`. `adding`: this is
/// an `EV_ADD`, which must also work when the number now names another
/// file. Every new entry gets a new generation, so that the events of an
/// entry epoll keeps for a closed number (through a `dup`) never carry the
/// token of the new one. Returns whether a new entry was made (the file may
/// be new).
fn arm(
    ep: RawFd,
    entry: &mut Entry,
    generation: &mut u32,
    fd: RawFd,
    events: u32,
    adding: bool,
) -> Result<bool, Errno> {
    if *entry != Entry::Out {
        match os::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, events, token(fd, *generation)) {
            Ok(()) => {
                *entry = Entry::Armed;
                return Ok(false);
            }
            Err(errno) => {
                if gone(errno) {
                    *entry = Entry::Out;
                }
                if !(adding && errno == Errno::ENOENT) {
                    return Err(errno);
                }
            }
        }
    }
    *generation = generation.wrapping_add(1);
    let data = token(fd, *generation);
    match os::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, events, data) {
        Ok(()) => {
            *entry = Entry::Armed;
            Ok(true)
        }
        Err(Errno::EEXIST) => {
            os::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, events, data)?;
            *entry = Entry::Armed;
            Ok(false)
        }
        Err(errno) => Err(errno),
    }
}

/// Takes `fd` out of the inner epoll `ep`; for a registration with no entry,
/// only checks that the descriptor is still open.
fn disarm(ep: RawFd, entry: &mut Entry, fd: RawFd) -> Result<(), Errno> {
    if *entry == Entry::Out {
        return if os::is_open(fd) {
            Ok(())
        } else {
            Err(Errno::EBADF)
        };
    }
    *entry = Entry::Out;
    os::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, 0, 0)
}

/// The bytes the compat keeps per descriptor with read or write
/// registrations: its slot in the descriptor-indexed table.
#[cfg(test)]
pub(super) fn slot_bytes() -> usize {
    std::mem::size_of::<Slot>()
}

/// The most entries one inner `epoll_wait` returns.
const MAX_READY: usize = 1024;

/// EVFILT_READ and EVFILT_WRITE registrations, indexed by descriptor.
#[derive(Debug)]
pub(super) struct Readiness {
    epolls: [OwnedFd; 2],
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
    /// Creates the two inner epolls and nests them in `main`.
    pub(super) fn new(main: RawFd, counted: bool) -> Result<Readiness, Errno> {
        let read = os::epoll_create()?;
        let write = os::epoll_create()?;
        for (ep, token) in [(&read, TOKEN_READ), (&write, TOKEN_WRITE)] {
            os::epoll_ctl(main, libc::EPOLL_CTL_ADD, ep.as_raw_fd(), EPOLLIN, token)?;
        }
        Ok(Readiness {
            epolls: [read, write],
            slots: FdMap::default(),
            files: Vec::new(),
            ready: Vec::new(),
            counted,
        })
    }

    fn dir(&self, fd: RawFd, dir: usize) -> Option<&Dir> {
        self.slots.get(fd).map(|slot| &slot.dirs[dir])
    }

    fn dir_mut(&mut self, fd: RawFd, dir: usize) -> Option<&mut Dir> {
        self.slots.get_mut(fd).map(|slot| &mut slot.dirs[dir])
    }

    /// The slot of a descriptor the kernel just accepted (so the number is
    /// bounded by the descriptor table).
    fn slot_mut(&mut self, fd: RawFd) -> Option<&mut Slot> {
        self.slots.entry(fd)
    }

    /// Applies one READ or WRITE change. Returns whether a blocked caller
    /// must be woken (a file registration to evaluate).
    pub(super) fn apply(&mut self, change: &Change, pending: &mut Pending) -> Result<bool, Errno> {
        let dir = if change.filter() == Filter::WRITE {
            WRITE
        } else {
            READ
        };
        let fd = RawFd::try_from(change.ident()).map_err(|_| Errno::EBADF)?;
        let flags = change.flags();
        if self.dir(fd, dir).is_none_or(|d| d.knote.is_none()) {
            if !flags.contains(Flags::ADD) {
                return Err(missing(fd));
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
            .dir(fd, dir)
            .map_or((Entry::Out, 0), |d| (d.entry, d.generation));
        // A new registration: events of the previous one must not match.
        let mut generation = generation.wrapping_add(1);
        let mut file = None;
        let mut fresh = false;
        if reg.enabled {
            let ep = self.epolls[dir].as_raw_fd();
            let events = events(dir, reg.flags);
            match arm(ep, &mut entry, &mut generation, fd, events, true) {
                Ok(made) => fresh = made,
                Err(Errno::EPERM) => file = Some(Box::new(File::open(fd)?)),
                Err(errno) => {
                    if let Some(d) = self.dir_mut(fd, dir) {
                        d.entry = entry;
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
        slot.dirs[dir] = Dir {
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
        let ep = self.epolls[dir].as_raw_fd();
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        let Some(slot) = self.slots.get_mut(fd) else {
            return Err(Errno::ENOENT);
        };
        let d = &mut slot.dirs[dir];
        let Some(knote) = d.knote.as_mut() else {
            return Err(Errno::ENOENT);
        };
        knote.reg.touch(change, true);

        if let Some(file) = &knote.file {
            if let Err(errno) = file.check(fd) {
                let queued = file.queued;
                d.knote = None;
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
            arm(ep, &mut d.entry, &mut d.generation, fd, events, adding)
        } else {
            disarm(ep, &mut d.entry, fd).map(|()| false)
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
                    d.knote = None;
                }
                Err(errno)
            }
        }
    }

    fn delete(&mut self, fd: RawFd, dir: usize, pending: &mut Pending) -> Result<(), Errno> {
        let ep = self.epolls[dir].as_raw_fd();
        let Some(d) = self.dir_mut(fd, dir) else {
            return Err(Errno::ENOENT);
        };
        let Some(knote) = d.knote.take() else {
            return Err(Errno::ENOENT);
        };
        match knote.file {
            Some(file) => {
                self.forget_file(fd, dir, file.queued, pending);
                file.check(fd).map(drop)
            }
            // EBADF for a closed descriptor, ENOENT for a reused number:
            // what kqueue answers once close() has dropped the knote.
            None => disarm(ep, &mut d.entry, fd),
        }
    }

    fn forget_file(&mut self, fd: RawFd, dir: usize, queued: bool, pending: &mut Pending) {
        self.files.retain(|&entry| entry != (fd, dir));
        if queued {
            pending.remove((fd as usize, FILTERS[dir]));
        }
    }

    /// Drains the inner epoll of `dir` without blocking, as far as there is
    /// room. One `epoll_wait`: a second one could return a re-armed
    /// level-triggered entry again.
    pub(super) fn collect(&mut self, dir: usize, out: &mut Out<'_>) {
        let want = out.room().min(MAX_READY);
        if want == 0 {
            return;
        }
        if self.ready.len() < want {
            self.ready.resize(want, EMPTY);
        }
        let ep = self.epolls[dir].as_raw_fd();
        let Ok(n) = os::epoll_wait(ep, &mut self.ready[..want], 0) else {
            return;
        };
        for i in 0..n {
            let entry = self.ready[i];
            let (bits, data) = (entry.events, entry.u64);
            self.report(dir, bits, data, out);
        }
    }

    /// One inner-epoll event: the kevent it stands for, unless the
    /// descriptor turns out to be closed or replaced.
    fn report(&mut self, dir: usize, bits: u32, data: u64, out: &mut Out<'_>) {
        let fd = data as u32 as RawFd;
        let generation = (data >> 32) as u32;
        let ep = self.epolls[dir].as_raw_fd();
        let Some(slot) = self.slots.get_mut(fd) else {
            return;
        };
        let Slot { dirs, facts } = slot;
        let d = &mut dirs[dir];
        let Some(knote) = d.knote.as_mut() else {
            return;
        };
        if d.generation != generation || !knote.reg.enabled || knote.file.is_some() {
            return;
        }
        let state = match (dir == READ, self.counted) {
            (true, true) => facts.read_state(fd, bits),
            (true, false) => Some(facts.read_flags(fd, bits)),
            (false, true) => facts.write_state(fd, bits),
            (false, false) => facts.write_flags(fd, bits),
        };
        let Some((eof, fflags, data)) = state else {
            // The number was closed: kqueue dropped the registration then.
            d.knote = None;
            d.entry = Entry::Out;
            return;
        };
        if level(knote.reg.flags) {
            let events = events(dir, knote.reg.flags);
            if let Err(errno) =
                os::epoll_ctl(ep, libc::EPOLL_CTL_MOD, fd, events, token(fd, generation))
            {
                d.entry = Entry::Parked;
                if gone(errno) {
                    // Closed, or the number names another file now.
                    d.knote = None;
                    d.entry = Entry::Out;
                    return;
                }
            }
        }
        let flags = if eof {
            knote.reg.flags | Flags::EOF
        } else {
            knote.reg.flags
        };
        out.push(Event::from_parts(
            fd as usize,
            FILTERS[dir],
            flags,
            fflags,
            data,
            knote.reg.udata,
        ));
        match knote.reg.after() {
            After::Keep => {}
            // EPOLLONESHOT has disarmed the entry; it stays parked.
            After::Disable => {
                knote.reg.enabled = false;
                d.entry = Entry::Parked;
            }
            After::Delete => {
                d.knote = None;
                d.entry = Entry::Parked;
            }
        }
    }

    /// Evaluates the file registrations before a wait, queueing those that
    /// are ready. A file whose descriptor was closed or replaced loses its
    /// registration, as kqueue's would at close().
    pub(super) fn poll_files(&mut self, pending: &mut Pending) {
        let mut i = 0;
        while i < self.files.len() {
            let (fd, dir) = self.files[i];
            let Some(d) = self.dir_mut(fd, dir) else {
                self.files.swap_remove(i);
                continue;
            };
            let Some(knote) = d.knote.as_mut() else {
                self.files.swap_remove(i);
                continue;
            };
            let Some(file) = knote.file.as_mut() else {
                self.files.swap_remove(i);
                continue;
            };
            if !knote.reg.enabled || file.queued {
                i += 1;
                continue;
            }
            match file.evaluate(fd, dir) {
                Err(_) => {
                    d.knote = None;
                    self.files.swap_remove(i);
                    continue;
                }
                // EV_CLEAR: report again only once the count has changed
                // (kqueue waits for the next write to the file).
                Ok(Some(data))
                    if !(knote.reg.flags.contains(Flags::CLEAR) && file.last == Some(data)) =>
                {
                    file.data = data;
                    file.queued = true;
                    pending.push((fd as usize, FILTERS[dir]));
                }
                Ok(_) => {}
            }
            i += 1;
        }
    }

    /// Delivers a queued file registration.
    pub(super) fn deliver_file(&mut self, key: Key, out: &mut Out<'_>) {
        let dir = if key.1 == Filter::WRITE { WRITE } else { READ };
        let Ok(fd) = RawFd::try_from(key.0) else {
            return;
        };
        let Some(d) = self.dir_mut(fd, dir) else {
            return;
        };
        let Some(knote) = d.knote.as_mut() else {
            return;
        };
        let Some(file) = knote.file.as_mut() else {
            return;
        };
        if !std::mem::take(&mut file.queued) || !knote.reg.enabled {
            return;
        }
        out.push(Event::from_parts(
            key.0,
            key.1,
            knote.reg.flags,
            0,
            file.data,
            knote.reg.udata,
        ));
        file.last = Some(file.data);
        match knote.reg.after() {
            After::Keep => {}
            After::Disable => knote.reg.enabled = false,
            After::Delete => {
                d.knote = None;
                self.files.retain(|&entry| entry != (fd, dir));
            }
        }
    }
}

impl Facts {
    /// EV_EOF, fflags and data of a read event; `None` when the
    /// descriptor is closed.
    fn read_state(&mut self, fd: RawFd, bits: u32) -> Option<(bool, u32, i64)> {
        // The peer shut down its writing side (EPOLLRDHUP) or everything
        // hung up, including a pipe whose last writer closed (EPOLLHUP).
        let eof = bits & (EPOLLRDHUP | EPOLLHUP) != 0;
        let data = self.readable(fd, bits)?;
        let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
        Some((eof, fflags, data))
    }

    /// EV_EOF, fflags and a `data` of 1 while readable: a read event of an
    /// uncounted kqueue, which costs no call unless the socket has failed.
    fn read_flags(&mut self, fd: RawFd, bits: u32) -> (bool, u32, i64) {
        let eof = bits & (EPOLLRDHUP | EPOLLHUP) != 0;
        let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
        (eof, fflags, i64::from(bits & EPOLLIN != 0))
    }

    /// EV_EOF, fflags and a `data` of 1 while writable: a write event of an
    /// uncounted kqueue. What the file is (socket or pipe, which flag EOF
    /// differently) is probed once, by the first event, counted.
    fn write_flags(&mut self, fd: RawFd, bits: u32) -> Option<(bool, u32, i64)> {
        let writable = i64::from(bits & EPOLLOUT != 0);
        match self.room {
            WriteRoom::Socket => {
                let eof = bits & EPOLLHUP != 0;
                let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
                Some((eof, fflags, writable))
            }
            WriteRoom::Pipe if bits & (EPOLLERR | EPOLLHUP) != 0 => Some((true, 0, 0)),
            WriteRoom::Pipe => Some((false, 0, writable)),
            WriteRoom::Unprobed | WriteRoom::Unknown => self
                .write_state(fd, bits)
                .map(|(eof, fflags, room)| (eof, fflags, room.min(writable))),
        }
    }

    fn readable(&mut self, fd: RawFd, bits: u32) -> Option<i64> {
        let fallback = i64::from(bits & EPOLLIN != 0);
        let count = match self.readable {
            ReadCount::Fionread => match os::ioctl_int(fd, libc::FIONREAD) {
                Ok(n) => i64::from(n),
                Err(Errno::EBADF) => return None,
                // Linux refuses FIONREAD on a listening socket (EINVAL).
                Err(_) => match tcp_backlog(fd).ok()? {
                    Some(backlog) => {
                        self.readable = ReadCount::TcpBacklog;
                        backlog
                    }
                    None => {
                        self.readable = ReadCount::Unknown;
                        fallback
                    }
                },
            },
            ReadCount::TcpBacklog => tcp_backlog(fd).ok()?.unwrap_or(fallback),
            ReadCount::Unknown => fallback,
        };
        Some(count)
    }

    /// The socket error for an EOF event. Reading SO_ERROR clears it on
    /// Linux (BSD keeps `so_error` until read), so it is read only when
    /// epoll flags an error, and kept for the events that follow; it
    /// travels in the event, and a later `getsockopt(SO_ERROR)` by the
    /// caller finds 0.
    fn socket_error(&mut self, fd: RawFd, bits: u32) -> u32 {
        if bits & EPOLLERR != 0 {
            match os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) | Err(_) => {}
                Ok(errno) => self.so_error = errno,
            }
        }
        self.so_error as u32
    }

    /// EV_EOF, fflags and data of a write event; `None` when the
    /// descriptor is closed.
    fn write_state(&mut self, fd: RawFd, bits: u32) -> Option<(bool, u32, i64)> {
        if matches!(self.room, WriteRoom::Unprobed | WriteRoom::Socket) {
            let sndbuf = os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF);
            if sndbuf == Err(Errno::EBADF) {
                return None;
            }
            if let Ok(sndbuf) = sndbuf {
                self.room = WriteRoom::Socket;
                // A socket hangs up for writing when the connection is
                // gone (reset, refused, both sides shut down). EPOLLERR
                // alone is an error a send will return (an ICMP error on
                // UDP), which BSD reports as ready without EOF.
                let eof = bits & EPOLLHUP != 0;
                // SIOCOUTQ is TIOCOUTQ's number on Linux: bytes not yet
                // sent or acknowledged.
                let queued = os::ioctl_int(fd, libc::TIOCOUTQ).unwrap_or(0);
                let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
                return Some((eof, fflags, i64::from(sndbuf.saturating_sub(queued).max(0))));
            }
            self.room = WriteRoom::Unprobed;
        }
        // A pipe's write end gets EPOLLERR when the last reader closed: BSD
        // reports that as EV_EOF with data 0.
        let eof = bits & (EPOLLERR | EPOLLHUP) != 0;
        if matches!(self.room, WriteRoom::Unprobed | WriteRoom::Pipe) {
            match os::fcntl(fd, libc::F_GETPIPE_SZ) {
                Ok(_) if eof => {
                    self.room = WriteRoom::Pipe;
                    return Some((true, 0, 0));
                }
                Ok(size) => {
                    self.room = WriteRoom::Pipe;
                    let used = os::ioctl_int(fd, libc::FIONREAD).unwrap_or(0);
                    return Some((false, 0, i64::from(size.saturating_sub(used).max(0))));
                }
                Err(Errno::EBADF) => return None,
                Err(_) => {}
            }
        }
        self.room = WriteRoom::Unknown;
        Some((eof, 0, 0))
    }
}

/// The accept queue of a listening TCP socket: Linux has no FIONREAD for
/// it, but TCP_INFO reports the queue length in `tcpi_unacked`. `Ok(None)`:
/// not a listening TCP socket; `Err`: the descriptor is closed.
fn tcp_backlog(fd: RawFd) -> Result<Option<i64>, Errno> {
    match os::tcp_info(fd) {
        Ok(info) => Ok((info.tcpi_state == TCP_LISTEN).then_some(i64::from(info.tcpi_unacked))),
        Err(Errno::EBADF) => Err(Errno::EBADF),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_map_to_epoll_flags() {
        assert_eq!(
            events(READ, Flags::NONE),
            EPOLLIN | EPOLLRDHUP | EPOLLONESHOT
        );
        assert_eq!(events(WRITE, Flags::NONE), EPOLLOUT | EPOLLONESHOT);
        assert_eq!(events(READ, Flags::CLEAR), EPOLLIN | EPOLLRDHUP | EPOLLET);
        assert_eq!(events(WRITE, Flags::ONESHOT), EPOLLOUT | EPOLLONESHOT);
        assert_eq!(
            events(WRITE, Flags::DISPATCH | Flags::CLEAR),
            EPOLLOUT | EPOLLONESHOT | EPOLLET
        );
    }

    #[test]
    fn tokens_carry_fd_and_generation() {
        let t = token(7, 3);
        assert_eq!(t as u32, 7);
        assert_eq!((t >> 32) as u32, 3);
        assert_eq!(token(i32::MAX, u32::MAX) as u32 as RawFd, i32::MAX);
    }
}
