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
//! Inside the crate an operation is declared once, in its family's file:
//! its struct and builder, and the trait that says how it runs — `IoOp`
//! (tried without blocking, waits for readiness, may go to the pool),
//! `BlockingOp` (runs on the pool), `DirectOp` (one call on the
//! driver's thread that can't block), `EventOp` (waits on a kevent
//! registration of its own: a process, a signal, a file's changes) — or,
//! for what works on the ring's own state, a `RingOp` variant the driver
//! serves. docs/architecture.md says how to add one.
//!
//! [`Sqe`]: crate::Sqe

pub(crate) mod bufs;
mod cancel;
mod files;
mod fs;
pub(crate) mod io;
mod misc;
pub(crate) mod msg;
pub(crate) mod net;
mod path;
mod poll;
mod process;
mod sock;
mod stat;
pub(crate) mod time;
mod watch;

use std::os::fd::RawFd;

pub use crate::sys::fs::{AT_FDCWD, Advice, FallocateFlags, MemoryAdvice, RenameFlags};
pub use crate::sys::stat::{Stat, StatTime, StatxMask};
pub use bufs::{ProvideBuffers, RemoveBuffers};
pub use cancel::{AsyncCancel, CancelTarget};
pub use files::{Fd, FileSlot, FilesUpdate, Fixed};
pub use fs::{Close, Fadvise, Fallocate, Fsync, Ftruncate, Madvise, OpenAt};
pub use io::{Read, Readv, Write, Writev};
pub use misc::Nop;
pub use msg::MsgRing;
pub use net::{Accept, Bind, Connect, Listen, Shutdown, Socket};
pub use path::{LinkAt, MkdirAt, RenameAt, SymlinkAt, UnlinkAt};
pub use poll::{PollAdd, PollRemove};
pub use process::{Signal, WaitId, WaitInfo};
pub use sock::{Recv, RecvMsg, Send, SendMsg};
pub use stat::Statx;
pub use time::{LinkTimeout, Timeout, TimeoutRemove, TimeoutUpdate, monotonic_now};
pub use watch::Watch;

use crate::buf::AnyBuf;
use crate::cq::Extra;
use crate::sys::errno::Errno;
use crate::sys::io::FdKind;
use crate::sys::{Event, Filter, Flags};

/// A readiness direction: the kevent filter a waiting operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
}

/// What a non-blocking attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Finished with this `res`.
    Done(i32),
    /// Not ready: wait for readiness in this direction, then try again.
    Wait(Dir),
    /// Can't be done without blocking: hand it to the pool.
    Offload,
}

/// A syscall's outcome as a completion's `res`: the count, or `-errno`.
pub(crate) fn res(r: Result<usize, Errno>) -> i32 {
    match r {
        Ok(n) => n.min(i32::MAX as usize) as i32,
        Err(e) => e.res(),
    }
}

/// A non-blocking call's outcome: not ready means wait in `dir`.
pub(crate) fn settle(r: Result<usize, Errno>, dir: Dir) -> Attempt {
    match r {
        Err(e) if e.would_block() => Attempt::Wait(dir),
        r => Attempt::Done(res(r)),
    }
}

/// What a finished operation hands its completion: its buffer, and any
/// result that is not a buffer.
#[derive(Default)]
pub(crate) struct Output {
    pub(crate) buf: Option<AnyBuf>,
    pub(crate) extra: Extra,
}

impl Output {
    /// Hands back `buf`, typed as it came.
    pub(crate) fn buf<B: std::marker::Send + 'static>(&mut self, buf: B) {
        self.buf = Some(AnyBuf::new(buf));
    }
}

/// What the driver asks of every operation, whatever runs it.
pub(crate) trait Operation: std::marker::Send + 'static {
    /// The opcode's name, as spans and [`Sqe::opcode`](crate::Sqe::opcode)
    /// show it.
    fn name(&self) -> &'static str;

    /// The file it works on: a descriptor, or a slot of the file table
    /// until the driver resolves it.
    fn file(&self) -> Option<Fd> {
        None
    }

    /// Where that file is kept, so the driver can put the descriptor a
    /// slot holds in place of the slot.
    fn file_mut(&mut self) -> Option<&mut Fd> {
        None
    }

    /// Where a descriptor it makes goes in the file table.
    fn direct_slot(&self) -> Option<FileSlot> {
        None
    }

    /// Hands its buffers and results to its completion.
    fn finish(self: Box<Self>, out: &mut Output);
}

