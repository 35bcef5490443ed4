//! kqring's own executor of one future, so a program needs no executor
//! crate: it polls the future on the calling thread and, while it is
//! pending, turns an inline ring (its `kevent` call is where the thread
//! waits) or parks until a waker fires (a polling-thread ring's futures
//! are completed by its thread).

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::proactor::Proactor;
use crate::ring::{Mode, Shared};

thread_local! {
    /// The `Signal` of the `block_on` running on this thread (the
    /// innermost), null when none.
    static RUNNING: Cell<*const Signal> = const { Cell::new(std::ptr::null()) };
}

/// What a `block_on` waker wakes: the flag its loop checks, its thread,
/// and an inline ring's driver, which may be blocked in `kevent` on this
/// or another thread.
struct Signal {
    woken: AtomicBool,
    thread: Thread,
    /// Weak: a waker kept by a slot in the driver must not keep the ring's
    /// state alive.
    inline: Option<Weak<Shared>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        // On the owner's thread the wake comes from its own poll or turn,
        // which looks at the flag next: no syscall.
        if RUNNING.get() == Arc::as_ptr(self) {
            return;
        }
        if let Some(shared) = self.inline.as_ref().and_then(Weak::upgrade) {
            shared.wake();
        }
        self.thread.unpark();
    }
}

impl Signal {
    /// Waits until woken: turning the inline ring (`shared`, the
    /// proactor's own: no upgrade of the weak reference per wait), or
    /// parked.
    fn wait(&self, shared: &Shared) {
        if self.inline.is_some() {
            loop {
                // At least one turn between polls, even when a waker fired
                // already: a future that found the SQ full woke itself and
                // only a turn makes room.
                if shared
                    .drive_until(&|| self.woken.load(Ordering::SeqCst))
                    .is_err()
                {
                    // The driver is gone (the ring was dropped): its
                    // futures are complete; anything else wakes the thread.
                    break;
                }
                if self.woken.swap(false, Ordering::SeqCst) {
                    return;
                }
            }
        }
        while !self.woken.swap(false, Ordering::SeqCst) {
            thread::park();
        }
    }
}

/// Puts back the mark of the `block_on` this one is nested in.
struct Restore(*const Signal);

impl Drop for Restore {
    fn drop(&mut self) {
        RUNNING.set(self.0);
    }
}

impl Proactor {
    /// Runs `future` to completion on this thread and returns its output.
    ///
    /// On an inline ring this thread drives the ring while the future is
    /// pending; on a polling-thread ring it sleeps until woken. Other
    /// futures (a channel, a timer of another library) work too: their
    /// wakers end the wait.
    ///
    /// ```
    /// let ring = kqring::Ring::builder().inline().build()?;
    /// let io = ring.proactor();
    /// io.block_on(io.sleep(std::time::Duration::from_millis(1)))?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let shared = self.shared();
        let inline = (shared.mode() == Mode::Inline).then(|| Arc::downgrade(shared));
        let signal = Arc::new(Signal {
            woken: AtomicBool::new(false),
            thread: thread::current(),
            inline,
        });
        let outer = RUNNING.replace(Arc::as_ptr(&signal));
        // Restores the outer block_on's mark however this one ends.
        let _restore = Restore(outer);
        let waker = Waker::from(Arc::clone(&signal));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            signal.wait(shared);
        }
    }
}
