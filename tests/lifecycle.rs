//! The ring's life: dropping it mid-flight, a full completion queue, a full
//! submission queue, and the need-wakeup handshake.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use kqring::ops::{Nop, Read, Timeout};
use kqring::{Mode, Ring};

#[test]
fn dropping_the_ring_cancels_in_flight_ops_and_returns_their_buffers() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).build().unwrap();
        let (_a, b) = pair();
        submit_all(
            &ring,
            (0..5)
                .map(|i| {
                    Read::new(b.as_raw_fd(), BytesMut::with_capacity(32))
                        .build()
                        .user_data(i)
                })
                .chain([Timeout::new(Duration::from_secs(3600)).build().user_data(5)]),
        );
        assert_quiet(&ring);
        let (sq, cq) = ring.split();
        drop(ring);
        let mut cqes: Vec<_> = cq.drain().collect();
        cqes.sort_by_key(|c| c.user_data());
        assert_eq!(cqes.len(), 6, "{mode:?}: every op completes exactly once");
        for (i, c) in cqes.iter_mut().enumerate() {
            assert_eq!((c.user_data(), c.result()), (i as u64, -libc::ECANCELED));
            if i < 5 {
                let buf = c.take_buf::<BytesMut>().expect("buffer back");
                assert_eq!(buf.capacity(), 32);
            }
        }
        // The queues outlive the ring but accept nothing more.
        let back = sq
            .push(Nop::new().build().user_data(77))
            .expect_err("ring is gone");
        assert!(back.is_closed());
        assert_eq!(back.into_inner().get_user_data(), 77);
        assert_eq!(
            sq.submit().unwrap_err().raw_os_error(),
            Some(libc::ESHUTDOWN)
        );
    }
}

/// Runs `f` on its own thread and fails if it doesn't end within
/// `PATIENCE`: a drop that hangs becomes a test failure, not a hung run.
fn within_patience<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}

#[test]
fn waits_after_the_ring_is_gone_end_with_eshutdown() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).build().unwrap();
        let cq = ring.completion().clone();
        ring.submission()
            .push(Nop::new().build().user_data(1))
            .unwrap();
        ring.submit_and_wait(1).unwrap();
        drop(ring);
        // What was completed is still there; then nothing more will come.
        let c = cq.wait().unwrap();
        assert_eq!((c.user_data(), c.result()), (1, 0));
        let err = within_patience("a wait on a dropped ring", move || cq.wait().unwrap_err());
        assert_eq!(err.raw_os_error(), Some(libc::ESHUTDOWN), "{mode:?}");
    }
}

#[test]
fn a_consumer_waiting_on_another_thread_gets_the_cancellations_of_the_drop() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).build().unwrap();
        let (_a, b) = pair();
        start(
            &ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        let cq = ring.completion().clone();
        // With an inline ring this thread drives the ring while it waits,
        // parked in kevent; the drop must wake it and not wait for it.
        let waiter = std::thread::spawn(move || {
            let first = cq.wait();
            (first, cq.wait())
        });
        // The waiter may or may not be parked by now: either way the drop
        // must get through.
        within_patience("the drop", move || drop(ring));
        let (first, second) = waiter.join().unwrap();
        let mut c = first.unwrap();
        assert_eq!(
            (c.user_data(), c.result()),
            (1, -libc::ECANCELED),
            "{mode:?}"
        );
        assert_eq!(take_mut(&mut c).capacity(), 8);
        assert_eq!(second.unwrap_err().raw_os_error(), Some(libc::ESHUTDOWN));
    }
}

