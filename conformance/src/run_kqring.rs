//! Runs a program on a kqring ring.

use std::collections::{HashMap, HashSet};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kqring::{Cqe, Mode, Ring, RingHandle, SockAddr, Sqe, SqeFlags, ops};

use crate::model::{
    Addr, CancelTarget, Entry, FileRef, FileSlot, Flags, How, Op, PidRef, Program, ResourceKind,
    RingName,
};
use crate::resources::{Fds, SockAddress};
use crate::run::{
    Backend, ChildState, Completions, CqeRecord, Got, RunError, bid16, drive, group16,
    normalize_flags, recv_flags, update_fds,
};

/// Runs `program` on a kqring ring driven in `mode`, and gives its
/// completions (each wait's sorted by `user_data` when the program's
/// order says so).
pub fn run_kqring(program: &Program, mode: Mode) -> Result<Completions, RunError> {
    drive(program, || {
        let ring = Ring::builder()
            .mode(mode)
            .sq_entries(128)
            .workers(2)
            .files(program.files)
            .build()
            .map_err(|e| RunError::io("building the kqring ring", e))?;
        let mut others = HashMap::new();
        for r in &program.resources {
            if let ResourceKind::Ring { files } = r.kind {
                let other = Ring::builder()
                    .mode(mode)
                    .sq_entries(16)
                    .workers(1)
                    .files(files)
                    .build()
                    .map_err(|e| RunError::io(format!("building ring {}", r.name), e))?;
                others.insert(r.name.clone(), (other.handle(), Some(other)));
            }
        }
        Ok(Kqring {
            ring,
            others,
            reads: HashSet::new(),
            messages: HashSet::new(),
            makes_fds: HashSet::new(),
        })
    })
}

/// Waits until the polling thread has taken what was submitted and ended
/// the turn that took it (its registrations made), as `io_uring_enter`
/// returns with its entries issued: a step after the submission (a peer's
/// write) then comes after them, as on io_uring, rather than at once with
/// the polling thread's take (a write while a multishot poll is armed can
/// wake it twice). Bounded: a ring that is not taking entries (its CQ full)
/// is left to go on.
fn issued(ring: &Ring) {
    let bound = Instant::now() + Duration::from_millis(100);
    while !ring.submission().is_empty() {
        if Instant::now() >= bound {
            return;
        }
        std::hint::spin_loop();
    }
    let taken_in = ring.stats().turns;
    while ring.stats().turns < taken_in + 2 && Instant::now() < bound {
        std::hint::spin_loop();
    }
}

struct Kqring {
    ring: Ring,
    /// The second rings, by name: a handle, and the ring until it is
    /// closed (the handle then names a ring that is gone).
    others: HashMap<String, (RingHandle, Option<Ring>)>,
    /// The `user_data` of entries whose completions carry bytes read (the
    /// others may carry buffers too: a write's, removed buffers).
    reads: HashSet<u64>,
    /// The `user_data` of received messages, whose completions name the
    /// sender.
    messages: HashSet<u64>,
    /// The `user_data` of entries that make descriptors of the process.
    makes_fds: HashSet<u64>,
}

/// The file an entry names: a descriptor, or a slot of the file table.
fn file(f: &FileRef, fds: &Fds) -> Result<ops::Fd, RunError> {
    Ok(match f {
        FileRef::Fd(fd) => ops::Fd::Raw(fds.get(fd)?),
        FileRef::Fixed(slot) => ops::Fd::Fixed(*slot),
    })
}

/// kqring's address for one a program names.
fn sock_addr(addr: &Addr, fds: &Fds) -> Result<SockAddr, RunError> {
    let a = match addr {
        Addr::Ip(a) => SockAddress::Ip(*a),
        Addr::LocalOf(fd) => fds.local_addr(fd)?,
    };
    match a {
        SockAddress::Ip(a) => Ok(SockAddr::from(a)),
        SockAddress::Unix(path) => SockAddr::unix(&path)
            .map_err(|e| RunError::io(format!("address {}", path.display()), e)),
        SockAddress::Unnamed => Err(RunError::Invalid(format!(
            "{addr:?}: the socket is bound to no address"
        ))),
    }
}

