//! EVFILT_TIMER: one-shot and periodic timers, and every unit.
//!
//! Timers must never fire early; how late they fire is only bounded
//! generously ([`WAIT`]), since a loaded machine may be slow.
//! `fflags` of a timer event is 0 on a real kqueue (FreeBSD moves the
//! registration's unit bits into the knote and reports none).

use std::time::{Duration, Instant};

use kqring::sys::{Change, Filter, Flags, TimerUnit};

use crate::common::*;

#[test]
fn oneshot_timer_fires_once_after_its_period() {
    let kq = kq();
    let period = Duration::from_millis(20);
    let flags = Flags::ADD | Flags::ONESHOT;
    let start = Instant::now();
    let mut events = Vec::new();
    // Registered and waited for in one call.
    let n = kq
        .kevent(
            &[Change::timer(0x201, flags, period).token(0x51)],
            &mut events,
            Some(WAIT),
        )
        .expect("kevent");
    let took = start.elapsed();
    assert_eq!(n, 1, "the timer did not fire within {WAIT:?}: {events:?}");
    assert!(
        took >= period,
        "fired after {took:?}, before its period {period:?}"
    );
    assert!(took < WAIT, "{took:?}");
    Want::new(0x201, Filter::TIMER, flags, 0x51)
        .data(1)
        .check(&events[0]);

    // Gone after firing: nothing more, and EV_DELETE finds nothing.
    assert!(wait(&kq, 5 * period).is_empty());
    expect_errors(
        &kq,
        &[Change::timer(0x201, Flags::DELETE, period).token(0x51)],
        &[libc::ENOENT],
    );
}

#[test]
fn periodic_timer_fires_repeatedly_until_deleted() {
    let kq = kq();
    let period = Duration::from_millis(10);
    let start = Instant::now();
    apply(&kq, &[Change::timer(0x202, Flags::ADD, period).token(0x52)]);
    let want = Want::new(0x202, Filter::TIMER, Flags::ADD, 0x52).data_at_least(1);

    let mut expirations = 0;
    for _ in 0..5 {
        let ev = wait_one(&kq);
        want.check(&ev);
        expirations += ev.data();
    }
    let took = start.elapsed();
    // `data` counts expirations since the last report: never more than
    // the time that has passed allows.
    assert!(expirations >= 5);
    assert!(
        took >= period * expirations as u32,
        "{expirations} expirations of {period:?} reported after only {took:?}"
    );

    // Not retrieved for a while: the expirations add up in one report.
    // (The sleep only makes time pass; the bound is generous.)
    std::thread::sleep(10 * period);
    let ev = wait_one(&kq);
    want.check(&ev);
    assert!(
        ev.data() >= 5,
        "{ev:?}: expirations not counted while unretrieved"
    );
    expirations += ev.data();
    let took = start.elapsed();
    assert!(
        took >= period * expirations as u32,
        "{expirations} expirations of {period:?} reported after only {took:?}"
    );

    apply(
        &kq,
        &[Change::timer(0x202, Flags::DELETE, period).token(0x52)],
    );
    // EV_DELETE also discards an expiration that is already pending.
    assert!(wait(&kq, 5 * period).is_empty());
}

/// Every unit fires after its period (all timers run at once; each event
/// comes no earlier than its own period). `TimerUnit::fflags` is `None`
/// where a platform lacks a unit, and `Change::timer_in` then converts to
/// milliseconds, so this runs everywhere.
#[test]
fn every_timer_unit_fires_after_its_period() {
    let kq = kq();
    let flags = Flags::ADD | Flags::ONESHOT;
    let timers = [
        (0x203usize, TimerUnit::Millis, 30i64),
        (0x204, TimerUnit::Micros, 30_000),
        (0x205, TimerUnit::Nanos, 30_000_000),
        (0x206, TimerUnit::Seconds, 1),
    ];
    let start = Instant::now();
    let changes: Vec<Change> = timers
        .iter()
        .map(|&(ident, unit, value)| {
            Change::timer_in(ident, flags, value, unit).token(ident as u64)
        })
        .collect();
    apply(&kq, &changes);

    let wants: Vec<Want> = timers
        .iter()
        .map(|&(ident, _, _)| Want::new(ident, Filter::TIMER, flags, ident as u64).data(1))
        .collect();
    let mut fired = vec![None; timers.len()];
    while fired.iter().any(Option::is_none) {
        let events = wait(&kq, WAIT);
        let now = start.elapsed();
        assert!(
            !events.is_empty(),
            "timers still pending after {now:?}: {fired:?}"
        );
        for ev in events {
            let i = wants
                .iter()
                .position(|w| w.matches(&ev))
                .unwrap_or_else(|| panic!("unexpected event {ev:?}"));
            assert!(fired[i].is_none(), "one-shot timer fired twice: {ev:?}");
            wants[i].check(&ev);
            fired[i] = Some(now);
        }
    }
    for (&(ident, unit, value), at) in timers.iter().zip(fired) {
        let period = unit.tick() * value as u32;
        let at = at.unwrap();
        assert!(
            at >= period,
            "timer {ident:#x} ({value} {unit:?}) fired after {at:?}"
        );
    }
    assert_quiet(&kq);
}

/// EV_ADD on an existing timer restarts it with the new period.
#[test]
fn add_on_an_existing_timer_rearms_it() {
    let kq = kq();
    let flags = Flags::ADD | Flags::ONESHOT;
    apply(
        &kq,
        &[Change::timer(0x207, flags, Duration::from_secs(3600)).token(0x57)],
    );
    let start = Instant::now();
    apply(
        &kq,
        &[Change::timer(0x207, flags, Duration::from_millis(20)).token(0x57)],
    );
    let ev = wait_one(&kq);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20), "{took:?}");
    Want::new(0x207, Filter::TIMER, flags, 0x57)
        .data(1)
        .check(&ev);
}

/// A disabled timer is not reported; enabled, its expirations are.
#[test]
fn disabled_timer_is_silent_until_enabled() {
    let kq = kq();
    let period = Duration::from_millis(10);
    let flags = Flags::ADD | Flags::DISABLE;
    apply(&kq, &[Change::timer(0x208, flags, period).token(0x58)]);
    assert!(wait(&kq, 10 * period).is_empty());
    apply(
        &kq,
        &[Change::timer(0x208, Flags::ENABLE, period).token(0x58)],
    );
    Want::new(0x208, Filter::TIMER, flags, 0x58)
        .data_at_least(1)
        .check(&wait_one(&kq));
}

/// A timer deleted before it expires never fires.
#[test]
fn deleted_timer_never_fires() {
    let kq = kq();
    let period = Duration::from_millis(30);
    apply(
        &kq,
        &[Change::timer(0x209, Flags::ADD | Flags::ONESHOT, period).token(0x59)],
    );
    apply(
        &kq,
        &[Change::timer(0x209, Flags::DELETE, period).token(0x59)],
    );
    assert!(wait(&kq, 4 * period).is_empty());
}
