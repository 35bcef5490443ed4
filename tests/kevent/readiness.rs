//! EVFILT_READ / EVFILT_WRITE on a socket pair, a pipe and TCP loopback,
//! and every flag on them.

use std::os::fd::AsRawFd;

use kqring::sys::{Change, Filter, Flags};

use crate::common::*;

/// The smallest room to write any platform reports on an empty descriptor
/// (POSIX's minimal PIPE_BUF; socket buffers are far larger).
const MIN_ROOM: i64 = 512;

#[test]
fn read_reports_bytes_readable() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x11)]);
        assert_quiet(&kq);

        send(&tx, b"hello");
        let ev = wait_one(&kq);
        Want::new(id(&rx), Filter::READ, Flags::ADD, 0x11)
            .data(5)
            .check(&ev);
    }
}

#[test]
fn read_is_level_triggered() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x12)]);
        let want = Want::new(id(&rx), Filter::READ, Flags::ADD, 0x12);

        send(&tx, b"hello");
        want.data(5).check(&wait_one(&kq));
        // Still readable: reported again, and again.
        want.data(5).check(&poll_one(&kq));
        want.data(5).check(&poll_one(&kq));
        // data follows what is left.
        assert_eq!(recv(&rx, 2), b"he");
        want.data(3).check(&poll_one(&kq));
        assert_eq!(recv(&rx, 3), b"llo");
        assert_quiet(&kq);
    }
}

#[test]
fn clear_reports_once_until_new_data() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let flags = Flags::ADD | Flags::CLEAR;
        apply(&kq, &[Change::read(raw(&rx), flags).token(0x13)]);
        let want = Want::new(id(&rx), Filter::READ, flags, 0x13);

        send(&tx, b"hello");
        want.data(5).check(&wait_one(&kq));
        // Edge-triggered: the bytes are still there, but not reported again.
        assert_quiet(&kq);
        // New data: reported once more, with everything that is readable.
        send(&tx, b"abc");
        want.data(8).check(&wait_one(&kq));
        assert_quiet(&kq);
        // Reading does not re-arm it either.
        assert_eq!(recv(&rx, 8), b"helloabc");
        assert_quiet(&kq);
    }
}

#[test]
fn oneshot_fires_once_then_is_gone() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let flags = Flags::ADD | Flags::ONESHOT;
        apply(&kq, &[Change::read(raw(&rx), flags).token(0x14)]);

        send(&tx, b"hello");
        Want::new(id(&rx), Filter::READ, flags, 0x14)
            .data(5)
            .check(&wait_one(&kq));
        // Deleted by its delivery: still readable, never reported again.
        assert_quiet(&kq);
        send(&tx, b"more");
        assert_quiet(&kq);
        expect_errors(
            &kq,
            &[Change::read(raw(&rx), Flags::DELETE).token(0x14)],
            &[libc::ENOENT],
        );
    }
}

#[test]
fn dispatch_disables_after_event_and_enable_rearms() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let flags = Flags::ADD | Flags::DISPATCH;
        // Every change to an existing registration replaces its token
        // (`udata`) on a real kqueue, so each one carries the same token.
        let token = 0x15;
        apply(&kq, &[Change::read(raw(&rx), flags).token(token)]);
        let want = Want::new(id(&rx), Filter::READ, flags, token);

        send(&tx, b"hello");
        want.data(5).check(&wait_one(&kq));
        // Disabled by its delivery, although still readable.
        assert_quiet(&kq);
        // EV_ENABLE re-arms it: still readable, so reported at once...
        apply(&kq, &[Change::read(raw(&rx), Flags::ENABLE).token(token)]);
        want.data(5).check(&wait_one(&kq));
        // ...and disabled again.
        assert_quiet(&kq);
        send(&tx, b"abc");
        assert_quiet(&kq);
        apply(&kq, &[Change::read(raw(&rx), Flags::ENABLE).token(token)]);
        want.data(8).check(&wait_one(&kq));
        // A disabled registration still exists: EV_DELETE succeeds once.
        apply(&kq, &[Change::read(raw(&rx), Flags::DELETE).token(token)]);
        expect_errors(
            &kq,
            &[Change::read(raw(&rx), Flags::DELETE).token(token)],
            &[libc::ENOENT],
        );
    }
}

