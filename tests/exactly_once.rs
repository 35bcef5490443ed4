//! Invariant 1: every accepted entry yields exactly one terminal
//! completion, whatever mix of operations, cancels and a drop of the ring
//! in the middle of it all — work on the blocking pool included. And
//! invariant 4 along the way: the ring closes a descriptor only when a
//! `Close` says so.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{
    AsyncCancel, CancelTarget, Close, Nop, PollAdd, PollRemove, Read, Readv, Timeout,
    TimeoutRemove, Write, Writev,
};
use kqring::{Cqe, Mode, Ring, Sqe, SqeFlags};
use proptest::prelude::*;

const PAIRS: usize = 4;
/// The length of the regular file the pool reads.
const FILE_LEN: usize = 512;
/// What a file read asks for.
const FILE_READ: usize = 64;

#[derive(Debug, Clone)]
enum Action {
    Nop,
    Read(usize),
    Write(usize),
    Readv(usize),
    Writev(usize),
    /// `ASYNC` on a non-blocking socket: tried on the pool, then waits for
    /// readiness there if it was not ready.
    AsyncRead(usize),
    AsyncWrite(usize),
    /// A read of a regular file at this offset: the pool's work.
    FileRead(u16),
    Poll(usize, bool),
    ShortTimeout(u8),
    LongTimeout,
    CountTimeout(u8),
    /// Cancel the entry submitted `n` entries ago.
    Cancel(usize),
    CancelFd(usize),
    /// Remove the `n`-th most recent poll (pending or not).
    PollRemove(usize),
    /// Remove the `n`-th most recent timeout (pending or not).
    TimeoutRemove(usize),
    /// A read on a new duplicate of a pair's descriptor, which the test
    /// owns.
    DupRead(usize),
    /// Close the most recent duplicate no `Close` was given yet.
    CloseDup,
    /// Bytes written to a pair from outside the ring.
    Feed(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Nop),
        (0..PAIRS).prop_map(Action::Read),
        (0..PAIRS).prop_map(Action::Write),
        (0..PAIRS).prop_map(Action::Readv),
        (0..PAIRS).prop_map(Action::Writev),
        (0..PAIRS).prop_map(Action::AsyncRead),
        (0..PAIRS).prop_map(Action::AsyncWrite),
        (0u16..(FILE_LEN as u16 + 64)).prop_map(Action::FileRead),
        ((0..PAIRS), any::<bool>()).prop_map(|(p, m)| Action::Poll(p, m)),
        (0u8..5).prop_map(Action::ShortTimeout),
        Just(Action::LongTimeout),
        (1u8..4).prop_map(Action::CountTimeout),
        (1usize..6).prop_map(Action::Cancel),
        (0..PAIRS).prop_map(Action::CancelFd),
        (0usize..3).prop_map(Action::PollRemove),
        (0usize..3).prop_map(Action::TimeoutRemove),
        (0..PAIRS).prop_map(Action::DupRead),
        Just(Action::CloseDup),
        (0..PAIRS).prop_map(Action::Feed),
    ]
}

/// The shape of the buffer an operation hands back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Mut,
    Shared,
    MutVec,
    SharedVec,
}

/// The shape of the buffer a completion carries.
fn shape(c: &Cqe) -> Option<Shape> {
    use std::any::type_name;
    let held = c.buf_type()?;
    [
        (type_name::<BytesMut>(), Shape::Mut),
        (type_name::<Bytes>(), Shape::Shared),
        (type_name::<Vec<BytesMut>>(), Shape::MutVec),
        (type_name::<Vec<Bytes>>(), Shape::SharedVec),
    ]
    .into_iter()
    .find(|&(name, _)| name == held)
    .map(|(_, s)| s)
}

/// What an entry must give back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Nothing,
    Buffer(Shape),
    /// A file read: its bytes are the file's at `offset`.
    FileRead {
        offset: usize,
    },
}

