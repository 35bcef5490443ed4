//! Readiness operations: `PollAdd` (one-shot or multishot), `PollRemove`.

use std::os::fd::RawFd;

use crate::ops::{Fd, Op};
use crate::sq::Sqe;

/// `IORING_OP_POLL_ADD`: completes when `fd` is ready for any of `events`
/// (`libc::POLLIN`, `libc::POLLOUT`…) with the ready mask as `res`. A
/// multishot poll posts a completion with `F_MORE` each time the
/// descriptor becomes ready (edge-triggered, as io_uring's is) until it is
/// removed or cancelled.
#[derive(Debug, Clone, Copy)]
pub struct PollAdd {
    pub(crate) fd: RawFd,
    pub(crate) fixed: bool,
    pub(crate) events: u32,
    pub(crate) multishot: bool,
}

impl PollAdd {
    /// Waits for `events` on `fd`.
    pub fn new(fd: impl Into<Fd>, events: u32) -> PollAdd {
        let (fd, fixed) = fd.into().split();
        PollAdd {
            fd,
            fixed,
            events,
            multishot: false,
        }
    }

    /// Keeps posting completions (`IORING_POLL_ADD_MULTI`).
    #[must_use]
    pub fn multishot(mut self, multishot: bool) -> PollAdd {
        self.multishot = multishot;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::PollAdd(self))
    }
}

/// `IORING_OP_POLL_REMOVE`: removes the poll whose `user_data` is
/// `target`; it completes with `-ECANCELED`, this with 0, or `-ENOENT`
/// when no such poll is pending.
#[derive(Debug, Clone, Copy)]
pub struct PollRemove {
    pub(crate) target: u64,
}

impl PollRemove {
    /// Removes the poll submitted with `user_data == target`.
    pub fn new(target: u64) -> PollRemove {
        PollRemove { target }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::PollRemove(self))
    }
}
