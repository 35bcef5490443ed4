//! The submission queue and its entries.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::ops::Op;
use crate::proactor::slot::Slot;
use crate::ring::Shared;

bitflags::bitflags! {
    /// Submission flags, with io_uring's meaning and bit values
    /// (`IOSQE_*`).
    #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
    pub struct SqeFlags: u8 {
        /// `IOSQE_FIXED_FILE`: the entry's descriptor is a slot of the
        /// ring's file table. Operations given a
        /// [`Fixed`](crate::ops::Fixed) set it.
        const FIXED_FILE = 1 << 0;
        /// `IOSQE_IO_DRAIN`: start only after every earlier entry
        /// completed.
        const IO_DRAIN = 1 << 1;
        /// `IOSQE_IO_LINK`: the next entry starts only after this one
        /// succeeds.
        const IO_LINK = 1 << 2;
        /// `IOSQE_IO_HARDLINK`: like `IO_LINK`, but the chain goes on after
        /// a failure.
        const IO_HARDLINK = 1 << 3;
        /// `IOSQE_ASYNC`: run on the blocking pool rather than trying
        /// inline.
        const ASYNC = 1 << 4;
        /// `IOSQE_BUFFER_SELECT`: take the buffer from a provided group.
        const BUFFER_SELECT = 1 << 5;
        /// `IOSQE_CQE_SKIP_SUCCESS`: post no completion on success.
        const CQE_SKIP_SUCCESS = 1 << 6;
    }
}

impl SqeFlags {
    /// No flag.
    pub const NONE: SqeFlags = SqeFlags::empty();
}

/// A submission queue entry: one operation with its owned buffers, its
/// `user_data` and flags. Made by an operation's `build()`.
pub struct Sqe {
    pub(crate) op: Op,
    pub(crate) user_data: u64,
    pub(crate) flags: SqeFlags,
    /// The submission it belongs to (stamped by `push`): a link chain
    /// ends with its submission, as io_uring_enter(2) ends it.
    pub(crate) batch: u64,
    /// Where its completions go instead of the CQ: a future's slot.
    pub(crate) notify: Option<Arc<Slot>>,
}

impl Sqe {
    /// An entry for `op`: with `FIXED_FILE` when its builder was given a
    /// slot of the file table.
    pub(crate) fn new(op: Op) -> Sqe {
        let flags = if op.file().is_some_and(|f| f.is_fixed()) {
            SqeFlags::FIXED_FILE
        } else {
            SqeFlags::NONE
        };
        Sqe {
            op,
            user_data: 0,
            flags,
            batch: 0,
            notify: None,
        }
    }

    /// The completion of an entry that never ran, with `res` and its
    /// buffer back, and where it goes.
    pub(crate) fn into_cqe(self, res: i32) -> (Option<Arc<Slot>>, crate::cq::Cqe) {
        let mut cqe = crate::cq::Cqe::new(self.user_data, res, 0);
        let mut out = crate::ops::Output::default();
        self.op.finish(&mut out);
        cqe.buf = out.buf;
        cqe.extra = out.extra;
        (self.notify, cqe)
    }

    /// Sends the entry's completions to `slot` rather than the CQ.
    pub(crate) fn notify(mut self, slot: Arc<Slot>) -> Sqe {
        self.notify = Some(slot);
        self
    }

    /// Adds `BUFFER_SELECT` when `on`: the operation was built to take a
    /// provided buffer.
    pub(crate) fn select(self, on: bool) -> Sqe {
        if on {
            self.flags(SqeFlags::BUFFER_SELECT)
        } else {
            self
        }
    }

    /// Sets the value the completion carries back.
    #[must_use]
    pub fn user_data(mut self, user_data: u64) -> Sqe {
        self.user_data = user_data;
        self
    }

    /// Adds submission flags to those the entry has (`build()` may have
    /// set some: `BUFFER_SELECT`), as io_uring's `Entry::flags` does.
    #[must_use]
    pub fn flags(mut self, flags: SqeFlags) -> Sqe {
        self.flags |= flags;
        self
    }

