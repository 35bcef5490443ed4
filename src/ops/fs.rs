//! File operations, run on the blocking pool: `OpenAt` (tried on the
//! driver's thread first), `Fsync`, `Fallocate`, `Ftruncate`, `Fadvise`,
//! `Madvise`; and `Close`, which runs on the driver's thread (on the pool
//! with `ASYNC`). (The directory-entry operations are in `path.rs`,
//! `Statx` in `stat.rs`.)
//!
//! ```
//! use kqring::{Ring, ops};
//! let dir = std::env::temp_dir();
//! let ring = Ring::new(8)?;
//! let sq = ring.submission();
//! let path = dir.join(format!("kqring-doc-{}", std::process::id()));
//! sq.push(ops::OpenAt::new(&path, libc::O_CREAT | libc::O_RDWR | libc::O_CLOEXEC).mode(0o600).build())?;
//! sq.submit_and_wait(1)?;
//! let mut cqe = ring.completion().pop().expect("a completion");
//! let fd = cqe.result();
//! assert!(fd >= 0, "open: {}", cqe.result());
//! assert_eq!(cqe.take_path().as_deref(), Some(path.as_path()));
//! sq.push(ops::Fsync::new(fd).build().user_data(1))?;
//! sq.push(ops::Close::new(fd).build().user_data(2).flags(kqring::SqeFlags::IO_DRAIN))?;
//! sq.push(ops::UnlinkAt::new(&path).build().user_data(3).flags(kqring::SqeFlags::IO_DRAIN))?;
//! sq.submit_and_wait(3)?;
//! assert!(ring.completion().wait_nr(3)?.iter().all(|c| c.result() == 0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::ops::path::{OwnedPath, done, give_back};
use crate::ops::{BlockingOp, Fd, FileSlot, Op, RingOp, operation, res};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::fs::{self as sys, AT_FDCWD, Advice, FallocateFlags, MemoryAdvice};
use crate::sys::io::{self as io, FdKind};

/// `IORING_OP_OPENAT`: opens `path` with `open(2)`'s `flags` (`libc::O_*`,
/// passed as given: add `O_CLOEXEC` to keep it from child processes, as
/// with io_uring) and, for a file it creates, permissions `mode` (default
/// `0o666`, before the umask). Completes with the new descriptor, or
/// `-errno` (`-ENOENT`, `-EEXIST` with `O_CREAT | O_EXCL`, `-ENOTDIR`,
/// `-EISDIR` opening a directory for writing, `-ENAMETOOLONG`, `-ELOOP`
/// with `O_NOFOLLOW` on a link, `-EACCES`…).
///
/// With [`file_index`](Self::file_index) the descriptor goes into the
/// ring's file table instead (io_uring's direct descriptor), and the
/// completion's result is 0 (a given slot) or the slot chosen (`Alloc`):
/// `O_CLOEXEC` is then `-EINVAL`, as in io_uring (a slot's descriptor is
/// the ring's, and never reaches a child).
#[derive(Debug)]
pub struct OpenAt {
    dir: RawFd,
    path: OwnedPath,
    flags: i32,
    mode: u32,
    slot: Option<FileSlot>,
}

impl OpenAt {
    /// Opens `path`, relative to the current directory, with `flags`.
    pub fn new(path: impl Into<PathBuf>, flags: i32) -> OpenAt {
        OpenAt {
            dir: AT_FDCWD,
            path: OwnedPath::new(path),
            flags,
            mode: 0o666,
            slot: None,
        }
    }

    /// The directory a relative `path` starts from.
    #[must_use]
    pub fn dir(mut self, dir: RawFd) -> OpenAt {
        self.dir = dir;
        self
    }

    /// A created file's permissions, before the umask.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> OpenAt {
        self.mode = mode;
        self
    }

    /// Puts the descriptor into the ring's file table at `slot`.
    #[must_use]
    pub fn file_index(mut self, slot: FileSlot) -> OpenAt {
        self.slot = Some(slot);
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(OpenAt, "OpenAt", |op, out| give_back(out, [op.path]);
    fn direct_slot(&self) -> Option<FileSlot> {
        self.slot
    }
);

impl OpenAt {
    /// The flags the call gets: a slot's descriptor is the ring's, closed
    /// on exec; `O_CLOEXEC` asked for one is `-EINVAL`, as in io_uring.
    fn call_flags(&self) -> Result<i32, Errno> {
        match self.slot {
            Some(_) if self.flags & libc::O_CLOEXEC != 0 => Err(Errno::EINVAL),
            Some(_) => Ok(self.flags | libc::O_CLOEXEC),
            None => Ok(self.flags),
        }
    }
}

impl BlockingOp for OpenAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        let opened = self.path.c().and_then(|path| {
            let flags = self.call_flags()?;
            sys::open_at(self.dir, path, flags, self.mode)
        });
        opened.unwrap_or_else(Errno::res)
    }

    fn try_now(&mut self) -> Option<i32> {
        let opened = match (self.path.c(), self.call_flags()) {
            (Ok(path), Ok(flags)) => sys::open_cached(self.dir, path, flags)?,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        Some(opened.unwrap_or_else(Errno::res))
    }
}

