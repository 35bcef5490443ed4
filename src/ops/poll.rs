//! Readiness operations: `PollAdd` (one-shot or multishot), `PollRemove`.

use crate::ops::{Dir, Fd, Op, RingOp};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::io as sys;

/// `IORING_OP_POLL_ADD`: completes when `fd` is ready for any of `events`
/// (`libc::POLLIN`, `libc::POLLOUT`…) with the ready mask as `res`. A
/// multishot poll posts a completion with `F_MORE` each time the
/// descriptor becomes ready (edge-triggered, as io_uring's is) until it is
/// removed or cancelled — except on a regular file or directory, which is
/// always ready: there it completes once, without `F_MORE`, as io_uring's
/// does.
#[derive(Debug, Clone, Copy)]
pub struct PollAdd {
    pub(crate) fd: Fd,
    pub(crate) events: u32,
    pub(crate) multishot: bool,
}

impl PollAdd {
    /// Waits for `events` on `fd`.
    pub fn new(fd: impl Into<Fd>, events: u32) -> PollAdd {
        PollAdd {
            fd: fd.into(),
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
        Sqe::new(Op::Ring(Box::new(RingOp::Poll(self))))
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
        Sqe::new(Op::Ring(Box::new(RingOp::PollRemove(self))))
    }
}

impl PollAdd {
    /// Its ready events now: the mask (0 when not ready), or `-EBADF` for
    /// a descriptor that is not open.
    pub(crate) fn ready(&self) -> Result<u32, Errno> {
        // poll(2) skips a negative descriptor rather than flag it.
        if self.fd.number() < 0 {
            return Err(Errno::EBADF);
        }
        let revents = sys::poll_now(self.fd.number(), self.events as i16 | sys::POLL_RDHUP)? as u32;
        if revents & libc::POLLNVAL as u32 != 0 {
            return Err(Errno::EBADF);
        }
        // poll(2) always reports errors and hang-ups; io_uring also always
        // reports a peer's shutdown (POLLRDHUP, where it exists).
        let always = (libc::POLLERR | libc::POLLHUP | sys::POLL_RDHUP) as u16 as u32;
        Ok(revents & (self.events | always))
    }

    /// The directions its mask waits on.
    pub(crate) fn dirs(&self) -> [Option<Dir>; 2] {
        let read = (libc::POLLIN | libc::POLLPRI | libc::POLLRDNORM | libc::POLLRDBAND) as u32;
        let write = (libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND) as u32;
        let r = (self.events & read != 0).then_some(Dir::Read);
        let w = (self.events & write != 0).then_some(Dir::Write);
        // A poll for neither (only errors or hang-up) waits on the read
        // side, where kqueue reports EOF.
        if r.is_none() && w.is_none() {
            [Some(Dir::Read), None]
        } else {
            [r, w]
        }
    }
}
