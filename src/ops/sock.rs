//! Socket transfers: `Recv` (+multishot), `Send`, `RecvMsg`, `SendMsg`.
//!
//! Each tries its syscall at once and, on `EAGAIN`, waits for readiness
//! in the descriptor's per-direction queue (so operations on one socket
//! and direction complete in submission order), then tries again. Sends
//! always carry `MSG_NOSIGNAL`: a closed peer is `-EPIPE`, never a
//! SIGPIPE.

use bytes::{Bytes, BytesMut};

use crate::buf::{IoBuf, IoBufMut, Room, filled};
use crate::cq::Extra;
use crate::ops::io::{IOV_MAX, iovecs, spread};
use crate::ops::{
    Attempt, Dir, Fd, IoOp, Op, Output, Select, Target, Transfer, evented, net_limit, operation,
    res, settle,
};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::io::{self as sys, FdKind};
use crate::sys::net::{self as netsys, SockAddr};

/// `MSG_WAITALL` without the bit, and `MSG_DONTWAIT` with it: kqring
/// makes a wait-all transfer from several calls, none of which blocks.
fn call_flags(flags: i32) -> i32 {
    (flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT
}

/// `IORING_OP_RECV`: receives into the buffer's room after its data, or
/// into a buffer taken from a provided group ([`Recv::select`]); `res` is
/// the bytes received, 0 at end of stream.
///
/// Multishot (`IORING_RECV_MULTISHOT`, buffer selection only) posts a
/// completion with `F_MORE` and a buffer each time data arrives, and ends
/// with a completion without `F_MORE`: 0 at end of stream, an error,
/// `-ENOBUFS` when the group ran dry, or `-ECANCELED`.
#[derive(Debug)]
pub struct Recv<B = BytesMut> {
    fd: Fd,
    multishot: bool,
    flags: i32,
    len: u32,
    target: Target<B>,
    /// Bytes received so far by a `MSG_WAITALL` receive.
    done: usize,
}

impl<B: IoBufMut> Recv<B> {
    /// Receives from `fd` into `buf`'s room.
    pub fn new(fd: impl Into<Fd>, buf: B) -> Recv<B> {
        Recv {
            fd: fd.into(),
            multishot: false,
            flags: 0,
            len: 0,
            target: Target::own(buf),
            done: 0,
        }
    }

    /// `recv(2)` flags (`libc::MSG_PEEK`, `libc::MSG_WAITALL`…).
    /// `MSG_WAITALL` keeps receiving until the buffer is full, the stream
    /// ends or fails (own buffers only).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> Recv<B> {
        self.flags = flags;
        self
    }

    /// Receives at most `len` bytes (0, the default: as many as the
    /// buffer holds).
    #[must_use]
    pub fn len(mut self, len: u32) -> Recv<B> {
        self.len = len;
        self
    }

    /// Keeps receiving, one completion per arrival (needs
    /// [`select`](Recv::select)).
    #[must_use]
    pub fn multishot(mut self, on: bool) -> Recv<B> {
        self.multishot = on;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.target.is_select();
        Sqe::new(Op::Io(Box::new(self))).select(select)
    }

    fn wait_all(&self) -> bool {
        self.flags & libc::MSG_WAITALL != 0
    }

    /// One receive, into the provided buffer taken or the own one.
    fn recv(&mut self) -> Result<usize, Errno> {
        let flags = call_flags(self.flags);
        let wait_all = self.wait_all();
        let (buf, start) = match &mut self.target {
            Target::Own { buf, start } => (buf, *start),
            Target::Select(s) => {
                // Nothing taken: no room, as a full buffer has none.
                let Some((_, picked)) = &mut s.picked else {
                    return Ok(0);
                };
                let mut room = Room::of(picked, 0).limit(net_limit(usize::MAX, self.len));
                let n = sys::recv(self.fd.number(), room.as_uninit(), flags)?;
                filled(picked, 0, n);
                return Ok(n);
            }
        };
        let from = start + self.done;
        let limit = if wait_all && self.len != 0 {
            (self.len as usize).saturating_sub(self.done)
        } else {
            net_limit(usize::MAX, self.len)
        };
        let mut room = Room::of(buf, from).limit(limit);
        let asked = room.len();
        let n = sys::recv(self.fd.number(), room.as_uninit(), flags)?;
        filled(buf, from, n);
        if !wait_all {
            return Ok(n);
        }
        self.done += n;
        if n > 0 && n < asked {
            // MSG_WAITALL: keep what came, wait for the rest.
            return Err(Errno::new(libc::EAGAIN));
        }
        Ok(self.done)
    }
}

impl Recv<BytesMut> {
    /// Receives from `fd` into a buffer of provided group `group`, taken
    /// when the data is there. `build()` sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> Recv<BytesMut> {
        Recv {
            fd: fd.into(),
            multishot: false,
            flags: 0,
            len: 0,
            target: Target::Select(Select::new(group)),
            done: 0,
        }
    }
}

