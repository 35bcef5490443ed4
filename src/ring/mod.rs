//! The ring: the state its queues share, and the ring itself. Its
//! builder and the two ways of driving it (a polling thread, or inline on
//! the caller's thread) are modules of their own.

mod builder;
mod drive;

pub use builder::Builder;
use drive::{close_sq, drive_inline, drive_once};

use std::fmt;
use std::io;
use std::sync::atomic::{self, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::cq::{CompletionQueue, CqInner};
use crate::driver::{Driver, Inbox};
use crate::sq::{Sqe, SubmissionQueue};
use crate::sys::{Kqueue, Waker};

/// How the ring is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// A dedicated polling thread runs the driver (io_uring's SQPOLL); it
    /// spins for `sq_idle` after its last work, then parks in `kevent`.
    /// While jobs are on the blocking pool it yields its CPU between turns
    /// instead of spinning, so that the workers get one.
    PollingThread,
    /// The caller's thread runs the driver inside `submit`,
    /// `submit_and_wait` and the completion queue's waits (io_uring without
    /// SQPOLL): no thread hop at all. A wait with jobs on the blocking pool
    /// spins up to 20 µs for their results before it parks in `kevent`.
    Inline,
}

/// Counters of what the driver did, for tests and benchmarks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) turns: AtomicU64,
    pub(crate) kevent_calls: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) would_block: AtomicU64,
    pub(crate) changes: AtomicU64,
    pub(crate) offloaded: AtomicU64,
}

/// A snapshot of a ring's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Driver turns.
    pub turns: u64,
    /// `kevent` calls the driver made.
    pub kevent_calls: u64,
    /// Wakeup syscalls made to rouse a parked driver.
    pub wakeups: u64,
    /// Times the polling thread parked.
    pub parks: u64,
    /// Completions that went through the overflow list (the CQ was full).
    pub overflowed: u64,
    /// Non-blocking attempts that had to wait for readiness: EAGAIN, a
    /// connect in progress, a `MSG_WAITALL` receive still short.
    pub would_block: u64,
    /// kevent changes the driver submitted (registrations added, re-added,
    /// deleted): on the Linux compat, each is an `epoll_ctl`.
    pub changes: u64,
    /// Operations handed to the blocking pool: regular-file I/O and
    /// whatever carries `SqeFlags::ASYNC`.
    pub offloaded: u64,
}

/// What the queues, the driver and the workers share.
pub(crate) struct Shared {
    /// The submission queue: entries pushed, not yet taken by the driver.
    pub(crate) sq: ArrayQueue<Sqe>,
    /// Set to false at shutdown so no entry is accepted after
    /// the driver's last look at the queue.
    pub(crate) sq_open: RwLock<bool>,
    pub(crate) cq: CqInner,
    cq_capacity: usize,
    pub(crate) kq: Kqueue,
    /// Wakes the driver blocked in `kq`'s `kevent`; its events carry
    /// `WAKE_TOKEN`.
    pub(crate) waker: Waker,
    /// The driver is (about to be) blocked in `kevent` and needs a wakeup.
    parked: AtomicBool,
    /// `submit` calls so far: entries pushed between two calls form one
    /// submission.
    pub(crate) submissions: AtomicU64,
    shutdown: AtomicBool,
    pub(crate) stats: Counters,
    mode: Mode,
    /// The driver, for an inline ring (the polling thread owns it
    /// otherwise).
    inline: Mutex<Option<Driver>>,
    /// Messages from other rings (`MsgRing`), which the driver takes in
    /// its turn.
    pub(crate) inbox: Inbox,
    /// The proactor's types ask for a slot in the file table: the ring
    /// has one, and its builder did not turn them off.
    pub(crate) proactor_files: bool,
}

