//! What every descriptor-owning type is: a descriptor and the proactor it
//! works through, closed through the ring on drop; and the futures every
//! byte stream has (read, write, vectored, recv, send, shutdown).

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::buf::{IoBuf, IoBufMut};
use crate::ops;
use crate::ops::io::CURRENT_POSITION;
use crate::ops::{Fd, Fixed};
use crate::proactor::Proactor;
use crate::proactor::op::{BufResult, Decode, OpFuture, Unit};
use crate::proactor::registered::Registered;
use crate::sq::Sqe;

/// A descriptor owned for a proactor type, and its slot in the ring's
/// file table when it has one.
pub(crate) struct Owned {
    fd: Option<OwnedFd>,
    io: Proactor,
    /// A socket: its writes are `send`s, which raise no `SIGPIPE` when the
    /// peer is gone (`EPIPE` comes back instead).
    socket: bool,
    /// Its request for a slot: `None` when the ring has no table.
    reg: Option<Arc<Registered>>,
}

impl Owned {
    fn with(io: &Proactor, fd: OwnedFd, socket: bool) -> Owned {
        let reg = io.register(&fd);
        Owned {
            fd: Some(fd),
            io: io.clone(),
            socket,
            reg,
        }
    }

    /// A file's descriptor.
    pub(crate) fn new(io: &Proactor, fd: OwnedFd) -> Owned {
        Owned::with(io, fd, false)
    }

    /// A non-blocking socket's descriptor.
    pub(crate) fn socket(io: &Proactor, fd: OwnedFd) -> Owned {
        Owned::with(io, fd, true)
    }

    /// A socket, made non-blocking first, so the driver's attempts never
    /// block (and need no `poll` before each, as a blocking descriptor's
    /// do).
    pub(crate) fn nonblocking(io: &Proactor, fd: OwnedFd) -> io::Result<Owned> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Owned::socket(io, fd))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Its slot in the ring's file table, once the driver has put it
    /// there.
    pub(crate) fn fixed(&self) -> Option<Fixed> {
        self.reg.as_ref().and_then(|r| r.slot()).map(Fixed)
    }

    /// What its operations name: its slot if it has one, else its
    /// descriptor.
    pub(crate) fn target(&self) -> Fd {
        match self.fixed() {
            Some(f) => f.into(),
            None => Fd::Raw(self.raw()),
        }
    }

    pub(crate) fn proactor(&self) -> &Proactor {
        &self.io
    }

    /// The descriptor, which the caller now owns; the slot is given back.
    pub(crate) fn into_fd(self) -> OwnedFd {
        self.give_up(false)
    }

    /// The descriptor, for a `Close` pushed next: the slot's duplicate
    /// is closed before that `Close` runs, so the file is closed once it
    /// completes.
    pub(crate) fn into_fd_to_close(self) -> OwnedFd {
        self.give_up(true)
    }

    fn give_up(mut self, close: bool) -> OwnedFd {
        if let Some(reg) = self.reg.take() {
            self.io.unregister(reg, close);
        }
        match self.fd.take() {
            Some(fd) => fd,
            None => unreachable!("an Owned holds its descriptor until dropped"),
        }
    }

    pub(crate) fn op<D: Decode>(&self, sqe: Sqe, decode: D) -> OpFuture<'_, D> {
        OpFuture::borrowing(&self.io, sqe, decode)
    }

    /// Calls `f` with the descriptor seen as std's `T` (for what std
    /// already answers: addresses, options), without giving it up.
    pub(crate) fn with_std<T: FromRawFd + AsRawFd, R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: the descriptor is open while `self` lives; ManuallyDrop
        // keeps `T` from closing it.
        let t = ManuallyDrop::new(unsafe { T::from_raw_fd(self.raw()) });
        f(&t)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // The slot, then the descriptor: the driver takes both in the
        // same turn, and closes both after the `kevent` call that deletes
        // their registrations.
        if let Some(reg) = self.reg.take() {
            self.io.unregister(reg, false);
        }
        if let Some(fd) = self.fd.take() {
            self.io.close(fd);
        }
    }
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owned")
            .field("fd", &self.raw())
            .field("fixed", &self.fixed())
            .finish()
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A new socket of `family`: close-on-exec, non-blocking.
pub(crate) fn socket(io: &Proactor, family: i32, ty: i32) -> io::Result<Owned> {
    let fd = crate::sys::net::socket(family, ty, 0, true, true).map_err(io::Error::from)?;
    // SAFETY: `socket` just made this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok(Owned::socket(io, fd))
}

/// A buffer from its `start`th byte on: what `write_all` sends after a
/// short write.
pub(crate) struct Tail<B> {
    pub(crate) buf: B,
    pub(crate) start: usize,
}

impl<B: IoBuf> IoBuf for Tail<B> {
    fn as_bytes(&self) -> &[u8] {
        let bytes = self.buf.as_bytes();
        &bytes[self.start.min(bytes.len())..]
    }
}

