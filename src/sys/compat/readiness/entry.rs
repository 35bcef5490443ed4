//! The epoll entries: how a kqueue registration's mode becomes an
//! epoll entry of its direction.
//!
//! | kqueue | epoll entry |
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
//! kqueue's would have been at close().
//!
//! After an `EV_ONESHOT` (or `EV_DISPATCH`) event the entry stays in the
//! epoll of its direction, disarmed by `EPOLLONESHOT` ("parked"), so the
//! next `EV_ADD` (or `EV_ENABLE`) is one `EPOLL_CTL_MOD`: the driver's hot
//! path costs one syscall per registration.
//!
//! An entry we believe in may be gone, or its number may name another
//! file: `EPOLL_CTL_MOD` then fails with ENOENT, and an `EV_ADD` falls back
//! to `EPOLL_CTL_ADD` (an `EPOLL_CTL_ADD` that finds an entry, EEXIST,
//! falls back to `EPOLL_CTL_MOD`), so re-adding always works. Each entry's
//! token carries a generation besides the descriptor, so an event of an
//! entry epoll kept alive through a `dup` is never reported as the event of
//! a newer registration on the same number.

use std::os::fd::RawFd;

use super::READ;
use crate::sys::Flags;
use crate::sys::compat::os::{self, Errno};

pub(super) const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub(super) const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub(super) const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub(super) const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
pub(super) const EPOLLERR: u32 = libc::EPOLLERR as u32;
const EPOLLET: u32 = libc::EPOLLET as u32;
const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;

/// What the epoll of a direction holds for one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Entry {
    /// Nothing.
    #[default]
    Out,
    /// An entry that reports.
    Armed,
    /// An entry disarmed by `EPOLLONESHOT` after its event.
    Parked,
}

/// Whether a registration is level-triggered (re-armed after each event).
pub(super) fn level(flags: Flags) -> bool {
    !flags.intersects(Flags::ONESHOT | Flags::DISPATCH | Flags::CLEAR)
}

/// The epoll events of a registration.
pub(super) fn events(dir: usize, flags: Flags) -> u32 {
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

pub(super) fn token(fd: RawFd, generation: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(fd as u32)
}

/// The generation after `generation`: never 0, so that a token stays
/// above the main epoll's own (`TOKEN_SOURCES`, `TOKEN_WRITE`).
pub(super) fn next_generation(generation: u32) -> u32 {
    generation.wrapping_add(1).max(1)
}

/// Errors after which kqueue would no longer have the registration: the
/// descriptor was closed, or its number now names another file.
pub(super) fn gone(errno: Errno) -> bool {
    errno == Errno::EBADF || errno == Errno::ENOENT
}

/// Makes the epoll `ep` report `fd` with `events`. `adding`: this is
/// an `EV_ADD`, which must also work when the number now names another
/// file. Every new entry gets a new generation, so that the events of an
/// entry epoll keeps for a closed number (through a `dup`) never carry the
/// token of the new one. Returns whether a new entry was made (the file may
/// be new).
pub(super) fn arm(
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
    *generation = next_generation(*generation);
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

/// Takes `fd` out of the epoll `ep`; for a registration with no entry,
/// only checks that the descriptor is still open.
pub(super) fn disarm(ep: RawFd, entry: &mut Entry, fd: RawFd) -> Result<(), Errno> {
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

#[cfg(test)]
mod tests {
    use super::super::WRITE;
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
