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
        .map(|c| {
            Change::new(c.ident(), c.filter(), c.flags() | Flags::RECEIPT)
                .fflags(c.get_fflags())
                .data(c.get_data())
                .token(c.get_token())
        })
        .collect();
    let events = kevent(kq, &with_receipt, WAIT);
    assert_eq!(events.len(), changes.len(), "{events:?}");
    for ev in &events {
        assert!(ev.is_error() && ev.data() == 0, "change failed: {ev:?}");
    }
}

/// The errno a single change fails with (0: it succeeded).
fn result(kq: &Kqueue, change: Change) -> i64 {
    let change = Change::new(
        change.ident(),
        change.filter(),
        change.flags() | Flags::RECEIPT,
    )
    .fflags(change.get_fflags())
    .data(change.get_data())
    .token(change.get_token());
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

#[test]
fn readding_a_reused_number_watches_the_new_file() {
    let kq = Kqueue::new().unwrap();
    let (r1, w1) = pipe();
    let r1 = high(r1, 3000);
    // A duplicate keeps the first pipe's epoll entry alive after the close.
    let _r1_dup = r1.try_clone().unwrap();
    let number = r1.as_raw_fd();
    apply(&kq, &[Change::read(number, Flags::ADD).token(1)]);
    write(&w1, b"x");
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (number as usize, 1, 1));

    // The caller closes the descriptor without EV_DELETE and the number
    // comes back naming another pipe: EV_ADD must register the new file.
    drop(r1);
    let (r2, w2) = pipe();
    let _r2 = at(r2, number);
    apply(&kq, &[Change::read(number, Flags::ADD).token(2)]);
    quiet(&kq);
    write(&w2, b"yz");
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (number as usize, 2, 2));
    // The first pipe is still readable through its duplicate, but nothing
    // of it is reported under the number.
    write(&w1, b"first pipe");
    let events = kevent(&kq, &[], NOW);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].token(), events[0].data()), (2, 2));
}

#[test]
fn changes_after_close_answer_as_kqueue() {
    let kq = Kqueue::new().unwrap();
    let (r, _w) = pipe();
    let r = high(r, 3100);
    let number = r.as_raw_fd();
    apply(&kq, &[Change::read(number, Flags::ADD | Flags::ONESHOT)]);
    drop(r);
    // Closed: kqueue dropped the registration and has no descriptor.
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::EBADF)
    );
    assert_eq!(
        result(&kq, Change::read(number, Flags::ENABLE)),
        i64::from(libc::EBADF)
    );

    let (r, _w) = pipe();
    let r = high(r, 3150);
    let number = r.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(number, Flags::ADD),
            Change::write(number, Flags::ADD | Flags::DISPATCH),
        ],
    );
    drop(r);
    let (other, _w2) = pipe();
    let _other = at(other, number);
    // Reused: the descriptor exists, the registrations do not.
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    assert_eq!(
        result(&kq, Change::write(number, Flags::DISABLE)),
        i64::from(libc::ENOENT)
    );
    // EV_ADD|EV_DELETE only looks the descriptor up.
    assert_eq!(
        result(&kq, Change::read(number, Flags::ADD | Flags::DELETE)),
        0
    );
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    assert_eq!(
        result(&kq, Change::read(3199, Flags::ADD | Flags::DELETE)),
        i64::from(libc::EBADF)
    );
    quiet(&kq);
}

#[test]
fn a_closed_duplicate_does_not_keep_the_wait_spinning() {
    let kq = Kqueue::new().unwrap();
    let (r, w) = pipe();
    let r2 = r.try_clone().unwrap();
    apply(&kq, &[Change::read(r2.as_raw_fd(), Flags::ADD).token(5)]);
    write(&w, b"abc");
    assert_eq!(one(&kq).token(), 5);
    // `r` keeps the open file (and so its epoll entry) alive.
    drop(r2);
    sleeps_quietly(&kq, Duration::from_millis(100));
    write(&w, b"more");
    sleeps_quietly(&kq, Duration::from_millis(50));
    drop(r);
}

