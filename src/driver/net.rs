//! Running the network operations: the direct calls (socket, bind,
//! listen, shutdown), the non-blocking attempts of the evented ones, and a
//! blocking socket's connect on a worker.

use crate::driver::exec::{Attempt, filled, filled_vec, iovecs, res, spare_iovecs};
use crate::driver::fds::Dir;
use crate::ops::net::Connect;
use crate::ops::{Op, net_limit};
use crate::sys::errno::Errno;
use crate::sys::io as sys;
use crate::sys::net::{self as netsys, SockAddr};

/// Runs an operation that can't block, on the driver's thread.
pub(crate) fn direct(op: &Op) -> i32 {
    match op {
        // A descriptor for the file table is the ring's: never inherited,
        // never blocking.
        Op::Socket(s) => res(netsys::socket(
            s.domain,
            s.ty,
            s.protocol,
            s.cloexec || s.direct.is_some(),
            s.nonblocking || s.direct.is_some(),
        )),
        Op::Bind(b) => res(netsys::bind(b.fd, &b.addr)),
        Op::Listen(l) => res(netsys::listen(l.fd, l.backlog)),
        Op::Shutdown(s) => res(netsys::shutdown(s.fd, s.how)),
        _ => -libc::EINVAL,
    }
}

/// Tries a network operation without blocking; `None` for any other.
pub(crate) fn attempt(op: &mut Op) -> Option<Attempt> {
    Some(match op {
        Op::Accept(_) => accept(op),
        Op::Connect(c) => connect(c),
        Op::Recv(_) => recv(op),
        Op::Send(s) => send(s),
        Op::RecvMsg(_) => recvmsg(op),
        Op::SendMsg(m) => {
            let Some(bufs) = m.msg.bufs.as_ref() else {
                return Some(Attempt::Done(-libc::EINVAL));
            };
            settle(
                netsys::sendmsg_to(
                    m.fd,
                    &iovecs(bufs),
                    m.msg.to.as_ref(),
                    m.msg.flags | libc::MSG_DONTWAIT,
                ),
                Dir::Write,
            )
        }
        _ => return None,
    })
}

fn settle(r: Result<usize, Errno>, dir: Dir) -> Attempt {
    match r {
        Err(e) if e.would_block() => Attempt::Wait(dir),
        r => Attempt::Done(res(r)),
    }
}

fn accept(op: &mut Op) -> Attempt {
    let Op::Accept(a) = op else {
        return Attempt::Done(-libc::EINVAL);
    };
    let blocking = match a.blocking {
        Some(b) => b,
        None => match netsys::is_nonblocking(a.fd) {
            Ok(nb) => *a.blocking.insert(!nb),
            Err(e) => return Attempt::Done(e.res()),
        },
    };
    loop {
        if blocking {
            // A blocking listener: accept only what poll says is there, so
            // the driver's thread does not block in accept.
            match sys::poll_now(a.fd, libc::POLLIN) {
                Ok(r) if r as i16 & libc::POLLNVAL != 0 => return Attempt::Done(-libc::EBADF),
                Ok(r) if r as i16 & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) == 0 => {
                    return Attempt::Wait(Dir::Read);
                }
                Ok(_) => {}
                Err(e) => return Attempt::Done(e.res()),
            }
        }
        let mut addr = a.want_addr.then(SockAddr::empty);
        let ring_owned = a.direct.is_some();
        match netsys::accept(
            a.fd,
            addr.as_mut(),
            a.cloexec || ring_owned,
            a.nonblocking || ring_owned,
        ) {
            Ok(fd) => {
                a.addr = addr.map(Box::new);
                return Attempt::Done(res(Ok(fd)));
            }
            Err(e) if e.would_block() => return Attempt::Wait(Dir::Read),
            // The connection went away before it was taken: try the next.
            Err(Errno::ECONNABORTED) => continue,
            Err(e) => return Attempt::Done(e.res()),
        }
    }
}

fn connect(c: &mut Connect) -> Attempt {
    if !c.started {
        match netsys::is_nonblocking(c.fd) {
            Ok(true) => {}
            // A blocking socket's connect would block the driver: the pool
            // runs it.
            Ok(false) => return Attempt::Offload,
            Err(e) => return Attempt::Done(e.res()),
        }
        return match netsys::connect(c.fd, &c.addr) {
            Ok(_) => Attempt::Done(0),
            Err(Errno::EINPROGRESS | Errno::EALREADY) => {
                c.started = true;
                Attempt::Wait(Dir::Write)
            }
            // A Unix socket whose listener's backlog is full: try again
            // when it may have room.
            Err(e) if e.would_block() => Attempt::Wait(Dir::Write),
            Err(e) => Attempt::Done(e.res()),
        };
    }
    connect_outcome(c.fd)
}