#[test]
fn disable_suppresses_and_enable_restores() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let token = 0x16;
        // Added disabled.
        let flags = Flags::ADD | Flags::DISABLE;
        apply(&kq, &[Change::read(raw(&rx), flags).token(token)]);
        let want = Want::new(id(&rx), Filter::READ, flags, token);

        send(&tx, b"hello");
        assert_quiet(&kq);
        apply(&kq, &[Change::read(raw(&rx), Flags::ENABLE).token(token)]);
        want.data(5).check(&wait_one(&kq));
        // Level-triggered while enabled.
        want.data(5).check(&poll_one(&kq));
        apply(&kq, &[Change::read(raw(&rx), Flags::DISABLE).token(token)]);
        assert_quiet(&kq);
        send(&tx, b"abc");
        assert_quiet(&kq);
        apply(&kq, &[Change::read(raw(&rx), Flags::ENABLE).token(token)]);
        want.data(8).check(&wait_one(&kq));
    }
}

#[test]
fn add_modifies_an_existing_registration() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x17)]);
        // Same (ident, filter): modifies the registration, does not add a
        // second one. (Only the token changes: FreeBSD keeps the mode flags
        // of the first EV_ADD.)
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x18)]);

        send(&tx, b"hello");
        let events = wait(&kq, WAIT);
        assert_eq!(events.len(), 1, "one registration, one event: {events:?}");
        let token = if libkqueue_skips(
            "the new token of a modified registration",
            "libkqueue's EVFILT_READ ignores EV_ADD on an existing registration",
        ) {
            events[0].token()
        } else {
            0x18
        };
        Want::new(id(&rx), Filter::READ, Flags::ADD, token)
            .data(5)
            .check(&events[0]);

        apply(&kq, &[Change::read(raw(&rx), Flags::DELETE).token(0x18)]);
        expect_errors(
            &kq,
            &[Change::read(raw(&rx), Flags::DELETE).token(0x18)],
            &[libc::ENOENT],
        );
        assert_quiet(&kq);
    }
}

#[test]
fn receipt_reports_success_with_zero_and_nothing_else() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        // Readable before the registration: the call that registers with
        // EV_RECEIPT returns the receipt only, the readiness comes after.
        send(&tx, b"hello");
        let add = Change::read(raw(&rx), Flags::ADD | Flags::RECEIPT).token(0x19);
        let events = results(&kq, &[add]);
        assert_eq!(events.len(), 1, "just the receipt: {events:?}");
        assert_result(&events[0], &add, 0);

        let ev = wait_until(&kq, "READ with 5 bytes", |ev| ev.data() == 5);
        Want::new(id(&rx), Filter::READ, add.flags(), 0x19)
            .data(5)
            .check(&ev);

        // Receipts and errors of one batch come back in order.
        let batch = [
            Change::write(raw(&tx), Flags::ADD | Flags::RECEIPT).token(0x1a),
            Change::user(0x1b, Flags::DELETE | Flags::RECEIPT, 0).token(0x1b),
            Change::read(raw(&rx), Flags::DELETE | Flags::RECEIPT).token(0x19),
        ];
        let events = results(&kq, &batch);
        assert_eq!(events.len(), 3, "{events:?}");
        assert_result(&events[0], &batch[0], 0);
        assert_result(&events[1], &batch[1], libc::ENOENT);
        assert_result(&events[2], &batch[2], 0);
    }
}

#[test]
fn read_and_write_on_one_fd_are_independent() {
    for kind in DUPLEX {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(
            &kq,
            &[
                Change::read(raw(&rx), Flags::ADD).token(0x21),
                Change::write(raw(&rx), Flags::ADD).token(0x22),
            ],
        );
        let read = Want::new(id(&rx), Filter::READ, Flags::ADD, 0x21).data(5);
        let write = Want::new(id(&rx), Filter::WRITE, Flags::ADD, 0x22).room(MIN_ROOM);

        send(&tx, b"hello");
        let events = wait_all(&kq, &[read, write]);
        read.check(&events[0]);
        write.check(&events[1]);

        // Deleting READ leaves WRITE.
        apply(&kq, &[Change::read(raw(&rx), Flags::DELETE).token(0x21)]);
        write.check(&poll_one(&kq));
        expect_errors(
            &kq,
            &[Change::read(raw(&rx), Flags::DELETE).token(0x21)],
            &[libc::ENOENT],
        );
        write.check(&poll_one(&kq));

        // Adding READ back, then deleting WRITE, leaves READ.
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x23)]);
        apply(&kq, &[Change::write(raw(&rx), Flags::DELETE).token(0x22)]);
        Want::new(id(&rx), Filter::READ, Flags::ADD, 0x23)
            .data(5)
            .check(&poll_one(&kq));
        expect_errors(
            &kq,
            &[Change::write(raw(&rx), Flags::DELETE).token(0x22)],
            &[libc::ENOENT],
        );
        // Disabling one does not disable the other.
        apply(&kq, &[Change::write(raw(&rx), Flags::ADD).token(0x22)]);
        apply(&kq, &[Change::read(raw(&rx), Flags::DISABLE).token(0x23)]);
        write.check(&poll_one(&kq));
    }
}

