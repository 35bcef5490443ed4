//! Ending operations and posting their completions: the buffer rides back,
//! the link chain goes on or is cancelled, multishot operations post with
//! `F_MORE`, and what the CQ can't take waits in order in the overflow
//! list — never dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::cq::{Cqe, flags as cqe_flags};
use crate::driver::Driver;
use crate::driver::table::OpKey;
use crate::ops::{IoOp, Op, Output, RingOp, Select};
use crate::proactor::slot::Slot;
use crate::ring::Shared;
use crate::sq::{Sqe, SqeFlags};

/// Completions of this turn not yet in the CQ, and the overflow list when
/// the CQ is full.
#[derive(Default)]
pub(super) struct Completions {
    pending: VecDeque<Cqe>,
    /// Completions for futures' slots, handed over at the flush: they
    /// take no room in the CQ and never overflow.
    direct: Vec<(Arc<Slot>, Cqe)>,
    /// How many of `pending` were left over by the last flush.
    overflow_len: usize,
    /// Completions posted that are not timeouts (what a timeout's count
    /// counts).
    posted: u64,
}

impl Completions {
    /// Whether completions wait to go to the CQ: this turn's, or an
    /// overflow list's.
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Hands the futures' completions to their slots, waking their tasks.
    fn deliver(&mut self) -> bool {
        let any = !self.direct.is_empty();
        for (slot, cqe) in self.direct.drain(..) {
            Slot::deliver(slot, cqe);
        }
        any
    }

    pub(super) fn posted(&self) -> u64 {
        self.posted
    }

    /// Hands everything over past the CQ's capacity: for the ring's last
    /// completions, when no later turn would drain an overflow list.
    pub(super) fn post_all(&mut self, shared: &Shared) {
        self.deliver();
        shared.cq.post_all(&mut self.pending);
    }
}

/// How an operation ends, beyond its result.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Ending {
    /// No CQE: a failed link member that carried `CQE_SKIP_SUCCESS`
    /// cancelled it (io_uring's `REQ_F_SKIP_LINK_CQES`).
    pub(super) quiet: bool,
    /// Cancelled because an earlier link member failed: the decision to
    /// post the rest of the chain was that member's, not this one's.
    pub(super) chained: bool,
}

/// The completion flags for the provided buffer an operation holds.
pub(super) fn buffer_flags(select: Option<&mut Select>) -> u32 {
    match select.and_then(|s| s.picked.as_ref()) {
        Some(&(bid, _)) => cqe_flags::BUFFER | (u32::from(bid) << cqe_flags::BUFFER_SHIFT),
        None => 0,
    }
}

impl Driver {
    /// Ends operation `key` with `res`.
    pub(super) fn complete(&mut self, key: OpKey, res: i32) {
        self.end(key, res, Ending::default());
    }

    /// Ends operation `key` with `res`: its span records the result, its
    /// buffer rides back in the completion, and its link chain goes on or
    /// is cancelled.
    pub(super) fn end(&mut self, key: OpKey, res: i32, ending: Ending) {
        let Some(mut entry) = self.table.remove(key) else {
            return;
        };
        entry.span.record("res", res);
        if entry.holds_file
            && let Some(fd) = entry.fd
            && let Some(last) = self.files.release(fd)
        {
            self.retire(last);
        }
        let mut want = None;
        let mut counts = true;
        // An event operation leaves its registration, however it ends.
        self.event_regs.leave(key, &mut self.changes);
        let mut flags = 0;
        let mut out = Output::default();
        if let Some(mut op) = entry.op.take() {
            counts = !matches!(op.ring(), Some(RingOp::Timeout(_) | RingOp::LinkTimeout(_)));
            if let Op::Io(io) = &op {
                want = io.wanted();
            }
            // A failed operation's provided buffer goes back to its group.
            if res < 0 {
                self.bufs.unpick(op.select());
            }
            flags = buffer_flags(op.select());
            op.finish(&mut out);
        }
        // Built once its parts are known: no empty buffer and extra to drop.
        let cqe = Cqe {
            buf: out.buf,
            extra: out.extra,
            ..Cqe::new(entry.user_data, res, flags)
        };
        if !ending.quiet && (res < 0 || !entry.flags.contains(SqeFlags::CQE_SKIP_SUCCESS)) {
            self.post_to(entry.notify.take(), cqe, counts);
        } else if let Some(slot) = entry.notify.take() {
            // A future waits for its end even when no CQE is posted.
            self.completions.direct.push((slot, cqe));
        }
        // io_uring fails a link on an error, and on a short read or write.
        let short = res >= 0 && want.is_some_and(|w| (res as usize) < w);
        // A member cancelled for an earlier one's failure passes the
        // failure on, hard link or not: the whole rest of the chain ends.
        let failed =
            (res < 0 || short) && (ending.chained || !entry.flags.contains(SqeFlags::IO_HARDLINK));
        // A failure of an entry with CQE_SKIP_SUCCESS posts its own CQE
        // but none for the members it cancels; a quiet member passes that
        // on.
        let quiet_rest = failed
            && if ending.chained {
                ending.quiet
            } else {
                entry.flags.contains(SqeFlags::CQE_SKIP_SUCCESS)
            };
        let links = entry.links();
        if let Some(lt) = links.link_timeout {
            // The operation finished before its LinkTimeout.
            let quiet = Ending {
                quiet: ending.quiet,
                chained: false,
            };
            self.end(lt, -libc::ECANCELED, quiet);
        }
        if let Some(next) = links.next
            && self.table.contains(next)
        {
            if failed {
                let rest = Ending {
                    quiet: quiet_rest,
                    chained: true,
                };
                self.end(next, -libc::ECANCELED, rest);
            } else {
                self.start(next);
            }
        }
        self.chains.finished(key, failed, quiet_rest);
    }

