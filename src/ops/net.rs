//! Network operations: `Socket`, `Bind`, `Listen`, `Accept` (+multishot),
//! `Connect`, `Recv` (+multishot), `Send`, `RecvMsg`, `SendMsg`,
//! `Shutdown`.
//!
//! `Socket`, `Bind`, `Listen` and `Shutdown` never block: they run as one
//! syscall on the driver's thread. The others try their syscall at once
//! and, on `EAGAIN`/`EINPROGRESS`, wait for readiness in the descriptor's
//! per-direction queue (so operations on one socket and direction complete
//! in submission order), then try again. Sends always carry
//! `MSG_NOSIGNAL`: a closed peer is `-EPIPE`, never a SIGPIPE.
//!
//! ```
//! use kqring::{Ring, SockAddr, ops};
//! let ring = Ring::new(8)?;
//! let sq = ring.submission();
//! sq.push(ops::Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0).build().user_data(1)).unwrap();
//! sq.submit_and_wait(1)?;
//! let fd = ring.completion().pop().unwrap().result()? as i32;
//! let addr = SockAddr::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
//! sq.push(ops::Bind::new(fd, addr).build().user_data(2)).unwrap();
//! sq.push(ops::Listen::new(fd, 128).build().user_data(3)).unwrap();
//! sq.push(ops::Close::new(fd).build().user_data(4)).unwrap();
//! sq.submit_and_wait(3)?;
//! let mut cqes = ring.completion().wait_nr(3)?;
//! cqes.sort_by_key(|c| c.user_data());
//! assert!(cqes.iter().all(|c| c.res() == 0));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::os::fd::RawFd;

use bytes::{Bytes, BytesMut};

use crate::cq::Buffer;
use crate::ops::bufs::Pick;
use crate::ops::io::WriteBuf;
use crate::ops::{Fd, FileSlot, Op};
use crate::sq::{Sqe, SqeFlags};
use crate::sys::net::SockAddr;

/// `IORING_OP_SOCKET`: creates a socket; `res` is its descriptor.
///
/// `domain`, `ty` and `protocol` are `socket(2)`'s (`libc::AF_INET`,
/// `libc::SOCK_STREAM`, 0…). The socket is close-on-exec and non-blocking
/// unless told otherwise: kqring's own operations never need it blocking,
/// and a blocking socket's `Connect` has to run on the blocking pool.
#[derive(Debug, Clone, Copy)]
pub struct Socket {
    pub(crate) domain: i32,
    pub(crate) ty: i32,
    pub(crate) protocol: i32,
    pub(crate) cloexec: bool,
    pub(crate) nonblocking: bool,
    /// Where in the file table the socket goes, if it goes there.
    pub(crate) direct: Option<FileSlot>,
}

impl Socket {
    /// A socket of `domain`, `ty` and `protocol`.
    pub fn new(domain: i32, ty: i32, protocol: i32) -> Socket {
        Socket {
            domain,
            ty,
            protocol,
            cloexec: true,
            nonblocking: true,
            direct: None,
        }
    }

    /// Close-on-exec (`SOCK_CLOEXEC`; default on).
    #[must_use]
    pub fn cloexec(mut self, on: bool) -> Socket {
        self.cloexec = on;
        self
    }

    /// `O_NONBLOCK` (`SOCK_NONBLOCK`; default on).
    #[must_use]
    pub fn nonblocking(mut self, on: bool) -> Socket {
        self.nonblocking = on;
        self
    }

    /// Puts the socket into the ring's file table rather than the
    /// process's: `res` is 0 for [`FileSlot::Index`], the slot chosen for
    /// [`FileSlot::Alloc`]. The socket is the ring's, close-on-exec and
    /// non-blocking.
    #[must_use]
    pub fn file_index(mut self, slot: FileSlot) -> Socket {
        self.direct = Some(slot);
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Socket(self))
    }
}

/// `IORING_OP_BIND`: binds `fd` to an address; completes with 0.
#[derive(Debug)]
pub struct Bind {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) addr: Box<SockAddr>,
}

