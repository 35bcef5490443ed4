//! The proactor's futures: every output and error, owned buffers back on
//! every path, the completion bypassing the CQ, and timeouts — on an
//! inline ring driven by kqring's own `block_on` and on a polling-thread
//! ring, each with and without a file table.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use kqring::proactor::{
    BufResult, Proactor, RawCqe, TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream,
};
use kqring::{Mode, Ring, ops};

/// Each kind of ring, without a file table and with one (where the
/// types work on slots).
fn rings() -> Vec<(Ring, u32)> {
    let mut rings = Vec::new();
    for files in [0, 64] {
        rings.push((
            Ring::builder()
                .inline()
                .files(files)
                .build()
                .expect("inline ring"),
            files,
        ));
        rings.push((
            Ring::builder().files(files).build().expect("polling ring"),
            files,
        ));
    }
    rings
}

/// Runs `program` on each kind of ring under kqring's `block_on`.
fn on_each_ring<F, Fut>(program: F)
where
    F: Fn(Proactor) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    for (ring, files) in rings() {
        let io = ring.proactor();
        let mode = ring.mode();
        if let Err(e) = io.block_on(program(io.clone())) {
            panic!("{mode:?} ring, {files} slots: {e}");
        }
    }
}

async fn tcp_pair(io: &Proactor) -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(io, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (client, accepted) = futures::join!(TcpStream::connect(io, addr), listener.accept());
    let (server, peer) = accepted?;
    let client = client?;
    assert_eq!(peer, client.local_addr()?);
    assert_eq!(server.peer_addr()?, client.local_addr()?);
    Ok((client, server))
}

fn errno(r: &io::Result<impl std::fmt::Debug>) -> Option<i32> {
    r.as_ref().err().and_then(io::Error::raw_os_error)
}

#[test]
fn tcp_read_and_write_give_the_count_and_the_callers_buffer_back() {
    on_each_ring(|io| async move {
        let (client, server) = tcp_pair(&io).await?;
        let (n, sent) = client.write(Bytes::from_static(b"hello")).await;
        assert_eq!((n?, &sent[..]), (5, &b"hello"[..]));
        let mut into = Vec::with_capacity(64);
        into.extend_from_slice(b">>");
        let (n, got) = server.read(into).await;
        assert_eq!(n?, 5);
        assert_eq!(got, b">>hello", "a read appends after the buffer's data");
        // Box<[u8]> has no length: filled from the start.
        let (n, _) = server.write(b"xyz".as_slice()).await;
        assert_eq!(n?, 3);
        let (n, boxed) = client.read(vec![0u8; 8].into_boxed_slice()).await;
        assert_eq!((n?, &boxed[..3]), (3, &b"xyz"[..]));
        // Vectored, both ways.
        let (n, bufs) = client
            .writev(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cde")])
            .await;
        assert_eq!((n?, bufs.len()), (5, 2));
        let (n, bufs) = server
            .readv(vec![BytesMut::with_capacity(2), BytesMut::with_capacity(8)])
            .await;
        assert_eq!(n?, 5);
        assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"ab"[..], &b"cde"[..]));
        // recv/send with flags: a peek leaves the data.
        let (n, _) = client.send(b"peek".as_slice(), 0).await;
        assert_eq!(n?, 4);
        let (n, peeked) = server
            .recv(BytesMut::with_capacity(16), libc::MSG_PEEK)
            .await;
        assert_eq!((n?, &peeked[..]), (4, &b"peek"[..]));
        let (n, got) = server.recv(BytesMut::with_capacity(16), 0).await;
        assert_eq!((n?, &got[..]), (4, &b"peek"[..]));
        // write_all of more than one write takes.
        let big = vec![7u8; 4 << 20];
        let reader = async {
            let mut total = 0;
            let mut buf = BytesMut::with_capacity(1 << 16);
            while total < big.len() {
                buf.clear();
                let (n, b) = server.read(buf).await;
                buf = b;
                let n = n?;
                assert!(n > 0, "end of stream after {total}");
                assert!(buf.iter().all(|&b| b == 7));
                total += n;
            }
            Ok::<usize, io::Error>(total)
        };
        let ((res, back), total) = futures::join!(client.write_all(big.clone()), reader);
        res?;
        assert_eq!((back.len(), total?), (big.len(), big.len()));
        Ok(())
    });
}