/// Implements [`Operation`] for an operation type: its name, the file it
/// works on (`fd`: its `fd` field), how its buffers and results reach its
/// completion (`|op, out| ...`, `op` the finished operation), and after a
/// `;` any other method of the trait it has.
macro_rules! operation {
    ($({$($gen:tt)*})? $ty:ty, $name:literal $(, $fd:ident)?, |$op:pat_param, $out:ident| $finish:expr $(; $($more:tt)*)?) => {
        impl $(<$($gen)*>)? $crate::ops::Operation for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            $($crate::ops::operation!(@$fd);)?

            fn finish(self: Box<Self>, $out: &mut $crate::ops::Output) {
                let $op = *self;
                $finish
            }

            $($($more)*)?
        }
    };
    (@fd) => {
        fn file(&self) -> Option<$crate::ops::Fd> {
            Some(self.fd)
        }

        fn file_mut(&mut self) -> Option<&mut $crate::ops::Fd> {
            Some(&mut self.fd)
        }
    };
}
pub(crate) use operation;

/// A network operation's `BlockingOp`: on a worker, its one non-blocking
/// call (`$call`), and not ready goes back to the driver to wait — they
/// stay evented, whatever `ASYNC` says.
macro_rules! evented {
    ($({$($gen:tt)*})? $ty:ty, $call:ident) => {
        impl $(<$($gen)*>)? $crate::ops::BlockingOp for $ty {
            fn run_blocking(&mut self, _kind: Option<$crate::sys::io::FdKind>) -> i32 {
                $crate::ops::res(self.$call())
            }
        }
    };
}
pub(crate) use evented;

/// An operation on a descriptor that can wait for readiness: tried at
/// once without blocking; on "not ready" queued on the descriptor until a
/// kevent says it is; or, where no call can be made without blocking
/// (regular files, blocking pipes), run on the pool.
pub(crate) trait IoOp: BlockingOp {
    /// What kind of transfer it is: the readiness it waits for and the
    /// rules that go with it.
    fn transfer(&self) -> Transfer;

    /// Makes its call without blocking. `kind` caches what the descriptor
    /// is, for the operations whose call depends on it.
    fn attempt(&mut self, kind: &mut Option<FdKind>) -> Attempt;

    /// Checks what can be checked before it starts, given whether the
    /// entry carries `BUFFER_SELECT`.
    fn validate(&self, select: bool) -> Result<(), Errno> {
        if select {
            Err(Errno::new(libc::EOPNOTSUPP))
        } else {
            Ok(())
        }
    }

    /// Its buffer selection, for the operations built to take a provided
    /// buffer.
    fn select(&mut self) -> Option<&mut Select> {
        None
    }

    /// The bytes it asks to move: fewer is a short transfer, which breaks
    /// an `IO_LINK` chain as in io_uring.
    fn wanted(&self) -> Option<usize> {
        None
    }

    /// How many bytes a plain read asks for: one that returns fewer has
    /// emptied a byte stream.
    fn read_request(&self) -> Option<usize> {
        None
    }

    /// Whether it is a multishot operation that goes on after a
    /// completion with `res`.
    fn continues(&self, _res: i32) -> bool {
        false
    }

    /// Hands one shot's buffer and address to a completion with `F_MORE`.
    fn take_shot(&mut self, _out: &mut Output) {}

    /// A connect in progress: a socket error on its readiness event is
    /// its outcome.
    fn connecting(&self) -> bool {
        false
    }
}

/// The kinds of transfer an [`IoOp`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// `read`, `readv` on any descriptor.
    Read,
    /// `write`, `writev` on any descriptor.
    Write,
    /// A socket's receive.
    Receive,
    /// A socket's send, or a connect.
    Send,
    /// A listener's accept.
    Accept,
}

impl Transfer {
    /// The readiness it waits for.
    pub(crate) fn dir(self) -> Dir {
        match self {
            Transfer::Read | Transfer::Receive | Transfer::Accept => Dir::Read,
            Transfer::Write | Transfer::Send => Dir::Write,
        }
    }

    /// Whether `res == 0` means end of stream, so a socket error that the
    /// readiness event carried is the better answer.
    pub(crate) fn zero_is_eof(self) -> bool {
        matches!(self, Transfer::Read | Transfer::Receive)
    }

    /// Whether a provided buffer goes back to its group when the call sees
    /// the end of the stream (`res` 0), as io_uring recycles a receive's
    /// buffer then.
    pub(crate) fn eof_returns_buffer(self) -> bool {
        self == Transfer::Receive
    }

    /// Whether `ASYNC` may move it to the pool: network operations stay
    /// evented, whatever the flag says.
    pub(crate) fn may_offload(self) -> bool {
        matches!(self, Transfer::Read | Transfer::Write)
    }
}

/// An operation a worker of the blocking pool runs.
pub(crate) trait BlockingOp: Operation {
    /// Makes its call, blocking as long as the syscall does. `kind` is
    /// what the descriptor is, when the driver knows it already.
    fn run_blocking(&mut self, kind: Option<FdKind>) -> i32;