/// The address kqring reports, as the comparison tells addresses apart.
fn address(a: &SockAddr) -> SockAddress {
    if let Some(ip) = a.as_socket() {
        SockAddress::Ip(ip)
    } else if let Some(path) = a.as_unix_path() {
        SockAddress::Unix(path.to_path_buf())
    } else {
        SockAddress::Unnamed
    }
}

/// kqring's name for a slot.
fn slot(s: FileSlot) -> ops::FileSlot {
    match s {
        FileSlot::Index(i) => ops::FileSlot::Index(i),
        FileSlot::Alloc => ops::FileSlot::Alloc,
    }
}

/// The kqring entry for `entry`.
fn translate(
    entry: &Entry,
    fds: &Fds,
    others: &HashMap<String, (RingHandle, Option<Ring>)>,
) -> Result<Sqe, RunError> {
    let ring = |name: &RingName| {
        others
            .get(&name.0)
            .map(|(h, _)| h.clone())
            .ok_or_else(|| RunError::Invalid(format!("no ring {}", name.0)))
    };
    let time = |ms: u64, abs: bool| {
        let d = Duration::from_millis(ms);
        if abs { ops::monotonic_now() + d } else { d }
    };
    let sqe = match &entry.op {
        Op::Nop {} => ops::Nop::new().build(),
        Op::Read { fd, len, off } => {
            ops::Read::new(file(fd, fds)?, BytesMut::with_capacity(*len as usize))
                .offset(off.raw())
                .build()
        }
        Op::Write { fd, data, off } => ops::Write::new(file(fd, fds)?, Bytes::from(data.clone()))
            .offset(off.raw())
            .build(),
        Op::Readv { fd, lens, off } => {
            let bufs = lens
                .iter()
                .map(|&l| BytesMut::with_capacity(l as usize))
                .collect();
            ops::Readv::new(file(fd, fds)?, bufs)
                .offset(off.raw())
                .build()
        }
        Op::Writev { fd, data, off } => {
            let bufs = data.iter().map(|d| Bytes::from(d.clone())).collect();
            ops::Writev::new(file(fd, fds)?, bufs)
                .offset(off.raw())
                .build()
        }
        Op::PollAdd { fd, events, multi } => ops::PollAdd::new(file(fd, fds)?, events.0)
            .multishot(*multi)
            .build(),
        Op::PollRemove { target } => ops::PollRemove::new(*target).build(),
        Op::Timeout { ms, count, abs } => ops::Timeout::new(time(*ms, *abs))
            .count(*count)
            .absolute(*abs)
            .build(),
        Op::TimeoutRemove { target } => ops::TimeoutRemove::new(*target).build(),
        Op::TimeoutUpdate { target, ms, abs } => ops::TimeoutUpdate::new(*target, time(*ms, *abs))
            .absolute(*abs)
            .build(),
        Op::LinkTimeout { ms, abs } => ops::LinkTimeout::new(time(*ms, *abs))
            .absolute(*abs)
            .build(),
        Op::AsyncCancel { target, all } => {
            let target = match target {
                CancelTarget::UserData(ud) => ops::CancelTarget::UserData(*ud),
                CancelTarget::Fd(fd) => ops::CancelTarget::Fd(fds.get(fd)?),
                CancelTarget::Fixed(slot) => ops::CancelTarget::Fixed(*slot),
                CancelTarget::Any => ops::CancelTarget::Any,
            };
            ops::AsyncCancel::matching(target).all(*all).build()
        }
        Op::Close { fd } => ops::Close::new(file(fd, fds)?).build(),
        Op::Recv {
            fd,
            len,
            waitall,
            peek,
        } => ops::Recv::new(file(fd, fds)?, BytesMut::with_capacity(*len as usize))
            .flags(recv_flags(*waitall, *peek))
            .build(),
        Op::RecvSelect { fd, group, multi } => ops::Recv::select(file(fd, fds)?, group16(*group)?)
            .multishot(*multi)
            .build(),
        Op::Send { fd, data } => ops::Send::new(file(fd, fds)?, Bytes::from(data.clone())).build(),
        Op::ProvideBuffers {
            group,
            count,
            len,
            bid,
        } => {
            let bufs = (0..*count)
                .map(|_| BytesMut::with_capacity(*len as usize))
                .collect();
            ops::ProvideBuffers::new(group16(*group)?, bufs, bid16(*bid)?).build()
        }
        Op::RemoveBuffers { group, n } => {
            ops::RemoveBuffers::new(group16(*group)?, bid16(*n)?).build()
        }
        Op::FilesUpdate { at, fds: list } => {
            ops::FilesUpdate::new(slot(*at), update_fds(list, fds)?).build()
        }
        Op::Accept {
            fd,
            file_index,
            multi,
            as_: _,
        } => {
            let accept = ops::Accept::new(file(fd, fds)?).multishot(*multi);
            match file_index {
                Some(s) => accept.file_index(slot(*s)),
                None => accept,
            }
            .build()
        }
        Op::Socket {
            domain,
            type_,
            protocol,
            file_index,
            blocking,
            as_: _,
        } => {
            let socket = ops::Socket::new(domain.raw(), type_.raw(), *protocol as i32)
                .nonblocking(!blocking);
            match file_index {
                Some(s) => socket.file_index(slot(*s)),
                None => socket,
            }
            .build()
        }
        Op::Bind { fd, addr } => ops::Bind::new(file(fd, fds)?, sock_addr(addr, fds)?).build(),
        Op::Listen { fd, backlog } => ops::Listen::new(file(fd, fds)?, *backlog as i32).build(),
        Op::Connect { fd, addr } => {
            ops::Connect::new(file(fd, fds)?, sock_addr(addr, fds)?).build()
        }
        Op::Shutdown { fd, how } => {
            let how = match how {
                How::Read => std::net::Shutdown::Read,
                How::Write => std::net::Shutdown::Write,
                How::Both => std::net::Shutdown::Both,
            };
            ops::Shutdown::new(file(fd, fds)?, how).build()
        }
        Op::SendMsg { fd, data, to } => {
            let bufs = data.iter().map(|d| Bytes::from(d.clone())).collect();
            let msg = ops::SendMsg::new(file(fd, fds)?, bufs);
            match to {
                Some(to) => msg.to(sock_addr(to, fds)?),
                None => msg,
            }
            .build()
        }
        Op::RecvMsg { fd, lens } => {
            let bufs = lens
                .iter()
                .map(|&l| BytesMut::with_capacity(l as usize))
                .collect();
            ops::RecvMsg::new(file(fd, fds)?, bufs).build()
        }
        Op::RecvMsgSelect { fd, group } => {
            ops::RecvMsg::select(file(fd, fds)?, group16(*group)?).build()
        }
        Op::ReadSelect { fd, group, off } => ops::Read::select(file(fd, fds)?, group16(*group)?)
            .offset(off.raw())
            .build(),
        Op::OpenAt { .. }
        | Op::Statx { .. }
        | Op::Fsync { .. }
        | Op::Fallocate { .. }
        | Op::Ftruncate { .. }
        | Op::Fadvise { .. }
        | Op::UnlinkAt { .. }
        | Op::RenameAt { .. }
        | Op::MkdirAt { .. }
        | Op::SymlinkAt { .. }
        | Op::LinkAt { .. } => crate::fs::kqring_sqe(&entry.op, fds)?,
        Op::WaitId { pid, options } => {
            let pid = match pid {
                PidRef::Child(name) => fds.child_pid(name)?,
                PidRef::Number(n) => *n,
            };
            ops::WaitId::new(libc::P_PID, pid as libc::id_t, options.0).build()
        }
        Op::MsgRing {
            to,
            res,
            target_ud,
            skip_target_cqe,
        } => ops::MsgRing::data(ring(to)?, *res, *target_ud)
            .skip_target_cqe(*skip_target_cqe)
            .build(),
        Op::MsgRingFd {
            to,
            src,
            dest,
            target_ud,
            skip_target_cqe,
        } => ops::MsgRing::send_fd(ring(to)?, ops::Fixed(*src), slot(*dest), *target_ud)
            .skip_target_cqe(*skip_target_cqe)
            .build(),
    };
    Ok(sqe.user_data(entry.user_data).flags(flags(entry.flags)))
}

