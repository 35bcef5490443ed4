//! Helpers shared by the kevent semantics suite: expectations on events,
//! change-result checks, descriptor pairs, temp files, blocked signals,
//! blocked children.
//!
//! Everything here is written against `kqring::sys`'s public API only, so
//! that the suite runs unchanged on a real kqueue (FreeBSD, macOS, NetBSD),
//! on the Linux compat and on libkqueue. FreeBSD's kevent(2) is the
//! reference for every expectation.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kqring::sys::{Change, Event, Filter, Flags, Kqueue};
use kqring_test_support::{ScratchPath, tcp_pair, unix_pair};
pub use kqring_test_support::{close_with_reset, fill, set_nonblocking};

/// How long to wait for something that must happen. Generous: a correct
/// backend answers in microseconds, a broken one fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(5);

/// A zero timeout: poll.
pub const NOW: Option<Duration> = Some(Duration::ZERO);

/// Whether the backend under test is the system's libkqueue, which differs
/// from a kernel kqueue in the ways docs/semantics.md lists under "System
/// libkqueue". When it is, prints that `what` is not checked, and why.
pub fn libkqueue_skips(what: &str, why: &str) -> bool {
    let skip = kqring::sys::BACKEND == "libkqueue";
    if skip {
        eprintln!("not checked on libkqueue: {what}: {why}");
    }
    skip
}

/// Why [`libkqueue_skips`] a check that another thread wakes a blocked
/// kevent call.
pub const LIBKQUEUE_HOLDS_ITS_LOCK: &str = "libkqueue holds the kqueue's lock while a kevent \
     call waits: a kevent call from another thread waits for it to return (kqring wakes its \
     driver with sys::Waker, checked by waker_from_another_thread_wakes_a_blocked_kevent)";

/// A new kqueue.
#[track_caller]
pub fn kq() -> Kqueue {
    Kqueue::new().expect("Kqueue::new")
}

/// The `ident` of a descriptor.
pub fn id(fd: &impl AsRawFd) -> usize {
    fd.as_raw_fd() as usize
}

/// The raw number of a descriptor, for `Change::read` and friends.
pub fn raw(fd: &impl AsRawFd) -> RawFd {
    fd.as_raw_fd()
}

// ---------------------------------------------------------------------------
// Expectations on events
// ---------------------------------------------------------------------------

/// What an event's `data` must be.
#[derive(Clone, Copy, Debug)]
pub enum Data {
    /// Exactly this value.
    Exact(i64),
    /// At least this value (room to write, timer expirations).
    AtLeast(i64),
    /// Not specified by kqueue for this event (see the test's comment).
    Any,
}

/// The expected fields of one (non-`EV_ERROR`) event.
///
/// `flags` are checked this way, which is what every real kqueue does:
/// - `EV_EOF` is set exactly when `eof()` was asked for, and `EV_ERROR`
///   never is;
/// - every other bit is an echo of the registration: kqueue copies the
///   registration's kevent into each event, so FreeBSD echoes `EV_ONESHOT`,
///   `EV_CLEAR`, `EV_DISPATCH` and `EV_RECEIPT`, and macOS and libkqueue also
///   keep `EV_ADD`/`EV_ENABLE`. The echo itself is not required (nothing may
///   rely on it), but a bit the registration never had — `EV_DELETE`, or
///   `EV_ONESHOT` on a level-triggered registration — is a bug. The mode
///   bits some filters set on their own are allowed too (see
///   [`implied_flags`]).
#[derive(Clone, Copy, Debug)]
pub struct Want {
    ident: usize,
    filter: Filter,
    registered: Flags,
    token: u64,
    eof: bool,
    fflags: u32,
    fflags_mask: u32,
    data: Data,
}

impl Want {
    /// An event of the registration (`ident`, `filter`) made with the
    /// flags `registered` and the token `token`: by default no EOF, `fflags`
    /// 0 and `data` 0.
    pub fn new(ident: usize, filter: Filter, registered: Flags, token: u64) -> Want {
        Want {
            ident,
            filter,
            registered,
            token,
            eof: false,
            fflags: 0,
            fflags_mask: u32::MAX,
            data: Data::Exact(0),
        }
    }