    /// Posts a completion with `F_MORE` for a multishot operation that
    /// stays in flight.
    pub(super) fn post_more(&mut self, key: OpKey, res: i32) {
        if let Some(entry) = self.table.get(key) {
            let cqe = Cqe::new(entry.user_data, res, cqe_flags::MORE);
            self.post_to(entry.notify.clone(), cqe, true);
        }
    }

    /// Posts a completion with `F_MORE` that carries `extra` (a signal's
    /// delivery count).
    pub(super) fn post_more_with(&mut self, key: OpKey, res: i32, extra: crate::cq::Extra) {
        if let Some(entry) = self.table.get(key) {
            let mut cqe = Cqe::new(entry.user_data, res, cqe_flags::MORE);
            cqe.extra = extra;
            self.post_to(entry.notify.clone(), cqe, true);
        }
    }

    /// Posts a multishot operation's completion with `F_MORE`, with the
    /// buffer and address of this shot.
    pub(super) fn post_shot(&mut self, key: OpKey, op: &mut dyn IoOp, res: i32) {
        let Some(entry) = self.table.get(key) else {
            return;
        };
        let mut cqe = Cqe::new(
            entry.user_data,
            res,
            cqe_flags::MORE | buffer_flags(op.select()),
        );
        let notify = entry.notify.clone();
        let mut out = Output::default();
        op.take_shot(&mut out);
        cqe.buf = out.buf;
        cqe.extra = out.extra;
        self.post_to(notify, cqe, true);
    }

    /// An entry taken during shutdown completes as cancelled without
    /// running, its buffer back.
    pub(super) fn post_cancelled(&mut self, sqe: Sqe) {
        let (notify, cqe) = sqe.into_cqe(-libc::ECANCELED);
        self.post_to(notify, cqe, true);
    }

    pub(super) fn post(&mut self, cqe: Cqe, counts: bool) {
        self.post_to(None, cqe, counts);
    }

    /// Posts `cqe` to the CQ, or to a future's slot when the operation has
    /// one: the slot is filled at the flush, not decoded by anyone from
    /// the CQ.
    fn post_to(&mut self, notify: Option<Arc<Slot>>, cqe: Cqe, counts: bool) {
        match notify {
            Some(slot) => self.completions.direct.push((slot, cqe)),
            None => self.completions.pending.push_back(cqe),
        }
        if counts {
            self.completions.posted += 1;
            self.check_counts();
        }
    }

    /// Moves this turn's completions into the CQ; what does not fit stays
    /// in order in `pending` (the overflow list). Returns whether anything
    /// moved.
    pub(super) fn flush(&mut self) -> bool {
        let c = &mut self.completions;
        let delivered = c.deliver();
        let before = c.pending.len();
        self.shared.cq.post(&mut c.pending);
        let moved = before - c.pending.len();
        // Entries left over from an earlier flush were counted then.
        let old_left = c.overflow_len.saturating_sub(moved);
        let newly = c.pending.len() - old_left;
        if newly > 0 {
            self.shared
                .stats
                .overflowed
                .fetch_add(newly as u64, Ordering::Relaxed);
        }
        c.overflow_len = c.pending.len();
        moved > 0 || delivered
    }
}
