//! The readiness path: an I/O operation tries its call at once; on "not
//! ready" it queues on its (descriptor, direction) until a kevent says
//! the descriptor is ready, then tries again, head of the queue first.
//! Polls hear every event of their descriptor.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

use crate::driver::pool::Work;
use crate::driver::table::{OpKey, State};
use crate::driver::{Driver, WAKE_TOKEN, events};
use crate::ops::{Attempt, Dir, Fd, IoOp, Op, PollAdd, RingOp};
use crate::sys::{self, Event, Filter};

/// A readiness event, as the operations it wakes see it.
#[derive(Clone, Copy, Debug)]
struct Readiness {
    /// With an end of stream (`EV_EOF`): the socket's pending error, the
    /// result of a read that sees the end of the stream (on Linux reading
    /// `SO_ERROR` clears it, so the compat carries it in the event); 0
    /// when none.
    error: i32,
    /// Read side: the bytes readable when the event was collected, where
    /// the backend counts them (a kernel kqueue does, for free). A read
    /// that takes as many has emptied the descriptor of all it held then,
    /// and what comes after brings a new event, as after a short read.
    readable: Option<u64>,
}

/// The direction a kevent filter reports readiness for.
fn dir_of(filter: Filter) -> Option<Dir> {
    match filter {
        Filter::READ => Some(Dir::Read),
        Filter::WRITE => Some(Dir::Write),
        _ => None,
    }
}

/// Whether the opcode named `name` is a socket's receive, which fails on
/// a descriptor that is no socket.
fn is_receive(name: &str) -> bool {
    matches!(name, "Recv" | "RecvMsg")
}

impl Driver {
    /// Takes the I/O operation `key` out of its entry for an attempt;
    /// `None` when `key` names no I/O operation that is here.
    fn take_io(&mut self, key: OpKey) -> Option<Box<dyn IoOp>> {
        let entry = self.table.get_mut(key)?;
        match entry.op.take() {
            Some(Op::Io(op)) => Some(op),
            other => {
                entry.op = other;
                None
            }
        }
    }

    /// Starts an I/O operation on `fd`, which waits for `dir`.
    pub(super) fn start_io(&mut self, key: OpKey, fd: RawFd, dir: Dir) {
        // Queue behind earlier operations on the same (fd, direction) so
        // they complete in submission order. A read whose buffer group is
        // empty is tried, though: it fails with -ENOBUFS at once, as in
        // io_uring, whether data is there or not.
        let (runs_dry, receive) = match self.table.get_mut(key).and_then(|e| e.op.as_mut()) {
            Some(op) => (self.bufs.runs_dry(op.select()), is_receive(op.name())),
            None => (false, false),
        };
        if self.fds.has_io_waiters(fd, dir) || (self.may_skip_try(fd, dir, receive) && !runs_dry) {
            self.fds.push_io(fd, dir, key);
            return;
        }
        if let Some(dir) = self.attempt_until_wait(key, fd, None) {
            self.fds.push_io(fd, dir, key);
        }
    }

    /// Whether a read of (fd, dir) may wait without trying first, because
    /// the last read emptied the descriptor and trying would only say
    /// EAGAIN (a syscall saved per message in request-response traffic).
    /// Whatever comes after that read brings a readiness event, which
    /// clears the mark; but an end of stream already reported brings no
    /// other. So either the wait adds the registration, which reports the
    /// state already there, or no event of the registration in place has
    /// carried the end of the stream.
    /// A receive waits untried only where a receive emptied the
    /// descriptor: on one that is no socket it must fail at once
    /// (`-ENOTSOCK`).
    fn may_skip_try(&self, fd: RawFd, dir: Dir, receive: bool) -> bool {
        let drained = if receive {
            self.fds.is_drained_by_receive(fd, dir)
        } else {
            self.fds.is_drained(fd, dir)
        };
        drained && (self.fds.reports_current(fd, dir) || !self.fds.eof_seen(fd, dir))
    }