impl Shared {
    /// Hands a message from another ring to this ring's driver: an inline
    /// ring's driver that nobody is running takes it at once on the
    /// sender's thread (so a file sent to it is installed, and its sender
    /// answered, without waiting for the owner's next call); otherwise it
    /// goes in the inbox and the driver is woken. Hands it back when the
    /// driver has stopped.
    pub(crate) fn send(
        &self,
        message: crate::driver::Message,
    ) -> Result<(), crate::driver::Message> {
        if self.mode == Mode::Inline
            && let Some(mut guard) = self.try_lock_inline()
        {
            return match guard.as_mut() {
                Some(driver) => {
                    driver.receive(message);
                    Ok(())
                }
                None => Err(message),
            };
        }
        self.inbox.push(message)?;
        // A polling thread, or an inline ring's caller parked in `kevent`.
        self.wake();
        Ok(())
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// Ends a submission without running a turn (a future's entry): a
    /// polling thread takes it, woken if parked; an inline ring's next
    /// turn takes it, and a thread blocked in that ring's `kevent` is
    /// woken.
    pub(crate) fn publish(&self) {
        self.submissions.fetch_add(1, Ordering::AcqRel);
        self.wake();
    }

    /// One turn of an inline ring for a thread whose futures wait: returns
    /// after a turn that did work, or once `ready()` (a waker fired), and
    /// waits in `kevent` otherwise. `ESHUTDOWN` once the driver is gone.
    pub(crate) fn drive_until(&self, ready: &dyn Fn() -> bool) -> io::Result<()> {
        let mut guard = self.lock_inline();
        let Some(driver) = guard.as_mut() else {
            return Err(io::Error::from_raw_os_error(libc::ESHUTDOWN));
        };
        if self.shutdown.load(Ordering::SeqCst) {
            // The ring's drop waits for this lock: finish its work here,
            // so every future's operation ends (cancelled).
            close_sq(self);
            driver.shutdown();
            *guard = None;
            return Ok(());
        }
        drive_once(self, driver, None, ready).map(|_| ())
    }

    pub(crate) fn cq_capacity(&self) -> usize {
        self.cq_capacity
    }

    /// Wakes the driver if it is parked: one syscall then, none while it
    /// is awake (io_uring's `IORING_SQ_NEED_WAKEUP`).
    pub(crate) fn wake(&self) {
        // Pairs with the fence in `drive_once`: either the driver sees the
        // work published before this fence, or this sees its park.
        atomic::fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed) && self.parked.swap(false, Ordering::SeqCst) {
            self.force_wake();
        }
    }

    /// Takes back a park announced for a wait that spins first: whether
    /// it was still announced (a wake may have taken it meanwhile).
    pub(crate) fn withdraw_park(&self) -> bool {
        self.parked.swap(false, Ordering::SeqCst)
    }

    /// Announces the park again: from here a wake calls the waker.
    pub(crate) fn announce_park(&self) {
        self.parked.store(true, Ordering::SeqCst);
        // Pairs with the fence in `wake`: either the caller's next look
        // sees the work, or `wake` sees the park.
        atomic::fence(Ordering::SeqCst);
    }

    fn force_wake(&self) {
        self.stats.wakeups.fetch_add(1, Ordering::Relaxed);
        // A failed wake-up can only mean the kqueue is gone, which only
        // happens after the driver has stopped.
        let _ = self.waker.wake(&self.kq);
    }

    pub(crate) fn submit(&self) -> io::Result<()> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(io::Error::from_raw_os_error(libc::ESHUTDOWN));
        }
        // Entries pushed from now on belong to the next submission.
        self.submissions.fetch_add(1, Ordering::AcqRel);
        let was_overflowing = self.cq.backlog() > 0;
        match self.mode {
            Mode::PollingThread => self.wake(),
            Mode::Inline => match self.try_lock_inline() {
                Some(mut guard) => {
                    if let Some(driver) = guard.as_mut() {
                        driver.turn(Some(Duration::ZERO))?;
                    }
                }
                // Another thread is driving, perhaps blocked in kevent.
                None => self.wake(),
            },
        }
        // The driver takes no entry while completions wait in the overflow
        // list. A call that found it so tells the caller to reap first, as
        // io_uring's NODROP answers EBUSY, unless the CQ has room for all
        // of them now (the driver's next turn moves them); the call that
        // caused the overflow has had its entries taken, and succeeds.
        if was_overflowing && self.cq.backlog() > self.cq.room() {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        Ok(())
    }

    /// `submit`, then waits for `want` completions. An inline ring with no
    /// overflow takes the submission in the wait's own turn: one turn, and
    /// one `kevent` call, where a turn of `submit` before the wait's would
    /// make two.
    pub(crate) fn submit_and_wait(&self, want: usize) -> io::Result<()> {
        // The wait turns at least once only if the CQ holds fewer than
        // `want`: otherwise `submit`'s turn takes the entries.
        if self.mode == Mode::Inline && self.cq.len() < want && self.cq.backlog() == 0 {
            if self.shutdown.load(Ordering::Acquire) {
                return Err(io::Error::from_raw_os_error(libc::ESHUTDOWN));
            }
            self.submissions.fetch_add(1, Ordering::AcqRel);
            // Another thread may be driving, blocked in kevent: it takes
            // the entries once woken; this thread waits for the lock.
            self.wake();
            return self.wait_for(want, None).map(|_| ());
        }
        self.submit()?;
        self.wait_for(want, None).map(|_| ())
    }

    /// A consumer took completions: if the driver holds some back because
    /// the CQ was full, it may go on.
    pub(crate) fn cq_drained(&self) {
        if self.cq.backlog() > 0 {
            self.wake();
        }
    }

    /// Waits until `n` completions are queued or `deadline` passes; returns
    /// whether they are. An inline ring is driven by the waiting thread.
    pub(crate) fn wait_for(&self, n: usize, deadline: Option<Instant>) -> io::Result<bool> {
        match self.mode {
            Mode::PollingThread => self.cq.wait_len(n, deadline),
            Mode::Inline => {
                let mut guard = self.lock_inline();
                while self.cq.len() < n {
                    let Some(driver) = guard.as_mut() else {
                        return Err(io::Error::from_raw_os_error(libc::ESHUTDOWN));
                    };
                    if self.shutdown.load(Ordering::SeqCst) {
                        // The ring is being dropped and waits for this
                        // lock: finish its work here, so the completions
                        // this wait is for (cancelled ones included) come.
                        close_sq(self);
                        driver.shutdown();
                        *guard = None;
                        continue;
                    }
                    // The clock only for a wait with a deadline.
                    let timeout = match deadline {
                        Some(d) => match d.checked_duration_since(Instant::now()) {
                            Some(left) if !left.is_zero() => Some(left),
                            _ => return Ok(false),
                        },
                        None => None,
                    };
                    drive_inline(self, driver, timeout, n)?;
                }
                Ok(true)
            }
        }
    }

    fn lock_inline(&self) -> MutexGuard<'_, Option<Driver>> {
        self.inline.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_lock_inline(&self) -> Option<MutexGuard<'_, Option<Driver>>> {
        match self.inline.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }
}