#[test]
fn write_reports_room_in_the_same_call() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (_rx, tx) = pair(kind);
        // Register and wait in one call, the way the driver does.
        let mut events = Vec::new();
        let n = kq
            .kevent(
                &[Change::write(raw(&tx), Flags::ADD).token(0x24)],
                &mut events,
                Some(WAIT),
            )
            .expect("kevent");
        assert_eq!(n, 1, "{events:?}");
        Want::new(id(&tx), Filter::WRITE, Flags::ADD, 0x24)
            .room(MIN_ROOM)
            .check(&events[0]);
    }
}

/// A full descriptor is not writable; it is again once the peer has read.
/// (Not over TCP: there the send buffer keeps draining into the peer's
/// receive window as ACKs and window updates arrive, so "full" is not a
/// stable state to assert on.)
#[test]
fn write_readiness_returns_after_the_peer_drains() {
    for kind in [Kind::SocketPair, Kind::Pipe] {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        set_nonblocking(&tx, true).unwrap();
        set_nonblocking(&rx, true).unwrap();
        let written = fill(&tx).unwrap();
        assert!(written > 0);
        apply(&kq, &[Change::write(raw(&tx), Flags::ADD).token(0x25)]);
        assert_quiet(&kq);

        let mut read = 0;
        while read < written {
            read += drain(&rx);
        }
        assert_eq!(read, written);
        Want::new(id(&tx), Filter::WRITE, Flags::ADD, 0x25)
            .room(MIN_ROOM)
            .check(&wait_one(&kq));
    }
}

/// A listening socket is readable when connections are pending; `data` is
/// how many (the listen queue length).
#[test]
fn listener_read_counts_pending_connections() {
    if libkqueue_skips(
        "EVFILT_READ data on a listening socket",
        "libkqueue reports 1, not the number of pending connections",
    ) {
        return;
    }
    let kq = kq();
    let (listener, addr) = kqring_test_support::tcp_listener(false).expect("listener");
    let lfd = listener.as_raw_fd();
    apply(&kq, &[Change::read(lfd, Flags::ADD).token(0x26)]);
    assert_quiet(&kq);
    let want = Want::new(lfd as usize, Filter::READ, Flags::ADD, 0x26);

    let _c1 = std::net::TcpStream::connect(addr).expect("connect");
    let _c2 = std::net::TcpStream::connect(addr).expect("connect");
    // The handshake completes on the listener's side asynchronously: wait
    // until both connections are queued.
    let ev = wait_until(&kq, "READ with 2 pending connections", |ev| ev.data() == 2);
    want.data(2).check(&ev);

    let (_s1, _) = listener.accept().expect("accept");
    want.data(1).check(&poll_one(&kq));
    let (_s2, _) = listener.accept().expect("accept");
    assert_quiet(&kq);
}

/// Closing a descriptor removes its registrations, even when another
/// descriptor for the same open file stays open (kqueue keys registrations
/// by descriptor, not by open file).
#[test]
fn close_removes_the_registrations_of_that_descriptor() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let rx2 = dup(&rx);
        let rx2_fd = raw(&rx2);
        apply(
            &kq,
            &[
                Change::read(rx2_fd, Flags::ADD).token(0x27),
                Change::read(raw(&rx), Flags::ADD | Flags::DISABLE).token(0x28),
            ],
        );
        send(&tx, b"hello");
        Want::new(rx2_fd as usize, Filter::READ, Flags::ADD, 0x27)
            .data(5)
            .check(&wait_one(&kq));

        drop(rx2);
        if libkqueue_skips(
            "the removal of a closed descriptor's registration",
            "libkqueue's epoll registration lives as long as the open file, \
             which `rx` still holds",
        ) {
            continue;
        }
        // The open file is still readable through `rx`, but the
        // registration on the closed number is gone.
        assert_quiet(&kq);
        send(&tx, b"abc");
        assert_quiet(&kq);
        // The registration on the other descriptor is untouched.
        apply(&kq, &[Change::read(raw(&rx), Flags::ENABLE).token(0x28)]);
        Want::new(id(&rx), Filter::READ, Flags::ADD | Flags::DISABLE, 0x28)
            .data(8)
            .check(&wait_one(&kq));
    }
}

