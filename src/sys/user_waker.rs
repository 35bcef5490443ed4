//! [`Waker`] as an EVFILT_USER registration: on a kernel kqueue and on the
//! Linux compat, a trigger from any thread wakes a thread blocked in
//! `kevent` on the same kqueue.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::sys::{Change, Event, Flags, Kqueue, note};

/// Wakes a thread blocked in [`Kqueue::kevent`] from another thread.
///
/// Here it is the EVFILT_USER registration whose ident is the token (so it
/// takes that one EVFILT_USER ident of the kqueue), added with `EV_CLEAR`;
/// [`Waker::wake`] triggers it. Its event has filter EVFILT_USER and the
/// token.
#[derive(Debug)]
pub struct Waker {
    ident: usize,
    token: u64,
}

impl Waker {
    /// Registers a waker with `kq`; its events carry `token`.
    pub fn new(kq: &Kqueue, token: u64) -> io::Result<Waker> {
        let ident = token as usize;
        let add = Change::user(
            ident,
            Flags::ADD | Flags::CLEAR | Flags::RECEIPT,
            note::FFNOP,
        )
        .token(token);
        submit(kq, add)?;
        Ok(Waker { ident, token })
    }

    /// Makes a `kevent` call on `kq` blocked in another thread return (or
    /// the next one, if none is blocked) with the waker's event. Never
    /// blocks; `kq` must be the kqueue the waker was registered with.
    pub fn wake(&self, kq: &Kqueue) -> io::Result<()> {
        // A change replaces the registration's token: the trigger carries it.
        let trigger = Change::user(self.ident, Flags::RECEIPT, note::TRIGGER).token(self.token);
        submit(kq, trigger)
    }

    /// Re-arms the waker after its event was delivered. `EV_CLEAR` has
    /// done that already: nothing to do.
    pub fn reset(&self) {}

    /// Whether `fd` is one of the waker's own descriptors: it has none.
    pub fn owns(&self, _fd: RawFd) -> bool {
        false
    }
}

/// Submits one change with `EV_RECEIPT`. The receipt makes the call return
/// with it alone: without it, the call would collect pending events itself
/// and could swallow the very trigger meant for the blocked thread.
fn submit(kq: &Kqueue, change: Change) -> io::Result<()> {
    let mut receipt: Vec<Event> = Vec::with_capacity(1);
    kq.kevent(&[change], &mut receipt, Some(Duration::ZERO))?;
    match receipt.iter().find_map(Event::error) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