/// An io_uring-style ring over kqueue: a submission queue, a completion
/// queue, and the driver between them.
///
/// A child process forked from the ring's can't use its copy (the ring's
/// threads stay in the parent); dropping it there returns at once.
///
/// ```
/// use kqring::{Ring, ops};
/// let ring = Ring::new(8)?;
/// ring.submission().push(ops::Nop::new().build().user_data(42)).expect("queue full");
/// ring.submission().submit_and_wait(1)?;
/// let cqe = ring.completion().pop().expect("a completion");
/// assert_eq!((cqe.user_data(), cqe.result()), (42, 0));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Ring {
    sq: SubmissionQueue,
    cq: CompletionQueue,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// The process that made the ring: a child forked from it has a copy
    /// of the ring but none of its threads.
    pid: u32,
}

impl Ring {
    /// A ring with `entries` submission slots and the builder's defaults.
    pub fn new(entries: usize) -> io::Result<Ring> {
        Builder::default().sq_entries(entries).build()
    }

    /// A builder with the defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The submission queue (clone it to submit from other threads).
    pub fn submission(&self) -> &SubmissionQueue {
        &self.sq
    }

    /// The completion queue (clone it to consume from other threads).
    pub fn completion(&self) -> &CompletionQueue {
        &self.cq
    }

    /// Clones of both queues.
    pub fn split(&self) -> (SubmissionQueue, CompletionQueue) {
        (self.sq.clone(), self.cq.clone())
    }

    /// Submits and waits until `want` completions are queued.
    pub fn submit_and_wait(&self, want: usize) -> io::Result<()> {
        self.sq.submit_and_wait(want)
    }

    /// How the ring is driven.
    pub fn mode(&self) -> Mode {
        self.shared.mode
    }

    /// A handle that names this ring as the target of a
    /// [`MsgRing`](crate::ops::MsgRing) without keeping it alive.
    pub fn handle(&self) -> RingHandle {
        RingHandle(Arc::downgrade(&self.shared))
    }

    /// The faults planned for this ring's `kevent` calls and workers
    /// (feature `fault-injection`, for tests).
    #[cfg(feature = "fault-injection")]
    pub fn faults(&self) -> &crate::sys::Faults {
        self.shared.kq.faults()
    }

    /// A snapshot of the driver's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.stats;
        Stats {
            turns: c.turns.load(Ordering::Relaxed),
            kevent_calls: c.kevent_calls.load(Ordering::Relaxed),
            wakeups: c.wakeups.load(Ordering::Relaxed),
            parks: c.parks.load(Ordering::Relaxed),
            overflowed: c.overflowed.load(Ordering::Relaxed),
            would_block: c.would_block.load(Ordering::Relaxed),
            changes: c.changes.load(Ordering::Relaxed),
            offloaded: c.offloaded.load(Ordering::Relaxed),
        }
    }
}

/// A ring as the target of a [`MsgRing`](crate::ops::MsgRing): `Clone`,
/// `Send` and `Sync`, and weak — a message to a ring that has been dropped
/// completes with `-EBADF`. [`Ring::handle`] makes one; a `&Ring` converts
/// into one.
#[derive(Clone)]
pub struct RingHandle(pub(crate) Weak<Shared>);

