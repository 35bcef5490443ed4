//! Exhaustion, each case beside Linux's io_uring in the same test: the
//! descriptor limit (lowered in a child process) under `Accept`,
//! multishot `Accept`, `Socket` and `OpenAt`; a full submission queue; a
//! full completion queue with a stalled consumer. Nothing is lost, and the
//! ring works again once there is room. (A buffer group running dry under
//! a multishot receive is the conformance scenarios'
//! `recv-multishot-runs-out-of-buffers` and
//! `recv-multishot-dry-then-refilled`.)

#![cfg(target_os = "linux")]

mod common;

use std::ffi::CString;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;
use io_uring::{IoUring, opcode, squeue, types};
use kqring::ops::{Accept, Nop, OpenAt, Socket};
use kqring::{Mode, Ring};
use kqring_test_support::tcp_listener;

/// An io_uring, or why there is none (the case then checks kqring alone,
/// against the results written here).
fn uring(entries: u32, cq: Option<u32>) -> Option<IoUring> {
    let mut b = IoUring::builder();
    if let Some(cq) = cq {
        b.setup_cqsize(cq);
    }
    match b.build(entries) {
        Ok(r) => Some(r),
        Err(e) => {
            println!("io_uring unavailable ({e}): kqring is held to the written results only");
            None
        }
    }
}

/// Submits `e` to `ring` and waits for its completion: (res, flags).
fn uring_run1(ring: &mut IoUring, e: squeue::Entry) -> (i32, u32) {
    // SAFETY: the entries here point at nothing, or at a path that
    // outlives the wait below.
    unsafe { ring.submission().push(&e).expect("io_uring SQ full") };
    ring.submit_and_wait(1).expect("io_uring submit");
    let c = ring.completion().next().expect("an io_uring completion");
    (c.result(), c.flags())
}

const CHILD: &str = "KQRING_EXHAUSTION_CHILD";

/// Runs the test `name` again in a child process (it changes what the
/// whole process may hold), where `body` runs; fails unless the child
/// ran it to the end within a bound.
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        body();
        println!("child {name} done");
        return;
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > PATIENCE * 3 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: the child hangs");
        }
        // Polling a process, not synchronising with it.
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let out = child.wait_with_output().expect("the child's output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{name}: the child failed:\n{text}");
    assert!(
        text.contains(&format!("child {name} done")),
        "{name}: the child did not run:\n{text}"
    );
}

/// Sets the soft descriptor limit to just above the highest descriptor
/// open, then fills every free number below it: from here on no
/// descriptor can be made. Returns the fillers.
fn exhaust_descriptors() -> Vec<RawFd> {
    let top = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .max()
        .expect("open descriptors");
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = (top + 1) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let mut held = Vec::new();
    loop {
        // SAFETY: a copy of stderr, closed by the caller.
        let d = unsafe { libc::dup(2) };
        if d < 0 {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EMFILE)
            );
            return held;
        }
        held.push(d);
    }
}

fn close(fd: RawFd) {
    // SAFETY: a descriptor this test made and nothing else owns.
    assert_eq!(unsafe { libc::close(fd) }, 0);
}

/// What each operation gave: (res, whether `F_MORE`) for accept, socket,
/// open and, with `multishot`, a multishot accept; a descriptor made is
/// closed and reported as 0.
type Answers = Vec<(i32, bool)>;

fn made(res: i32) -> i32 {
    if res >= 0 {
        close(res);
        0
    } else {
        res
    }
}

fn kqring_answers(ring: &Ring, listener: RawFd, path: &CString, multishot: bool) -> Answers {
    let path = std::path::PathBuf::from(path.to_str().unwrap());
    let mut sqes = vec![
        Accept::new(listener).build(),
        Socket::new(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).build(),
        OpenAt::new(path, libc::O_RDONLY | libc::O_CLOEXEC).build(),
    ];
    if multishot {
        sqes.push(Accept::new(listener).multishot(true).build());
    }
    sqes.into_iter()
        .enumerate()
        .map(|(i, sqe)| {
            let c = run1(ring, sqe.user_data(i as u64));
            assert_eq!(c.user_data(), i as u64);
            (made(c.result()), c.is_more())
        })
        .collect()
}

