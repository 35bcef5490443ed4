//! Socket syscalls and socket addresses.
//!
//! The platform differences of the network operations live here, behind
//! `cfg` at this module boundary: macOS has neither `accept4` nor
//! `SOCK_CLOEXEC`/`SOCK_NONBLOCK` in `socket()`, so it sets the flags with
//! `fcntl` afterwards (and `SO_NOSIGPIPE`, belt and braces with
//! `MSG_NOSIGNAL`); the BSDs and macOS keep a length byte at the head of
//! every `sockaddr`. Every constant comes from `libc` for the target.

use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::errno::{Errno, retry};
use super::io::{IoVecs, SysResult};

/// A socket address of any family kqring's operations take or report:
/// IPv4, IPv6 and Unix (path, unnamed, and Linux's abstract names), kept
/// as the raw `sockaddr_storage` the kernel reads and writes.
///
/// ```
/// use kqring::SockAddr;
/// let a = SockAddr::from("127.0.0.1:80".parse::<std::net::SocketAddr>().unwrap());
/// assert_eq!(a.as_socket(), Some("127.0.0.1:80".parse().unwrap()));
/// let u = SockAddr::unix("/tmp/kqring.sock")?;
/// assert_eq!(u.as_unix_path(), Some(std::path::Path::new("/tmp/kqring.sock")));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

/// Where `sun_path` starts in a `sockaddr_un`.
fn sun_path_offset() -> usize {
    mem::offset_of!(libc::sockaddr_un, sun_path)
}

/// Sets the BSD `sa_len` byte, which Linux does not have.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
fn set_sa_len(storage: &mut libc::sockaddr_storage, len: usize) {
    storage.ss_len = len.min(u8::MAX as usize) as u8;
}

#[cfg(not(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
fn set_sa_len(_storage: &mut libc::sockaddr_storage, _len: usize) {}

impl SockAddr {
    /// An all-zero address of `len` 0 (no family), to be filled by a call.
    pub(crate) fn empty() -> SockAddr {
        SockAddr {
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            storage: unsafe { mem::zeroed() },
            len: 0,
        }
    }

    /// The whole storage and its capacity, for a call that writes an
    /// address (accept, recvmsg).
    pub(crate) fn as_mut_parts(&mut self) -> (*mut libc::sockaddr, libc::socklen_t) {
        (
            (&raw mut self.storage).cast(),
            mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        )
    }

    /// Records the length the kernel wrote.
    pub(crate) fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len.min(mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
    }

