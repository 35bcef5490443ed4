//! Unix-domain stream sockets that own their descriptor and work through
//! the ring.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use crate::proactor::Proactor;
use crate::proactor::net::{Accepted, Accepts, Incoming, owning};
use crate::proactor::op::OpFuture;
use crate::proactor::socket::{self, Owned, stream_io};
use crate::sys::net::SockAddr;

/// A Unix-domain listening socket; dropped, it is closed through the ring
/// (its path stays, as with std's).
#[derive(Debug)]
pub struct UnixListener {
    owned: Owned,
}

owning!(UnixListener, std::os::unix::net::UnixListener);

impl UnixListener {
    /// Binds and listens on `path`.
    pub fn bind(io: &Proactor, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let std = std::os::unix::net::UnixListener::bind(path)?;
        UnixListener::from_std(io, std)
    }

    /// Accepts one connection: the stream and its peer's address (most
    /// often unnamed).
    pub fn accept(&self) -> OpFuture<'_, Accepted<UnixStream>> {
        self.owned.accept()
    }

    /// Accepts connections as they come (a multishot accept).
    pub fn incoming(&self) -> Incoming<'_, UnixStream> {
        self.owned.incoming()
    }
}

/// A Unix-domain stream connection; dropped, it is closed through the
/// ring.
#[derive(Debug)]
pub struct UnixStream {
    owned: Owned,
}

owning!(UnixStream, std::os::unix::net::UnixStream);
stream_io!(UnixStream);

impl Accepts for UnixStream {
    type Addr = SockAddr;
    fn accepted(
        io: &Proactor,
        fd: OwnedFd,
        addr: Option<SockAddr>,
    ) -> io::Result<(Self, SockAddr)> {
        let stream = UnixStream {
            owned: Owned::socket(io, fd),
        };
        Ok((stream, addr.unwrap_or_else(SockAddr::empty)))
    }
}

impl UnixStream {
    /// Connects to the listener at `path` through the ring.
    pub async fn connect(io: &Proactor, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let addr = SockAddr::unix(path)?;
        let owned = socket::socket(io, libc::AF_UNIX, libc::SOCK_STREAM)?;
        owned.connect(addr).await?;
        Ok(UnixStream { owned })
    }

    /// A connected pair.
    pub fn pair(io: &Proactor) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(io, a)?, UnixStream::from_std(io, b)?))
    }
}
