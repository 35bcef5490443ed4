//! Helpers shared by the ring tests. The descriptors they set up come from
//! `kqring-test-support`; what is here drives a ring, or is needed by the
//! ring tests alone.
#![allow(dead_code)]

use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use bytes::BytesMut;
use kqring::ops::{Nop, Recv};
use kqring::{Cqe, Mode, Ring, Sqe};
// Not every test binary uses both.
#[allow(unused_imports)]
pub use kqring_test_support::{BAD_FD, FILLER};

/// A generous bound for anything that should happen "soon".
pub const PATIENCE: Duration = Duration::from_secs(10);

/// One ring per driving mode.
pub fn rings() -> Vec<Ring> {
    [Mode::PollingThread, Mode::Inline]
        .into_iter()
        .map(|mode| {
            Ring::builder()
                .mode(mode)
                .sq_entries(64)
                .build()
                .expect("ring")
        })
        .collect()
}

/// Runs `f` once on a ring of each mode.
pub fn each_mode(f: impl Fn(&Ring)) {
    for ring in rings() {
        eprintln!("mode: {:?}", ring.mode());
        f(&ring);
    }
}

/// A connected pair of non-blocking Unix stream sockets.
pub fn pair() -> (UnixStream, UnixStream) {
    kqring_test_support::unix_pair(true).expect("socketpair")
}

/// A pipe whose both ends are non-blocking.
pub fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    kqring_test_support::pipe(true).expect("pipe")
}

/// A blocking TCP connection over loopback, `(client, server)`.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    kqring_test_support::tcp_pair().expect("TCP connection over loopback")
}

/// Pushes every entry and submits.
pub fn submit_all(ring: &Ring, sqes: impl IntoIterator<Item = kqring::Sqe>) {
    let sq = ring.submission();
    for sqe in sqes {
        sq.push(sqe).expect("submission queue full");
    }
    sq.submit().expect("submit");
}

/// Waits for `n` completions (bounded by `PATIENCE` each).
pub fn wait_n(ring: &Ring, n: usize) -> Vec<Cqe> {
    (0..n)
        .map(|i| {
            ring.completion()
                .wait_timeout(PATIENCE)
                .expect("wait")
                .unwrap_or_else(|| panic!("completion {i} of {n} did not come"))
        })
        .collect()
}

/// Waits for `n` completions and sorts them by `user_data`.
pub fn wait_sorted(ring: &Ring, n: usize) -> Vec<Cqe> {
    let mut cqes = wait_n(ring, n);
    cqes.sort_by_key(Cqe::user_data);
    cqes
}

/// Asserts that no completion arrives within a short while: used to check
/// that an operation really waits, never to synchronise.
pub fn assert_quiet(ring: &Ring) {
    let got = ring
        .completion()
        .wait_timeout(Duration::from_millis(50))
        .expect("wait");
    assert!(got.is_none(), "unexpected completion: {got:?}");
}

/// Raises the soft descriptor limit to the hard one (tests with thousands
/// of sockets).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit pointer.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    // `rlim_t` is u64 on some targets and not on others.
    #[allow(clippy::unnecessary_cast)]
    let cur = lim.rlim_cur as u64;
    cur
}

/// The `user_data` of the Nop that [`start`] waits for.
pub const SYNC_NOP: u64 = u64::MAX;

/// Submits `sqes` with a Nop behind them and waits for the Nop. Operations
/// start in submission order on the driver's thread, so by then each of
/// `sqes` has either finished or is waiting.
pub fn start(ring: &Ring, sqes: impl IntoIterator<Item = Sqe>) {
    let sqes: Vec<Sqe> = sqes.into_iter().collect();
    submit_all(
        ring,
        sqes.into_iter()
            .chain([Nop::new().build().user_data(SYNC_NOP)]),
    );
    let c = wait_n(ring, 1).remove(0);
    assert_eq!(c.user_data(), SYNC_NOP, "only the Nop finishes: {c:?}");
}

/// Submits `sqe` and waits for the next completion.
pub fn run1(ring: &Ring, sqe: Sqe) -> Cqe {
    submit_all(ring, [sqe]);
    wait_n(ring, 1).remove(0)
}

/// A receive of up to 64 bytes into a new buffer.
pub fn recv64(fd: impl Into<kqring::ops::Fd>, ud: u64) -> Sqe {
    Recv::new(fd, BytesMut::with_capacity(64))
        .build()
        .user_data(ud)
}