/// `IORING_OP_CLOSE`: closes `fd`. Operations still waiting on it complete
/// with `-ECANCELED` first and its kevent registrations are removed, since
/// kqueue forgets a descriptor's registrations when it is closed.
///
/// The `close(2)` is made on the driver's thread when the entry starts, as
/// io_uring closes at issue: a cancel after it finds nothing. With
/// [`SqeFlags::ASYNC`](crate::SqeFlags::ASYNC) it runs on the blocking
/// pool instead, for a close that may wait long (an NFS file flushing its
/// writes, a terminal draining its output, a socket with `SO_LINGER`).
///
/// Given a [`Fixed`](crate::ops::Fixed) slot, it empties the slot instead
/// (io_uring's `file_index`): 0, or `-EBADF` for an empty slot,
/// `-EINVAL` past the table, `-ENXIO` without one. Operations using that
/// file go on; it is closed when the last of them completes.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    fd: Fd,
}

impl Close {
    /// Closes `fd`, or empties a registered file's slot.
    pub fn new(fd: impl Into<Fd>) -> Close {
        Close { fd: fd.into() }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        // A slot is named in the operation, as io_uring's `file_index`:
        // the entry carries no FIXED_FILE.
        match self.fd {
            Fd::Fixed(slot) => Sqe::new(Op::Ring(Box::new(RingOp::CloseSlot(slot)))),
            Fd::Raw(_) => Sqe::new(Op::Blocking(Box::new(self))),
        }
    }
}

operation!(Close, "Close", fd, |_, _out| {});

impl BlockingOp for Close {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        res(io::close(self.fd.number()))
    }

    fn closes(&self) -> Option<RawFd> {
        Some(self.fd.number())
    }
}

/// `IORING_OP_FSYNC`: flushes `fd`'s data and metadata to stable storage
/// (`fsync`), or with [`datasync`](Self::datasync) its data and only the
/// metadata needed to read it (`fdatasync`, io_uring's
/// `IORING_FSYNC_DATASYNC`; macOS, whose libc has no `fdatasync`, makes a
/// full `fsync`). Completes with 0 or `-errno`.
///
/// [`full`](Self::full) also empties the device's write cache on macOS
/// (`F_FULLFSYNC`), where `fsync` leaves it; elsewhere `fsync` does that
/// already. A [`range`](Self::range) is accepted as io_uring's is, and the
/// whole file is synced: no system kqring runs on offers user space a
/// ranged sync that is durable (Linux's `sync_file_range` syncs no
/// metadata and no device cache).
#[derive(Debug, Clone, Copy)]
pub struct Fsync {
    fd: Fd,
    datasync: bool,
    full: bool,
    range: (u64, u32),
}

impl Fsync {
    /// Syncs `fd` (a descriptor or a registered file).
    pub fn new(fd: impl Into<Fd>) -> Fsync {
        Fsync {
            fd: fd.into(),
            datasync: false,
            full: false,
            range: (0, 0),
        }
    }

    /// Syncs the data only (`fdatasync`).
    #[must_use]
    pub fn datasync(mut self, on: bool) -> Fsync {
        self.datasync = on;
        self
    }

    /// Asks the device to empty its cache too (macOS's `F_FULLFSYNC`).
    #[must_use]
    pub fn full(mut self, on: bool) -> Fsync {
        self.full = on;
        self
    }

