//! Network operations: Socket, Bind, Listen, Accept (single and
//! multishot), Connect, Recv, Send, RecvMsg, SendMsg, Shutdown — success
//! and error paths with exact errnos, over TCP (IPv4 and IPv6), UDP and
//! Unix stream and datagram sockets.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, Shutdown as Dir, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{
    Accept, AsyncCancel, Bind, Close, Connect, Listen, Nop, Recv, RecvMsg, Send, SendMsg, Shutdown,
    Socket,
};
use kqring::{Cqe, Ring, SockAddr, cqe_flags};
use kqring_test_support::{ScratchPath, close_with_reset, tcp_listener};

/// Sends `msg` on `from` (user_data `ud`) and receives it on `to`
/// (`ud + 1`), byte for byte.
fn send_then_recv(ring: &Ring, from: RawFd, to: RawFd, msg: &'static [u8], ud: u64) {
    let c = run1(
        ring,
        Send::new(from, Bytes::from_static(msg))
            .build()
            .user_data(ud),
    );
    assert_eq!(c.result(), msg.len() as i32);
    let mut c = run1(
        ring,
        Recv::new(to, BytesMut::with_capacity(8))
            .build()
            .user_data(ud + 1),
    );
    assert_eq!(&take_mut(&mut c)[..], msg);
}

fn localhost() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

/// A port on which nothing listens (bound, read, closed).
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind(localhost()).unwrap();
    l.local_addr().unwrap()
}

/// A socket made with the Socket operation.
fn socket(ring: &Ring, domain: i32, ty: i32) -> OwnedFd {
    let c = run1(ring, Socket::new(domain, ty, 0).build().user_data(99));
    let fd = c.io_result().expect("socket") as RawFd;
    // SAFETY: the Socket operation made this descriptor for us alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A path for a Unix socket, in a scratch directory of its own.
fn unix_path(tag: &str) -> ScratchPath {
    ScratchPath::new(&format!("{tag}.sock")).unwrap()
}

fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL takes no pointer.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    fl & libc::O_NONBLOCK != 0
}

fn is_cloexec(fd: RawFd) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    fl & libc::FD_CLOEXEC != 0
}

#[test]
fn socket_bind_listen_and_their_errors() {
    each_mode(|ring| {
        let fd = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        assert!(is_cloexec(fd.as_raw_fd()) && is_nonblocking(fd.as_raw_fd()));
        let c = run1(
            ring,
            Bind::new(fd.as_raw_fd(), localhost()).build().user_data(1),
        );
        assert_eq!(c.result(), 0);
        let c = run1(ring, Listen::new(fd.as_raw_fd(), 16).build().user_data(2));
        assert_eq!(c.result(), 0);
        let l = TcpListener::from(fd);
        let addr = l.local_addr().unwrap();
        assert!(TcpStream::connect(addr).is_ok());

        // The options: a blocking socket without close-on-exec.
        let c = run1(
            ring,
            Socket::new(libc::AF_INET, libc::SOCK_DGRAM, 0)
                .cloexec(false)
                .nonblocking(false)
                .build()
                .user_data(3),
        );
        // SAFETY: ours alone.
        let udp = unsafe { OwnedFd::from_raw_fd(c.result()) };
        assert!(!is_cloexec(udp.as_raw_fd()) && !is_nonblocking(udp.as_raw_fd()));

        let c = run1(
            ring,
            Socket::new(12345, libc::SOCK_STREAM, 0)
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), -libc::EAFNOSUPPORT);
        let other = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        let c = run1(
            ring,
            Bind::new(other.as_raw_fd(), addr).build().user_data(5),
        );
        assert_eq!(c.result(), -libc::EADDRINUSE);
        let c = run1(ring, Listen::new(udp.as_raw_fd(), 1).build().user_data(6));
        assert_eq!(c.result(), -libc::EOPNOTSUPP);
        let (r, _w) = std::io::pipe().unwrap();
        let c = run1(ring, Listen::new(r.as_raw_fd(), 1).build().user_data(7));
        assert_eq!(c.result(), -libc::ENOTSOCK);
        let c = run1(
            ring,
            Shutdown::new(other.as_raw_fd(), Dir::Write)
                .build()
                .user_data(8),
        );
        assert_eq!(c.result(), -libc::ENOTCONN);
    });
}