impl From<&Ring> for RingHandle {
    fn from(ring: &Ring) -> RingHandle {
        ring.handle()
    }
}

impl From<&RingHandle> for RingHandle {
    fn from(handle: &RingHandle) -> RingHandle {
        handle.clone()
    }
}

impl fmt::Debug for RingHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingHandle")
            .field("alive", &(self.0.strong_count() > 0))
            .finish()
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("mode", &self.shared.mode)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Ring {
    /// Cancels what is in flight (each operation completes with
    /// `-ECANCELED` and its buffer, for whoever still holds the completion
    /// queue), joins the polling thread and the pool.
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child's copy: its polling thread and workers exist
            // only in the parent, so nothing is joined nor shut down (nor
            // locked: a parent's thread may have held a lock at the fork).
            // Its memory and descriptors go with the child's exit or exec.
            std::mem::forget(self.thread.take());
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        self.shared.shutdown.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(thread) => {
                self.shared.force_wake();
                // The polling thread catches no panic of its own; if it
                // died, there is nothing left to stop.
                let _ = thread.join();
            }
            None => {
                // A thread driving the ring in a wait may be parked in
                // kevent: wake it, and it finishes the shutdown itself.
                self.shared.force_wake();
                close_sq(&self.shared);
                if let Some(mut driver) = self.shared.lock_inline().take() {
                    driver.shutdown();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::{Mode, Ring};
    use crate::ops::Recv;

    /// Receives exactly `len` bytes on `fd` (a full read, never a short
    /// one) and returns them.
    fn recv_exact(ring: &Ring, fd: i32, len: usize, ud: u64) -> Vec<u8> {
        let (sq, cq) = ring.split();
        sq.push(Recv::new(fd, Vec::with_capacity(len)).build().user_data(ud))
            .expect("room");
        sq.submit().expect("submit");
        let mut c = cq.wait().expect("completion");
        assert_eq!((c.user_data(), c.result()), (ud, len as i32));
        c.take_buf::<Vec<u8>>().expect("the buffer")
    }

    /// With counted read events, a receive that took every byte its event
    /// counted lets the next one wait untried (no EAGAIN per message),
    /// and never makes it miss data that was there or came later.
    #[test]
    #[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
    fn a_read_of_all_an_event_counted_lets_the_next_wait_untried() {
        for mode in [Mode::Inline, Mode::PollingThread] {
            for counted in [false, true] {
                let mut b = Ring::builder().mode(mode).sq_entries(8);
                if counted {
                    b = b.counted_events();
                }
                let ring = b.build().expect("ring");
                let (mut peer, end) = UnixStream::pair().expect("pair");
                end.set_nonblocking(true).expect("non-blocking");
                let fd = end.as_raw_fd();
                const ROUNDS: u64 = 20;
                let before = ring.stats().would_block;
                for round in 0..ROUNDS {
                    let msg = format!("request {round:02}");
                    // The receive waits first; the message comes after.
                    let (sq, cq) = ring.split();
                    sq.push(
                        Recv::new(fd, Vec::with_capacity(msg.len()))
                            .build()
                            .user_data(round),
                    )
                    .expect("room");
                    sq.submit().expect("submit");
                    peer.write_all(msg.as_bytes()).expect("write");
                    let mut c = cq.wait().expect("completion");
                    assert_eq!((c.user_data(), c.result()), (round, msg.len() as i32));
                    assert_eq!(c.take_buf::<Vec<u8>>().expect("buf"), msg.as_bytes());
                }
                let eagain = ring.stats().would_block - before;
                if counted {
                    assert!(eagain <= 2, "{mode:?}: {eagain} EAGAINs in {ROUNDS} rounds");
                } else if mode == Mode::Inline {
                    // Without counts each full read's successor tries and
                    // finds nothing (inline, the receive always starts
                    // before its message comes; a polling thread may start
                    // it after).
                    assert!(eagain >= ROUNDS - 2, "{eagain} EAGAINs uncounted");
                }
                // Two messages at once: the first full read leaves the
                // second, which its event counted, to be read at once.
                peer.write_all(b"first-msgsecond-ms").expect("write");
                assert_eq!(recv_exact(&ring, fd, 9, 100), b"first-msg");
                assert_eq!(recv_exact(&ring, fd, 9, 101), b"second-ms");
                // Data that comes after a read took all its event counted.
                for round in 0..5u64 {
                    peer.write_all(b"abc").expect("write");
                    assert_eq!(recv_exact(&ring, fd, 3, 200 + round), b"abc");
                }
            }
        }
    }
}
