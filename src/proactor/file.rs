//! Files that own their descriptor: reads and writes at an offset or at
//! the file's position, through the ring (the blocking pool for regular
//! files).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::buf::{IoBuf, IoBufMut};
use crate::cq::Cqe;
use crate::ops;
use crate::ops::Stat;
use crate::proactor::Proactor;
use crate::proactor::op::{BufResult, Decode, OpFuture, Unit};
use crate::proactor::socket::Owned;

/// An open file; dropped, it is closed through the ring ([`close`](Self::close)
/// waits for the close and reports its error).
#[derive(Debug)]
pub struct File {
    owned: Owned,
}

/// An `OpenAt`'s completion as a [`File`].
pub struct Opened {
    io: Proactor,
}

impl Decode for Opened {
    type Output = io::Result<File>;
    const MAKES_FD: bool = true;
    fn decode(self, cqe: Cqe) -> io::Result<File> {
        let fd = cqe.io_result()?;
        // SAFETY: the driver's openat made this descriptor for this
        // completion; it is handed over once, here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(File::from_fd(&self.io, fd))
    }
}

/// A `Statx`'s completion as the file's status.
#[derive(Debug, Default, Clone, Copy)]
pub struct Status;

impl Decode for Status {
    type Output = io::Result<Stat>;
    fn decode(self, cqe: Cqe) -> io::Result<Stat> {
        cqe.io_result()?;
        cqe.statx()
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a Statx without a status"))
    }
}

impl Proactor {
    /// The status of the file at `path` (a `Statx`, following symbolic
    /// links).
    pub fn statx(&self, path: impl AsRef<Path>) -> OpFuture<'static, Status> {
        self.run(ops::Statx::new(path.as_ref()).build(), Status)
    }
}

impl File {
    /// Opens `path` for reading (an `OpenAt`, close-on-exec).
    pub fn open(io: &Proactor, path: impl AsRef<Path>) -> OpFuture<'static, Opened> {
        File::open_with(io, path, libc::O_RDONLY, 0)
    }

    /// Creates `path` for writing, or truncates it (`O_WRONLY | O_CREAT |
    /// O_TRUNC`, mode 0o666 before the umask).
    pub fn create(io: &Proactor, path: impl AsRef<Path>) -> OpFuture<'static, Opened> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        File::open_with(io, path, flags, 0o666)
    }

    /// Opens `path` with `open(2)`'s `flags` and `mode` (`O_CLOEXEC` is
    /// always added).
    pub fn open_with(
        io: &Proactor,
        path: impl AsRef<Path>,
        flags: i32,
        mode: u32,
    ) -> OpFuture<'static, Opened> {
        let sqe = ops::OpenAt::new(path.as_ref(), flags | libc::O_CLOEXEC)
            .mode(mode)
            .build();
        io.run(sqe, Opened { io: io.clone() })
    }

    /// Flushes the file's data and metadata to its device (an `Fsync`).
    pub fn sync_all(&self) -> OpFuture<'_, Unit> {
        self.owned
            .op(ops::Fsync::new(self.owned.target()).build(), Unit)
    }

    /// Flushes the file's data, and the metadata needed to read it (an
    /// `Fsync` with `datasync`).
    pub fn sync_data(&self) -> OpFuture<'_, Unit> {
        let sqe = ops::Fsync::new(self.owned.target()).datasync(true).build();
        self.owned.op(sqe, Unit)
    }

    /// The file's status (a `Statx` of its descriptor).
    pub fn statx(&self) -> OpFuture<'_, Status> {
        self.owned
            .op(ops::Statx::fd(self.owned.raw()).build(), Status)
    }

    /// Takes over std's file.
    pub fn from_std(io: &Proactor, file: std::fs::File) -> File {
        File {
            owned: Owned::new(io, OwnedFd::from(file)),
        }
    }

    /// Takes over a descriptor.
    pub fn from_fd(io: &Proactor, fd: OwnedFd) -> File {
        File {
            owned: Owned::new(io, fd),
        }
    }

    /// Gives the file up as std's, not closed.
    pub fn into_std(self) -> std::fs::File {
        std::fs::File::from(self.owned.into_fd())
    }

    /// The proactor it works through.
    pub fn proactor(&self) -> &Proactor {
        self.owned.proactor()
    }

    /// Its slot in the ring's file table, which its operations name
    /// (`FIXED_FILE`), holding a duplicate of its descriptor; `None` as
    /// for [`TcpStream::fixed_file`](crate::proactor::TcpStream::fixed_file).
    pub fn fixed_file(&self) -> Option<crate::ops::Fixed> {
        self.owned.fixed()
    }

    /// Reads into `buf` at `offset` (`pread`): the count (0 at the end of
    /// the file) and the buffer.
    pub fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> OpFuture<'_, BufResult<B>> {
        self.owned.read_at(buf, offset)
    }

    /// Writes from `buf` at `offset` (`pwrite`).
    pub fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> OpFuture<'_, BufResult<B>> {
        self.owned.write_at(buf, offset)
    }

    /// Writes all of `buf` from `offset` on, one write after another.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, offset: u64) -> (io::Result<()>, B) {
        self.owned.write_all_from(buf, Some(offset)).await
    }

    /// Writes all of `buf` at the file's position (a pipe's, a FIFO's),
    /// one write after another.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> (io::Result<()>, B) {
        self.owned.write_all(buf).await
    }

    /// Reads at the file's position, which moves.
    pub fn read<B: IoBufMut>(&self, buf: B) -> OpFuture<'_, BufResult<B>> {
        self.owned.read(buf)
    }

    /// Writes at the file's position, which moves.
    pub fn write<B: IoBuf>(&self, buf: B) -> OpFuture<'_, BufResult<B>> {
        self.owned.write(buf)
    }

    /// Closes the file through the ring (a `Close`) and reports its error;
    /// on this thread once the ring is gone.
    pub async fn close(self) -> io::Result<()> {
        let io = self.owned.proactor().clone();
        let fd = self.owned.into_fd_to_close();
        // The Close op owns the number from here: `into_raw_fd` gives it up
        // without closing.
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        match io.run(ops::Close::new(raw).build(), Unit).await {
            // The Close never ran: refused by a ring that is gone, or
            // still in the SQ when the ring went away (which ends it
            // cancelled). close(2) never fails so itself, and the number
            // is still this file's.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESHUTDOWN | libc::ECANCELED)) => {
                // SAFETY: `raw` is the descriptor given up above, which
                // nothing has closed.
                if unsafe { libc::close(raw) } == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            }
            res => res,
        }
    }
}

impl From<File> for std::fs::File {
    fn from(f: File) -> std::fs::File {
        f.into_std()
    }
}

impl From<File> for OwnedFd {
    fn from(f: File) -> OwnedFd {
        f.owned.into_fd()
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.owned.raw()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor stays open while `self` lives.
        unsafe { BorrowedFd::borrow_raw(self.owned.raw()) }
    }
}

impl std::os::fd::IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        std::os::fd::IntoRawFd::into_raw_fd(self.owned.into_fd())
    }
}
