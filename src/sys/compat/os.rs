//! Thin, safe wrappers over the Linux calls the compat makes.
//!
//! Every `unsafe` of the compat that talks to the kernel lives here, one
//! small block per call. Failures come back as the raw errno, because that
//! is what a change's `EV_ERROR` event carries; the caller turns it into an
//! `io::Error` where one is needed.

use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libc::c_int;

pub(super) use crate::sys::errno::Errno;
use crate::sys::errno::{check, check_len};

/// Takes ownership of the descriptor a creating call returned.
fn owned(ret: c_int) -> Result<OwnedFd, Errno> {
    let fd = check(ret)?;
    // SAFETY: `fd` was just returned by the kernel to this thread and no
    // other owner exists.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A new epoll instance, close-on-exec.
pub(super) fn epoll_create() -> Result<OwnedFd, Errno> {
    // SAFETY: epoll_create1 takes an integer flag and returns a new fd or -1.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })
}

/// `epoll_ctl(ep, op, fd, {events, data})`.
pub(super) fn epoll_ctl(
    ep: RawFd,
    op: c_int,
    fd: RawFd,
    events: u32,
    data: u64,
) -> Result<(), Errno> {
    let mut event = libc::epoll_event { events, u64: data };
    // SAFETY: `event` is a valid, writable epoll_event for the duration of
    // the call (the kernel only reads it, and ignores it for DEL).
    check(unsafe { libc::epoll_ctl(ep, op, fd, &mut event) }).map(drop)
}

/// `epoll_wait` into `buf`; returns how many entries the kernel filled.
/// `buf` must not be empty.
pub(super) fn epoll_wait(
    ep: RawFd,
    buf: &mut [libc::epoll_event],
    timeout_ms: c_int,
) -> Result<usize, Errno> {
    let max = buf.len().min(c_int::MAX as usize) as c_int;
    // SAFETY: `buf` has room for `max` entries; the kernel writes at most
    // that many.
    let n = check(unsafe { libc::epoll_wait(ep, buf.as_mut_ptr(), max, timeout_ms) })?;
    Ok(n as usize)
}

/// A non-blocking, close-on-exec eventfd starting at 0.
pub(super) fn eventfd() -> Result<OwnedFd, Errno> {
    // SAFETY: eventfd takes integers and returns a new fd or -1.
    owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })
}

/// A non-blocking, close-on-exec CLOCK_MONOTONIC timerfd.
pub(super) fn timerfd() -> Result<OwnedFd, Errno> {
    // SAFETY: timerfd_create takes integers and returns a new fd or -1.
    owned(unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_CLOEXEC | libc::TFD_NONBLOCK,
        )
    })
}

/// Arms (or, with a zero `value`, disarms) a timerfd, relative to now.
pub(super) fn timerfd_settime(
    fd: RawFd,
    value: libc::timespec,
    interval: libc::timespec,
) -> Result<(), Errno> {
    let spec = libc::itimerspec {
        it_interval: interval,
        it_value: value,
    };
    // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is
    // allowed.
    check(unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) }).map(drop)
}

/// A pidfd for `pid` (close-on-exec by definition).
pub(super) fn pidfd_open(pid: libc::pid_t) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    owned(c_int::try_from(ret).unwrap_or(-1))
}

/// `waitid(P_PIDFD, fd, WEXITED | WNOWAIT | WNOHANG)`: the exit of the
/// process behind `fd`, without reaping it. `Ok(None)`: not exited yet.
/// The result is `(si_code, si_status)`.
pub(super) fn waitid_pidfd(fd: RawFd) -> Result<Option<(c_int, c_int)>, Errno> {
    let mut info = MaybeUninit::<libc::siginfo_t>::zeroed();
    // SAFETY: `info` points at writable storage for one siginfo_t; the id is
    // our own pidfd.
    check(unsafe {
        libc::waitid(
            libc::P_PIDFD,
            fd as libc::id_t,
            info.as_mut_ptr(),
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        )
    })?;
    // SAFETY: zero-initialised and then filled in by the kernel; siginfo_t
    // is plain data, so every bit pattern is valid.
    let info = unsafe { info.assume_init() };
    // SAFETY: for WEXITED results the kernel fills the SIGCHLD fields, and
    // with WNOHANG and no child ready it zeroes si_pid, which is how
    // "nothing yet" is told apart.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    Ok((pid != 0).then_some((info.si_code, status)))
}

/// A non-blocking, close-on-exec signalfd for `set`.
pub(super) fn signalfd(set: &libc::sigset_t) -> Result<OwnedFd, Errno> {
    // SAFETY: `set` is a valid sigset_t; -1 asks for a new fd.
    owned(unsafe { libc::signalfd(-1, set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })
}

/// A sigset holding only `signal` (which must be in 1..=SIGRTMAX).
pub(super) fn sigset_of(signal: c_int) -> Result<libc::sigset_t, Errno> {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given.
    check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
    // SAFETY: the set was initialised just above.
    check(unsafe { libc::sigaddset(set.as_mut_ptr(), signal) })?;
    // SAFETY: initialised by sigemptyset and sigaddset.
    Ok(unsafe { set.assume_init() })
}

/// Blocks the signals of `set` in the calling thread.
pub(super) fn block_signals(set: &libc::sigset_t) -> Result<(), Errno> {
    // SAFETY: `set` is valid; a null old-set pointer is allowed.
    let ret = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::new(ret))
    }
}