impl Bind {
    /// Binds `fd` to `addr` (a [`SockAddr`], or a `std::net::SocketAddr`).
    pub fn new(fd: impl Into<Fd>, addr: impl Into<SockAddr>) -> Bind {
        let (fd, fixed) = fd.into().split();
        Bind {
            fd,
            fixed,
            addr: Box::new(addr.into()),
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Bind(self))
    }
}

/// `IORING_OP_LISTEN`: marks `fd` as listening; completes with 0.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) backlog: i32,
}

impl Listen {
    /// Listens on `fd` with room for `backlog` pending connections.
    pub fn new(fd: impl Into<Fd>, backlog: i32) -> Listen {
        let (fd, fixed) = fd.into().split();
        Listen { fd, fixed, backlog }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Listen(self))
    }
}

/// `IORING_OP_ACCEPT`: accepts a connection on a listening socket; `res`
/// is the new descriptor. With [`peer_addr`](Self::peer_addr) the peer's
/// address rides in the completion ([`Cqe::addr`](crate::Cqe::addr)).
///
/// Multishot (`IORING_ACCEPT_MULTISHOT`) posts one completion with
/// `F_MORE` per connection until an error (`-EMFILE` included), a cancel or
/// a `Close` of the listener ends it with a completion without `F_MORE`.
///
/// A non-blocking listener is accepted from directly; on a blocking one
/// each `accept` is preceded by a zero-timeout `poll`, so the driver never
/// blocks in it unless another process takes the connection in between.
#[derive(Debug)]
pub struct Accept {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) multishot: bool,
    pub(crate) want_addr: bool,
    pub(crate) cloexec: bool,
    pub(crate) nonblocking: bool,
    /// Whether the listener is blocking, once looked up.
    pub(crate) blocking: Option<bool>,
    /// The peer's address of the connection just accepted.
    pub(crate) addr: Option<Box<SockAddr>>,
    /// Where in the file table the new socket goes, if it goes there.
    pub(crate) direct: Option<FileSlot>,
}

impl Accept {
    /// Accepts one connection on `fd`; the new socket is close-on-exec.
    pub fn new(fd: impl Into<Fd>) -> Accept {
        let (fd, fixed) = fd.into().split();
        Accept {
            fd,
            fixed,
            multishot: false,
            want_addr: false,
            cloexec: true,
            nonblocking: false,
            blocking: None,
            addr: None,
            direct: None,
        }
    }

    /// Keeps accepting, one completion per connection.
    #[must_use]
    pub fn multishot(mut self, on: bool) -> Accept {
        self.multishot = on;
        self
    }

    /// Reports each peer's address with its completion.
    #[must_use]
    pub fn peer_addr(mut self, on: bool) -> Accept {
        self.want_addr = on;
        self
    }

    /// Close-on-exec on the new socket (`SOCK_CLOEXEC`; default on).
    #[must_use]
    pub fn cloexec(mut self, on: bool) -> Accept {
        self.cloexec = on;
        self
    }

    /// `O_NONBLOCK` on the new socket (`SOCK_NONBLOCK`; default off).
    #[must_use]
    pub fn nonblocking(mut self, on: bool) -> Accept {
        self.nonblocking = on;
        self
    }

    /// Puts the new socket into the ring's file table rather than the
    /// process's (io_uring's direct accept): the completion's `res` is 0
    /// for [`FileSlot::Index`], the slot chosen for [`FileSlot::Alloc`].
    /// The socket is the ring's, so close-on-exec and non-blocking
    /// whatever [`cloexec`](Accept::cloexec) and
    /// [`nonblocking`](Accept::nonblocking) say. A multishot accept needs
    /// `Alloc` (`-EINVAL` otherwise), as in io_uring.
    #[must_use]
    pub fn file_index(mut self, slot: FileSlot) -> Accept {
        self.direct = Some(slot);
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Accept(self))
    }
}

/// `IORING_OP_CONNECT`: connects `fd` to an address; completes with 0, or
/// the connection's error (`-ECONNREFUSED`, `-ETIMEDOUT`…).
///
/// On a non-blocking socket the connect is started at once and, while it
/// is in progress (`EINPROGRESS`), waits for the socket to turn writable,
/// then reports `SO_ERROR`. A blocking socket's connect runs on the
/// blocking pool.
#[derive(Debug)]
pub struct Connect {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) addr: Box<SockAddr>,
    /// The connect is in progress: the next attempt reads its outcome.
    pub(crate) started: bool,
}

