//! TCP and UDP sockets that own their descriptor and work through the
//! ring; and what accepting a connection is, for TCP and Unix listeners.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::buf::{IoBuf, IoBufMut};
use crate::cq::Cqe;
use crate::ops;
use crate::proactor::Proactor;
use crate::proactor::op::{Decode, OpFuture, Unit, take_buf};
use crate::proactor::socket::{self, Owned, stream_io};
use crate::proactor::stream::{DecodeShot, ShotStream};
use crate::sys::net::SockAddr;

/// A connection type a listener accepts: made from the new descriptor,
/// with the peer's address in the type's own form.
pub trait Accepts: Sized + Unpin {
    /// The peer's address.
    type Addr;

    #[doc(hidden)]
    fn accepted(
        io: &Proactor,
        fd: OwnedFd,
        addr: Option<SockAddr>,
    ) -> io::Result<(Self, Self::Addr)>;
}

/// An accept's completion as the connection and its peer's address.
pub struct Accepted<T> {
    io: Proactor,
    _conn: std::marker::PhantomData<fn() -> T>,
}

impl<T> Accepted<T> {
    pub(crate) fn new(io: &Proactor) -> Self {
        Accepted {
            io: io.clone(),
            _conn: std::marker::PhantomData,
        }
    }

    fn connection(&self, mut cqe: Cqe) -> io::Result<(T, T::Addr)>
    where
        T: Accepts,
    {
        let fd = cqe.io_result()?;
        // SAFETY: the driver's accept made this descriptor for this
        // completion; it is handed over once, here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        T::accepted(&self.io, fd, cqe.take_addr())
    }
}

impl<T: Accepts> Decode for Accepted<T> {
    type Output = io::Result<(T, T::Addr)>;
    const MAKES_FD: bool = true;
    fn decode(self, cqe: Cqe) -> Self::Output {
        self.connection(cqe)
    }
}

impl<T: Accepts> DecodeShot for Accepted<T> {
    type Item = io::Result<(T, T::Addr)>;
    const MAKES_FD: bool = true;
    fn decode(&mut self, cqe: Cqe) -> Option<Self::Item> {
        Some(self.connection(cqe))
    }
}

/// The stream of a listener's `incoming()`: a multishot accept.
pub type Incoming<'a, T> = ShotStream<'a, Accepted<T>>;

/// The accept entry every listener submits: the peer's address, and
/// connections that are close-on-exec and non-blocking.
fn accept_sqe(fd: crate::ops::Fd, multishot: bool) -> crate::Sqe {
    ops::Accept::new(fd)
        .peer_addr(true)
        .nonblocking(true)
        .multishot(multishot)
        .build()
}

impl Owned {
    /// One accept on this listening socket.
    pub(crate) fn accept<T: Accepts>(&self) -> OpFuture<'_, Accepted<T>> {
        self.op(
            accept_sqe(self.target(), false),
            Accepted::new(self.proactor()),
        )
    }

    /// A multishot accept on this listening socket.
    pub(crate) fn incoming<T: Accepts>(&self) -> Incoming<'_, T> {
        let sqe = accept_sqe(self.target(), true);
        ShotStream::new(self.proactor(), sqe, Accepted::new(self.proactor()))
    }
}

fn invalid_addr() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address")
}

/// Resolves `addr` with std (a host name's lookup blocks, as std's does)
/// and tries each address with `f` until one works.
fn each_addr<T>(
    addr: impl ToSocketAddrs,
    mut f: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(a) {
            Ok(t) => return Ok(t),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to use")))
}

/// What every owning type has: its descriptor, std's form, conversions.
macro_rules! owning {
    ($ty:ident, $std:ty) => {
        impl $ty {
            /// Takes over std's socket (made non-blocking).
            pub fn from_std(io: &Proactor, socket: $std) -> io::Result<$ty> {
                Ok($ty {
                    owned: Owned::nonblocking(io, OwnedFd::from(socket))?,
                })
            }

            /// Takes over a descriptor of the right kind (made
            /// non-blocking).
            pub fn from_fd(io: &Proactor, fd: OwnedFd) -> io::Result<$ty> {
                Ok($ty {
                    owned: Owned::nonblocking(io, fd)?,
                })
            }

            /// Gives the socket up as std's (still non-blocking), not
            /// closed.
            pub fn into_std(self) -> $std {
                <$std>::from(self.owned.into_fd())
            }

            /// The proactor it works through.
            pub fn proactor(&self) -> &Proactor {
                self.owned.proactor()
            }

            /// Its slot in the ring's file table, which its operations
            /// name (`FIXED_FILE`): it holds a duplicate of the socket's
            /// descriptor. `None` when the ring has no table or the table
            /// was full, and until a polling-thread ring's driver has
            /// answered; its operations use the descriptor then. The
            /// slot stays named when a raw user empties or refills it, or
            /// the ring goes away: its operations then fail (`EBADF`,
            /// `ESHUTDOWN`) or reach the raw user's file, as io_uring's
            /// would.
            pub fn fixed_file(&self) -> Option<crate::ops::Fixed> {
                self.owned.fixed()
            }
        }

        impl From<$ty> for $std {
            fn from(t: $ty) -> $std {
                t.into_std()
            }
        }

        impl From<$ty> for OwnedFd {
            fn from(t: $ty) -> OwnedFd {
                t.owned.into_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.owned.raw()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                // SAFETY: the descriptor stays open while `self` lives.
                unsafe { BorrowedFd::borrow_raw(self.owned.raw()) }
            }
        }

        impl std::os::fd::IntoRawFd for $ty {
            fn into_raw_fd(self) -> RawFd {
                std::os::fd::IntoRawFd::into_raw_fd(self.owned.into_fd())
            }
        }
    };
}
pub(crate) use owning;

/// A TCP listening socket; dropped, it is closed through the ring.
#[derive(Debug)]
pub struct TcpListener {
    owned: Owned,
}

owning!(TcpListener, std::net::TcpListener);

impl TcpListener {
    /// Binds and listens on `addr` (port 0: one the system picks), as
    /// std's `bind` does.
    pub fn bind(io: &Proactor, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let std = std::net::TcpListener::bind(addr)?;
        TcpListener::from_std(io, std)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.owned
            .with_std(|l: &std::net::TcpListener| l.local_addr())
    }

    /// Accepts one connection: the stream and its peer's address.
    pub fn accept(&self) -> OpFuture<'_, Accepted<TcpStream>> {
        self.owned.accept()
    }

    /// Accepts connections as they come (a multishot accept).
    pub fn incoming(&self) -> Incoming<'_, TcpStream> {
        self.owned.incoming()
    }
}