#[test]
fn level_events_are_reported_once_per_call() {
    let kq = Kqueue::new().unwrap();
    let pipes: Vec<_> = (0..100).map(|_| pipe()).collect();
    let changes: Vec<_> = pipes
        .iter()
        .enumerate()
        .map(|(i, (r, _))| Change::read(r.as_raw_fd(), Flags::ADD).token(i as u64))
        .collect();
    apply(&kq, &changes);
    for (_, w) in &pipes {
        write(w, b"x");
    }
    for _ in 0..3 {
        let mut events = Vec::with_capacity(500);
        kq.kevent(&[], &mut events, WAIT).unwrap();
        let mut tokens: Vec<u64> = events.iter().map(Event::token).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), events.len(), "duplicates in one call");
        assert_eq!(events.len(), 100);
        assert_eq!(events.capacity(), 500, "the vector was reallocated");
    }
    // A small vector takes them in turns.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut events = Vec::with_capacity(10);
        kq.kevent(&[], &mut events, WAIT).unwrap();
        assert_eq!(events.len(), 10);
        seen.extend(events.iter().map(Event::token));
    }
    assert_eq!(seen.len(), 100);
}

#[test]
fn regular_files_follow_the_vnode_read_and_write_filters() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("file");
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    write(&file, b"0123456789");
    // SAFETY: lseek on an fd we own.
    assert_eq!(
        unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_SET) },
        0
    );
    let fd = file.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD).token(1),
            Change::write(fd, Flags::ADD | Flags::ONESHOT).token(2),
        ],
    );
    let mut events = kevent(&kq, &[], WAIT);
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[0].filter(), events[0].data()), (Filter::READ, 10));
    assert_eq!((events[1].filter(), events[1].data()), (Filter::WRITE, 0));
    assert_eq!(read(&file, 4), 4);
    let ev = one(&kq);
    assert_eq!((ev.filter(), ev.data()), (Filter::READ, 6));
    assert_eq!(read(&file, 100), 6);
    // At the end of the file: not readable.
    quiet(&kq);

    // EV_CLEAR: once, then again only when the count changes.
    apply(&kq, &[Change::read(fd, Flags::ADD | Flags::CLEAR).token(3)]);
    // SAFETY: lseek on an fd we own.
    unsafe { libc::lseek(file.as_raw_fd(), 2, libc::SEEK_SET) };
    assert_eq!(one(&kq).data(), 8);
    quiet(&kq);
    assert_eq!(read(&file, 1), 1);
    assert_eq!(one(&kq).data(), 7);

    // Close the file by putting another one in its place with dup2, which
    // is atomic: a bare close would let a test on another thread take the
    // number, and what this checks would depend on that race.
    let other = open(&CString::new("/dev/null").unwrap(), libc::O_RDONLY);
    // SAFETY: dup2 onto a number we own; `file` forgets it below.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), fd) }, fd);
    let file = file.into_raw_fd();
    // SAFETY: unlinks our temp file.
    unsafe { libc::unlink(path.as_ptr()) };
    // The file is gone and the registration with it; the number now names
    // another file, for which kqueue has no registration.
    quiet(&kq);
    assert_eq!(
        result(&kq, Change::read(fd, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    // SAFETY: the number is ours (it holds the dup of /dev/null).
    unsafe { libc::close(file) };
}

#[test]
fn vnode_notes_of_a_file() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("vnode");
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let fd = file.as_raw_fd();
    let all = note::WRITE | note::EXTEND | note::ATTRIB | note::LINK | note::DELETE | note::RENAME;
    apply(
        &kq,
        &[Change::vnode(fd, Flags::ADD | Flags::CLEAR, all).token(9)],
    );
    quiet(&kq);

    let expect = |what: &str, fflags: u32| {
        let ev = one(&kq);
        assert_eq!(
            (ev.ident(), ev.filter(), ev.token()),
            (fd as usize, Filter::VNODE, 9)
        );
        assert_eq!(ev.fflags(), fflags, "{what}: {ev:?}");
        assert_eq!(ev.data(), 0);
        quiet(&kq);
    };

    write(&file, b"hello");
    expect("append", note::WRITE | note::EXTEND);
    // SAFETY: pwrite from a valid buffer.
    assert_eq!(unsafe { libc::pwrite(fd, b"J".as_ptr().cast(), 1, 0) }, 1);
    expect("overwrite", note::WRITE);
    // SAFETY: fchmod/ftruncate/link/rename/unlink on our temp file.
    check(unsafe { libc::fchmod(fd, 0o600) }, "fchmod");
    expect("chmod", note::ATTRIB);
    check(unsafe { libc::ftruncate(fd, 2) }, "ftruncate");
    expect("truncate", note::ATTRIB);
    let link = with_suffix(&path, ".link");
    check(unsafe { libc::link(path.as_ptr(), link.as_ptr()) }, "link");
    expect("link", note::LINK);
    check(unsafe { libc::unlink(link.as_ptr()) }, "unlink link");
    expect("unlink of a second name", note::DELETE);
    let moved = with_suffix(&path, ".moved");
    check(
        unsafe { libc::rename(path.as_ptr(), moved.as_ptr()) },
        "rename",
    );
    expect("rename", note::RENAME);
    check(unsafe { libc::unlink(moved.as_ptr()) }, "unlink");
    expect("unlink", note::DELETE);
}

#[test]
fn vnode_only_reports_what_was_asked_and_shares_watches() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("shared");
    let a = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let b = open(&path, libc::O_RDONLY);
    apply(
        &kq,
        &[
            Change::vnode(a.as_raw_fd(), Flags::ADD | Flags::CLEAR, note::DELETE).token(1),
            Change::vnode(b.as_raw_fd(), Flags::ADD | Flags::CLEAR, note::WRITE).token(2),
        ],
    );
    write(&a, b"x");
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags()), (2, note::WRITE));
    quiet(&kq);
    // Deleting one registration keeps the shared watch for the other.
    apply(&kq, &[Change::vnode(b.as_raw_fd(), Flags::DELETE, 0)]);
    // SAFETY: unlinks our temp file.
    check(unsafe { libc::unlink(path.as_ptr()) }, "unlink");
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags()), (1, note::DELETE));
    // Without EV_CLEAR a note stays reported.
    apply(
        &kq,
        &[Change::vnode(a.as_raw_fd(), Flags::ADD, note::WRITE).token(3)],
    );
    write(&a, b"y");
    for _ in 0..3 {
        let ev = one(&kq);
        assert_eq!((ev.token(), ev.fflags()), (3, note::WRITE));
    }
    // Not a vnode.
    let (r, _w) = pipe();
    assert_eq!(
        result(&kq, Change::vnode(r.as_raw_fd(), Flags::ADD, note::WRITE)),
        i64::from(libc::EINVAL)
    );
}