    /// A Unix-domain address for `path`. Fails with `InvalidInput` when the
    /// path does not fit `sun_path` (with its terminating NUL) or holds a
    /// NUL byte.
    pub fn unix(path: impl AsRef<Path>) -> io::Result<SockAddr> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix socket path can't hold a NUL byte",
            ));
        }
        Self::unix_bytes(bytes, true)
    }

    /// A Unix-domain address from raw `sun_path` bytes (a leading NUL
    /// makes a Linux abstract name); `nul` appends a terminating NUL.
    fn unix_bytes(bytes: &[u8], nul: bool) -> io::Result<SockAddr> {
        let mut addr = SockAddr::empty();
        // SAFETY: sockaddr_un fits in sockaddr_storage, which is aligned
        // for every sockaddr type.
        let un = unsafe { &mut *(&raw mut addr.storage).cast::<libc::sockaddr_un>() };
        let room = un.sun_path.len() - usize::from(nul);
        if bytes.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path is too long for a Unix socket address",
            ));
        }
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in un.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let len = sun_path_offset() + bytes.len() + usize::from(nul);
        set_sa_len(&mut addr.storage, len);
        addr.len = len as libc::socklen_t;
        Ok(addr)
    }

    /// A Linux abstract Unix-domain address (`name` without the leading
    /// NUL). Other platforms have no abstract namespace: binding one fails
    /// there.
    pub fn unix_abstract(name: &[u8]) -> io::Result<SockAddr> {
        let mut bytes = Vec::with_capacity(name.len() + 1);
        bytes.push(0);
        bytes.extend_from_slice(name);
        Self::unix_bytes(&bytes, false)
    }

    /// The address family (`libc::AF_INET`, `AF_INET6`, `AF_UNIX`…), or
    /// `AF_UNSPEC` for an empty address.
    pub fn family(&self) -> i32 {
        if self.len == 0 {
            return libc::AF_UNSPEC;
        }
        i32::from(self.storage.ss_family)
    }

    /// The address's length in bytes, as the kernel counts it.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the address is empty (the kernel reported none).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A pointer to the raw `sockaddr`, valid while `self` lives.
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    /// The raw length, for a call that reads the address.
    pub(crate) fn raw_len(&self) -> libc::socklen_t {
        self.len
    }

    /// The address as an IP socket address, if it is IPv4 or IPv6.
    pub fn as_socket(&self) -> Option<SocketAddr> {
        match self.family() {
            libc::AF_INET if self.len() >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says sockaddr_in, the length covers it,
                // and sockaddr_storage is aligned for it.
                let sin = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(
                    ip,
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if self.len() >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_in6>() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    u32::from_be(sin6.sin6_flowinfo),
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The raw `sun_path` bytes of a Unix-domain address (up to the
    /// reported length, without trailing NULs).
    fn unix_path_bytes(&self) -> Option<&[u8]> {
        if self.family() != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says sockaddr_un, which fits in the storage.
        let un = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_un>() };
        let n = self
            .len()
            .saturating_sub(sun_path_offset())
            .min(un.sun_path.len());
        // SAFETY: `c_char` and `u8` have the same size and alignment, and
        // `n` is within `sun_path`.
        let bytes = unsafe { std::slice::from_raw_parts(un.sun_path.as_ptr().cast::<u8>(), n) };
        Some(bytes)
    }

    /// The path of a Unix-domain address bound to one.
    pub fn as_unix_path(&self) -> Option<&Path> {
        let bytes = self.unix_path_bytes()?;
        if bytes.first().is_none_or(|&b| b == 0) {
            return None;
        }
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(Path::new(std::ffi::OsStr::from_bytes(&bytes[..end])))
    }

    /// The name of a Linux abstract Unix-domain address (without its
    /// leading NUL).
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        match self.unix_path_bytes()? {
            [0, name @ ..] if !name.is_empty() => Some(name),
            _ => None,
        }
    }

    /// Whether this is an unnamed Unix-domain address (an unbound socket,
    /// one end of a socket pair).
    pub fn is_unnamed(&self) -> bool {
        self.unix_path_bytes()
            .is_some_and(|b| b.is_empty() || b.iter().all(|&c| c == 0))
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> SockAddr {
        let mut out = SockAddr::empty();
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_in fits in the aligned storage.
                let sin = unsafe { &mut *(&raw mut out.storage).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_in6 fits in the aligned storage.
                let sin6 = unsafe { &mut *(&raw mut out.storage).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                sin6.sin6_flowinfo = a.flowinfo().to_be();
                sin6.sin6_scope_id = a.scope_id();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        set_sa_len(&mut out.storage, len);
        out.len = len as libc::socklen_t;
        out
    }
}

impl From<SocketAddrV4> for SockAddr {
    fn from(addr: SocketAddrV4) -> SockAddr {
        SocketAddr::V4(addr).into()
    }
}

impl From<SocketAddrV6> for SockAddr {
    fn from(addr: SocketAddrV6) -> SockAddr {
        SocketAddr::V6(addr).into()
    }
}

impl PartialEq for SockAddr {
    fn eq(&self, other: &SockAddr) -> bool {
        self.len == other.len && self.bytes() == other.bytes()
    }
}

impl Eq for SockAddr {}

impl SockAddr {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the storage is plain data of at least `len` bytes (the
        // length is clamped to its size).
        unsafe { std::slice::from_raw_parts((&raw const self.storage).cast::<u8>(), self.len()) }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(a) = self.as_socket() {
            return write!(f, "SockAddr({a})");
        }
        if let Some(p) = self.as_unix_path() {
            return write!(f, "SockAddr(unix {})", p.display());
        }
        if let Some(n) = self.as_abstract_name() {
            return write!(
                f,
                "SockAddr(unix abstract {:?})",
                String::from_utf8_lossy(n)
            );
        }
        if self.is_unnamed() {
            return f.write_str("SockAddr(unix unnamed)");
        }
        write!(f, "SockAddr(family {}, {} bytes)", self.family(), self.len)
    }
}

fn check_int(ret: libc::c_int) -> SysResult {
    super::errno::check(ret).map(|n| n as usize)
}

/// `socket()` with close-on-exec and non-blocking set as asked, atomically
/// where the platform can.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn socket(
    domain: i32,
    ty: i32,
    protocol: i32,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    let mut ty = ty;
    if cloexec {
        ty |= libc::SOCK_CLOEXEC;
    }
    if nonblock {
        ty |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket takes integers only.
    check_int(unsafe { libc::socket(domain, ty, protocol) })
}

/// `socket()`, then close-on-exec, non-blocking and `SO_NOSIGPIPE` with
/// `fcntl`/`setsockopt`: macOS has no `SOCK_CLOEXEC`/`SOCK_NONBLOCK`.
#[cfg(target_vendor = "apple")]
pub(crate) fn socket(
    domain: i32,
    ty: i32,
    protocol: i32,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    // SAFETY: socket takes integers only.
    let fd = check_int(unsafe { libc::socket(domain, ty, protocol) })? as RawFd;
    if let Err(e) = set_fd_flags(fd, cloexec, nonblock) {
        // SAFETY: `fd` was just created here and is not shared.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    Ok(fd as usize)
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

/// `accept4()` with the flags asked for; the peer's address when `addr`
/// is given.
#[cfg(not(target_vendor = "apple"))]
pub(crate) fn accept(
    fd: RawFd,
    addr: Option<&mut SockAddr>,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    let mut flags = 0;
    if cloexec {
        flags |= libc::SOCK_CLOEXEC;
    }
    if nonblock {
        flags |= libc::SOCK_NONBLOCK;
    }
    match addr {
        Some(a) => {
            let (ptr, mut len) = a.as_mut_parts();
            // SAFETY: `ptr`/`len` describe the address's own storage.
            let r = retry(|| check_int(unsafe { libc::accept4(fd, ptr, &mut len, flags) }));
            if r.is_ok() {
                a.set_len(len);
            }
            r
        }
        // SAFETY: null address and length: the kernel writes nothing.
        None => retry(|| {
            check_int(unsafe {
                libc::accept4(fd, std::ptr::null_mut(), std::ptr::null_mut(), flags)
            })
        }),
    }
}

/// `accept()`, then the flags with `fcntl`: macOS has no `accept4`.
#[cfg(target_vendor = "apple")]
pub(crate) fn accept(
    fd: RawFd,
    addr: Option<&mut SockAddr>,
    cloexec: bool,
    nonblock: bool,
) -> SysResult {
    let new = match addr {
        Some(a) => {
            let (ptr, mut len) = a.as_mut_parts();
            // SAFETY: `ptr`/`len` describe the address's own storage.
            let r = retry(|| check_int(unsafe { libc::accept(fd, ptr, &mut len) }));
            if r.is_ok() {
                a.set_len(len);
            }
            r
        }
        // SAFETY: null address and length: the kernel writes nothing.
        None => retry(|| {
            check_int(unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) })
        }),
    }? as RawFd;
    // An accepted socket inherits O_NONBLOCK from the listener on macOS:
    // set it to what was asked either way.
    // SAFETY: fcntl with integer arguments on the new descriptor.
    let fl = unsafe { libc::fcntl(new, libc::F_GETFL) };
    if fl >= 0 && !nonblock && fl & libc::O_NONBLOCK != 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(new, libc::F_SETFL, fl & !libc::O_NONBLOCK) };
    }
    if let Err(e) = set_fd_flags(new, cloexec, nonblock) {
        // SAFETY: `new` was just accepted here and is not shared.
        unsafe { libc::close(new) };
        return Err(e);
    }
    Ok(new as usize)
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