fn uring_answers(ring: &mut IoUring, listener: RawFd, path: &CString, multishot: bool) -> Answers {
    let fd = types::Fd(listener);
    let mut entries = vec![
        opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC)
            .build(),
        opcode::Socket::new(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0).build(),
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
            .flags(libc::O_RDONLY | libc::O_CLOEXEC)
            .build(),
    ];
    if multishot {
        entries.push(opcode::AcceptMulti::new(fd).build());
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let (res, flags) = uring_run1(ring, e.user_data(i as u64));
            (made(res), io_uring::cqueue::more(flags))
        })
        .collect()
}

/// The descriptor limit, lowered in a child process: `Accept`, `Socket`,
/// `OpenAt` and a multishot `Accept` (ending without `F_MORE`) each give
/// `-EMFILE`, as io_uring's do, on both driving modes; the pending
/// connections are not lost — once one descriptor is freed each
/// operation succeeds, an accept taking a connection that waited through
/// the refusals.
#[test]
fn the_descriptor_limit_is_emfile_and_loses_nothing() {
    in_child("the_descriptor_limit_is_emfile_and_loses_nothing", || {
        let rings: Vec<Ring> = [Mode::PollingThread, Mode::Inline]
            .into_iter()
            .map(|mode| Ring::builder().mode(mode).workers(1).build().unwrap())
            .collect();
        let mut io_uring = uring(8, None);
        let (l, addr) = tcp_listener(true).unwrap();
        // One connection for each ring's accept once there is room, one
        // for io_uring's.
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let path = CString::new("/dev/null").unwrap();
        let mut held = exhaust_descriptors();

        let full = vec![(-libc::EMFILE, false); 4];
        let uring_full = io_uring
            .as_mut()
            .map(|u| uring_answers(u, l.as_raw_fd(), &path, true));
        for ring in &rings {
            let got = kqring_answers(ring, l.as_raw_fd(), &path, true);
            assert_eq!(got, full, "{:?} at the limit", ring.mode());
            if let Some(u) = &uring_full {
                assert_eq!(&got, u, "{:?}: io_uring's answer at the limit", ring.mode());
            }
        }

        // One descriptor free: each operation makes one (closed again
        // before the next); the accept takes a connection that waited
        // through the refusals.
        close(held.pop().expect("a filler"));
        let room = vec![(0, false); 3];
        let uring_room = io_uring
            .as_mut()
            .map(|u| uring_answers(u, l.as_raw_fd(), &path, false));
        for ring in &rings {
            let got = kqring_answers(ring, l.as_raw_fd(), &path, false);
            assert_eq!(got, room, "{:?} with room", ring.mode());
            if let Some(u) = &uring_room {
                assert_eq!(&got, u, "{:?}: io_uring's answer with room", ring.mode());
            }
            let c = run1(ring, Nop::new().build().user_data(7));
            assert_eq!((c.user_data(), c.result()), (7, 0));
        }
        for d in held {
            close(d);
        }
        drop(clients);
    });
}

/// io_uring's side of a stalled consumer: 24 Nops submitted four at a
/// time into an 8-entry CQ nobody reads. Returns whether it reported the
/// overflow, whether every submission was taken, and the user_data of
/// every completion once reaped.
fn uring_stalled(u: &mut IoUring) -> (bool, bool, Vec<u64>) {
    let mut all_taken = true;
    for round in 0..6u64 {
        for i in 0..4 {
            let e = opcode::Nop::new().build().user_data(round * 4 + i);
            // SAFETY: a Nop points at nothing.
            unsafe { u.submission().push(&e) }.expect("io_uring SQ has room");
        }
        all_taken &= u.submit().expect("io_uring submit") == 4;
    }
    let overflowed = u.submission().cq_overflow();
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(u.completion().map(|c| c.user_data()));
        if got.len() == 24 {
            break;
        }
        // Entering with GETEVENTS moves the overflow list in.
        u.submit_and_wait(1).expect("io_uring wait");
    }
    (overflowed, all_taken, got)
}

