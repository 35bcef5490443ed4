//! The syscalls operations make, as safe functions over raw parts.
//!
//! Every function returns `Ok(n)` or `Err(Errno)`, the shape a
//! completion's `res` is built from. They never change a descriptor's
//! status flags: "would block" comes from per-call flags (`MSG_DONTWAIT`)
//! or from checking `O_NONBLOCK`, so kqring leaves no state behind on a
//! descriptor it was lent.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use super::errno::{Errno, check_len as check};

/// `Ok(bytes or value)` or `Err(errno)`.
pub(crate) type SysResult = Result<usize, Errno>;

fn check_int(ret: libc::c_int) -> SysResult {
    check(ret as isize)
}

/// Flags for every send: never raise SIGPIPE (the error comes back as
/// EPIPE in the completion instead). Every kqueue platform and Linux has
/// `MSG_NOSIGNAL`.
const SEND_NOSIGNAL: libc::c_int = libc::MSG_NOSIGNAL;

/// What a descriptor is, as far as choosing how to run I/O on it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// A socket: per-call `MSG_DONTWAIT` makes any call non-blocking.
    Socket,
    /// A pipe, FIFO, character device or typeless descriptor (eventfd,
    /// timerfd…) with `O_NONBLOCK` set: try it, wait for readiness on
    /// EAGAIN.
    NonBlockingStream,
    /// One of those in blocking mode: a call could block the poller, so it
    /// waits for readiness in the driver, then runs on the blocking pool.
    BlockingStream,
    /// A regular file, block device or directory: never "not ready", so it
    /// runs on the blocking pool.
    File,
}

/// Classifies `fd` (one `fstat`, plus `fcntl` for streams).
pub(crate) fn classify(fd: RawFd) -> Result<FdKind, Errno> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `struct stat` into the pointer it is given,
    // which addresses enough space for one.
    check_int(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    let mode = unsafe { st.assume_init() }.st_mode & libc::S_IFMT;
    Ok(match mode {
        libc::S_IFSOCK => FdKind::Socket,
        libc::S_IFREG | libc::S_IFBLK | libc::S_IFDIR => FdKind::File,
        // A pipe, FIFO, character device, or a descriptor with no file
        // type at all (an eventfd, timerfd, inotify, epoll or kqueue
        // descriptor): it has no position, and can wait.
        _ => {
            // SAFETY: F_GETFL takes no pointer argument.
            let fl = check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
            if fl as libc::c_int & libc::O_NONBLOCK != 0 {
                FdKind::NonBlockingStream
            } else {
                FdKind::BlockingStream
            }
        }
    })
}

/// Whether `fd` is open for reading (`write` false) or for writing.
pub(crate) fn open_for(fd: RawFd, write: bool) -> Result<bool, Errno> {
    // SAFETY: F_GETFL takes no pointer argument.
    let fl = check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })? as libc::c_int;
    let refused = if write {
        libc::O_RDONLY
    } else {
        libc::O_WRONLY
    };
    Ok(fl & libc::O_ACCMODE != refused)
}

/// `Ok` if `fd` is an open descriptor, else `EBADF`.
pub(crate) fn check_open(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: F_GETFD takes no pointer argument.
    check_int(unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(drop)
}

/// Whether `fd` reads as one stream of bytes: a stream socket, a pipe or a
/// FIFO. There a read that returns less than it asked for has emptied the
/// descriptor; a datagram socket's short read says nothing about the next
/// datagram, nor does a terminal's about the next line.
pub(crate) fn is_byte_stream(fd: RawFd) -> bool {
    match super::net::socket_type(fd) {
        Ok(ty) => ty == libc::SOCK_STREAM,
        Err(Errno::ENOTSOCK) => {
            let mut st = MaybeUninit::<libc::stat>::uninit();
            // SAFETY: as in `classify`.
            if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
                return false;
            }
            // SAFETY: fstat succeeded, so it initialised `st`.
            unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFIFO
        }
        Err(_) => false,
    }
}

/// `recv(fd, buf, MSG_DONTWAIT | flags)` into uninitialised memory.
pub(crate) fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>], flags: libc::c_int) -> SysResult {
    // SAFETY: the pointer and length describe writable memory we own for
    // the call; the kernel writes at most `buf.len()` bytes into it.
    check(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), flags) })
}

/// `send(fd, buf, MSG_NOSIGNAL | flags)`.
pub(crate) fn send(fd: RawFd, buf: &[u8], flags: libc::c_int) -> SysResult {
    // SAFETY: the pointer and length describe readable memory for the call.
    check(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags | SEND_NOSIGNAL) })
}

