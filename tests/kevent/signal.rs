//! EVFILT_SIGNAL: counting deliveries.
//!
//! Each test blocks its own signal in its own thread and sends it to that
//! thread only (see `BlockedSignal`), so that parallel tests never see each
//! other's signals and nothing runs a default action. kqueue records every
//! attempt to deliver the signal, blocked or not, and sets EV_CLEAR on the
//! registration itself (see `implied_flags`): `data` counts the deliveries
//! since the last report.

use kqring::sys::{Change, Filter, Flags};

use crate::common::*;

/// Why the system's libkqueue is not asked to count a signal here: its
/// current sources no longer see a signal sent to one thread
/// (`pthread_kill`), and this suite can send no other kind safely (a
/// process-directed signal may go to another test's thread and run its
/// default action there).
const LIBKQUEUE_THREAD_SIGNALS: &str = "current libkqueue sources do not see thread-directed \
    signals, the only kind a multi-threaded test can send safely";

#[test]
fn one_delivery_counts_one() {
    if libkqueue_skips(
        "EVFILT_SIGNAL counting one delivery",
        LIBKQUEUE_THREAD_SIGNALS,
    ) {
        return;
    }
    let sig = libc::SIGUSR1;
    let blocked = BlockedSignal::new(sig);
    let kq = kq();
    apply(&kq, &[Change::signal(sig, Flags::ADD).token(0x71)]);
    assert_quiet(&kq);
    let want = Want::new(sig as usize, Filter::SIGNAL, Flags::ADD, 0x71);

    blocked.raise(1);
    want.data(1).check(&wait_one(&kq));
    // Cleared by the report.
    assert_quiet(&kq);
    blocked.raise(1);
    want.data(1).check(&wait_one(&kq));
    assert_quiet(&kq);

    // Deleted: no longer counted.
    apply(&kq, &[Change::signal(sig, Flags::DELETE).token(0x71)]);
    blocked.raise(1);
    assert_quiet(&kq);
}

/// The signal to count three deliveries of. A real kqueue counts every
/// delivery attempt of any signal; Linux (the compat's signalfd, and
/// libkqueue's) merges instances of a standard signal while it is pending,
/// so there this uses a real-time signal, which Linux queues one per
/// delivery. macOS has no real-time signals, so the BSDs use SIGUSR2.
fn counted_signal() -> libc::c_int {
    #[cfg(target_os = "linux")]
    {
        libc::SIGRTMIN() + 1
    }
    #[cfg(not(target_os = "linux"))]
    {
        libc::SIGUSR2
    }
}

#[test]
fn three_deliveries_count_three() {
    if libkqueue_skips(
        "EVFILT_SIGNAL counting deliveries",
        "libkqueue reads the signal from a signalfd, which can't count them: data is 1",
    ) {
        return;
    }
    let sig = counted_signal();
    let blocked = BlockedSignal::new(sig);
    let kq = kq();
    apply(&kq, &[Change::signal(sig, Flags::ADD).token(0x72)]);
    assert_quiet(&kq);

    blocked.raise(3);
    Want::new(sig as usize, Filter::SIGNAL, Flags::ADD, 0x72)
        .data(3)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// Only deliveries made while the registration exists are counted: a
/// signal already pending when it is added is not.
#[test]
fn a_signal_sent_before_the_registration_is_not_counted() {
    if libkqueue_skips(
        "ignoring a signal pending before the registration",
        "libkqueue (since 2.6.0) reports a signal already pending when it is added",
    ) {
        return;
    }
    let sig = libc::SIGWINCH;
    let blocked = BlockedSignal::new(sig);
    let kq = kq();
    blocked.raise(1);
    apply(&kq, &[Change::signal(sig, Flags::ADD).token(0x73)]);
    assert_quiet(&kq);
    blocked.raise(1);
    Want::new(sig as usize, Filter::SIGNAL, Flags::ADD, 0x73)
        .data(1)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}