#[test]
fn vnode_notes_of_a_directory() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("dir");
    // SAFETY: creates our temp directory.
    check(unsafe { libc::mkdir(path.as_ptr(), 0o755) }, "mkdir");
    let dir = open(&path, libc::O_RDONLY | libc::O_DIRECTORY);
    let fd = dir.as_raw_fd();
    apply(
        &kq,
        &[Change::vnode(fd, Flags::ADD | Flags::CLEAR, note::WRITE | note::LINK).token(4)],
    );
    let file = with_suffix(&path, "/f");
    drop(open(&file, libc::O_RDWR | libc::O_CREAT));
    assert_eq!(one(&kq).fflags(), note::WRITE);
    let sub = with_suffix(&path, "/sub");
    // SAFETY: creates and removes entries of our temp directory.
    check(unsafe { libc::mkdir(sub.as_ptr(), 0o755) }, "mkdir sub");
    assert_eq!(one(&kq).fflags(), note::WRITE | note::LINK);
    check(unsafe { libc::rmdir(sub.as_ptr()) }, "rmdir sub");
    assert_eq!(one(&kq).fflags(), note::WRITE | note::LINK);
    check(unsafe { libc::unlink(file.as_ptr()) }, "unlink");
    assert_eq!(one(&kq).fflags(), note::WRITE);
    quiet(&kq);
    check(unsafe { libc::rmdir(path.as_ptr()) }, "rmdir");
}

#[test]
fn process_exit_leaves_the_child_to_its_parent() {
    let kq = Kqueue::new().unwrap();
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read x; exit 7"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    apply(&kq, &[Change::proc_exit(pid, Flags::ADD).token(6)]);
    quiet(&kq);
    drop(child.stdin.take());
    let ev = one(&kq);
    assert_eq!(
        (ev.ident(), ev.filter(), ev.token()),
        (pid as usize, Filter::PROC, 6)
    );
    assert_eq!((ev.fflags(), ev.data()), (note::EXIT, 7 << 8));
    assert!(ev.is_eof() && ev.flags().contains(Flags::ONESHOT));
    // Not reaped by the compat: the parent still can.
    assert_eq!(child.wait().expect("wait").code(), Some(7));
    // The registration is gone.
    assert_eq!(
        result(&kq, Change::proc_exit(pid, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
}

#[test]
fn realtime_signals_count_exactly_and_stay_blocked() {
    let sig = libc::SIGRTMIN() + 5;
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[Change::signal(sig, Flags::ADD).token(8)]);
    for _ in 0..3 {
        // SAFETY: a thread-directed signal to this thread, which blocks
        // it (the registration did), so only the signalfd sees it.
        check(
            unsafe { libc::pthread_kill(libc::pthread_self(), sig) },
            "pthread_kill",
        );
    }
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (sig as usize, 8, 3));
    assert!(ev.flags().contains(Flags::CLEAR));
    quiet(&kq);
    apply(&kq, &[Change::signal(sig, Flags::DELETE)]);
    // SAFETY: reads this thread's mask into `set`.
    let blocked = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        libc::sigismember(&set, sig)
    };
    assert_eq!(blocked, 1, "deleting the registration must not unblock");
}