#[test]
fn every_op_on_a_bad_fd_is_ebadf() {
    each_mode(|ring| {
        let fd = BAD_FD;
        submit_all(
            ring,
            [
                Bind::new(fd, localhost()).build().user_data(1),
                Listen::new(fd, 1).build().user_data(2),
                Accept::new(fd).build().user_data(3),
                Connect::new(fd, localhost()).build().user_data(4),
                Recv::new(fd, BytesMut::with_capacity(4))
                    .build()
                    .user_data(5),
                Send::new(fd, Bytes::from_static(b"x")).build().user_data(6),
                RecvMsg::new(fd, vec![BytesMut::with_capacity(4)])
                    .build()
                    .user_data(7),
                SendMsg::new(fd, vec![Bytes::from_static(b"y")])
                    .build()
                    .user_data(8),
                Shutdown::new(fd, Dir::Both).build().user_data(9),
            ],
        );
        let mut cqes = wait_sorted(ring, 9);
        for c in &cqes {
            assert_eq!(c.result(), -libc::EBADF, "user_data {}", c.user_data());
            assert_eq!(c.flags(), 0);
        }
        // The buffers come back with the error.
        assert_eq!(take_mut(&mut cqes[4]).capacity(), 4);
        assert_eq!(
            cqes[5].take_buf::<Bytes>().ok(),
            Some(Bytes::from_static(b"x"))
        );
        let recvmsg = cqes[6]
            .take_buf::<Vec<BytesMut>>()
            .expect("RecvMsg's buffers");
        assert_eq!(recvmsg.len(), 1);
        assert_eq!(
            cqes[7].take_buf::<Vec<Bytes>>().ok(),
            Some(vec![Bytes::from_static(b"y")])
        );
    });
}

#[test]
fn recv_and_send_on_a_pipe_are_enotsock() {
    each_mode(|ring| {
        let (r, w) = nonblocking_pipe();
        let c = run1(
            ring,
            Recv::new(r.as_raw_fd(), BytesMut::with_capacity(4))
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), -libc::ENOTSOCK);
        let c = run1(
            ring,
            Send::new(w.as_raw_fd(), Bytes::from_static(b"x"))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), -libc::ENOTSOCK);
        let c = run1(ring, Accept::new(r.as_raw_fd()).build().user_data(3));
        assert_eq!(c.result(), -libc::ENOTSOCK);
    });
}

#[test]
fn accept_reports_the_peer_address_on_blocking_and_nonblocking_listeners() {
    each_mode(|ring| {
        for nonblocking in [false, true] {
            let (l, _) = tcp_listener(nonblocking).unwrap();
            // Pending first: the accept waits for the connection.
            submit_all(
                ring,
                [Accept::new(l.as_raw_fd())
                    .peer_addr(true)
                    .build()
                    .user_data(1)],
            );
            assert_quiet(ring);
            let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let mut c = wait_n(ring, 1).remove(0);
            assert!(c.result() >= 0, "accept: {c:?}");
            assert_eq!(c.flags(), 0);
            assert_eq!(c.socket_addr(), Some(client.local_addr().unwrap()));
            // SAFETY: the accepted descriptor is ours alone.
            let server = unsafe { OwnedFd::from_raw_fd(c.result()) };
            assert!(is_cloexec(server.as_raw_fd()));
            assert!(!is_nonblocking(server.as_raw_fd()));
            assert_eq!(
                c.take_addr().and_then(|a| a.as_socket()),
                Some(client.local_addr().unwrap())
            );

            // Ready first, no address asked for, a non-blocking socket.
            let client2 = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let c = run1(
                ring,
                Accept::new(l.as_raw_fd())
                    .nonblocking(true)
                    .build()
                    .user_data(2),
            );
            assert!(c.result() >= 0);
            assert!(c.addr().is_none());
            // SAFETY: ours alone.
            let server2 = TcpStream::from(unsafe { OwnedFd::from_raw_fd(c.result()) });
            assert!(is_nonblocking(server2.as_raw_fd()));
            assert_eq!(server2.peer_addr().unwrap(), client2.local_addr().unwrap());
        }
    });
}