impl Connect {
    /// Connects `fd` to `addr` (a [`SockAddr`] or `std::net::SocketAddr`).
    pub fn new(fd: impl Into<Fd>, addr: impl Into<SockAddr>) -> Connect {
        let (fd, fixed) = fd.into().split();
        Connect {
            fd,
            fixed,
            addr: Box::new(addr.into()),
            started: false,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Connect(self))
    }
}

/// `IORING_OP_RECV`: receives into the spare capacity of a `BytesMut`, or
/// into a buffer taken from a provided group ([`Recv::select`]); `res` is
/// the bytes received, 0 at end of stream.
///
/// Multishot (`IORING_RECV_MULTISHOT`, buffer selection only) posts a
/// completion with `F_MORE` and a buffer each time data arrives, and ends
/// with a completion without `F_MORE`: 0 at end of stream, an error,
/// `-ENOBUFS` when the group ran dry, or `-ECANCELED`.
#[derive(Debug)]
pub struct Recv {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) buf: Option<BytesMut>,
    pub(crate) flags: i32,
    pub(crate) len: u32,
    pub(crate) multishot: bool,
    pub(crate) pick: Pick,
    /// Bytes received so far by a `MSG_WAITALL` receive.
    pub(crate) done: u32,
}

impl Recv {
    /// Receives from `fd` into `buf`'s spare capacity.
    pub fn new(fd: impl Into<Fd>, buf: BytesMut) -> Recv {
        let (fd, fixed) = fd.into().split();
        Recv {
            fd,
            fixed,
            buf: Some(buf),
            flags: 0,
            len: 0,
            multishot: false,
            pick: Pick::default(),
            done: 0,
        }
    }

    /// Receives from `fd` into a buffer of provided group `group`, taken
    /// when the data is there. `build()` sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> Recv {
        Recv {
            buf: None,
            pick: Pick {
                group,
                ..Pick::default()
            },
            ..Recv::new(fd, BytesMut::new())
        }
    }

    /// `recv(2)` flags (`libc::MSG_PEEK`, `libc::MSG_WAITALL`…).
    /// `MSG_WAITALL` keeps receiving until the buffer is full, the stream
    /// ends or fails (own buffers only).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> Recv {
        self.flags = flags;
        self
    }

    /// Receives at most `len` bytes (0, the default: as many as the
    /// buffer holds).
    #[must_use]
    pub fn len(mut self, len: u32) -> Recv {
        self.len = len;
        self
    }

    /// Keeps receiving, one completion per arrival (needs
    /// [`select`](Self::select)).
    #[must_use]
    pub fn multishot(mut self, on: bool) -> Recv {
        self.multishot = on;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.buf.is_none();
        let sqe = Sqe::new(Op::Recv(self));
        if select {
            sqe.flags(SqeFlags::BUFFER_SELECT)
        } else {
            sqe
        }
    }
}

/// `IORING_OP_SEND`: sends the buffer's bytes; `res` is how many were
/// sent (a short send is a success), and the buffer comes back whole.
#[derive(Debug)]
pub struct Send {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) buf: Option<WriteBuf>,
    pub(crate) flags: i32,
    /// Bytes sent so far by a `MSG_WAITALL` send.
    pub(crate) done: u32,
}

impl Send {
    /// Sends `buf` (`Bytes` or `BytesMut`) on `fd`.
    pub fn new(fd: impl Into<Fd>, buf: impl Into<WriteBuf>) -> Send {
        let (fd, fixed) = fd.into().split();
        Send {
            fd,
            fixed,
            buf: Some(buf.into()),
            flags: 0,
            done: 0,
        }
    }

    /// `send(2)` flags (`MSG_NOSIGNAL` is always added). `MSG_WAITALL`
    /// sends the rest as room comes, until all is sent or the socket
    /// fails, as io_uring does on a stream socket.
    #[must_use]
    pub fn flags(mut self, flags: i32) -> Send {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Send(self))
    }
}

