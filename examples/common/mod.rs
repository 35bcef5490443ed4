//! What the example servers share: a self-pipe for SIGINT/SIGTERM, pushing
//! with reaping while the submission queue is full, and one-shot setup
//! operations.
#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use kqring::{Cqe, Ring, Sqe};

/// The write end of the self-pipe SIGINT and SIGTERM write to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; one byte from a static.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
}

/// A non-blocking pipe whose read end becomes readable on SIGINT/SIGTERM.
pub fn signal_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: fcntl with integer arguments on descriptors we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    SIGNAL_PIPE.store(w.as_raw_fd(), Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only makes an async-signal-safe
        // write.
        if unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) }
            == libc::SIG_ERR
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((r, w))
}

/// Pushes an entry, submitting and reaping into `backlog` while the queue
/// is full.
pub fn push(ring: &Ring, mut sqe: Sqe, backlog: &mut Vec<Cqe>) -> io::Result<()> {
    loop {
        match ring.submission().push(sqe) {
            Ok(()) => return Ok(()),
            Err(back) => {
                sqe = back;
                match ring.submission().submit() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                    Err(e) => return Err(e),
                }
                backlog.extend(ring.completion().drain());
            }
        }
    }
}

/// Runs one setup operation (its `user_data` already set) and checks its
/// result.
pub fn setup(ring: &Ring, sqe: Sqe, what: &str) -> io::Result<i32> {
    ring.submission()
        .push(sqe)
        .map_err(|_| io::Error::other("submission queue full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring.completion().wait()?;
    cqe.result()
        .map(|v| v as i32)
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}
