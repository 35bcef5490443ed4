//! Sockets: `Socket`, `Bind`, `Listen`, `Accept` (+multishot), `Connect`,
//! `Shutdown`. The transfers on them are in `sock.rs`.
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
//! let fd = ring.completion().pop().unwrap().io_result()? as i32;
//! let addr = SockAddr::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
//! sq.push(ops::Bind::new(fd, addr).build().user_data(2)).unwrap();
//! sq.push(ops::Listen::new(fd, 128).build().user_data(3)).unwrap();
//! sq.push(ops::Close::new(fd).build().user_data(4)).unwrap();
//! sq.submit_and_wait(3)?;
//! let mut cqes = ring.completion().wait_nr(3)?;
//! cqes.sort_by_key(|c| c.user_data());
//! assert!(cqes.iter().all(|c| c.result() == 0));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::os::fd::RawFd;

use crate::cq::Extra;
use crate::ops::{
    Attempt, BlockingOp, Dir, DirectOp, Fd, FileSlot, IoOp, Op, Output, Transfer, evented,
    operation, res,
};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::io::{self as sys, FdKind};
use crate::sys::net::{self as netsys, SockAddr};

/// `IORING_OP_SOCKET`: creates a socket; `res` is its descriptor.
///
/// `domain`, `ty` and `protocol` are `socket(2)`'s (`libc::AF_INET`,
/// `libc::SOCK_STREAM`, 0…). The socket is close-on-exec and non-blocking
/// unless told otherwise: kqring's own operations never need it blocking,
/// and a blocking socket's `Connect` has to run on the blocking pool.
#[derive(Debug, Clone, Copy)]
pub struct Socket {
    domain: i32,
    ty: i32,
    protocol: i32,
    cloexec: bool,
    nonblocking: bool,
    /// Where in the file table the socket goes, if it goes there.
    direct: Option<FileSlot>,
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
        Sqe::new(Op::Direct(Box::new(self)))
    }
}

operation!(Socket, "Socket", |_, _out| {};
    fn direct_slot(&self) -> Option<FileSlot> {
        self.direct
    }
);

impl DirectOp for Socket {
    fn call(&mut self) -> i32 {
        // A descriptor for the file table is the ring's: never inherited,
        // never blocking.
        let ring_owned = self.direct.is_some();
        res(netsys::socket(
            self.domain,
            self.ty,
            self.protocol,
            self.cloexec || ring_owned,
            self.nonblocking || ring_owned,
        ))
    }
}

/// `IORING_OP_BIND`: binds `fd` to an address; completes with 0.
#[derive(Debug)]
pub struct Bind {
    fd: Fd,
    addr: SockAddr,
}

impl Bind {
    /// Binds `fd` to `addr` (a [`SockAddr`], or a `std::net::SocketAddr`).
    pub fn new(fd: impl Into<Fd>, addr: impl Into<SockAddr>) -> Bind {
        Bind {
            fd: fd.into(),
            addr: addr.into(),
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Direct(Box::new(self)))
    }
}

operation!(Bind, "Bind", fd, |_, _out| {});

impl DirectOp for Bind {
    fn call(&mut self) -> i32 {
        res(netsys::bind(self.fd.number(), &self.addr))
    }
}

/// `IORING_OP_LISTEN`: marks `fd` as listening; completes with 0.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    fd: Fd,
    backlog: i32,
}

impl Listen {
    /// Listens on `fd` with room for `backlog` pending connections.
    pub fn new(fd: impl Into<Fd>, backlog: i32) -> Listen {
        Listen {
            fd: fd.into(),
            backlog,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Direct(Box::new(self)))
    }
}

operation!(Listen, "Listen", fd, |_, _out| {});

impl DirectOp for Listen {
    fn call(&mut self) -> i32 {
        res(netsys::listen(self.fd.number(), self.backlog))
    }
}

/// `IORING_OP_SHUTDOWN`: shuts down one or both directions of a
/// connection; completes with 0 (`-ENOTCONN` when not connected).
#[derive(Debug, Clone, Copy)]
pub struct Shutdown {
    fd: Fd,
    how: std::net::Shutdown,
}

impl Shutdown {
    /// Shuts down `how` of `fd` (`std::net::Shutdown::Write` half-closes).
    pub fn new(fd: impl Into<Fd>, how: std::net::Shutdown) -> Shutdown {
        Shutdown { fd: fd.into(), how }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Direct(Box::new(self)))
    }
}

operation!(Shutdown, "Shutdown", fd, |_, _out| {});

