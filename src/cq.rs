//! The completion queue: results, with their owned buffers, in the order
//! the driver posted them.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::buf::{AnyBuf, BufError};
use crate::ops::WaitInfo;
use crate::ring::Shared;
use crate::sys::net::SockAddr;
use crate::sys::stat::Stat;

/// Completion flags, with io_uring's bit values.
pub mod flags {
    /// `IORING_CQE_F_BUFFER`: a provided buffer was used; its id is in the
    /// upper 16 bits of `flags`.
    pub const BUFFER: u32 = 1 << 0;
    /// `IORING_CQE_F_MORE`: a multishot operation will post more
    /// completions.
    pub const MORE: u32 = 1 << 1;
    /// Where the buffer id starts in `flags` (`IORING_CQE_BUFFER_SHIFT`).
    pub const BUFFER_SHIFT: u32 = 16;
}

/// What a completion carries beside its buffer.
#[derive(Debug, Default)]
pub(crate) enum Extra {
    #[default]
    None,
    /// The address an operation received: an accepted connection's peer,
    /// a datagram's sender.
    Addr(Box<SockAddr>),
    /// The descriptors of a `FilesUpdate`, with the slots it chose for
    /// `FileSlot::Alloc` written in.
    Fds(Vec<RawFd>),
    /// The paths a path-taking operation owned, in the order given.
    Paths(Vec<PathBuf>),
    /// A `Statx`'s result and its path.
    Stat(Box<StatOut>),
    /// What `WaitId` found of the child (boxed: `Cqe` stays small).
    Wait(Box<WaitInfo>),
    /// How many deliveries a `Signal` completion stands for.
    Count(u64),
}

/// What a `Statx` hands its completion.
#[derive(Debug)]
pub(crate) struct StatOut {
    /// The status, when it succeeded.
    pub(crate) stat: Option<Stat>,
    /// Its path (none for a descriptor's status).
    pub(crate) path: Option<PathBuf>,
}

/// A completion queue entry: the operation's `user_data`, its result as
/// io_uring gives it (`>= 0`, or `-errno`), flags, and its owned buffer.
pub struct Cqe {
    pub(crate) user_data: u64,
    pub(crate) res: i32,
    pub(crate) flags: u32,
    pub(crate) buf: Option<AnyBuf>,
    pub(crate) extra: Extra,
}

impl Cqe {
    /// A completion with no buffer and nothing else.
    pub(crate) fn new(user_data: u64, res: i32, flags: u32) -> Cqe {
        Cqe {
            user_data,
            res,
            flags,
            buf: None,
            extra: Extra::None,
        }
    }

    /// The `user_data` of the submission.
    pub fn user_data(&self) -> u64 {
        self.user_data
    }

    /// The result, as io_uring's `cqe->res` (and the io-uring crate's
    /// `cqueue::Entry::result`): `>= 0` on success (bytes, a descriptor, a
    /// mask…), `-errno` on failure.
    pub fn result(&self) -> i32 {
        self.res
    }

    /// The flags (see [`flags`]).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The result as an `io::Result`: the count, or the errno as an error.
    pub fn io_result(&self) -> io::Result<u32> {
        if self.res >= 0 {
            Ok(self.res as u32)
        } else {
            Err(io::Error::from_raw_os_error(-self.res))
        }
    }

    /// Whether a multishot operation will post more completions.
    pub fn is_more(&self) -> bool {
        self.flags & flags::MORE != 0
    }

    /// The provided buffer's id, when one was used.
    pub fn buffer_id(&self) -> Option<u16> {
        (self.flags & flags::BUFFER != 0).then_some((self.flags >> flags::BUFFER_SHIFT) as u16)
    }

