//! Running an operation's syscall: the non-blocking attempt the poller
//! makes, and the blocking call a worker makes.

use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use bytes::BytesMut;

use crate::driver::fds::Dir;
use crate::driver::net;
use crate::ops::Op;
use crate::ops::io::CURRENT_POSITION;
use crate::sys::errno::Errno;
use crate::sys::io::{self as sys, FdKind, SysResult};

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

pub(super) fn res(r: SysResult) -> i32 {
    match r {
        Ok(n) => n.min(i32::MAX as usize) as i32,
        Err(e) => e.res(),
    }
}

fn offset(offset: u64, kind: FdKind) -> Option<u64> {
    // Streams have no position: io_uring ignores the offset there too.
    (offset != CURRENT_POSITION && kind == FdKind::File).then_some(offset)
}

/// Grows `buf` by `n` bytes the kernel wrote into its spare capacity.
pub(super) fn filled(buf: &mut BytesMut, n: usize) {
    let n = n.min(buf.capacity() - buf.len());
    // SAFETY: the syscall initialised the first `n` bytes of the spare
    // capacity it was given, and `n` is clamped to that capacity.
    unsafe { buf.set_len(buf.len() + n) };
}

/// Spreads `n` bytes over `bufs` in order, as a vectored read filled them.
pub(super) fn filled_vec(bufs: &mut [BytesMut], mut n: usize) {
    for buf in bufs {
        let take = n.min(buf.capacity() - buf.len());
        filled(buf, take);
        n -= take;
    }
}

/// The iovecs of the spare capacity of `bufs`.
pub(super) fn spare_iovecs(bufs: &mut [BytesMut]) -> Vec<libc::iovec> {
    bufs.iter_mut()
        .map(|b| {
            let spare = b.spare_capacity_mut();
            libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            }
        })
        .collect()
}

/// The iovecs of `bufs`' bytes (the kernel only reads through them).
pub(super) fn iovecs(bufs: &[bytes::Bytes]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        })
        .collect()
}

/// Which way an operation waits, if it is an I/O operation.
pub(crate) fn direction(op: &Op) -> Option<Dir> {
    match op {
        Op::Read(_) | Op::Readv(_) | Op::Accept(_) | Op::Recv(_) | Op::RecvMsg(_) => {
            Some(Dir::Read)
        }
        Op::Write(_) | Op::Writev(_) | Op::Connect(_) | Op::Send(_) | Op::SendMsg(_) => {
            Some(Dir::Write)
        }
        _ => None,
    }
}

/// How many bytes a plain read asks for: one that returns fewer has
/// emptied a byte stream. `None` for what is not such a read (`MSG_PEEK`
/// leaves the data, `MSG_WAITALL` goes on after a short one, and
/// `RecvMsg` is for datagrams and control data).
pub(crate) fn read_request(op: &Op) -> Option<usize> {
    let room = |b: &BytesMut| b.capacity() - b.len();
    let asked = match op {
        Op::Read(r) => room(r.buf.as_ref()?),
        Op::Readv(r) => r.bufs.as_ref()?.iter().map(room).sum(),
        Op::Recv(r) if r.flags & (libc::MSG_PEEK | libc::MSG_WAITALL) == 0 => {
            crate::ops::net_limit(room(r.buf.as_ref()?), r.len)
        }
        _ => return None,
    };
    (asked > 0).then_some(asked)
}

