//! Timeouts: a heap of deadlines (stale entries are skipped when they
//! come up), the count conditions of `Timeout`s, and `LinkTimeout`s that
//! cancel the operation they bound.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::driver::Driver;
use crate::driver::table::{OpKey, State};
use crate::ops::time::deadline;
use crate::ops::{Op, RingOp, Timeout, TimeoutUpdate};

/// A timeout's count condition: completes once `target` completions have
/// been posted.
struct CountWait {
    target: u64,
    key: OpKey,
}

#[derive(Default)]
pub(super) struct Timers {
    /// Deadlines, with a sequence number that keeps equal ones in the
    /// order they were armed.
    heap: BinaryHeap<Reverse<(Instant, u64, OpKey)>>,
    armed: u64,
    counts: Vec<CountWait>,
}

impl Timers {
    pub(super) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline, which bounds the next wait.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((d, _, _))| *d)
    }

    fn arm(&mut self, at: Instant, key: OpKey) {
        self.armed += 1;
        self.heap.push(Reverse((at, self.armed, key)));
    }
}

impl Driver {
    pub(super) fn start_timeout(&mut self, key: OpKey, t: Timeout) {
        let Some(entry) = self.table.get_mut(key) else {
            return;
        };
        entry.state = State::Timer;
        let at = deadline(t.time, t.absolute, Instant::now());
        entry.links_mut().deadline = at;
        if let Some(at) = at {
            self.timers.arm(at, key);
        }
        if t.count > 0 {
            self.timers.counts.push(CountWait {
                target: self.completions.posted() + u64::from(t.count),
                key,
            });
        }
    }

    /// Gives the pending timeout `u.target` its new time: 0, or `-ENOENT`.
    pub(super) fn update_timeout(&mut self, u: TimeoutUpdate) -> i32 {
        let found = self.table.iter().find(|(_, e)| {
            e.user_data == u.target
                && matches!(e.state, State::Timer)
                && matches!(e.op().and_then(Op::ring), Some(RingOp::Timeout(_)))
        });
        let Some((key, _)) = found else {
            return -libc::ENOENT;
        };
        let at = deadline(u.time, u.absolute, Instant::now());
        if let Some(entry) = self.table.get_mut(key) {
            entry.links_mut().deadline = at;
        }
        if let Some(at) = at {
            self.timers.arm(at, key);
        }
        0
    }

    /// Arms a LinkTimeout: the operation it bounds has started.
    pub(super) fn arm_link_timeout(&mut self, key: OpKey) {
        let Some(entry) = self.table.get_mut(key) else {
            return;
        };
        let Some(RingOp::LinkTimeout(t)) = entry.op().and_then(Op::ring) else {
            return;
        };
        let at = deadline(t.time, t.absolute, Instant::now());
        entry.links_mut().deadline = at;
        if let Some(at) = at {
            self.timers.arm(at, key);
        }
    }

    /// Completes the timeouts due at `now`; a LinkTimeout cancels what it
    /// bounds. Returns whether any was due.
    pub(super) fn fire_timers(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&Reverse((at, _, key))) = self.timers.heap.peek() {
            if at > now {
                break;
            }
            self.timers.heap.pop();
            let Some(entry) = self.table.get(key) else {
                continue;
            };
            // Heap entries of a timeout that was updated or completed are
            // stale.
            if !matches!(entry.state, State::Timer) || entry.links().deadline != Some(at) {
                continue;
            }
            any = true;
            match entry.links().bounds {
                Some(target) if self.table.contains(target) => self.expire_link(key, target),
                _ => self.complete(key, -crate::sys::ETIME),
            }
        }
        any
    }

    /// A LinkTimeout `key` ran out before `target` finished.
    fn expire_link(&mut self, key: OpKey, target: OpKey) {
        let running = self.table.get(target).is_some_and(|e| e.is_running());
        if running && !self.withdraw(target) {
            self.ask_cancel(target);
            self.complete(key, -libc::EALREADY);
        } else if running {
            // Withdrawn: the pool hands it back -ECANCELED.
            self.complete(key, -crate::sys::ETIME);
        } else if self.finishes_untried(target) {
            // Done before its timeout, as io_uring's try at issue had it
            // (its end cancelled the timeout, unless it went to the pool).
            self.complete(key, -libc::ECANCELED);
        } else {
            self.complete(key, -crate::sys::ETIME);
            self.cancel_waiting(target);
        }
    }

    /// Completes count-bound timeouts whose count has been reached.
    #[inline]
    pub(super) fn check_counts(&mut self) {
        // Every counted completion asks: the call only with counts armed.
        if !self.timers.counts.is_empty() {
            self.fire_counts();
        }
    }

    fn fire_counts(&mut self) {
        let posted = self.completions.posted();
        let mut due = Vec::new();
        self.timers.counts.retain(|c| {
            let reached = posted >= c.target;
            if reached {
                due.push(c.key);
            }
            !reached
        });
        for key in due {
            if self
                .table
                .get(key)
                .is_some_and(|e| matches!(e.state, State::Timer))
            {
                self.complete(key, 0);
            }
        }
    }
}