#[test]
fn accept_on_a_socket_that_does_not_listen_is_einval() {
    each_mode(|ring| {
        let fd = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        let c = run1(ring, Accept::new(fd.as_raw_fd()).build().user_data(1));
        assert_eq!(c.result(), -libc::EINVAL);
    });
}

#[test]
fn multishot_accept_posts_one_completion_per_connection_until_cancelled() {
    each_mode(|ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        // One connection is already waiting when the accept starts.
        let mut clients = vec![TcpStream::connect(addr).unwrap()];
        submit_all(
            ring,
            [Accept::new(l.as_raw_fd())
                .multishot(true)
                .peer_addr(true)
                .build()
                .user_data(7)],
        );
        let mut accepted = Vec::new();
        accepted.push(wait_n(ring, 1).remove(0));
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).unwrap());
            accepted.push(wait_n(ring, 1).remove(0));
        }
        for (c, client) in accepted.iter().zip(&clients) {
            assert_eq!(c.user_data(), 7);
            assert!(c.result() >= 0);
            assert!(c.is_more(), "{c:?}");
            assert_eq!(c.socket_addr(), Some(client.local_addr().unwrap()));
            // SAFETY: ours alone.
            drop(unsafe { OwnedFd::from_raw_fd(c.result()) });
        }
        submit_all(ring, [AsyncCancel::new(7).build().user_data(8)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (7, -libc::ECANCELED)
        );
        assert!(!cqes[0].is_more());
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (8, 0));
    });
}

#[test]
fn multishot_accept_ends_when_the_listener_is_closed() {
    each_mode(|ring| {
        let l = TcpListener::bind(localhost()).unwrap();
        let fd = l.into_raw_fd();
        submit_all(ring, [Accept::new(fd).multishot(true).build().user_data(1)]);
        assert_quiet(ring);
        submit_all(ring, [Close::new(fd).build().user_data(2)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!((cqes[0].result(), cqes[0].flags()), (-libc::ECANCELED, 0));
        assert_eq!(cqes[1].result(), 0);
    });
}

/// Runs in a child process (it exhausts the descriptor table, which the
/// other tests of this binary share): a multishot accept at EMFILE ends
/// with `-EMFILE` and no `F_MORE`, as io_uring's does, and the ring lives
/// on.
#[test]
fn accept_at_emfile_is_a_completion_and_ends_a_multishot() {
    const CHILD: &str = "KQRING_EMFILE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "accept_at_emfile_is_a_completion_and_ends_a_multishot",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed:\n{text}");
        assert!(
            text.contains("emfile child done"),
            "child did not run:\n{text}"
        );
        return;
    }
    each_mode(|ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        let clients: Vec<_> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        // Fill the descriptor table.
        let mut held = Vec::new();
        loop {
            // SAFETY: dup of stdin's number; the copies are closed below.
            let d = unsafe { libc::dup(2) };
            if d < 0 {
                break;
            }
            held.push(d);
        }
        let c = run1(ring, Accept::new(l.as_raw_fd()).build().user_data(1));
        assert_eq!(c.result(), -libc::EMFILE);
        let c = run1(
            ring,
            Accept::new(l.as_raw_fd())
                .multishot(true)
                .build()
                .user_data(2),
        );
        assert_eq!((c.result(), c.flags()), (-libc::EMFILE, 0));
        for d in held {
            // SAFETY: closing our own copies.
            unsafe { libc::close(d) };
        }
        // The ring goes on: the connections are still there to take.
        let c = run1(ring, Accept::new(l.as_raw_fd()).build().user_data(3));
        assert!(c.result() >= 0);
        // SAFETY: ours alone.
        drop(unsafe { OwnedFd::from_raw_fd(c.result()) });
        drop(clients);
    });
    println!("emfile child done");
}

