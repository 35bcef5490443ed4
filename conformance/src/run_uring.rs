//! Runs a program on Linux's io_uring.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use io_uring::types::{
    CancelBuilder, DestinationSlot, Fd, Fixed, SubmitArgs, TimeoutFlags, Timespec,
};
use io_uring::{IoUring, Probe, opcode, squeue};

use crate::model::{
    Addr, CancelTarget, Entry, FileRef, FileSlot, Flags, Op, PidRef, Program, ResourceKind,
    RingName,
};
use crate::resources::{Fds, SockAddress};
use crate::run::{
    Backend, ChildState, Completions, CqeRecord, Got, RunError, Unavailable, bid16, drive, group16,
    normalize_flags, recv_flags, update_fds,
};

/// How long the end of a run waits for cancelled entries to complete.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(2);

const SQ_ENTRIES: u32 = 128;

/// `IORING_MSG_RING_CQE_SKIP`: the target posts no completion.
const MSG_RING_CQE_SKIP: u32 = 1 << 0;

/// `IORING_FILE_INDEX_ALLOC`, as `IORING_OP_FILES_UPDATE`'s offset: each
/// descriptor goes into a free slot.
const FILE_INDEX_ALLOC: i32 = -1;

/// Builds an opcode on the file an entry names: `$build` sees `$f` as a
/// `types::Fd` or a `types::Fixed` (the io-uring crate's builders take
/// either, through a sealed trait that cannot be named here).
macro_rules! on_file {
    ($fds:expr, $file:expr, |$f:ident| $build:expr) => {
        match $file {
            FileRef::Fd(fd) => {
                let $f = Fd($fds.get(fd)?);
                $build
            }
            FileRef::Fixed(slot) => {
                let $f = Fixed(*slot);
                $build
            }
        }
    };
}
pub(crate) use on_file;

pub(crate) fn run(program: &Program) -> Result<Completions, RunError> {
    drive(program, || {
        // The cancel that ends the run needs a user_data of its own.
        let used: Vec<u64> = program.entries().map(|e| e.user_data).collect();
        let cleanup = (0..=u64::MAX)
            .rev()
            .find(|ud| !used.contains(ud))
            .unwrap_or(u64::MAX);
        let ring = new_ring()?;
        supported(&ring, program)?;
        let mut others = HashMap::new();
        for r in &program.resources {
            if let ResourceKind::Ring { files } = r.kind {
                others.insert(r.name.clone(), Some(setup(new_ring()?, files)?));
            }
        }
        Ok(Uring {
            ring: setup(ring, program.files)?,
            others,
            submitted: Vec::new(),
            finished: HashMap::new(),
            cleanup,
            provided: Vec::new(),
        })
    })
}

/// What a program needs of the kernel beyond the first io_uring: the
/// opcode it probes for, what needs it, and the kernel that brought it.
/// A feature that is no opcode of its own (a flag, multishot, a sparse
/// file table) is probed through an opcode of the same release.
fn needs(program: &Program) -> Vec<(u8, &'static str)> {
    const V5_15: u8 = opcode::MkDirAt::CODE;
    const V5_18: u8 = opcode::MsgRingData::CODE;
    const V5_19: u8 = opcode::Socket::CODE;
    const V6_0: u8 = opcode::SendZc::CODE;
    let mut out = Vec::new();
    if program.files > 0 {
        out.push((V5_19, "a sparse file table (Linux 5.19)"));
    }
    for e in program.entries() {
        if e.flags.contains(Flags::SKIP_SUCCESS) {
            out.push((V5_18, "CQE_SKIP_SUCCESS (Linux 5.17)"));
        }
        out.extend(match &e.op {
            Op::PollAdd { multi: true, .. } => Some((V5_15, "multishot poll (Linux 5.13)")),
            Op::TimeoutUpdate { .. } => {
                Some((opcode::Shutdown::CODE, "timeout-update (Linux 5.11)"))
            }
            Op::AsyncCancel {
                target: CancelTarget::Fixed(_),
                ..
            } => Some((V6_0, "cancel by slot (Linux 6.0)")),
            Op::AsyncCancel {
                target: CancelTarget::Fd(_) | CancelTarget::Any,
                ..
            }
            | Op::AsyncCancel { all: true, .. } => {
                Some((V5_19, "cancel by descriptor, any or all (Linux 5.19)"))
            }
            Op::Close {
                fd: FileRef::Fixed(_),
            } => Some((V5_15, "close of a slot (Linux 5.15)")),
            Op::FilesUpdate {
                at: FileSlot::Alloc,
                ..
            } => Some((V5_19, "files-update into free slots (Linux 5.19)")),
            Op::Accept { multi: true, .. } => Some((V5_19, "multishot accept (Linux 5.19)")),
            Op::Accept {
                file_index: Some(FileSlot::Alloc),
                ..
            } => Some((V5_19, "accept into a free slot (Linux 5.19)")),
            Op::Accept {
                file_index: Some(_),
                ..
            } => Some((V5_15, "accept into a slot (Linux 5.15)")),
            Op::RecvSelect { multi: true, .. } => Some((V6_0, "multishot recv (Linux 6.0)")),
            Op::Socket { .. } => Some((opcode::Socket::CODE, "socket (Linux 5.19)")),
            Op::Bind { .. } => Some((opcode::Bind::CODE, "bind (Linux 6.11)")),
            Op::Listen { .. } => Some((opcode::Listen::CODE, "listen (Linux 6.11)")),
            Op::Shutdown { .. } => Some((opcode::Shutdown::CODE, "shutdown (Linux 5.11)")),
            Op::OpenAt {
                file_index: Some(FileSlot::Alloc),
                ..
            } => Some((V5_19, "openat into a free slot (Linux 5.19)")),
            Op::OpenAt {
                file_index: Some(_),
                ..
            } => Some((V5_15, "openat into a slot (Linux 5.15)")),
            Op::OpenAt { .. } => Some((opcode::OpenAt::CODE, "openat (Linux 5.6)")),
            Op::Statx { .. } => Some((opcode::Statx::CODE, "statx (Linux 5.6)")),
            Op::Fallocate { .. } => Some((opcode::Fallocate::CODE, "fallocate (Linux 5.6)")),
            Op::Fadvise { .. } => Some((opcode::Fadvise::CODE, "fadvise (Linux 5.6)")),
            Op::Ftruncate { .. } => Some((opcode::Ftruncate::CODE, "ftruncate (Linux 6.9)")),
            Op::UnlinkAt { .. } => Some((opcode::UnlinkAt::CODE, "unlinkat (Linux 5.11)")),
            Op::RenameAt { .. } => Some((opcode::RenameAt::CODE, "renameat (Linux 5.11)")),
            Op::MkdirAt { .. } => Some((opcode::MkDirAt::CODE, "mkdirat (Linux 5.15)")),
            Op::SymlinkAt { .. } => Some((opcode::SymlinkAt::CODE, "symlinkat (Linux 5.15)")),
            Op::LinkAt { .. } => Some((opcode::LinkAt::CODE, "linkat (Linux 5.15)")),
            Op::WaitId { .. } => Some((opcode::WaitId::CODE, "waitid (Linux 6.7)")),
            Op::MsgRing { .. } => Some((V5_18, "msg-ring (Linux 5.18)")),
            Op::MsgRingFd { .. } => Some((V6_0, "msg-ring-fd (Linux 6.0)")),
            _ => None,
        });
    }
    out
}