/// `read` at the current position, or `pread` at `offset`.
pub(crate) fn read(fd: RawFd, buf: &mut [MaybeUninit<u8>], offset: Option<u64>) -> SysResult {
    let (ptr, len) = (buf.as_mut_ptr().cast(), buf.len());
    // SAFETY: `ptr`/`len` describe writable memory we own for the call.
    check(unsafe {
        match offset {
            None => libc::read(fd, ptr, len),
            Some(off) => libc::pread(fd, ptr, len, off as libc::off_t),
        }
    })
}

/// `write` at the current position, or `pwrite` at `offset`.
pub(crate) fn write(fd: RawFd, buf: &[u8], offset: Option<u64>) -> SysResult {
    let (ptr, len) = (buf.as_ptr().cast(), buf.len());
    // SAFETY: `ptr`/`len` describe readable memory for the call.
    check(unsafe {
        match offset {
            None => libc::write(fd, ptr, len),
            Some(off) => libc::pwrite(fd, ptr, len, off as libc::off_t),
        }
    })
}

/// The iovec list of a vectored call; built by the caller from buffers it
/// owns and keeps alive across the call.
pub(crate) type IoVecs = [libc::iovec];

fn iov_count(iov: &IoVecs) -> libc::c_int {
    iov.len().min(libc::c_int::MAX as usize) as libc::c_int
}

/// `readv`/`preadv`.
pub(crate) fn readv(fd: RawFd, iov: &IoVecs, offset: Option<u64>) -> SysResult {
    // SAFETY: every iovec addresses writable memory the caller owns and
    // keeps alive for the call (see `IoVecs`).
    check(unsafe {
        match offset {
            None => libc::readv(fd, iov.as_ptr(), iov_count(iov)),
            Some(off) => libc::preadv(fd, iov.as_ptr(), iov_count(iov), off as libc::off_t),
        }
    })
}

/// `writev`/`pwritev`.
pub(crate) fn writev(fd: RawFd, iov: &IoVecs, offset: Option<u64>) -> SysResult {
    // SAFETY: every iovec addresses readable memory the caller keeps alive
    // for the call.
    check(unsafe {
        match offset {
            None => libc::writev(fd, iov.as_ptr(), iov_count(iov)),
            Some(off) => libc::pwritev(fd, iov.as_ptr(), iov_count(iov), off as libc::off_t),
        }
    })
}

/// What a read tried without blocking gave.
#[derive(Debug)]
// Elsewhere than Linux nothing is tried: `Untried` is all there is.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) enum NoWait {
    /// Its result: all the bytes asked for, all there were before the end
    /// of the file, or an error a blocking call would give too.
    Done(SysResult),
    /// The data is not all in the page cache: a blocking call must make
    /// the read (from the start: nothing of this try counts).
    WouldBlock,
    /// Not tried so: the descriptor can't be read at an offset (a socket,
    /// pipe or terminal), its file system can't be asked not to wait, or
    /// the system has no such call.
    Untried,
}

/// Whether [`read_nowait`] can ever try: Linux's `preadv2` with
/// `RWF_NOWAIT`. Elsewhere regular-file reads go to the blocking pool.
pub(crate) const READS_TRY_NOWAIT: bool = cfg!(target_os = "linux");

/// `preadv2(RWF_NOWAIT)` at `offset`: reads what the page cache holds,
/// and never waits for the disk. A single buffer that comes back short
/// is read on, so that a short result is the end of the file, as a
/// blocking read's would be; a vectored read that comes back short is
/// left to the blocking call (reading at an offset again is harmless).
pub(crate) fn read_nowait(fd: RawFd, iov: &IoVecs, offset: u64) -> NoWait {
    read_nowait_impl(fd, iov, offset)
}

