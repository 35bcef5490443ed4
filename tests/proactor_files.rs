//! The proactor's types on a ring with a file table: each takes a slot
//! holding a duplicate of its descriptor and names the slot in its
//! operations; a full table, or none, leaves a type on its descriptor; a
//! type dropped, converted or closed gives its slot back and leaves no
//! descriptor open — on an inline ring and on a polling-thread ring.
//!
//! The tests count the process's open descriptors, so they run one at a
//! time (`SERIAL`).

mod common;

use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use common::{PATIENCE, run1, wait_until};
use kqring::ops::{self, FileSlot, FilesUpdate, Fixed};
use kqring::proactor::{
    File, Proactor, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream,
};
use kqring::{Mode, Ring};

static SERIAL: Mutex<()> = Mutex::new(());

/// This test's turn: no other test of this binary opens descriptors
/// meanwhile.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process's open descriptors.
fn open_fds() -> usize {
    // The directory's own descriptor is open while it is read: counted
    // every time alike.
    match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.count(),
        // No procfs (the BSDs, macOS): every number that names a
        // descriptor, up to far past what these tests open.
        Err(_) => (0..4096)
            // SAFETY: F_GETFD reads no memory.
            .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0)
            .count(),
    }
}

/// Waits, bounded, until the process has `n` descriptors open (a
/// polling-thread ring closes on its own thread); fails with the count.
fn settles_at(what: &str, n: usize) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let now = open_fds();
        if now == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {now} descriptors open, {n} expected"
        );
        std::thread::yield_now();
    }
}

struct Flag;

impl Wake for Flag {
    fn wake(self: Arc<Self>) {}
}

/// Polls `fut` once, with a waker that does nothing.
fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    let waker = Waker::from(Arc::new(Flag));
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

fn ring(mode: Mode, files: u32) -> Ring {
    Ring::builder()
        .mode(mode)
        .files(files)
        .build()
        .expect("ring")
}

fn modes() -> [Mode; 2] {
    [Mode::Inline, Mode::PollingThread]
}

