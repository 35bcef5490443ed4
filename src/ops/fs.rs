//! File-system operations, run on the blocking pool.

use std::os::fd::RawFd;

use crate::ops::Op;
use crate::sq::Sqe;

/// `IORING_OP_CLOSE`: closes `fd`. Operations still waiting on it complete
/// with `-ECANCELED` first and its kevent registrations are removed, since
/// kqueue forgets a descriptor's registrations when it is closed.
#[derive(Debug, Clone, Copy)]
pub struct Close {
    pub(crate) fd: RawFd,
}

impl Close {
    /// Closes `fd`.
    pub fn new(fd: RawFd) -> Close {
        Close { fd }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Close(self))
    }
}
