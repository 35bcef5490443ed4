//! Registered files: the file table, `FilesUpdate`, operations on slots,
//! direct `Accept`/`Socket`, `Close` and cancel of a slot, and what the
//! ring's ownership of those descriptors buys: registrations kept across
//! waits, with no end of stream missed because of it.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{Shutdown as How, TcpStream};
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use common::*;
use kqring::ops::{
    Accept, AsyncCancel, CancelTarget, Close, Connect, FileSlot, FilesUpdate, Fixed, Read, Send,
    Socket,
};
use kqring::{Cqe, Mode, Ring, Sqe, SqeFlags};
use kqring_test_support::tcp_listener;

fn rings_with(files: u32) -> Vec<Ring> {
    [Mode::PollingThread, Mode::Inline]
        .into_iter()
        .map(|mode| {
            Ring::builder()
                .mode(mode)
                .files(files)
                .build()
                .expect("ring")
        })
        .collect()
}

fn each_mode_with(files: u32, f: impl Fn(&Ring)) {
    for ring in rings_with(files) {
        eprintln!("mode: {:?}", ring.mode());
        f(&ring);
    }
}

/// Submits `sqe` and waits for its completion.
fn run(ring: &Ring, sqe: Sqe) -> Cqe {
    let ud = sqe.get_user_data();
    let c = run1(ring, sqe);
    assert_eq!(c.user_data(), ud, "{c:?}");
    c
}

fn update(ring: &Ring, slot: FileSlot, fds: Vec<i32>) -> (i32, Vec<i32>) {
    let c = run(ring, FilesUpdate::new(slot, fds).build().user_data(90));
    let fds = c
        .fds()
        .map(<[_]>::to_vec)
        .expect("the descriptors come back");
    (c.result(), fds)
}

/// Reads until end of stream within `PATIENCE`: the other end has closed.
fn assert_closed(peer: &mut std::os::unix::net::UnixStream) {
    peer.set_nonblocking(false).unwrap();
    peer.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest)
        .expect("end of stream, not a timeout");
}

#[test]
fn operations_reach_their_files_through_slots() {
    each_mode_with(4, |ring| {
        let (a, b) = pair();
        let (res, fds) = update(ring, FileSlot::Index(1), vec![a.as_raw_fd(), b.as_raw_fd()]);
        assert_eq!((res, fds), (2, vec![a.as_raw_fd(), b.as_raw_fd()]));
        // The ring holds its own references: the caller's may go.
        drop((a, b));
        let sqe = Send::new(Fixed(1), Bytes::from_static(b"hello")).build();
        assert!(sqe.get_flags().contains(SqeFlags::FIXED_FILE));
        let c = run(ring, sqe.user_data(1));
        assert_eq!(c.result(), 5);
        let mut c = run(ring, recv64(Fixed(2), 2));
        assert_eq!(c.result(), 5);
        assert_eq!(&take_mut(&mut c)[..], b"hello");
        // Emptying slot 1 drops the last reference to its socket: the
        // other end sees the end of the stream.
        assert_eq!(
            run(ring, Close::new(Fixed(1)).build().user_data(3)).result(),
            0
        );
        let mut c = run(ring, recv64(Fixed(2), 4));
        assert_eq!(c.result(), 0);
        assert!(take_mut(&mut c).is_empty());
    });
}

#[test]
fn a_pipe_and_a_regular_file_work_through_slots() {
    each_mode_with(3, |ring| {
        let (r, w) = nonblocking_pipe();
        let file = kqring_test_support::temp_file(b"on disk").unwrap();
        let fds = vec![r.as_raw_fd(), w.as_raw_fd(), file.as_raw_fd()];
        assert_eq!(update(ring, FileSlot::Index(0), fds).0, 3);
        drop((r, w, file));
        // The read waits for readiness on the ring's copy of the pipe.
        start(
            ring,
            [Read::new(Fixed(0), BytesMut::with_capacity(16))
                .build()
                .user_data(1)],
        );
        let c = run(
            ring,
            kqring::ops::Write::new(Fixed(1), Bytes::from_static(b"piped"))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 5);
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 5));
        assert_eq!(&take_mut(&mut c)[..], b"piped");
        // The regular file is read on the blocking pool.
        let mut c = run(
            ring,
            Read::new(Fixed(2), BytesMut::with_capacity(16))
                .build()
                .user_data(3),
        );
        assert_eq!(c.result(), 7);
        assert_eq!(&take_mut(&mut c)[..], b"on disk");
    });
}