#[test]
fn connect_succeeds_or_is_refused_with_the_exact_errno() {
    each_mode(|ring| {
        let l = TcpListener::bind(localhost()).unwrap();
        let fd = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        let c = run1(
            ring,
            Connect::new(fd.as_raw_fd(), l.local_addr().unwrap())
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 0);
        let (server, peer) = l.accept().unwrap();
        assert_eq!(peer, TcpStream::from(fd).local_addr().unwrap());
        drop(server);

        let fd = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        let c = run1(
            ring,
            Connect::new(fd.as_raw_fd(), closed_port())
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), -libc::ECONNREFUSED);

        // A blocking socket's connect runs on the pool, same answers.
        let c = run1(
            ring,
            Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .nonblocking(false)
                .build()
                .user_data(3),
        );
        // SAFETY: ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(c.result()) };
        let c = run1(
            ring,
            Connect::new(fd.as_raw_fd(), closed_port())
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), -libc::ECONNREFUSED);
        let c = run1(
            ring,
            Connect::new(fd.as_raw_fd(), l.local_addr().unwrap())
                .build()
                .user_data(5),
        );
        // A refused socket can't be reused on every platform; only check
        // that the answer is a completion.
        assert!(c.result() == 0 || c.result() < 0);
    });
}

#[test]
fn send_and_recv_over_tcp_in_submission_order() {
    each_mode(|ring| {
        let (client, server) = tcp_pair();
        let (cfd, sfd) = (client.as_raw_fd(), server.as_raw_fd());
        submit_all(
            ring,
            (0..3).map(|i| {
                Recv::new(sfd, BytesMut::with_capacity(4))
                    .build()
                    .user_data(i)
            }),
        );
        assert_quiet(ring);
        let c = run1(
            ring,
            Send::new(cfd, Bytes::from_static(b"aaaabbbbcccc"))
                .build()
                .user_data(10),
        );
        assert_eq!(c.result(), 12);
        let mut cqes = wait_n(ring, 3);
        let order: Vec<u64> = cqes.iter().map(Cqe::user_data).collect();
        assert_eq!(order, [0, 1, 2]);
        let data: Vec<BytesMut> = cqes.iter_mut().map(take_mut).collect();
        assert_eq!(data, [&b"aaaa"[..], b"bbbb", b"cccc"]);
    });
}

#[test]
fn recv_flags_peek_waitall_and_len() {
    each_mode(|ring| {
        let (mut client, server) = tcp_pair();
        let sfd = server.as_raw_fd();
        client.write_all(b"hello world").unwrap();
        let mut c = run1(
            ring,
            Recv::new(sfd, BytesMut::with_capacity(5))
                .flags(libc::MSG_PEEK)
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 5);
        assert_eq!(&take_mut(&mut c)[..], b"hello");
        let mut c = run1(
            ring,
            Recv::new(sfd, BytesMut::with_capacity(64))
                .len(6)
                .build()
                .user_data(2),
        );
        assert_eq!(&take_mut(&mut c)[..], b"hello ");
        // MSG_WAITALL: 5 bytes there, 10 asked for; the rest comes later.
        submit_all(
            ring,
            [Recv::new(sfd, BytesMut::with_capacity(10))
                .flags(libc::MSG_WAITALL)
                .build()
                .user_data(3)],
        );
        assert_quiet(ring);
        client.write_all(b"!!!!!").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 10);
        assert_eq!(&take_mut(&mut c)[..], b"world!!!!!");
        // MSG_WAITALL cut short by the end of the stream: what came.
        client.write_all(b"ab").unwrap();
        submit_all(
            ring,
            [Recv::new(sfd, BytesMut::with_capacity(10))
                .flags(libc::MSG_WAITALL)
                .build()
                .user_data(4)],
        );
        client.shutdown(Dir::Write).unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(c.result(), 2);
        assert_eq!(&take_mut(&mut c)[..], b"ab");
    });
}