    /// `EV_EOF` must be set.
    pub fn eof(mut self) -> Want {
        self.eof = true;
        self
    }

    /// `fflags` must be exactly `fflags`.
    pub fn fflags(mut self, fflags: u32) -> Want {
        self.fflags = fflags;
        self.fflags_mask = u32::MAX;
        self
    }

    /// Among the bits of `mask`, exactly those of `fflags` must be set (bits
    /// outside `mask` are not checked).
    pub fn fflags_among(mut self, fflags: u32, mask: u32) -> Want {
        self.fflags = fflags;
        self.fflags_mask = mask;
        self
    }

    /// `data` must be exactly `data`.
    pub fn data(mut self, data: i64) -> Want {
        self.data = Data::Exact(data);
        self
    }

    /// `data` is the room to write, at least `min`. libkqueue reports the
    /// bytes still queued instead (or 0), so it is not checked there.
    pub fn room(self, min: i64) -> Want {
        if libkqueue_skips(
            "EVFILT_WRITE data",
            "libkqueue reports the bytes queued in the send buffer, not the room",
        ) {
            self.any_data()
        } else {
            self.data_at_least(min)
        }
    }

    /// `data` must be at least `min`.
    pub fn data_at_least(mut self, min: i64) -> Want {
        self.data = Data::AtLeast(min);
        self
    }

    /// `data` is not specified for this event.
    pub fn any_data(mut self) -> Want {
        self.data = Data::Any;
        self
    }

    /// Whether `ev` belongs to this registration.
    pub fn matches(&self, ev: &Event) -> bool {
        ev.ident() == self.ident && ev.filter() == self.filter
    }

    /// Asserts every field of `ev`.
    #[track_caller]
    pub fn check(&self, ev: &Event) {
        let ctx = format!("event {ev:?}, expected {self:?}");
        assert_eq!(ev.ident(), self.ident, "ident: {ctx}");
        assert_eq!(ev.filter(), self.filter, "filter: {ctx}");
        assert_eq!(ev.token(), self.token, "token: {ctx}");
        assert!(!ev.is_error(), "EV_ERROR on a readiness event: {ctx}");
        assert_eq!(ev.is_eof(), self.eof, "EV_EOF: {ctx}");
        let allowed = Flags::ADD
            | Flags::ENABLE
            | Flags::RECEIPT
            | implied_flags(self.filter)
            | (self.registered - Flags::DELETE);
        let echo = ev.flags() - Flags::EOF;
        assert_eq!(
            echo - allowed,
            Flags::NONE,
            "flags the registration never had: {ctx}"
        );
        assert_eq!(
            ev.fflags() & self.fflags_mask,
            self.fflags,
            "fflags (mask {:#x}): {ctx}",
            self.fflags_mask
        );
        match self.data {
            Data::Exact(d) => assert_eq!(ev.data(), d, "data: {ctx}"),
            Data::AtLeast(d) => assert!(ev.data() >= d, "data >= {d}: {ctx}"),
            Data::Any => {}
        }
    }
}

/// The flags a filter sets on its registrations by itself, which its events
/// may therefore show: FreeBSD's `filt_timerattach`, `filt_procattach` and
/// `filt_sigattach` set `EV_CLEAR` ("automatically set"), and a process's
/// exit sets `EV_ONESHOT` (with `EV_EOF`) on its EVFILT_PROC registrations.
pub fn implied_flags(filter: Filter) -> Flags {
    if filter == Filter::PROC {
        Flags::CLEAR | Flags::ONESHOT
    } else if filter == Filter::TIMER || filter == Filter::SIGNAL {
        Flags::CLEAR
    } else {
        Flags::NONE
    }
}