#[test]
fn slots_that_hold_nothing_are_ebadf_and_the_table_bounds_hold() {
    // No table at all.
    for ring in rings() {
        let ring = &ring;
        let mut c = run(ring, recv64(Fixed(0), 1));
        assert_eq!(c.result(), -libc::EBADF);
        assert_eq!(take_mut(&mut c).capacity(), 64, "the buffer comes back");
        let (a, _b) = pair();
        let (res, _) = update(ring, FileSlot::Index(0), vec![a.as_raw_fd()]);
        assert_eq!(res, -libc::ENXIO);
        let (res, _) = update(ring, FileSlot::Alloc, vec![a.as_raw_fd()]);
        assert_eq!(res, -libc::ENXIO);
        assert_eq!(
            run(ring, Close::new(Fixed(0)).build().user_data(2)).result(),
            -libc::ENXIO
        );
    }
    each_mode_with(2, |ring| {
        let (a, _b) = pair();
        assert_eq!(run(ring, recv64(Fixed(1), 1)).result(), -libc::EBADF);
        assert_eq!(run(ring, recv64(Fixed(2), 2)).result(), -libc::EBADF);
        assert_eq!(
            run(ring, Close::new(Fixed(1)).build().user_data(3)).result(),
            -libc::EBADF
        );
        assert_eq!(
            run(ring, Close::new(Fixed(2)).build().user_data(4)).result(),
            -libc::EINVAL
        );
        // A Close names a slot by itself; the flag on one is an error.
        let flagged = Close::new(a.as_raw_fd())
            .build()
            .flags(SqeFlags::FIXED_FILE);
        assert_eq!(run(ring, flagged.user_data(5)).result(), -libc::EBADF);
        // The update must fit the table, and have something in it.
        let fds = vec![a.as_raw_fd(); 2];
        assert_eq!(update(ring, FileSlot::Index(1), fds).0, -libc::EINVAL);
        assert_eq!(update(ring, FileSlot::Index(0), vec![]).0, -libc::EINVAL);
        // A bad descriptor stops the update: the count of those done
        // before it, or its error if it was the first.
        let fds = vec![a.as_raw_fd(), BAD_FD];
        assert_eq!(update(ring, FileSlot::Index(0), fds).0, 1);
        assert_eq!(
            update(ring, FileSlot::Index(0), vec![BAD_FD]).0,
            -libc::EBADF
        );
        // As in io_uring, the slot was emptied before the bad descriptor
        // was looked at.
        assert_eq!(run(ring, recv64(Fixed(0), 6)).result(), -libc::EBADF);
    });
}

#[test]
fn minus_one_empties_a_slot_and_skip_leaves_it() {
    each_mode_with(2, |ring| {
        let (a, mut peer_a) = pair();
        let (b, mut peer_b) = pair();
        let fds = vec![a.as_raw_fd(), b.as_raw_fd()];
        assert_eq!(update(ring, FileSlot::Index(0), fds).0, 2);
        drop((a, b));
        let (res, fds) = update(ring, FileSlot::Index(0), vec![-1, FilesUpdate::SKIP]);
        assert_eq!((res, fds), (2, vec![-1, FilesUpdate::SKIP]));
        let send = |slot, ud| {
            Send::new(Fixed(slot), Bytes::from_static(b"x"))
                .build()
                .user_data(ud)
        };
        assert_eq!(run(ring, send(0, 1)).result(), -libc::EBADF);
        assert_eq!(run(ring, send(1, 2)).result(), 1);
        let mut got = [0; 1];
        peer_b.set_nonblocking(false).unwrap();
        peer_b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        // Slot 0 held the last reference to `a`.
        assert_closed(&mut peer_a);
    });
}

#[test]
fn alloc_takes_the_first_free_slot_from_where_the_last_change_was() {
    each_mode_with(3, |ring| {
        let (a, b) = pair();
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        assert_eq!(update(ring, FileSlot::Alloc, vec![fa, fb]), (2, vec![0, 1]));
        // A freed slot is where the search starts next, as io_uring's hint.
        assert_eq!(
            run(ring, Close::new(Fixed(0)).build().user_data(1)).result(),
            0
        );
        assert_eq!(update(ring, FileSlot::Alloc, vec![fa]), (1, vec![0]));
        // Slot 2 is the last free one; then the table is full.
        assert_eq!(
            update(ring, FileSlot::Alloc, vec![fa, fb]),
            (1, vec![2, fb])
        );
        assert_eq!(
            update(ring, FileSlot::Alloc, vec![fa]),
            (-libc::ENFILE, vec![fa])
        );
        // Every slot works.
        for slot in 0..3 {
            let c = run(
                ring,
                Send::new(Fixed(slot), Bytes::from_static(b"s"))
                    .build()
                    .user_data(10),
            );
            assert_eq!(c.result(), 1, "slot {slot}");
        }
    });
}