    /// The bytes that need syncing: `len` from `offset` (0: to the end);
    /// the whole file is synced (see above).
    #[must_use]
    pub fn range(mut self, offset: u64, len: u32) -> Fsync {
        self.range = (offset, len);
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(Fsync, "Fsync", fd, |_, _out| {});

impl BlockingOp for Fsync {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(sys::sync(self.fd.number(), self.datasync, self.full))
    }
}

/// `IORING_OP_FALLOCATE`: allocates `len` bytes of `fd` from `offset`,
/// growing the file if they end past its end — or what
/// [`FallocateFlags`] ask. Completes with 0 or `-errno`.
///
/// Linux has every mode. macOS allocates past the end of the file
/// (`F_PREALLOCATE`, then `ftruncate` unless `KEEP_SIZE`) and punches
/// holes (`PUNCH_HOLE | KEEP_SIZE`, `F_PUNCHHOLE`); FreeBSD has mode 0
/// (`posix_fallocate`); what a system can't do is `-EOPNOTSUPP`, and
/// NetBSD and OpenBSD can do none of it.
#[derive(Debug, Clone, Copy)]
pub struct Fallocate {
    fd: Fd,
    offset: u64,
    len: u64,
    flags: FallocateFlags,
}

impl Fallocate {
    /// Allocates `len` bytes from `offset`.
    pub fn new(fd: impl Into<Fd>, offset: u64, len: u64) -> Fallocate {
        Fallocate {
            fd: fd.into(),
            offset,
            len,
            flags: FallocateFlags::empty(),
        }
    }

    /// The mode (io_uring's `mode`, Linux's `FALLOC_FL_*`).
    #[must_use]
    pub fn flags(mut self, flags: FallocateFlags) -> Fallocate {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(Fallocate, "Fallocate", fd, |_, _out| {});

impl BlockingOp for Fallocate {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(sys::fallocate(
            self.fd.number(),
            self.flags,
            self.offset,
            self.len,
        ))
    }
}

/// `IORING_OP_FTRUNCATE`: sets `fd`'s size to `len`, cutting or growing
/// it (with zeros). Completes with 0 or `-errno` (`-EINVAL` for a
/// descriptor not open for writing or not a regular file).
#[derive(Debug, Clone, Copy)]
pub struct Ftruncate {
    fd: Fd,
    len: u64,
}

impl Ftruncate {
    /// Sets `fd`'s size to `len`.
    pub fn new(fd: impl Into<Fd>, len: u64) -> Ftruncate {
        Ftruncate { fd: fd.into(), len }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(Ftruncate, "Ftruncate", fd, |_, _out| {});

impl BlockingOp for Ftruncate {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(sys::ftruncate(self.fd.number(), self.len))
    }
}

/// `IORING_OP_FADVISE`: tells the kernel how `len` bytes of `fd` from
/// `offset` (`len` 0: to the end) will be read (`posix_fadvise`).
/// Completes with 0 or `-errno`; `-EOPNOTSUPP` where the system has no
/// `posix_fadvise` (macOS, NetBSD, OpenBSD).
#[derive(Debug, Clone, Copy)]
pub struct Fadvise {
    fd: Fd,
    offset: u64,
    len: u64,
    advice: Advice,
}

impl Fadvise {
    /// Gives `advice` about `len` bytes of `fd` from `offset`.
    pub fn new(fd: impl Into<Fd>, offset: u64, len: u64, advice: Advice) -> Fadvise {
        Fadvise {
            fd: fd.into(),
            offset,
            len,
            advice,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(Fadvise, "Fadvise", fd, |_, _out| {});

impl BlockingOp for Fadvise {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(sys::fadvise(
            self.fd.number(),
            self.offset,
            self.len,
            self.advice,
        ))
    }
}

/// `IORING_OP_MADVISE`: tells the kernel how `len` bytes of memory from
/// `addr` will be used (`madvise`). Completes with 0 or `-errno`
/// (`-EINVAL` for an address not page-aligned, `-ENOMEM` for memory not
/// mapped).
#[derive(Debug, Clone, Copy)]
pub struct Madvise {
    addr: usize,
    len: usize,
    advice: MemoryAdvice,
}

impl Madvise {
    /// Gives `advice` about `len` bytes from `addr`.
    ///
    /// # Safety
    ///
    /// Until the operation completes, the range must be memory the caller
    /// may give this advice about: with [`MemoryAdvice::DontNeed`], private
    /// anonymous memory reads as zeros afterwards, so none of it may hold
    /// anything Rust code relies on.
    pub unsafe fn new(addr: *mut u8, len: usize, advice: MemoryAdvice) -> Madvise {
        Madvise {
            addr: addr as usize,
            len,
            advice,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(Madvise, "Madvise", |_, _out| {});

impl BlockingOp for Madvise {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        // SAFETY: `Madvise::new`'s caller vouched for the range.
        done(unsafe { sys::madvise(self.addr, self.len, self.advice) })
    }
}