/// What a `RecvMsg` owns, boxed to keep every operation small.
#[derive(Debug)]
pub(crate) struct RecvMsgState {
    /// The caller's buffers.
    pub(crate) bufs: Option<Vec<BytesMut>>,
    /// The provided buffer taken, with buffer selection.
    pub(crate) picked: Option<BytesMut>,
    /// The sender's address, once received.
    pub(crate) from: Option<Box<SockAddr>>,
    pub(crate) flags: i32,
}

/// `IORING_OP_RECVMSG`: receives one message into the spare capacity of
/// the buffers in order (or into a provided buffer,
/// [`RecvMsg::select`]); `res` is the bytes received, and the sender's
/// address comes back with the completion ([`Cqe::addr`](crate::Cqe::addr))
/// — for UDP and Unix datagram sockets.
#[derive(Debug)]
pub struct RecvMsg {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) msg: Box<RecvMsgState>,
    pub(crate) pick: Pick,
}

impl RecvMsg {
    /// Receives from `fd` into `bufs`.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<BytesMut>) -> RecvMsg {
        let (fd, fixed) = fd.into().split();
        RecvMsg {
            fd,
            fixed,
            msg: Box::new(RecvMsgState {
                bufs: Some(bufs),
                picked: None,
                from: None,
                flags: 0,
            }),
            pick: Pick::default(),
        }
    }

    /// Receives from `fd` into a buffer of provided group `group`. `build()`
    /// sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> RecvMsg {
        let mut op = RecvMsg::new(fd, Vec::new());
        op.msg.bufs = None;
        op.pick.group = group;
        op
    }

    /// `recvmsg(2)` flags (`libc::MSG_PEEK`…).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> RecvMsg {
        self.msg.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.msg.bufs.is_none();
        let sqe = Sqe::new(Op::RecvMsg(self));
        if select {
            sqe.flags(SqeFlags::BUFFER_SELECT)
        } else {
            sqe
        }
    }
}

/// What a `SendMsg` owns, boxed to keep every operation small.
#[derive(Debug)]
pub(crate) struct SendMsgState {
    pub(crate) bufs: Option<Vec<Bytes>>,
    pub(crate) to: Option<SockAddr>,
    pub(crate) flags: i32,
}

/// `IORING_OP_SENDMSG`: sends the buffers as one message, to an address
/// ([`to`](Self::to)) or the connected peer; `res` is the bytes sent.
#[derive(Debug)]
pub struct SendMsg {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) msg: Box<SendMsgState>,
}

impl SendMsg {
    /// Sends `bufs` on `fd`.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<Bytes>) -> SendMsg {
        let (fd, fixed) = fd.into().split();
        SendMsg {
            fd,
            fixed,
            msg: Box::new(SendMsgState {
                bufs: Some(bufs),
                to: None,
                flags: 0,
            }),
        }
    }

    /// The destination (for unconnected datagram sockets).
    #[must_use]
    pub fn to(mut self, addr: impl Into<SockAddr>) -> SendMsg {
        self.msg.to = Some(addr.into());
        self
    }

    /// `sendmsg(2)` flags (`MSG_NOSIGNAL` is always added).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> SendMsg {
        self.msg.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::SendMsg(self))
    }
}

/// `IORING_OP_SHUTDOWN`: shuts down one or both directions of a
/// connection; completes with 0 (`-ENOTCONN` when not connected).
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) how: std::net::Shutdown,
}

impl Shutdown {
    /// Shuts down `how` of `fd` (`std::net::Shutdown::Write` half-closes).
    pub fn new(fd: impl Into<Fd>, how: std::net::Shutdown) -> Shutdown {
        let (fd, fixed) = fd.into().split();
        Shutdown { fd, fixed, how }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Shutdown(self))
    }
}

impl RecvMsg {
    /// The buffer(s) for the completion.
    pub(crate) fn take_buffer(&mut self) -> Option<Buffer> {
        match self.msg.picked.take() {
            Some(b) => Some(Buffer::Mut(b)),
            None => self.msg.bufs.take().map(Buffer::MutVec),
        }
    }
}