/// Asserts that `ev` is the result of `change`: `EV_ERROR` set, `data` the
/// errno (0 for a successful `EV_RECEIPT`), ident, filter and token those
/// of the change.
///
/// FreeBSD returns the result with `flags` exactly `EV_ERROR`; macOS keeps
/// the change's flags and adds `EV_ERROR`. Both are accepted, nothing else.
/// `fflags` is not checked: FreeBSD zeroes it when it creates a knote.
#[track_caller]
pub fn assert_result(ev: &Event, change: &Change, errno: i32) {
    let ctx = format!("result {ev:?} of {change:?}, expected errno {errno}");
    assert!(ev.is_error(), "EV_ERROR not set: {ctx}");
    assert_eq!(ev.ident(), change.ident(), "ident: {ctx}");
    assert_eq!(ev.filter(), change.filter(), "filter: {ctx}");
    assert_eq!(ev.token(), change.get_token(), "token: {ctx}");
    assert_eq!(
        ev.flags() - (change.flags() | Flags::ERROR),
        Flags::NONE,
        "flags: {ctx}"
    );
    assert_eq!(ev.data(), i64::from(errno), "data (errno): {ctx}");
    if errno == 0 {
        assert!(ev.error().is_none(), "error(): {ctx}");
    } else {
        assert_eq!(
            ev.error().and_then(|e| e.raw_os_error()),
            Some(errno),
            "error(): {ctx}"
        );
    }
}

// ---------------------------------------------------------------------------
// Driving the kqueue
// ---------------------------------------------------------------------------

/// Submits `changes`, which must produce change results (a failure or
/// `EV_RECEIPT`), and returns the events. The call must return at once
/// with the results even though the timeout is long.
#[track_caller]
pub fn results(kq: &Kqueue, changes: &[Change]) -> Vec<Event> {
    let mut events = Vec::new();
    let start = Instant::now();
    let n = kq
        .kevent(changes, &mut events, Some(2 * WAIT))
        .expect("kevent");
    let took = start.elapsed();
    assert_eq!(n, events.len(), "kevent's count: {events:?}");
    assert!(
        took < WAIT,
        "kevent waited {took:?} although it had change results to report: {events:?}"
    );
    events
}

/// Applies `changes`, each of which must succeed: every change is sent
/// with `EV_RECEIPT`, and every receipt must say 0. No readiness event is
/// consumed (kqueue returns only the receipts from such a call).
#[track_caller]
pub fn apply(kq: &Kqueue, changes: &[Change]) {
    let changes: Vec<Change> = changes
        .iter()
        .map(|c| c.with_flags(c.flags() | Flags::RECEIPT))
        .collect();
    let events = results(kq, &changes);
    assert_eq!(
        events.len(),
        changes.len(),
        "one receipt per change, and nothing else: {events:?}"
    );
    for (ev, change) in events.iter().zip(&changes) {
        assert_result(ev, change, 0);
    }
}

/// Submits `changes` that must fail with the given errnos (in order), and
/// nothing else.
#[track_caller]
pub fn expect_errors(kq: &Kqueue, changes: &[Change], errnos: &[i32]) {
    assert_eq!(changes.len(), errnos.len());
    let events = results(kq, changes);
    assert_eq!(
        events.len(),
        changes.len(),
        "one result per change: {events:?}"
    );
    for ((ev, change), errno) in events.iter().zip(changes).zip(errnos) {
        assert_result(ev, change, *errno);
    }
}

/// One `kevent` call without changes, waiting up to `timeout`.
#[track_caller]
pub fn wait(kq: &Kqueue, timeout: Duration) -> Vec<Event> {
    let mut events = Vec::with_capacity(16);
    let n = kq.kevent(&[], &mut events, Some(timeout)).expect("kevent");
    assert_eq!(n, events.len(), "kevent's count: {events:?}");
    events
}

/// Polls (zero timeout).
#[track_caller]
pub fn poll(kq: &Kqueue) -> Vec<Event> {
    wait(kq, Duration::ZERO)
}

/// Asserts that nothing is pending.
#[track_caller]
pub fn assert_quiet(kq: &Kqueue) {
    let events = poll(kq);
    assert!(events.is_empty(), "expected no event, got {events:?}");
}

/// Waits for exactly one event (up to [`WAIT`]).
#[track_caller]
pub fn wait_one(kq: &Kqueue) -> Event {
    let start = Instant::now();
    let events = wait(kq, WAIT);
    assert_eq!(
        events.len(),
        1,
        "expected exactly one event within {WAIT:?} (waited {:?}): {events:?}",
        start.elapsed()
    );
    events[0]
}