fn flags(f: Flags) -> SqeFlags {
    [
        (Flags::LINK, SqeFlags::IO_LINK),
        (Flags::HARDLINK, SqeFlags::IO_HARDLINK),
        (Flags::DRAIN, SqeFlags::IO_DRAIN),
        (Flags::ASYNC, SqeFlags::ASYNC),
        (Flags::SKIP_SUCCESS, SqeFlags::CQE_SKIP_SUCCESS),
    ]
    .into_iter()
    .filter(|(ours, _)| f.contains(*ours))
    .fold(SqeFlags::NONE, |acc, (_, theirs)| acc | theirs)
}

impl Kqring {
    /// A completion as the comparison takes it.
    fn got(&self, mut c: Cqe) -> Got {
        // The bytes of a successful read ride back in its buffer.
        let read = self.reads.contains(&c.user_data()) && c.result() >= 0;
        let data = if read {
            c.take_buf::<BytesMut>()
                .map(|b| b.to_vec())
                .or_else(|_| c.take_buf::<Vec<BytesMut>>().map(|v| v.concat()))
                .ok()
        } else {
            None
        };
        let from = if self.messages.contains(&c.user_data()) && c.result() >= 0 {
            c.addr().map(address)
        } else {
            None
        };
        let child = c.wait_info().map(|w| ChildState {
            signo: w.signo,
            code: w.code,
            status: w.status,
            pid: w.pid,
            uid: w.uid,
        });
        Got {
            record: CqeRecord {
                user_data: c.user_data(),
                res: c.result(),
                flags: normalize_flags(c.flags()),
                data,
                from: None,
                stat: crate::fs::kqring_stat(&c),
                waited: None,
            },
            from,
            child,
        }
    }
}