#[test]
fn a_closed_peer_reads_as_the_end_and_writes_as_epipe() {
    on_each_ring(|io| async move {
        let (a, b) = UnixStream::pair(&io)?;
        let (n, _) = a.write(b"last".as_slice()).await;
        assert_eq!(n?, 4);
        // Dropped: closed through the ring.
        drop(a);
        let (n, buf) = b.read(Vec::with_capacity(16)).await;
        assert_eq!((n?, &buf[..]), (4, &b"last"[..]));
        let (n, buf) = b.read(buf).await;
        assert_eq!(n?, 0, "the end of the stream");
        assert_eq!(buf, b"last", "an empty read leaves the buffer as it was");
        let (res, back) = b.write(b"nobody".as_slice()).await;
        assert_eq!(errno(&res), Some(libc::EPIPE));
        assert_eq!(back, b"nobody");
        // shutdown(Write) of a live pair: the peer reads the end.
        let (c, d) = UnixStream::pair(&io)?;
        c.shutdown(Shutdown::Write).await?;
        let (n, _) = d.read(Vec::with_capacity(4)).await;
        assert_eq!(n?, 0);
        Ok(())
    });
}

#[test]
fn a_reset_connection_reads_as_econnreset() {
    on_each_ring(|io| async move {
        let (client, server) = tcp_pair(&io).await?;
        // SO_LINGER 0: the close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid option struct of its own size on a socket we own.
        let r = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        // Data unread by the client makes its close a reset on every
        // system, with or without the option.
        let (n, _) = server.write(b"unread".as_slice()).await;
        assert_eq!(n?, 6);
        let (n, _) = client.recv(Vec::with_capacity(1), libc::MSG_PEEK).await;
        assert_eq!(n?, 1);
        drop(client);
        let (res, buf) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(errno(&res), Some(libc::ECONNRESET), "{res:?}");
        assert!(buf.is_empty());
        Ok(())
    });
}

#[test]
fn a_refused_connect_is_econnrefused_and_a_bad_descriptor_ebadf() {
    on_each_ring(|io| async move {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?
        };
        let res = TcpStream::connect(&io, addr).await;
        assert_eq!(errno(&res), Some(libc::ECONNREFUSED));
        // Any entry as a future: a read of a descriptor that is not open.
        let mut buf = Vec::with_capacity(16);
        buf.extend_from_slice(b"ab");
        let (res, buf) = io
            .run(
                ops::Read::new(1 << 20, buf).build(),
                BufResult::<Vec<u8>>::default(),
            )
            .await;
        assert_eq!(errno(&res), Some(libc::EBADF));
        assert_eq!(
            (&buf[..], buf.capacity()),
            (&b"ab"[..], 16),
            "the buffer comes back with the error"
        );
        Ok(())
    });
}

#[test]
fn a_timeout_cancels_the_operation_and_hands_the_buffer_back() {
    on_each_ring(|io| async move {
        let (a, b) = UnixStream::pair(&io)?;
        let (res, buf) = b
            .read(Vec::with_capacity(32))
            .timeout(Duration::from_millis(20))
            .await;
        assert_eq!(
            res.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::TimedOut)
        );
        assert_eq!(errno(&res), Some(libc::ETIMEDOUT));
        assert_eq!((buf.len(), buf.capacity()), (0, 32));
        // An operation done in time gives its own result; the timer goes.
        let (n, _) = a.write(b"in time".as_slice()).await;
        assert_eq!(n?, 7);
        let (n, buf) = b.read(buf).timeout(Duration::from_secs(60)).await;
        assert_eq!((n?, &buf[..]), (7, &b"in time"[..]));
        io.sleep(Duration::from_millis(1)).await?;
        Ok(())
    });
}

