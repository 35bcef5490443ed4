//! The process calls the event operations make: `waitid`, and the
//! process-wide disposition of a signal that `Signal` operations listen
//! for.
//!
//! A kqueue's EVFILT_SIGNAL records a delivery attempt and leaves the
//! signal to its disposition: with the default action of most signals
//! (terminate) the process would die before anyone saw the event. So the
//! first claim of such a signal sets it to ignored (kqueue still records
//! ignored signals), and the last claim released puts the old action
//! back. A signal whose action is not the default one (a handler, or
//! ignored already), or whose default action is to ignore it (`SIGCHLD`,
//! `SIGURG`, `SIGWINCH`, and `SIGCONT`, which only continues), is left as
//! it is: setting `SIGCHLD` to ignored would make children reap
//! themselves.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::Mutex;

use super::errno::{Errno, check};

/// What `waitid` reports of a child, as `siginfo_t` carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChildInfo {
    /// `SIGCHLD` when a child was reported, 0 when none (`WNOHANG`).
    pub(crate) signo: i32,
    /// `CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`, `CLD_STOPPED`…
    pub(crate) code: i32,
    pub(crate) pid: libc::pid_t,
    pub(crate) uid: libc::uid_t,
    /// The exit code, or the signal number.
    pub(crate) status: i32,
}

/// `waitid(idtype, id, options)`: the child reported, or `signo` 0 when
/// `WNOHANG` found none.
pub(crate) fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    options: libc::c_int,
) -> Result<ChildInfo, Errno> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `info` is a writable siginfo_t; waitid fills it or leaves it
    // zeroed (WNOHANG with no child to report).
    super::errno::retry(|| check(unsafe { libc::waitid(idtype, id, info.as_mut_ptr(), options) }))?;
    // SAFETY: zero-initialised, then possibly filled by waitid.
    let info = unsafe { info.assume_init() };
    // SAFETY: for a child's state change (or a zeroed struct) these are
    // the fields waitid sets.
    let (pid, uid, status) = unsafe { (info.si_pid(), info.si_uid(), info.si_status()) };
    Ok(ChildInfo {
        signo: info.si_signo,
        code: si_code(&info),
        pid,
        uid,
        status,
    })
}

#[cfg(not(any(target_os = "netbsd", target_os = "openbsd")))]
fn si_code(info: &libc::siginfo_t) -> i32 {
    info.si_code
}

#[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
fn si_code(info: &libc::siginfo_t) -> i32 {
    // SAFETY: reads the code of a siginfo waitid filled (or zeroed).
    unsafe { info.si_code() }
}

/// Signals whose default action is to ignore them (or only to continue
/// the process): a claim leaves them as they are.
fn default_is_harmless(signal: i32) -> bool {
    #[cfg(not(target_os = "linux"))]
    if signal == libc::SIGINFO {
        return true;
    }
    [libc::SIGCHLD, libc::SIGURG, libc::SIGWINCH, libc::SIGCONT].contains(&signal)
}

/// The action of `signal` now.
fn action(signal: i32) -> Result<libc::sigaction, Errno> {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only reads the current one into `old`.
    check(unsafe { libc::sigaction(signal, std::ptr::null(), old.as_mut_ptr()) })?;
    // SAFETY: filled by sigaction.
    Ok(unsafe { old.assume_init() })
}

fn set_action(signal: i32, act: &libc::sigaction) -> Result<(), Errno> {
    // SAFETY: `act` is a valid action; the old one is not asked for.
    check(unsafe { libc::sigaction(signal, act, std::ptr::null_mut()) }).map(drop)
}

/// One signal's claims: how many, and the action the first replaced.
struct Claims {
    count: usize,
    replaced: Option<libc::sigaction>,
}

// SAFETY: a `sigaction` is plain data (a handler address used only as a
// value, a mask, flags); it is only handed back to sigaction(2).
unsafe impl Send for Claims {}

static CLAIMS: Mutex<Option<HashMap<i32, Claims>>> = Mutex::new(None);

/// A claim on a signal's disposition, held by a `Signal` operation for as
/// long as it listens; the last one dropped restores what the first
/// changed.
#[derive(Debug)]
pub(crate) struct SignalClaim {
    signal: i32,
}

impl SignalClaim {
    /// Claims `signal`: EINVAL for one that can't be caught (`SIGKILL`,
    /// `SIGSTOP`) or is out of range.
    pub(crate) fn new(signal: i32) -> Result<SignalClaim, Errno> {
        if signal <= 0 || signal == libc::SIGKILL || signal == libc::SIGSTOP {
            return Err(Errno::EINVAL);
        }
        let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        let claims = claims.get_or_insert_with(HashMap::new);
        if let Some(c) = claims.get_mut(&signal) {
            c.count += 1;
            return Ok(SignalClaim { signal });
        }
        let old = action(signal)?;
        let replaced = if old.sa_sigaction == libc::SIG_DFL && !default_is_harmless(signal) {
            let mut ignore = old;
            ignore.sa_sigaction = libc::SIG_IGN;
            set_action(signal, &ignore)?;
            Some(old)
        } else {
            None
        };
        claims.insert(signal, Claims { count: 1, replaced });
        Ok(SignalClaim { signal })
    }
}

impl Drop for SignalClaim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(map) = claims.as_mut() else { return };
        let Some(c) = map.get_mut(&self.signal) else {
            return;
        };
        c.count -= 1;
        if c.count > 0 {
            return;
        }
        let replaced = map.remove(&self.signal).and_then(|c| c.replaced);
        // Put the old action back only if the signal is still ignored as
        // the claim left it: the program may have set its own meanwhile.
        if let Some(old) = replaced
            && action(self.signal).is_ok_and(|now| now.sa_sigaction == libc::SIG_IGN)
        {
            let _ = set_action(self.signal, &old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncatchable_signals_are_refused() {
        for s in [0, -1, libc::SIGKILL, libc::SIGSTOP] {
            assert_eq!(SignalClaim::new(s).err(), Some(Errno::EINVAL), "{s}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no waitid")]
    fn no_child_is_echild_and_bad_options_einval() {
        // The test process has no child with this pid (pid 1 is init).
        assert_eq!(
            waitid(libc::P_PID, 1, libc::WEXITED | libc::WNOHANG).err(),
            Some(Errno::new(libc::ECHILD))
        );
        assert_eq!(waitid(libc::P_PID, 1, 0).err(), Some(Errno::EINVAL));
    }
}
