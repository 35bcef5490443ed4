//! Socket addresses: [`SockAddr`], the raw `sockaddr_storage` the kernel
//! reads and writes, with the BSDs' and macOS' length byte (`sa_len`) at
//! the head of every address set.
//!
//! Why not `socket2::SockAddr`: it serves every kqueue target, but taken
//! as it is it would change kqring's addresses. Its Unix addresses carry
//! no `sun_len` on the BSDs and macOS (so one built here would compare
//! unequal to the same address from the kernel); its `as_pathname` takes
//! the reported length to end in exactly one NUL, which the BSDs don't
//! promise (they report the length the binder gave, often the whole
//! `sockaddr_un`); its `unix` accepts a path with a NUL inside (bound
//! truncated); it keeps an IPv6 flow label in host byte order where
//! `sockaddr_in6` has network order; and it has no abstract-name
//! constructor, prints no address in `Debug`, and returns the family and
//! length in the target's own types. Wrapping it would keep all the Unix
//! code below (where the `unsafe` is) to save the IP conversions.

use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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
