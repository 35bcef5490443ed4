//! Invariant 6: an idle ring costs no CPU after `sq_idle`. Its own test
//! binary, so that no other ring's polling thread is counted. It reads the
//! thread's CPU time from Linux's /proc.

#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use kqring::ops::Nop;

#[test]
fn an_idle_ring_costs_no_cpu_after_sq_idle() {
    let ring = kqring::Ring::builder()
        .sq_idle(Duration::from_millis(1))
        .build()
        .unwrap();
    submit_all(&ring, [Nop::new().build().user_data(1)]);
    wait_n(&ring, 1);
    // Parked for good: its last park was not ended by a wakeup, and the
    // `kevent` call it parks in is counted (the count goes up just before
    // the call; nothing else in this ring makes one). Until then the
    // counters may still move.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let s = ring.stats();
        if s.parks > s.wakeups && s.kevent_calls == s.parks {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "poller never parked: {s:?}"
        );
        std::thread::yield_now();
    }
    let (stats, before) = (ring.stats(), poller_cpu());
    // Time has to pass for this measurement; nothing waits on it.
    std::thread::sleep(Duration::from_secs(1));
    let used = poller_cpu() - before;
    assert!(
        used < Duration::from_millis(50),
        "idle poller used {used:?} of CPU in 1 s"
    );
    // Parked means parked: not a turn, not a kevent call, not a wakeup.
    assert_eq!(ring.stats(), stats);
}

/// CPU time (user + system) of this process's `kqring-poller` thread,
/// which must be there, and alone.
fn poller_cpu() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut total = 0;
    let mut found = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        if std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            != "kqring-poller"
        {
            continue;
        }
        found += 1;
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // Fields after the parenthesised name: utime is the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        total += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    assert_eq!(found, 1, "kqring-poller threads found in /proc/self/task");
    Duration::from_millis(total * 1000 / ticks)
}
