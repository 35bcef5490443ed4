//! Registered files (io_uring's fixed files): [`Fixed`] names a slot of
//! the ring's file table, [`FileSlot`] says where a new descriptor goes,
//! and [`FilesUpdate`] fills or clears slots.
//!
//! The table's size is set when the ring is built
//! ([`Builder::files`](crate::Builder::files)), as io_uring's sparse
//! registration does. A slot holds a descriptor the ring owns: a duplicate
//! of one given to `FilesUpdate` (the same open file, so the caller may
//! close theirs) or one that a direct `Accept` or `Socket` made. Nobody
//! else can close it, so the ring can keep its readiness registrations
//! across waits without checking them again.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use kqring::{Ring, ops::{self, Fixed, FileSlot}};
//! use std::os::fd::AsRawFd;
//! let ring = Ring::builder().files(4).build()?;
//! let (a, b) = std::os::unix::net::UnixStream::pair()?;
//! let sq = ring.submission();
//! // Slot 0 gets a's socket; then a send and a receive go through slots.
//! sq.push(ops::FilesUpdate::new(FileSlot::Index(0), vec![a.as_raw_fd(), b.as_raw_fd()]).build().user_data(1)).unwrap();
//! sq.submit_and_wait(1)?;
//! assert_eq!(ring.completion().pop().unwrap().result(), 2);
//! drop((a, b)); // the ring holds its own references
//! sq.push(ops::Send::new(Fixed(0), Bytes::from_static(b"hi")).build().user_data(2)).unwrap();
//! sq.push(ops::Recv::new(Fixed(1), BytesMut::with_capacity(8)).build().user_data(3)).unwrap();
//! sq.submit_and_wait(2)?;
//! let mut cqes = ring.completion().wait_nr(2)?;
//! cqes.sort_by_key(|c| c.user_data());
//! assert_eq!(cqes[1].take_buf::<BytesMut>()?, &b"hi"[..]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::fd::RawFd;

use crate::ops::{Op, RingOp};
use crate::sq::Sqe;

/// A registered file: slot `n` of the ring's file table (io_uring's
/// `types::Fixed`). Operations given one carry
/// [`SqeFlags::FIXED_FILE`](crate::SqeFlags::FIXED_FILE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fixed(pub u32);

/// The file an operation works on: a descriptor number, or a slot of the
/// ring's file table. Operations take `impl Into<Fd>`: a `RawFd` or a
/// [`Fixed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fd {
    /// A descriptor of the process.
    Raw(RawFd),
    /// A registered file.
    Fixed(u32),
}

impl From<RawFd> for Fd {
    fn from(fd: RawFd) -> Fd {
        Fd::Raw(fd)
    }
}

impl From<Fixed> for Fd {
    fn from(f: Fixed) -> Fd {
        Fd::Fixed(f.0)
    }
}

impl Fd {
    /// The number the entry carries: a slot index for a registered file.
    /// An index past `i32::MAX` keeps its bits, and is out of range for any
    /// table.
    pub(crate) fn number(self) -> RawFd {
        match self {
            Fd::Raw(fd) => fd,
            Fd::Fixed(i) => i as RawFd,
        }
    }

    /// Whether it names a slot of the file table.
    pub(crate) fn is_fixed(self) -> bool {
        matches!(self, Fd::Fixed(_))
    }
}

/// Where a descriptor that an operation makes goes in the file table
/// (io_uring's `DestinationSlot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileSlot {
    /// This slot; a file already there is replaced (and closed once no
    /// operation uses it). The operation completes with 0.
    Index(u32),
    /// The first free slot (`IORING_FILE_INDEX_ALLOC`); the operation
    /// completes with its index, or `-ENFILE` when the table is full.
    Alloc,
}

/// `IORING_OP_FILES_UPDATE`: puts descriptors into the file table, one
/// slot each from `slot` on (or, with [`FileSlot::Alloc`], each into the
/// first free slot). A descriptor of -1 empties its slot and
/// [`FilesUpdate::SKIP`] leaves it as it is.
///
/// Completes with the number of entries done; an entry that fails stops
/// the update, which then completes with its error if it was the first
/// (`-EBADF` for a descriptor that is not open). The range must fit the
/// table (`-EINVAL`), and the ring must have one (`-ENXIO`). The
/// completion hands the descriptors back ([`Cqe::fds`]), with the slots
/// chosen for `Alloc` written in, as io_uring writes them into the
/// caller's array.
///
/// [`Cqe::fds`]: crate::Cqe::fds
#[derive(Debug)]
pub struct FilesUpdate {
    pub(crate) slot: FileSlot,
    pub(crate) fds: Vec<RawFd>,
}

impl FilesUpdate {
    /// The descriptor value that leaves its slot unchanged
    /// (`IORING_REGISTER_FILES_SKIP`).
    pub const SKIP: RawFd = -2;

    /// Puts `fds` into the table from `slot` on.
    pub fn new(slot: FileSlot, fds: Vec<RawFd>) -> FilesUpdate {
        FilesUpdate { slot, fds }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::FilesUpdate(self))))
    }
}