#[test]
fn futures_and_raw_queue_users_share_a_ring_and_each_gets_its_own() {
    for (ring, _) in rings() {
        let io = ring.proactor();
        ring.submission()
            .push(ops::Nop::new().build().user_data(7))
            .expect("room");
        ring.submission().submit().expect("submit");
        let cqe = io.block_on(io.run(ops::Nop::new().build().user_data(8), RawCqe));
        assert_eq!((cqe.user_data(), cqe.result()), (8, 0));
        let (a, b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let (res, _) = io.block_on(io.run(
            ops::Write::new(a.as_raw_fd(), b"raw fd".as_slice()).build(),
            BufResult::<&'static [u8]>::default(),
        ));
        assert_eq!(res.expect("write"), 6);
        drop(b);
        // The raw user's completion is in the CQ, alone: the futures'
        // completions went to their slots.
        let raw = ring.completion().wait().expect("raw completion");
        assert_eq!(raw.user_data(), 7);
        assert!(
            ring.completion().pop().is_none(),
            "a future's completion reached the CQ"
        );
    }
}

#[test]
fn udp_send_to_and_recv_from_carry_the_address() {
    on_each_ring(|io| async move {
        let a = UdpSocket::bind(&io, "127.0.0.1:0")?;
        let b = UdpSocket::bind(&io, "127.0.0.1:0")?;
        let (n, _) = a.send_to(b"datagram".as_slice(), b.local_addr()?).await;
        assert_eq!(n?, 8);
        let (res, buf) = b.recv_from(BytesMut::with_capacity(64)).await;
        let (n, from) = res?;
        assert_eq!((n, &buf[..], from), (8, &b"datagram"[..], a.local_addr()?));
        b.connect(a.local_addr()?).await?;
        let (n, _) = b.send(b"back".as_slice()).await;
        assert_eq!(n?, 4);
        let (n, buf) = a.recv(Vec::with_capacity(8)).await;
        assert_eq!((n?, &buf[..]), (4, &b"back"[..]));
        Ok(())
    });
}

#[test]
fn unix_listener_accepts_what_connect_makes() {
    on_each_ring(|io| async move {
        let dir = tempdir();
        let path = dir.join("sock");
        let listener = UnixListener::bind(&io, &path)?;
        let (client, accepted) = futures::join!(UnixStream::connect(&io, &path), listener.accept());
        let (client, (server, peer)) = (client?, accepted?);
        assert!(peer.is_unnamed());
        let (n, _) = client.write(b"unix".as_slice()).await;
        assert_eq!(n?, 4);
        let (n, buf) = server.read(Vec::with_capacity(8)).await;
        assert_eq!((n?, &buf[..]), (4, &b"unix"[..]));
        let missing = UnixStream::connect(&io, dir.join("nobody")).await;
        assert_eq!(errno(&missing), Some(libc::ENOENT));
        drop(listener);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    });
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kqring-proactor-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn incoming_streams_connections_from_one_multishot_accept() {
    on_each_ring(|io| async move {
        let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut incoming = listener.incoming();
        let mut clients = Vec::new();
        for i in 0..3u8 {
            let client = TcpStream::connect(&io, addr).await?;
            let (n, _) = client.write(vec![i]).await;
            assert_eq!(n?, 1);
            clients.push(client);
        }
        for _ in 0..3 {
            let (conn, peer) = incoming.next().await.expect("a connection")?;
            let (n, buf) = conn.read(Vec::with_capacity(1)).await;
            assert_eq!(n?, 1);
            let client = &clients[buf[0] as usize];
            assert_eq!(peer, client.local_addr()?);
        }
        Ok(())
    });
}

#[test]
fn recv_multishot_streams_provided_buffers_until_the_end() {
    on_each_ring(|io| async move {
        let (a, b) = UnixStream::pair(&io)?;
        let bufs = (0..4).map(|_| BytesMut::with_capacity(8)).collect();
        let cqe = io
            .run(ops::ProvideBuffers::new(3, bufs, 0).build(), RawCqe)
            .await;
        assert_eq!(cqe.result(), 0);
        let mut shots = b.recv_multishot(3);
        let (n, _) = a.write(b"0123456789".as_slice()).await;
        assert_eq!(n?, 10);
        let mut got = Vec::new();
        while got.len() < 10 {
            let buf = shots.next().await.expect("a shot")?;
            assert!(buf.len() <= 8, "a shot fills one provided buffer");
            got.extend_from_slice(&buf);
        }
        assert_eq!(got, b"0123456789");
        drop(a);
        assert!(
            shots.next().await.is_none(),
            "the end of the stream ends it"
        );
        Ok(())
    });
}

#[test]
fn a_dropped_ring_cancels_its_futures_and_new_ones_fail_eshutdown() {
    for mode in [Mode::Inline, Mode::PollingThread] {
        let ring = Ring::builder().mode(mode).build().expect("ring");
        let io = ring.proactor();
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        let a = UnixStream::from_std(&io, a).expect("from std");
        let mut read = Box::pin(a.read(vec![0u8; 0]));
        // Pushed and waiting.
        assert!(futures::FutureExt::now_or_never(&mut read).is_none());
        drop(ring);
        let (res, buf) = futures::executor::block_on(read);
        assert_eq!(errno(&res), Some(libc::ECANCELED), "{mode:?}");
        assert_eq!(buf.capacity(), 0);
        let (res, _) = futures::executor::block_on(a.read(Vec::with_capacity(1)));
        assert_eq!(errno(&res), Some(libc::ESHUTDOWN));
    }
}

#[test]
fn file_reads_and_writes_at_offsets_and_closes_through_the_ring() {
    on_each_ring(|io| async move {
        let dir = tempdir();
        let path = dir.join("data");
        let file = kqring::proactor::File::from_std(
            &io,
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?,
        );
        let (res, _) = file.write_all_at(b"0123456789".to_vec(), 0).await;
        res?;
        let (n, _) = file.write_at(b"AB".as_slice(), 4).await;
        assert_eq!(n?, 2);
        let (n, buf) = file.read_at(Vec::with_capacity(16), 2).await;
        assert_eq!((n?, &buf[..]), (8, &b"23AB6789"[..]));
        let (n, buf) = file.read_at(buf, 100).await;
        assert_eq!(n?, 0, "past the end");
        assert_eq!(buf, b"23AB6789");
        // At the file's position: from the start, then on.
        let (n, buf) = file.read(Vec::with_capacity(3)).await;
        assert_eq!((n?, &buf[..]), (3, &b"012"[..]));
        let (n, buf) = file.read(Vec::with_capacity(3)).await;
        assert_eq!((n?, &buf[..]), (3, &b"3AB"[..]));
        file.close().await?;
        assert_eq!(std::fs::read(&path)?, b"0123AB6789");
        // A read-only file refuses a write: EBADF, the buffer back.
        let ro = kqring::proactor::File::from_std(&io, std::fs::File::open(&path)?);
        let (res, buf) = ro.write_at(b"no".as_slice(), 0).await;
        assert_eq!(errno(&res), Some(libc::EBADF));
        assert_eq!(buf, b"no");
        drop(ro);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    });
}

#[test]
fn a_dropped_stream_is_closed_at_once_even_on_an_inline_ring_nobody_turns() {
    use std::io::Read;
    let ring = Ring::builder().inline().build().expect("ring");
    let io = ring.proactor();
    let (ours, mut peer) = std::os::unix::net::UnixStream::pair().expect("pair");
    let ours = UnixStream::from_std(&io, ours).expect("from std");
    drop(ours);
    peer.set_nonblocking(true).expect("nonblocking");
    let mut byte = [0u8; 1];
    assert_eq!(peer.read(&mut byte).expect("the end, not WouldBlock"), 0);
}

#[test]
fn recv_multishot_over_a_group_run_dry_ends_with_enobufs() {
    on_each_ring(|io| async move {
        let (a, b) = UnixStream::pair(&io)?;
        let bufs = vec![BytesMut::with_capacity(4)];
        let cqe = io
            .run(ops::ProvideBuffers::new(9, bufs, 0).build(), RawCqe)
            .await;
        assert_eq!(cqe.result(), 0);
        let mut shots = b.recv_multishot(9);
        let (n, _) = a.write(b"abcdefgh".as_slice()).await;
        assert_eq!(n?, 8);
        let first = shots.next().await.expect("a shot")?;
        assert_eq!(&first[..], b"abcd");
        let dry = shots.next().await.expect("the last item");
        assert_eq!(errno(&dry), Some(libc::ENOBUFS));
        assert!(shots.next().await.is_none(), "an error ends the stream");
        Ok(())
    });
}

#[test]
fn file_open_create_statx_and_fsync_through_the_ring() {
    on_each_ring(|io| async move {
        use kqring::proactor::File;
        let dir = tempdir();
        let path = dir.join("made");
        let file = File::create(&io, &path).await?;
        let (res, _) = file.write_all_at(b"twelve bytes".as_slice(), 0).await;
        res?;
        file.sync_all().await?;
        file.sync_data().await?;
        let st = file.statx().await?;
        let std_meta = std::fs::metadata(&path)?;
        assert_eq!(st.size, std_meta.len());
        assert_eq!(st.size, 12);
        file.close().await?;
        let by_path = io.statx(&path).await?;
        assert_eq!(by_path.size, 12);
        let file = File::open(&io, &path).await?;
        let (n, buf) = file.read_at(Vec::with_capacity(32), 0).await;
        assert_eq!((n?, &buf[..]), (12, &b"twelve bytes"[..]));
        // A write to a file opened for reading: EBADF.
        let (res, _) = file.write_at(b"x".as_slice(), 0).await;
        assert_eq!(errno(&res), Some(libc::EBADF));
        let missing = File::open(&io, dir.join("missing")).await;
        assert_eq!(errno(&missing), Some(libc::ENOENT));
        let missing = io.statx(dir.join("missing")).await;
        assert_eq!(errno(&missing), Some(libc::ENOENT));
        drop(file);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    });
}