    /// Clears every submission flag.
    #[must_use]
    pub fn clear_flags(mut self) -> Sqe {
        self.flags = SqeFlags::NONE;
        self
    }

    /// The `user_data`.
    pub fn get_user_data(&self) -> u64 {
        self.user_data
    }

    /// The flags.
    pub fn get_flags(&self) -> SqeFlags {
        self.flags
    }

    /// The opcode's name (`"Read"`, `"Nop"`…).
    pub fn opcode(&self) -> &'static str {
        self.op.name()
    }
}

impl fmt::Debug for Sqe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sqe")
            .field("op", &self.op.name())
            .field("user_data", &self.user_data)
            .field("flags", &self.flags)
            .finish()
    }
}

/// The producer side of a ring: `Clone + Send + Sync`; many threads may
/// push at once.
#[derive(Clone)]
pub struct SubmissionQueue {
    pub(crate) shared: Arc<Shared>,
}

impl SubmissionQueue {
    /// Queues `sqe`. When the queue is full the entry is handed back in
    /// the error: this never blocks and never drops. After the ring is
    /// dropped every entry is handed back.
    pub fn push(&self, mut sqe: Sqe) -> Result<(), PushError> {
        // Held across the send: the driver's final look at the queue comes
        // after it closes the queue under the write lock, so no accepted
        // entry can slip in unseen.
        let open = self
            .shared
            .sq_open
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if !*open {
            return Err(PushError { sqe, closed: true });
        }
        sqe.batch = self.shared.submissions.load(Ordering::Acquire);
        self.shared
            .sq
            .push(sqe)
            .map_err(|sqe| PushError { sqe, closed: false })
    }

    /// Ends a submission: the entries pushed since the last call form it
    /// (a link chain ends with it, and the blocking-pool work its entries
    /// start may begin). Wakes a parked polling thread (no syscall while it
    /// is awake; a spinning one takes entries as they are pushed, as
    /// SQPOLL does), or runs one driver turn on this thread for an inline
    /// ring. Fails with `EBUSY` while the overflow list holds more
    /// completions than the completion queue has room for: drain it.
    pub fn submit(&self) -> io::Result<()> {
        self.shared.submit()
    }

    /// [`submit`](Self::submit), then waits until at least `want`
    /// completions are queued (an inline ring drives itself meanwhile).
    pub fn submit_and_wait(&self, want: usize) -> io::Result<()> {
        self.shared.submit_and_wait(want)
    }

    /// Entries queued and not yet taken by the driver.
    pub fn len(&self) -> usize {
        self.shared.sq.len()
    }

    /// Whether no entry waits for the driver.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's capacity (`sq_entries`).
    pub fn capacity(&self) -> usize {
        self.shared.sq.capacity()
    }
}

impl fmt::Debug for SubmissionQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionQueue")
            .field("len", &self.len())
            .finish()
    }
}

/// An entry [`SubmissionQueue::push`] could not queue, handed back: the
/// queue was full, or the ring is gone.
pub struct PushError {
    sqe: Sqe,
    closed: bool,
}

impl PushError {
    /// The entry, to push again once there is room.
    pub fn into_inner(self) -> Sqe {
        self.sqe
    }

    /// Whether the ring is gone (no push will succeed again), rather than
    /// its queue full.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

impl fmt::Debug for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushError")
            .field("sqe", &self.sqe)
            .field("closed", &self.closed)
            .finish()
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.closed {
            f.write_str("the ring is gone: the entry was not queued")
        } else {
            f.write_str("the submission queue is full: the entry was not queued")
        }
    }
}

impl std::error::Error for PushError {}

impl From<PushError> for io::Error {
    fn from(e: PushError) -> io::Error {
        let kind = if e.closed {
            io::ErrorKind::BrokenPipe
        } else {
            io::ErrorKind::WouldBlock
        };
        io::Error::new(kind, e.to_string())
    }
}
