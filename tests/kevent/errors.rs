//! Change errors (EV_ERROR events with the errno in `data`) and the
//! timeout contract of `kevent`.

use std::time::{Duration, Instant};

use kqring::sys::{Change, Event, Flags, note};

use crate::common::*;

/// EV_DELETE, EV_ENABLE or EV_DISABLE of a registration that was never
/// added fails with ENOENT, for every filter; the results come back in the
/// order of the changes.
#[test]
fn changes_to_unregistered_registrations_are_enoent() {
    let kq = kq();
    let (rx, tx) = pair(Kind::Pipe);
    let file = TempFile::new("enoent");
    let changes = [
        Change::read(raw(&rx), Flags::DELETE).token(1),
        Change::write(raw(&tx), Flags::DELETE).token(2),
        Change::read(raw(&rx), Flags::ENABLE).token(3),
        Change::write(raw(&tx), Flags::DISABLE).token(4),
        Change::user(0x301, Flags::DELETE, 0).token(5),
        Change::timer(0x302, Flags::DELETE, Duration::from_millis(1)).token(6),
        Change::signal(libc::SIGURG, Flags::DELETE).token(7),
        Change::proc_exit(std::process::id() as libc::pid_t, Flags::DELETE).token(8),
        Change::vnode(file.fd(), Flags::DELETE, note::WRITE).token(9),
    ];
    expect_errors(&kq, &changes, &[libc::ENOENT; 9]);
    assert_quiet(&kq);
}

/// A descriptor number that is not open: EBADF, whatever the change.
#[test]
fn changes_on_a_closed_descriptor_are_ebadf() {
    let kq = kq();
    let fd = closed_fd();
    let changes = [
        Change::read(fd, Flags::ADD).token(1),
        Change::write(fd, Flags::ADD).token(2),
        Change::vnode(fd, Flags::ADD | Flags::CLEAR, note::WRITE).token(3),
        Change::read(fd, Flags::DELETE).token(4),
    ];
    expect_errors(&kq, &changes, &[libc::EBADF; 4]);
    assert_quiet(&kq);
}

/// An EV_RECEIPT change that fails reports its errno like any other.
#[test]
fn receipt_of_a_failing_change_carries_the_errno() {
    let kq = kq();
    let fd = closed_fd();
    let changes = [
        Change::read(fd, Flags::ADD | Flags::RECEIPT).token(1),
        Change::user(0x303, Flags::ADD | Flags::RECEIPT, 0).token(2),
        Change::user(0x304, Flags::DELETE | Flags::RECEIPT, 0).token(3),
    ];
    let events = results(&kq, &changes);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_result(&events[0], &changes[0], libc::EBADF);
    assert_result(&events[1], &changes[1], 0);
    assert_result(&events[2], &changes[2], libc::ENOENT);
}

/// More failing changes than room in `events`: every error is still
/// reported (the list is grown), appended after what `events` held, and
/// changes that succeed in between are applied silently.
#[test]
fn all_change_errors_are_reported_when_events_is_small() {
    let kq = kq();
    let (rx, _tx) = pair(Kind::Pipe);
    let changes: Vec<Change> = (0..40)
        .map(|i| {
            if i % 4 == 3 {
                // Succeeds: no result.
                Change::user(0x400 + i, Flags::ADD, 0).token(i as u64)
            } else {
                Change::user(0x400 + i, Flags::DELETE, 0).token(i as u64)
            }
        })
        .chain([Change::read(raw(&rx), Flags::DELETE).token(99)])
        .collect();
    let failing: Vec<&Change> = changes
        .iter()
        .filter(|c| c.flags() == Flags::DELETE)
        .collect();
    assert_eq!(failing.len(), 31);

    for capacity in [0, 1] {
        eprintln!("capacity {capacity}");
        let mut events: Vec<Event> = Vec::with_capacity(capacity);
        let start = Instant::now();
        let n = kq
            .kevent(&changes, &mut events, Some(2 * WAIT))
            .expect("kevent");
        assert!(
            start.elapsed() < WAIT,
            "kevent waited with results to report"
        );
        assert_eq!(n, failing.len(), "{events:?}");
        assert_eq!(events.len(), failing.len());
        for (ev, change) in events.iter().zip(&failing) {
            assert_result(ev, change, libc::ENOENT);
        }
    }

    // Appends after the events already there.
    let mut events = wait_prefilled(&kq, &changes);
    let first = events.remove(0);
    assert_eq!(
        first.ident(),
        0x3ff,
        "the first event was overwritten: {first:?}"
    );
    assert_eq!(events.len(), failing.len());
    for (ev, change) in events.iter().zip(&failing) {
        assert_result(ev, change, libc::ENOENT);
    }
    // The successful EV_ADDs were applied (the second pass re-added them).
    let user = Change::user(0x403, Flags::DELETE | Flags::RECEIPT, 0).token(3);
    assert_result(&results(&kq, &[user])[0], &user, 0);
}