/// Whether this kernel's io_uring has every opcode `program` needs: it
/// answers an unknown one with `-EINVAL`, which is no difference of
/// kqring's, so the run is skipped instead, with the reason.
fn supported(ring: &IoUring, program: &Program) -> Result<(), RunError> {
    let mut probe = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        return Err(RunError::Unavailable(Unavailable {
            reason: format!(
                "io_uring: cannot probe this kernel's opcodes (before Linux 5.6?): {e}"
            ),
        }));
    }
    match missing(program, |code| probe.is_supported(code)) {
        None => Ok(()),
        Some(what) => Err(RunError::Unavailable(Unavailable {
            reason: format!("io_uring: this kernel lacks {what}, which the program needs"),
        })),
    }
}

/// The first thing `program` needs that a kernel with the opcodes
/// `has` lacks.
fn missing(program: &Program, has: impl Fn(u8) -> bool) -> Option<&'static str> {
    needs(program)
        .into_iter()
        .find(|(code, _)| !has(*code))
        .map(|(_, what)| what)
}

/// The ring, with a file table of `files` empty slots unless 0.
fn setup(ring: IoUring, files: u32) -> Result<IoUring, RunError> {
    if files > 0 {
        ring.submitter()
            .register_files_sparse(files)
            .map_err(|e| RunError::io("io_uring_register (sparse files)", e))?;
    }
    Ok(ring)
}

fn new_ring() -> Result<IoUring, RunError> {
    // SUBMIT_ALL: an entry that fails at submission must not leave the
    // rest of the batch unsubmitted (kqring takes every entry).
    let err = match IoUring::builder().setup_submit_all().build(SQ_ENTRIES) {
        Ok(ring) => return Ok(ring),
        // Kernels before 5.18 do not know SUBMIT_ALL.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match IoUring::new(SQ_ENTRIES) {
            Ok(ring) => return Ok(ring),
            Err(e) => e,
        },
        Err(e) => e,
    };
    match err.raw_os_error() {
        Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => {
            Err(RunError::Unavailable(Unavailable {
                reason: format!("io_uring: io_uring_setup failed: {err}"),
            }))
        }
        _ => Err(RunError::io("io_uring_setup", err)),
    }
}

