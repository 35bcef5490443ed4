//! Reads and writes: `Read`, `Write`, `Readv`, `Writev`.
//!
//! On sockets, non-blocking pipes and terminals they try the syscall at
//! once and wait for readiness only on EAGAIN; on regular files and
//! blocking descriptors they run on the blocking pool — but a file read
//! at an offset is first tried without waiting for the disk where the
//! system can (`try_file`), and goes to the pool only if its data is not
//! all cached.

use std::os::fd::RawFd;

use bytes::{Bytes, BytesMut};

use crate::buf::{IoBuf, IoBufMut, Room, filled};
use crate::ops::{
    Attempt, BlockingOp, Dir, Fd, IoOp, Op, Select, Target, Transfer, operation, res, settle,
};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::io::{self as sys, FdKind, NoWait, SysResult};

/// The offset that means "the file's current position" (io_uring's -1).
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

/// How one call on a descriptor is made, once its kind is known.
#[derive(Clone, Copy)]
enum How {
    /// A socket: `recv`/`send` with `MSG_DONTWAIT`.
    Socket,
    /// Anything else: `read`/`write`, or their positioned forms at this
    /// offset.
    Plain(Option<u64>),
}

impl How {
    fn plain(kind: FdKind, offset: u64) -> How {
        // Streams have no position: io_uring ignores the offset there too.
        How::Plain((offset != CURRENT_POSITION && kind == FdKind::File).then_some(offset))
    }
}

/// Tries a read or write whose call depends on what the descriptor is:
/// sockets are tried directly (`MSG_DONTWAIT` needs no knowledge of the
/// descriptor), everything else is classified on `ENOTSOCK` and the kind
/// kept in `kind`.
fn attempt(
    fd: RawFd,
    dir: Dir,
    offset: u64,
    kind: &mut Option<FdKind>,
    mut call: impl FnMut(How) -> SysResult,
) -> Attempt {
    let negative = negative_offset(offset);
    let k = match *kind {
        Some(k) => k,
        // The kind first, without a call that could move data.
        None if negative => match sys::classify(fd) {
            Ok(k) => *kind.insert(k),
            Err(e) => return Attempt::Done(e.res()),
        },
        None => match call(How::Socket) {
            Err(Errno::ENOTSOCK) => match sys::classify(fd) {
                Ok(k) => *kind.insert(k),
                Err(e) => return Attempt::Done(e.res()),
            },
            r => {
                *kind = Some(FdKind::Socket);
                return settle(r, dir);
            }
        },
    };
    // A blocking stream waits for readiness first, as in io_uring, where
    // one that can't be tried without blocking is polled before the call.
    if negative {
        match refuse_offset(fd, dir) {
            Err(e) => return Attempt::Done(e.res()),
            Ok(()) if k == FdKind::BlockingStream => {}
            Ok(()) => return Attempt::Done(Errno::EINVAL.res()),
        }
    }
    match k {
        FdKind::Socket => settle(call(How::Socket), dir),
        FdKind::NonBlockingStream => settle(call(How::plain(k, offset)), dir),
        // A blocking pipe or terminal can't be called without blocking:
        // wait for readiness here, then make the call on the pool, where
        // it returns at once (or blocks only as long as the kernel takes
        // to move the rest of a write bigger than the room there was).
        FdKind::BlockingStream => match ready_now(fd, dir) {
            Ok(true) => Attempt::Offload,
            Ok(false) => Attempt::Wait(dir),
            Err(e) => Attempt::Done(e.res()),
        },
        FdKind::File => Attempt::Offload,
    }
}

/// A read at an offset of a regular file, or of a descriptor not known
/// yet, is first tried without waiting for the disk where the system can
/// (Linux's `preadv2` with `RWF_NOWAIT`), as io_uring's first try is: data
/// in the page cache is read on the driver's thread, the rest goes to the
/// pool. `None`: not tried, make the usual attempt.
fn try_file(
    offset: u64,
    kind: Option<FdKind>,
    nowait: impl FnOnce(u64) -> NoWait,
) -> Option<Attempt> {
    if !sys::READS_TRY_NOWAIT
        || offset == CURRENT_POSITION
        || !matches!(kind, None | Some(FdKind::File))
    {
        return None;
    }
    match nowait(offset) {
        NoWait::Done(r) => Some(Attempt::Done(res(r))),
        NoWait::WouldBlock => Some(Attempt::Offload),
        NoWait::Untried => None,
    }
}