/// The file's content: no two neighbouring bytes alike.
fn file_content() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

/// A regular file holding `file_content()`, already unlinked.
fn temp_file() -> std::fs::File {
    kqring_test_support::temp_file(&file_content()).unwrap()
}

/// A duplicate of a pair's descriptor, owned by the test until a `Close`
/// of the ring closes it.
struct Dup {
    fd: RawFd,
    pair: usize,
    /// The `Close` given it.
    close: Option<u64>,
}

/// The inode of the file open at `fd`, if it is open.
fn inode(fd: RawFd) -> Option<(u64, u64)> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `struct stat` into the space given.
    if unsafe { libc::fstat(fd, st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between targets.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    Some((st.st_dev as u64, st.st_ino as u64))
}

fn run(mode: Mode, actions: &[Action], drop_mid_flight: bool) {
    let ring = Ring::builder()
        .mode(mode)
        .sq_entries(32)
        .cq_entries(16)
        .workers(2)
        .build()
        .unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| pair()).collect();
    let file = temp_file();
    let mut dups: Vec<Dup> = Vec::new();
    let mut polls: Vec<u64> = Vec::new();
    let mut timeouts: Vec<u64> = Vec::new();
    // Entries that run on the blocking pool.
    let mut pooled: HashSet<u64> = HashSet::new();
    let mut t = Tally::default();
    let mut next_ud = 0u64;
    let nth_last = |list: &[u64], n: usize| {
        // Nothing to name: a user_data no entry has.
        list.iter().rev().nth(n).copied().unwrap_or(u64::MAX)
    };

    for a in actions {
        let ud = next_ud;
        let (sqe, expect): (Option<Sqe>, Expect) = match *a {
            Action::Nop => (Some(Nop::new().build()), Expect::Nothing),
            Action::Read(p) => (
                Some(Read::new(pairs[p].1.as_raw_fd(), BytesMut::with_capacity(8)).build()),
                Expect::Buffer(Shape::Mut),
            ),
            Action::Write(p) => (
                Some(Write::new(pairs[p].0.as_raw_fd(), Bytes::from_static(b"w")).build()),
                Expect::Buffer(Shape::Shared),
            ),
            Action::Readv(p) => (
                Some(
                    Readv::new(
                        pairs[p].1.as_raw_fd(),
                        vec![BytesMut::with_capacity(2), BytesMut::with_capacity(6)],
                    )
                    .build(),
                ),
                Expect::Buffer(Shape::MutVec),
            ),
            Action::Writev(p) => (
                Some(
                    Writev::new(
                        pairs[p].0.as_raw_fd(),
                        vec![Bytes::from_static(b"v"), Bytes::from_static(b"ec")],
                    )
                    .build(),
                ),
                Expect::Buffer(Shape::SharedVec),
            ),
            Action::AsyncRead(p) => (
                Some(
                    Read::new(pairs[p].1.as_raw_fd(), BytesMut::with_capacity(8))
                        .build()
                        .flags(SqeFlags::ASYNC),
                ),
                Expect::Buffer(Shape::Mut),
            ),
            Action::AsyncWrite(p) => (
                Some(
                    Write::new(pairs[p].0.as_raw_fd(), BytesMut::from(&b"aw"[..]))
                        .build()
                        .flags(SqeFlags::ASYNC),
                ),
                Expect::Buffer(Shape::Mut),
            ),
            Action::FileRead(offset) => (
                Some(
                    Read::new(file.as_raw_fd(), BytesMut::with_capacity(FILE_READ))
                        .offset(offset.into())
                        .build(),
                ),
                Expect::FileRead {
                    offset: offset.into(),
                },
            ),
            Action::Poll(p, multi) => {
                polls.push(ud);
                (
                    Some(
                        PollAdd::new(pairs[p].1.as_raw_fd(), libc::POLLIN as u32)
                            .multishot(multi)
                            .build(),
                    ),
                    Expect::Nothing,
                )
            }
            Action::ShortTimeout(ms) => {
                timeouts.push(ud);
                (
                    Some(Timeout::new(Duration::from_millis(ms.into())).build()),
                    Expect::Nothing,
                )
            }
            Action::LongTimeout => {
                timeouts.push(ud);
                (
                    Some(Timeout::new(Duration::from_secs(3600)).build()),
                    Expect::Nothing,
                )
            }
            Action::CountTimeout(n) => {
                timeouts.push(ud);
                (
                    Some(
                        Timeout::new(Duration::from_secs(3600))
                            .count(n.into())
                            .build(),
                    ),
                    Expect::Nothing,
                )
            }
            Action::Cancel(back) => (
                Some(AsyncCancel::new(ud.saturating_sub(back as u64)).build()),
                Expect::Nothing,
            ),
            Action::CancelFd(p) => (
                Some(
                    AsyncCancel::matching(CancelTarget::Fd(pairs[p].1.as_raw_fd()))
                        .all(true)
                        .build(),
                ),
                Expect::Nothing,
            ),
            Action::PollRemove(n) => (
                Some(PollRemove::new(nth_last(&polls, n)).build()),
                Expect::Nothing,
            ),
            Action::TimeoutRemove(n) => (
                Some(TimeoutRemove::new(nth_last(&timeouts, n)).build()),
                Expect::Nothing,
            ),
            Action::DupRead(p) => {
                // SAFETY: F_DUPFD_CLOEXEC on a descriptor the test owns; the
                // duplicate is the test's, tracked in `dups`.
                let fd = unsafe { libc::fcntl(pairs[p].1.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
                assert!(fd >= 0, "dup: {}", std::io::Error::last_os_error());
                dups.push(Dup {
                    fd,
                    pair: p,
                    close: None,
                });
                (
                    Some(Read::new(fd, BytesMut::with_capacity(8)).build()),
                    Expect::Buffer(Shape::Mut),
                )
            }
            Action::CloseDup => match dups.iter_mut().rev().find(|d| d.close.is_none()) {
                Some(dup) => {
                    dup.close = Some(ud);
                    (Some(Close::new(dup.fd).build()), Expect::Nothing)
                }
                None => (None, Expect::Nothing),
            },
            Action::Feed(p) => {
                let _ = (&pairs[p].0).write(b"feed");
                (None, Expect::Nothing)
            }
        };
        let Some(sqe) = sqe else { continue };
        if matches!(
            a,
            Action::AsyncRead(_) | Action::AsyncWrite(_) | Action::FileRead(_) | Action::CloseDup
        ) {
            pooled.insert(ud);
        }
        next_ud += 1;
        t.expected.insert(ud, expect);
        push_reaping(&ring, sqe.user_data(ud), &mut t);
        let _ = ring.submission().submit();
    }

    if drop_mid_flight {
        let (_sq, cq) = ring.split();
        drop(ring);
        for mut c in cq.drain() {
            t.check(&mut c);
        }
    } else {
        // End everything still waiting. The cancel completes after all it
        // cancelled, so what completes after it had been handed to the
        // pool and was running there.
        let cancel = next_ud;
        t.expected.insert(cancel, Expect::Nothing);
        let sqe = AsyncCancel::matching(CancelTarget::Any)
            .all(true)
            .build()
            .user_data(cancel);
        push_reaping(&ring, sqe, &mut t);
        let _ = ring.submission().submit();
        while !t.seen.contains_key(&cancel) {
            t.check(&mut next_completion(&ring, &t));
        }
        let late = t.missing();
        assert!(
            late.iter().all(|ud| pooled.contains(ud)),
            "only work on the pool escapes a cancel: {late:?} (pooled: {pooled:?})"
        );
        // Work that was under way on the pool (the cancel answered
        // -EALREADY for it) ends by itself: with its result, or with
        // -ECANCELED if its worker handed it back to wait.
        while t.seen.len() < t.expected.len() {
            let mut c = next_completion(&ring, &t);
            assert!(pooled.contains(&c.user_data()), "{c:?}");
            t.check(&mut c);
        }
    }
    assert_eq!(t.missing(), Vec::<u64>::new(), "every entry completes");
    for (ud, n) in &t.seen {
        assert_eq!(*n, 1, "user_data {ud} completed {n} times");
    }

    // Each duplicate is closed if, and only if, its Close says so.
    for dup in dups {
        let ours = inode(pairs[dup.pair].1.as_raw_fd());
        match dup.close.map(|ud| t.results[&ud]) {
            Some(0) => {}
            res => {
                assert!(
                    res.is_none_or(|r| r == -libc::ECANCELED),
                    "Close of {}: {res:?}",
                    dup.fd
                );
                assert_eq!(inode(dup.fd), ours, "{} is still the duplicate", dup.fd);
                // SAFETY: the test's own duplicate, which the ring did not
                // close.
                assert_eq!(unsafe { libc::close(dup.fd) }, 0);
            }
        }
    }
}

fn next_completion(ring: &Ring, t: &Tally) -> kqring::Cqe {
    ring.completion()
        .wait_timeout(PATIENCE)
        .unwrap()
        .unwrap_or_else(|| panic!("missing completions: {:?}", t.missing()))
}

/// Pushes `sqe`, reaping completions into `t` while the SQ is full (a full
/// CQ stops the driver from taking entries).
fn push_reaping(ring: &Ring, mut sqe: Sqe, t: &mut Tally) {
    loop {
        match ring.submission().push(sqe) {
            Ok(()) => return,
            Err(back) => {
                sqe = back.into_inner();
                let _ = ring.submission().submit();
                for mut c in ring.completion().drain() {
                    t.check(&mut c);
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    expected: HashMap<u64, Expect>,
    /// Terminal completions per user_data.
    seen: HashMap<u64, usize>,
    /// The terminal result per user_data.
    results: HashMap<u64, i32>,
}

impl Tally {
    fn check(&mut self, c: &mut kqring::Cqe) {
        let ud = c.user_data();
        let want = *self
            .expected
            .get(&ud)
            .unwrap_or_else(|| panic!("completion for unknown user_data {ud}"));
        assert!(
            !self.seen.contains_key(&ud),
            "completion after the terminal one: {c:?}"
        );
        if c.is_more() {
            return;
        }
        *self.seen.entry(ud).or_default() += 1;
        self.results.insert(ud, c.result());
        match want {
            Expect::Nothing => assert!(!c.has_buf(), "a buffer for {ud} ({c:?})"),
            Expect::Buffer(s) => assert_eq!(shape(c), Some(s), "{c:?}"),
            Expect::FileRead { offset } => {
                let buf = c.take_buf::<BytesMut>().expect("the buffer comes back");
                if c.result() < 0 {
                    assert_eq!(c.result(), -libc::ECANCELED, "{c:?}");
                    assert!(buf.is_empty());
                } else {
                    let content = file_content();
                    let from = offset.min(FILE_LEN);
                    let want = &content[from..(from + FILE_READ).min(FILE_LEN)];
                    assert_eq!(c.result() as usize, want.len(), "{c:?}");
                    assert_eq!(&buf[..], want, "the file's bytes at {offset}");
                }
            }
        }
    }

    fn missing(&self) -> Vec<u64> {
        let mut m: Vec<u64> = self
            .expected
            .keys()
            .filter(|k| !self.seen.contains_key(k))
            .copied()
            .collect();
        m.sort_unstable();
        m
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn every_entry_completes_exactly_once(
        actions in prop::collection::vec(action(), 1..60),
        drop_mid_flight in any::<bool>(),
        inline in any::<bool>(),
    ) {
        let mode = if inline { Mode::Inline } else { Mode::PollingThread };
        run(mode, &actions, drop_mid_flight);
    }
}
