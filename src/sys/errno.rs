//! The one error convention below the driver: a positive errno.
//!
//! Every syscall wrapper in `sys` returns `Result<T, Errno>`. The sign
//! flips once, where a completion's `res` is made ([`Errno::res`]).

use std::fmt;
use std::io;

/// An errno value as the OS reports it (positive).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Errno(i32);

// Each backend uses its own subset of these.
#[allow(dead_code)]
impl Errno {
    pub(crate) const EBADF: Errno = Errno(libc::EBADF);
    pub(crate) const EEXIST: Errno = Errno(libc::EEXIST);
    pub(crate) const EINPROGRESS: Errno = Errno(libc::EINPROGRESS);
    pub(crate) const EALREADY: Errno = Errno(libc::EALREADY);
    pub(crate) const EINTR: Errno = Errno(libc::EINTR);
    pub(crate) const EINVAL: Errno = Errno(libc::EINVAL);
    pub(crate) const EIO: Errno = Errno(libc::EIO);
    pub(crate) const ENOENT: Errno = Errno(libc::ENOENT);
    pub(crate) const ENOTCONN: Errno = Errno(libc::ENOTCONN);
    pub(crate) const ENOTSOCK: Errno = Errno(libc::ENOTSOCK);
    pub(crate) const ECONNABORTED: Errno = Errno(libc::ECONNABORTED);
    pub(crate) const EPERM: Errno = Errno(libc::EPERM);
    pub(crate) const ESRCH: Errno = Errno(libc::ESRCH);
    pub(crate) const ESPIPE: Errno = Errno(libc::ESPIPE);
    pub(crate) const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    pub(crate) const ENOSYS: Errno = Errno(libc::ENOSYS);
}

impl Errno {
    /// The errno `raw` (positive, as `errno` holds it).
    pub(crate) const fn new(raw: i32) -> Errno {
        Errno(raw)
    }

    /// The calling thread's errno, after a call that failed.
    pub(crate) fn last() -> Errno {
        Errno(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }

    /// The positive value.
    pub(crate) const fn raw(self) -> i32 {
        self.0
    }

    /// The completion result that reports it: `-errno`.
    pub(crate) const fn res(self) -> i32 {
        -self.0
    }

    /// Whether it means "not ready: try again after readiness".
    pub(crate) fn would_block(self) -> bool {
        self.0 == libc::EAGAIN || self.0 == libc::EWOULDBLOCK
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Errno({}: {})",
            self.0,
            io::Error::from_raw_os_error(self.0)
        )
    }
}

impl From<Errno> for io::Error {
    fn from(e: Errno) -> io::Error {
        io::Error::from_raw_os_error(e.raw())
    }
}

/// A syscall's return value: negative means it failed and `errno` says
/// why.
pub(crate) fn check<T: Into<i64> + Copy>(ret: T) -> Result<T, Errno> {
    if ret.into() < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// [`check`] for calls that return a count (`ssize_t`).
pub(crate) fn check_len(ret: isize) -> Result<usize, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret as usize)
    }
}

/// Retries `f` while it fails with EINTR.
pub(crate) fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sign_flips_only_for_a_result() {
        assert_eq!(Errno::EBADF.raw(), libc::EBADF);
        assert_eq!(Errno::EBADF.res(), -libc::EBADF);
        assert!(Errno::new(libc::EAGAIN).would_block() && !Errno::EINTR.would_block());
        // SAFETY: close of a descriptor that is never open has no effect.
        let r = check(unsafe { libc::close(-1) });
        assert_eq!(r, Err(Errno::EBADF));
        assert_eq!(
            io::Error::from(Errno::ENOENT).raw_os_error(),
            Some(libc::ENOENT)
        );
        let mut tries = 0;
        let r = retry(|| {
            tries += 1;
            if tries < 3 { Err(Errno::EINTR) } else { Ok(7) }
        });
        assert_eq!((r, tries), (Ok(7), 3));
    }
}