/// Memory the kernel reads or writes for an entry until its completion.
/// Only the heap allocations matter (a `Vec`'s buffer, a `Box`): they do
/// not move when the owner moves.
enum Mem {
    None,
    Buf(Vec<u8>),
    /// Buffers and the iovec array pointing at them (read by the kernel,
    /// never by us).
    Bufs(Vec<Vec<u8>>, #[allow(dead_code)] Vec<libc::iovec>),
    /// A timeout's timespec (read by the kernel only).
    Time(#[allow(dead_code)] Box<Timespec>),
    /// A `FILES_UPDATE`'s descriptors (read by the kernel, and written
    /// with the slots it chose for `IORING_FILE_INDEX_ALLOC`; not
    /// compared).
    Fds(#[allow(dead_code)] Vec<i32>),
    /// Buffers given to a group: kept until the ring is gone.
    Provided(Provided),
    /// An address (read by the kernel only).
    Addr(#[allow(dead_code)] Box<libc::sockaddr_storage>),
    /// A message header and what it points to.
    Msg(Box<Msg>),
    /// A file-system entry's paths, and a `statx`'s result.
    Fs(crate::run_uring_fs::FsMem),
    /// The `siginfo_t` a `waitid` fills.
    Wait(Box<libc::siginfo_t>),
}

/// A `SENDMSG`'s or `RECVMSG`'s header, with the buffers, iovecs and
/// address it points to. Boxed, so that the pointers stay valid.
struct Msg {
    /// Whether the kernel writes the sender's address into it.
    receives: bool,
    hdr: libc::msghdr,
    bufs: Vec<Vec<u8>>,
    #[allow(dead_code)]
    iov: Vec<libc::iovec>,
    name: libc::sockaddr_storage,
}

impl Msg {
    /// A header over `bufs`, with room for an address (`to`, to send to;
    /// or none, to receive the sender's).
    fn new(bufs: Vec<Vec<u8>>, to: Option<(libc::sockaddr_storage, libc::socklen_t)>) -> Box<Msg> {
        // SAFETY: msghdr and sockaddr_storage are plain data; all-zero is
        // valid for both.
        let mut msg = Box::new(Msg {
            receives: to.is_none(),
            hdr: unsafe { std::mem::zeroed() },
            bufs,
            iov: Vec::new(),
            name: unsafe { std::mem::zeroed() },
        });
        msg.iov = msg
            .bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let (name, len) = match to {
            Some((addr, len)) => (addr, len),
            None => (
                msg.name,
                size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            ),
        };
        msg.name = name;
        msg.hdr.msg_name = (&raw mut msg.name).cast();
        msg.hdr.msg_namelen = len;
        msg.hdr.msg_iov = msg.iov.as_mut_ptr();
        msg.hdr.msg_iovlen = msg.iov.len() as _;
        msg
    }
}

/// The raw address for one a program names.
fn sock_addr(
    addr: &Addr,
    fds: &Fds,
) -> Result<(libc::sockaddr_storage, libc::socklen_t), RunError> {
    let a = match addr {
        Addr::Ip(a) => SockAddress::Ip(*a),
        Addr::LocalOf(fd) => fds.local_addr(fd)?,
    };
    raw_addr(&a)
        .ok_or_else(|| RunError::Invalid(format!("{addr:?}: the socket is bound to no address")))
}

/// The raw address and its length; `None` for an unnamed one.
fn raw_addr(addr: &SockAddress) -> Option<(libc::sockaddr_storage, libc::socklen_t)> {
    use std::mem;
    use std::net::SocketAddr;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let ptr = &raw mut storage;
    let len = match addr {
        SockAddress::Ip(SocketAddr::V4(a)) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage, which is
            // aligned for every sockaddr type.
            let sin = unsafe { &mut *ptr.cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            mem::size_of::<libc::sockaddr_in>()
        }
        SockAddress::Ip(SocketAddr::V6(a)) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *ptr.cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>()
        }
        SockAddress::Unix(path) => {
            // SAFETY: as above, for sockaddr_un.
            let un = unsafe { &mut *ptr.cast::<libc::sockaddr_un>() };
            un.sun_family = libc::AF_UNIX as libc::sa_family_t;
            let bytes = path.as_os_str().as_bytes();
            if bytes.len() >= un.sun_path.len() {
                return None;
            }
            for (dst, &b) in un.sun_path.iter_mut().zip(bytes) {
                *dst = b as libc::c_char;
            }
            mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1
        }
        SockAddress::Unnamed => return None,
    };
    Some((storage, len as libc::socklen_t))
}

/// One `ProvideBuffers` entry's memory: `count` buffers of `len` bytes,
/// ids from `bid` up, in one allocation.
struct Provided {
    group: u16,
    bid: u16,
    count: u16,
    len: usize,
    mem: Vec<u8>,
}

impl Provided {
    /// The first `n` bytes of buffer `bid` of `group`, if it is one of
    /// these.
    fn bytes(&self, group: u16, bid: u16, n: usize) -> Option<&[u8]> {
        let i = bid.checked_sub(self.bid)?;
        if group != self.group || i >= self.count {
            return None;
        }
        let start = usize::from(i) * self.len;
        self.mem.get(start..start + n.min(self.len))
    }
}

/// An entry submitted, with the memory the kernel may use until it
/// completes.
struct Tracked {
    user_data: u64,
    read: bool,
    /// Whether its results are descriptors of the process.
    makes_fd: bool,
    /// The buffer group it selects from.
    group: Option<u16>,
    mem: Mem,
}

/// The io_uring backend. A completion names its entry only by
/// `user_data`, which a program may give several entries: memory is only
/// read or freed once that is unambiguous.
struct Uring {
    ring: IoUring,
    /// The second rings, by name; `None` once closed.
    others: HashMap<String, Option<IoUring>>,
    submitted: Vec<Tracked>,
    /// Final completions seen, by `user_data`. An entry posts at most one,
    /// so when this reaches the number of entries with that `user_data`,
    /// all of them have finished.
    finished: HashMap<u64, usize>,
    cleanup: u64,
    /// Memory given to buffer groups; the kernel may use it until the
    /// ring is gone.
    provided: Vec<Provided>,
}

fn timespec(ms: u64, abs: bool) -> Result<Box<Timespec>, RunError> {
    let mut d = Duration::from_millis(ms);
    if abs {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we pass.
        if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
            return Err(RunError::io("clock_gettime", io::Error::last_os_error()));
        }
        d += Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    }
    Ok(Box::new(Timespec::from(d)))
}

fn timeout_flags(abs: bool) -> TimeoutFlags {
    if abs {
        TimeoutFlags::ABS
    } else {
        TimeoutFlags::empty()
    }
}

/// The io_uring entry for `entry`, and the memory it points into (which
/// must outlive the entry's completion).
fn translate(
    entry: &Entry,
    fds: &Fds,
    others: &HashMap<String, Option<IoUring>>,
) -> Result<(squeue::Entry, Mem), RunError> {
    // A closed ring's number is one that is never open: the number it had
    // may be another descriptor's by now.
    let ring = |name: &RingName| match others.get(&name.0) {
        Some(Some(r)) => Ok(Fd(r.as_raw_fd())),
        Some(None) => Ok(Fd(kqring_test_support::BAD_FD)),
        None => Err(RunError::Invalid(format!("no ring {}", name.0))),
    };
    let (sqe, mem) = match &entry.op {
        Op::Nop {} => (opcode::Nop::new().build(), Mem::None),
        Op::Read { fd, len, off } => {
            let mut buf = vec![0u8; *len as usize];
            let sqe = on_file!(fds, fd, |f| opcode::Read::new(f, buf.as_mut_ptr(), *len)
                .offset(off.raw())
                .build());
            (sqe, Mem::Buf(buf))
        }
        Op::Write { fd, data, off } => {
            let buf = data.clone();
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let sqe = on_file!(fds, fd, |f| opcode::Write::new(f, buf.as_ptr(), len)
                .offset(off.raw())
                .build());
            (sqe, Mem::Buf(buf))
        }
        Op::Readv { fd, lens, off } => {
            let mut bufs: Vec<Vec<u8>> = lens.iter().map(|&l| vec![0u8; l as usize]).collect();
            let iov: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let sqe = on_file!(fds, fd, |f| opcode::Readv::new(
                f,
                iov.as_ptr(),
                iov.len() as u32
            )
            .offset(off.raw())
            .build());
            (sqe, Mem::Bufs(bufs, iov))
        }
        Op::Writev { fd, data, off } => {
            let bufs: Vec<Vec<u8>> = data.clone();
            let iov: Vec<libc::iovec> = bufs
                .iter()
                .map(|b| libc::iovec {
                    iov_base: b.as_ptr().cast_mut().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let sqe = on_file!(fds, fd, |f| opcode::Writev::new(
                f,
                iov.as_ptr(),
                iov.len() as u32
            )
            .offset(off.raw())
            .build());
            (sqe, Mem::Bufs(bufs, iov))
        }
        Op::PollAdd { fd, events, multi } => {
            let sqe = on_file!(fds, fd, |f| opcode::PollAdd::new(f, events.0)
                .multi(*multi)
                .build());
            (sqe, Mem::None)
        }
        Op::PollRemove { target } => (opcode::PollRemove::new(*target).build(), Mem::None),
        Op::Timeout { ms, count, abs } => {
            let ts = timespec(*ms, *abs)?;
            let sqe = opcode::Timeout::new(&*ts)
                .count(*count)
                .flags(timeout_flags(*abs))
                .build();
            (sqe, Mem::Time(ts))
        }
        Op::TimeoutRemove { target } => (opcode::TimeoutRemove::new(*target).build(), Mem::None),
        Op::TimeoutUpdate { target, ms, abs } => {
            let ts = timespec(*ms, *abs)?;
            let sqe = opcode::TimeoutUpdate::new(*target, &*ts)
                .flags(timeout_flags(*abs))
                .build();
            (sqe, Mem::Time(ts))
        }
        Op::LinkTimeout { ms, abs } => {
            let ts = timespec(*ms, *abs)?;
            let sqe = opcode::LinkTimeout::new(&*ts)
                .flags(timeout_flags(*abs))
                .build();
            (sqe, Mem::Time(ts))
        }
        Op::AsyncCancel { target, all } => {
            let mut builder = match target {
                CancelTarget::UserData(ud) => CancelBuilder::user_data(*ud),
                CancelTarget::Fd(fd) => CancelBuilder::fd(Fd(fds.get(fd)?)),
                CancelTarget::Fixed(slot) => CancelBuilder::fd(Fixed(*slot)),
                CancelTarget::Any => CancelBuilder::any(),
            };
            if *all {
                builder = builder.all();
            }
            (opcode::AsyncCancel2::new(builder).build(), Mem::None)
        }
        Op::Close { fd } => (
            on_file!(fds, fd, |f| opcode::Close::new(f).build()),
            Mem::None,
        ),
        Op::Recv {
            fd,
            len,
            waitall,
            peek,
        } => {
            let mut buf = vec![0u8; *len as usize];
            let sqe = on_file!(fds, fd, |f| opcode::Recv::new(f, buf.as_mut_ptr(), *len)
                .flags(recv_flags(*waitall, *peek))
                .build());
            (sqe, Mem::Buf(buf))
        }
        Op::RecvSelect { fd, group, multi } => {
            let group = group16(*group)?;
            let sqe = on_file!(fds, fd, |f| if *multi {
                opcode::RecvMulti::new(f, group).build()
            } else {
                opcode::Recv::new(f, std::ptr::null_mut(), 0)
                    .buf_group(group)
                    .build()
                    .flags(squeue::Flags::BUFFER_SELECT)
            });
            (sqe, Mem::None)
        }
        Op::Send { fd, data } => {
            let buf = data.clone();
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let sqe = on_file!(fds, fd, |f| opcode::Send::new(f, buf.as_ptr(), len).build());
            (sqe, Mem::Buf(buf))
        }
        Op::ProvideBuffers {
            group,
            count,
            len,
            bid,
        } => {
            let (group, count, bid) = (group16(*group)?, bid16(*count)?, bid16(*bid)?);
            let len_i32 = i32::try_from(*len)
                .map_err(|_| RunError::Invalid(format!("buffer length {len} is too big")))?;
            let mut mem = vec![0u8; usize::from(count) * *len as usize];
            let sqe =
                opcode::ProvideBuffers::new(mem.as_mut_ptr(), len_i32, count, group, bid).build();
            let provided = Provided {
                group,
                bid,
                count,
                len: *len as usize,
                mem,
            };
            (sqe, Mem::Provided(provided))
        }
        Op::RemoveBuffers { group, n } => (
            opcode::RemoveBuffers::new(bid16(*n)?, group16(*group)?).build(),
            Mem::None,
        ),
        Op::FilesUpdate { at, fds: list } => {
            let raw = update_fds(list, fds)?;
            let offset = match at {
                FileSlot::Index(i) => i32::try_from(*i).map_err(|_| {
                    RunError::Invalid(format!("slot {i} is over io_uring's offset range"))
                })?,
                FileSlot::Alloc => FILE_INDEX_ALLOC,
            };
            let sqe = opcode::FilesUpdate::new(raw.as_ptr(), raw.len() as u32)
                .offset(offset)
                .build();
            (sqe, Mem::Fds(raw))
        }
        Op::Accept {
            fd,
            file_index,
            multi,
            as_: _,
        } => {
            // No SOCK_CLOEXEC: io_uring refuses it with a slot (a direct
            // descriptor is no process's to inherit).
            let sqe = match (file_index, *multi) {
                // kqring's accepted sockets are close-on-exec by default.
                (None, false) => on_file!(fds, fd, |f| opcode::Accept::new(
                    f,
                    std::ptr::null_mut(),
                    std::ptr::null_mut()
                )
                .flags(libc::SOCK_CLOEXEC)
                .build()),
                (None, true) => on_file!(fds, fd, |f| opcode::AcceptMulti::new(f)
                    .flags(libc::SOCK_CLOEXEC)
                    .build()),
                (Some(FileSlot::Alloc), true) => on_file!(fds, fd, |f| opcode::AcceptMulti::new(f)
                    .allocate_file_index(true)
                    .build()),
                (Some(slot), multi) => {
                    let dest = destination(*slot)?;
                    let sqe = on_file!(fds, fd, |f| opcode::Accept::new(
                        f,
                        std::ptr::null_mut(),
                        std::ptr::null_mut()
                    )
                    .file_index(Some(dest))
                    .build());
                    if multi { accept_multishot(sqe) } else { sqe }
                }
            };
            (sqe, Mem::None)
        }
        Op::Socket {
            domain,
            type_,
            protocol,
            file_index,
            blocking,
            as_: _,
        } => {
            // As kqring makes them: close-on-exec (which io_uring refuses
            // with a slot) and non-blocking unless asked otherwise.
            let mut ty = type_.raw();
            if !blocking {
                ty |= libc::SOCK_NONBLOCK;
            }
            if file_index.is_none() {
                ty |= libc::SOCK_CLOEXEC;
            }
            let socket = opcode::Socket::new(domain.raw(), ty, *protocol as i32);
            let socket = match file_index {
                Some(slot) => socket.file_index(Some(destination(*slot)?)),
                None => socket,
            };
            (socket.build(), Mem::None)
        }
        Op::Bind { fd, addr } => {
            let (raw, len) = sock_addr(addr, fds)?;
            let raw = Box::new(raw);
            let ptr = (&raw const *raw).cast::<libc::sockaddr>();
            let sqe = on_file!(fds, fd, |f| opcode::Bind::new(f, ptr, len).build());
            (sqe, Mem::Addr(raw))
        }
        Op::Listen { fd, backlog } => (
            on_file!(fds, fd, |f| opcode::Listen::new(f, *backlog as i32).build()),
            Mem::None,
        ),
        Op::Connect { fd, addr } => {
            let (raw, len) = sock_addr(addr, fds)?;
            let raw = Box::new(raw);
            let ptr = (&raw const *raw).cast::<libc::sockaddr>();
            let sqe = on_file!(fds, fd, |f| opcode::Connect::new(f, ptr, len).build());
            (sqe, Mem::Addr(raw))
        }
        Op::Shutdown { fd, how } => (
            on_file!(fds, fd, |f| opcode::Shutdown::new(f, how.raw()).build()),
            Mem::None,
        ),
        Op::SendMsg { fd, data, to } => {
            let to = to.as_ref().map(|a| sock_addr(a, fds)).transpose()?;
            let named = to.is_some();
            let mut msg = Msg::new(data.clone(), to);
            msg.receives = false;
            if !named {
                msg.hdr.msg_name = std::ptr::null_mut();
                msg.hdr.msg_namelen = 0;
            }
            // Sends always carry MSG_NOSIGNAL in kqring.
            let sqe = on_file!(fds, fd, |f| opcode::SendMsg::new(f, &raw const msg.hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build());
            (sqe, Mem::Msg(msg))
        }
        Op::RecvMsg { fd, lens } => {
            let bufs = lens.iter().map(|&l| vec![0u8; l as usize]).collect();
            let mut msg = Msg::new(bufs, None);
            let sqe = on_file!(fds, fd, |f| opcode::RecvMsg::new(f, &raw mut msg.hdr)
                .build());
            (sqe, Mem::Msg(msg))
        }
        Op::RecvMsgSelect { fd, group } => {
            // No iovec: the selected buffer's whole length is used.
            let mut msg = Msg::new(Vec::new(), None);
            msg.hdr.msg_iov = std::ptr::null_mut();
            msg.hdr.msg_iovlen = 0;
            let group = group16(*group)?;
            let sqe = on_file!(fds, fd, |f| opcode::RecvMsg::new(f, &raw mut msg.hdr)
                .buf_group(group)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT));
            (sqe, Mem::Msg(msg))
        }
        Op::ReadSelect { fd, group, off } => {
            let group = group16(*group)?;
            // Length 0: as much as the selected buffer holds.
            let sqe = on_file!(fds, fd, |f| opcode::Read::new(f, std::ptr::null_mut(), 0)
                .offset(off.raw())
                .buf_group(group)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT));
            (sqe, Mem::None)
        }
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
        | Op::LinkAt { .. } => {
            let (sqe, mem) = crate::run_uring_fs::translate(&entry.op, fds)?;
            (sqe, Mem::Fs(mem))
        }
        Op::WaitId { pid, options } => {
            let pid = match pid {
                PidRef::Child(name) => fds.child_pid(name)?,
                PidRef::Number(n) => *n,
            };
            // SAFETY: zero is a valid siginfo_t.
            let mut info: Box<libc::siginfo_t> = Box::new(unsafe { std::mem::zeroed() });
            let sqe = opcode::WaitId::new(libc::P_PID, pid as libc::id_t, options.0)
                // The kernel writes through it: made from a mutable borrow.
                .infop((&raw mut *info).cast_const())
                .build();
            (sqe, Mem::Wait(info))
        }
        Op::MsgRing {
            to,
            res,
            target_ud,
            skip_target_cqe,
        } => {
            let sqe = opcode::MsgRingData::new(ring(to)?, *res, *target_ud, None)
                .opcode_flags(if *skip_target_cqe {
                    MSG_RING_CQE_SKIP
                } else {
                    0
                })
                .build();
            (sqe, Mem::None)
        }
        Op::MsgRingFd {
            to,
            src,
            dest,
            target_ud,
            skip_target_cqe,
        } => {
            let sqe =
                opcode::MsgRingSendFd::new(ring(to)?, Fixed(*src), destination(*dest)?, *target_ud)
                    .opcode_flags(if *skip_target_cqe {
                        MSG_RING_CQE_SKIP
                    } else {
                        0
                    })
                    .build();
            (sqe, Mem::None)
        }
    };
    Ok((
        sqe.user_data(entry.user_data).flags(flags(entry.flags)),
        mem,
    ))
}

/// The io-uring crate's name for a slot.
pub(crate) fn destination(slot: FileSlot) -> Result<DestinationSlot, RunError> {
    match slot {
        FileSlot::Index(i) => DestinationSlot::try_from_slot_target(i)
            .map_err(|_| RunError::Invalid(format!("slot {i} is over io_uring's range"))),
        FileSlot::Alloc => Ok(DestinationSlot::auto_target()),
    }
}

/// `IORING_ACCEPT_MULTISHOT` on an accept into a given slot, which io_uring
/// answers with `-EINVAL` and the io-uring crate's `AcceptMulti` cannot
/// express (it takes `IORING_FILE_INDEX_ALLOC` or no slot).
fn accept_multishot(sqe: squeue::Entry) -> squeue::Entry {
    /// `IORING_ACCEPT_MULTISHOT`, in the SQE's `ioprio`.
    const ACCEPT_MULTISHOT: u16 = 1 << 0;
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `struct io_uring_sqe` (the transmutes check the size), any bytes make
    // a valid one, and `ioprio` is its `u16` at byte 2.
    let mut raw: [u8; 64] = unsafe { std::mem::transmute(sqe) };
    raw[2..4].copy_from_slice(&ACCEPT_MULTISHOT.to_ne_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(raw) }
}

fn flags(f: Flags) -> squeue::Flags {
    [
        (Flags::LINK, squeue::Flags::IO_LINK),
        (Flags::HARDLINK, squeue::Flags::IO_HARDLINK),
        (Flags::DRAIN, squeue::Flags::IO_DRAIN),
        (Flags::ASYNC, squeue::Flags::ASYNC),
        (Flags::SKIP_SUCCESS, squeue::Flags::SKIP_SUCCESS),
    ]
    .into_iter()
    .filter(|(ours, _)| f.contains(*ours))
    .fold(squeue::Flags::empty(), |acc, (_, theirs)| acc | theirs)
}

fn is_terminal(flags: u32) -> bool {
    !io_uring::cqueue::more(flags)
}

impl Uring {
    fn push(&mut self, sqe: &squeue::Entry) -> Result<(), RunError> {
        loop {
            // SAFETY: every pointer in `sqe` points into heap memory held
            // in `self.submitted` (pushed by the caller just before), which
            // is freed only once the entry is known to have finished, or
            // else leaked (see `finish`).
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            // Full: hand what is queued to the kernel to make room. (A link
            // chain cut here would end at the boundary, as io_uring's do.)
            self.submit_queued()?;
        }
    }

    fn submit_queued(&mut self) -> Result<(), RunError> {
        while !self.ring.submission().is_empty() {
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RunError::io("io_uring_enter (submit)", e)),
            }
        }
        Ok(())
    }

    /// Records a completion. The bytes of a read are copied when its
    /// `user_data` is its own: then this completion is certainly its final
    /// one, and the kernel is done with the buffer.
    fn record(&mut self, user_data: u64, res: i32, flags: u32) -> Got {
        let mut data = None;
        // A provided buffer is the program's again once its CQE is out.
        if let Some(bid) = io_uring::cqueue::buffer_select(flags)
            && let Some(group) = self
                .submitted
                .iter()
                .find(|t| t.user_data == user_data)
                .and_then(|t| t.group)
        {
            let n = res.max(0) as usize;
            data = self
                .provided
                .iter()
                .rev()
                .find_map(|p| p.bytes(group, bid, n))
                .map(<[u8]>::to_vec);
        }
        let mut from = None;
        let mut stat = None;
        let mut child = None;
        if is_terminal(flags) {
            *self.finished.entry(user_data).or_default() += 1;
            let mut same = self.submitted.iter().filter(|t| t.user_data == user_data);
            if let (Some(t), None) = (same.next(), same.next())
                && let Mem::Msg(m) = &t.mem
                && m.receives
                && res >= 0
            {
                from = Some(SockAddress::from_raw(&m.name, m.hdr.msg_namelen));
            }
            let mut same = self.submitted.iter().filter(|t| t.user_data == user_data);
            if let (Some(t), None) = (same.next(), same.next())
                && let Mem::Fs(m) = &t.mem
                && res >= 0
            {
                stat = m.stat();
            }
            let mut same = self.submitted.iter().filter(|t| t.user_data == user_data);
            if let (Some(t), None) = (same.next(), same.next())
                && let Mem::Wait(info) = &t.mem
                && res >= 0
            {
                // SAFETY: the kernel filled it for a child's change of
                // state (or left it zeroed: WNOHANG found none).
                let (pid, uid, status) =
                    unsafe { (info.si_pid(), info.si_uid(), info.si_status()) };
                child = Some(ChildState {
                    signo: info.si_signo,
                    code: info.si_code,
                    status,
                    pid,
                    uid,
                });
            }
            let mut same = self.submitted.iter().filter(|t| t.user_data == user_data);
            if let (Some(t), None) = (same.next(), same.next())
                && t.read
                && res >= 0
            {
                let mut left = res as usize;
                let bufs: Vec<&Vec<u8>> = match &t.mem {
                    Mem::Buf(b) => vec![b],
                    Mem::Bufs(v, _) => v.iter().collect(),
                    Mem::Msg(m) => m.bufs.iter().collect(),
                    Mem::None
                    | Mem::Time(_)
                    | Mem::Fds(_)
                    | Mem::Provided(_)
                    | Mem::Addr(_)
                    | Mem::Fs(_)
                    | Mem::Wait(_) => Vec::new(),
                };
                let mut bytes = Vec::with_capacity(left);
                for b in bufs {
                    let n = left.min(b.len());
                    bytes.extend_from_slice(&b[..n]);
                    left -= n;
                }
                data = Some(bytes);
            }
        }
        Got {
            record: CqeRecord {
                user_data,
                res,
                flags: normalize_flags(flags),
                data,
                from: None,
                stat,
                waited: None,
            },
            from,
            child,
        }
    }

    /// Whether every entry with `user_data` has posted its final
    /// completion.
    fn all_finished(&self, user_data: u64) -> bool {
        let n = self
            .submitted
            .iter()
            .filter(|t| t.user_data == user_data)
            .count();
        self.finished.get(&user_data).copied().unwrap_or(0) >= n
    }

    fn pop(&mut self) -> Option<(u64, i32, u32)> {
        self.ring
            .completion()
            .next()
            .map(|c| (c.user_data(), c.result(), c.flags()))
    }

    /// Waits until a completion is queued or `deadline` passes.
    fn wait(&mut self, deadline: Instant) -> Result<(), RunError> {
        wait_on(&mut self.ring, deadline)
    }
}

/// Waits until a completion is queued in `ring` or `deadline` passes.
fn wait_on(ring: &mut IoUring, deadline: Instant) -> Result<(), RunError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Ok(());
    }
    let ts = Timespec::from(left);
    let args = SubmitArgs::new().timespec(&ts);
    match ring.submitter().submit_with_args(1, &args) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
        Err(e) => Err(RunError::io("io_uring_enter (wait)", e)),
    }
}