#[test]
fn send_waitall_sends_everything_as_room_comes() {
    each_mode(|ring| {
        let (a, b) = tcp_pair();
        a.set_nonblocking(true).unwrap();
        // Far more than the socket buffers hold: a plain send is short.
        let data = Bytes::from((0..16 << 20).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
        start(
            ring,
            [
                Send::new(a.as_raw_fd(), data.clone())
                    .flags(libc::MSG_WAITALL)
                    .build()
                    .user_data(1)
                    .flags(kqring::SqeFlags::IO_LINK),
                Nop::new().build().user_data(2),
            ],
        );
        // The buffers are full and the send waits: now the peer reads.
        let reader = std::thread::spawn(move || {
            let mut b = b;
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            got
        });
        let mut cqes = wait_n(ring, 2);
        assert_eq!(
            [
                (cqes[0].user_data(), cqes[0].result()),
                (cqes[1].user_data(), cqes[1].result())
            ],
            [(1, data.len() as i32), (2, 0)],
            "one completion for all of it, and the link holds"
        );
        assert_eq!(cqes[0].take_buf::<Bytes>().ok(), Some(data.clone()));
        drop(a);
        assert!(reader.join().unwrap() == data[..], "every byte, in order");

        // Without MSG_WAITALL the first send that fills the buffers ends
        // short, and a short send is no failure: the link holds too.
        let (a, _b) = tcp_pair();
        a.set_nonblocking(true).unwrap();
        submit_all(
            ring,
            [
                Send::new(a.as_raw_fd(), data.clone())
                    .build()
                    .user_data(3)
                    .flags(kqring::SqeFlags::IO_LINK),
                Nop::new().build().user_data(4),
            ],
        );
        let cqes = wait_n(ring, 2);
        assert!(
            cqes[0].result() > 0 && (cqes[0].result() as usize) < data.len(),
            "{cqes:?}"
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (4, 0));
    });
}

#[test]
fn a_send_waitall_cut_short_by_a_reset_breaks_its_link() {
    each_mode(|ring| {
        let (a, b) = tcp_pair();
        a.set_nonblocking(true).unwrap();
        let data = Bytes::from(vec![7u8; 16 << 20]);
        start(
            ring,
            [
                Send::new(a.as_raw_fd(), data.clone())
                    .flags(libc::MSG_WAITALL)
                    .build()
                    .user_data(1)
                    .flags(kqring::SqeFlags::IO_LINK),
                Nop::new().build().user_data(2),
            ],
        );
        // The send has filled the buffers and waits for room: the peer
        // resets the connection instead.
        close_with_reset(b).unwrap();
        let cqes = wait_n(ring, 2);
        let sent = cqes[0].result();
        assert!(
            sent > 0 && (sent as usize) < data.len(),
            "what was sent before the reset: {cqes:?}"
        );
        assert_eq!(
            (cqes[1].user_data(), cqes[1].result()),
            (2, -libc::ECANCELED)
        );
    });
}

#[test]
fn shutdown_write_half_closes_the_connection() {
    each_mode(|ring| {
        let (client, server) = tcp_pair();
        submit_all(
            ring,
            [Recv::new(server.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        assert_quiet(ring);
        let c = run1(
            ring,
            Shutdown::new(client.as_raw_fd(), Dir::Write)
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 0);
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 0));
        // The other direction still works.
        let c = run1(
            ring,
            Send::new(server.as_raw_fd(), Bytes::from_static(b"back"))
                .build()
                .user_data(3),
        );
        assert_eq!(c.result(), 4);
        let mut got = [0u8; 4];
        (&client).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"back");
        // Sending on the shut-down side is EPIPE, with no SIGPIPE.
        let c = run1(
            ring,
            Send::new(client.as_raw_fd(), Bytes::from_static(b"late"))
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), -libc::EPIPE);
    });
}

#[test]
fn a_reset_peer_is_econnreset_for_pending_and_later_receives() {
    each_mode(|ring| {
        let (client, server) = tcp_pair();
        submit_all(
            ring,
            [Recv::new(server.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(1)],
        );
        assert_quiet(ring);
        close_with_reset(client).unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, -libc::ECONNRESET));
        assert_eq!(take_mut(&mut c).capacity(), 8);

        // The reset has already arrived when the receive starts.
        let (client, server) = tcp_pair();
        close_with_reset(client).unwrap();
        let c = run1(
            ring,
            Recv::new(server.as_raw_fd(), BytesMut::with_capacity(8))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), -libc::ECONNRESET);
    });
}