/// Polls exactly one event, which must already be pending.
#[track_caller]
pub fn poll_one(kq: &Kqueue) -> Event {
    let events = poll(kq);
    assert_eq!(
        events.len(),
        1,
        "expected exactly one pending event: {events:?}"
    );
    events[0]
}

/// Waits (up to [`WAIT`] in all) until an event satisfies `pred`, skipping
/// the others (a level-triggered registration re-reports its earlier state
/// until, say, a TCP FIN arrives).
#[track_caller]
pub fn wait_until(kq: &Kqueue, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no event {what} within {WAIT:?}; last events seen: {:?}",
            &seen[seen.len().saturating_sub(8)..]
        );
        for ev in wait(kq, left) {
            if pred(&ev) {
                return ev;
            }
            seen.push(ev);
        }
    }
}

/// Waits until one event of each registration in `wants` has come (a later
/// event of a registration replaces an earlier one), then returns them in
/// the order of `wants`.
#[track_caller]
pub fn wait_all(kq: &Kqueue, wants: &[Want]) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut got: Vec<Option<Event>> = vec![None; wants.len()];
    while got.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "not every event came within {WAIT:?}: wanted {wants:?}, got {got:?}"
        );
        for ev in wait(kq, left) {
            let i = wants
                .iter()
                .position(|w| w.matches(&ev))
                .unwrap_or_else(|| panic!("unexpected event {ev:?}; wanted {wants:?}"));
            got[i] = Some(ev);
        }
    }
    got.into_iter().map(Option::unwrap).collect()
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

/// The transports EVFILT_READ/EVFILT_WRITE are checked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `socketpair(AF_UNIX, SOCK_STREAM)`.
    SocketPair,
    /// `pipe()`: `rx` is the read end, `tx` the write end.
    Pipe,
    /// A TCP connection over 127.0.0.1 (ephemeral port): `rx` the accepted
    /// socket, `tx` the connecting one.
    Tcp,
}

/// Every transport.
pub const KINDS: [Kind; 3] = [Kind::SocketPair, Kind::Pipe, Kind::Tcp];

/// The transports whose `rx` end can also be written to.
pub const DUPLEX: [Kind; 2] = [Kind::SocketPair, Kind::Tcp];

/// A connected pair `(rx, tx)`: bytes sent on `tx` become readable on `rx`.
/// Both ends are blocking and close-on-exec; TCP ends have `TCP_NODELAY`,
/// so that a second small write leaves at once.
#[track_caller]
pub fn pair(kind: Kind) -> (OwnedFd, OwnedFd) {
    match kind {
        Kind::SocketPair => {
            let (a, b) = unix_pair(false).expect("socketpair");
            (a.into(), b.into())
        }
        Kind::Pipe => pipe(),
        Kind::Tcp => {
            let (client, server) = tcp_pair().expect("TCP connection over 127.0.0.1");
            (server.into(), client.into())
        }
    }
}

/// A blocking, close-on-exec pipe `(read end, write end)`.
#[track_caller]
pub fn pipe() -> (OwnedFd, OwnedFd) {
    kqring_test_support::pipe(false).expect("pipe")
}

/// Writes all of `bytes` to `fd`.
#[track_caller]
pub fn send(fd: &OwnedFd, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid buffer of `rest.len()` bytes.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        assert!(n > 0, "write: {}", io::Error::last_os_error());
        rest = &rest[n as usize..];
    }
}

/// Reads exactly `n` bytes from `fd` (blocking).
#[track_caller]
pub fn recv(fd: &OwnedFd, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        // SAFETY: `buf[got..]` is a valid, writable buffer.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), n - got) };
        assert!(r > 0, "read: {} (returned {r})", io::Error::last_os_error());
        got += r as usize;
    }
    buf
}

/// Reads from the non-blocking `fd` until it would block; returns the count.
#[track_caller]
pub fn drain(fd: &OwnedFd) -> usize {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        // SAFETY: `buf` is a valid, writable buffer.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "read: {err}");
            return total;
        }
        assert!(n > 0, "unexpected EOF while draining {fd:?}");
        total += n as usize;
    }
}

