//! Where the driver puts a future's completions: the slot an [`Sqe`]
//! carries as its completion target. The driver fills it and wakes the
//! waker stored in it, on its own thread, in the turn the operation ends —
//! the completion never goes through the completion queue.
//!
//! A slot outlives its future: a future dropped while its operation is in
//! flight marks the slot abandoned and the operation keeps its buffer until
//! the driver hands the completion here, where it is dropped (a descriptor
//! a completion made, an accepted connection, is closed).
//!
//! [`Sqe`]: crate::Sqe

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::cq::Cqe;

/// The completion target of one operation.
pub(crate) struct Slot {
    state: Mutex<State>,
    /// The operation should not run: its future is gone or cancelled it.
    /// The driver reads it when it takes the operation, so a cancel that
    /// overtook its operation still counts.
    cancelled: AtomicBool,
    /// A successful completion's `res` is a descriptor the ring made for
    /// the caller (`Accept`, `Socket`): closed if nobody takes it.
    makes_fd: bool,
}

/// Completions in order: the first in place, so a single-shot
/// operation's one completion needs no allocation.
#[derive(Default)]
struct Queue {
    first: Option<Cqe>,
    rest: VecDeque<Cqe>,
}

impl Queue {
    fn push_back(&mut self, cqe: Cqe) {
        // `first` is only filled when nothing else waits, so it is always
        // the oldest.
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(cqe);
        } else {
            self.rest.push_back(cqe);
        }
    }

    fn pop_front(&mut self) -> Option<Cqe> {
        self.first.take().or_else(|| self.rest.pop_front())
    }
}

#[derive(Default)]
struct State {
    /// Completions not yet taken, oldest first (a multishot operation's
    /// shots; one for any other).
    cqes: Queue,
    waker: Option<Waker>,
    /// The terminal completion (no `F_MORE`) has arrived.
    ended: bool,
    /// Nobody will take the completions: they are dropped as they come.
    abandoned: bool,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("cancelled", &self.is_cancelled())
            .field("ended", &self.has_ended())
            .finish()
    }
}

thread_local! {
    /// Slots of finished operations that nothing else holds, for this
    /// thread's next ones: an operation takes one instead of allocating.
    static SPARE: RefCell<Vec<Arc<Slot>>> = const { RefCell::new(Vec::new()) };
}

/// How many spare slots a thread keeps.
const SPARE_MAX: usize = 32;

impl Slot {
    /// A fresh slot for one operation: a spare one of this thread's if it
    /// has one.
    pub(crate) fn shared(makes_fd: bool) -> Arc<Slot> {
        Slot::shared_waking(makes_fd, None)
    }

    /// A fresh slot, as [`Slot::shared`], that wakes `waker` at its first
    /// completion: stored before anyone else can see the slot, so with no
    /// lock.
    pub(crate) fn shared_waking(makes_fd: bool, waker: Option<&Waker>) -> Arc<Slot> {
        let spare = SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten();
        if let Some(mut slot) = spare
            && let Some(s) = Arc::get_mut(&mut slot)
        {
            s.makes_fd = makes_fd;
            let state = s.state.get_mut().unwrap_or_else(|e| e.into_inner());
            state.waker = waker.cloned();
            return slot;
        }
        let slot = Slot::new(makes_fd);
        if let Some(waker) = waker {
            slot.lock().waker = Some(waker.clone());
        }
        Arc::new(slot)
    }

