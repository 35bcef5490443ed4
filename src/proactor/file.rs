//! Files that own their descriptor: reads and writes at an offset or at
//! the file's position, through the ring (the blocking pool for regular
//! files).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::buf::{IoBuf, IoBufMut};
use crate::ops;
use crate::proactor::Proactor;
use crate::proactor::op::{BufResult, OpFuture, Unit};
use crate::proactor::socket::Owned;

/// An open file; dropped, it is closed through the ring ([`close`](Self::close)
/// waits for the close and reports its error).
#[derive(Debug)]
pub struct File {
    owned: Owned,
}

impl File {
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

    /// Closes the file through the ring (a `Close`) and reports its error.
    pub async fn close(self) -> io::Result<()> {
        let io = self.owned.proactor().clone();
        let fd = self.owned.into_fd();
        // The Close op owns the number from here: `into_raw_fd` gives it up
        // without closing.
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        io.run(ops::Close::new(raw).build(), Unit).await
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
