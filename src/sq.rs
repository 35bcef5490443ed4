//! The submission queue and its entries.

use std::fmt;
use std::io;
use std::ops::BitOr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::ops::Op;
use crate::ring::Shared;

/// Submission flags, with io_uring's meaning.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SqeFlags(u8);

impl SqeFlags {
    /// No flag.
    pub const NONE: SqeFlags = SqeFlags(0);
    /// `IOSQE_FIXED_FILE`: the entry's descriptor is a slot of the ring's
    /// file table. Operations given a [`Fixed`](crate::ops::Fixed) set it.
    pub const FIXED_FILE: SqeFlags = SqeFlags(1 << 0);
    /// `IOSQE_IO_DRAIN`: start only after every earlier entry completed.
    pub const IO_DRAIN: SqeFlags = SqeFlags(1 << 1);
    /// `IOSQE_IO_LINK`: the next entry starts only after this one succeeds.
    pub const IO_LINK: SqeFlags = SqeFlags(1 << 2);
    /// `IOSQE_IO_HARDLINK`: like `IO_LINK`, but the chain goes on after a
    /// failure.
    pub const IO_HARDLINK: SqeFlags = SqeFlags(1 << 3);
    /// `IOSQE_ASYNC`: run on the blocking pool rather than trying inline.
    pub const ASYNC: SqeFlags = SqeFlags(1 << 4);
    /// `IOSQE_BUFFER_SELECT`: take the buffer from a provided group.
    pub const BUFFER_SELECT: SqeFlags = SqeFlags(1 << 5);
    /// `IOSQE_CQE_SKIP_SUCCESS`: post no completion on success.
    pub const CQE_SKIP_SUCCESS: SqeFlags = SqeFlags(1 << 6);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: SqeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits (io_uring's `IOSQE_*` values).
    pub const fn bits(self) -> u8 {
        self.0
    }
}

impl BitOr for SqeFlags {
    type Output = SqeFlags;
    fn bitor(self, rhs: SqeFlags) -> SqeFlags {
        SqeFlags(self.0 | rhs.0)
    }
}

impl fmt::Debug for SqeFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SqeFlags({:#04x})", self.0)
    }
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
}

impl Sqe {
    pub(crate) fn new(op: Op) -> Sqe {
        let flags = if op.uses_fixed_file() {
            SqeFlags::FIXED_FILE
        } else {
            SqeFlags::NONE
        };
        Sqe {
            op,
            user_data: 0,
            flags,
            batch: 0,
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
        self.flags = self.flags | flags;
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
    /// Queues `sqe`. When the queue is full the entry is handed back: this
    /// never blocks and never drops.
    /// After the ring is dropped every entry is handed back.
    pub fn push(&self, mut sqe: Sqe) -> Result<(), Sqe> {
        // Held across the send: the driver's final look at the queue comes
        // after it closes the queue under the write lock, so no accepted
        // entry can slip in unseen.
        let open = self
            .shared
            .sq_open
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if !*open {
            return Err(sqe);
        }
        sqe.batch = self.shared.submissions.load(Ordering::Acquire);
        self.shared.sq_tx.try_send(sqe).map_err(|e| e.into_inner())
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
        self.shared.submit()?;
        self.shared.wait_for(want, None).map(|_| ())
    }

    /// Entries queued and not yet taken by the driver.
    pub fn len(&self) -> usize {
        self.shared.sq_tx.len()
    }

    /// Whether no entry waits for the driver.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The queue's capacity (`sq_entries`).
    pub fn capacity(&self) -> usize {
        self.shared.sq_tx.capacity().unwrap_or(usize::MAX)
    }
}

impl fmt::Debug for SubmissionQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmissionQueue")
            .field("len", &self.len())
            .finish()
    }
}