/// [`try_file`]'s read into `buf` after its first `from` bytes.
fn read_nowait_into(fd: RawFd, buf: &mut impl IoBufMut, from: usize, offset: u64) -> NoWait {
    let iov = [Room::of(buf, from).iovec()];
    let r = sys::read_nowait(fd, &iov, offset);
    if let NoWait::Done(Ok(n)) = r {
        filled(buf, from, n);
    }
    r
}

/// Makes a read or write on a worker, blocking as long as the syscall
/// does — except on a descriptor that can be polled: a socket, pipe or
/// terminal that is not ready sends the operation back to the driver
/// with -EAGAIN, to wait for readiness there, where a cancel or a linked
/// timeout can still reach it (io_uring's worker arms a poll the same
/// way).
fn run_blocking(
    fd: RawFd,
    dir: Dir,
    offset: u64,
    kind: Option<FdKind>,
    mut call: impl FnMut(How) -> SysResult,
) -> i32 {
    let kind = match kind {
        Some(k) => k,
        // At an offset, the call itself tells a file from what has no
        // offsets: sockets, pipes and terminals refuse it (ESPIPE) before
        // doing anything, so a file costs no fstat.
        None if offset != CURRENT_POSITION => match call(How::Plain(Some(offset))) {
            Err(Errno::ESPIPE) => match sys::classify(fd) {
                Ok(k) => k,
                Err(e) => return e.res(),
            },
            r => return res(r),
        },
        None => match sys::classify(fd) {
            Ok(k) => k,
            Err(e) => return e.res(),
        },
    };
    if negative_offset(offset) {
        return refuse_offset(fd, dir).map_or_else(Errno::res, |()| Errno::EINVAL.res());
    }
    match kind {
        FdKind::Socket => res(call(How::Socket)),
        FdKind::BlockingStream => match ready_now(fd, dir) {
            Ok(true) => res(call(How::plain(kind, offset))),
            Ok(false) => Errno::new(libc::EAGAIN).res(),
            Err(e) => e.res(),
        },
        FdKind::NonBlockingStream | FdKind::File => res(call(How::plain(kind, offset))),
    }
}

/// An offset below -1 (other than the current position, `u64::MAX`):
/// io_uring refuses it with `EINVAL` on every kind of descriptor, streams
/// included, as `pread(2)` does.
fn negative_offset(offset: u64) -> bool {
    offset != CURRENT_POSITION && offset > i64::MAX as u64
}

/// Before refusing a negative offset (or answering a read of nothing):
/// `EBADF` for a descriptor not open for `dir`, which io_uring checks
/// first.
fn refuse_offset(fd: RawFd, dir: Dir) -> Result<(), Errno> {
    match sys::open_for(fd, matches!(dir, Dir::Write))? {
        true => Ok(()),
        false => Err(Errno::EBADF),
    }
}

/// Whether `fd` is ready for `dir` now (or has an error or hang-up to
/// report, which the call then returns).
fn ready_now(fd: RawFd, dir: Dir) -> Result<bool, Errno> {
    let events = match dir {
        Dir::Read => libc::POLLIN,
        Dir::Write => libc::POLLOUT,
    };
    sys::poll_now(fd, events).map(|revents| revents != 0)
}

/// One read into `buf` after its first `from` bytes.
fn read_into(fd: RawFd, buf: &mut impl IoBufMut, from: usize, how: How) -> SysResult {
    let mut room = Room::of(buf, from);
    let n = match how {
        // read(2) of nothing returns 0 at once; recv(2) of nothing on an
        // empty socket says EAGAIN. The call is still made, so that a bad
        // descriptor or one that is no socket answers as read(2) would.
        How::Socket if room.len() == 0 => {
            return nothing(sys::recv(fd, room.as_uninit(), libc::MSG_DONTWAIT));
        }
        How::Socket => sys::recv(fd, room.as_uninit(), libc::MSG_DONTWAIT)?,
        How::Plain(offset) => sys::read(fd, room.as_uninit(), offset)?,
    };
    filled(buf, from, n);
    Ok(n)
}

/// A receive of nothing: 0 where it would wait, as a read of nothing is.
fn nothing(r: SysResult) -> SysResult {
    match r {
        Err(e) if e.would_block() => Ok(0),
        r => r,
    }
}

