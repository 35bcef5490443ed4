//! EVFILT_PROC (`NOTE_EXIT`) over one pidfd per process.
//!
//! `pidfd_open` fails with ESRCH for a process that does not exist, as
//! kqueue's attach does; a zombie still exists, so an exit that happened
//! before the registration is reported at once (kqueue's `zpfind`). The
//! pidfd becomes readable when the process exits. The wait status comes
//! from `waitid(P_PIDFD, …, WEXITED | WNOWAIT)`, which leaves the child a
//! zombie: the caller reaps it, exactly as with kqueue. Only a parent can
//! wait: for a process that is not our child (or already reaped, or
//! auto-reaped with SIGCHLD ignored) the exit is reported with `data` 0.
//!
//! As kqueue does on exit, the event carries `EV_EOF | EV_ONESHOT` (and
//! `EV_CLEAR`, which filt_procattach sets) and the registration is deleted
//! after it; `fflags` is `NOTE_EXIT`. A registration that did not ask for
//! `NOTE_EXIT` is dropped silently at exit (FreeBSD's `EV_DROP`). The other
//! notes (`NOTE_FORK`, `NOTE_EXEC`, `NOTE_TRACK`) have no Linux source and
//! never fire.

use std::os::fd::OwnedFd;

use super::filter::{Ops, Report, Shared, Source, Watched};
use super::os::{self, Errno};
use super::{Key, Registration};
use crate::sys::{Change, Filter, Flags, note};

/// EVFILT_PROC in the registry.
pub(super) const OPS: Ops = Ops::of::<Proc>(Filter::PROC, false);

/// Opens a pidfd for the process `ident`.
fn open(ident: usize) -> Result<OwnedFd, Errno> {
    let pid = libc::pid_t::try_from(ident)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or(Errno::ESRCH)?;
    os::pidfd_open(pid)
}

/// The pidfd of one EVFILT_PROC registration.
#[derive(Debug)]
pub(super) struct Proc {
    watched: Watched,
}

impl Proc {
    /// The wait status once the process has exited; `None` before.
    fn exit_status(&self) -> Option<i64> {
        match os::waitid_pidfd(self.watched.raw()) {
            Ok(Some((code, status))) => Some(wait_status(code, status)),
            Ok(None) => None,
            // ECHILD: not our child (or reaped already). The pidfd being
            // readable is the proof of exit; the status is unknown.
            Err(_) => Some(0),
        }
    }
}

impl Source for Proc {
    fn attach(shared: &mut Shared, key: Key, change: &Change) -> Result<Proc, Errno> {
        Ok(Proc {
            watched: shared.watch(open(change.ident())?, key),
        })
    }

    /// kqueue sets EV_CLEAR on process registrations (filt_procattach), and
    /// marks an exit EV_EOF | EV_ONESHOT.
    fn report(&mut self, reg: &Registration) -> Report {
        match self.exit_status() {
            None => Report::Nothing,
            // Nobody asked for the exit: FreeBSD drops the knote silently.
            Some(_) if reg.fflags & note::EXIT == 0 => Report::Drop,
            Some(status) => Report::Event {
                flags: Flags::CLEAR | Flags::EOF | Flags::ONESHOT,
                fflags: note::EXIT,
                data: status,
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

/// The status `wait(2)` would return, from waitid's `si_code`/`si_status`:
/// the exit code in the second byte, or the signal number with 0x80 for a
/// core dump.
fn wait_status(code: libc::c_int, status: libc::c_int) -> i64 {
    let status = match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_KILLED => status & 0x7f,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => 0,
    };
    i64::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_wait() {
        assert_eq!(wait_status(libc::CLD_EXITED, 3), 3 << 8);
        assert!(libc::WIFEXITED(wait_status(libc::CLD_EXITED, 3) as i32));
        assert_eq!(
            libc::WEXITSTATUS(wait_status(libc::CLD_EXITED, 3) as i32),
            3
        );
        assert_eq!(wait_status(libc::CLD_KILLED, libc::SIGKILL), 9);
        assert_eq!(libc::WTERMSIG(wait_status(libc::CLD_KILLED, 9) as i32), 9);
        let dumped = wait_status(libc::CLD_DUMPED, libc::SIGSEGV) as i32;
        assert!(libc::WCOREDUMP(dumped) && libc::WTERMSIG(dumped) == libc::SIGSEGV);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no pidfd_open")]
    fn nonexistent_pids() {
        assert_eq!(open(0).err(), Some(Errno::ESRCH));
        assert_eq!(open(usize::MAX).err(), Some(Errno::ESRCH));
        // pid_max is at most 2^22.
        assert_eq!(open(1 << 30).err(), Some(Errno::ESRCH));
    }
}