    /// Takes the operation's buffer back as the type it was given (a
    /// provided buffer is a `BytesMut`; a vectored operation's buffers are
    /// a `Vec` of them):
    ///
    /// ```
    /// # use bytes::BytesMut;
    /// # use kqring::{BufError, Ring, ops};
    /// let ring = Ring::new(4)?;
    /// let (a, b) = std::os::unix::net::UnixStream::pair()?;
    /// # use std::os::fd::AsRawFd;
    /// ring.submission().push(ops::Write::new(a.as_raw_fd(), vec![1u8, 2, 3]).build())?;
    /// ring.submission().submit_and_wait(1)?;
    /// let mut cqe = ring.completion().pop().expect("a completion");
    /// assert!(matches!(cqe.take_buf::<BytesMut>(), Err(BufError::WrongType { .. })));
    /// assert_eq!(cqe.take_buf::<Vec<u8>>()?, [1, 2, 3]);
    /// assert_eq!(cqe.take_buf::<Vec<u8>>(), Err(BufError::Missing));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// Asking for another type leaves the buffer where it is.
    pub fn take_buf<T: 'static>(&mut self) -> Result<T, BufError> {
        let buf = self.buf.take().ok_or(BufError::Missing)?;
        buf.downcast::<T>().map_err(|buf| {
            let err = BufError::WrongType {
                asked: std::any::type_name::<T>(),
                held: buf.type_name(),
            };
            self.buf = Some(buf);
            err
        })
    }

    /// Whether the completion still carries a buffer.
    pub fn has_buf(&self) -> bool {
        self.buf.is_some()
    }

    /// The type of the buffer the completion carries.
    pub fn buf_type(&self) -> Option<&'static str> {
        self.buf.as_ref().map(AnyBuf::type_name)
    }

    /// The address that came with the completion: the peer of a
    /// connection `Accept` took (when asked with `peer_addr`), the sender
    /// of a message `RecvMsg` received.
    pub fn addr(&self) -> Option<&SockAddr> {
        match &self.extra {
            Extra::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// [`addr`](Self::addr) as an IP socket address, when it is one.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        self.addr().and_then(|a| a.as_socket())
    }

    /// Takes the address; `None` after the first call.
    pub fn take_addr(&mut self) -> Option<SockAddr> {
        match std::mem::take(&mut self.extra) {
            Extra::Addr(a) => Some(*a),
            other => {
                self.extra = other;
                None
            }
        }
    }

    /// The descriptors of a `FilesUpdate`, with the slots it chose for
    /// `FileSlot::Alloc` written in (as io_uring writes them into the
    /// caller's array).
    pub fn fds(&self) -> Option<&[RawFd]> {
        match &self.extra {
            Extra::Fds(v) => Some(v),
            _ => None,
        }
    }

    /// A successful `Statx`'s result: the file's status.
    pub fn statx(&self) -> Option<&Stat> {
        match &self.extra {
            Extra::Stat(s) => s.stat.as_ref(),
            _ => None,
        }
    }

    /// What a `WaitId` found of the child: its pid, how it changed
    /// (`CLD_EXITED`…) and its status, as io_uring fills the `siginfo_t`
    /// it is given. `None` for any other completion, and for a `WaitId`
    /// that failed.
    pub fn wait_info(&self) -> Option<&WaitInfo> {
        match &self.extra {
            Extra::Wait(w) => Some(w),
            _ => None,
        }
    }

    /// The paths a path-taking operation (`OpenAt`, `Statx`, `UnlinkAt`,
    /// `RenameAt`, `MkdirAt`, `SymlinkAt`, `LinkAt`) was given, in the
    /// order its constructor takes them, handed back on success, error and
    /// cancellation alike; empty for any other completion, and once taken.
    pub fn paths(&self) -> &[PathBuf] {
        match &self.extra {
            Extra::Paths(v) => v,
            Extra::Stat(s) => s.path.as_slice(),
            _ => &[],
        }
    }

    /// Takes the paths (see [`paths`](Self::paths)).
    pub fn take_paths(&mut self) -> Vec<PathBuf> {
        match &mut self.extra {
            Extra::Paths(v) => std::mem::take(v),
            Extra::Stat(s) => s.path.take().into_iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Takes the first path: a one-path operation's path, a two-path
    /// one's first (`RenameAt`'s and `LinkAt`'s `from`, `SymlinkAt`'s
    /// target); `None` when there is none, and once taken.
    pub fn take_path(&mut self) -> Option<PathBuf> {
        match &mut self.extra {
            Extra::Paths(v) if !v.is_empty() => Some(v.remove(0)),
            Extra::Stat(s) => s.path.take(),
            _ => None,
        }
    }

    /// How many deliveries of its signal a `Signal` completion stands for:
    /// signals sent while none was read coalesce into one completion, and
    /// kqueue counts them (`data`). `None` for any other completion.
    pub fn deliveries(&self) -> Option<u64> {
        match self.extra {
            Extra::Count(n) => Some(n),
            _ => None,
        }
    }
}

impl fmt::Debug for Cqe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cqe")
            .field("user_data", &self.user_data)
            .field("res", &self.res)
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("buf", &self.buf)
            .field("extra", &self.extra)
            .finish()
    }
}

