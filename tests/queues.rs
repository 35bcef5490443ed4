//! The queues as the docs describe them: a `SubmissionQueue` shared by
//! many producers, a `CompletionQueue` handed to other threads.

mod common;

use std::collections::HashSet;
use std::thread;

use common::*;
use kqring::ops::Nop;
use kqring::{CompletionQueue, Cqe, Mode, Ring, Sqe, SubmissionQueue};

// Compile-time: what the docs promise. `SubmissionQueue` is `Clone + Send
// + Sync` (many producers); `CompletionQueue` is `Send + Sync` and cheap to
// clone (several consumers); entries and completions cross threads with
// them.
const _: () = {
    const fn clone_send_sync<T: Clone + Send + Sync + 'static>() {}
    const fn send<T: Send + 'static>() {}
    clone_send_sync::<SubmissionQueue>();
    clone_send_sync::<CompletionQueue>();
    send::<Sqe>();
    send::<Cqe>();
};

const PRODUCERS: u64 = 4;
const TOTAL: u64 = 10_000;

/// Four threads push 10,000 Nops in all through clones of one submission
/// queue while this thread consumes: every user_data completes exactly
/// once, and each producer's entries complete in the order it pushed them.
#[test]
fn four_producers_ten_thousand_nops_each_completes_once() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        eprintln!("mode: {mode:?}");
        let ring = Ring::builder().mode(mode).sq_entries(64).build().unwrap();
        let per = TOTAL / PRODUCERS;
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let sq = ring.submission().clone();
                thread::spawn(move || {
                    let deadline = std::time::Instant::now() + 3 * PATIENCE;
                    for i in 0..per {
                        let mut sqe = Nop::new().build().user_data(p * per + i);
                        // A full queue hands the entry back: submit (which
                        // may say EBUSY while completions overflow) and retry.
                        while let Err(back) = sq.push(sqe) {
                            sqe = back.into_inner();
                            let _ = sq.submit();
                            assert!(std::time::Instant::now() < deadline, "producer {p} stuck");
                            thread::yield_now();
                        }
                        if i % 8 == 7 {
                            let _ = sq.submit();
                        }
                    }
                    // The last submit may meet an overflow (EBUSY): retry
                    // until it is taken.
                    while sq.submit().is_err() {
                        assert!(std::time::Instant::now() < deadline, "producer {p} stuck");
                        thread::yield_now();
                    }
                })
            })
            .collect();

        let mut seen = HashSet::new();
        let mut last: Vec<Option<u64>> = vec![None; PRODUCERS as usize];
        let cq = ring.completion();
        while (seen.len() as u64) < TOTAL {
            let c = cq
                .wait_timeout(PATIENCE)
                .unwrap()
                .unwrap_or_else(|| panic!("{} of {TOTAL} completions came", seen.len()));
            let ud = c.user_data();
            assert_eq!((c.result(), c.flags()), (0, 0), "{c:?}");
            assert!(ud < TOTAL, "unknown user_data {ud}");
            assert!(seen.insert(ud), "user_data {ud} completed twice");
            let p = (ud / per) as usize;
            assert!(
                last[p].is_none_or(|prev| prev < ud),
                "producer {p}: {ud} after {:?}",
                last[p]
            );
            last[p] = Some(ud);
        }
        for p in producers {
            p.join().unwrap();
        }
        // Nothing more comes: each entry completed once.
        assert_quiet(&ring);
    }
}

/// An inline ring's `submit_and_wait` for a receive that must wait makes
/// one `kevent` call: the turn that takes the entry adds its registration
/// and waits in the same call (a zero-timeout turn before it, or one for
/// `submit` and another for the wait, would make two or three).
#[test]
fn an_inline_wait_is_one_kevent_call() {
    use std::io::Write as _;
    use std::os::fd::AsRawFd;

    let ring = Ring::builder().mode(Mode::Inline).build().unwrap();
    let (mut a, b) = pair();
    for round in 0..3u64 {
        ring.submission()
            .push(
                kqring::ops::Recv::new(b.as_raw_fd(), bytes::BytesMut::with_capacity(8))
                    .build()
                    .user_data(round),
            )
            .unwrap();
        let before = ring.stats();
        thread::scope(|s| {
            let (ring, a) = (&ring, &mut a);
            s.spawn(move || {
                // Write once the waiting thread has announced its park:
                // the data then comes while (or just before) it waits. (Past
                // the deadline, write anyway: the count below fails then,
                // rather than the wait hanging.)
                let deadline = std::time::Instant::now() + PATIENCE;
                while ring.stats().parks == before.parks && std::time::Instant::now() < deadline {
                    thread::yield_now();
                }
                a.write_all(b"ping").unwrap();
            });
            ring.submit_and_wait(1).unwrap();
        });
        let c = ring.completion().pop().expect("the receive");
        assert_eq!((c.user_data(), c.result()), (round, 4));
        let after = ring.stats();
        assert_eq!(
            after.kevent_calls - before.kevent_calls,
            1,
            "round {round}: {before:?} -> {after:?}"
        );
    }
}

/// `drain` takes what is queued at once; what a drain stopped early still
/// holds goes back to the front, in order.
#[test]
fn a_drain_stopped_early_leaves_the_rest_in_order() {
    each_mode(|ring| {
        submit_all(ring, (0..5).map(|i| Nop::new().build().user_data(i)));
        while ring.completion().len() < 5 {
            ring.submit_and_wait(5).unwrap();
        }
        let first: Vec<u64> = ring
            .completion()
            .drain()
            .take(2)
            .map(|c| c.user_data())
            .collect();
        assert_eq!(first, [0, 1]);
        assert_eq!(ring.completion().len(), 3);
        let rest: Vec<u64> = ring.completion().drain().map(|c| c.user_data()).collect();
        assert_eq!(rest, [2, 3, 4]);
        assert!(ring.completion().pop().is_none());
    });
}
