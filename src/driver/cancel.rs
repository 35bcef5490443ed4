//! Cancelling operations in flight: `AsyncCancel` by `user_data`,
//! descriptor, slot or any; `PollRemove`; `TimeoutRemove`. A cancelled
//! operation completes with `-ECANCELED` and its buffer; one a worker
//! has started can't be stopped.

use std::sync::Arc;

use crate::driver::Driver;
use crate::driver::table::{Entry, OpKey, State};
use crate::ops::{CancelTarget, Op, RingOp};
use crate::proactor::slot::Slot;

impl Driver {
    /// Cancels what `target` matches (not `canceller` itself). Returns the
    /// AsyncCancel's `res`.
    pub(super) fn cancel(&mut self, canceller: OpKey, target: CancelTarget, all: bool) -> i32 {
        // io_uring: IORING_ASYNC_CANCEL_ANY implies ALL.
        let all = all || target == CancelTarget::Any;
        let target = match target {
            CancelTarget::Fixed(slot) => match self.files.lookup(slot) {
                Ok(fd) => CancelTarget::Fd(fd),
                Err(e) => return e.res(),
            },
            t => t,
        };
        // io_uring looks the descriptor up first.
        if let CancelTarget::Fd(fd) = target
            && let Err(e) = crate::sys::io::check_open(fd)
        {
            return e.res();
        }
        let matches: Vec<OpKey> = self
            .table
            .iter()
            .filter(|&(key, e)| {
                // A link member that has not started is in no list io_uring
                // searches: it can only go with its chain.
                key != canceller
                    && !matches!(e.state, State::Linked)
                    && match target {
                        CancelTarget::UserData(ud) => e.user_data == ud,
                        CancelTarget::Fd(fd) => e.fd == Some(fd),
                        CancelTarget::Any => true,
                        CancelTarget::Fixed(_) => false,
                    }
            })
            .map(|(key, _)| key)
            .collect();
        self.cancel_keys(matches, all)
    }

    /// Cancels the operation whose completions go to `slot` (a dropped
    /// future's, through the inbox). Returns what an AsyncCancel of it
    /// would answer.
    pub(super) fn cancel_slot(&mut self, slot: &Arc<Slot>) -> i32 {
        let found = self
            .table
            .iter()
            .find(|&(_, e)| e.notify.as_ref().is_some_and(|n| Arc::ptr_eq(n, slot)))
            .map(|(key, _)| key);
        self.cancel_keys(found.into_iter().collect(), false)
    }

    /// Cancels `matches` (the first alone unless `all`); the cancel's
    /// `res`.
    fn cancel_keys(&mut self, matches: Vec<OpKey>, all: bool) -> i32 {
        let mut cancelled = 0;
        let mut running = 0;
        // io_uring's cancel of one waitid answers 1 (the count its waitid
        // list search returns), where any other one answers 0.
        let mut counted = false;
        for key in matches {
            if !all && cancelled + running > 0 {
                break;
            }
            // Completing one match can complete others (the rest of its
            // chain, its link timeout): those are already answered.
            let Some(entry) = self.table.get(key) else {
                continue;
            };
            // A file sent to another ring is there, or on its way: the
            // operation waits only for its answer.
            let sent = matches!(entry.op().and_then(Op::ring), Some(RingOp::MsgRing(_)));
            let waitid = entry.op().is_some_and(|op| op.name() == "WaitId");
            if sent {
                running += 1;
            } else if entry.is_running() && self.withdraw(key) {
                // The pool hands it back -ECANCELED, with its buffer.
                cancelled += 1;
            } else if entry.is_running() {
                self.ask_cancel(key);
                running += 1;
            } else if self.finishes_untried(key) {
                // io_uring found it done, or under way: not cancelled here.
            } else {
                counted |= waitid;
                self.cancel_waiting(key);
                cancelled += 1;
            }
        }
        match (all, cancelled, running) {
            // "All" answers the number cancelled, which can be none.
            (true, 0, 0) => 0,
            (false, 0, 0) => -libc::ENOENT,
            (_, 0, _) => -libc::EALREADY,
            (true, n, _) => n,
            (false, _, _) => i32::from(counted),
        }
    }

    /// Removes the poll submitted with `user_data == target`: 0, or
    /// `-ENOENT`.
    pub(super) fn remove_poll(&mut self, target: u64) -> i32 {
        self.remove_matching(|e| {
            e.user_data == target && matches!(e.op().and_then(Op::ring), Some(RingOp::Poll(_)))
        })
    }

    /// Removes the timeout submitted with `user_data == target`: 0, or
    /// `-ENOENT`.
    pub(super) fn remove_timeout(&mut self, target: u64) -> i32 {
        self.remove_matching(|e| {
            e.user_data == target && matches!(e.op().and_then(Op::ring), Some(RingOp::Timeout(_)))
        })
    }

    /// Removes the first operation `pred` matches, completing it with
    /// `-ECANCELED`; the remover's `res` (0, or `-ENOENT`).
    fn remove_matching(&mut self, pred: impl Fn(&Entry) -> bool) -> i32 {
        let found = self
            .table
            .iter()
            .find(|(_, e)| !e.is_running() && pred(e))
            .map(|(key, _)| key);
        match found {
            Some(key) => {
                self.cancel_waiting(key);
                0
            }
            None => -libc::ENOENT,
        }
    }

    /// Ends operation `key` with `-ECANCELED` as a cancel would; one not
    /// started yet (waiting for its chain) goes with its chain.
    pub(super) fn fail_in_flight(&mut self, key: OpKey) {
        match self.table.get(key).map(|e| (&e.state, e.is_running())) {
            None | Some((State::Linked, _)) => {}
            Some((_, true)) => {
                if !self.withdraw(key) {
                    self.ask_cancel(key);
                }
            }
            Some((_, false)) => self.cancel_waiting(key),
        }
    }

    /// Withdraws operation `key` from the pool if no worker has started it.
    pub(super) fn withdraw(&self, key: OpKey) -> bool {
        match self.table.get(key).map(|e| &e.state) {
            Some(State::Running { claim, .. }) => claim.withdraw(),
            _ => false,
        }
    }

    /// Marks a running operation cancelled: if its worker hands it back
    /// to wait for readiness, it ends with -ECANCELED instead.
    pub(super) fn ask_cancel(&mut self, key: OpKey) {
        if let Some(State::Running { cancel_asked, .. }) =
            self.table.get_mut(key).map(|e| &mut e.state)
        {
            *cancel_asked = true;
        }
    }
}
