//! `AsyncCancel`: cancel operations in flight.

use std::os::fd::RawFd;

use crate::ops::{Op, RingOp};
use crate::sq::Sqe;

/// Which operations an [`AsyncCancel`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelTarget {
    /// The operation(s) submitted with this `user_data`.
    UserData(u64),
    /// The operation(s) on this descriptor (`IORING_ASYNC_CANCEL_FD`).
    Fd(RawFd),
    /// The operation(s) on the file in this slot of the ring's file table
    /// (`IORING_ASYNC_CANCEL_FD_FIXED`); `-EBADF` for an empty slot.
    Fixed(u32),
    /// Any operation (`IORING_ASYNC_CANCEL_ANY`).
    Any,
}

/// `IORING_OP_ASYNC_CANCEL`: cancels the first matching operation, or all
/// of them. A cancelled operation completes with `-ECANCELED` and its
/// buffer. This completes with 0 (or, with `all` or [`CancelTarget::Any`],
/// the number cancelled, which can be 0), `-ENOENT` when nothing matched
/// (without `all`), `-EBADF` when the descriptor to match is not open,
/// `-EALREADY` when the match is already running on the blocking pool and
/// can't be stopped.
#[derive(Debug, Clone, Copy)]
pub struct AsyncCancel {
    pub(crate) target: CancelTarget,
    pub(crate) all: bool,
}

impl AsyncCancel {
    /// Cancels the operation submitted with `user_data`.
    pub fn new(user_data: u64) -> AsyncCancel {
        AsyncCancel::matching(CancelTarget::UserData(user_data))
    }

    /// Cancels what `target` matches.
    pub fn matching(target: CancelTarget) -> AsyncCancel {
        AsyncCancel { target, all: false }
    }

    /// Cancels every match rather than the first (`IORING_ASYNC_CANCEL_ALL`).
    #[must_use]
    pub fn all(mut self, all: bool) -> AsyncCancel {
        self.all = all;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::Cancel(self))))
    }
}