#[test]
fn send_to_a_closed_unix_peer_is_epipe_without_sigpipe() {
    const NAME: &str = "send_to_a_closed_unix_peer_is_epipe_without_sigpipe";
    with_default_sigpipe(NAME, || {
        each_mode(|ring| {
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            let mut c = run1(
                ring,
                Send::new(a.as_raw_fd(), Bytes::from_static(b"nobody"))
                    .build()
                    .user_data(1),
            );
            assert_eq!(c.result(), -libc::EPIPE);
            assert_eq!(c.take_buf::<Bytes>().ok().as_deref(), Some(&b"nobody"[..]));
            let c = run1(
                ring,
                SendMsg::new(a.as_raw_fd(), vec![Bytes::from_static(b"x")])
                    .build()
                    .user_data(2),
            );
            assert_eq!(c.result(), -libc::EPIPE);
        });
    });
}

#[test]
fn udp_sendmsg_and_recvmsg_carry_addresses() {
    each_mode(|ring| {
        let a = UdpSocket::bind(localhost()).unwrap();
        let b = UdpSocket::bind(localhost()).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        submit_all(
            ring,
            [RecvMsg::new(
                b.as_raw_fd(),
                vec![BytesMut::with_capacity(3), BytesMut::with_capacity(16)],
            )
            .build()
            .user_data(1)],
        );
        assert_quiet(ring);
        let c = run1(
            ring,
            SendMsg::new(
                a.as_raw_fd(),
                vec![Bytes::from_static(b"data"), Bytes::from_static(b"gram")],
            )
            .to(b_addr)
            .build()
            .user_data(2),
        );
        assert_eq!(c.result(), 8);
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 8));
        assert_eq!(c.socket_addr(), Some(a_addr));
        let bufs = c.take_buf::<Vec<BytesMut>>().unwrap();
        assert_eq!((&bufs[0][..], &bufs[1][..]), (&b"dat"[..], &b"agram"[..]));

        // Connected UDP: plain Send and Recv.
        a.connect(b_addr).unwrap();
        send_then_recv(ring, a.as_raw_fd(), b.as_raw_fd(), b"hi", 3);
        // An unconnected send with no address has nowhere to go.
        let c = run1(
            ring,
            SendMsg::new(b.as_raw_fd(), vec![Bytes::from_static(b"?")])
                .build()
                .user_data(5),
        );
        assert_eq!(c.result(), -libc::EDESTADDRREQ);
    });
}

#[test]
fn ipv6_loopback_accept_connect_send_recv() {
    let Ok(l) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: ::1 can't be bound here");
        return;
    };
    each_mode(|ring| {
        let fd = socket(ring, libc::AF_INET6, libc::SOCK_STREAM);
        submit_all(
            ring,
            [
                Accept::new(l.as_raw_fd())
                    .peer_addr(true)
                    .build()
                    .user_data(1),
                Connect::new(fd.as_raw_fd(), l.local_addr().unwrap())
                    .build()
                    .user_data(2),
            ],
        );
        let cqes = wait_sorted(ring, 2);
        assert_eq!(cqes[1].result(), 0);
        let client = TcpStream::from(fd);
        let peer = cqes[0].socket_addr().unwrap();
        assert!(peer.is_ipv6());
        assert_eq!(peer, client.local_addr().unwrap());
        // SAFETY: ours alone.
        let server = TcpStream::from(unsafe { OwnedFd::from_raw_fd(cqes[0].result()) });
        send_then_recv(ring, client.as_raw_fd(), server.as_raw_fd(), b"six", 3);

        // UDP over IPv6 with addresses.
        let a = UdpSocket::bind("[::1]:0").unwrap();
        let b = UdpSocket::bind("[::1]:0").unwrap();
        let c = run1(
            ring,
            SendMsg::new(a.as_raw_fd(), vec![Bytes::from_static(b"v6")])
                .to(b.local_addr().unwrap())
                .build()
                .user_data(5),
        );
        assert_eq!(c.result(), 2);
        let c = run1(
            ring,
            RecvMsg::new(b.as_raw_fd(), vec![BytesMut::with_capacity(4)])
                .build()
                .user_data(6),
        );
        assert_eq!(c.socket_addr(), Some(a.local_addr().unwrap()));
    });
}

