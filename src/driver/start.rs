//! Taking an entry and starting its operation: each kind of operation
//! says how it runs, and this is where the driver does what it says.

use std::os::fd::{FromRawFd, OwnedFd};

use crate::driver::Driver;
use crate::driver::pool::Work;
use crate::driver::table::{Entry, OpKey, State};
use crate::ops::{Fd, FileSlot, Op, RingOp};
use crate::sq::{Sqe, SqeFlags};
use crate::sys::errno::Errno;

impl Driver {
    /// Enters one operation in the table and starts it, unless its link
    /// chain makes it wait.
    pub(super) fn submit(&mut self, sqe: Sqe) {
        let taking = self.offload.taking(sqe.batch);
        self.start_entry(sqe);
        self.offload.taken(taking);
    }

    fn start_entry(&mut self, sqe: Sqe) {
        let Sqe {
            op,
            user_data,
            flags,
            batch,
            notify,
        } = sqe;
        // A registered file's descriptor is known once the operation
        // starts; until then its number is a slot (the span shows that).
        let closes = op.is_close();
        let fixed = flags.contains(SqeFlags::FIXED_FILE) && !closes && op.fd().is_some();
        let span = tracing::trace_span!(
            "op",
            op = op.name(),
            user_data,
            fd = op.fd().unwrap_or(-1),
            fixed,
            res = tracing::field::Empty
        );
        let is_link_timeout = matches!(op.ring(), Some(RingOp::LinkTimeout(_)));
        let fd = if fixed { None } else { op.fd() };
        let mut entry = Entry::new(user_data, flags, op, span);
        entry.fd = fd;
        // A future dropped (or cancelled) before its operation was taken:
        // it ends cancelled without running — but a `Close`, whose
        // descriptor the future owned and nothing else would close, runs.
        let abandoned = !closes && notify.as_ref().is_some_and(|n| n.is_cancelled());
        entry.notify = notify;
        let key = self.table.insert(entry);
        if abandoned {
            return self.complete(key, -libc::ECANCELED);
        }
        if is_link_timeout {
            return self.attach_link_timeout(key, flags, batch);
        }
        if self.link(key, flags, batch) == Some(true) {
            self.start(key);
        }
    }

    /// Starts operation `key`: its checks, its registered file, then what
    /// its kind says.
    pub(super) fn start(&mut self, key: OpKey) {
        let Some(entry) = self.table.get_mut(key) else {
            return;
        };
        entry.state = State::Started;
        let (flags, span, lt) = (entry.flags, entry.span.clone(), entry.links().link_timeout);
        if let Some(lt) = lt
            && self
                .table
                .get(lt)
                .is_some_and(|e| e.links().deadline.is_none())
        {
            self.arm_link_timeout(lt);
        }
        let _enter = span.entered();
        let Some(mut op) = self.table.get_mut(key).and_then(|e| e.op.take()) else {
            return;
        };
        if let Err(e) = self.prepare(key, &mut op, flags) {
            self.put_op(key, op);
            return self.complete(key, e.res());
        }
        match op {
            Op::Direct(mut direct) => {
                let res = direct.call();
                let slot = direct.direct_slot();
                self.put_op(key, Op::Direct(direct));
                let res = self.install_direct(slot, res);
                self.complete(key, res);
            }
            Op::Io(io) => {
                let (fd, dir) = (io.file().map_or(-1, Fd::number), io.transfer().dir());
                // Network operations are always evented.
                if flags.contains(SqeFlags::ASYNC) && io.transfer().may_offload() {
                    return self.offload(key, Work::Io(io));
                }
                self.put_op(key, Op::Io(io));
                self.start_io(key, fd, dir);
            }
            Op::Blocking(mut blocking) => {
                if let Some(fd) = blocking.closes() {
                    // The ring's own descriptors are not the user's to
                    // close (io_uring refuses a close of its ring the same
                    // way).
                    if self.shared.kq.owns(fd) || self.shared.waker.owns(fd) || self.files.owns(fd)
                    {
                        self.put_op(key, Op::Blocking(blocking));
                        return self.complete(key, -libc::EBADF);
                    }
                    // kqueue drops a descriptor's registrations when it
                    // closes, so whatever waits on it would wait forever:
                    // end it now.
                    for waiter in self.fds.take_all(fd) {
                        self.complete(waiter, -libc::ECANCELED);
                    }
                    for waiter in self.event_regs.on_fd(fd) {
                        self.complete(waiter, -libc::ECANCELED);
                    }
                    // close(2) here, as io_uring closes at issue: it does
                    // not wait (the file's release may, as on NFS, and
                    // `ASYNC` sends it to the pool), once the descriptor's
                    // registrations are deleted.
                    if !flags.contains(SqeFlags::ASYNC) {
                        self.delete_registrations_now(fd);
                        let res = blocking.run_blocking(None);
                        self.put_op(key, Op::Blocking(blocking));
                        return self.complete(key, res);
                    }
                }
                if !flags.contains(SqeFlags::ASYNC)
                    && let Some(res) = blocking.try_now()
                {
                    let slot = blocking.direct_slot();
                    self.put_op(key, Op::Blocking(blocking));
                    let res = self.install_direct(slot, res);
                    return self.complete(key, res);
                }
                self.offload(key, Work::Blocking(blocking));
            }
            Op::Event(event) => self.start_event(key, event),
            Op::Ring(mut ring) => {
                let res = self.begin_ring(key, &mut ring);
                self.put_op(key, Op::Ring(ring));
                if let Some(res) = res {
                    self.complete(key, res);
                }
            }
        }
    }