fn errno(r: &io::Result<impl std::fmt::Debug>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

/// Waits, bounded, until the driver has answered `what`'s request for a
/// slot (a polling-thread ring answers on its own thread), and returns it.
fn slot_of(what: &str, fixed: impl Fn() -> Option<Fixed>) -> Fixed {
    wait_until(what, || fixed().is_some());
    fixed().expect("checked just above")
}

async fn tcp_pair(io: &Proactor) -> io::Result<(TcpListener, TcpStream, TcpStream)> {
    let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (client, accepted) = futures::join!(TcpStream::connect(io, addr), listener.accept());
    let (server, peer) = accepted?;
    let client = client?;
    assert_eq!(peer, client.local_addr()?);
    Ok((listener, client, server))
}

/// Bytes written on one end of a stream pair read back on the other,
/// both ways (any of the stream types).
macro_rules! echo {
    ($a:expr, $b:expr) => {
        async {
            for (from, to, msg) in [(&$a, &$b, &b"ping"[..]), (&$b, &$a, &b"pong"[..])] {
                from.write_all(msg).await.0?;
                let (n, buf) = to
                    .recv(Vec::with_capacity(msg.len()), libc::MSG_WAITALL)
                    .await;
                assert_eq!((n?, &buf[..]), (msg.len(), msg));
            }
            Ok::<(), io::Error>(())
        }
    };
}

#[test]
fn every_type_takes_a_slot_and_its_operations_name_it() {
    let _serial = serial();
    for mode in modes() {
        let ring = ring(mode, 16);
        let io = ring.proactor();
        let before = open_fds();
        io.block_on(async {
            let (listener, client, server) = tcp_pair(&io).await?;
            echo!(client, server).await?;
            let l = slot_of("listener", || listener.fixed_file());
            let c = slot_of("client", || client.fixed_file());
            let s = slot_of("server", || server.fixed_file());
            assert!(l != c && c != s && l != s, "{l:?} {c:?} {s:?}");
            // The same bytes again, now surely through the slots.
            echo!(client, server).await?;
            // The slot holds the server's socket: a raw send on it reaches
            // the client.
            let send = ops::Send::new(s, Bytes::from_static(b"raw")).build();
            let cqe = io.run(send, kqring::proactor::RawCqe).await;
            assert_eq!(cqe.result(), 3);
            let (n, buf) = client.read(Vec::with_capacity(8)).await;
            assert_eq!((n?, &buf[..]), (3, &b"raw"[..]));
            // A second accept, on the listener's slot, while the first
            // connection stays.
            let addr = listener.local_addr()?;
            let (c2, accepted) = futures::join!(TcpStream::connect(&io, addr), listener.accept());
            let (c2, (s2, _)) = (c2?, accepted?);
            echo!(c2, s2).await?;

            let dir = tempdir();
            let path = dir.join("sock");
            let unix = UnixListener::bind(&io, &path)?;
            let (conn, accepted) = futures::join!(UnixStream::connect(&io, &path), unix.accept());
            let (conn, (peer, _)) = (conn?, accepted?);
            echo!(conn, peer).await?;
            slot_of("unix listener", || unix.fixed_file());
            slot_of("unix connection", || conn.fixed_file());
            slot_of("unix peer", || peer.fixed_file());
            echo!(conn, peer).await?;
            let (a, b) = UnixStream::pair(&io)?;
            echo!(a, b).await?;
            slot_of("pair", || a.fixed_file().and(b.fixed_file()));
            echo!(a, b).await?;
            // Shut down through the slot: the peer reads the end.
            a.shutdown(std::net::Shutdown::Write).await?;
            let (n, _) = b.read(Vec::with_capacity(8)).await;
            assert_eq!(n?, 0);

            let u1 = UdpSocket::bind(&io, "127.0.0.1:0")?;
            let u2 = UdpSocket::bind(&io, "127.0.0.1:0")?;
            for _ in 0..2 {
                let (n, _) = u1.send_to(b"dgram".as_slice(), u2.local_addr()?).await;
                assert_eq!(n?, 5);
                let (res, buf) = u2.recv_from(Vec::with_capacity(16)).await;
                assert_eq!((res?, &buf[..]), ((5, u1.local_addr()?), &b"dgram"[..]));
            }
            slot_of("udp", || u1.fixed_file().and(u2.fixed_file()));

            let file = File::create(&io, dir.join("f")).await?;
            for _ in 0..2 {
                file.write_all_at(b"on a slot".as_slice(), 3).await.0?;
                file.sync_data().await?;
            }
            slot_of("file", || file.fixed_file());
            let file = File::open(&io, dir.join("f")).await?;
            slot_of("opened file", || file.fixed_file());
            let (n, buf) = file.read_at(Vec::with_capacity(32), 0).await;
            assert_eq!((n?, &buf[..]), (12, &b"\0\0\0on a slot"[..]));
            file.close().await?;
            std::fs::remove_dir_all(&dir)?;
            Ok::<(), io::Error>(())
        })
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        // Each type's descriptor and its slot's duplicate are closed.
        settles_at(&format!("{mode:?}, all dropped"), before);
    }
}

#[test]
fn without_a_table_no_type_has_a_slot() {
    let _serial = serial();
    for mode in modes() {
        for ring in [
            ring(mode, 0),
            // A table the builder keeps for raw use alone.
            Ring::builder()
                .mode(mode)
                .files(4)
                .proactor_files(false)
                .build()
                .expect("ring"),
        ] {
            let io = ring.proactor();
            let before = open_fds();
            io.block_on(async {
                let (listener, client, server) = tcp_pair(&io).await?;
                // No duplicate either: a listener and two connections.
                assert_eq!(open_fds(), before + 3);
                echo!(client, server).await?;
                assert_eq!(listener.fixed_file(), None);
                assert_eq!((client.fixed_file(), server.fixed_file()), (None, None));
                Ok::<(), io::Error>(())
            })
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
            settles_at(&format!("{mode:?}"), before);
        }
    }
    // Off, a raw FilesUpdate's allocation finds slot 0 free.
    let ring = Ring::builder()
        .inline()
        .files(2)
        .proactor_files(false)
        .build()
        .expect("ring");
    let io = ring.proactor();
    let (a, _b) = UnixStream::pair(&io).expect("pair");
    let update = FilesUpdate::new(FileSlot::Alloc, vec![a.as_raw_fd()]).build();
    assert_eq!(run1(&ring, update).result(), 1);
}

/// A slot's idle registration is the ring's own: a read that waits on it
/// again needs no change of the kqueue, where a plain descriptor's needs
/// one (re-added, as its number may name another file by now).
#[test]
fn reads_on_a_slot_wait_without_re_adding_their_registration() {
    let _serial = serial();
    const ROUNDS: u64 = 50;
    let changes = |files: u32| {
        let ring = ring(Mode::Inline, files);
        let io = ring.proactor();
        let (a, b) = UnixStream::pair(&io).expect("pair");
        // An inline ring nobody turns takes the request at once.
        assert_eq!(b.fixed_file().is_some(), files > 0);
        let round = || {
            io.block_on(async {
                // The read is pushed first and waits; then the write.
                let (read, write) =
                    futures::join!(b.read(Vec::with_capacity(8)), a.write(b"msg".as_slice()));
                assert_eq!(write.0.expect("write"), 3);
                assert_eq!(read.0.expect("read"), 3);
            })
        };
        round();
        let before = ring.stats();
        for _ in 0..ROUNDS {
            round();
        }
        let after = ring.stats();
        after.changes - before.changes
    };
    let plain = changes(0);
    let fixed = changes(4);
    // Each read waited, and re-added its registration to wait.
    assert!(plain >= ROUNDS, "plain: {plain} changes in {ROUNDS} rounds");
    // Only an idle sweep (one a second at most) could add some.
    assert!(fixed <= 4, "on a slot: {fixed} changes in {ROUNDS} rounds");
}

#[test]
fn a_full_table_leaves_a_type_on_its_descriptor() {
    let _serial = serial();
    for mode in modes() {
        let ring = ring(mode, 1);
        let io = ring.proactor();
        let before = open_fds();
        io.block_on(async {
            let (a, b) = UnixStream::pair(&io)?;
            slot_of("first", || a.fixed_file());
            echo!(a, b).await?;
            // b's answer came before the echo's first entry was taken:
            // none, and its duplicate is closed (two sockets, one copy).
            assert_eq!(b.fixed_file(), None);
            assert_eq!(open_fds(), before + 3);
            echo!(a, b).await?;
            // Errors are those of the plain descriptor too.
            drop(a);
            let (n, _) = b.read(Vec::with_capacity(8)).await;
            assert_eq!(n?, 0, "the end of the stream");
            let (res, _) = b.write(b"x".as_slice()).await;
            assert_eq!(errno(&res), Some(libc::EPIPE));
            // a's slot is free again: the next type takes it.
            let (c, _d) = UnixStream::pair(&io)?;
            assert_eq!(slot_of("after a", || c.fixed_file()), Fixed(0));
            Ok::<(), io::Error>(())
        })
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        settles_at(&format!("{mode:?}"), before);
    }
}

#[test]
fn a_dropped_or_converted_type_gives_its_slot_back() {
    let _serial = serial();
    for mode in modes() {
        let ring = ring(mode, 1);
        let io = ring.proactor();
        let before = open_fds();
        let (a, mut peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let a = UnixStream::from_std(&io, a).expect("from_std");
        assert_eq!(slot_of("a", || a.fixed_file()), Fixed(0));
        assert_eq!(open_fds(), before + 3, "{mode:?}: two sockets, one copy");
        drop(a);
        // Both the descriptor and the slot's duplicate are closed: the
        // peer reads the end.
        peer.set_read_timeout(Some(PATIENCE)).expect("timeout");
        assert_eq!(peer.read(&mut [0; 8]).expect("end"), 0, "{mode:?}");
        settles_at(&format!("{mode:?}: a dropped"), before + 1);
        drop(peer);

        let (c, mut peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let c = UnixStream::from_std(&io, c).expect("from_std");
        assert_eq!(slot_of("c", || c.fixed_file()), Fixed(0), "{mode:?}");
        // Given up as std's: the slot is freed, the socket stays open and
        // is the one `as_raw_fd` named.
        let raw = c.as_raw_fd();
        let c = c.into_std();
        assert_eq!(c.as_raw_fd(), raw);
        settles_at(&format!("{mode:?}: c converted"), before + 2);
        (&c).write_all(b"still open").expect("write");
        let mut got = [0; 10];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"still open");
        // Closed by its new owner: the end, as nothing else holds it.
        drop(c);
        assert_eq!(peer.read(&mut [0; 8]).expect("end"), 0, "{mode:?}");
        drop(peer);

        let d = TcpListener::bind(&io, "127.0.0.1:0").expect("bind");
        assert_eq!(slot_of("d", || d.fixed_file()), Fixed(0), "{mode:?}");
        // And as a raw descriptor.
        let raw = d.into_raw_fd();
        settles_at(&format!("{mode:?}: d converted"), before + 1);
        // SAFETY: into_raw_fd handed this descriptor over to us.
        let d = unsafe { <std::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        assert!(d.local_addr().is_ok());
        drop(d);
        let e = UdpSocket::bind(&io, "127.0.0.1:0").expect("bind");
        assert_eq!(slot_of("e", || e.fixed_file()), Fixed(0), "{mode:?}");
        let f = std::os::fd::OwnedFd::from(e);
        drop(f);
        settles_at(&format!("{mode:?}: e converted and closed"), before);
    }
}

/// A read in flight on the slot, cancelled by its future's drop, then the
/// type given up: the slot's duplicate closes once the cancelled read lets
/// it go, and the descriptor given up works on.
#[test]
fn a_type_converted_after_a_cancelled_read_on_its_slot_leaks_nothing() {
    let _serial = serial();
    for mode in modes() {
        let ring = ring(mode, 4);
        let io = ring.proactor();
        let before = open_fds();
        let (a, b) = UnixStream::pair(&io).expect("pair");
        slot_of("b", || b.fixed_file());
        // Pushed on the slot and waiting (nothing to read), then dropped:
        // its cancel goes before the slot is given back.
        let mut read = b.read(Vec::with_capacity(8));
        assert!(poll_once(&mut read).is_pending());
        if mode == Mode::Inline {
            // Taken by a turn, so the cancel finds it waiting.
            io.block_on(io.sleep(std::time::Duration::from_millis(1)))
                .expect("turn");
        }
        drop(read);
        let b = b.into_std();
        // a, its slot's duplicate, and b.
        settles_at(&format!("{mode:?}: b converted"), before + 3);
        // The cancelled read took nothing: the bytes are the std socket's.
        io.block_on(a.write_all(b"after".as_slice()))
            .0
            .expect("write");
        b.set_nonblocking(false).expect("blocking");
        b.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut got = [0; 5];
        (&b).read_exact(&mut got).expect("read");
        assert_eq!(&got, b"after");
        drop((a, b));
        settles_at(&format!("{mode:?}: all closed"), before);
    }
}

/// `File::close` resolves once the file is closed: the slot's duplicate
/// goes before the `Close` of the descriptor runs, so a pipe's reader
/// sees the end at once.
#[test]
fn a_closed_file_is_closed_when_its_close_completes() {
    let _serial = serial();
    for mode in modes() {
        let ring = ring(mode, 4);
        let io = ring.proactor();
        for _ in 0..20 {
            let before = open_fds();
            let (r, w) = common::nonblocking_pipe();
            let w = File::from_fd(&io, w);
            slot_of("write end", || w.fixed_file());
            io.block_on(w.write_all(b"last".as_slice()))
                .0
                .expect("write");
            io.block_on(w.close()).expect("close");
            assert_eq!(open_fds(), before + 1, "{mode:?}: only the read end");
            let mut buf = [0u8; 8];
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            assert_eq!((n, &buf[..4]), (4, &b"last"[..]));
            // SAFETY: as above.
            let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            assert_eq!(n, 0, "{mode:?}: the end, not EAGAIN");
        }
    }
}

/// A `File::close` future dropped once its `Close` is pushed, before the
/// ring took it: the `Close` still runs (the descriptor is no one else's
/// to close), and nothing is left open.
#[test]
fn a_dropped_close_still_closes() {
    let _serial = serial();
    // Inline, so the Close waits in the SQ until a turn takes it.
    let ring = ring(Mode::Inline, 4);
    let io = ring.proactor();
    let before = open_fds();
    let (r, w) = common::nonblocking_pipe();
    let w = File::from_fd(&io, w);
    slot_of("w", || w.fixed_file());
    let mut close = Box::pin(w.close());
    assert!(poll_once(&mut close).is_pending());
    // The duplicate went as the Close was pushed; the descriptor is the
    // Close's.
    assert_eq!(open_fds(), before + 2);
    drop(close);
    // A turn takes the Close, whose future is gone.
    io.block_on(io.sleep(std::time::Duration::from_millis(1)))
        .expect("turn");
    assert_eq!(open_fds(), before + 1, "only the read end");
    let mut byte = 0u8;
    // SAFETY: one writable byte.
    let n = unsafe { libc::read(r.as_raw_fd(), (&raw mut byte).cast(), 1) };
    assert_eq!(n, 0, "the end of the pipe");
}

/// The ring dropped before its types: their operations fail with
/// `ESHUTDOWN`, a type made then takes no slot, and dropping them all
/// leaves no descriptor open (the ring closed the slots' duplicates).
#[test]
fn types_outliving_their_ring_close_cleanly() {
    let _serial = serial();
    for mode in modes() {
        let before = open_fds();
        let ring = ring(mode, 4);
        let io = ring.proactor();
        let (a, b) = UnixStream::pair(&io).expect("pair");
        slot_of("a", || a.fixed_file().and(b.fixed_file()));
        let (c, _d) = std::os::unix::net::UnixStream::pair().expect("pair");
        let c = UnixStream::from_std(&io, c).expect("from_std");
        let (r, w) = common::nonblocking_pipe();
        let w = File::from_fd(&io, w);
        slot_of("w", || w.fixed_file());
        drop(ring);
        // Its Close can't go through the ring: closed on this thread.
        futures::executor::block_on(w.close()).expect("close");
        let mut byte = 0u8;
        // SAFETY: one writable byte.
        let n = unsafe { libc::read(r.as_raw_fd(), (&raw mut byte).cast(), 1) };
        assert_eq!(n, 0, "{mode:?}: the end of the pipe");
        drop(r);
        let (res, buf) = futures::executor::block_on(a.read(Vec::with_capacity(8)));
        assert_eq!(errno(&res), Some(libc::ESHUTDOWN), "{mode:?}");
        assert_eq!(buf.capacity(), 8);
        let (late, _peer) = UnixStream::pair(&io).expect("pair");
        assert_eq!(late.fixed_file(), None, "{mode:?}");
        // Still the socket it was: std's calls on it work.
        let late = late.into_std();
        assert!(late.peer_addr().is_ok());
        drop((a, b, c, late, _peer, _d));
        // The last handle on the ring's queues holds its kqueue: gone too.
        drop(io);
        settles_at(&format!("{mode:?}"), before);
    }
}

/// A slot a raw user emptied under a type: its operations fail with
/// `EBADF`, as io_uring's on an empty slot do, and the type's drop leaves
/// the slot (refilled by the raw user meanwhile) alone.
#[test]
fn a_slot_emptied_under_a_type_is_ebadf_as_in_io_uring() {
    let _serial = serial();
    let expected = uring_read_of_an_empty_slot();
    for mode in modes() {
        let ring = ring(mode, 2);
        let io = ring.proactor();
        let (a, _b) = UnixStream::pair(&io).expect("pair");
        let slot = slot_of("a", || a.fixed_file());
        let close = ops::Close::new(slot).build().user_data(1);
        assert_eq!(run1(&ring, close).result(), 0);
        let (res, buf) = io.block_on(a.read(Vec::with_capacity(8)));
        assert_eq!(errno(&res), Some(libc::EBADF), "{mode:?}");
        assert_eq!(buf.capacity(), 8);
        if let Some(res) = expected {
            assert_eq!(res, -libc::EBADF);
        }
        // The raw user's own file in that slot now: a's drop keeps it.
        let (mine, mut peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let update = FilesUpdate::new(FileSlot::Index(slot.0), vec![mine.as_raw_fd()]).build();
        assert_eq!(run1(&ring, update).result(), 1);
        drop(mine);
        drop(a);
        let send = ops::Send::new(slot, Bytes::from_static(b"mine")).build();
        assert_eq!(run1(&ring, send.user_data(2)).result(), 4, "{mode:?}");
        let mut got = [0; 4];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"mine");
    }
}

/// Types made, used and dropped on several threads at once, on a table
/// too small for all of them: each takes a slot or works on its
/// descriptor, every echo arrives, and at the end every slot is free and
/// no descriptor is left open.
#[test]
fn types_made_and_dropped_on_many_threads_leave_the_table_empty() {
    let _serial = serial();
    const THREADS: usize = 4;
    const ROUNDS: usize = 100;
    const SLOTS: u32 = 6;
    for mode in modes() {
        let before = open_fds();
        let ring = ring(mode, SLOTS);
        let with_ring = open_fds();
        let io = ring.proactor();
        let on_slots = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (io, on_slots) = (io.clone(), &on_slots);
                s.spawn(move || {
                    for round in 0..ROUNDS {
                        let (a, b) = UnixStream::pair(&io).expect("pair");
                        let msg = format!("{t}/{round}").into_bytes();
                        // A polling-thread ring's inline `block_on` parks;
                        // an inline ring's is turned by whichever thread
                        // holds it.
                        let (res, buf) = io
                            .block_on(async {
                                a.write_all(msg.clone()).await.0?;
                                Ok::<_, io::Error>(
                                    b.recv(Vec::with_capacity(msg.len()), libc::MSG_WAITALL)
                                        .await,
                                )
                            })
                            .expect("write");
                        assert_eq!((res.expect("read"), &buf[..]), (msg.len(), &msg[..]));
                        on_slots.fetch_add(
                            usize::from(a.fixed_file().is_some())
                                + usize::from(b.fixed_file().is_some()),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        // Dropped here, or given up as std's.
                        if round % 2 == 0 {
                            drop((a, b));
                        } else {
                            drop((a.into_std(), std::os::fd::OwnedFd::from(b)));
                        }
                    }
                });
            }
        });
        assert!(on_slots.into_inner() > 0, "{mode:?}: no type took a slot");
        settles_at(&format!("{mode:?}: all dropped"), with_ring);
        // Every slot free: a raw allocation fills all of them.
        for i in 0..SLOTS {
            let (x, _y) = std::os::unix::net::UnixStream::pair().expect("pair");
            let update = FilesUpdate::new(FileSlot::Alloc, vec![x.as_raw_fd()]).build();
            let cqe = run1(&ring, update.user_data(u64::from(i)));
            assert_eq!(cqe.result(), 1, "{mode:?}: slot {i}");
        }
        drop((io, ring));
        settles_at(&format!("{mode:?}: the ring gone"), before);
    }
}

/// io_uring's answer to a read of an empty slot of a sparse table; `None`
/// without io_uring.
#[cfg(not(target_os = "linux"))]
fn uring_read_of_an_empty_slot() -> Option<i32> {
    None
}

/// io_uring's answer to a read of an empty slot of a sparse table; `None`
/// without io_uring.
#[cfg(target_os = "linux")]
fn uring_read_of_an_empty_slot() -> Option<i32> {
    use io_uring::{IoUring, opcode, types};
    let mut ring = match IoUring::new(4) {
        Ok(r) => r,
        Err(e) => {
            println!("io_uring unavailable ({e}): checked against the written result only");
            return None;
        }
    };
    ring.submitter().register_files_sparse(2).ok()?;
    let mut buf = [0u8; 8];
    let read = opcode::Read::new(types::Fixed(0), buf.as_mut_ptr(), 8).build();
    // SAFETY: `buf` outlives the read, reaped below.
    unsafe { ring.submission().push(&read).expect("room") };
    ring.submit_and_wait(1).expect("submit");
    ring.completion().next().map(|c| c.result())
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kqring-proactor-files-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir
}