#[test]
fn unix_stream_bind_listen_accept_connect() {
    each_mode(|ring| {
        let path = unix_path("stream");
        let lfd = socket(ring, libc::AF_UNIX, libc::SOCK_STREAM);
        let addr = SockAddr::unix(&path).unwrap();
        let c = run1(
            ring,
            Bind::new(lfd.as_raw_fd(), addr.clone())
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 0);
        let c = run1(ring, Listen::new(lfd.as_raw_fd(), 8).build().user_data(2));
        assert_eq!(c.result(), 0);
        let cfd = socket(ring, libc::AF_UNIX, libc::SOCK_STREAM);
        submit_all(
            ring,
            [
                Accept::new(lfd.as_raw_fd())
                    .peer_addr(true)
                    .build()
                    .user_data(3),
                Connect::new(cfd.as_raw_fd(), addr.clone())
                    .build()
                    .user_data(4),
            ],
        );
        let cqes = wait_sorted(ring, 2);
        assert!(cqes[0].result() >= 0, "{cqes:?}");
        assert_eq!(cqes[1].result(), 0);
        // The client is unbound: its address is unnamed.
        let peer = cqes[0].addr().unwrap();
        assert_eq!(peer.family(), libc::AF_UNIX);
        assert!(peer.is_unnamed(), "{peer:?}");
        // SAFETY: ours alone.
        let server = unsafe { OwnedFd::from_raw_fd(cqes[0].result()) };
        send_then_recv(ring, cfd.as_raw_fd(), server.as_raw_fd(), b"unix", 5);
        // A std client bound nowhere, accepted by std: same path seen.
        let l = UnixListener::from(lfd);
        assert_eq!(l.local_addr().unwrap().as_pathname(), addr.as_unix_path());
        // Connect to a path nobody listens on.
        let nobody = unix_path("nobody");
        let fd = socket(ring, libc::AF_UNIX, libc::SOCK_STREAM);
        let c = run1(
            ring,
            Connect::new(fd.as_raw_fd(), SockAddr::unix(&nobody).unwrap())
                .build()
                .user_data(7),
        );
        assert_eq!(c.result(), -libc::ENOENT);
        std::fs::remove_file(&path).unwrap();
    });
}

#[test]
fn unix_datagrams_carry_the_sender_path() {
    each_mode(|ring| {
        let (pa, pb) = (unix_path("dga"), unix_path("dgb"));
        let a = UnixDatagram::bind(&pa).unwrap();
        let b = UnixDatagram::bind(&pb).unwrap();
        let c = run1(
            ring,
            SendMsg::new(a.as_raw_fd(), vec![Bytes::from_static(b"dgram")])
                .to(SockAddr::unix(&pb).unwrap())
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 5);
        let mut c = run1(
            ring,
            RecvMsg::new(b.as_raw_fd(), vec![BytesMut::with_capacity(16)])
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 5);
        assert_eq!(c.addr().and_then(SockAddr::as_unix_path), Some(pa.path()));
        let bufs = c.take_buf::<Vec<BytesMut>>().unwrap();
        assert_eq!(&bufs[0][..], b"dgram");
        // An unbound sender is unnamed.
        let anon = UnixDatagram::unbound().unwrap();
        anon.send_to(b"x", &pb).unwrap();
        let c = run1(
            ring,
            RecvMsg::new(b.as_raw_fd(), vec![BytesMut::with_capacity(4)])
                .build()
                .user_data(3),
        );
        assert_eq!(c.result(), 1);
        // Linux reports no address at all for an unbound sender; the BSDs
        // an empty one.
        assert!(c.addr().is_none_or(SockAddr::is_unnamed), "{:?}", c.addr());
        std::fs::remove_file(&pa).unwrap();
        std::fs::remove_file(&pb).unwrap();
    });
}

