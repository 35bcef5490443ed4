//! A proactor type's slot in the ring's file table.
//!
//! The type keeps its own descriptor, and the slot holds a duplicate of
//! it (the same open file), which only the ring can close: operations on
//! the slot find their readiness registration still their own after an
//! idle spell, with no change to re-add it. The type asks for the slot
//! when it is made (a message to the driver, which puts the duplicate in
//! the first free slot) and gives it back when dropped or converted into
//! a plain descriptor. Until the driver has answered, and for good when
//! the table is full or absent, its operations use its descriptor, which
//! names the same file.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::driver::Message;
use crate::proactor::Proactor;

/// Not answered yet.
const PENDING: u32 = u32::MAX;
/// No slot: the table was full, or the ring is gone.
const PLAIN: u32 = u32::MAX - 1;

/// The driver's answer to a type's request for a slot. Written by the
/// driver only; read by the type on each operation.
#[derive(Debug)]
pub(crate) struct Registered {
    index: AtomicU32,
    /// The installation that put the duplicate in the slot: the slot is
    /// the type's while its file's stamp is this one (a raw user may have
    /// emptied and refilled it).
    stamp: AtomicU64,
}

impl Registered {
    /// The slot, once the driver has put the duplicate there.
    pub(crate) fn slot(&self) -> Option<u32> {
        match self.index.load(Ordering::Acquire) {
            PENDING | PLAIN => None,
            i => Some(i),
        }
    }

    /// The slot and the stamp of the duplicate's installation there.
    pub(crate) fn held(&self) -> Option<(u32, u64)> {
        self.slot().map(|i| (i, self.stamp.load(Ordering::Relaxed)))
    }

    /// The driver put the duplicate in slot `index`, by installation
    /// `stamp`.
    pub(crate) fn set_slot(&self, index: u32, stamp: u64) {
        self.stamp.store(stamp, Ordering::Relaxed);
        self.index.store(index, Ordering::Release);
    }

    /// The driver had no slot for it.
    pub(crate) fn set_plain(&self) {
        self.index.store(PLAIN, Ordering::Release);
    }
}

impl Proactor {
    /// Asks the driver for a slot holding a duplicate of `fd`; `None` when
    /// the ring has no file table, or no duplicate could be made (then
    /// the type works on `fd` itself, as without a table).
    pub(crate) fn register(&self, fd: &OwnedFd) -> Option<Arc<Registered>> {
        if !self.shared().proactor_files {
            return None;
        }
        let copy = crate::driver::dup(fd.as_raw_fd()).ok()?;
        let to = Arc::new(Registered {
            index: AtomicU32::new(PENDING),
            stamp: AtomicU64::new(0),
        });
        let message = Message::Register {
            fd: copy,
            to: Arc::clone(&to),
        };
        // A driver that is gone has no table: the copy is closed here.
        self.shared().send(message).ok()?;
        Some(to)
    }

    /// Gives the slot back; a driver that is gone has emptied its table.
    /// `now`: the duplicate closes as the driver takes the message (when
    /// no operation holds it), before any entry pushed after this call
    /// runs.
    pub(crate) fn unregister(&self, reg: Arc<Registered>, now: bool) {
        let _ = self.shared().send(Message::Unregister { reg, now });
    }
}