    /// Puts operation `key`'s operation back in its entry.
    pub(super) fn put_op(&mut self, key: OpKey, op: Op) {
        if let Some(entry) = self.table.get_mut(key) {
            entry.op = Some(op);
        }
    }

    /// The checks an operation passes before it runs, and its registered
    /// file resolved.
    fn prepare(&mut self, key: OpKey, op: &mut Op, flags: SqeFlags) -> Result<(), Errno> {
        let select = flags.contains(SqeFlags::BUFFER_SELECT);
        match op {
            Op::Io(io) => io.validate(select)?,
            // io_uring: an opcode that can't select a buffer.
            _ if select => return Err(Errno::new(libc::EOPNOTSUPP)),
            _ => {}
        }
        if !flags.contains(SqeFlags::FIXED_FILE) {
            return Ok(());
        }
        // A `Close` names a slot its own way: the flag on one is `-EBADF`,
        // as in io_uring.
        if op.is_close() {
            return Err(Errno::EBADF);
        }
        // io_uring ignores the flag on an operation without a file.
        let Some(file) = op.file_mut() else {
            return Ok(());
        };
        let held = self.files.hold(file.number() as u32)?;
        *file = Fd::Raw(held);
        if let Some(entry) = self.table.get_mut(key) {
            entry.fd = Some(held);
            entry.holds_file = true;
        }
        Ok(())
    }

    /// Runs an operation on the ring's own state: its `res`, or `None`
    /// when it waits (a poll, a timer).
    fn begin_ring(&mut self, key: OpKey, op: &mut RingOp) -> Option<i32> {
        let res = match op {
            RingOp::Poll(p) => return self.start_poll(key, *p),
            RingOp::Timeout(t) => {
                self.start_timeout(key, *t);
                return None;
            }
            // Armed when the operation it bounds starts.
            RingOp::LinkTimeout(_) => return None,
            RingOp::PollRemove(r) => self.remove_poll(r.target),
            RingOp::TimeoutRemove(r) => self.remove_timeout(r.target),
            RingOp::TimeoutUpdate(u) => self.update_timeout(*u),
            RingOp::Cancel(c) => self.cancel(key, c.target, c.all),
            RingOp::Provide(p) => self.bufs.provide(p.group, p.bid, &mut p.bufs),
            RingOp::Remove(r) => match self.bufs.remove(r.group, r.n) {
                Ok(removed) => {
                    let n = removed.len() as i32;
                    r.removed = Some(removed);
                    n
                }
                Err(e) => e.res(),
            },
            RingOp::FilesUpdate(u) => {
                let mut retired = Vec::new();
                let res = self.files.update(u, &mut retired);
                for fd in retired {
                    self.retire(fd);
                }
                res
            }
            RingOp::MsgRing(m) => return self.send_message(key, m),
            RingOp::CloseSlot(slot) => match self.files.remove(*slot) {
                Ok(last) => {
                    if let Some(fd) = last {
                        self.retire(fd);
                    }
                    0
                }
                Err(e) => e.res(),
            },
        };
        Some(res)
    }

    /// A descriptor that a direct `Accept` or `Socket` made (`res`) goes
    /// into the file table at `slot`; returns the operation's `res` then.
    pub(super) fn install_direct(&mut self, slot: Option<FileSlot>, res: i32) -> i32 {
        let Some(slot) = slot else {
            return res;
        };
        if res < 0 {
            return res;
        }
        // SAFETY: `res` is the descriptor the operation's syscall just
        // made; nothing else knows of it.
        let fd = unsafe { OwnedFd::from_raw_fd(res) };
        match self.files.install(slot, fd) {
            Ok((res, replaced)) => {
                if let Some(old) = replaced {
                    self.retire(old);
                }
                res
            }
            Err(e) => e.res(),
        }
    }
}