operation!({B: IoBufMut} Recv<B>, "Recv", fd, |op, out| op.target.finish(out));

evented!({B: IoBufMut} Recv<B>, recv);

impl<B: IoBufMut> IoOp for Recv<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Receive
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        match self.recv() {
            // What was received before the failure is the result, as in
            // io_uring.
            Err(e) if !e.would_block() && self.wait_all() && self.done > 0 => {
                Attempt::Done(res(Ok(self.done)))
            }
            r => settle(r, Dir::Read),
        }
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        // A provided buffer can't be waited on until full; a receive built
        // to select has no buffer of its own, one with its own can't select.
        if select != self.target.is_select() || (select && self.wait_all()) {
            return Err(Errno::EINVAL);
        }
        // io_uring: multishot receives need a provided buffer group.
        if self.multishot && !select {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn select(&mut self) -> Option<&mut Select> {
        self.target.select()
    }

    fn wanted(&self) -> Option<usize> {
        // Only MSG_WAITALL makes a short receive a failure, as in io_uring.
        if !self.wait_all() {
            return None;
        }
        self.target.room().map(|room| net_limit(room, self.len))
    }

    fn read_request(&self) -> Option<usize> {
        // MSG_PEEK leaves the data, MSG_WAITALL goes on after a short read.
        if self.flags & (libc::MSG_PEEK | libc::MSG_WAITALL) != 0 {
            return None;
        }
        Some(net_limit(self.target.room()?, self.len)).filter(|&n| n > 0)
    }

    fn continues(&self, res: i32) -> bool {
        self.multishot && res > 0
    }

    fn take_shot(&mut self, out: &mut Output) {
        if let Some((_, picked)) = self.target.select().and_then(|s| s.picked.take()) {
            out.buf(picked);
        }
    }
}

/// `IORING_OP_SEND`: sends the buffer's bytes; `res` is how many were
/// sent (a short send is a success), and the buffer comes back whole.
#[derive(Debug)]
pub struct Send<B = Bytes> {
    fd: Fd,
    buf: B,
    flags: i32,
    /// Bytes sent so far by a `MSG_WAITALL` send.
    done: usize,
}

impl<B: IoBuf> Send<B> {
    /// Sends `buf` on `fd`.
    pub fn new(fd: impl Into<Fd>, buf: B) -> Send<B> {
        Send {
            fd: fd.into(),
            buf,
            flags: 0,
            done: 0,
        }
    }

    /// `send(2)` flags (`MSG_NOSIGNAL` is always added). `MSG_WAITALL`
    /// sends the rest as room comes, until all is sent or the socket
    /// fails, as io_uring does on a stream socket.
    #[must_use]
    pub fn flags(mut self, flags: i32) -> Send<B> {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }

    fn wait_all(&self) -> bool {
        self.flags & libc::MSG_WAITALL != 0
    }

    /// One send of what is left.
    fn send(&mut self) -> Result<usize, Errno> {
        let data = self.buf.as_bytes();
        let from = self.done.min(data.len());
        let n = sys::send(self.fd.number(), &data[from..], call_flags(self.flags))?;
        if !self.wait_all() {
            return Ok(n);
        }
        self.done += n;
        if n > 0 && self.done < data.len() {
            // MSG_WAITALL: the rest goes when there is room.
            return Err(Errno::new(libc::EAGAIN));
        }
        Ok(self.done)
    }
}

operation!({B: IoBuf} Send<B>, "Send", fd, |op, out| out.buf(op.buf));

evented!({B: IoBuf} Send<B>, send);

impl<B: IoBuf> IoOp for Send<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Send
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        match self.send() {
            // What was sent before the failure is the result, as in
            // io_uring.
            Err(e) if !e.would_block() && self.wait_all() && self.done > 0 => {
                Attempt::Done(res(Ok(self.done)))
            }
            r => settle(r, Dir::Write),
        }
    }

    fn wanted(&self) -> Option<usize> {
        self.wait_all().then(|| self.buf.as_bytes().len())
    }
}

/// `IORING_OP_RECVMSG`: receives one message into the room of the buffers
/// in order (or into a provided buffer, [`RecvMsg::select`]); `res` is the
/// bytes received, and the sender's address comes back with the completion
/// ([`Cqe::addr`](crate::Cqe::addr)) — for UDP and Unix datagram sockets.
/// More than 1024 buffers (`IOV_MAX`) is `-EMSGSIZE`, as in io_uring.
#[derive(Debug)]
pub struct RecvMsg<B = BytesMut> {
    fd: Fd,
    bufs: Vec<B>,
    /// Each buffer's length when given.
    start: Vec<usize>,
    flags: i32,
    select: Option<Select>,
    /// The sender's address, once received.
    from: Option<SockAddr>,
}