#[cfg(target_os = "linux")]
fn read_nowait_impl(fd: RawFd, iov: &IoVecs, offset: u64) -> NoWait {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Cleared once the system says it has no `preadv2`, or a sandbox
    /// refuses it.
    static SUPPORTED: AtomicBool = AtomicBool::new(true);
    if !SUPPORTED.load(Ordering::Relaxed) || offset > i64::MAX as u64 {
        return NoWait::Untried;
    }
    let want: usize = iov.iter().map(|v| v.iov_len).sum();
    let call = |iov: &IoVecs, at: u64| {
        // SAFETY: every iovec addresses writable memory the caller owns
        // and keeps alive for the call (see `IoVecs`).
        check(unsafe {
            libc::preadv2(
                fd,
                iov.as_ptr(),
                iov_count(iov),
                at as libc::off_t,
                libc::RWF_NOWAIT,
            )
        } as isize)
    };
    let mut got = 0usize;
    loop {
        let rest;
        let now: &IoVecs = if got == 0 {
            iov
        } else {
            // One buffer, read on after what came.
            rest = [libc::iovec {
                // SAFETY: `got` < the buffer's length, so the pointer
                // stays inside it.
                iov_base: unsafe { iov[0].iov_base.cast::<u8>().add(got) }.cast(),
                iov_len: iov[0].iov_len - got,
            }];
            &rest
        };
        match call(now, offset + got as u64) {
            Ok(0) => return NoWait::Done(Ok(got)),
            Ok(n) => {
                got += n;
                if got >= want {
                    return NoWait::Done(Ok(got));
                }
                if iov.len() != 1 {
                    return NoWait::WouldBlock;
                }
            }
            Err(e) if e.would_block() => return NoWait::WouldBlock,
            // Not a file read at an offset (a socket, pipe, terminal), a
            // file system that can't be asked not to wait, or an offset
            // out of range: the usual way finds out and answers.
            Err(Errno::ESPIPE | Errno::EOPNOTSUPP | Errno::EINVAL | Errno::EBADF) if got == 0 => {
                return NoWait::Untried;
            }
            // No preadv2, or a sandbox that refuses it: never again (a
            // read EPERM refuses for itself gets its answer from the pool).
            Err(Errno::ENOSYS | Errno::EPERM) => {
                SUPPORTED.store(false, Ordering::Relaxed);
                return NoWait::Untried;
            }
            Err(e) if got == 0 => return NoWait::Done(Err(e)),
            // An error after some bytes: the blocking call answers.
            Err(_) => return NoWait::WouldBlock,
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn read_nowait_impl(_fd: RawFd, _iov: &IoVecs, _offset: u64) -> NoWait {
    NoWait::Untried
}

fn msghdr(iov: &IoVecs) -> libc::msghdr {
    // SAFETY: msghdr is plain data; all-zero is "no address, no control".
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    msg
}

/// `recvmsg` over `iov` with `MSG_DONTWAIT | flags` (a socket's readv).
pub(crate) fn recvmsg(fd: RawFd, iov: &IoVecs, flags: libc::c_int) -> SysResult {
    let mut msg = msghdr(iov);
    // SAFETY: `msg` points at the caller's live iovecs and nothing else.
    check(unsafe { libc::recvmsg(fd, &mut msg, flags) })
}

/// `sendmsg` over `iov` with `MSG_NOSIGNAL | flags` (a socket's writev).
pub(crate) fn sendmsg(fd: RawFd, iov: &IoVecs, flags: libc::c_int) -> SysResult {
    let msg = msghdr(iov);
    // SAFETY: `msg` points at the caller's live iovecs and nothing else.
    check(unsafe { libc::sendmsg(fd, &msg, flags | SEND_NOSIGNAL) })
}

/// `poll(fd, events)` without waiting: the ready events, masked the way
/// poll(2) reports them (`POLLERR`/`POLLHUP`/`POLLNVAL` always included).
pub(crate) fn poll_now(fd: RawFd, events: i16) -> SysResult {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    check_int(unsafe { libc::poll(&mut pfd, 1, 0) })?;
    Ok(pfd.revents as u16 as usize)
}

/// `POLLRDHUP` (the peer shut its writing side down) where poll(2) has it;
/// 0 elsewhere.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const POLL_RDHUP: i16 = libc::POLLRDHUP;
/// `POLLRDHUP` (the peer shut its writing side down) where poll(2) has it;
/// 0 elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const POLL_RDHUP: i16 = 0;

/// `close(fd)`.
pub(crate) fn close(fd: RawFd) -> SysResult {
    // SAFETY: closing an fd has no memory-safety preconditions; which fd to
    // close is the user's explicit request (a Close operation).
    check_int(unsafe { libc::close(fd) })
}

/// `CLOCK_MONOTONIC` now, as io_uring's absolute timeouts measure it.
pub(crate) fn monotonic_now() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    use super::is_byte_stream;

    #[test]
    #[cfg_attr(miri, ignore = "Miri has no getsockopt on a socketpair")]
    fn byte_streams_are_stream_sockets_pipes_and_fifos() {
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(is_byte_stream(a.as_raw_fd()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert!(is_byte_stream(tcp.as_raw_fd()));
        let (r, _w) = std::io::pipe().unwrap();
        assert!(is_byte_stream(r.as_raw_fd()));

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(!is_byte_stream(udp.as_raw_fd()));
        let (d, _e) = UnixDatagram::pair().unwrap();
        assert!(!is_byte_stream(d.as_raw_fd()));
        let file = std::fs::File::open("Cargo.toml").unwrap();
        assert!(!is_byte_stream(file.as_raw_fd()));
        assert!(!is_byte_stream(-1));
    }
}