/// A non-blocking, close-on-exec inotify instance.
pub(super) fn inotify_init() -> Result<OwnedFd, Errno> {
    // SAFETY: inotify_init1 takes flags and returns a new fd or -1.
    owned(unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) })
}

/// Watches the file open at `fd` through its `/proc/self/fd/N` link.
pub(super) fn inotify_watch_fd(ino: RawFd, fd: RawFd, mask: u32) -> Result<c_int, Errno> {
    let path = proc_fd_path(fd);
    // SAFETY: `path` is NUL-terminated and lives for the call.
    check(unsafe { libc::inotify_add_watch(ino, path.as_ptr().cast(), mask) })
}

/// Removes a watch (an already-gone watch is not an error worth reporting).
pub(super) fn inotify_rm_watch(ino: RawFd, wd: c_int) {
    // SAFETY: integer arguments only.
    unsafe { libc::inotify_rm_watch(ino, wd) };
}

/// `/proc/self/fd/<fd>\0` without allocating.
fn proc_fd_path(fd: RawFd) -> [u8; 32] {
    let mut path = [0u8; 32];
    let prefix = b"/proc/self/fd/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, d) in digits[..len].iter().rev().enumerate() {
        path[prefix.len() + i] = *d;
    }
    path
}

/// Reads an 8-byte counter (eventfd, timerfd). `EAGAIN` when it is zero.
pub(super) fn read_u64(fd: RawFd) -> Result<u64, Errno> {
    let mut value = 0u64;
    // SAFETY: at most 8 bytes are written into `value`.
    let n = check_len(unsafe { libc::read(fd, (&raw mut value).cast(), 8) })?;
    if n == 8 { Ok(value) } else { Err(Errno::EIO) }
}

/// Adds to an eventfd counter.
pub(super) fn write_u64(fd: RawFd, value: u64) -> Result<(), Errno> {
    // SAFETY: 8 bytes are read from `value`.
    check_len(unsafe { libc::write(fd, (&raw const value).cast(), 8) }).map(drop)
}

/// Reads into `buf`.
pub(super) fn read(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for its whole length.
    check_len(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// Reads every signal queued for a signalfd; returns how many there were.
pub(super) fn drain_signalfd(fd: RawFd) -> u64 {
    const CHUNK: usize = 16;
    let record = std::mem::size_of::<libc::signalfd_siginfo>();
    let mut buf = MaybeUninit::<[libc::signalfd_siginfo; CHUNK]>::uninit();
    let mut total = 0u64;
    loop {
        // SAFETY: `buf` is writable for CHUNK records; the kernel writes
        // whole records and nothing here reads them.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), CHUNK * record) };
        if n <= 0 {
            return total;
        }
        let records = n as usize / record;
        total += records as u64;
        if records < CHUNK {
            return total;
        }
    }
}

/// An `ioctl` that reports an `int` (FIONREAD, SIOCOUTQ).
pub(super) fn ioctl_int(fd: RawFd, request: libc::Ioctl) -> Result<c_int, Errno> {
    let mut value: c_int = 0;
    // SAFETY: both requests write one int through the pointer.
    check(unsafe { libc::ioctl(fd, request, &raw mut value) })?;
    Ok(value)
}

/// An `int` socket option.
pub(super) fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> Result<c_int, Errno> {
    let mut value: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` says how big
    // `value` is.
    check(unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) })?;
    Ok(value)
}

/// `TCP_INFO` of a TCP socket.
pub(super) fn tcp_info(fd: RawFd) -> Result<libc::tcp_info, Errno> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    // SAFETY: zero-initialised, then (partly) filled by the kernel; the
    // struct is plain integers.
    Ok(unsafe { info.assume_init() })
}

/// `fcntl(fd, cmd)` for commands that take no argument and return an int.
pub(super) fn fcntl(fd: RawFd, cmd: c_int) -> Result<c_int, Errno> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::fcntl(fd, cmd) })
}

/// Whether `fd` is an open descriptor of this process.
pub(super) fn is_open(fd: RawFd) -> bool {
    fcntl(fd, libc::F_GETFD).is_ok()
}

/// `fstat(fd)`.
pub(super) fn fstat(fd: RawFd) -> Result<libc::stat, Errno> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable storage for one stat.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it filled `st`.
    Ok(unsafe { st.assume_init() })
}

/// The file offset of `fd`.
pub(super) fn offset(fd: RawFd) -> Result<i64, Errno> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fd_paths() {
        let p = proc_fd_path(0);
        assert_eq!(&p[..16], b"/proc/self/fd/0\0");
        let p = proc_fd_path(1234567);
        assert_eq!(&p[..22], b"/proc/self/fd/1234567\0");
        let p = proc_fd_path(i32::MAX);
        assert_eq!(&p[..25], b"/proc/self/fd/2147483647\0");
    }

    #[test]
    fn closed_descriptors() {
        assert!(!is_open(-1));
        assert_eq!(fstat(-1).err(), Some(Errno::EBADF));
        assert_eq!(read_u64(-1).err(), Some(Errno::EBADF));
    }
}