/// One vectored read into `bufs`, each after its first `from[i]` bytes,
/// spreading what came over them in order.
fn read_vectored<B: IoBufMut>(fd: RawFd, bufs: &mut [B], from: &[usize], how: How) -> SysResult {
    let iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .zip(from)
        .map(|(b, &f)| Room::of(b, f).iovec())
        .collect();
    let n = match how {
        How::Socket if iov.iter().all(|v| v.iov_len == 0) => {
            return nothing(sys::recvmsg(fd, &iov, libc::MSG_DONTWAIT));
        }
        How::Socket => sys::recvmsg(fd, &iov, libc::MSG_DONTWAIT)?,
        How::Plain(offset) => sys::readv(fd, &iov, offset)?,
    };
    spread(bufs, from, n);
    Ok(n)
}

/// The most buffers one vectored call takes: `IOV_MAX` (Linux's
/// `UIO_MAXIOV`), 1024 on every supported system.
pub(crate) const IOV_MAX: usize = 1024;

/// The checks of a `Readv` or `Writev` before it starts: no buffer
/// selection, and at most `IOV_MAX` buffers — io_uring refuses more
/// (`EINVAL`) before it looks at the descriptor.
fn vectored(select: bool, n: usize) -> Result<(), Errno> {
    if select {
        Err(Errno::new(libc::EOPNOTSUPP))
    } else if n > IOV_MAX {
        Err(Errno::EINVAL)
    } else {
        Ok(())
    }
}

/// Records `n` bytes a vectored read spread over `bufs` in order.
pub(crate) fn spread<B: IoBufMut>(bufs: &mut [B], from: &[usize], mut n: usize) {
    for (buf, &f) in bufs.iter_mut().zip(from) {
        let take = n.min(buf.buf_capacity().saturating_sub(f));
        filled(buf, f, take);
        n -= take;
    }
}

/// The iovecs of `bufs`' bytes (the kernel only reads through them).
pub(crate) fn iovecs<B: IoBuf>(bufs: &[B]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| {
            let bytes = b.as_bytes();
            libc::iovec {
                iov_base: bytes.as_ptr().cast_mut().cast(),
                iov_len: bytes.len(),
            }
        })
        .collect()
}

fn write_from(fd: RawFd, bytes: &[u8], how: How) -> SysResult {
    match how {
        How::Socket => sys::send(fd, bytes, libc::MSG_DONTWAIT),
        How::Plain(offset) => sys::write(fd, bytes, offset),
    }
}

fn write_vectored(fd: RawFd, iov: &[libc::iovec], how: How) -> SysResult {
    match how {
        How::Socket => sys::sendmsg(fd, iov, libc::MSG_DONTWAIT),
        How::Plain(offset) => sys::writev(fd, iov, offset),
    }
}

/// The room left in `buf` after its first `from` bytes.
pub(crate) fn room<B: IoBufMut + ?Sized>(buf: &B, from: usize) -> usize {
    buf.buf_capacity().saturating_sub(from)
}

/// `IORING_OP_READ`: reads into the buffer's room after its data (see
/// [`IoBufMut`]), and gives it back with its length grown by the bytes
/// read (`res`).
///
/// With [`Read::select`] the buffer is taken from a provided group when
/// the data is ready (`SqeFlags::BUFFER_SELECT`).
#[derive(Debug)]
pub struct Read<B = BytesMut> {
    fd: Fd,
    target: Target<B>,
    offset: u64,
}

impl<B: IoBufMut> Read<B> {
    /// Reads from `fd` into `buf`'s room, at offset 0.
    pub fn new(fd: impl Into<Fd>, buf: B) -> Read<B> {
        Read {
            fd: fd.into(),
            target: Target::own(buf),
            offset: 0,
        }
    }

    /// The file offset to read at; `u64::MAX` reads at the current position
    /// and advances it. Ignored by sockets, pipes and terminals.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Read<B> {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.target.is_select();
        Sqe::new(Op::Io(Box::new(self))).select(select)
    }

    fn try_nowait(&mut self, offset: u64) -> NoWait {
        let fd = self.fd.number();
        match &mut self.target {
            Target::Own { buf, start } => read_nowait_into(fd, buf, *start, offset),
            Target::Select(s) => match &mut s.picked {
                Some((_, picked)) => read_nowait_into(fd, picked, 0, offset),
                None => NoWait::Done(Ok(0)),
            },
        }
    }

    fn call(&mut self, how: How) -> SysResult {
        match &mut self.target {
            Target::Own { buf, start } => read_into(self.fd.number(), buf, *start, how),
            Target::Select(s) => match &mut s.picked {
                Some((_, picked)) => read_into(self.fd.number(), picked, 0, how),
                // Nothing taken: no room, as a full buffer has none.
                None => Ok(0),
            },
        }
    }
}