/// Submits `changes` with `events` already holding one event (of ident
/// 0x3ff, from a timer) and no spare room.
fn wait_prefilled(kq: &kqring::sys::Kqueue, changes: &[Change]) -> Vec<Event> {
    let timer =
        Change::timer(0x3ff, Flags::ADD | Flags::ONESHOT, Duration::from_millis(1)).token(7);
    let mut events = Vec::with_capacity(1);
    let n = kq
        .kevent(&[timer], &mut events, Some(WAIT))
        .expect("kevent");
    assert_eq!(n, 1, "{events:?}");
    events.shrink_to_fit();
    let n = kq
        .kevent(changes, &mut events, Some(2 * WAIT))
        .expect("kevent");
    assert_eq!(n + 1, events.len());
    events
}

#[test]
fn zero_timeout_returns_at_once_when_nothing_is_ready() {
    let kq = kq();
    let mut events = Vec::with_capacity(8);
    let start = Instant::now();
    assert_eq!(kq.kevent(&[], &mut events, NOW).expect("kevent"), 0);
    assert!(events.is_empty());

    // With registrations that are not ready, too.
    let (rx, _tx) = pair(Kind::SocketPair);
    apply(
        &kq,
        &[
            Change::read(raw(&rx), Flags::ADD).token(1),
            Change::user(0x305, Flags::ADD, 0).token(2),
            Change::timer(0x306, Flags::ADD, Duration::from_secs(3600)).token(3),
        ],
    );
    assert_eq!(kq.kevent(&[], &mut events, NOW).expect("kevent"), 0);
    assert!(events.is_empty());
    // A registration made in the same call, not ready: still nothing.
    let add = Change::user(0x307, Flags::ADD, 0).token(4);
    assert_eq!(kq.kevent(&[add], &mut events, NOW).expect("kevent"), 0);
    assert!(events.is_empty());
    assert!(start.elapsed() < WAIT, "{:?}", start.elapsed());
}

#[test]
fn timeout_elapses_without_events() {
    let kq = kq();
    let (rx, _tx) = pair(Kind::Pipe);
    apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(1)]);
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    let events = wait(&kq, timeout);
    let took = start.elapsed();
    assert!(events.is_empty(), "{events:?}");
    assert!(
        took >= timeout,
        "returned after {took:?}, before the timeout {timeout:?}"
    );
    assert!(took < WAIT, "{took:?}");
}

/// `kevent` appends: a call whose events do not fit the spare capacity
/// still returns them all across calls, none lost, none duplicated.
#[test]
fn more_ready_events_than_capacity_are_returned_across_calls() {
    let kq = kq();
    let idents: Vec<usize> = (0x500..0x510).collect();
    let changes: Vec<Change> = idents
        .iter()
        .map(|&i| Change::user(i, Flags::ADD | Flags::CLEAR, 0).token(i as u64))
        .collect();
    apply(&kq, &changes);
    let triggers: Vec<Change> = idents
        .iter()
        .map(|&i| Change::trigger(i).token(i as u64))
        .collect();
    apply(&kq, &triggers);

    let mut seen = Vec::new();
    while seen.len() < idents.len() {
        let mut events = Vec::with_capacity(3);
        let n = kq.kevent(&[], &mut events, Some(WAIT)).expect("kevent");
        assert!(n >= 1, "events lost: saw only {seen:?}");
        for ev in &events {
            Want::new(
                ev.ident(),
                kqring::sys::Filter::USER,
                Flags::ADD | Flags::CLEAR,
                ev.ident() as u64,
            )
            .check(ev);
            assert!(idents.contains(&ev.ident()), "{ev:?}");
            assert!(!seen.contains(&ev.ident()), "reported twice: {ev:?}");
            seen.push(ev.ident());
        }
    }
    assert_quiet(&kq);
}