// ---------------------------------------------------------------------------
// EV_EOF
// ---------------------------------------------------------------------------

/// The writer closes with bytes unread: EV_EOF, `data` the bytes left,
/// `fflags` 0 (no socket error after an orderly close). EOF stays reported
/// once everything is read, with `data` 0.
#[test]
fn read_eof_when_the_writer_closes_with_data_left() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x31)]);
        let want = Want::new(id(&rx), Filter::READ, Flags::ADD, 0x31).eof();

        send(&tx, b"hello");
        drop(tx);
        // Over TCP the FIN may trail the data: wait for the EOF.
        let ev = wait_until(&kq, "with EV_EOF", |ev| ev.is_eof());
        want.data(5).check(&ev);
        // Level-triggered: still there.
        want.data(5).check(&poll_one(&kq));

        assert_eq!(recv(&rx, 5), b"hello");
        want.data(0).check(&poll_one(&kq));
    }
}

/// Registered after the writer is already gone: EOF at once.
#[test]
fn read_eof_registered_after_the_close() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        send(&tx, b"xyz");
        drop(tx);
        apply(
            &kq,
            &[Change::read(raw(&rx), Flags::ADD | Flags::CLEAR).token(0x32)],
        );
        let ev = wait_until(&kq, "with EV_EOF", |ev| ev.is_eof());
        Want::new(id(&rx), Filter::READ, Flags::ADD | Flags::CLEAR, 0x32)
            .eof()
            .data(3)
            .check(&ev);
    }
}

/// The reader closes: the writer's EVFILT_WRITE reports EV_EOF.
///
/// `data` is not checked: kqueue leaves it unspecified here (FreeBSD's pipe
/// filter keeps the room it computed last, macOS reports 0, a socket
/// reports its send-buffer room). FreeBSD also turns the registration of a
/// pipe's write end into EV_ONESHOT when the reader closes (knlist_clear),
/// hence ONESHOT among the flags that may show.
#[test]
fn write_eof_when_the_reader_closes() {
    for kind in [Kind::SocketPair, Kind::Pipe] {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(&kq, &[Change::write(raw(&tx), Flags::ADD).token(0x33)]);
        Want::new(id(&tx), Filter::WRITE, Flags::ADD, 0x33)
            .room(MIN_ROOM)
            .check(&wait_one(&kq));

        drop(rx);
        let ev = wait_until(&kq, "with EV_EOF", |ev| ev.is_eof());
        let want = Want::new(id(&tx), Filter::WRITE, Flags::ADD | Flags::ONESHOT, 0x33)
            .eof()
            .any_data();
        if kind == Kind::Pipe
            && libkqueue_skips(
                "fflags of EV_EOF on a pipe",
                "libkqueue reports EIO in fflags when a pipe's reader is gone",
            )
        {
            want.fflags_among(0, 0).check(&ev);
        } else {
            want.check(&ev);
        }
    }
}

/// The peer resets the connection: EV_EOF with the socket error
/// (ECONNRESET) in `fflags`.
#[test]
fn tcp_reset_reports_the_socket_error_in_fflags() {
    let kq = kq();
    let (rx, tx) = pair(Kind::Tcp);
    apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x34)]);
    close_with_reset(tx).unwrap();

    let ev = wait_until(&kq, "with EV_EOF", |ev| ev.is_eof());
    Want::new(id(&rx), Filter::READ, Flags::ADD, 0x34)
        .eof()
        .fflags(libc::ECONNRESET as u32)
        .data(0)
        .check(&ev);
}

// ---------------------------------------------------------------------------
// Registrations over time
// ---------------------------------------------------------------------------