impl<B: IoBufMut> RecvMsg<B> {
    /// Receives from `fd` into `bufs`.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<B>) -> RecvMsg<B> {
        RecvMsg {
            fd: fd.into(),
            start: bufs.iter().map(IoBufMut::buf_len).collect(),
            bufs,
            flags: 0,
            select: None,
            from: None,
        }
    }

    /// `recvmsg(2)` flags (`libc::MSG_PEEK`…).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> RecvMsg<B> {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.select.is_some();
        Sqe::new(Op::Io(Box::new(self))).select(select)
    }

    fn recvmsg(&mut self) -> Result<usize, Errno> {
        let mut from = SockAddr::empty();
        let flags = self.flags | libc::MSG_DONTWAIT;
        let n = if let Some((_, picked)) = self.select.as_mut().and_then(|s| s.picked.as_mut()) {
            let iov = [Room::of(picked, 0).iovec()];
            let (n, _) = netsys::recvmsg_from(self.fd.number(), &iov, &mut from, flags)?;
            filled(picked, 0, n);
            n
        } else {
            let iov: Vec<libc::iovec> = self
                .bufs
                .iter_mut()
                .zip(&self.start)
                .map(|(b, &f)| Room::of(b, f).iovec())
                .collect();
            let (n, _) = netsys::recvmsg_from(self.fd.number(), &iov, &mut from, flags)?;
            spread(&mut self.bufs, &self.start, n);
            n
        };
        if !from.is_empty() {
            self.from = Some(from);
        }
        Ok(n)
    }
}

impl RecvMsg<BytesMut> {
    /// Receives from `fd` into a buffer of provided group `group`. `build()`
    /// sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> RecvMsg<BytesMut> {
        RecvMsg {
            select: Some(Select::new(group)),
            ..RecvMsg::new(fd, Vec::new())
        }
    }
}

operation!({B: IoBufMut} RecvMsg<B>, "RecvMsg", fd, |op, out| {
    match op.select {
        Some(Select {
            picked: Some((_, picked)),
            ..
        }) => out.buf(picked),
        Some(_) => {}
        None => out.buf(op.bufs),
    }
    if let Some(from) = op.from {
        out.extra = Extra::Addr(Box::new(from));
    }
});

evented!({B: IoBufMut} RecvMsg<B>, recvmsg);

impl<B: IoBufMut> IoOp for RecvMsg<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Receive
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        settle(self.recvmsg(), Dir::Read)
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        if select != self.select.is_some() {
            return Err(Errno::EINVAL);
        }
        too_many(self.bufs.len())
    }

    fn select(&mut self) -> Option<&mut Select> {
        self.select.as_mut()
    }
}

/// `IORING_OP_SENDMSG`: sends the buffers as one message, to an address
/// ([`to`](SendMsg::to)) or the connected peer; `res` is the bytes sent.
/// More than 1024 buffers (`IOV_MAX`) is `-EMSGSIZE`, as in io_uring.
#[derive(Debug)]
pub struct SendMsg<B = Bytes> {
    fd: Fd,
    bufs: Vec<B>,
    to: Option<SockAddr>,
    flags: i32,
}

impl<B: IoBuf> SendMsg<B> {
    /// Sends `bufs` on `fd`.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<B>) -> SendMsg<B> {
        SendMsg {
            fd: fd.into(),
            bufs,
            to: None,
            flags: 0,
        }
    }

    /// The destination (for unconnected datagram sockets).
    #[must_use]
    pub fn to(mut self, addr: impl Into<SockAddr>) -> SendMsg<B> {
        self.to = Some(addr.into());
        self
    }

    /// `sendmsg(2)` flags (`MSG_NOSIGNAL` is always added).
    #[must_use]
    pub fn flags(mut self, flags: i32) -> SendMsg<B> {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }

    fn sendmsg(&self) -> Result<usize, Errno> {
        let iov = iovecs(&self.bufs);
        netsys::sendmsg_to(
            self.fd.number(),
            &iov,
            self.to.as_ref(),
            self.flags | libc::MSG_DONTWAIT,
        )
    }
}

operation!({B: IoBuf} SendMsg<B>, "SendMsg", fd, |op, out| out.buf(op.bufs));

evented!({B: IoBuf} SendMsg<B>, sendmsg);

impl<B: IoBuf> IoOp for SendMsg<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Send
    }

    fn attempt(&mut self, _kind: &mut Option<FdKind>) -> Attempt {
        settle(self.sendmsg(), Dir::Write)
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        if select {
            return Err(Errno::new(libc::EOPNOTSUPP));
        }
        too_many(self.bufs.len())
    }
}

/// More buffers than a message takes (`IOV_MAX`): `EMSGSIZE`, which
/// io_uring answers before it looks at the descriptor.
fn too_many(n: usize) -> Result<(), Errno> {
    if n > IOV_MAX {
        Err(Errno::new(libc::EMSGSIZE))
    } else {
        Ok(())
    }
}
