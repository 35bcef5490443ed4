//! Messages between rings: `MsgRing` posts a completion into another
//! ring's completion queue, or sends it a registered file.

use crate::ops::{FileSlot, Fixed, Op, RingOp};
use crate::ring::RingHandle;
use crate::sq::Sqe;

/// `IORING_OP_MSG_RING`: for rings that talk to each other (a ring per
/// core). The target ring's driver delivers the message in its own turn
/// and wakes if it is parked; a target that is gone (dropped) is
/// `-EBADF`.
///
/// - [`MsgRing::data`] (`IORING_MSG_DATA`): the target gets a completion
///   with the given `user_data` and `res` (and flags, with
///   [`flags`](MsgRing::flags)); this operation completes with 0 once
///   the message is in the target's inbox. A ring may message itself: the
///   target's completion then comes before this one's, as in io_uring.
/// - [`MsgRing::send_fd`] (`IORING_MSG_SEND_FD`): the file in slot `src`
///   of this ring's table goes into the target's table at `dest` (the
///   source keeps its own); the target gets a completion with
///   `user_data` and the slot's `res` (0, or the slot `FileSlot::Alloc`
///   chose), and this operation completes with the same `res` once the
///   target has installed it — or with the target's error: `-ENXIO` (no
///   table), `-EINVAL` (a slot past its end, or the target is this very
///   ring), `-ENFILE` (no free slot). An empty `src` is `-EBADF`. Once
///   sent, it can't be cancelled (`-EALREADY`).
///
/// [`skip_target_cqe`](MsgRing::skip_target_cqe) is
/// `IORING_MSG_RING_CQE_SKIP`: the target posts nothing for a file it
/// installs; as in io_uring, a data message with it is `-EINVAL`.
///
/// ```
/// use kqring::{Ring, ops};
/// let (a, b) = (Ring::new(4)?, Ring::new(4)?);
/// a.submission().push(ops::MsgRing::data(&b, 42, 7).build().user_data(1))?;
/// a.submit_and_wait(1)?;
/// assert_eq!(a.completion().pop().map(|c| c.result()), Some(0));
/// let got = b.completion().wait()?;
/// assert_eq!((got.user_data(), got.result()), (7, 42));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MsgRing {
    pub(crate) target: RingHandle,
    pub(crate) message: Message,
    pub(crate) user_data: u64,
    pub(crate) skip_target_cqe: bool,
}

/// What a `MsgRing` sends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Message {
    Data { res: i32, flags: u32 },
    File { src: u32, dest: FileSlot },
}

impl MsgRing {
    /// Posts a completion with `user_data` and `res` into `target`'s
    /// queue.
    pub fn data(target: impl Into<RingHandle>, res: i32, user_data: u64) -> MsgRing {
        MsgRing {
            target: target.into(),
            message: Message::Data { res, flags: 0 },
            user_data,
            skip_target_cqe: false,
        }
    }

    /// Sends the registered file `src` into slot `dest` of `target`'s
    /// file table; the target's completion carries `user_data`.
    pub fn send_fd(
        target: impl Into<RingHandle>,
        src: Fixed,
        dest: FileSlot,
        user_data: u64,
    ) -> MsgRing {
        MsgRing {
            target: target.into(),
            message: Message::File { src: src.0, dest },
            user_data,
            skip_target_cqe: false,
        }
    }

    /// The flags of the target's completion
    /// (`IORING_MSG_RING_FLAGS_PASS`); for a data message only.
    #[must_use]
    pub fn flags(mut self, flags: u32) -> MsgRing {
        if let Message::Data { flags: f, .. } = &mut self.message {
            *f = flags;
        }
        self
    }

    /// Posts nothing in the target (`IORING_MSG_RING_CQE_SKIP`); for a
    /// file only (a data message with it is `-EINVAL`).
    #[must_use]
    pub fn skip_target_cqe(mut self, skip: bool) -> MsgRing {
        self.skip_target_cqe = skip;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::MsgRing(self))))
    }
}
