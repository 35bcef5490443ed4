//! Messages between rings (`MsgRing`): a ring's inbox, which other rings'
//! drivers fill and its own driver drains in its turn, so its completion
//! queue, its overflow list and its file table are only ever touched by
//! its own driver.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::cq::Cqe;
use crate::driver::Driver;
use crate::driver::table::OpKey;
use crate::ops::msg::Message as Sent;
use crate::ops::{FileSlot, MsgRing, RingOp};
use crate::proactor::registered::Registered;
use crate::proactor::slot::Slot;
use crate::ring::Shared;
use crate::sys::errno::Errno;

/// What one ring's driver sends another.
#[derive(Debug)]
pub(crate) enum Message {
    /// A completion to post.
    Post {
        user_data: u64,
        res: i32,
        flags: u32,
    },
    /// A file for the table; its installation's result goes back to
    /// operation `key` of the ring `reply`.
    File {
        fd: OwnedFd,
        dest: FileSlot,
        user_data: u64,
        skip_cqe: bool,
        reply: Weak<Shared>,
        key: OpKey,
    },
    /// The result of a `File` this ring sent, for its operation `key`.
    Reply { key: OpKey, res: i32 },
    /// A future was dropped: cancel the operation whose completions go to
    /// its slot (an AsyncCancel that a full SQ can't refuse).
    Cancel(Arc<Slot>),
    /// A descriptor a proactor type owned, dropped: closed once what
    /// waits on it has ended and its registrations are deleted.
    Close(OwnedFd),
    /// A proactor type's descriptor for the file table: a duplicate, put
    /// into a free slot whose index the driver writes into `to` (or
    /// closed, and `to` marked plain, when the table is full).
    Register { fd: OwnedFd, to: Arc<Registered> },
    /// A proactor type is done with its slot: emptied, if it still holds
    /// the type's duplicate, and the duplicate closed once no operation
    /// holds it — with the turn's other closes, or at once when `now` (a
    /// `close` the type's owner waits for comes next).
    Unregister { reg: Arc<Registered>, now: bool },
}

/// A ring's inbox.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: Mutex<InboxState>,
    /// Something is queued: read without the lock on every turn.
    pending: AtomicBool,
}

#[derive(Debug, Default)]
struct InboxState {
    messages: Vec<Message>,
    /// The driver has stopped: nothing more is taken.
    closed: bool,
}

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `m`; hands it back once the inbox is closed.
    pub(crate) fn push(&self, m: Message) -> Result<(), Message> {
        let mut q = self.lock();
        if q.closed {
            return Err(m);
        }
        q.messages.push(m);
        self.pending.store(true, Ordering::SeqCst);
        Ok(())
    }

    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    fn take(&self, close: bool) -> Vec<Message> {
        let mut q = self.lock();
        q.closed |= close;
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut q.messages)
    }
}

/// Sends `m` to `target`; false when it takes no more (its driver has
/// stopped).
fn send(target: &Shared, m: Message) -> bool {
    target.send(m).is_ok()
}

impl Driver {
    /// Runs a `MsgRing`: its `res`, or `None` while a file's installation
    /// is awaited.
    pub(super) fn send_message(&mut self, key: OpKey, m: &MsgRing) -> Option<i32> {
        let Some(target) = m.target.0.upgrade() else {
            return Some(Errno::EBADF.res());
        };
        let this_ring = Arc::ptr_eq(&target, &self.shared);
        match m.message {
            Sent::Data { res, flags } => {
                // io_uring takes IORING_MSG_RING_CQE_SKIP with a file
                // only.
                if m.skip_target_cqe {
                    return Some(Errno::EINVAL.res());
                }
                if this_ring {
                    // Posted now, so it comes before this operation's own.
                    self.post(Cqe::new(m.user_data, res, flags), true);
                    return Some(0);
                }
                let post = Message::Post {
                    user_data: m.user_data,
                    res,
                    flags,
                };
                Some(if send(&target, post) {
                    0
                } else {
                    Errno::EBADF.res()
                })
            }
            Sent::File { src, dest } => {
                if this_ring {
                    return Some(Errno::EINVAL.res());
                }
                let fd = match self.files.lookup(src).and_then(super::files::dup) {
                    Ok(fd) => fd,
                    Err(e) => return Some(e.res()),
                };
                let file = Message::File {
                    fd,
                    dest,
                    user_data: m.user_data,
                    skip_cqe: m.skip_target_cqe,
                    reply: Arc::downgrade(&self.shared),
                    key,
                };
                if send(&target, file) {
                    None
                } else {
                    Some(Errno::EBADF.res())
                }
            }
        }
    }

