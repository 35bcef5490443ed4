//! Operation descriptors, one type per opcode, grouped by family.
//!
//! Each is a small builder: `new(..)` takes what the operation needs (and
//! owns its buffers), setters adjust options, `build()` gives the [`Sqe`]
//! to push, on which `.user_data()` and `.flags()` are set.
//!
//! ```
//! use bytes::BytesMut;
//! use kqring::ops;
//! let sqe = ops::Read::new(0, BytesMut::with_capacity(4096)).offset(0).build().user_data(1);
//! assert_eq!(sqe.opcode(), "Read");
//! ```
//!
//! [`Sqe`]: crate::Sqe

pub(crate) mod bufs;
mod cancel;
mod files;
mod fs;
pub(crate) mod io;
mod misc;
pub(crate) mod net;
mod poll;
pub(crate) mod time;

pub use bufs::{ProvideBuffers, RemoveBuffers};
pub use cancel::{AsyncCancel, CancelTarget};
pub use files::{Fd, FileSlot, FilesUpdate, Fixed};
pub use fs::Close;
pub use io::{Read, Readv, Write, WriteBuf, Writev};
pub use misc::Nop;
pub use net::{Accept, Bind, Connect, Listen, Recv, RecvMsg, Send, SendMsg, Shutdown, Socket};
pub use poll::{PollAdd, PollRemove};
pub use time::{LinkTimeout, Timeout, TimeoutRemove, TimeoutUpdate, monotonic_now};

/// The operation inside an entry, as the driver sees it.
pub(crate) enum Op {
    Nop(Nop),
    Read(Read),
    Write(Write),
    Readv(Readv),
    Writev(Writev),
    PollAdd(PollAdd),
    PollRemove(PollRemove),
    Timeout(Timeout),
    TimeoutRemove(TimeoutRemove),
    TimeoutUpdate(TimeoutUpdate),
    LinkTimeout(LinkTimeout),
    AsyncCancel(AsyncCancel),
    Close(Close),
    Socket(Socket),
    Bind(Bind),
    Listen(Listen),
    Accept(Accept),
    Connect(Connect),
    Recv(Recv),
    Send(Send),
    RecvMsg(RecvMsg),
    SendMsg(SendMsg),
    Shutdown(Shutdown),
    ProvideBuffers(ProvideBuffers),
    RemoveBuffers(RemoveBuffers),
    FilesUpdate(FilesUpdate),
}