impl Backend for Uring {
    fn submit(&mut self, entries: &[Entry], fds: &Fds) -> Result<(), RunError> {
        for e in entries {
            let (sqe, mem) = translate(e, fds, &self.others)?;
            let mem = match mem {
                Mem::Provided(p) => {
                    self.provided.push(p);
                    Mem::None
                }
                mem => mem,
            };
            let group = e.op.selects().map(group16).transpose()?;
            self.submitted.push(Tracked {
                user_data: e.user_data,
                read: e.op.is_read(),
                makes_fd: e.op.makes_fd(),
                group,
                mem,
            });
            self.push(&sqe)?;
        }
        self.submit_queued()
    }

    fn next(&mut self, deadline: Instant) -> Result<Option<Got>, RunError> {
        loop {
            if let Some((ud, res, flags)) = self.pop() {
                return Ok(Some(self.record(ud, res, flags)));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.wait(deadline)?;
        }
    }

    fn next_of(&mut self, ring: &RingName, deadline: Instant) -> Result<Option<Got>, RunError> {
        let Some(Some(other)) = self.others.get_mut(&ring.0) else {
            return Ok(None);
        };
        loop {
            // Nothing was submitted to it: its completions carry no memory.
            if let Some(c) = other.completion().next() {
                return Ok(Some(Got {
                    record: CqeRecord {
                        user_data: c.user_data(),
                        res: c.result(),
                        flags: normalize_flags(c.flags()),
                        data: None,
                        from: None,
                        stat: None,
                        waited: None,
                    },
                    from: None,
                    child: None,
                }));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            wait_on(other, deadline)?;
        }
    }

    fn close_ring(&mut self, ring: &RingName) {
        if let Some(other) = self.others.get_mut(&ring.0) {
            drop(other.take());
        }
    }

    fn finish(mut self) {
        // Cancel what is still in flight and wait for it, so that the
        // kernel is done with its memory before it is freed.
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::any())
            .build()
            .user_data(self.cleanup);
        let mut pending = if self.push(&cancel).is_ok() && self.submit_queued().is_ok() {
            None
        } else {
            Some(0)
        };
        let mut seen = 0usize;
        let deadline = Instant::now() + CLEANUP_PATIENCE;
        let all_done = |u: &Uring| u.submitted.iter().all(|t| u.all_finished(t.user_data));
        // Until everything has finished, or the cancel has answered how
        // many entries it matched and that many have completed.
        while pending.is_none_or(|n| seen < n) && !all_done(&self) {
            match self.pop() {
                Some((ud, res, _)) if ud == self.cleanup => pending = Some(res.max(0) as usize),
                Some((ud, res, flags)) => {
                    if is_terminal(flags) {
                        seen += 1;
                    }
                    self.record(ud, res, flags);
                    // A descriptor made after the last wait is the
                    // program's: closed.
                    if res >= 0
                        && self
                            .submitted
                            .iter()
                            .any(|t| t.user_data == ud && t.makes_fd)
                    {
                        // SAFETY: the completion made this descriptor for
                        // the program, and nothing else owns it.
                        drop(unsafe { std::os::fd::OwnedFd::from_raw_fd(res) });
                    }
                }
                None => {
                    if Instant::now() >= deadline || self.wait(deadline).is_err() {
                        break;
                    }
                }
            }
        }
        // Memory of entries not known to have finished (a success that
        // CQE_SKIP_SUCCESS hid, one still running) may yet be used by the
        // kernel: it is leaked rather than freed.
        let submitted = std::mem::take(&mut self.submitted);
        for t in submitted {
            if !self.all_finished(t.user_data) {
                std::mem::forget(t.mem);
            }
        }
        drop(self.ring);
        // Only now is the kernel done with the buffers it was given.
        drop(self.provided);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_opcode_is_named() {
        let p = Program::parse(
            "t",
            "udp u\nsocket domain=inet type=dgram as=s ud=1\nwait 1\nbind fd=s addr=local:u ud=2\nwait 1",
        )
        .unwrap();
        assert_eq!(missing(&p, |_| true), None);
        assert_eq!(
            missing(&p, |code| code != opcode::Bind::CODE),
            Some("bind (Linux 6.11)")
        );
        assert_eq!(
            missing(&p, |code| code < opcode::Socket::CODE),
            Some("socket (Linux 5.19)")
        );
        let p = Program::parse("t", "files 1\nnop ud=1\nwait 1").unwrap();
        assert_eq!(
            missing(&p, |code| code < opcode::Socket::CODE),
            Some("a sparse file table (Linux 5.19)")
        );
    }

    /// Every built-in scenario runs on io_uring on the kernel its
    /// expectations were recorded on (6.18): none is skipped there.
    #[test]
    fn this_kernel_is_probed() {
        let Ok(ring) = new_ring() else {
            return;
        };
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_err() {
            return;
        }
        if probe.is_supported(opcode::Bind::CODE) {
            for s in crate::scenarios::all() {
                let p = s.program().unwrap();
                assert_eq!(missing(&p, |c| probe.is_supported(c)), None, "{}", s.name);
            }
        }
    }
}