    /// Tries `op` (operation `key`) once without blocking. One that
    /// selects a provided buffer takes it first, and puts it back unless
    /// the attempt used it: nothing was ready, or the call failed (or, for
    /// a receive, saw the end of the stream, as io_uring recycles the
    /// buffer then).
    fn try_io(&mut self, key: OpKey, op: &mut dyn IoOp, readable: Option<u64>) -> Attempt {
        let Some(entry) = self.table.get_mut(key) else {
            return Attempt::Done(-libc::ECANCELED);
        };
        let _enter = entry.span.enter();
        if let Err(e) = self.bufs.pick(op.select()) {
            return Attempt::Done(e.res());
        }
        let asked = op.read_request();
        let attempt = op.attempt(&mut entry.kind);
        if op.transfer().dir() == Dir::Read
            && let Some(fd) = op.file().map(Fd::number)
        {
            let emptied = matches!((attempt, asked), (Attempt::Done(n), Some(asked))
                if n > 0 && ((n as usize) < asked || readable.is_some_and(|r| n as u64 >= r)));
            let drained = emptied && self.fds.is_byte_stream(fd, sys::io::is_byte_stream);
            self.fds
                .set_drained_by(fd, Dir::Read, drained, is_receive(op.name()));
        }
        let unused = match attempt {
            Attempt::Wait(_) => {
                self.shared
                    .stats
                    .would_block
                    .fetch_add(1, Ordering::Relaxed);
                true
            }
            Attempt::Done(res) => res < 0 || (res == 0 && op.transfer().eof_returns_buffer()),
            Attempt::Offload => false,
        };
        if unused {
            self.bufs.unpick(op.select());
        }
        attempt
    }

    /// Tries operation `key` until it has to wait — returns the direction
    /// it waits in — or has finished. A multishot operation posts a
    /// completion with `F_MORE` for each success and tries again, unless
    /// that emptied the descriptor. `ready`: the readiness event being
    /// served, `key` at the head of `fd`'s waiters (it leaves them when it
    /// finishes); `None` for an operation just submitted.
    fn attempt_until_wait(
        &mut self,
        key: OpKey,
        fd: RawFd,
        ready: Option<Readiness>,
    ) -> Option<Dir> {
        let queued = ready.is_some();
        let eof_error = ready.map_or(0, |r| r.error);
        let Some(mut op) = self.take_io(key) else {
            // Not an operation that waits here (any more).
            self.fds.remove(fd, key);
            return None;
        };
        loop {
            let res = match self.try_io(key, op.as_mut(), ready.and_then(|r| r.readable)) {
                // A connect in progress whose socket failed: the error came
                // with the event (the compat has read, and so cleared,
                // SO_ERROR).
                Attempt::Wait(_) if eof_error != 0 && op.connecting() => -eof_error,
                Attempt::Wait(dir) => {
                    self.put_op(key, Op::Io(op));
                    return Some(dir);
                }
                Attempt::Offload => {
                    if queued {
                        self.fds.remove(fd, key);
                    }
                    self.offload(key, Work::Io(op));
                    return None;
                }
                Attempt::Done(res) => {
                    let res = self.install_direct(op.direct_slot(), res);
                    if res == 0 && eof_error != 0 && op.transfer().zero_is_eof() {
                        -eof_error
                    } else {
                        res
                    }
                }
            };
            if op.continues(res) {
                self.post_shot(key, op.as_mut(), res);
                if self.may_skip_try(fd, Dir::Read, is_receive(op.name())) {
                    self.put_op(key, Op::Io(op));
                    return Some(Dir::Read);
                }
                continue;
            }
            if queued {
                self.fds.remove(fd, key);
            }
            self.put_op(key, Op::Io(op));
            self.complete(key, res);
            return None;
        }
    }

    /// Serves one event of the `kevent` call: a waker's, a failed change,
    /// or readiness. Returns whether it did work.
    pub(super) fn on_event(&mut self, ev: &Event) -> bool {
        if ev.token() == WAKE_TOKEN {
            self.shared.waker.reset();
            return false;
        }
        if events::is_event_filter(ev.filter()) {
            return self.on_event_op(ev);
        }
        let Some(dir) = dir_of(ev.filter()) else {
            return false;
        };
        let fd = ev.ident() as RawFd;
        if ev.is_error() {
            // A failed EV_ADD leaves the waiters with nothing to wake them:
            // fail them. A failed EV_DELETE (the fd was closed first) needs
            // nothing.
            if let Some(err) = ev.error()
                && self.fds.is_registered(fd, dir)
            {
                self.fds.unregister(fd, dir);
                let res = -err.raw_os_error().unwrap_or(libc::EIO);
                for key in self.fds.take_dir(fd, dir) {
                    self.remove_from_fds(key);
                    self.complete(key, res);
                }
            }
            return true;
        }
        if !self.fds.is_registered(fd, dir) {
            return false;
        }
        // A read that sees a plain end of stream reports the error the
        // event carried, as it would on BSD.
        let ready = Readiness {
            error: if ev.is_eof() { ev.fflags() as i32 } else { 0 },
            readable: (dir == Dir::Read && self.counts_readable && ev.data() > 0)
                .then(|| ev.data() as u64),
        };
        // New readiness: whatever the last read found is old news.
        self.fds.set_drained(fd, dir, false);
        if ev.is_eof() {
            self.fds.set_eof(fd, dir);
        }
        self.serve_polls(fd, dir);
        self.serve_io(fd, dir, ready);
        true
    }