#[test]
fn a_direct_accept_puts_the_connection_in_a_slot() {
    each_mode_with(4, |ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        let lfd = l.as_raw_fd();
        // Into a chosen slot: res 0.
        let mut client = TcpStream::connect(addr).unwrap();
        let c = run(
            ring,
            Accept::new(lfd)
                .file_index(FileSlot::Index(3))
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 0);
        let c = run(
            ring,
            Send::new(Fixed(3), Bytes::from_static(b"to 3"))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 4);
        let mut got = [0; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"to 3");
        // Allocated: res is the slot.
        let mut other = TcpStream::connect(addr).unwrap();
        let c = run(
            ring,
            Accept::new(lfd)
                .file_index(FileSlot::Alloc)
                .build()
                .user_data(3),
        );
        assert_eq!(c.result(), 0, "the first free slot");
        other.write_all(b"from other").unwrap();
        let mut c = run(ring, recv64(Fixed(0), 4));
        assert_eq!(&take_mut(&mut c)[..], b"from other");
        // Replacing slot 3 closes the connection it held.
        let _third = TcpStream::connect(addr).unwrap();
        let c = run(
            ring,
            Accept::new(lfd)
                .file_index(FileSlot::Index(3))
                .build()
                .user_data(5),
        );
        assert_eq!(c.result(), 0);
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        assert_eq!(client.read(&mut got).unwrap(), 0, "end of stream");
    });
}

#[test]
fn a_multishot_direct_accept_allocates_until_the_table_is_full() {
    each_mode_with(2, |ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        let lfd = l.as_raw_fd();
        // io_uring: a multishot accept must let the table choose.
        let c = run(
            ring,
            Accept::new(lfd)
                .multishot(true)
                .file_index(FileSlot::Index(0))
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), -libc::EINVAL);
        start(
            ring,
            [Accept::new(lfd)
                .multishot(true)
                .file_index(FileSlot::Alloc)
                .build()
                .user_data(2)],
        );
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let cqes = wait_n(ring, 3);
        let seen: Vec<_> = cqes
            .iter()
            .map(|c| (c.user_data(), c.result(), c.is_more()))
            .collect();
        assert_eq!(
            seen,
            [(2, 0, true), (2, 1, true), (2, -libc::ENFILE, false)]
        );
        drop(clients);
    });
}

#[test]
fn a_direct_socket_connects_and_sends_through_its_slot() {
    each_mode_with(2, |ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        let c = run(
            ring,
            Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .file_index(FileSlot::Alloc)
                .build()
                .user_data(1),
        );
        assert_eq!(c.result(), 0);
        let c = run(
            ring,
            Socket::new(libc::AF_INET, libc::SOCK_STREAM, 0)
                .file_index(FileSlot::Index(1))
                .build()
                .user_data(2),
        );
        assert_eq!(c.result(), 0);
        assert_eq!(
            run(ring, Connect::new(Fixed(1), addr).build().user_data(3)).result(),
            0
        );
        l.set_nonblocking(false).unwrap();
        let (mut conn, _) = l.accept().unwrap();
        let c = run(
            ring,
            Send::new(Fixed(1), Bytes::from_static(b"direct"))
                .build()
                .user_data(4),
        );
        assert_eq!(c.result(), 6);
        let mut got = [0; 6];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"direct");
    });
}

#[test]
fn a_linked_receive_uses_the_slot_its_accept_filled() {
    each_mode_with(1, |ring| {
        let (l, addr) = tcp_listener(true).unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(b"first words").unwrap();
        submit_all(
            ring,
            [
                Accept::new(l.as_raw_fd())
                    .file_index(FileSlot::Index(0))
                    .build()
                    .user_data(1)
                    .flags(SqeFlags::IO_LINK),
                recv64(Fixed(0), 2),
            ],
        );
        let mut cqes = wait_n(ring, 2);
        assert_eq!((cqes[0].user_data(), cqes[0].result()), (1, 0));
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (2, 11));
        assert_eq!(&take_mut(&mut cqes[1])[..], b"first words");
    });
}

#[test]
fn an_operation_keeps_its_file_when_its_slot_is_emptied() {
    each_mode_with(1, |ring| {
        let (end, mut peer) = pair();
        assert_eq!(update(ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0, 1);
        drop(end);
        start(ring, [recv64(Fixed(0), 1)]);
        assert_eq!(
            run(ring, Close::new(Fixed(0)).build().user_data(2)).result(),
            0
        );
        // The receive still holds the socket, as an io_uring request holds
        // its file.
        peer.write_all(b"late").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 4));
        assert_eq!(&take_mut(&mut c)[..], b"late");
        // It was the last user: the socket is closed now.
        assert_closed(&mut peer);
    });
}