/// A TCP connection; dropped, it is closed through the ring.
#[derive(Debug)]
pub struct TcpStream {
    owned: Owned,
}

owning!(TcpStream, std::net::TcpStream);
stream_io!(TcpStream);

impl Accepts for TcpStream {
    type Addr = SocketAddr;
    fn accepted(
        io: &Proactor,
        fd: OwnedFd,
        addr: Option<SockAddr>,
    ) -> io::Result<(Self, SocketAddr)> {
        let stream = TcpStream {
            owned: Owned::socket(io, fd),
        };
        let addr = match addr.and_then(|a| a.as_socket()) {
            Some(a) => a,
            None => stream.peer_addr()?,
        };
        Ok((stream, addr))
    }
}

impl TcpStream {
    /// Connects to `addr` through the ring (a `Connect`): refused is
    /// `ConnectionRefused`, and so on.
    pub async fn connect(io: &Proactor, addr: SocketAddr) -> io::Result<TcpStream> {
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let owned = socket::socket(io, family, libc::SOCK_STREAM)?;
        owned.connect(SockAddr::from(addr)).await?;
        Ok(TcpStream { owned })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.owned.with_std(|s: &std::net::TcpStream| s.peer_addr())
    }

    /// This end's address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.owned
            .with_std(|s: &std::net::TcpStream| s.local_addr())
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.owned
            .with_std(|s: &std::net::TcpStream| s.set_nodelay(on))
    }
}

/// A UDP socket; dropped, it is closed through the ring.
#[derive(Debug)]
pub struct UdpSocket {
    owned: Owned,
}

owning!(UdpSocket, std::net::UdpSocket);

/// `recvmsg`'s completion: the count and the sender, and the buffer.
pub struct RecvFrom<B>(std::marker::PhantomData<fn() -> B>);

impl<B: 'static> Decode for RecvFrom<B> {
    type Output = (io::Result<(usize, SocketAddr)>, B);
    fn decode(self, mut cqe: Cqe) -> Self::Output {
        let mut bufs: Vec<B> = take_buf(&mut cqe);
        let buf = match bufs.pop() {
            Some(b) => b,
            None => unreachable!("recv_from builds its RecvMsg with one buffer"),
        };
        let res = cqe.io_result().and_then(|n| {
            let from = cqe.socket_addr().ok_or_else(invalid_addr)?;
            Ok((n as usize, from))
        });
        (res, buf)
    }
}

/// `sendmsg`'s completion: the count, and the buffer.
pub struct SentTo<B>(std::marker::PhantomData<fn() -> B>);

impl<B: 'static> Decode for SentTo<B> {
    type Output = (io::Result<usize>, B);
    fn decode(self, mut cqe: Cqe) -> Self::Output {
        let mut bufs: Vec<B> = take_buf(&mut cqe);
        let buf = match bufs.pop() {
            Some(b) => b,
            None => unreachable!("send_to builds its SendMsg with one buffer"),
        };
        (cqe.io_result().map(|n| n as usize), buf)
    }
}

impl UdpSocket {
    /// Binds to `addr`, as std's `bind` does.
    pub fn bind(io: &Proactor, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let std = each_addr(addr, std::net::UdpSocket::bind)?;
        UdpSocket::from_std(io, std)
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.owned
            .with_std(|s: &std::net::UdpSocket| s.local_addr())
    }

    /// Sets the peer `send` and `recv` use (a `Connect`).
    pub fn connect(&self, addr: SocketAddr) -> OpFuture<'_, Unit> {
        self.owned.connect(SockAddr::from(addr))
    }

    /// Sends a datagram to the connected peer.
    pub fn send<B: IoBuf>(&self, buf: B) -> OpFuture<'_, crate::proactor::BufResult<B>> {
        self.owned.send(buf, 0)
    }

    /// Receives a datagram from the connected peer.
    pub fn recv<B: IoBufMut>(&self, buf: B) -> OpFuture<'_, crate::proactor::BufResult<B>> {
        self.owned.recv(buf, 0)
    }

    /// Sends a datagram to `addr` (a `SendMsg`): the count, and the
    /// buffer.
    pub fn send_to<B: IoBuf>(&self, buf: B, addr: SocketAddr) -> OpFuture<'_, SentTo<B>> {
        let sqe = ops::SendMsg::new(self.owned.target(), vec![buf])
            .to(addr)
            .build();
        self.owned.op(sqe, SentTo(std::marker::PhantomData))
    }

    /// Receives a datagram (a `RecvMsg`): the count and the sender, and
    /// the buffer.
    pub fn recv_from<B: IoBufMut>(&self, buf: B) -> OpFuture<'_, RecvFrom<B>> {
        let sqe = ops::RecvMsg::new(self.owned.target(), vec![buf]).build();
        self.owned.op(sqe, RecvFrom(std::marker::PhantomData))
    }
}