    fn serve_polls(&mut self, fd: RawFd, dir: Dir) {
        let Some(polls) = self.fds.waiters(fd, dir).map(|w| w.polls().to_vec()) else {
            return;
        };
        for key in polls {
            let Some(p) = self.poll_op(key) else {
                self.fds.remove(fd, key);
                continue;
            };
            match p.ready() {
                Ok(0) => {}
                Ok(mask) if p.multishot => self.post_more(key, mask as i32),
                Ok(mask) => {
                    self.fds.remove(fd, key);
                    self.complete(key, mask as i32);
                }
                Err(e) => {
                    self.fds.remove(fd, key);
                    self.complete(key, e.res());
                }
            }
        }
    }

    /// The poll `key`, if it is one.
    fn poll_op(&self, key: OpKey) -> Option<PollAdd> {
        match self.table.get(key)?.op()? {
            Op::Ring(op) => match **op {
                RingOp::Poll(p) => Some(p),
                _ => None,
            },
            _ => None,
        }
    }

    fn serve_io(&mut self, fd: RawFd, dir: Dir, ready: Readiness) {
        while let Some(key) = self.fds.first_io(fd, dir) {
            if self.attempt_until_wait(key, fd, Some(ready)).is_some() {
                break;
            }
            let next_receive = self
                .fds
                .first_io(fd, dir)
                .and_then(|k| self.table.get(k))
                .and_then(|e| e.op.as_ref())
                .is_some_and(|op| is_receive(op.name()));
            if self.may_skip_try(fd, dir, next_receive) {
                break;
            }
        }
        // io_uring wakes every waiter: one whose buffer group has run dry
        // fails now, not when more data comes.
        let rest = self.fds.waiters(fd, dir).map(|w| w.io_keys());
        for key in rest.unwrap_or_default() {
            let bufs = &self.bufs;
            let dry = self
                .table
                .get_mut(key)
                .and_then(|e| e.op.as_mut())
                .is_some_and(|op| bufs.runs_dry(op.select()));
            if dry {
                self.fds.remove(fd, key);
                self.complete(key, -libc::ENOBUFS);
            }
        }
    }

    /// Starts a poll on its descriptor: its `res` when it completes at
    /// once.
    pub(super) fn start_poll(&mut self, key: OpKey, p: PollAdd) -> Option<i32> {
        let mask = match p.ready() {
            Err(e) => return Some(e.res()),
            Ok(mask) => mask,
        };
        // A file that can't wait (a regular file, a directory) is always
        // ready: io_uring's multishot poll of one completes once, without
        // `F_MORE`, as a single-shot one does.
        if mask != 0 && (!p.multishot || can_not_wait(p.fd.number())) {
            return Some(mask as i32);
        }
        // A new registration reports the readiness already there as its
        // first event, which posts then: posting now as well would report
        // the same readiness twice. Only registrations that exist already
        // (and won't fire for old news) need it now.
        if mask != 0
            && p.dirs()
                .into_iter()
                .flatten()
                .all(|dir| !self.fds.reports_current(p.fd.number(), dir))
        {
            self.post_more(key, mask as i32);
        }
        for dir in p.dirs().into_iter().flatten() {
            self.fds.push_poll(p.fd.number(), dir, key);
        }
        None
    }

    /// Takes operation `key` off the descriptor it waits on, if it does.
    pub(super) fn remove_from_fds(&mut self, key: OpKey) {
        if let Some(entry) = self.table.get(key)
            && matches!(entry.state, State::Started)
            && let Some(fd) = entry.fd
        {
            self.fds.remove(fd, key);
        }
    }

    /// Tries a read that waits only on the mark that its descriptor was
    /// empty (untried, and no event since), before a cancel or a linked
    /// timeout ends it: io_uring tried it at issue and took what was
    /// there, so a cancel must not find it. Whether it is done now.
    pub(super) fn finishes_untried(&mut self, key: OpKey) -> bool {
        let Some(fd) = self.table.get(key).and_then(|e| e.fd) else {
            return false;
        };
        if self.fds.first_io(fd, Dir::Read) != Some(key) || !self.fds.is_drained(fd, Dir::Read) {
            return false;
        }
        let ready = Readiness {
            error: 0,
            readable: None,
        };
        self.attempt_until_wait(key, fd, Some(ready)).is_none()
            && self.table.get(key).is_none_or(|e| e.is_running())
    }

    /// Ends operation `key` with `-ECANCELED`, off whatever it waits on.
    pub(super) fn cancel_waiting(&mut self, key: OpKey) {
        self.remove_from_fds(key);
        self.complete(key, -libc::ECANCELED);
    }
}

/// Whether `fd` is a regular file, directory or block device, which
/// readiness never changes for.
fn can_not_wait(fd: RawFd) -> bool {
    matches!(sys::io::classify(fd), Ok(sys::io::FdKind::File))
}