impl Read<BytesMut> {
    /// Reads from `fd` into a buffer of provided group `group`, taken when
    /// the data is there. `build()` sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> Read<BytesMut> {
        Read {
            fd: fd.into(),
            target: Target::Select(Select::new(group)),
            offset: 0,
        }
    }
}

operation!({B: IoBufMut} Read<B>, "Read", fd, |op, out| op.target.finish(out));

impl<B: IoBufMut> BlockingOp for Read<B> {
    fn run_blocking(&mut self, kind: Option<FdKind>) -> i32 {
        let fd = self.fd.number();
        // A read of nothing from a file or directory is 0, as io_uring's,
        // where read(2) of a directory is EISDIR; a descriptor not open
        // for reading is still EBADF.
        if self.target.room() == Some(0)
            && kind == Some(FdKind::File)
            && !negative_offset(self.offset)
        {
            return refuse_offset(fd, Dir::Read).map_or_else(Errno::res, |()| 0);
        }
        run_blocking(fd, Dir::Read, self.offset, kind, |how| self.call(how))
    }
}

impl<B: IoBufMut> IoOp for Read<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Read
    }

    fn attempt(&mut self, kind: &mut Option<FdKind>) -> Attempt {
        let (fd, offset) = (self.fd.number(), self.offset);
        if let Some(a) = try_file(offset, *kind, |off| self.try_nowait(off)) {
            return a;
        }
        attempt(fd, Dir::Read, offset, kind, |how| self.call(how))
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        // Selecting with a buffer of its own, or built to select and told
        // not to: there is no buffer to read into.
        if select != self.target.is_select() {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn select(&mut self) -> Option<&mut Select> {
        self.target.select()
    }

    fn wanted(&self) -> Option<usize> {
        // A read into a provided buffer asks for that buffer's size, as
        // io_uring takes a selected buffer's length for the read's.
        self.target.room()
    }

    fn read_request(&self) -> Option<usize> {
        self.wanted().filter(|&n| n > 0)
    }
}

/// `IORING_OP_WRITE`: writes the buffer's bytes (any [`IoBuf`]: `Bytes`,
/// `BytesMut`, `Vec<u8>`, `&'static [u8]`…); `res` is how many were
/// written (a short write is a success), and the buffer comes back whole.
#[derive(Debug)]
pub struct Write<B = Bytes> {
    fd: Fd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    /// Writes `buf` to `fd` at offset 0.
    pub fn new(fd: impl Into<Fd>, buf: B) -> Write<B> {
        Write {
            fd: fd.into(),
            buf,
            offset: 0,
        }
    }

    /// The file offset to write at; `u64::MAX` writes at the current
    /// position. Ignored by sockets, pipes and terminals.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Write<B> {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }
}

operation!({B: IoBuf} Write<B>, "Write", fd, |op, out| out.buf(op.buf));

impl<B: IoBuf> BlockingOp for Write<B> {
    fn run_blocking(&mut self, kind: Option<FdKind>) -> i32 {
        let (fd, bytes) = (self.fd.number(), self.buf.as_bytes());
        run_blocking(fd, Dir::Write, self.offset, kind, |how| {
            write_from(fd, bytes, how)
        })
    }
}

impl<B: IoBuf> IoOp for Write<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Write
    }

    fn attempt(&mut self, kind: &mut Option<FdKind>) -> Attempt {
        let (fd, bytes) = (self.fd.number(), self.buf.as_bytes());
        attempt(fd, Dir::Write, self.offset, kind, |how| {
            write_from(fd, bytes, how)
        })
    }

    fn wanted(&self) -> Option<usize> {
        Some(self.buf.as_bytes().len())
    }
}