#[test]
fn tcp_reset_error_reaches_both_directions() {
    let (client, server) = tcp_pair().unwrap();
    client.set_nonblocking(true).unwrap();
    let kq = Kqueue::new().unwrap();
    let fd = client.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD | Flags::CLEAR).token(1),
            Change::write(fd, Flags::ADD | Flags::CLEAR).token(2),
        ],
    );
    let ev = one(&kq);
    assert_eq!(ev.filter(), Filter::WRITE);
    assert!(!ev.is_eof() && ev.data() > 0, "{ev:?}");
    close_with_reset(server).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < 2 && Instant::now() < deadline {
        events.extend(kevent(&kq, &[], Some(Duration::from_millis(100))));
    }
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 2, "{events:?}");
    for ev in &events {
        assert!(ev.is_eof(), "{ev:?}");
        assert_eq!(ev.fflags(), libc::ECONNRESET as u32, "{ev:?}");
    }
}

#[test]
fn dispatched_timer_stops_waking_the_wait() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[Change::timer(3, Flags::ADD | Flags::DISPATCH, Duration::from_millis(2)).token(1)],
    );
    let ev = one(&kq);
    assert_eq!((ev.filter(), ev.token()), (Filter::TIMER, 1));
    // Disabled, still running: the expiries neither report nor wake.
    sleeps_quietly(&kq, Duration::from_millis(100));
    apply(
        &kq,
        &[Change::timer(3, Flags::ENABLE, Duration::ZERO).token(1)],
    );
    let ev = one(&kq);
    assert!(ev.data() >= 40, "expirations while disabled: {ev:?}");
}

#[test]
fn oneshot_timers_reuse_their_descriptors() {
    let kq = Kqueue::new().unwrap();
    for round in 0..50u64 {
        apply(
            &kq,
            &[
                Change::timer(7, Flags::ADD | Flags::ONESHOT, Duration::from_micros(100))
                    .token(round),
            ],
        );
        let ev = one(&kq);
        assert_eq!((ev.ident(), ev.token(), ev.data()), (7, round, 1));
    }
    let registry = kq.lock();
    assert!(registry.knotes.is_empty());
    assert_eq!(registry.spare_timers.len(), 1);
}

#[test]
fn user_trigger_replaces_the_token_like_kqueue() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[Change::user(1, Flags::ADD | Flags::CLEAR, note::FFNOP).token(10)],
    );
    // FreeBSD's kqueue_register stores every change's udata.
    apply(&kq, &[Change::trigger(1).token(11)]);
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags(), ev.data()), (11, 0, 0));
    quiet(&kq);
}

#[test]
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

/// An uncounted kqueue reports the same events with `data` 1, and still
/// carries EOF and the socket error.
#[test]
fn uncounted_events_carry_flags_without_counts() {
    use std::io::Write as _;

    let kq = Kqueue::uncounted().unwrap();
    let (mut client, server) = tcp_pair().unwrap();
    let fd = server.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD | Flags::CLEAR).token(1),
            Change::write(fd, Flags::ADD | Flags::CLEAR).token(2),
        ],
    );
    let mut events = kevent(&kq, &[], WAIT);
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 1, "only writable so far: {events:?}");
    assert_eq!((events[0].token(), events[0].data()), (2, 1));
    assert!(!events[0].is_eof());

    client.write_all(&[7; 100]).unwrap();
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (1, 1, false));

    // A reset: EOF on both directions, with the error in fflags.
    close_with_reset(client).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < deadline {
        seen.extend(kevent(&kq, &[], WAIT));
        seen.sort_by_key(Event::token);
        seen.dedup_by_key(|e| e.token());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    for ev in &seen {
        assert!(ev.is_eof(), "{ev:?}");
        assert_eq!(ev.fflags(), libc::ECONNRESET as u32, "{ev:?}");
    }
    assert_eq!(seen[0].data(), 1, "still readable: the bytes and the EOF");

    // A pipe whose reader is gone: EOF with no room.
    let (r, w) = pipe();
    apply(
        &kq,
        &[Change::write(w.as_raw_fd(), Flags::ADD | Flags::CLEAR).token(3)],
    );
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (3, 1, false));
    drop(r);
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (3, 0, true));
}