/// The buffer a read or receive hands back.
pub fn take_mut(cqe: &mut Cqe) -> BytesMut {
    cqe.take_buf::<BytesMut>().expect("the buffer comes back")
}

/// `rounds` request-response exchanges on `fd`, the receive waiting before
/// `peer` writes each request, as a server's does; each request's bytes
/// are checked.
pub fn exchanges(
    ring: &Ring,
    fd: impl Into<kqring::ops::Fd> + Copy,
    peer: &mut impl std::io::Write,
    rounds: u64,
) {
    for round in 0..rounds {
        start(ring, [recv64(fd, round)]);
        let msg = format!("request {round}");
        peer.write_all(msg.as_bytes()).unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (round, msg.len() as i32));
        assert_eq!(&take_mut(&mut c)[..], msg.as_bytes());
    }
}

/// Polls `cond` until it holds, failing with `what` after `PATIENCE`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "{what}: not in time");
        std::thread::yield_now();
    }
}

/// Writes [`FILLER`] bytes into the non-blocking `fd` (a pipe or a stream
/// socket) until not even one more byte fits; returns how many it wrote.
pub fn fill(fd: impl AsFd) -> usize {
    kqring_test_support::fill(fd).expect("fill")
}

/// Reads exactly `n` bytes from the non-blocking `fd`, waiting (bounded by
/// `PATIENCE`) for them to arrive.
pub fn read_exactly(fd: &impl AsRawFd, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut off = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while off < n {
        // SAFETY: `buf[off..]` is writable for `n - off` bytes.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[off..].as_mut_ptr().cast(), n - off) };
        match r {
            0 => panic!("end of stream after {off} of {n} bytes"),
            r if r > 0 => off += r as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "read: {e}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "{off} of {n} bytes came"
                );
                std::thread::yield_now();
            }
        }
    }
    buf
}

/// Asserts that the non-blocking `fd` has nothing more to read now.
pub fn assert_nothing_to_read(fd: &impl AsRawFd) {
    let mut byte = 0u8;
    // SAFETY: one writable byte.
    let r = unsafe { libc::read(fd.as_raw_fd(), (&raw mut byte).cast(), 1) };
    let e = std::io::Error::last_os_error();
    assert!(
        r < 0 && e.kind() == std::io::ErrorKind::WouldBlock,
        "unexpected data or end: read returned {r} ({e}), byte {byte:#x}"
    );
}

/// The environment variable that tells a re-run test binary which test
/// runs with SIGPIPE's default action.
const SIGPIPE_CHILD: &str = "KQRING_TEST_SIGPIPE_DEFAULT";

/// Runs `body` in a child process where SIGPIPE has its default action,
/// which kills the process, and asserts that the child passed. The Rust
/// runtime ignores SIGPIPE, so a check in this process could never see
/// one. The child is this test binary re-run for the test `name` alone
/// (which must be the calling test: it calls this function again there).
pub fn with_default_sigpipe(name: &str, body: impl FnOnce()) {
    use std::os::unix::process::ExitStatusExt;
    if std::env::var_os(SIGPIPE_CHILD).is_some_and(|v| v == name) {
        // SAFETY: setting a signal's disposition to SIG_DFL has no
        // memory-safety preconditions.
        let old = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        assert_ne!(old, libc::SIG_ERR);
        body();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", name, "--test-threads=1"])
        .env(SIGPIPE_CHILD, name)
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        None,
        "the child was killed by signal {:?} (SIGPIPE is {}):\n{stdout}\n{stderr}",
        out.status.signal(),
        libc::SIGPIPE
    );
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("test {name} ... ok")),
        "the child did not run {name}:\n{stdout}\n{stderr}"
    );
}

/// Cancels the waiting operations 1 and 2 (with cancels 3 and 4) and
/// returns the four completions sorted by `user_data`, having checked that
/// both were cancelled and both cancels found them.
pub fn cancel_one_and_two(ring: &Ring) -> Vec<Cqe> {
    submit_all(
        ring,
        [
            kqring::ops::AsyncCancel::new(1).build().user_data(3),
            kqring::ops::AsyncCancel::new(2).build().user_data(4),
        ],
    );
    let cqes = wait_sorted(ring, 4);
    let got: Vec<(u64, i32)> = cqes.iter().map(|c| (c.user_data(), c.result())).collect();
    assert_eq!(
        got,
        [(1, -libc::ECANCELED), (2, -libc::ECANCELED), (3, 0), (4, 0)]
    );
    cqes
}
