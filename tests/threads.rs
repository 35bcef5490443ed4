//! Invariant 5, the threads: a ring's polling thread and blocking pool
//! are gone once it is dropped, in flight work or not. Its own test
//! binary, with one test, so that no other ring's threads are counted. It
//! reads the threads' names from Linux's /proc.

#![cfg(target_os = "linux")]

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use kqring::ops::{Read, Timeout};
use kqring::{Mode, Ring};

/// This process's kqring threads: (polling threads, workers).
fn kqring_threads() -> (usize, usize) {
    let (mut pollers, mut workers) = (0, 0);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        // A thread may exit between the listing and the read.
        let Ok(comm) = std::fs::read_to_string(task.unwrap().path().join("comm")) else {
            continue;
        };
        match comm.trim() {
            "kqring-poller" => pollers += 1,
            name if name.starts_with("kqring-worker-") => workers += 1,
            _ => {}
        }
    }
    (pollers, workers)
}

/// A joined thread leaves /proc a moment after its join returns (the
/// kernel reaps it after it wakes the joiner): wait for that, bounded.
fn assert_no_kqring_threads() {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let threads = kqring_threads();
        if threads == (0, 0) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "(pollers, workers) still there: {threads:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_dropped_ring_leaves_no_thread_behind() {
    assert_eq!(kqring_threads(), (0, 0), "no ring yet");
    let file = kqring_test_support::temp_file(b"some file content").unwrap();

    for (mode, pollers) in [(Mode::PollingThread, 1), (Mode::Inline, 0)] {
        eprintln!("mode: {mode:?}");
        let ring = Ring::builder().mode(mode).workers(3).build().unwrap();
        // A new thread names itself once it runs.
        wait_until("the ring's threads start", || {
            kqring_threads() == (pollers, 3)
        });

        // Work on the pool and work that waits, still in flight at the drop.
        let (_a, b) = pair();
        submit_all(
            &ring,
            [
                Read::new(file.as_raw_fd(), BytesMut::with_capacity(64))
                    .offset(0)
                    .build()
                    .user_data(1),
                Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                    .build()
                    .user_data(2),
                Timeout::new(Duration::from_secs(3600)).build().user_data(3),
            ],
        );
        let c = wait_n(&ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 17));
        submit_all(
            &ring,
            (0..16u64).map(|i| {
                Read::new(file.as_raw_fd(), BytesMut::with_capacity(4))
                    .offset(i)
                    .build()
                    .user_data(10 + i)
            }),
        );
        drop(ring);
        assert_no_kqring_threads();
    }
}