/// `IORING_OP_READV`: reads into the room of each buffer in turn; each
/// comes back with its length grown by what landed in it.
/// More than 1024 buffers (`IOV_MAX`) is `-EINVAL`, as in io_uring.
#[derive(Debug)]
pub struct Readv<B = BytesMut> {
    fd: Fd,
    bufs: Vec<B>,
    /// Each buffer's length when given.
    start: Vec<usize>,
    offset: u64,
}

impl<B: IoBufMut> Readv<B> {
    /// Reads from `fd` into `bufs`, at offset 0.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<B>) -> Readv<B> {
        Readv {
            fd: fd.into(),
            start: bufs.iter().map(IoBufMut::buf_len).collect(),
            bufs,
            offset: 0,
        }
    }

    /// The file offset; `u64::MAX` for the current position.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Readv<B> {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }

    fn call(&mut self, how: How) -> SysResult {
        read_vectored(self.fd.number(), &mut self.bufs, &self.start, how)
    }

    fn try_nowait(&mut self, offset: u64) -> NoWait {
        let iov: Vec<libc::iovec> = self
            .bufs
            .iter_mut()
            .zip(&self.start)
            .map(|(b, &f)| Room::of(b, f).iovec())
            .collect();
        let r = sys::read_nowait(self.fd.number(), &iov, offset);
        if let NoWait::Done(Ok(n)) = r {
            spread(&mut self.bufs, &self.start, n);
        }
        r
    }
}

operation!({B: IoBufMut} Readv<B>, "Readv", fd, |op, out| out.buf(op.bufs));

impl<B: IoBufMut> BlockingOp for Readv<B> {
    fn run_blocking(&mut self, kind: Option<FdKind>) -> i32 {
        let (fd, offset) = (self.fd.number(), self.offset);
        run_blocking(fd, Dir::Read, offset, kind, |how| self.call(how))
    }
}

impl<B: IoBufMut> IoOp for Readv<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Read
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        vectored(select, self.bufs.len())
    }

    fn attempt(&mut self, kind: &mut Option<FdKind>) -> Attempt {
        let (fd, offset) = (self.fd.number(), self.offset);
        if let Some(a) = try_file(offset, *kind, |off| self.try_nowait(off)) {
            return a;
        }
        attempt(fd, Dir::Read, offset, kind, |how| self.call(how))
    }

    fn wanted(&self) -> Option<usize> {
        Some(
            self.bufs
                .iter()
                .zip(&self.start)
                .map(|(b, &f)| room(b, f))
                .sum(),
        )
    }

    fn read_request(&self) -> Option<usize> {
        self.wanted().filter(|&n| n > 0)
    }
}

/// `IORING_OP_WRITEV`: writes the buffers in order, as one call.
/// More than 1024 buffers (`IOV_MAX`) is `-EINVAL`, as in io_uring.
#[derive(Debug)]
pub struct Writev<B = Bytes> {
    fd: Fd,
    bufs: Vec<B>,
    offset: u64,
}

impl<B: IoBuf> Writev<B> {
    /// Writes `bufs` to `fd` at offset 0.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<B>) -> Writev<B> {
        Writev {
            fd: fd.into(),
            bufs,
            offset: 0,
        }
    }

    /// The file offset; `u64::MAX` for the current position.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Writev<B> {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Io(Box::new(self)))
    }
}

operation!({B: IoBuf} Writev<B>, "Writev", fd, |op, out| out.buf(op.bufs));

impl<B: IoBuf> BlockingOp for Writev<B> {
    fn run_blocking(&mut self, kind: Option<FdKind>) -> i32 {
        let (fd, iov) = (self.fd.number(), iovecs(&self.bufs));
        run_blocking(fd, Dir::Write, self.offset, kind, |how| {
            write_vectored(fd, &iov, how)
        })
    }
}

impl<B: IoBuf> IoOp for Writev<B> {
    fn transfer(&self) -> Transfer {
        Transfer::Write
    }

    fn validate(&self, select: bool) -> Result<(), Errno> {
        vectored(select, self.bufs.len())
    }

    fn attempt(&mut self, kind: &mut Option<FdKind>) -> Attempt {
        let (fd, iov) = (self.fd.number(), iovecs(&self.bufs));
        attempt(fd, Dir::Write, self.offset, kind, |how| {
            write_vectored(fd, &iov, how)
        })
    }

    fn wanted(&self) -> Option<usize> {
        Some(self.bufs.iter().map(|b| b.as_bytes().len()).sum())
    }
}
