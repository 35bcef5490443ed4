//! EVFILT_SIGNAL over one signalfd per signal.
//!
//! A signalfd only sees signals that are blocked: an unblocked signal is
//! delivered to a thread (its handler or default action) before any
//! signalfd can read it. So adding the registration blocks the signal in
//! the calling thread; the caller must block it in every other thread too,
//! because a process-directed signal goes to any thread that does not block
//! it. A signal directed at one thread (`pthread_kill`, `raise`) is seen
//! only by a `kevent` call made in that thread. Deleting the registration
//! leaves the mask alone: the caller may have blocked the signal for its own
//! reasons, and unblocking a pending signal could kill the process.
//!
//! Reading the signalfd consumes the signals, where kqueue only counts them
//! and still delivers them. `data` is the number read since the last event:
//! standard signals merge while pending (several sends may count as one),
//! real-time signals queue and count exactly. kqueue counts only the
//! deliveries made while the registration exists, so a signal already
//! pending when it is added is consumed without being counted.

use std::os::fd::{AsRawFd, OwnedFd};

use super::filter::{Ops, Report, Shared, Source, Watched};
use super::os::{self, Errno};
use super::{Key, Registration};
use crate::sys::{Change, Filter, Flags};

/// EVFILT_SIGNAL in the registry.
pub(super) const OPS: Ops = Ops::of::<Signal>(Filter::SIGNAL, false);

/// Blocks `ident` in the calling thread and opens a signalfd for it.
/// EINVAL outside 1..=SIGRTMAX, as FreeBSD's filt_sigattach.
fn open(ident: usize) -> Result<OwnedFd, Errno> {
    let signal = libc::c_int::try_from(ident)
        .ok()
        .filter(|s| (1..=libc::SIGRTMAX()).contains(s))
        .ok_or(Errno::EINVAL)?;
    let set = os::sigset_of(signal)?;
    os::block_signals(&set)?;
    let fd = os::signalfd(&set)?;
    // kqueue counts the deliveries made while the registration exists; one
    // already pending was sent before, so it is consumed uncounted.
    os::drain_signalfd(fd.as_raw_fd());
    Ok(fd)
}

/// The signalfd of one EVFILT_SIGNAL registration.
#[derive(Debug)]
pub(super) struct Signal {
    watched: Watched,
}

impl Source for Signal {
    fn attach(shared: &mut Shared, key: Key, change: &Change) -> Result<Signal, Errno> {
        Ok(Signal {
            watched: shared.watch(open(change.ident())?, key),
        })
    }

    /// The signals received since the last event (consumed); kqueue sets
    /// EV_CLEAR on signal registrations itself (filt_sigattach).
    fn report(&mut self, _: &Registration) -> Report {
        match os::drain_signalfd(self.watched.raw()) {
            0 => Report::Nothing,
            n => Report::Event {
                flags: Flags::CLEAR,
                fflags: 0,
                data: i64::try_from(n).unwrap_or(i64::MAX),
            },
        }
    }

    fn detach(self: Box<Self>, shared: &mut Shared, _: Key, _: bool) {
        shared.disown(&self.watched);
    }

    fn watched(&mut self) -> Option<&mut Watched> {
        Some(&mut self.watched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_signals() {
        assert_eq!(open(0).err(), Some(Errno::EINVAL));
        assert_eq!(open(65).err(), Some(Errno::EINVAL));
        assert_eq!(open(usize::MAX).err(), Some(Errno::EINVAL));
    }
}