impl DirectOp for Shutdown {
    fn call(&mut self) -> i32 {
        res(netsys::shutdown(self.fd.number(), self.how))
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
    fd: Fd,
    multishot: bool,
    want_addr: bool,
    cloexec: bool,
    nonblocking: bool,
    /// Whether the listener is blocking, once looked up.
    blocking: Option<bool>,
    /// The peer's address of the connection just accepted.
    addr: Option<SockAddr>,
    /// Where in the file table the new socket goes, if it goes there.
    direct: Option<FileSlot>,
}

impl Accept {
    /// Accepts one connection on `fd`; the new socket is close-on-exec.
    pub fn new(fd: impl Into<Fd>) -> Accept {
        Accept {
            fd: fd.into(),
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
        Sqe::new(Op::Io(Box::new(self)))
    }

    /// One accept: the new descriptor, or not ready.
    fn accept(&mut self) -> Result<usize, Errno> {
        let blocking = match self.blocking {
            Some(b) => b,
            None => {
                let blocking = !netsys::is_nonblocking(self.fd.number())?;
                // accept(2) would say so at once, but a blocking socket is
                // polled first, and one that does not listen may be
                // readable later or never.
                if blocking && !netsys::is_listening(self.fd.number())? {
                    return Err(Errno::EINVAL);
                }
                *self.blocking.insert(blocking)
            }
        };
        let ring_owned = self.direct.is_some();
        loop {
            // A blocking listener: accept only what poll says is there, so
            // the driver's thread does not block in accept.
            if blocking {
                let r = sys::poll_now(self.fd.number(), libc::POLLIN)? as i16;
                if r & libc::POLLNVAL != 0 {
                    return Err(Errno::EBADF);
                }
                if r & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) == 0 {
                    return Err(Errno::new(libc::EAGAIN));
                }
            }
            let mut addr = self.want_addr.then(SockAddr::empty);
            match netsys::accept(
                self.fd.number(),
                addr.as_mut(),
                self.cloexec || ring_owned,
                self.nonblocking || ring_owned,
            ) {
                Ok(fd) => {
                    self.addr = addr;
                    return Ok(fd);
                }
                // The connection went away before it was taken: try the next.
                Err(Errno::ECONNABORTED) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

operation!(Accept, "Accept", fd, |mut op, out| op.take_shot(out);
    fn direct_slot(&self) -> Option<FileSlot> {
        self.direct
    }
);

evented!(Accept, accept);

impl IoOp for Accept {
    fn transfer(&self) -> Transfer {
        Transfer::Accept
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        crate::ops::settle(self.accept(), Dir::Read)
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        if select {
            return Err(Errno::new(libc::EOPNOTSUPP));
        }
        // io_uring: a multishot accept into the table must let it choose
        // the slots.
        if self.multishot && matches!(self.direct, Some(FileSlot::Index(_))) {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn continues(&self, res: i32) -> bool {
        self.multishot && res >= 0
    }

    fn take_shot(&mut self, out: &mut Output) {
        if let Some(addr) = self.addr.take() {
            out.extra = Extra::Addr(Box::new(addr));
        }
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
    fd: Fd,
    addr: SockAddr,
    /// The connect is in progress: the next attempt reads its outcome.
    started: bool,
}

impl Connect {
    /// Connects `fd` to `addr` (a [`SockAddr`] or `std::net::SocketAddr`).
    pub fn new(fd: impl Into<Fd>, addr: impl Into<SockAddr>) -> Connect {
        Connect {
            fd: fd.into(),
            addr: addr.into(),
            started: false,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }
}

/// The outcome of a connect in progress: its error, done, or still going.
fn connect_outcome(fd: RawFd) -> Attempt {
    match netsys::take_socket_error(fd) {
        Err(e) | Ok(Some(e)) => return Attempt::Done(e.res()),
        Ok(None) => {}
    }
    match netsys::is_connected(fd) {
        Ok(true) => Attempt::Done(0),
        Ok(false) => Attempt::Wait(Dir::Write),
        Err(e) => Attempt::Done(e.res()),
    }
}

operation!(Connect, "Connect", fd, |_, _out| {});

impl BlockingOp for Connect {
    /// A blocking socket's connect, on a worker.
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        match netsys::connect(self.fd.number(), &self.addr) {
            Ok(_) => 0,
            // Interrupted: the connect goes on; wait for its outcome.
            Err(Errno::EINPROGRESS) => loop {
                if let Err(e) = netsys::poll_wait(self.fd.number(), libc::POLLOUT) {
                    return e.res();
                }
                if let Attempt::Done(res) = connect_outcome(self.fd.number()) {
                    return res;
                }
            },
            Err(e) => e.res(),
        }
    }
}

impl IoOp for Connect {
    fn transfer(&self) -> Transfer {
        Transfer::Send
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        if self.started {
            return connect_outcome(self.fd.number());
        }
        match netsys::is_nonblocking(self.fd.number()) {
            Ok(true) => {}
            // A blocking socket's connect would block the driver: the
            // pool runs it.
            Ok(false) => return Attempt::Offload,
            Err(e) => return Attempt::Done(e.res()),
        }
        match netsys::connect(self.fd.number(), &self.addr) {
            Ok(_) => Attempt::Done(0),
            Err(Errno::EINPROGRESS | Errno::EALREADY) => {
                self.started = true;
                Attempt::Wait(Dir::Write)
            }
            // A Unix socket whose listener's backlog is full: try again
            // when it may have room.
            Err(e) if e.would_block() => Attempt::Wait(Dir::Write),
            Err(e) => Attempt::Done(e.res()),
        }
    }

    fn connecting(&self) -> bool {
        self.started
    }
}
