//! Tests of the compat as a whole, through its public API: the places where
//! it works around epoll, inotify, pidfd and signalfd to keep kqueue's
//! semantics. (The cross-backend semantics suite is `tests/kevent`.)
//!
//! Descriptor numbers that a test closes and reuses on purpose are taken
//! high (each test its own range), so the tests running in parallel, which
//! get the lowest free numbers, never reopen them behind its back.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use kqring_test_support::{ScratchPath, close_with_reset, tcp_pair};

use super::Kqueue;
use crate::sys::{Change, Event, Filter, Flags, note};

const WAIT: Option<Duration> = Some(Duration::from_secs(5));
const NOW: Option<Duration> = Some(Duration::ZERO);

fn pipe() -> (OwnedFd, OwnedFd) {
    kqring_test_support::pipe(true).expect("pipe")
}

/// Moves `fd` to the lowest free number at or above `floor`.
fn high(fd: OwnedFd, floor: RawFd) -> OwnedFd {
    // SAFETY: fcntl on a descriptor we own.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, floor) };
    assert!(new >= floor, "F_DUPFD: {}", std::io::Error::last_os_error());
    // SAFETY: `new` is the duplicate just made.
    unsafe { OwnedFd::from_raw_fd(new) }
}

/// Moves `fd` to exactly `number` (which must be free).
fn at(fd: OwnedFd, number: RawFd) -> OwnedFd {
    // SAFETY: dup3 onto a number this test reserved.
    let new = unsafe { libc::dup3(fd.as_raw_fd(), number, libc::O_CLOEXEC) };
    assert_eq!(new, number, "dup3: {}", std::io::Error::last_os_error());
    // SAFETY: `number` now holds the duplicate just made.
    unsafe { OwnedFd::from_raw_fd(new) }
}

fn write(fd: &OwnedFd, bytes: &[u8]) {
    // SAFETY: writes from a valid buffer.
    let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(
        n,
        bytes.len() as isize,
        "write: {}",
        std::io::Error::last_os_error()
    );
}

fn read(fd: &OwnedFd, n: usize) -> usize {
    let mut buf = vec![0u8; n];
    // SAFETY: reads into a valid buffer.
    let got = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), n) };
    assert!(got >= 0, "read: {}", std::io::Error::last_os_error());
    got as usize
}

fn kevent(kq: &Kqueue, changes: &[Change], timeout: Option<Duration>) -> Vec<Event> {
    let mut events = Vec::with_capacity(64);
    let n = kq.kevent(changes, &mut events, timeout).expect("kevent");
    assert_eq!(n, events.len());
    events
}

/// Applies changes that must all succeed (checked with EV_RECEIPT).
fn apply(kq: &Kqueue, changes: &[Change]) {
    let with_receipt: Vec<Change> = changes
        .iter()
        .map(|c| c.with_flags(c.flags() | Flags::RECEIPT))
        .collect();
    let events = kevent(kq, &with_receipt, WAIT);
    assert_eq!(events.len(), changes.len(), "{events:?}");
    for ev in &events {
        assert!(ev.is_error() && ev.data() == 0, "change failed: {ev:?}");
    }
}

/// The errno a single change fails with (0: it succeeded).
fn result(kq: &Kqueue, change: Change) -> i64 {
    let change = change.with_flags(change.flags() | Flags::RECEIPT);
    let events = kevent(kq, &[change], WAIT);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].is_error());
    assert_eq!(events[0].flags(), Flags::ERROR);
    events[0].data()
}

fn one(kq: &Kqueue) -> Event {
    let events = kevent(kq, &[], WAIT);
    assert_eq!(events.len(), 1, "{events:?}");
    events[0]
}

fn quiet(kq: &Kqueue) {
    let events = kevent(kq, &[], NOW);
    assert!(events.is_empty(), "expected nothing, got {events:?}");
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Waits `timeout` with nothing to report and checks that the wait slept
/// rather than spun.
fn sleeps_quietly(kq: &Kqueue, timeout: Duration) {
    let cpu = thread_cpu();
    let start = Instant::now();
    let events = kevent(kq, &[], Some(timeout));
    assert!(events.is_empty(), "{events:?}");
    assert!(start.elapsed() >= timeout);
    let used = thread_cpu() - cpu;
    assert!(
        used < timeout / 2,
        "the wait spun: {used:?} of CPU in {timeout:?}"
    );
}

/// A path in a scratch directory of its own, as a C string; the directory
/// goes on drop, with whatever the test made in it.
struct TempPath {
    path: CString,
    _scratch: ScratchPath,
}

impl std::ops::Deref for TempPath {
    type Target = CString;

    fn deref(&self) -> &CString {
        &self.path
    }
}

fn temp_path(tag: &str) -> TempPath {
    let scratch = ScratchPath::new(tag).expect("a scratch directory");
    let path = CString::new(scratch.as_os_str().as_encoded_bytes()).expect("path");
    TempPath {
        path,
        _scratch: scratch,
    }
}

fn open(path: &CString, flags: libc::c_int) -> OwnedFd {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
    // SAFETY: just opened.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn with_suffix(path: &CString, suffix: &str) -> CString {
    let mut bytes = path.as_bytes().to_vec();
    bytes.extend_from_slice(suffix.as_bytes());
    CString::new(bytes).expect("path")
}

fn check(rc: libc::c_int, what: &str) {
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

mod readiness;
mod sources;
mod vnode;

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn dropping_a_kqueue_closes_what_it_opened() {
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
    }
    let path = temp_path("leak");
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let (r, w) = pipe();
    let before = open_fds();
    for i in 0..300 {
        let kq = Kqueue::new().unwrap();
        apply(
            &kq,
            &[
                Change::read(r.as_raw_fd(), Flags::ADD),
                Change::write(w.as_raw_fd(), Flags::ADD | Flags::CLEAR),
                Change::timer(1, Flags::ADD, Duration::from_secs(60)),
                Change::timer(2, Flags::ADD | Flags::ONESHOT, Duration::from_micros(1)),
                Change::user(3, Flags::ADD, note::TRIGGER),
                Change::vnode(file.as_raw_fd(), Flags::ADD, note::WRITE),
                Change::proc_exit(std::process::id() as libc::pid_t, Flags::ADD),
                Change::signal(libc::SIGRTMIN() + 6, Flags::ADD),
            ],
        );
        if i % 2 == 0 {
            let _ = kevent(&kq, &[], NOW);
        }
    }
    // Other tests open descriptors meanwhile; a leak would be thousands.
    let after = open_fds();
    assert!(
        after < before + 100,
        "{before} descriptors before, {after} after"
    );
    // The caller's descriptors are untouched.
    write(&w, b"still open");
    assert_eq!(read(&r, 64), 10);
    // SAFETY: unlinks our temp file.
    unsafe { libc::unlink(path.as_ptr()) };
}
