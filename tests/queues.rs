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