#[test]
fn cancel_of_a_pending_accept_and_recv() {
    each_mode(|ring| {
        let l = TcpListener::bind(localhost()).unwrap();
        let (_client, server) = tcp_pair();
        submit_all(
            ring,
            [
                Accept::new(l.as_raw_fd()).build().user_data(1),
                Recv::new(server.as_raw_fd(), BytesMut::with_capacity(32))
                    .build()
                    .user_data(2),
            ],
        );
        assert_quiet(ring);
        let mut cqes = cancel_one_and_two(ring);
        let buf = take_mut(&mut cqes[1]);
        assert_eq!((buf.len(), buf.capacity()), (0, 32));
    });
}

#[test]
fn a_pending_connect_can_be_cancelled() {
    // A connect to a non-routable address stays in progress; cancel it.
    // 192.0.2.0/24 (TEST-NET-1) is never routed; where the host has no
    // route at all the connect fails at once, which is fine too.
    each_mode(|ring| {
        let fd = socket(ring, libc::AF_INET, libc::SOCK_STREAM);
        let target: SocketAddr = "192.0.2.1:9".parse().unwrap();
        submit_all(
            ring,
            [Connect::new(fd.as_raw_fd(), target).build().user_data(1)],
        );
        submit_all(ring, [AsyncCancel::new(1).build().user_data(2)]);
        let cqes = wait_sorted(ring, 2);
        match cqes[1].result() {
            0 => assert_eq!(cqes[0].result(), -libc::ECANCELED),
            r => {
                assert_eq!(r, -libc::ENOENT);
                assert!(cqes[0].result() < 0, "{:?}", cqes[0]);
            }
        }
    });
}

#[test]
fn sockaddr_conversions() {
    let v4: SocketAddr = "10.1.2.3:4567".parse().unwrap();
    let a = SockAddr::from(v4);
    assert_eq!((a.family(), a.as_socket()), (libc::AF_INET, Some(v4)));
    assert!(a.as_unix_path().is_none() && !a.is_unnamed());
    let v6: SocketAddr = "[fe80::1%3]:80".parse().unwrap();
    let b = SockAddr::from(v6);
    assert_eq!((b.family(), b.as_socket()), (libc::AF_INET6, Some(v6)));
    let u = SockAddr::unix("/tmp/x.sock").unwrap();
    assert_eq!(u.as_unix_path(), Some(std::path::Path::new("/tmp/x.sock")));
    assert!(SockAddr::unix("/tmp/nul\0byte").is_err());
    assert!(SockAddr::unix("x".repeat(200)).is_err());
    let abs = SockAddr::unix_abstract(b"kqring").unwrap();
    assert_eq!(abs.as_abstract_name(), Some(&b"kqring"[..]));
    assert!(abs.as_unix_path().is_none());
    assert_ne!(a, b);
    assert_eq!(a, SockAddr::from(v4));
    assert!(format!("{u:?}").contains("/tmp/x.sock"));
}

#[test]
fn the_peer_of_a_pair_is_not_killed_by_sigpipe_on_sendmsg() {
    // Same as above for TCP after a reset: the send fails as a completion.
    const NAME: &str = "the_peer_of_a_pair_is_not_killed_by_sigpipe_on_sendmsg";
    with_default_sigpipe(NAME, || {
        each_mode(|ring| {
            let (client, server) = tcp_pair();
            close_with_reset(server).unwrap();
            // Wait until the reset is seen, by a receive.
            let c = run1(
                ring,
                Recv::new(client.as_raw_fd(), BytesMut::with_capacity(1))
                    .build()
                    .user_data(1),
            );
            assert_eq!(c.result(), -libc::ECONNRESET);
            let c = run1(
                ring,
                SendMsg::new(client.as_raw_fd(), vec![Bytes::from_static(b"x")])
                    .build()
                    .user_data(2),
            );
            assert_eq!(c.result(), -libc::EPIPE);
            let _ = cqe_flags::MORE;
        });
    });
}
