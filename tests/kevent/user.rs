//! EVFILT_USER: triggers, the NOTE_FF* operations on the user flags, and
//! the mode flags.
//!
//! A real kqueue replaces a registration's token (`udata`) with the one of
//! every later change to it, triggers included; so every change here
//! carries the registration's token.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use kqring::sys::{Change, Filter, Flags, Waker, note};

use crate::common::*;

/// `Change::trigger` with the registration's token.
fn trigger(ident: usize, token: u64) -> Change {
    Change::trigger(ident).token(token)
}

#[test]
fn trigger_from_another_thread_wakes_a_blocked_kevent() {
    if libkqueue_skips(
        "a trigger from another thread waking a blocked kevent",
        LIBKQUEUE_HOLDS_ITS_LOCK,
    ) {
        return;
    }
    let kq = kq();
    let flags = Flags::ADD | Flags::CLEAR;
    apply(&kq, &[Change::user(0x101, flags, 0).token(0x41)]);
    assert_quiet(&kq);

    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let limit = Duration::from_secs(10);
    std::thread::scope(|s| {
        let kq = &kq;
        let triggerer = s.spawn(move || {
            ready_rx.recv().expect("the waiter is about to block");
            // Correctness never depends on this pause (a trigger that lands
            // before the waiter blocks is simply reported at once); it only
            // makes it likely that the waiter really is asleep in kevent,
            // so that the wake-up path is what gets exercised.
            std::thread::sleep(Duration::from_millis(50));
            apply(kq, &[trigger(0x101, 0x41)]);
            done_tx.send(()).expect("send");
        });

        ready_tx.send(()).expect("send");
        let start = Instant::now();
        let mut events = Vec::new();
        let n = kq.kevent(&[], &mut events, Some(limit)).expect("kevent");
        let took = start.elapsed();
        assert_eq!(n, 1, "{events:?}");
        assert!(
            took < limit / 2,
            "the trigger did not wake the blocked kevent (returned after {took:?})"
        );
        Want::new(0x101, Filter::USER, flags, 0x41).check(&events[0]);
        done_rx.recv().expect("the triggering thread finished");
        triggerer.join().expect("triggering thread");
    });
    // EV_CLEAR: reported once.
    assert_quiet(&kq);
}

/// A kevent(…, None) blocked forever is woken too. Bounded all the same:
/// a watchdog aborts the test binary with a message after 20 s rather than
/// let a broken backend hang the suite.
#[test]
fn trigger_wakes_a_kevent_without_timeout() {
    if libkqueue_skips(
        "a trigger from another thread waking a kevent without timeout",
        LIBKQUEUE_HOLDS_ITS_LOCK,
    ) {
        return;
    }
    let kq = kq();
    apply(
        &kq,
        &[Change::user(0x102, Flags::ADD | Flags::CLEAR, 0).token(0x42)],
    );
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let kq = &kq;
        s.spawn(move || {
            ready_rx.recv().expect("the waiter is about to block");
            // See above: only makes the blocked path likely.
            std::thread::sleep(Duration::from_millis(50));
            apply(kq, &[trigger(0x102, 0x42)]);
            // (Disconnected means the waiter returned and failed: no hang.)
            if let Err(mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(Duration::from_secs(20))
            {
                eprintln!("kevent(.., None) was not woken by EVFILT_USER within 20 s: aborting");
                std::process::abort();
            }
        });
        ready_tx.send(()).expect("send");
        let mut events = Vec::new();
        let n = kq.kevent(&[], &mut events, None).expect("kevent");
        done_tx.send(()).expect("send");
        assert_eq!(n, 1, "{events:?}");
        Want::new(0x102, Filter::USER, Flags::ADD | Flags::CLEAR, 0x42).check(&events[0]);
    });
}