    /// Takes the inbox's messages; returns whether there were any.
    pub(super) fn take_messages(&mut self) -> bool {
        if !self.shared.inbox.has_pending() {
            return false;
        }
        let messages = self.shared.inbox.take(false);
        for m in messages {
            self.deliver(m, false);
        }
        true
    }

    /// Takes `m` on the sender's thread (an inline ring nobody drives
    /// now), after what the inbox holds, and moves the completions to the
    /// queue.
    pub(crate) fn receive(&mut self, m: Message) {
        self.take_messages();
        self.deliver(m, false);
        // A descriptor handed over to close goes now, not at the owner's
        // next turn: its peer sees the end at once.
        if !self.retired.is_empty() {
            self.close_retired();
        }
        self.flush();
    }

    /// Closes the inbox (the ring is going away) and delivers what it
    /// held: files are refused with `-EBADF`.
    pub(super) fn close_inbox(&mut self) {
        for m in self.shared.inbox.take(true) {
            self.deliver(m, true);
        }
    }

    fn deliver(&mut self, m: Message, closing: bool) {
        match m {
            Message::Post {
                user_data,
                res,
                flags,
            } => self.post(Cqe::new(user_data, res, flags), true),
            Message::File {
                fd,
                dest,
                user_data,
                skip_cqe,
                reply,
                key,
            } => {
                let res = if closing {
                    Errno::EBADF.res()
                } else {
                    match self.files.install(dest, fd) {
                        Ok((res, replaced)) => {
                            if let Some(old) = replaced {
                                self.retire(old);
                            }
                            if !skip_cqe {
                                self.post(Cqe::new(user_data, res, 0), true);
                            }
                            res
                        }
                        Err(e) => e.res(),
                    }
                };
                // A source that is gone has nobody to tell.
                if let Some(source) = reply.upgrade() {
                    send(&source, Message::Reply { key, res });
                }
            }
            Message::Close(fd) => self.retire(fd),
            Message::Register { fd, to } => {
                // A ring going away takes no file, and a full table none
                // either: `fd` is closed here (by `install` when full).
                if closing {
                    to.set_plain();
                } else {
                    match self.files.install(FileSlot::Alloc, fd) {
                        // `Alloc` takes a free slot: nothing is replaced.
                        Ok((index, replaced)) => {
                            if let Some(old) = replaced {
                                self.retire(old);
                            }
                            let index = index as u32;
                            // The slot was just filled: it has a stamp.
                            match self.files.stamp(index) {
                                Some(stamp) => to.set_slot(index, stamp),
                                None => to.set_plain(),
                            }
                        }
                        Err(_) => to.set_plain(),
                    }
                }
            }
            Message::Unregister { reg, now } => {
                // A slot a raw user emptied or refilled under the type is
                // no longer its to empty.
                if let Some((index, stamp)) = reg.held()
                    && self.files.stamp(index) == Some(stamp)
                    && let Ok(Some(last)) = self.files.remove(index)
                {
                    if now {
                        self.close_now(last);
                    } else {
                        self.retire(last);
                    }
                }
            }
            Message::Cancel(slot) => {
                // Not found: it ended already, or it is still in the SQ,
                // where its start finds the slot abandoned.
                let _ = self.cancel_slot(&slot);
            }
            Message::Reply { key, res } => {
                let awaited = self.table.get(key).is_some_and(|e| {
                    matches!(e.op().and_then(|o| o.ring()), Some(RingOp::MsgRing(_)))
                });
                if awaited {
                    self.complete(key, res);
                }
            }
        }
    }
}