/// Tries an I/O operation without blocking. `kind` caches what the
/// descriptor is once known: sockets are tried directly (`MSG_DONTWAIT`
/// needs no knowledge), everything else is classified on `ENOTSOCK`.
pub(crate) fn attempt(op: &mut Op, kind: &mut Option<FdKind>) -> Attempt {
    if let Some(attempt) = net::attempt(op) {
        return attempt;
    }
    let fd = match op.fd() {
        Some(fd) => fd,
        None => return Attempt::Done(-libc::EINVAL),
    };
    let Some(dir) = direction(op) else {
        return Attempt::Done(-libc::EINVAL);
    };
    let k = match *kind {
        Some(k) => k,
        None => match try_socket(op) {
            Err(Errno::ENOTSOCK) => match sys::classify(fd) {
                Ok(k) => {
                    *kind = Some(k);
                    k
                }
                Err(e) => return Attempt::Done(e.res()),
            },
            r => {
                *kind = Some(FdKind::Socket);
                return settle(r, dir);
            }
        },
    };
    match k {
        FdKind::Socket => settle(try_socket(op), dir),
        FdKind::NonBlockingStream => settle(call(op, k), dir),
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

fn settle(r: SysResult, dir: Dir) -> Attempt {
    match r {
        Err(e) if e.would_block() => Attempt::Wait(dir),
        r => Attempt::Done(res(r)),
    }
}

/// The socket form of an I/O operation, with `MSG_DONTWAIT`.
fn try_socket(op: &mut Op) -> SysResult {
    let flags = libc::MSG_DONTWAIT;
    match op {
        Op::Read(r) => {
            let Some(buf) = r.buf.as_mut() else {
                return Err(Errno::EINVAL);
            };
            // read(2) of nothing returns 0 at once; recv(2) of nothing on
            // an empty socket would say EAGAIN.
            if buf.capacity() == buf.len() {
                return Ok(0);
            }
            let n = sys::recv(r.fd, buf.spare_capacity_mut(), flags)?;
            filled(buf, n);
            Ok(n)
        }
        Op::Write(w) => {
            let Some(buf) = w.buf.as_ref() else {
                return Err(Errno::EINVAL);
            };
            sys::send(w.fd, buf.as_slice(), flags)
        }
        Op::Readv(r) => {
            let Some(bufs) = r.bufs.as_mut() else {
                return Err(Errno::EINVAL);
            };
            if bufs.iter().all(|b| b.capacity() == b.len()) {
                return Ok(0);
            }
            let iov = spare_iovecs(bufs);
            let n = sys::recvmsg(r.fd, &iov, flags)?;
            filled_vec(bufs, n);
            Ok(n)
        }
        Op::Writev(w) => {
            let Some(bufs) = w.bufs.as_ref() else {
                return Err(Errno::EINVAL);
            };
            sys::sendmsg(w.fd, &iovecs(bufs), flags)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The file form of an I/O operation: read/write or their positioned and
/// vectored forms.
fn call(op: &mut Op, kind: FdKind) -> SysResult {
    match op {
        Op::Read(r) => {
            let Some(buf) = r.buf.as_mut() else {
                return Err(Errno::EINVAL);
            };
            let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
            let n = sys::read(r.fd, spare, offset(r.offset, kind))?;
            filled(buf, n);
            Ok(n)
        }
        Op::Write(w) => {
            let Some(buf) = w.buf.as_ref() else {
                return Err(Errno::EINVAL);
            };
            sys::write(w.fd, buf.as_slice(), offset(w.offset, kind))
        }
        Op::Readv(r) => {
            let Some(bufs) = r.bufs.as_mut() else {
                return Err(Errno::EINVAL);
            };
            let iov = spare_iovecs(bufs);
            let n = sys::readv(r.fd, &iov, offset(r.offset, kind))?;
            filled_vec(bufs, n);
            Ok(n)
        }
        Op::Writev(w) => {
            let Some(bufs) = w.bufs.as_ref() else {
                return Err(Errno::EINVAL);
            };
            sys::writev(w.fd, &iovecs(bufs), offset(w.offset, kind))
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Runs an operation to completion on a worker, blocking as long as the
/// syscall does. A worker never waits for a descriptor that can be polled:
/// a socket, pipe or terminal that is not ready sends the operation back
/// to the driver with -EAGAIN, to wait for readiness there, where a cancel
/// or a linked timeout can still reach it (io_uring's worker arms a poll
/// the same way).
pub(crate) fn run_blocking(op: &mut Op, kind: Option<FdKind>) -> i32 {
    match op {
        Op::Close(c) => res(sys::close(c.fd)),
        Op::Connect(c) => net::connect_blocking(c),
        Op::Read(_) | Op::Write(_) | Op::Readv(_) | Op::Writev(_) => {
            let (Some(fd), Some(dir)) = (op.fd(), direction(op)) else {
                return -libc::EINVAL;
            };
            let kind = match kind {
                Some(k) => k,
                None => match sys::classify(fd) {
                    Ok(k) => k,
                    Err(e) => return e.res(),
                },
            };
            match kind {
                FdKind::Socket => res(try_socket(op)),
                FdKind::BlockingStream => match ready_now(fd, dir) {
                    Ok(true) => res(call(op, kind)),
                    Ok(false) => -libc::EAGAIN,
                    Err(e) => e.res(),
                },
                FdKind::NonBlockingStream | FdKind::File => res(call(op, kind)),
            }
        }
        _ => -libc::EINVAL,
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

/// A poll's ready events now: `Ok(mask)` (0 when not ready) or `Err(res)`.
pub(crate) fn poll_ready(fd: i32, events: u32) -> Result<u32, i32> {
    match sys::poll_now(fd, events as i16 | sys::POLL_RDHUP) {
        Ok(revents) => {
            let revents = revents as u32;
            if revents & libc::POLLNVAL as u32 != 0 {
                return Err(-libc::EBADF);
            }
            // poll(2) always reports errors and hang-ups; io_uring also
            // always reports a peer's shutdown (POLLRDHUP, where it exists).
            let always = (libc::POLLERR | libc::POLLHUP | sys::POLL_RDHUP) as u16 as u32;
            Ok(revents & (events | always))
        }
        Err(e) => Err(e.res()),
    }
}

/// The directions a poll mask waits on.
pub(crate) fn poll_dirs(events: u32) -> [Option<Dir>; 2] {
    let read = (libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM | libc::POLLRDBAND) as u32;
    let write = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND) as u32;
    let r = (events & read != 0).then_some(Dir::Read);
    let w = (events & write != 0).then_some(Dir::Write);
    // A poll for neither (only errors or hang-up) waits on the read side,
    // where kqueue reports EOF.
    if r.is_none() && w.is_none() {
        [Some(Dir::Read), None]
    } else {
        [r, w]
    }
}
