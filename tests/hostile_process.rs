//! The hostile cases that watch the whole process — its descriptor table,
//! a fork — so they run apart from the other tests, one at a time.

mod common;

// What the case read from Linux's /proc uses.
use std::sync::Mutex;
use std::time::Instant;
#[cfg(target_os = "linux")]
use {kqring::ops::Close, std::collections::BTreeSet, std::os::fd::RawFd};

use common::*;
use kqring::ops::Nop;
use kqring::{Mode, Ring};

/// One test at a time: each looks at the whole process.
static ALONE: Mutex<()> = Mutex::new(());

#[cfg(target_os = "linux")]
fn open_fds() -> BTreeSet<RawFd> {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Case 9: a `Close` of one of the ring's own descriptors (its kqueue and
/// what that is built of) is `-EBADF`, as io_uring refuses a close of its
/// ring; the ring goes on working and its drop returns. (The descriptor
/// table is read from Linux's /proc.)
#[cfg(target_os = "linux")]
#[test]
fn closing_the_rings_own_descriptors_is_ebadf() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for mode in [Mode::PollingThread, Mode::Inline] {
        let before = open_fds();
        let ring = Ring::builder().mode(mode).build().unwrap();
        let own: Vec<RawFd> = open_fds().difference(&before).copied().collect();
        assert!(!own.is_empty(), "the ring opened no descriptor?");
        for (i, &fd) in own.iter().enumerate() {
            let c = run1(&ring, Close::new(fd).build().user_data(i as u64));
            assert_eq!(c.result(), -libc::EBADF, "close of the ring's fd {fd}");
        }
        let c = run1(&ring, Nop::new().build().user_data(99));
        assert_eq!((c.user_data(), c.result()), (99, 0));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(ring);
            let _ = tx.send(());
        });
        rx.recv_timeout(PATIENCE).expect("the ring's drop returns");
        assert_eq!(open_fds().difference(&before).count(), 0, "{mode:?}");
    }
}

/// Case 10: a child forked with a ring running drops its copy without a
/// hang or a panic; the parent's ring goes on.
#[test]
fn a_forked_child_drops_its_copy() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder().mode(mode).build().unwrap();
        let c = run1(&ring, Nop::new().build().user_data(1));
        assert_eq!(c.result(), 0);
        // SAFETY: the child only drops the ring and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(ring)));
            // SAFETY: ends the child at once, running nothing of the
            // parent's.
            unsafe { libc::_exit(if dropped.is_ok() { 0 } else { 2 }) };
        }
        let started = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: a valid status pointer; `pid` is our child.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            assert_eq!(r, 0, "waitpid: {}", std::io::Error::last_os_error());
            if started.elapsed() > PATIENCE {
                // SAFETY: our child, not yet reaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, &mut status, 0);
                }
                panic!("{mode:?}: the child's drop hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{mode:?}: the child's drop failed: status {status:#x}"
        );
        let c = run1(&ring, Nop::new().build().user_data(2));
        assert_eq!((c.user_data(), c.result()), (2, 0));
    }
}