#[test]
fn the_drop_cancels_an_async_read_of_a_blocking_socket() {
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).build().unwrap();
        // A blocking socket with no data, forced onto the pool: the worker
        // must not park on it, or the drop would wait for it for ever.
        let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        submit_all(
            &ring,
            [Read::new(b.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)
                .flags(kqring::SqeFlags::ASYNC)],
        );
        let deadline = std::time::Instant::now() + PATIENCE;
        while ring.stats().offloaded == 0 {
            assert!(std::time::Instant::now() < deadline, "never offloaded");
            let _ = ring.completion().wait_timeout(Duration::from_millis(1));
        }
        let cq = ring.completion().clone();
        within_patience("the drop", move || drop(ring));
        let mut c = cq.pop().expect("the read's completion");
        assert_eq!(
            (c.user_data(), c.result()),
            (1, -libc::ECANCELED),
            "{mode:?}"
        );
        assert_eq!(take_mut(&mut c).capacity(), 8);
        assert!(cq.pop().is_none());
    }
}

#[test]
fn a_full_submission_queue_hands_the_entry_back() {
    // Inline: nothing takes entries until the caller drives.
    let ring = Ring::builder().inline().sq_entries(4).build().unwrap();
    let sq = ring.submission();
    for i in 0..4 {
        sq.push(Nop::new().build().user_data(i)).unwrap();
    }
    let back = sq
        .push(Nop::new().build().user_data(4))
        .expect_err("queue is full");
    assert!(!back.is_closed());
    let back = back.into_inner();
    assert_eq!(back.get_user_data(), 4);
    sq.submit_and_wait(4).unwrap();
    sq.push(back).unwrap();
    sq.submit_and_wait(5).unwrap();
    let got: Vec<u64> = ring.completion().drain().map(|c| c.user_data()).collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[test]
fn a_full_completion_queue_overflows_without_loss_and_refuses_submissions() {
    let ring = Ring::builder()
        .inline()
        .sq_entries(16)
        .cq_entries(4)
        .build()
        .unwrap();
    let sq = ring.submission();
    for i in 0..10 {
        sq.push(Nop::new().build().user_data(i)).unwrap();
    }
    sq.submit().unwrap();
    assert_eq!(ring.completion().len(), 4);
    assert_eq!(sq.submit().unwrap_err().raw_os_error(), Some(libc::EBUSY));
    let mut got = Vec::new();
    while got.len() < 10 {
        let c = ring
            .completion()
            .wait_timeout(PATIENCE)
            .unwrap()
            .expect("completion");
        got.push(c.user_data());
    }
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(ring.stats().overflowed, 6);
    sq.submit().unwrap();
}

#[test]
fn a_slow_consumer_of_a_tiny_cq_gets_a_thousand_completions_in_order() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder()
            .mode(mode)
            .sq_entries(64)
            .cq_entries(8)
            .build()
            .unwrap();
        let (sq, cq) = ring.split();
        // Submissions refused with EBUSY so far, and whether the producer
        // is done: the consumer reads only after a refusal, so the CQ
        // really overflows and the producer really meets a full ring.
        let refused = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let producer = std::thread::spawn({
            let (refused, done) = (refused.clone(), done.clone());
            move || {
                for i in 0..1000u64 {
                    let mut sqe = Nop::new().build().user_data(i);
                    while let Err(back) = sq.push(sqe) {
                        sqe = back.into_inner();
                        match sq.submit() {
                            Ok(()) => {}
                            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => panic!("submit: {e}"),
                        }
                        std::thread::yield_now();
                    }
                }
                sq.submit().unwrap_or_else(|e| {
                    assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
                });
                done.store(true, Ordering::SeqCst);
                // A last refused submission is taken when the consumer
                // drains: the pushed entries stay in the queue until then.
            }
        });
        let mut next = 0;
        let mut seen_refusals = 0;
        while next < 1000 {
            // The slow part: every 100 completions, stop reading until the
            // producer has been refused again (or has pushed everything).
            if next % 100 == 0 {
                let deadline = std::time::Instant::now() + PATIENCE;
                while refused.load(Ordering::SeqCst) == seen_refusals
                    && !done.load(Ordering::SeqCst)
                {
                    assert!(std::time::Instant::now() < deadline, "{mode:?}: no refusal");
                    std::thread::yield_now();
                }
                seen_refusals = refused.load(Ordering::SeqCst);
            }
            let c = cq
                .wait_timeout(PATIENCE)
                .unwrap()
                .unwrap_or_else(|| panic!("{mode:?}: stuck at {next}"));
            assert_eq!(c.user_data(), next, "{mode:?}: order kept");
            next += 1;
        }
        producer.join().unwrap();
        assert!(cq.pop().is_none());
        assert!(
            refused.load(Ordering::SeqCst) > 0,
            "{mode:?}: never refused"
        );
        assert!(ring.stats().overflowed > 0, "{mode:?}: {:?}", ring.stats());
    }
}

