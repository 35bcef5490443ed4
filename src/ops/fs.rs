//! File-system operations, run on the blocking pool.

use std::os::fd::RawFd;

use crate::ops::{BlockingOp, Fd, Op, Operation, Output, RingOp, on_fd, res};
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
    fd: RawFd,
    /// The slot of the file table, for a `Fixed` one.
    slot: Option<u32>,
}

impl Close {
    /// Closes `fd`, or empties a registered file's slot.
    pub fn new(fd: impl Into<Fd>) -> Close {
        match fd.into() {
            Fd::Raw(fd) => Close { fd, slot: None },
            Fd::Fixed(slot) => Close {
                fd: -1,
                slot: Some(slot),
            },
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        // A slot is named in the operation, as io_uring's `file_index`:
        // the entry carries no FIXED_FILE.
        match self.slot {
            Some(slot) => Sqe::new(Op::Ring(Box::new(RingOp::CloseSlot(slot))), false),
            None => Sqe::new(Op::Blocking(Box::new(self)), false),
        }
    }
}

impl Operation for Close {
    on_fd!();

    fn name(&self) -> &'static str {
        "Close"
    }

    fn finish(self: Box<Self>, _out: &mut Output) {}
}

impl BlockingOp for Close {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        res(sys::close(self.fd))
    }

    fn closes(&self) -> Option<RawFd> {
        Some(self.fd)
    }
}