#[test]
fn ffor_ffand_ffcopy_update_the_user_flags() {
    let kq = kq();
    let ident = 0x103;
    let token = 0x43;
    let flags = Flags::ADD | Flags::CLEAR;
    apply(&kq, &[Change::user(ident, flags, 0).token(token)]);
    let want = Want::new(ident, Filter::USER, flags, token);
    let user = |fflags: u32| Change::user(ident, Flags::NONE, fflags).token(token);

    // FFOR with the trigger.
    apply(&kq, &[user(note::TRIGGER | note::FFOR | 0x05)]);
    want.fflags(0x05).check(&wait_one(&kq));
    // FFOR without a trigger: stored, not reported.
    apply(&kq, &[user(note::FFOR | 0x0a)]);
    assert_quiet(&kq);
    // FFAND: 0x0f & 0x3c.
    apply(&kq, &[user(note::TRIGGER | note::FFAND | 0x3c)]);
    want.fflags(0x0c).check(&wait_one(&kq));
    // FFCOPY replaces them.
    apply(&kq, &[user(note::TRIGGER | note::FFCOPY | 0x00_ab_cd_ef)]);
    want.fflags(0x00_ab_cd_ef).check(&wait_one(&kq));
    // FFNOP leaves them; neither the control bits nor NOTE_TRIGGER show.
    apply(&kq, &[user(note::TRIGGER | note::FFNOP | 0x11)]);
    want.fflags(0x00_ab_cd_ef).check(&wait_one(&kq));
    // FFCOPY of nothing clears them.
    apply(&kq, &[user(note::TRIGGER | note::FFCOPY)]);
    want.fflags(0).check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// EV_CLEAR resets the triggered state when the event is retrieved (the
/// user flags are kept: FreeBSD and macOS report the stored flags).
#[test]
fn clear_resets_the_trigger() {
    let kq = kq();
    let flags = Flags::ADD | Flags::CLEAR;
    apply(&kq, &[Change::user(0x104, flags, 0).token(0x44)]);
    let want = Want::new(0x104, Filter::USER, flags, 0x44);

    apply(
        &kq,
        &[Change::user(0x104, Flags::NONE, note::TRIGGER | note::FFOR | 0x11).token(0x44)],
    );
    want.fflags(0x11).check(&wait_one(&kq));
    assert_quiet(&kq);
    assert_quiet(&kq);
    apply(&kq, &[trigger(0x104, 0x44)]);
    want.fflags(0x11).check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// Without EV_CLEAR a triggered user event stays triggered.
#[test]
fn without_clear_a_trigger_stays_reported() {
    let kq = kq();
    apply(&kq, &[Change::user(0x105, Flags::ADD, 0).token(0x45)]);
    assert_quiet(&kq);
    apply(&kq, &[trigger(0x105, 0x45)]);
    let want = Want::new(0x105, Filter::USER, Flags::ADD, 0x45);
    want.check(&wait_one(&kq));
    want.check(&poll_one(&kq));
    want.check(&poll_one(&kq));
    apply(&kq, &[Change::user(0x105, Flags::DELETE, 0).token(0x45)]);
    assert_quiet(&kq);
}

#[test]
fn oneshot_user_event_is_deleted_by_its_delivery() {
    let kq = kq();
    let flags = Flags::ADD | Flags::ONESHOT;
    apply(&kq, &[Change::user(0x106, flags, 0).token(0x46)]);
    apply(&kq, &[trigger(0x106, 0x46)]);
    Want::new(0x106, Filter::USER, flags, 0x46).check(&wait_one(&kq));
    assert_quiet(&kq);
    expect_errors(&kq, &[trigger(0x106, 0x46)], &[libc::ENOENT]);
}

/// EV_DISPATCH: disabled after delivery; a trigger while disabled is kept
/// and delivered on EV_ENABLE ("the filter itself is not disabled").
#[test]
fn dispatch_holds_a_trigger_until_enabled() {
    let kq = kq();
    let flags = Flags::ADD | Flags::CLEAR | Flags::DISPATCH;
    apply(&kq, &[Change::user(0x107, flags, 0).token(0x47)]);
    let want = Want::new(0x107, Filter::USER, flags, 0x47);

    apply(&kq, &[trigger(0x107, 0x47)]);
    want.check(&wait_one(&kq));
    if libkqueue_skips(
        "a trigger held while EV_DISPATCH disabled the registration",
        "libkqueue's EVFILT_USER reports it at once",
    ) {
        return;
    }
    apply(&kq, &[trigger(0x107, 0x47)]);
    assert_quiet(&kq);
    apply(&kq, &[Change::user(0x107, Flags::ENABLE, 0).token(0x47)]);
    want.check(&wait_one(&kq));
    assert_quiet(&kq);
}

#[test]
fn trigger_of_an_unknown_user_event_is_enoent() {
    let kq = kq();
    expect_errors(&kq, &[trigger(0x108, 0x48)], &[libc::ENOENT]);
    // A different filter with that ident does not count.
    apply(
        &kq,
        &[Change::timer(0x108, Flags::ADD, Duration::from_secs(3600)).token(0x48)],
    );
    expect_errors(&kq, &[trigger(0x108, 0x48)], &[libc::ENOENT]);
}

/// Registrations are keyed by (ident, filter): the same number under two
/// filters is two registrations.
#[test]
fn same_ident_under_two_filters_is_two_registrations() {
    let kq = kq();
    let ident = 0x109;
    apply(
        &kq,
        &[
            Change::user(ident, Flags::ADD, 0).token(0x49),
            Change::timer(
                ident,
                Flags::ADD | Flags::ONESHOT,
                Duration::from_millis(10),
            )
            .token(0x4a),
        ],
    );
    apply(&kq, &[Change::user(ident, Flags::DELETE, 0).token(0x49)]);
    let ev = wait_one(&kq);
    Want::new(ident, Filter::TIMER, Flags::ADD | Flags::ONESHOT, 0x4a)
        .data(1)
        .check(&ev);
    expect_errors(&kq, &[trigger(ident, 0x49)], &[libc::ENOENT]);
}

/// EV_DISABLE withholds a trigger that is pending; EV_ENABLE delivers it.
#[test]
fn disable_withholds_a_pending_trigger() {
    let kq = kq();
    let flags = Flags::ADD | Flags::CLEAR;
    apply(&kq, &[Change::user(0x10a, flags, 0).token(0x4b)]);
    apply(&kq, &[trigger(0x10a, 0x4b)]);
    apply(&kq, &[Change::user(0x10a, Flags::DISABLE, 0).token(0x4b)]);
    assert_quiet(&kq);
    apply(&kq, &[Change::user(0x10a, Flags::ENABLE, 0).token(0x4b)]);
    Want::new(0x10a, Filter::USER, flags, 0x4b).check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// An EVFILT_USER event carries the `data` of the last change made to it
/// (FreeBSD's and macOS's filt_user report the stored `kn_sdata`).
#[test]
fn user_event_carries_the_data_of_the_last_change() {
    if libkqueue_skips(
        "EVFILT_USER data",
        "libkqueue's EVFILT_USER keeps the data of the EV_ADD",
    ) {
        return;
    }
    let kq = kq();
    let flags = Flags::ADD | Flags::CLEAR;
    apply(&kq, &[Change::user(0x10b, flags, 0).token(0x4c)]);
    apply(&kq, &[trigger(0x10b, 0x4c).data(42)]);
    Want::new(0x10b, Filter::USER, flags, 0x4c)
        .data(42)
        .check(&wait_one(&kq));
}

/// What kqring wakes its driver with: `sys::Waker` works on every backend,
/// libkqueue included (where it is not an EVFILT_USER trigger). Its event
/// carries the token; after `reset`, it is quiet.
#[test]
fn waker_from_another_thread_wakes_a_blocked_kevent() {
    let kq = kq();
    let waker = Waker::new(&kq, 0x4d).expect("Waker::new");
    assert_quiet(&kq);

    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let limit = Duration::from_secs(10);
    std::thread::scope(|s| {
        let (kq, waker) = (&kq, &waker);
        s.spawn(move || {
            ready_rx.recv().expect("the waiter is about to block");
            // Only makes it likely that the waiter is asleep in kevent.
            std::thread::sleep(Duration::from_millis(50));
            waker.wake(kq).expect("wake");
        });
        ready_tx.send(()).expect("send");
        let start = Instant::now();
        let mut events = Vec::new();
        let n = kq.kevent(&[], &mut events, Some(limit)).expect("kevent");
        let took = start.elapsed();
        assert_eq!(n, 1, "{events:?}");
        assert!(
            took < limit / 2,
            "the waker did not wake the blocked kevent (returned after {took:?})"
        );
        assert_eq!(events[0].token(), 0x4d, "{events:?}");
        assert!(!events[0].is_error(), "{events:?}");
    });
    waker.reset();
    assert_quiet(&kq);
    // And again, without a thread: the next call returns at once.
    waker.wake(&kq).expect("wake");
    assert_eq!(wait_one(&kq).token(), 0x4d);
    waker.reset();
    assert_quiet(&kq);
}
