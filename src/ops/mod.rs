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

mod cancel;
mod fs;
pub(crate) mod io;
mod misc;
mod poll;
pub(crate) mod time;

pub use cancel::{AsyncCancel, CancelTarget};
pub use fs::Close;
pub use io::{Read, Readv, Write, WriteBuf, Writev};
pub use misc::Nop;
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
        }
    }

    /// The descriptor the operation works on, if any.
    pub(crate) fn fd(&self) -> Option<i32> {
        match self {
            Op::Read(op) => Some(op.fd),
            Op::Write(op) => Some(op.fd),
            Op::Readv(op) => Some(op.fd),
            Op::Writev(op) => Some(op.fd),
            Op::PollAdd(op) => Some(op.fd),
            Op::Close(op) => Some(op.fd),
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
            _ => None,
        }
    }

    /// Hands the operation's buffer back, for its completion.
    pub(crate) fn take_buffer(&mut self) -> Option<crate::Buffer> {
        match self {
            Op::Read(op) => op.buf.take().map(crate::Buffer::Mut),
            Op::Write(op) => op.buf.take().map(WriteBuf::into_buffer),
            Op::Readv(op) => op.bufs.take().map(crate::Buffer::MutVec),
            Op::Writev(op) => op.bufs.take().map(crate::Buffer::SharedVec),
            _ => None,
        }
    }
}
