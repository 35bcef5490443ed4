//! Reads and writes: `Read`, `Write`, `Readv`, `Writev`.
//!
//! On sockets, non-blocking pipes and terminals they try the syscall at
//! once and wait for readiness only on EAGAIN; on regular files and
//! blocking descriptors they run on the blocking pool.

use std::os::fd::RawFd;

use bytes::{Bytes, BytesMut};

use crate::cq::Buffer;
use crate::ops::bufs::Pick;
use crate::ops::{Fd, Op};
use crate::sq::{Sqe, SqeFlags};

/// The offset that means "the file's current position" (io_uring's -1).
pub(crate) const CURRENT_POSITION: u64 = u64::MAX;

/// `IORING_OP_READ`: reads into the spare capacity of a `BytesMut` (after
/// its current length), and gives the buffer back with its length grown by
/// the bytes read (`res`).
///
/// With [`Read::select`] the buffer is taken from a provided group when
/// the data is ready (`SqeFlags::BUFFER_SELECT`).
#[derive(Debug)]
pub struct Read {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) buf: Option<BytesMut>,
    pub(crate) offset: u64,
    pub(crate) pick: Pick,
}

impl Read {
    /// Reads from `fd` into `buf`'s spare capacity, at offset 0.
    pub fn new(fd: impl Into<Fd>, buf: BytesMut) -> Read {
        let (fd, fixed) = fd.into().split();
        Read {
            fd,
            fixed,
            buf: Some(buf),
            offset: 0,
            pick: Pick::default(),
        }
    }

    /// Reads from `fd` into a buffer of provided group `group`, taken when
    /// the data is there. `build()` sets `SqeFlags::BUFFER_SELECT`.
    pub fn select(fd: impl Into<Fd>, group: u16) -> Read {
        let (fd, fixed) = fd.into().split();
        Read {
            fd,
            fixed,
            buf: None,
            offset: 0,
            pick: Pick {
                group,
                ..Pick::default()
            },
        }
    }

    /// The file offset to read at; `u64::MAX` reads at the current position
    /// and advances it. Ignored by sockets, pipes and terminals.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Read {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        let select = self.buf.is_none();
        let sqe = Sqe::new(Op::Read(self));
        if select {
            sqe.flags(SqeFlags::BUFFER_SELECT)
        } else {
            sqe
        }
    }
}

/// The buffer of a write: `Bytes` or `BytesMut`, handed back as it came.
#[derive(Debug)]
pub enum WriteBuf {
    /// Shared, immutable bytes.
    Shared(Bytes),
    /// A mutable buffer; its readable part is written.
    Mut(BytesMut),
}

impl WriteBuf {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            WriteBuf::Shared(b) => b,
            WriteBuf::Mut(b) => b,
        }
    }

    pub(crate) fn into_buffer(self) -> Buffer {
        match self {
            WriteBuf::Shared(b) => Buffer::Shared(b),
            WriteBuf::Mut(b) => Buffer::Mut(b),
        }
    }
}

impl From<Bytes> for WriteBuf {
    fn from(b: Bytes) -> WriteBuf {
        WriteBuf::Shared(b)
    }
}

impl From<BytesMut> for WriteBuf {
    fn from(b: BytesMut) -> WriteBuf {
        WriteBuf::Mut(b)
    }
}

impl From<&'static [u8]> for WriteBuf {
    fn from(b: &'static [u8]) -> WriteBuf {
        WriteBuf::Shared(Bytes::from_static(b))
    }
}

/// `IORING_OP_WRITE`: writes the buffer's bytes; `res` is how many were
/// written (a short write is a success), and the buffer comes back whole.
#[derive(Debug)]
pub struct Write {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) buf: Option<WriteBuf>,
    pub(crate) offset: u64,
}

impl Write {
    /// Writes `buf` (`Bytes` or `BytesMut`) to `fd` at offset 0.
    pub fn new(fd: impl Into<Fd>, buf: impl Into<WriteBuf>) -> Write {
        let (fd, fixed) = fd.into().split();
        Write {
            fd,
            fixed,
            buf: Some(buf.into()),
            offset: 0,
        }
    }

    /// The file offset to write at; `u64::MAX` writes at the current
    /// position. Ignored by sockets, pipes and terminals.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Write {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Write(self))
    }
}

/// `IORING_OP_READV`: reads into the spare capacity of each buffer in
/// turn; each comes back with its length grown by what landed in it.
#[derive(Debug)]
pub struct Readv {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) bufs: Option<Vec<BytesMut>>,
    pub(crate) offset: u64,
}

impl Readv {
    /// Reads from `fd` into `bufs`, at offset 0.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<BytesMut>) -> Readv {
        let (fd, fixed) = fd.into().split();
        Readv {
            fd,
            fixed,
            bufs: Some(bufs),
            offset: 0,
        }
    }

    /// The file offset; `u64::MAX` for the current position.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Readv {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Readv(self))
    }
}

/// `IORING_OP_WRITEV`: writes the buffers in order, as one call.
#[derive(Debug)]
pub struct Writev {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) bufs: Option<Vec<Bytes>>,
    pub(crate) offset: u64,
}

impl Writev {
    /// Writes `bufs` to `fd` at offset 0.
    pub fn new(fd: impl Into<Fd>, bufs: Vec<Bytes>) -> Writev {
        let (fd, fixed) = fd.into().split();
        Writev {
            fd,
            fixed,
            bufs: Some(bufs),
            offset: 0,
        }
    }

    /// The file offset; `u64::MAX` for the current position.
    #[must_use]
    pub fn offset(mut self, offset: u64) -> Writev {
        self.offset = offset;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Writev(self))
    }
}
