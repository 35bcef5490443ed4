//! Socket syscalls.
//!
//! The platform differences of the network operations live here, behind
//! `cfg` at this module boundary: macOS has neither `accept4` nor
//! `SOCK_CLOEXEC`/`SOCK_NONBLOCK` in `socket()`, so it sets the flags with
//! `fcntl` afterwards (and `SO_NOSIGPIPE`, belt and braces with
//! `MSG_NOSIGNAL`). The addresses are `sockaddr.rs`. Every constant comes
//! from `libc` for the target.

use std::mem;
use std::os::fd::RawFd;
use std::ptr;

use super::errno::{Errno, retry};
use super::io::{IoVecs, SysResult};
pub use super::sockaddr::SockAddr;

fn check_int(ret: libc::c_int) -> SysResult {
    super::errno::check(ret).map(|n| n as usize)
}

/// `socket()` with close-on-exec and non-blocking set as asked, atomically
/// where the platform can.
pub(crate) fn socket(
    domain: i32,
    ty: i32,
    protocol: i32,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    let ty = ty | sock_flags(cloexec, nonblock);
    // SAFETY: socket takes integers only.
    let fd = check_int(unsafe { libc::socket(domain, ty, protocol) })?;
    adopt(fd as RawFd, cloexec, nonblock)
}

/// `accept` with close-on-exec and non-blocking set as asked (atomically
/// with `accept4` where there is one); the peer's address when `addr` is
/// given. EINTR is retried.
pub(crate) fn accept(
    fd: RawFd,
    addr: Option<&mut SockAddr>,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    let flags = sock_flags(cloexec, nonblock);
    let new = match addr {
        Some(addr) => {
            let (ptr, mut len) = addr.as_mut_parts();
            // SAFETY: `ptr`/`len` describe the address's own storage.
            let new = retry(|| check_int(unsafe { accept_call(fd, ptr, &mut len, flags) }))?;
            addr.set_len(len);
            new
        }
        // SAFETY: a null address and length: the kernel writes nothing.
        None => retry(|| {
            check_int(unsafe { accept_call(fd, ptr::null_mut(), ptr::null_mut(), flags) })
        })?,
    };
    adopt_accepted(new as RawFd, cloexec, nonblock)
}

/// `SOCK_CLOEXEC` and `SOCK_NONBLOCK` as asked, for `socket` and `accept4`.
#[cfg(not(target_vendor = "apple"))]
fn sock_flags(cloexec: bool, nonblock: bool) -> libc::c_int {
    let mut flags = 0;
    if cloexec {
        flags |= libc::SOCK_CLOEXEC;
    }
    if nonblock {
        flags |= libc::SOCK_NONBLOCK;
    }
    flags
}

/// macOS has no `SOCK_CLOEXEC`/`SOCK_NONBLOCK`: [`adopt`] sets them.
#[cfg(target_vendor = "apple")]
fn sock_flags(_cloexec: bool, _nonblock: bool) -> libc::c_int {
    0
}

/// `accept4(fd, addr, len, flags)`.
///
/// # Safety
/// `addr` and `len` are null, or `addr` points at `*len` writable bytes.
#[cfg(not(target_vendor = "apple"))]
unsafe fn accept_call(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    flags: libc::c_int,
) -> libc::c_int {
    // SAFETY: as the caller promises.
    unsafe { libc::accept4(fd, addr, len, flags) }
}

/// `accept(fd, addr, len)`: macOS has no `accept4` (`flags` is 0).
///
/// # Safety
/// `addr` and `len` are null, or `addr` points at `*len` writable bytes.
#[cfg(target_vendor = "apple")]
unsafe fn accept_call(
    fd: RawFd,
    addr: *mut libc::sockaddr,
    len: *mut libc::socklen_t,
    _flags: libc::c_int,
) -> libc::c_int {
    // SAFETY: as the caller promises.
    unsafe { libc::accept(fd, addr, len) }
}

/// A socket just made here, its flags set by the call that made it.
#[cfg(not(target_vendor = "apple"))]
fn adopt(fd: RawFd, _cloexec: bool, _nonblock: bool) -> SysResult {
    Ok(fd as usize)
}

/// A socket just accepted here, its flags set by `accept4`.
#[cfg(not(target_vendor = "apple"))]
fn adopt_accepted(fd: RawFd, _cloexec: bool, _nonblock: bool) -> SysResult {
    Ok(fd as usize)
}

/// Sets close-on-exec, non-blocking and `SO_NOSIGPIPE` on a socket just
/// made here, or closes it if that fails.
#[cfg(target_vendor = "apple")]
fn adopt(fd: RawFd, cloexec: bool, nonblock: bool) -> SysResult {
    if let Err(e) = set_fd_flags(fd, cloexec, nonblock) {
        // SAFETY: `fd` was just made here and is not shared.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd as usize)
}

/// [`adopt`] for an accepted socket, which inherits `O_NONBLOCK` from the
/// listener on macOS: it is set to what was asked either way.
#[cfg(target_vendor = "apple")]
fn adopt_accepted(fd: RawFd, cloexec: bool, nonblock: bool) -> SysResult {
    // SAFETY: fcntl with integer arguments on the new descriptor.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl >= 0 && !nonblock && fl & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) };
    }
    adopt(fd, cloexec, nonblock)
}