    /// Keeps a finished operation's slot for the next one, when its
    /// terminal completion has been taken and no one else holds it (not
    /// the driver, not a cancel on its way): then nothing can reach it but
    /// its next operation. Otherwise it is just dropped.
    pub(crate) fn recycle(mut slot: Arc<Slot>) {
        let Some(s) = Arc::get_mut(&mut slot) else {
            return;
        };
        let state = s.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !state.ended || state.cqes.first.is_some() || !state.cqes.rest.is_empty() {
            return;
        }
        // Dropped here, not kept: a waker holds its task.
        let waker = state.waker.take();
        state.ended = false;
        state.abandoned = false;
        *s.cancelled.get_mut() = false;
        drop(waker);
        // A full cache (or one already torn down) hands the slot back to
        // be dropped outside the borrow.
        let _unkept = SPARE.try_with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_MAX {
                spare.push(slot);
                None
            } else {
                Some(slot)
            }
        });
    }

    pub(crate) fn new(makes_fd: bool) -> Slot {
        Slot {
            state: Mutex::new(State::default()),
            cancelled: AtomicBool::new(false),
            makes_fd,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is intact.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a completion and wakes whoever waits (the driver's
    /// [`Slot::deliver`], keeping the slot).
    #[cfg(test)]
    pub(crate) fn complete(&self, cqe: Cqe) {
        if let Some(waker) = self.store(cqe) {
            waker.wake();
        }
    }

    /// The driver's side: takes a completion and wakes whoever waits,
    /// letting go of its hold on the slot first: a task woken on another
    /// thread by a single-shot operation's completion then finds the slot
    /// unshared, and keeps it for its next operation.
    pub(crate) fn deliver(slot: Arc<Slot>, cqe: Cqe) {
        let waker = slot.store(cqe);
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Keeps `cqe` (drops it if abandoned); the waker to wake.
    fn store(&self, cqe: Cqe) -> Option<Waker> {
        let mut state = self.lock();
        if !cqe.is_more() {
            state.ended = true;
        }
        if state.abandoned {
            drop(state);
            self.dispose(cqe);
            return None;
        }
        state.cqes.push_back(cqe);
        state.waker.take()
    }

    /// Takes the oldest completion, or stores the task's waker to be woken
    /// when one comes; `None` once the last has been taken.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Cqe>> {
        let mut state = self.lock();
        if let Some(cqe) = state.cqes.pop_front() {
            return Poll::Ready(Some(cqe));
        }
        if state.ended {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Asks that the operation not run (or stop): the driver checks when
    /// it takes it; a cancel sent after this finds it once taken. Returns
    /// whether it is still in flight.
    pub(crate) fn cancel(&self) -> bool {
        self.cancelled.store(true, Ordering::SeqCst);
        !self.lock().ended
    }

    /// Whether the operation was cancelled or its future dropped.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Whether the terminal completion has arrived (taken or not).
    pub(crate) fn has_ended(&self) -> bool {
        self.lock().ended
    }

    /// The future is gone: what has arrived is dropped now, what comes is
    /// dropped as it comes. Returns whether the operation is still in
    /// flight (a cancel is worth sending).
    pub(crate) fn abandon(&self) -> bool {
        let mut state = self.lock();
        state.abandoned = true;
        self.cancelled.store(true, Ordering::SeqCst);
        state.waker = None;
        let mut arrived = std::mem::take(&mut state.cqes);
        let in_flight = !state.ended;
        drop(state);
        while let Some(cqe) = arrived.pop_front() {
            self.dispose(cqe);
        }
        in_flight
    }

    /// Drops a completion nobody will take, closing the descriptor it
    /// made.
    fn dispose(&self, cqe: Cqe) {
        if self.makes_fd && cqe.result() >= 0 {
            // SAFETY: the driver made this descriptor for this slot's
            // operation and nothing else has seen it.
            drop(unsafe { OwnedFd::from_raw_fd(cqe.result()) });
        }
    }
}

/// The slot's state machine; `.ci/miri` runs them under Miri (leaks and
/// double drops included).
#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The other end of `b` is closed: a read sees the end of the stream
    /// (it would see `WouldBlock` while it is open).
    fn assert_peer_closed(b: &std::os::unix::net::UnixStream) {
        use std::io::Read;
        b.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        assert_eq!((&*b).read(&mut byte).expect("end of stream"), 0);
    }

    #[test]
    fn a_completion_wakes_the_stored_waker_once_and_is_taken_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let slot = Slot::new(false);
        assert!(slot.poll_take(&mut cx).is_pending());
        slot.complete(Cqe::new(0, 7, 0));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(slot.has_ended());
        match slot.poll_take(&mut cx) {
            Poll::Ready(Some(cqe)) => assert_eq!(cqe.result(), 7),
            _ => panic!("the completion was lost"),
        }
        assert!(matches!(slot.poll_take(&mut cx), Poll::Ready(None)));
    }

    /// Counts its drops.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn with_buf(res: i32, flags: u32, drops: &Arc<AtomicUsize>) -> Cqe {
        let mut cqe = Cqe::new(0, res, flags);
        cqe.buf = Some(crate::buf::AnyBuf::new(Tracked(Arc::clone(drops))));
        cqe
    }

    #[test]
    fn abandoning_drops_each_buffer_once_what_arrived_at_once_the_rest_as_it_comes() {
        let drops = Arc::new(AtomicUsize::new(0));
        let slot = Slot::new(false);
        let more = crate::cq::flags::MORE;
        slot.complete(with_buf(1, more, &drops));
        slot.complete(with_buf(2, more, &drops));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the slot holds what arrived"
        );
        assert!(slot.abandon(), "a multishot operation is still in flight");
        assert!(slot.is_cancelled());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        slot.complete(with_buf(3, more, &drops));
        slot.complete(with_buf(-libc::ECANCELED, 0, &drops));
        assert_eq!(drops.load(Ordering::SeqCst), 4);
        assert!(slot.has_ended());
        assert!(!slot.abandon(), "abandoning twice is harmless");
    }

    #[test]
    fn a_cancel_is_seen_without_the_lock_and_leaves_the_completion_to_come() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let slot = Slot::new(false);
        assert!(!slot.is_cancelled());
        assert!(slot.cancel());
        assert!(slot.is_cancelled());
        assert!(slot.poll_take(&mut cx).is_pending());
        slot.complete(Cqe::new(0, -libc::ECANCELED, 0));
        assert!(
            matches!(slot.poll_take(&mut cx), Poll::Ready(Some(c)) if c.result() == -libc::ECANCELED)
        );
        assert!(!slot.cancel(), "nothing in flight once ended");
    }

    #[test]
    fn shots_come_out_in_order() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let slot = Slot::new(false);
        let more = crate::cq::flags::MORE;
        slot.complete(Cqe::new(0, 1, more));
        slot.complete(Cqe::new(0, 2, more));
        let take = |cx: &mut Context<'_>| match slot.poll_take(cx) {
            Poll::Ready(Some(c)) => c.result(),
            other => panic!("no completion: {:?}", other.is_pending()),
        };
        assert_eq!(take(&mut cx), 1);
        slot.complete(Cqe::new(0, 3, more));
        assert_eq!(take(&mut cx), 2);
        slot.complete(Cqe::new(0, 4, 0));
        assert_eq!((take(&mut cx), take(&mut cx)), (3, 4));
        assert!(matches!(slot.poll_take(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_finished_slot_nobody_else_holds_comes_back_clean_for_the_next_operation() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let slot = Slot::shared_waking(true, Some(&waker));
        let ptr = Arc::as_ptr(&slot);
        assert!(slot.cancel(), "in flight until its completion");
        slot.complete(Cqe::new(0, -libc::ECANCELED, 0));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the stored waker woke");
        assert!(matches!(slot.poll_take(&mut cx), Poll::Ready(Some(_))));
        Slot::recycle(slot);
        let again = Slot::shared(false);
        assert_eq!(Arc::as_ptr(&again), ptr, "this thread's spare slot");
        assert!(!again.is_cancelled() && !again.has_ended());
        assert!(!again.makes_fd);
        assert!(again.lock().waker.is_none(), "no task kept alive");
        assert!(again.poll_take(&mut cx).is_pending());
        again.complete(Cqe::new(0, 3, 0));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(matches!(again.poll_take(&mut cx), Poll::Ready(Some(c)) if c.result() == 3));
    }

    #[test]
    fn the_driver_lets_go_of_the_slot_before_it_wakes_the_task() {
        struct Unshared(Arc<std::sync::Mutex<Option<Arc<Slot>>>>, AtomicUsize);
        impl Wake for Unshared {
            fn wake(self: Arc<Self>) {
                let slot = self.0.lock().expect("lock").take().expect("the slot");
                if Arc::strong_count(&slot) == 1 {
                    self.1.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let seen = Arc::new(Unshared(Arc::default(), AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&seen));
        let slot = Slot::shared_waking(false, Some(&waker));
        let driver = Arc::clone(&slot);
        *seen.0.lock().expect("lock") = Some(slot);
        Slot::deliver(driver, Cqe::new(0, 0, 0));
        assert_eq!(seen.1.load(Ordering::SeqCst), 1, "woken once, unshared");
    }

    #[test]
    fn a_slot_still_held_or_not_finished_is_not_kept() {
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        // Every slot stays alive to the end, so no address is reused.
        let mut alive = Vec::new();
        // Held elsewhere (the driver, a cancel on its way).
        let held = Slot::shared(false);
        alive.push(Arc::clone(&held));
        held.complete(Cqe::new(0, 0, 0));
        assert!(held.poll_take(&mut cx).is_ready());
        // Not ended: its operation may still complete into it.
        let pending = Slot::shared(false);
        alive.push(Arc::clone(&pending));
        // Ended with a completion not taken.
        let drops = Arc::new(AtomicUsize::new(0));
        let untaken = Slot::shared(false);
        untaken.complete(with_buf(0, 0, &drops));
        for slot in [held, pending, untaken] {
            Slot::recycle(slot);
        }
        let next = Slot::shared(false);
        assert!(alive.iter().all(|s| !Arc::ptr_eq(s, &next)));
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "the untaken one was dropped, its completion with it"
        );
    }

    #[test]
    fn an_abandoned_slot_closes_the_descriptor_a_completion_made() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let fd = std::os::fd::IntoRawFd::into_raw_fd(a);
        let slot = Slot::new(true);
        assert!(slot.abandon());
        slot.complete(Cqe::new(0, fd, 0));
        assert_peer_closed(&b);
    }

    #[test]
    fn abandoning_after_arrival_drops_what_arrived() {
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let fd = std::os::fd::IntoRawFd::into_raw_fd(a);
        let slot = Slot::new(true);
        slot.complete(Cqe::new(0, fd, 0));
        assert!(
            !slot.abandon(),
            "nothing is in flight after the last completion"
        );
        assert_peer_closed(&b);
    }
}
