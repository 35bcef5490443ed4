//! Timeouts: `Timeout` (relative, absolute, with a completion count) and
//! `TimeoutRemove`.

use std::time::Duration;

use crate::ops::{Op, RingOp};
use crate::sq::Sqe;

/// `CLOCK_MONOTONIC` now: the clock [`Timeout::absolute`] measures, the
/// same as io_uring's `IORING_TIMEOUT_ABS`.
pub fn monotonic_now() -> Duration {
    crate::sys::io::monotonic_now()
}

/// `IORING_OP_TIMEOUT`: completes with `-ETIME` (see [`crate::sys::ETIME`]) when the time is up, or
/// with 0 once `count` other completions were posted first.
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    pub(crate) time: Duration,
    pub(crate) count: u32,
    pub(crate) absolute: bool,
}

impl Timeout {
    /// Fires `time` from now.
    pub fn new(time: Duration) -> Timeout {
        Timeout {
            time,
            count: 0,
            absolute: false,
        }
    }

    /// Completes early, with 0, after `count` other completions (io_uring's
    /// `off`). 0 means "only the time".
    #[must_use]
    pub fn count(mut self, count: u32) -> Timeout {
        self.count = count;
        self
    }

    /// Reads the time as a [`monotonic_now`] timestamp rather than from now.
    #[must_use]
    pub fn absolute(mut self, absolute: bool) -> Timeout {
        self.absolute = absolute;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::Timeout(self))))
    }
}

/// `IORING_OP_TIMEOUT_REMOVE`: removes the timeout whose `user_data` is
/// `target`; it completes with `-ECANCELED`, this with 0, or `-ENOENT`
/// when no such timeout is pending.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutRemove {
    pub(crate) target: u64,
}

impl TimeoutRemove {
    /// Removes the timeout submitted with `user_data == target`.
    pub fn new(target: u64) -> TimeoutRemove {
        TimeoutRemove { target }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::TimeoutRemove(self))))
    }
}

/// `IORING_OP_LINK_TIMEOUT`: bounds the operation linked before it (which
/// must carry `IO_LINK` or `IO_HARDLINK`). If the time runs out first, that
/// operation completes with `-ECANCELED` and this with `-ETIME`; if it
/// finishes first, this completes with `-ECANCELED`. Not preceded by a
/// link, it completes with `-EINVAL`.
#[derive(Debug, Clone, Copy)]
pub struct LinkTimeout {
    pub(crate) time: Duration,
    pub(crate) absolute: bool,
}

impl LinkTimeout {
    /// Bounds the previous operation to `time` from when it starts.
    pub fn new(time: Duration) -> LinkTimeout {
        LinkTimeout {
            time,
            absolute: false,
        }
    }

    /// Reads the time as a [`monotonic_now`] timestamp.
    #[must_use]
    pub fn absolute(mut self, absolute: bool) -> LinkTimeout {
        self.absolute = absolute;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::LinkTimeout(self))))
    }
}

/// `IORING_OP_TIMEOUT_REMOVE` with `IORING_TIMEOUT_UPDATE`: gives the
/// pending timeout whose `user_data` is `target` a new time. Completes with
/// 0, or `-ENOENT` when no such timeout is pending.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutUpdate {
    pub(crate) target: u64,
    pub(crate) time: Duration,
    pub(crate) absolute: bool,
}

impl TimeoutUpdate {
    /// Makes timeout `target` fire `time` from now.
    pub fn new(target: u64, time: Duration) -> TimeoutUpdate {
        TimeoutUpdate {
            target,
            time,
            absolute: false,
        }
    }

    /// Reads the time as a [`monotonic_now`] timestamp.
    #[must_use]
    pub fn absolute(mut self, absolute: bool) -> TimeoutUpdate {
        self.absolute = absolute;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::TimeoutUpdate(self))))
    }
}

/// When a timeout given as `time` (relative or absolute) falls due, as an
/// `Instant`; `None` when it is too far away to represent.
pub(crate) fn deadline(
    time: Duration,
    absolute: bool,
    now: std::time::Instant,
) -> Option<std::time::Instant> {
    let from_now = if absolute {
        time.saturating_sub(monotonic_now())
    } else {
        time
    };
    now.checked_add(from_now)
}