impl Backend for Kqring {
    fn submit(&mut self, entries: &[Entry], fds: &Fds) -> Result<(), RunError> {
        let sq = self.ring.submission();
        for e in entries {
            if e.op.is_read() || e.op.selects().is_some() {
                self.reads.insert(e.user_data);
            }
            if matches!(e.op, Op::RecvMsg { .. } | Op::RecvMsgSelect { .. }) {
                self.messages.insert(e.user_data);
            }
            if e.op.makes_fd() {
                self.makes_fds.insert(e.user_data);
            }
            if sq.push(translate(e, fds, &self.others)?).is_err() {
                return Err(RunError::Invalid(
                    "more entries in one batch than the submission queue holds (128)".into(),
                ));
            }
        }
        sq.submit()
            .map_err(|e| RunError::io("submitting to kqring", e))?;
        if self.ring.mode() == Mode::PollingThread {
            issued(&self.ring);
        }
        Ok(())
    }

    fn next(&mut self, deadline: Instant) -> Result<Option<Got>, RunError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let cqe = self
            .ring
            .completion()
            .wait_timeout(left)
            .map_err(|e| RunError::io("waiting for a kqring completion", e))?;
        Ok(cqe.map(|c| self.got(c)))
    }

    fn next_of(&mut self, ring: &RingName, deadline: Instant) -> Result<Option<Got>, RunError> {
        let Some((_, Some(other))) = self.others.get(&ring.0) else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let cqe = other
            .completion()
            .wait_timeout(left)
            .map_err(|e| RunError::io(format!("waiting for a completion of ring {}", ring.0), e))?;
        Ok(cqe.map(|c| self.got(c)))
    }

    fn close_ring(&mut self, ring: &RingName) {
        if let Some((_, other)) = self.others.get_mut(&ring.0) {
            drop(other.take());
        }
    }

    fn finish(self) {
        // Dropping the ring cancels what is in flight and joins its threads.
        let cq = self.ring.completion().clone();
        drop(self.ring);
        // A descriptor made after the last wait is the program's: closed.
        while let Some(c) = cq.pop() {
            if self.makes_fds.contains(&c.user_data()) && c.result() >= 0 {
                // SAFETY: the completion made this descriptor for the
                // program, and nothing else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(c.result()) });
            }
        }
    }
}