/// A stalled consumer: the CQ fills, completions wait in the overflow
/// list (io_uring's `IORING_FEAT_NODROP`), the driver takes no more
/// entries, `submit` says `EBUSY` and the SQ fills until `push` hands the
/// entry back (not closed). Once the consumer reads, every completion
/// comes, in submission order, then the refused entry's. io_uring (6.18)
/// reports the overflow too and loses nothing, but goes on taking
/// submissions into its list (docs/semantics.md: kqring bounds it).
#[test]
fn a_stalled_consumer_loses_no_completion() {
    if let Some(mut u) = uring(4, Some(8)) {
        let (overflowed, all_taken, got) = uring_stalled(&mut u);
        assert!(overflowed, "io_uring reports the overflow");
        assert!(all_taken, "io_uring takes submissions while overflowing");
        assert_eq!(got, (0..24).collect::<Vec<_>>(), "io_uring: all, in order");
    }
    for mode in [Mode::PollingThread, Mode::Inline] {
        let ring = Ring::builder()
            .mode(mode)
            .sq_entries(4)
            .cq_entries(8)
            .build()
            .unwrap();
        let (sq, cq) = (ring.submission(), ring.completion());
        let mut accepted = 0u64;
        let deadline = Instant::now() + PATIENCE;
        let refused = loop {
            match sq.push(Nop::new().build().user_data(accepted)) {
                Ok(()) => accepted += 1,
                // Refused for good only once the driver has stopped
                // taking: the CQ full, the overflow list holding more, the
                // SQ full (a polling thread may be about to take some).
                Err(back) if cq.len() == 8 && ring.stats().overflowed > 0 && sq.len() == 4 => {
                    break back;
                }
                Err(_) => {}
            }
            match sq.submit() {
                Ok(()) => {}
                Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{mode:?}"),
            }
            assert!(Instant::now() < deadline, "{mode:?}: never refused");
            assert!(accepted < 1000, "{mode:?}: the driver kept taking entries");
        };
        assert!(!refused.is_closed(), "{mode:?}");
        let refused = refused.into_inner();
        assert_eq!(refused.get_user_data(), accepted);
        assert_eq!(
            sq.submit().unwrap_err().raw_os_error(),
            Some(libc::EBUSY),
            "{mode:?}"
        );
        // The CQ's 8, at least one in the overflow list, the SQ's 4.
        assert!(accepted >= 8 + 1 + 4, "{mode:?}: {accepted}");
        let mut got = Vec::new();
        let mut pushed_again = Some(refused);
        while (got.len() as u64) < accepted + 1 {
            if let Some(sqe) = pushed_again.take() {
                match sq.push(sqe) {
                    Ok(()) => {}
                    Err(back) => pushed_again = Some(back.into_inner()),
                }
            }
            // Submits what was pushed, or moves the overflow list in;
            // EBUSY until the list fits.
            let _ = sq.submit();
            match cq.wait_timeout(PATIENCE).expect("wait") {
                Some(c) => {
                    assert_eq!(c.result(), 0);
                    got.push(c.user_data());
                }
                None => panic!("{mode:?}: stuck after {} of {}", got.len(), accepted + 1),
            }
        }
        assert_eq!(
            got,
            (0..=accepted).collect::<Vec<_>>(),
            "{mode:?}: all, in order"
        );
        assert!(
            cq.wait_timeout(std::time::Duration::from_millis(50))
                .expect("wait")
                .is_none(),
            "{mode:?}: nothing more"
        );
        assert!(ring.stats().overflowed > 0, "{mode:?}");
    }
}
