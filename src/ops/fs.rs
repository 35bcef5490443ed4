//! File-system operations, run on the blocking pool.

use std::os::fd::RawFd;

use crate::ops::{Fd, Op};
use crate::sq::Sqe;

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
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
}

impl Close {
    /// Closes `fd`, or empties a registered file's slot.
    pub fn new(fd: impl Into<Fd>) -> Close {
        let (fd, fixed) = fd.into().split();
        Close { fd, fixed }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Close(self))
    }
}
