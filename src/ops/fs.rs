//! File-system operations, run on the blocking pool.

use std::os::fd::RawFd;

use crate::ops::{BlockingOp, Fd, Op, RingOp, operation, res};
use crate::sq::Sqe;
use crate::sys::io::{self as sys, FdKind};

/// `IORING_OP_CLOSE`: closes `fd`. Operations still waiting on it complete
/// with `-ECANCELED` first and its kevent registrations are removed, since
/// kqueue forgets a descriptor's registrations when it is closed.
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
        res(sys::close(self.fd.number()))
    }

    fn closes(&self) -> Option<RawFd> {
        Some(self.fd.number())
    }
}