#[test]
fn operations_on_a_slot_are_cancelled_by_slot() {
    each_mode_with(2, |ring| {
        let (end, _peer) = pair();
        assert_eq!(update(ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0, 1);
        start(ring, [recv64(Fixed(0), 1), recv64(end.as_raw_fd(), 2)]);
        let cancel = AsyncCancel::matching(CancelTarget::Fixed(0)).all(true);
        submit_all(ring, [cancel.build().user_data(3)]);
        let mut cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (1, -libc::ECANCELED)
        );
        assert_eq!(take_mut(&mut cqes[0]).capacity(), 64);
        // The slot's descriptor is the ring's own copy: the receive on the
        // caller's descriptor is another file reference and stays.
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (3, 1));
        let empty = AsyncCancel::matching(CancelTarget::Fixed(1))
            .build()
            .user_data(4);
        assert_eq!(run(ring, empty).result(), -libc::EBADF);
        submit_all(ring, [AsyncCancel::new(2).build().user_data(5)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result()),
            (2, -libc::ECANCELED)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (5, 0));
    });
}

#[test]
fn dropping_the_ring_closes_its_files() {
    for ring in rings_with(2) {
        let (end, mut peer) = pair();
        assert_eq!(
            update(&ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0,
            1
        );
        drop(end);
        start(&ring, [recv64(Fixed(0), 1)]);
        drop(ring);
        assert_closed(&mut peer);
    }
}

/// The number of registration changes a run of `rounds` request-response
/// exchanges on `fd` costs.
fn changes_for_exchanges(
    ring: &Ring,
    fd: impl Into<kqring::ops::Fd> + Copy,
    peer: &mut std::os::unix::net::UnixStream,
    rounds: u64,
) -> u64 {
    let before = ring.stats().changes;
    exchanges(ring, fd, peer, rounds);
    ring.stats().changes - before
}

#[test]
fn a_registered_file_keeps_its_registration_across_waits() {
    each_mode_with(1, |ring| {
        const ROUNDS: u64 = 20;
        // A descriptor of the caller's may be closed and its number reused
        // behind the ring's back: each wait re-adds its registration.
        let (end, mut peer) = pair();
        let raw = changes_for_exchanges(ring, end.as_raw_fd(), &mut peer, ROUNDS);
        assert!(raw >= ROUNDS, "{raw} changes for {ROUNDS} waits");
        // One of the ring's own is added once and used as it is.
        assert_eq!(update(ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0, 1);
        let fixed = changes_for_exchanges(ring, Fixed(0), &mut peer, ROUNDS);
        assert!(fixed <= 2, "{fixed} changes for {ROUNDS} waits");
    });
}

#[test]
fn a_kept_registration_misses_no_end_of_stream() {
    each_mode_with(1, |ring| {
        let (end, mut peer) = pair();
        assert_eq!(update(ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0, 1);
        drop(end);
        // Data and the end of the stream in one go, while a receive
        // waits: it empties the socket, and the end of the stream brings
        // no later event, so the next receive must try.
        start(ring, [recv64(Fixed(0), 1)]);
        peer.write_all(b"last").unwrap();
        peer.shutdown(How::Write).unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 4));
        assert_eq!(&take_mut(&mut c)[..], b"last");
        assert_eq!(run(ring, recv64(Fixed(0), 2)).result(), 0);

        // The end of the stream comes while nothing waits, after a read
        // that emptied the socket, and its event is taken then: no later
        // event will tell of it. A receive on another socket keeps a
        // registration active, so that a Nop's turn collects events.
        let (other, _other_peer) = pair();
        start(ring, [recv64(other.as_raw_fd(), 10)]);
        let (end, mut peer) = pair();
        assert_eq!(update(ring, FileSlot::Index(0), vec![end.as_raw_fd()]).0, 1);
        drop(end);
        start(ring, [recv64(Fixed(0), 3)]);
        peer.write_all(b"msg").unwrap();
        assert_eq!(wait_n(ring, 1)[0].result(), 3);
        peer.write_all(b"tail").unwrap();
        peer.shutdown(How::Write).unwrap();
        start(ring, []);
        // The first receive empties the socket again; the second must
        // still try, and see the end of the stream.
        submit_all(ring, [recv64(Fixed(0), 4), recv64(Fixed(0), 5)]);
        let mut cqes = wait_n(ring, 2);
        assert_eq!((cqes[0].user_data(), cqes[0].result()), (4, 4));
        assert_eq!(&take_mut(&mut cqes[0])[..], b"tail");
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (5, 0));
        submit_all(ring, [AsyncCancel::new(10).build().user_data(11)]);
        assert_eq!(wait_n(ring, 2).len(), 2);
    });
}