/// A descriptor number that was open and has been closed. Each call gets
/// its own number, chosen high: tests running in parallel get the lowest
/// free numbers, and two callers sharing one number would reopen it behind
/// each other's back.
#[track_caller]
pub fn closed_fd() -> RawFd {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    let floor = (lim.rlim_cur.min(4096) * 3 / 4) as libc::c_int;
    let number = floor + NEXT.fetch_add(1, Ordering::Relaxed) as libc::c_int;
    assert!(
        floor >= 64 && (number as libc::rlim_t) < lim.rlim_cur,
        "RLIMIT_NOFILE too low for this test: {}",
        lim.rlim_cur
    );
    let (r, _w) = pipe();
    // SAFETY: dup2 onto a number no other caller is given; nothing else in
    // the process opens descriptors this high. The duplicate is closed below.
    let fd = unsafe { libc::dup2(r.as_raw_fd(), number) };
    assert_eq!(fd, number, "dup2: {}", io::Error::last_os_error());
    // SAFETY: `fd` is the duplicate we just made and own.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    fd
}

/// A duplicate of `fd` under a new number.
#[track_caller]
pub fn dup(fd: &OwnedFd) -> OwnedFd {
    fd.try_clone().expect("dup")
}

// ---------------------------------------------------------------------------
// Temp files
// ---------------------------------------------------------------------------

/// A file in a scratch directory of its own, open for reading and writing;
/// the directory goes on drop, with the file under whatever name it has
/// then.
#[derive(Debug)]
pub struct TempFile {
    /// Where the file is now (a test that renames it, within its
    /// directory, updates this).
    pub path: PathBuf,
    /// The open file.
    pub file: File,
    _scratch: ScratchPath,
}

impl TempFile {
    /// Creates an empty file named `tag`.
    #[track_caller]
    pub fn new(tag: &str) -> TempFile {
        let scratch = ScratchPath::new(tag).expect("a scratch directory");
        let path = scratch.to_path_buf();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempFile {
            path,
            file,
            _scratch: scratch,
        }
    }

    /// The file's descriptor number.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

// ---------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------

/// A signal blocked in the calling thread for the guard's lifetime.
///
/// Signals are sent to this thread only (`pthread_kill`): on Linux a
/// process-directed signal may go to any thread that does not block it,
/// i.e. to another test. On drop, every pending instance is consumed
/// (`sigwait`) before the old mask is restored, so nothing is ever
/// delivered with its default action. Each test uses its own signal number
/// so that parallel tests never share one.
pub struct BlockedSignal {
    sig: libc::c_int,
    set: libc::sigset_t,
    old: libc::sigset_t,
}

impl BlockedSignal {
    /// Blocks `sig` in this thread.
    #[track_caller]
    pub fn new(sig: libc::c_int) -> BlockedSignal {
        // SAFETY: sigset_t is plain data; the sig* calls initialise and
        // fill it; pthread_sigmask only touches this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            assert_eq!(rc, 0, "pthread_sigmask");
            BlockedSignal { sig, set, old }
        }
    }

    /// Sends the signal to this thread `times` times.
    #[track_caller]
    pub fn raise(&self, times: usize) {
        for _ in 0..times {
            // SAFETY: signals this very thread; the signal is blocked.
            let rc = unsafe { libc::pthread_kill(libc::pthread_self(), self.sig) };
            assert_eq!(rc, 0, "pthread_kill");
        }
    }

    fn pending(&self) -> bool {
        // SAFETY: sigpending fills the set we pass.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut pending);
            assert_eq!(libc::sigpending(&mut pending), 0, "sigpending");
            libc::sigismember(&pending, self.sig) == 1
        }
    }
}

impl Drop for BlockedSignal {
    fn drop(&mut self) {
        // A real kqueue leaves the signal pending (EVFILT_SIGNAL only
        // counts), the Linux compat may have consumed it: take whatever is
        // left. sigwait returns at once for a pending signal.
        while self.pending() {
            let mut got = 0;
            // SAFETY: `set` holds our (blocked, pending) signal.
            unsafe { libc::sigwait(&self.set, &mut got) };
        }
        // SAFETY: restores this thread's previous mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// A child running `sh -c script` with its stdin piped to us, so that it
/// stays alive (blocked reading) until the test lets it go: no race between
/// its exit and the registration.
#[track_caller]
pub fn blocked_child(script: &str) -> Child {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn /bin/sh")
}
