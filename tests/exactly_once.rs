//! Invariant 1: every accepted entry yields exactly one terminal
//! completion, whatever mix of operations, cancels and a drop of the ring
//! in the middle of it all.

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{AsyncCancel, CancelTarget, Nop, PollAdd, Read, Timeout, Write};
use kqring::{Mode, Ring, Sqe};
use proptest::prelude::*;

const PAIRS: usize = 4;

#[derive(Debug, Clone)]
enum Action {
    Nop,
    Read(usize),
    Write(usize),
    Poll(usize, bool),
    ShortTimeout(u8),
    LongTimeout,
    CountTimeout(u8),
    /// Cancel the entry submitted `n` entries ago.
    Cancel(usize),
    CancelFd(usize),
    /// Bytes written to a pair from outside the ring.
    Feed(usize),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Nop),
        (0..PAIRS).prop_map(Action::Read),
        (0..PAIRS).prop_map(Action::Write),
        ((0..PAIRS), any::<bool>()).prop_map(|(p, m)| Action::Poll(p, m)),
        (0u8..5).prop_map(Action::ShortTimeout),
        Just(Action::LongTimeout),
        (1u8..4).prop_map(Action::CountTimeout),
        (1usize..6).prop_map(Action::Cancel),
        (0..PAIRS).prop_map(Action::CancelFd),
        (0..PAIRS).prop_map(Action::Feed),
    ]
}

/// What an entry must give back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Nothing,
    Buffer,
}

fn run(mode: Mode, actions: &[Action], drop_mid_flight: bool) {
    let ring = Ring::builder()
        .mode(mode)
        .sq_entries(32)
        .cq_entries(16)
        .build()
        .unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| pair()).collect();
    let mut t = Tally::default();
    let mut next_ud = 0u64;

    for a in actions {
        let ud = next_ud;
        let (sqe, expect): (Option<Sqe>, Expect) = match *a {
            Action::Nop => (Some(Nop::new().build()), Expect::Nothing),
            Action::Read(p) => (
                Some(Read::new(pairs[p].1.as_raw_fd(), BytesMut::with_capacity(8)).build()),
                Expect::Buffer,
            ),
            Action::Write(p) => (
                Some(Write::new(pairs[p].0.as_raw_fd(), Bytes::from_static(b"w")).build()),
                Expect::Buffer,
            ),
            Action::Poll(p, multi) => (
                Some(
                    PollAdd::new(pairs[p].1.as_raw_fd(), libc::POLLIN as u32)
                        .multishot(multi)
                        .build(),
                ),
                Expect::Nothing,
            ),
            Action::ShortTimeout(ms) => (
                Some(Timeout::new(Duration::from_millis(ms.into())).build()),
                Expect::Nothing,
            ),
            Action::LongTimeout => (
                Some(Timeout::new(Duration::from_secs(3600)).build()),
                Expect::Nothing,
            ),
            Action::CountTimeout(n) => (
                Some(
                    Timeout::new(Duration::from_secs(3600))
                        .count(n.into())
                        .build(),
                ),
                Expect::Nothing,
            ),
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
            Action::Feed(p) => {
                let _ = (&pairs[p].0).write(b"feed");
                (None, Expect::Nothing)
            }
        };
        let Some(sqe) = sqe else { continue };
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
        // End everything still waiting, then collect until all are in.
        let ud = next_ud;
        t.expected.insert(ud, Expect::Nothing);
        let sqe = AsyncCancel::matching(CancelTarget::Any)
            .all(true)
            .build()
            .user_data(ud);
        push_reaping(&ring, sqe, &mut t);
        while t.seen.len() < t.expected.len() {
            let _ = ring.submission().submit();
            let mut c = ring
                .completion()
                .wait_timeout(PATIENCE)
                .unwrap()
                .unwrap_or_else(|| panic!("missing completions: {:?}", t.missing()));
            t.check(&mut c);
        }
    }
    assert_eq!(t.missing(), Vec::<u64>::new(), "every entry completes");
    for (ud, n) in &t.seen {
        assert_eq!(*n, 1, "user_data {ud} completed {n} times");
    }
}

/// Pushes `sqe`, reaping completions into `t` while the SQ is full (a full
/// CQ stops the driver from taking entries).
fn push_reaping(ring: &Ring, mut sqe: Sqe, t: &mut Tally) {
    loop {
        match ring.submission().push(sqe) {
            Ok(()) => return,
            Err(back) => {
                sqe = back;
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
        assert_eq!(
            c.take_buf().is_some(),
            want == Expect::Buffer,
            "buffer of {ud} ({c:?})"
        );
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