    /// Makes its call on the driver's thread where the system can make it
    /// without blocking (an open whose lookup is cached): `Some(res)`, or
    /// `None` to run on the pool. `ASYNC` skips it.
    fn try_now(&mut self) -> Option<i32> {
        None
    }

    /// The descriptor it closes: the driver ends what waits on it, and
    /// sends it to the pool once the descriptor's registrations are
    /// deleted.
    fn closes(&self) -> Option<RawFd> {
        None
    }
}

/// An operation that is one call on the driver's thread, which never
/// blocks.
pub(crate) trait DirectOp: Operation {
    /// Makes the call; its completion's `res`.
    fn call(&mut self) -> i32;
}

/// The kevent registration an [`EventOp`] waits on. kqueue keys
/// registrations by (`ident`, `filter`): operations with the same pair
/// share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(crate) ident: usize,
    pub(crate) filter: Filter,
    /// The notes it needs (`note::*`); a shared registration asks for
    /// what all its operations need.
    pub(crate) fflags: u32,
    /// Flags beside `EV_ADD` (`EV_CLEAR`).
    pub(crate) flags: Flags,
}

/// What an event, or a check, comes to for an [`EventOp`].
#[derive(Debug)]
pub(crate) enum Shot {
    /// Nothing for it yet: it goes on waiting.
    Pending,
    /// A completion with `F_MORE`; it goes on waiting.
    More { res: i32, extra: Extra },
    /// Its last completion, with this `res`.
    Last(i32),
}

/// An operation that waits on a kevent registration of its own (not a
/// descriptor's readiness): `WaitId` (EVFILT_PROC or SIGCHLD), `Signal`
/// (EVFILT_SIGNAL), `Watch` (EVFILT_VNODE).
pub(crate) trait EventOp: Operation {
    /// Checks its arguments and takes what it holds while it waits (a
    /// signal's disposition): the registration it needs, or its error.
    fn arm(&mut self) -> Result<Interest, Errno>;

    /// What it comes to now, before it waits and again once its
    /// registration is in place (so that a change between the two is
    /// not missed): a child that exited already.
    fn check(&mut self) -> Shot {
        Shot::Pending
    }

    /// An event of its registration.
    fn on_event(&mut self, ev: &Event) -> Shot;

    /// Its registration failed with `err`: its `res`.
    fn on_error(&mut self, err: Errno) -> i32 {
        err.res()
    }
}

/// The buffer selection state of an operation built to take a provided
/// buffer (`SqeFlags::BUFFER_SELECT`).
#[derive(Debug, Default)]
pub(crate) struct Select {
    /// The group to take from.
    pub(crate) group: u16,
    /// The buffer taken, with its id, between the pick right before an
    /// attempt and the completion.
    pub(crate) picked: Option<(u16, bytes::BytesMut)>,
}

impl Select {
    pub(crate) fn new(group: u16) -> Select {
        Select {
            group,
            picked: None,
        }
    }
}

/// Where a read lands: the operation's own buffer, or a provided one.
#[derive(Debug)]
pub(crate) enum Target<B> {
    /// The operation's own buffer, after its first `start` bytes.
    Own { buf: B, start: usize },
    /// A buffer of a provided group, taken when the data is there.
    Select(Select),
}

impl<B: crate::IoBufMut> Target<B> {
    pub(crate) fn own(buf: B) -> Target<B> {
        Target::Own {
            start: buf.buf_len(),
            buf,
        }
    }

    pub(crate) fn is_select(&self) -> bool {
        matches!(self, Target::Select(_))
    }

    pub(crate) fn select(&mut self) -> Option<&mut Select> {
        match self {
            Target::Select(s) => Some(s),
            Target::Own { .. } => None,
        }
    }

    /// The room a read may fill: the own buffer's after its data, or the
    /// provided buffer's once taken.
    pub(crate) fn room(&self) -> Option<usize> {
        match self {
            Target::Own { buf, start } => Some(io::room(buf, *start)),
            Target::Select(s) => s.picked.as_ref().map(|(_, b)| b.capacity()),
        }
    }

    /// Hands the buffer to the completion.
    pub(crate) fn finish(self, out: &mut Output) {
        match self {
            Target::Own { buf, .. } => out.buf(buf),
            Target::Select(s) => {
                if let Some((_, picked)) = s.picked {
                    out.buf(picked);
                }
            }
        }
    }
}

/// An operation on the ring's own state, which the driver serves itself.
pub(crate) enum RingOp {
    Poll(PollAdd),
    PollRemove(PollRemove),
    Timeout(Timeout),
    TimeoutRemove(TimeoutRemove),
    TimeoutUpdate(TimeoutUpdate),
    LinkTimeout(LinkTimeout),
    Cancel(AsyncCancel),
    Provide(ProvideBuffers),
    Remove(RemoveBuffers),
    FilesUpdate(FilesUpdate),
    /// A `Close` of a slot of the file table.
    CloseSlot(u32),
    MsgRing(MsgRing),
}