impl Op {
    /// The opcode's name, as spans and logs show it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Nop(_) => "Nop",
            Op::Read(_) => "Read",
            Op::Write(_) => "Write",
            Op::Readv(_) => "Readv",
            Op::Writev(_) => "Writev",
            Op::PollAdd(_) => "PollAdd",
            Op::PollRemove(_) => "PollRemove",
            Op::Timeout(_) => "Timeout",
            Op::TimeoutRemove(_) => "TimeoutRemove",
            Op::TimeoutUpdate(_) => "TimeoutUpdate",
            Op::LinkTimeout(_) => "LinkTimeout",
            Op::AsyncCancel(_) => "AsyncCancel",
            Op::Close(_) => "Close",
            Op::Socket(_) => "Socket",
            Op::Bind(_) => "Bind",
            Op::Listen(_) => "Listen",
            Op::Accept(_) => "Accept",
            Op::Connect(_) => "Connect",
            Op::Recv(_) => "Recv",
            Op::Send(_) => "Send",
            Op::RecvMsg(_) => "RecvMsg",
            Op::SendMsg(_) => "SendMsg",
            Op::Shutdown(_) => "Shutdown",
            Op::ProvideBuffers(_) => "ProvideBuffers",
            Op::RemoveBuffers(_) => "RemoveBuffers",
            Op::FilesUpdate(_) => "FilesUpdate",
        }
    }

    /// The descriptor the operation works on, if any: a slot index while
    /// the entry carries `FIXED_FILE` and the driver has not resolved it.
    pub(crate) fn fd(&self) -> Option<i32> {
        self.file().map(|(fd, _)| fd)
    }

    /// The descriptor and whether the builder was given a registered file.
    fn file(&self) -> Option<(i32, bool)> {
        match self {
            Op::Read(op) => Some((op.fd, op.fixed)),
            Op::Write(op) => Some((op.fd, op.fixed)),
            Op::Readv(op) => Some((op.fd, op.fixed)),
            Op::Writev(op) => Some((op.fd, op.fixed)),
            Op::PollAdd(op) => Some((op.fd, op.fixed)),
            Op::Close(op) => Some((op.fd, op.fixed)),
            Op::Bind(op) => Some((op.fd, op.fixed)),
            Op::Listen(op) => Some((op.fd, op.fixed)),
            Op::Accept(op) => Some((op.fd, op.fixed)),
            Op::Connect(op) => Some((op.fd, op.fixed)),
            Op::Recv(op) => Some((op.fd, op.fixed)),
            Op::Send(op) => Some((op.fd, op.fixed)),
            Op::RecvMsg(op) => Some((op.fd, op.fixed)),
            Op::SendMsg(op) => Some((op.fd, op.fixed)),
            Op::Shutdown(op) => Some((op.fd, op.fixed)),
            _ => None,
        }
    }

    /// The descriptor, to put the one a slot holds in place of the slot
    /// index.
    pub(crate) fn fd_mut(&mut self) -> Option<&mut i32> {
        match self {
            Op::Read(op) => Some(&mut op.fd),
            Op::Write(op) => Some(&mut op.fd),
            Op::Readv(op) => Some(&mut op.fd),
            Op::Writev(op) => Some(&mut op.fd),
            Op::PollAdd(op) => Some(&mut op.fd),
            Op::Bind(op) => Some(&mut op.fd),
            Op::Listen(op) => Some(&mut op.fd),
            Op::Accept(op) => Some(&mut op.fd),
            Op::Connect(op) => Some(&mut op.fd),
            Op::Recv(op) => Some(&mut op.fd),
            Op::Send(op) => Some(&mut op.fd),
            Op::RecvMsg(op) => Some(&mut op.fd),
            Op::SendMsg(op) => Some(&mut op.fd),
            Op::Shutdown(op) => Some(&mut op.fd),
            _ => None,
        }
    }

    /// Whether `FIXED_FILE` on the entry makes its descriptor a slot:
    /// every operation on a file but `Close`, which names a slot in its
    /// own field, as io_uring's `file_index` does (the flag on a `Close`
    /// is an error there).
    pub(crate) fn takes_fixed_file(&self) -> bool {
        !matches!(self, Op::Close(_)) && self.file().is_some()
    }

    /// Whether the builder was given a slot, so `build()` sets
    /// `FIXED_FILE`.
    pub(crate) fn uses_fixed_file(&self) -> bool {
        self.takes_fixed_file() && self.file().is_some_and(|(_, fixed)| fixed)
    }

    /// Where a descriptor the operation makes goes in the file table.
    pub(crate) fn direct_slot(&self) -> Option<FileSlot> {
        match self {
            Op::Accept(op) => op.direct,
            Op::Socket(op) => op.direct,
            _ => None,
        }
    }

    /// The bytes a read or write asks for: fewer is a short transfer,
    /// which breaks an `IO_LINK` chain as in io_uring.
    pub(crate) fn wanted_len(&self) -> Option<usize> {
        match self {
            Op::Read(op) => op.buf.as_ref().map(|b| b.capacity() - b.len()),
            Op::Write(op) => op.buf.as_ref().map(|b| b.as_slice().len()),
            Op::Readv(op) => op
                .bufs
                .as_ref()
                .map(|v| v.iter().map(|b| b.capacity() - b.len()).sum()),
            Op::Writev(op) => op.bufs.as_ref().map(|v| v.iter().map(|b| b.len()).sum()),
            // Only MSG_WAITALL makes a short receive or send a failure, as
            // in io_uring.
            Op::Send(op) if op.flags & libc::MSG_WAITALL != 0 => {
                op.buf.as_ref().map(|b| b.as_slice().len())
            }
            Op::Recv(op) if op.flags & libc::MSG_WAITALL != 0 => op
                .buf
                .as_ref()
                .map(|b| net_limit(b.capacity() - b.len(), op.len)),
            _ => None,
        }
    }

    /// The size of the provided buffer a `Read` picked: what it asked for,
    /// as io_uring takes a selected buffer's length for the read's.
    pub(crate) fn selected_len(&self) -> Option<u32> {
        match self {
            Op::Read(op) if op.pick.bid.is_some() => op
                .buf
                .as_ref()
                .map(|b| b.capacity().min(u32::MAX as usize) as u32),
            _ => None,
        }
    }

    /// Hands the operation's buffer back, for its completion.
    pub(crate) fn take_buffer(&mut self) -> Option<crate::Buffer> {
        match self {
            Op::Read(op) => {
                op.pick.bid = None;
                op.buf.take().map(crate::Buffer::Mut)
            }
            Op::Write(op) => op.buf.take().map(WriteBuf::into_buffer),
            Op::Readv(op) => op.bufs.take().map(crate::Buffer::MutVec),
            Op::Writev(op) => op.bufs.take().map(crate::Buffer::SharedVec),
            Op::Recv(op) => {
                op.pick.bid = None;
                op.buf.take().map(crate::Buffer::Mut)
            }
            Op::Send(op) => op.buf.take().map(WriteBuf::into_buffer),
            Op::RecvMsg(op) => {
                op.pick.bid = None;
                op.take_buffer()
            }
            Op::SendMsg(op) => op.msg.bufs.take().map(crate::Buffer::SharedVec),
            Op::ProvideBuffers(op) => op.bufs.take().map(crate::Buffer::MutVec),
            Op::RemoveBuffers(op) => op.removed.take().map(crate::Buffer::MutVec),
            Op::FilesUpdate(op) => op.fds.take().map(crate::Buffer::Fds),
            _ => None,
        }
    }

    /// Hands the address the operation received (a peer's, a sender's)
    /// back, for its completion.
    pub(crate) fn take_addr(&mut self) -> Option<Box<crate::sys::net::SockAddr>> {
        match self {
            Op::Accept(op) => op.addr.take(),
            Op::RecvMsg(op) => op.msg.from.take(),
            _ => None,
        }
    }

    /// The buffer selection state and the slot a provided buffer goes in,
    /// for the operations that can select one.
    pub(crate) fn pick_mut(&mut self) -> Option<(&mut bufs::Pick, &mut Option<bytes::BytesMut>)> {
        match self {
            Op::Read(op) => Some((&mut op.pick, &mut op.buf)),
            Op::Recv(op) => Some((&mut op.pick, &mut op.buf)),
            Op::RecvMsg(op) => Some((&mut op.pick, &mut op.msg.picked)),
            _ => None,
        }
    }

    /// Turns buffer selection on (the entry carries `BUFFER_SELECT`):
    /// `-EOPNOTSUPP` for an operation that can't select, as io_uring
    /// answers, `-EINVAL` for one that brought its own buffer.
    pub(crate) fn enable_select(&mut self) -> Result<(), i32> {
        let own = match self {
            Op::Read(op) => op.buf.is_some(),
            Op::Recv(op) => op.buf.is_some() || op.flags & libc::MSG_WAITALL != 0,
            Op::RecvMsg(op) => op.msg.bufs.is_some(),
            _ => return Err(-libc::EOPNOTSUPP),
        };
        if own {
            return Err(-libc::EINVAL);
        }
        if let Some((pick, _)) = self.pick_mut() {
            pick.on = true;
        }
        Ok(())
    }

    /// Checks what can be checked before the operation starts (beyond
    /// buffer selection): `Err(res)` to complete it with at once.
    pub(crate) fn validate(&self, select: bool) -> Result<(), i32> {
        match self {
            // io_uring: multishot receives need a provided buffer group and
            // can't wait for all.
            Op::Recv(op) if op.multishot && (!select || op.flags & libc::MSG_WAITALL != 0) => {
                Err(-libc::EINVAL)
            }
            // io_uring: a multishot accept into the table must let it
            // choose the slots.
            Op::Accept(op) if op.multishot && matches!(op.direct, Some(FileSlot::Index(_))) => {
                Err(-libc::EINVAL)
            }
            _ => Ok(()),
        }
    }

    /// Whether this is a multishot operation that goes on after a
    /// completion with `res`: a receive until end of stream or an error,
    /// an accept until an error.
    pub(crate) fn continues(&self, res: i32) -> bool {
        match self {
            Op::Accept(op) => op.multishot && res >= 0,
            Op::Recv(op) => op.multishot && res > 0,
            _ => false,
        }
    }

    /// Whether `res == 0` means end of stream (so a socket error that the
    /// readiness event carried is the better answer).
    pub(crate) fn zero_is_eof(&self) -> bool {
        matches!(
            self,
            Op::Read(_) | Op::Readv(_) | Op::Recv(_) | Op::RecvMsg(_)
        )
    }

    /// Whether the operation is a network one (always evented: `ASYNC`
    /// doesn't move it to the pool).
    pub(crate) fn is_net(&self) -> bool {
        matches!(
            self,
            Op::Accept(_)
                | Op::Connect(_)
                | Op::Recv(_)
                | Op::Send(_)
                | Op::RecvMsg(_)
                | Op::SendMsg(_)
        )
    }
}

/// The bytes a receive may take: the room, capped by a non-zero `len`.
pub(crate) fn net_limit(room: usize, len: u32) -> usize {
    if len == 0 {
        room
    } else {
        room.min(len as usize)
    }
}