#[test]
fn a_parked_poller_is_woken_by_a_submission() {
    let ring = Ring::builder().sq_idle(Duration::ZERO).build().unwrap();
    // Let it park: with no spinning it parks at once; wait until it has.
    let deadline = std::time::Instant::now() + PATIENCE;
    while ring.stats().parks == 0 {
        assert!(std::time::Instant::now() < deadline, "poller never parked");
        std::thread::yield_now();
    }
    let before = ring.stats().wakeups;
    submit_all(&ring, [Nop::new().build().user_data(1)]);
    assert_eq!(wait_n(&ring, 1)[0].user_data(), 1);
    assert_eq!(
        ring.stats().wakeups,
        before + 1,
        "a parked poller needs exactly one wakeup"
    );
}

#[test]
fn a_spinning_poller_needs_no_wakeup() {
    let ring = Ring::builder()
        .sq_idle(Duration::from_secs(30))
        .build()
        .unwrap();
    for i in 0..100 {
        submit_all(&ring, [Nop::new().build().user_data(i)]);
        assert_eq!(wait_n(&ring, 1)[0].user_data(), i);
    }
    assert_eq!(ring.stats().wakeups, 0, "{:?}", ring.stats());
}

#[test]
fn a_parked_poller_always_wakes_for_the_ring_drop() {
    // The drop's wakeup must reach the poller even when the poller parks
    // at the very moment it is sent: a wakeup swallowed by the waking
    // call itself would leave the join hanging. Many rounds make every
    // interleaving likely; a watchdog turns a hang into a failure.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for round in 0..300 {
            let ring = Ring::builder().sq_idle(Duration::ZERO).build().unwrap();
            if round % 2 == 0 {
                submit_all(&ring, [Nop::new().build().user_data(round)]);
                assert_eq!(wait_n(&ring, 1)[0].user_data(), round);
            }
            drop(ring);
        }
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(PATIENCE * 3)
        .expect("a dropped ring's poller did not wake");
}

#[test]
fn an_overflowing_inline_ring_drains_when_the_caller_submits_again() {
    // An inline ring has no thread of its own to move the overflow list
    // into the CQ: the next submit must do it once the consumer has
    // reaped, and then take entries again.
    let ring = Ring::builder()
        .inline()
        .sq_entries(8)
        .cq_entries(2)
        .build()
        .unwrap();
    let sq = ring.submission();
    for i in 0..6 {
        sq.push(Nop::new().build().user_data(i)).unwrap();
    }
    sq.submit().unwrap();
    assert_eq!(ring.completion().len(), 2);
    sq.push(Nop::new().build().user_data(6)).unwrap();
    assert_eq!(sq.submit().unwrap_err().raw_os_error(), Some(libc::EBUSY));
    let mut got: Vec<u64> = ring.completion().drain().map(|c| c.user_data()).collect();
    // Reaped two; the overflow list still holds four, so submit moves two
    // in and still answers EBUSY until it is empty.
    for _ in 0..100 {
        if got.len() == 7 {
            break;
        }
        let _ = sq.submit();
        got.extend(ring.completion().drain().map(|c| c.user_data()));
    }
    assert_eq!(got, (0..7).collect::<Vec<_>>());
    sq.submit().unwrap();
}