impl RingOp {
    fn name(&self) -> &'static str {
        match self {
            RingOp::Poll(_) => "PollAdd",
            RingOp::PollRemove(_) => "PollRemove",
            RingOp::Timeout(_) => "Timeout",
            RingOp::TimeoutRemove(_) => "TimeoutRemove",
            RingOp::TimeoutUpdate(_) => "TimeoutUpdate",
            RingOp::LinkTimeout(_) => "LinkTimeout",
            RingOp::Cancel(_) => "AsyncCancel",
            RingOp::Provide(_) => "ProvideBuffers",
            RingOp::Remove(_) => "RemoveBuffers",
            RingOp::FilesUpdate(_) => "FilesUpdate",
            RingOp::CloseSlot(_) => "Close",
            RingOp::MsgRing(_) => "MsgRing",
        }
    }

    fn finish(self, out: &mut Output) {
        match self {
            // The buffers a failed provide kept.
            RingOp::Provide(p) if !p.bufs.is_empty() => out.buf(p.bufs),
            RingOp::Remove(RemoveBuffers {
                removed: Some(removed),
                ..
            }) => out.buf(removed),
            RingOp::FilesUpdate(u) => out.extra = Extra::Fds(u.fds),
            _ => {}
        }
    }
}

/// An operation as the driver holds it: how it runs decides which trait
/// serves it.
pub(crate) enum Op {
    Io(Box<dyn IoOp>),
    Blocking(Box<dyn BlockingOp>),
    Direct(Box<dyn DirectOp>),
    Event(Box<dyn EventOp>),
    /// Boxed, as the others are: the biggest of them would double the size
    /// of every entry.
    Ring(Box<RingOp>),
}

impl Op {
    /// The opcode's name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Op::Io(op) => op.name(),
            Op::Blocking(op) => op.name(),
            Op::Direct(op) => op.name(),
            Op::Event(op) => op.name(),
            Op::Ring(op) => op.name(),
        }
    }

    /// The file it works on, if any.
    pub(crate) fn file(&self) -> Option<Fd> {
        match self {
            Op::Io(op) => op.file(),
            Op::Blocking(op) => op.file(),
            Op::Direct(op) => op.file(),
            Op::Event(op) => op.file(),
            Op::Ring(op) => match **op {
                RingOp::Poll(p) => Some(p.fd),
                _ => None,
            },
        }
    }

    /// The descriptor it works on, if any (a slot index until resolved).
    pub(crate) fn fd(&self) -> Option<RawFd> {
        self.file().map(Fd::number)
    }

    /// The ring operation it is, if it is one.
    pub(crate) fn ring(&self) -> Option<&RingOp> {
        match self {
            Op::Ring(op) => Some(op),
            _ => None,
        }
    }

    /// Where its file is kept.
    pub(crate) fn file_mut(&mut self) -> Option<&mut Fd> {
        match self {
            Op::Io(op) => op.file_mut(),
            Op::Blocking(op) => op.file_mut(),
            Op::Direct(op) => op.file_mut(),
            Op::Event(op) => op.file_mut(),
            Op::Ring(op) => match &mut **op {
                RingOp::Poll(p) => Some(&mut p.fd),
                _ => None,
            },
        }
    }

    /// Where a descriptor it makes goes in the file table.
    pub(crate) fn direct_slot(&self) -> Option<FileSlot> {
        match self {
            Op::Io(op) => op.direct_slot(),
            Op::Blocking(op) => op.direct_slot(),
            Op::Direct(op) => op.direct_slot(),
            Op::Event(_) | Op::Ring(_) => None,
        }
    }

    /// Whether it is a `Close`, which names a slot its own way: the
    /// `FIXED_FILE` flag on one is `-EBADF`, as in io_uring.
    pub(crate) fn is_close(&self) -> bool {
        match self {
            Op::Blocking(op) => op.closes().is_some(),
            Op::Ring(op) => matches!(**op, RingOp::CloseSlot(_)),
            _ => false,
        }
    }

    /// Its buffer selection, if it was built to take a provided buffer.
    pub(crate) fn select(&mut self) -> Option<&mut Select> {
        match self {
            Op::Io(op) => op.select(),
            _ => None,
        }
    }

    /// Hands its buffers and results to its completion.
    pub(crate) fn finish(self, out: &mut Output) {
        match self {
            Op::Io(op) => op.finish(out),
            Op::Blocking(op) => op.finish(out),
            Op::Direct(op) => op.finish(out),
            Op::Event(op) => op.finish(out),
            Op::Ring(op) => op.finish(out),
        }
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