/// After an EV_ONESHOT registration fired (and is gone), EV_ADD makes a new
/// one, with whatever flags it now has.
#[test]
fn oneshot_can_be_added_again_after_it_fired() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        let oneshot = Flags::ADD | Flags::ONESHOT;
        apply(&kq, &[Change::read(raw(&rx), oneshot).token(0x29)]);
        send(&tx, b"hello");
        let want = Want::new(id(&rx), Filter::READ, oneshot, 0x29).data(5);
        want.check(&wait_one(&kq));
        assert_quiet(&kq);

        // Again one-shot: still readable, so reported at once, then gone.
        apply(&kq, &[Change::read(raw(&rx), oneshot).token(0x29)]);
        want.check(&wait_one(&kq));
        assert_quiet(&kq);

        // Now level-triggered, with a new token.
        apply(&kq, &[Change::read(raw(&rx), Flags::ADD).token(0x2a)]);
        let level = Want::new(id(&rx), Filter::READ, Flags::ADD, 0x2a).data(5);
        level.check(&wait_one(&kq));
        level.check(&poll_one(&kq));
    }
}

/// EV_DELETE also discards an event that is ready but not yet retrieved.
#[test]
fn delete_discards_a_pending_event() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let kq = kq();
        let (rx, tx) = pair(kind);
        apply(
            &kq,
            &[Change::read(raw(&rx), Flags::ADD | Flags::CLEAR).token(0x2b)],
        );
        send(&tx, b"hello");
        // Make sure the data has arrived (TCP) without retrieving the
        // event: a second, independent kqueue sees it.
        let probe = crate::common::kq();
        apply(&probe, &[Change::read(raw(&rx), Flags::ADD).token(0x2c)]);
        Want::new(id(&rx), Filter::READ, Flags::ADD, 0x2c)
            .data(5)
            .check(&wait_one(&probe));

        apply(&kq, &[Change::read(raw(&rx), Flags::DELETE).token(0x2b)]);
        assert_quiet(&kq);
    }
}

/// Two kqueues watching one descriptor are independent: each gets its own
/// events, an EV_CLEAR report in one does not consume the other's, and a
/// delete in one leaves the other.
#[test]
fn two_kqueues_watch_one_descriptor_independently() {
    for kind in KINDS {
        eprintln!("transport: {kind:?}");
        let (rx, tx) = pair(kind);
        let kq1 = kq();
        let kq2 = kq();
        let clear = Flags::ADD | Flags::CLEAR;
        apply(&kq1, &[Change::read(raw(&rx), clear).token(0x2d)]);
        apply(&kq2, &[Change::read(raw(&rx), clear).token(0x2e)]);
        send(&tx, b"hello");
        Want::new(id(&rx), Filter::READ, clear, 0x2d)
            .data(5)
            .check(&wait_one(&kq1));
        assert_quiet(&kq1);
        Want::new(id(&rx), Filter::READ, clear, 0x2e)
            .data(5)
            .check(&wait_one(&kq2));

        apply(&kq1, &[Change::read(raw(&rx), Flags::DELETE).token(0x2d)]);
        send(&tx, b"abc");
        Want::new(id(&rx), Filter::READ, clear, 0x2e)
            .data(8)
            .check(&wait_one(&kq2));
        assert_quiet(&kq1);
    }
}

/// A registration made from another thread is seen by a kevent call that
/// is already blocked.
#[test]
fn registration_from_another_thread_wakes_a_blocked_kevent() {
    if libkqueue_skips(
        "a registration from another thread waking a blocked kevent",
        LIBKQUEUE_HOLDS_ITS_LOCK,
    ) {
        return;
    }
    let kq = kq();
    let (rx, tx) = pair(Kind::Pipe);
    send(&tx, b"ready");
    let limit = std::time::Duration::from_secs(10);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let kq = &kq;
        let fd = raw(&rx);
        s.spawn(move || {
            ready_rx.recv().expect("the waiter is about to block");
            // Correctness never depends on this pause; it only makes it
            // likely that the waiter is asleep when the registration comes.
            std::thread::sleep(std::time::Duration::from_millis(50));
            apply(kq, &[Change::read(fd, Flags::ADD).token(0x2f)]);
        });
        ready_tx.send(()).expect("send");
        let start = std::time::Instant::now();
        let events = wait(kq, limit);
        let took = start.elapsed();
        assert!(
            took < limit / 2,
            "not woken by the new registration ({took:?})"
        );
        assert_eq!(events.len(), 1, "{events:?}");
        Want::new(fd as usize, Filter::READ, Flags::ADD, 0x2f)
            .data(5)
            .check(&events[0]);
    });
}