/// The futures of a byte stream (a connected socket, a pipe), for a type
/// with an `owned: Owned` field.
macro_rules! stream_io {
    ($ty:ty) => {
        impl $ty {
            /// Reads into `buf`'s room after its data: the count (0 at the
            /// end of the stream) and the buffer, its length grown by it.
            pub fn read<B: $crate::IoBufMut>(
                &self,
                buf: B,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<B>> {
                self.owned.read(buf)
            }

            /// Writes from `buf`: the count written (maybe short) and the
            /// buffer.
            pub fn write<B: $crate::IoBuf>(
                &self,
                buf: B,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<B>> {
                self.owned.write(buf)
            }

            /// Writes all of `buf`, one write after another: `Ok` once
            /// every byte is written, or the first error (`WriteZero` when
            /// a write took nothing); the buffer back either way.
            pub async fn write_all<B: $crate::IoBuf>(&self, buf: B) -> (std::io::Result<()>, B) {
                self.owned.write_all(buf).await
            }

            /// Reads into `bufs` in order (`readv`).
            pub fn readv<B: $crate::IoBufMut>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<Vec<B>>> {
                self.owned.readv(bufs)
            }

            /// Writes from `bufs` in order (`writev`).
            pub fn writev<B: $crate::IoBuf>(
                &self,
                bufs: Vec<B>,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<Vec<B>>> {
                self.owned.writev(bufs)
            }

            /// Receives into `buf` (`recv` with `flags`, e.g.
            /// `MSG_WAITALL`, `MSG_PEEK`).
            pub fn recv<B: $crate::IoBufMut>(
                &self,
                buf: B,
                flags: i32,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<B>> {
                self.owned.recv(buf, flags)
            }

            /// Sends from `buf` (`send` with `flags`).
            pub fn send<B: $crate::IoBuf>(
                &self,
                buf: B,
                flags: i32,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::BufResult<B>> {
                self.owned.send(buf, flags)
            }

            /// Receives into buffers of provided group `group` as data
            /// arrives (multishot `Recv` with `BUFFER_SELECT`): each item
            /// is one buffer with its data; the stream ends at the end of
            /// the stream, or after an error item (`ENOBUFS` when the
            /// group ran dry: provide more and start a new one).
            pub fn recv_multishot(&self, group: u16) -> $crate::proactor::RecvStream<'_> {
                self.owned.recv_multishot(group)
            }

            /// Shuts down one or both directions.
            pub fn shutdown(
                &self,
                how: std::net::Shutdown,
            ) -> $crate::proactor::OpFuture<'_, $crate::proactor::Unit> {
                self.owned.shutdown(how)
            }
        }
    };
}
pub(crate) use stream_io;

impl Owned {
    pub(crate) fn read<B: IoBufMut>(&self, buf: B) -> OpFuture<'_, BufResult<B>> {
        // A socket's read is a `recv`, as its write is a `send`: the same
        // result, by a shorter path through the driver than a file read's.
        if self.socket {
            return self.recv(buf, 0);
        }
        self.read_at(buf, CURRENT_POSITION)
    }

    pub(crate) fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> OpFuture<'_, BufResult<B>> {
        let sqe = ops::Read::new(self.target(), buf).offset(offset).build();
        self.op(sqe, BufResult::default())
    }

    pub(crate) fn write<B: IoBuf>(&self, buf: B) -> OpFuture<'_, BufResult<B>> {
        if self.socket {
            return self.send(buf, 0);
        }
        self.write_at(buf, CURRENT_POSITION)
    }

    pub(crate) fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> OpFuture<'_, BufResult<B>> {
        let sqe = ops::Write::new(self.target(), buf).offset(offset).build();
        self.op(sqe, BufResult::default())
    }

    /// `write_all`, or `write_all_at` with an offset.
    pub(crate) async fn write_all_from<B: IoBuf>(
        &self,
        buf: B,
        offset: Option<u64>,
    ) -> (io::Result<()>, B) {
        let len = buf.as_bytes().len();
        if len == 0 {
            return (Ok(()), buf);
        }
        // The first write takes the buffer itself, which the entry holds
        // without a box (a `Tail` needs one): most writes are whole.
        let (res, buf) = match offset {
            Some(at) => self.write_at(buf, at).await,
            None => self.write(buf).await,
        };
        let start = match res {
            Ok(n) if n >= len => return (Ok(()), buf),
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return (Err(e), buf),
        };
        let mut tail = Tail { buf, start };
        loop {
            let len = tail.buf.as_bytes().len();
            if tail.start >= len {
                return (Ok(()), tail.buf);
            }
            let (res, back) = match offset {
                Some(at) => {
                    let at = at + tail.start as u64;
                    self.write_at(tail, at).await
                }
                None => self.write(tail).await,
            };
            tail = back;
            match res {
                Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), tail.buf),
                Ok(n) => tail.start += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), tail.buf),
            }
        }
    }

    pub(crate) async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        self.write_all_from(buf, None).await
    }

    pub(crate) fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> OpFuture<'_, BufResult<Vec<B>>> {
        let sqe = ops::Readv::new(self.target(), bufs).offset(CURRENT_POSITION);
        self.op(sqe.build(), BufResult::default())
    }

    pub(crate) fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> OpFuture<'_, BufResult<Vec<B>>> {
        let sqe = ops::Writev::new(self.target(), bufs).offset(CURRENT_POSITION);
        self.op(sqe.build(), BufResult::default())
    }

    pub(crate) fn recv<B: IoBufMut>(&self, buf: B, flags: i32) -> OpFuture<'_, BufResult<B>> {
        let sqe = ops::Recv::new(self.target(), buf).flags(flags).build();
        self.op(sqe, BufResult::default())
    }

    pub(crate) fn send<B: IoBuf>(&self, buf: B, flags: i32) -> OpFuture<'_, BufResult<B>> {
        let sqe = ops::Send::new(self.target(), buf).flags(flags).build();
        self.op(sqe, BufResult::default())
    }

    pub(crate) fn shutdown(&self, how: std::net::Shutdown) -> OpFuture<'_, Unit> {
        self.op(ops::Shutdown::new(self.target(), how).build(), Unit)
    }

    pub(crate) fn connect(&self, addr: crate::SockAddr) -> OpFuture<'_, Unit> {
        self.op(ops::Connect::new(self.target(), addr).build(), Unit)
    }
}
