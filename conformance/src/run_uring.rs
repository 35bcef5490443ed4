//! Runs a program on Linux's io_uring.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use io_uring::types::{
    CancelBuilder, DestinationSlot, Fd, Fixed, SubmitArgs, TimeoutFlags, Timespec,
};
use io_uring::{IoUring, opcode, squeue};

use crate::model::{CancelTarget, Entry, FileRef, FileSlot, Flags, Op, Program};
use crate::resources::Fds;
use crate::run::{
    Backend, CqeRecord, RunError, Unavailable, bid16, drive, group16, normalize_flags, recv_flags,
    update_fds,
};

/// How long the end of a run waits for cancelled entries to complete.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(2);

const SQ_ENTRIES: u32 = 128;

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

pub(crate) fn run(program: &Program) -> Result<Vec<CqeRecord>, RunError> {
    drive(program, || {
        // The cancel that ends the run needs a user_data of its own.
        let used: Vec<u64> = program.entries().map(|e| e.user_data).collect();
        let cleanup = (0..=u64::MAX)
            .rev()
            .find(|ud| !used.contains(ud))
            .unwrap_or(u64::MAX);
        Ok(Uring {
            ring: setup(program.files)?,
            submitted: Vec::new(),
            finished: HashMap::new(),
            cleanup,
            provided: Vec::new(),
        })
    })
}

/// A ring, with a file table of `files` empty slots unless 0.
fn setup(files: u32) -> Result<IoUring, RunError> {
    let ring = new_ring()?;
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
    /// The buffer group it selects from.
    group: Option<u16>,
    mem: Mem,
}

/// The io_uring backend. A completion names its entry only by
/// `user_data`, which a program may give several entries: memory is only
/// read or freed once that is unambiguous.
struct Uring {
    ring: IoUring,
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
fn translate(entry: &Entry, fds: &Fds) -> Result<(squeue::Entry, Mem), RunError> {
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
        } => {
            // No SOCK_CLOEXEC: io_uring refuses it with a slot (a direct
            // descriptor is no process's to inherit).
            let sqe = match (file_index, *multi) {
                (FileSlot::Alloc, true) => on_file!(fds, fd, |f| opcode::AcceptMulti::new(f)
                    .allocate_file_index(true)
                    .build()),
                (slot, multi) => {
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
    };
    Ok((
        sqe.user_data(entry.user_data).flags(flags(entry.flags)),
        mem,
    ))
}

/// The io-uring crate's name for a slot.
fn destination(slot: FileSlot) -> Result<DestinationSlot, RunError> {
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
    fn record(&mut self, user_data: u64, res: i32, flags: u32) -> CqeRecord {
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
        if is_terminal(flags) {
            *self.finished.entry(user_data).or_default() += 1;
            let mut same = self.submitted.iter().filter(|t| t.user_data == user_data);
            if let (Some(t), None) = (same.next(), same.next())
                && t.read
                && res >= 0
            {
                let mut left = res as usize;
                let bufs: Vec<&Vec<u8>> = match &t.mem {
                    Mem::Buf(b) => vec![b],
                    Mem::Bufs(v, _) => v.iter().collect(),
                    Mem::None | Mem::Time(_) | Mem::Fds(_) | Mem::Provided(_) => Vec::new(),
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
        CqeRecord {
            user_data,
            res,
            flags: normalize_flags(flags),
            data,
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
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let ts = Timespec::from(left);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => Ok(()),
            Err(e) => Err(RunError::io("io_uring_enter (wait)", e)),
        }
    }
}

impl Backend for Uring {
    fn submit(&mut self, entries: &[Entry], fds: &Fds) -> Result<(), RunError> {
        for e in entries {
            let (sqe, mem) = translate(e, fds)?;
            let mem = match mem {
                Mem::Provided(p) => {
                    self.provided.push(p);
                    Mem::None
                }
                mem => mem,
            };
            let group = match &e.op {
                Op::RecvSelect { group, .. } => Some(group16(*group)?),
                _ => None,
            };
            self.submitted.push(Tracked {
                user_data: e.user_data,
                read: e.op.is_read(),
                group,
                mem,
            });
            self.push(&sqe)?;
        }
        self.submit_queued()
    }

    fn next(&mut self, deadline: Instant) -> Result<Option<CqeRecord>, RunError> {
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