/// Sets close-on-exec, non-blocking and `SO_NOSIGPIPE` on a new socket.
#[cfg(target_vendor = "apple")]
fn set_fd_flags(fd: RawFd, cloexec: bool, nonblock: bool) -> Result<(), Errno> {
    // SAFETY: fcntl and setsockopt with integer arguments, and a pointer
    // to a live c_int of the size passed.
    unsafe {
        if cloexec {
            check_int(libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
        }
        if nonblock {
            let fl = check_int(libc::fcntl(fd, libc::F_GETFL))? as libc::c_int;
            check_int(libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
        }
        let one: libc::c_int = 1;
        check_int(libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_NOSIGPIPE,
            (&raw const one).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        ))?;
    }
    Ok(())
}

/// `bind(fd, addr)`.
pub(crate) fn bind(fd: RawFd, addr: &SockAddr) -> SysResult {
    // SAFETY: the pointer and length describe the address's storage.
    check_int(unsafe { libc::bind(fd, addr.as_ptr(), addr.raw_len()) })
}

/// `listen(fd, backlog)`.
pub(crate) fn listen(fd: RawFd, backlog: i32) -> SysResult {
    // SAFETY: integers only.
    check_int(unsafe { libc::listen(fd, backlog) })
}

/// `connect(fd, addr)`. EINTR means the connection goes on in the
/// background, as EINPROGRESS does: it is reported as EINPROGRESS.
pub(crate) fn connect(fd: RawFd, addr: &SockAddr) -> SysResult {
    // SAFETY: the pointer and length describe the address's storage.
    match check_int(unsafe { libc::connect(fd, addr.as_ptr(), addr.raw_len()) }) {
        Err(Errno::EINTR) => Err(Errno::EINPROGRESS),
        r => r,
    }
}

/// `shutdown(fd, how)`.
pub(crate) fn shutdown(fd: RawFd, how: std::net::Shutdown) -> SysResult {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: integers only.
    check_int(unsafe { libc::shutdown(fd, how) })
}

/// An int-valued `SOL_SOCKET` option.
fn socket_option(fd: RawFd, name: libc::c_int) -> Result<libc::c_int, Errno> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a pointer to a live c_int and its size.
    check_int(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            (&raw mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// The pending socket error (`SO_ERROR`), which reading clears.
pub(crate) fn take_socket_error(fd: RawFd) -> Result<Option<Errno>, Errno> {
    socket_option(fd, libc::SO_ERROR).map(|e| (e != 0).then_some(Errno::new(e)))
}

/// The socket's type (`SO_TYPE`): `SOCK_STREAM`, `SOCK_DGRAM`, ...
pub(crate) fn socket_type(fd: RawFd) -> Result<i32, Errno> {
    socket_option(fd, libc::SO_TYPE)
}

/// Whether the socket listens (`SO_ACCEPTCONN`); `ENOTSOCK` for a
/// descriptor that is not a socket.
pub(crate) fn is_listening(fd: RawFd) -> Result<bool, Errno> {
    socket_option(fd, libc::SO_ACCEPTCONN).map(|on| on != 0)
}

/// Whether the socket has a peer (`getpeername` succeeds): `Ok(false)` on
/// ENOTCONN.
pub(crate) fn is_connected(fd: RawFd) -> Result<bool, Errno> {
    let mut addr = SockAddr::empty();
    let (ptr, mut len) = addr.as_mut_parts();
    // SAFETY: `ptr`/`len` describe the address's own storage.
    match check_int(unsafe { libc::getpeername(fd, ptr, &mut len) }) {
        Ok(_) => Ok(true),
        Err(Errno::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `fd` has `O_NONBLOCK` set.
pub(crate) fn is_nonblocking(fd: RawFd) -> Result<bool, Errno> {
    // SAFETY: F_GETFL takes no pointer argument.
    let fl = check_int(unsafe { libc::fcntl(fd, libc::F_GETFL) })? as libc::c_int;
    Ok(fl & libc::O_NONBLOCK != 0)
}

/// `recvmsg` over `iov`, with the sender's address written to `from`.
/// Returns the bytes received and the message flags (`MSG_TRUNC`…).
pub(crate) fn recvmsg_from(
    fd: RawFd,
    iov: &IoVecs,
    from: &mut SockAddr,
    flags: libc::c_int,
) -> Result<(usize, i32), Errno> {
    // SAFETY: msghdr is plain data; all-zero is "no address, no control".
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    let (ptr, len) = from.as_mut_parts();
    msg.msg_name = ptr.cast();
    msg.msg_namelen = len;
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at the caller's live iovecs (see `IoVecs`) and
    // at `from`'s storage with its capacity.
    let n = retry(|| {
        let r = unsafe { libc::recvmsg(fd, &mut msg, flags) };
        super::errno::check_len(r)
    })?;
    from.set_len(msg.msg_namelen);
    Ok((n, msg.msg_flags))
}

/// `sendmsg` over `iov` to `to` (or the connected peer), with
/// `MSG_NOSIGNAL | flags`.
pub(crate) fn sendmsg_to(
    fd: RawFd,
    iov: &IoVecs,
    to: Option<&SockAddr>,
    flags: libc::c_int,
) -> SysResult {
    // SAFETY: msghdr is plain data; all-zero is "no address, no control".
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    if let Some(to) = to {
        msg.msg_name = to.as_ptr().cast_mut().cast();
        msg.msg_namelen = to.raw_len();
    }
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at the caller's live iovecs and address; the
    // kernel only reads them.
    retry(|| {
        let r = unsafe { libc::sendmsg(fd, &msg, flags | libc::MSG_NOSIGNAL) };
        super::errno::check_len(r)
    })
}

/// Waits, blocking, until `fd` is ready for `events` (a worker's blocking
/// connect that was interrupted).
pub(crate) fn poll_wait(fd: RawFd, events: i16) -> SysResult {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    retry(|| check_int(unsafe { libc::poll(&mut pfd, 1, -1) }))
}