/// How long a waiting consumer spins before it parks: a completion that
/// arrives within this window costs no futex wake on either side.
const SPIN: Duration = Duration::from_micros(20);

/// The ring's completion storage, shared by the driver and consumers.
pub(crate) struct CqInner {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Entries in `queue`, readable without the lock.
    len: AtomicUsize,
    /// Consumers parked on `ready`: the driver notifies only when non-zero.
    sleepers: AtomicUsize,
    capacity: usize,
    /// The driver has stopped: nothing more will be posted, so a wait for
    /// more than is queued ends with ESHUTDOWN instead of never.
    closed: AtomicBool,
    /// Completions left in the driver's overflow list by the last post.
    /// Stored under the queue's lock, so a consumer that took the last
    /// completion posted also sees what was left behind it.
    backlog: AtomicUsize,
}

/// The queued completions, and storage for the next swap.
struct Queue {
    items: VecDeque<Cqe>,
    /// A drained batch's emptied storage: `take_all` hands it back in
    /// exchange for the queue's, so neither side allocates per drain.
    spare: VecDeque<Cqe>,
}

impl CqInner {
    pub(crate) fn new(capacity: usize) -> CqInner {
        CqInner {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(capacity),
                spare: VecDeque::new(),
            }),
            ready: Condvar::new(),
            len: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            capacity,
            closed: AtomicBool::new(false),
            backlog: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A consumer that panicked while holding the lock left the queue
        // intact (no operation on it panics half-way), so carry on.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Moves as many of `pending` (front first) as fit; the rest stay
    /// there, counted in `backlog`.
    pub(crate) fn post(&self, pending: &mut VecDeque<Cqe>) {
        if pending.is_empty() {
            return;
        }
        {
            let q = &mut self.lock().items;
            let room = self.capacity.saturating_sub(q.len());
            let n = room.min(pending.len());
            q.extend(pending.drain(..n));
            self.len.store(q.len(), Ordering::Release);
            self.backlog.store(pending.len(), Ordering::SeqCst);
        }
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.ready.notify_all();
        }
    }

    /// Moves all of `pending` in, past the capacity: for the ring's last
    /// completions, when no later turn would drain an overflow list.
    pub(crate) fn post_all(&self, pending: &mut VecDeque<Cqe>) {
        {
            let q = &mut self.lock().items;
            q.extend(pending.drain(..));
            self.len.store(q.len(), Ordering::Release);
            self.backlog.store(0, Ordering::SeqCst);
        }
        self.ready.notify_all();
    }

    /// Completions waiting in the driver's overflow list.
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(Ordering::SeqCst)
    }

    /// Free entries in the queue now.
    pub(crate) fn room(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// Marks the queue final (the driver's last completions are in) and
    /// wakes every waiting consumer.
    pub(crate) fn close(&self) {
        // Under the lock: a consumer between its check and its wait would
        // otherwise miss the notification.
        let _q = self.lock();
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_all();
    }

    fn pop(&self) -> Option<Cqe> {
        if self.len() == 0 {
            return None;
        }
        let q = &mut self.lock().items;
        let cqe = q.pop_front();
        self.len.store(q.len(), Ordering::Release);
        cqe
    }

    /// Moves every queued entry to the back of `into`, which is empty;
    /// whether there was any.
    fn take_all(&self, into: &mut VecDeque<Cqe>) -> bool {
        if self.len() == 0 {
            return false;
        }
        let mut q = self.lock();
        let q = &mut *q;
        // The queue keeps storage to post into: `into`'s, or the spare's
        // when that is larger (a new batch has none).
        if q.spare.capacity() > into.capacity() {
            std::mem::swap(&mut q.spare, into);
        }
        std::mem::swap(&mut q.items, into);
        self.len.store(0, Ordering::Release);
        !into.is_empty()
    }

    /// Keeps an emptied batch's storage for the next `take_all`.
    fn keep_storage(&self, batch: VecDeque<Cqe>) {
        let mut q = self.lock();
        if batch.capacity() > q.spare.capacity() {
            q.spare = batch;
        }
    }

    /// Puts entries taken by `take_all` and not handed out back at the
    /// front, in order: they are older than any posted since.
    fn put_back(&self, taken: &mut VecDeque<Cqe>) {
        let q = &mut self.lock().items;
        while let Some(cqe) = taken.pop_back() {
            q.push_front(cqe);
        }
        self.len.store(q.len(), Ordering::Release);
    }

    /// Waits until at least `n` entries are queued or `deadline` passes;
    /// returns whether they are, or ESHUTDOWN once the queue is closed
    /// with fewer.
    pub(crate) fn wait_len(&self, n: usize, deadline: Option<Instant>) -> io::Result<bool> {
        // No clock for a wait that is over already.
        if self.len() >= n {
            return Ok(true);
        }
        let spin_until = Instant::now() + SPIN;
        while self.len() < n {
            if Instant::now() >= spin_until || self.closed.load(Ordering::Relaxed) {
                return self.park_until_len(n, deadline);
            }
            std::hint::spin_loop();
        }
        Ok(true)
    }

    fn park_until_len(&self, n: usize, deadline: Option<Instant>) -> io::Result<bool> {
        let mut q = self.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let ok = loop {
            if q.items.len() >= n {
                break Ok(true);
            }
            if self.closed.load(Ordering::SeqCst) {
                break Err(io::Error::from_raw_os_error(libc::ESHUTDOWN));
            }
            match deadline {
                None => q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break Ok(false);
                    }
                    q = self
                        .ready
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        ok
    }
}

/// The consumer side of a ring: `Send + Sync`, cheap to clone; several
/// consumers may take completions concurrently.
#[derive(Clone)]
pub struct CompletionQueue {
    pub(crate) shared: Arc<Shared>,
}

impl CompletionQueue {
    fn inner(&self) -> &CqInner {
        &self.shared.cq
    }

    /// Takes the oldest completion, if any, without waiting.
    pub fn pop(&self) -> Option<Cqe> {
        let cqe = self.inner().pop();
        if cqe.is_some() {
            self.shared.cq_drained();
        }
        cqe
    }

    /// Waits for a completion and takes it. With an inline ring, the
    /// calling thread drives the ring while it waits.
    pub fn wait(&self) -> io::Result<Cqe> {
        loop {
            if let Some(cqe) = self.pop() {
                return Ok(cqe);
            }
            self.shared.wait_for(1, None)?;
        }
    }

    /// Waits up to `timeout` for a completion.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<Cqe>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(cqe) = self.pop() {
                return Ok(Some(cqe));
            }
            if !self.shared.wait_for(1, deadline)? {
                return Ok(self.pop());
            }
        }
    }

    /// Waits until `n` completions have been taken, and returns them in
    /// order.
    pub fn wait_nr(&self, n: usize) -> io::Result<Vec<Cqe>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.wait()?);
        }
        Ok(out)
    }

    /// Completions queued now (some may be taken by another consumer).
    pub fn len(&self) -> usize {
        self.inner().len()
    }

    /// Whether no completion is queued now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An iterator that takes every completion available now, without
    /// waiting.
    pub fn drain(&self) -> Drain<'_> {
        Drain {
            cq: self,
            batch: VecDeque::new(),
        }
    }
}

impl fmt::Debug for CompletionQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionQueue")
            .field("len", &self.len())
            .finish()
    }
}

/// Takes the completions available now; see [`CompletionQueue::drain`].
///
/// It takes what is queued in one go, under one lock, and hands it out one
/// by one; what it still holds when dropped goes back to the front of the
/// queue, in order.
#[derive(Debug)]
pub struct Drain<'a> {
    cq: &'a CompletionQueue,
    batch: VecDeque<Cqe>,
}

impl Iterator for Drain<'_> {
    type Item = Cqe;
    fn next(&mut self) -> Option<Cqe> {
        if self.batch.is_empty() {
            if !self.cq.inner().take_all(&mut self.batch) {
                return None;
            }
            self.cq.shared.cq_drained();
        }
        self.batch.pop_front()
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.cq.inner().put_back(&mut self.batch);
        } else if self.batch.capacity() > 0 {
            self.cq
                .inner()
                .keep_storage(std::mem::take(&mut self.batch));
        }
    }
}