/// The outcome of a connect in progress: its error, done, or still going.
fn connect_outcome(fd: i32) -> Attempt {
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

/// A blocking socket's connect, on a worker.
pub(crate) fn connect_blocking(c: &mut Connect) -> i32 {
    match netsys::connect(c.fd, &c.addr) {
        Ok(_) => 0,
        // Interrupted: the connect goes on; wait for its outcome.
        Err(Errno::EINPROGRESS) => loop {
            if let Err(e) = netsys::poll_wait(c.fd, libc::POLLOUT) {
                return e.res();
            }
            match connect_outcome(c.fd) {
                Attempt::Done(res) => return res,
                _ => continue,
            }
        },
        Err(e) => e.res(),
    }
}

fn send(s: &mut crate::ops::net::Send) -> Attempt {
    let Some(buf) = s.buf.as_ref() else {
        return Attempt::Done(-libc::EINVAL);
    };
    let wait_all = s.flags & libc::MSG_WAITALL != 0;
    let flags = (s.flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    let data = buf.as_slice();
    let from = (s.done as usize).min(data.len());
    match sys::send(s.fd, &data[from..], flags) {
        Ok(n) if wait_all => {
            s.done = s.done.saturating_add(n.min(u32::MAX as usize) as u32);
            if n > 0 && (s.done as usize) < data.len() {
                // MSG_WAITALL: the rest goes when there is room.
                Attempt::Wait(Dir::Write)
            } else {
                Attempt::Done(res(Ok(s.done as usize)))
            }
        }
        Err(e) if e.would_block() => Attempt::Wait(Dir::Write),
        // What was sent before the failure is the result, as in io_uring.
        Err(_) if wait_all && s.done > 0 => Attempt::Done(res(Ok(s.done as usize))),
        r => Attempt::Done(res(r)),
    }
}

fn recv(op: &mut Op) -> Attempt {
    let Op::Recv(r) = op else {
        return Attempt::Done(-libc::EINVAL);
    };
    let Some(buf) = r.buf.as_mut() else {
        return Attempt::Done(-libc::EINVAL);
    };
    let wait_all = r.flags & libc::MSG_WAITALL != 0;
    let flags = (r.flags & !libc::MSG_WAITALL) | libc::MSG_DONTWAIT;
    let room = buf.capacity() - buf.len();
    let limit = if wait_all && r.len != 0 {
        room.min((r.len as usize).saturating_sub(r.done as usize))
    } else {
        net_limit(room, r.len)
    };
    let spare = &mut buf.spare_capacity_mut()[..limit];
    match sys::recv(r.fd, spare, flags) {
        Ok(n) => {
            filled(buf, n);
            if !wait_all {
                return Attempt::Done(res(Ok(n)));
            }
            r.done = r.done.saturating_add(n.min(u32::MAX as usize) as u32);
            if n > 0 && n < limit {
                // MSG_WAITALL: keep what came, wait for the rest.
                Attempt::Wait(Dir::Read)
            } else {
                Attempt::Done(res(Ok(r.done as usize)))
            }
        }
        Err(e) if e.would_block() => Attempt::Wait(Dir::Read),
        Err(_) if wait_all && r.done > 0 => Attempt::Done(res(Ok(r.done as usize))),
        Err(e) => Attempt::Done(e.res()),
    }
}

fn recvmsg(op: &mut Op) -> Attempt {
    let Op::RecvMsg(m) = op else {
        return Attempt::Done(-libc::EINVAL);
    };
    let state = &mut *m.msg;
    let mut from = SockAddr::empty();
    let flags = state.flags | libc::MSG_DONTWAIT;
    let r = if let Some(buf) = state.picked.as_mut() {
        let iov = spare_iovecs(std::slice::from_mut(buf));
        netsys::recvmsg_from(m.fd, &iov, &mut from, flags).map(|(n, _)| {
            filled(buf, n);
            n
        })
    } else if let Some(bufs) = state.bufs.as_mut() {
        let iov = spare_iovecs(bufs);
        netsys::recvmsg_from(m.fd, &iov, &mut from, flags).map(|(n, _)| {
            filled_vec(bufs, n);
            n
        })
    } else {
        Err(Errno::EINVAL)
    };
    if r.is_ok() && !from.is_empty() {
        state.from = Some(Box::new(from));
    }
    settle(r, Dir::Read)
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use crate::driver::Entry;
    use crate::driver::fds::Waiters;

    /// What kqring keeps per idle connection with one multishot receive
    /// waiting over a buffer group: the operation's entry in the driver's
    /// table, the descriptor's waiter queues in the fd table (its slot in
    /// the descriptor-indexed table; a lone waiter is kept inline, without
    /// a queue on the heap), and the kevent layer's registration (the compat's per-descriptor
    /// slot on Linux). No buffer: a receive takes one only when data is
    /// there.
    #[test]
    fn idle_connection_footprint_is_under_512_bytes() {
        let entry = size_of::<slab_entry::Slot<Entry>>();
        let waiters = size_of::<[Waiters; 2]>();
        let registration = crate::sys::registration_bytes();
        let total = entry + waiters + registration;
        println!(
            "idle connection: entry {entry} + fd waiters {waiters} \
             + kevent registration {registration} = {total} bytes \
             (op {}, span {})",
            size_of::<crate::ops::Op>(),
            size_of::<tracing::Span>()
        );
        assert!(total < 512, "{total} bytes per idle connection");
    }

    /// The shape of a slab slot (slab keeps `enum { Vacant(usize),
    /// Occupied(T) }`).
    mod slab_entry {
        #[allow(dead_code)]
        pub(super) enum Slot<T> {
            Vacant(usize),
            Occupied(T),
        }
    }
}
