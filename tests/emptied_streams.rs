//! A read that returns less than it asked of a byte stream has emptied it,
//! so the next read on that descriptor waits for readiness without trying
//! its syscall first (it would only say EAGAIN). These tests hold that
//! saving to its promise — no EAGAIN per message — and check that no data
//! and no end of stream is ever missed because of it: data that came while
//! nothing waited, data whose readiness event another waiter consumed,
//! data and end of stream in one event, queued and multishot receives.

mod common;

use std::io::Write as _;
use std::net::Shutdown as Dir;
use std::os::fd::AsRawFd;

use bytes::BytesMut;
use common::*;
use kqring::ops::{PollAdd, PollRemove, ProvideBuffers, Recv};
use kqring::{Cqe, Ring, Sqe, cqe_flags};

/// Submits `sqe` and waits for its completion, passing over the poll's.
fn run(ring: &Ring, sqe: Sqe) -> Cqe {
    let ud = sqe.get_user_data();
    submit_all(ring, [sqe]);
    loop {
        let c = wait_n(ring, 1).remove(0);
        if c.user_data() == ud {
            return c;
        }
        assert_eq!(c.user_data(), 100, "{c:?}");
    }
}

fn would_block(ring: &Ring) -> u64 {
    ring.stats().would_block
}

#[test]
fn request_response_costs_no_eagain_per_message() {
    each_mode(|ring| {
        let (mut peer, end) = pair();
        let fd = end.as_raw_fd();
        let before = would_block(ring);
        const ROUNDS: u64 = 20;
        exchanges(ring, fd, &mut peer, ROUNDS);
        // Only the first receive tried and found nothing: every later one
        // followed a read that emptied the socket. Trying first each time
        // would make it ROUNDS.
        let eagain = would_block(ring) - before;
        assert!(eagain <= 2, "{eagain} EAGAINs in {ROUNDS} rounds");
    });
}

#[test]
fn data_that_came_while_nothing_waited_is_received() {
    each_mode(|ring| {
        let (mut peer, end) = pair();
        let fd = end.as_raw_fd();
        for round in 0..5u64 {
            // The previous receive emptied the socket, and this message
            // came before the next receive: it must not wait for more.
            let msg = format!("early {round}");
            peer.write_all(msg.as_bytes()).unwrap();
            start(ring, []);
            submit_all(ring, [recv64(fd, round)]);
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!((c.user_data(), c.result()), (round, msg.len() as i32));
            assert_eq!(&take_mut(&mut c)[..], msg.as_bytes());
        }
    });
}

#[test]
fn a_receive_tries_when_a_poll_took_the_readiness_event() {
    each_mode(|ring| {
        let (mut peer, end) = pair();
        let fd = end.as_raw_fd();
        // A multishot poll keeps the read registration in place.
        start(
            ring,
            [PollAdd::new(fd, libc::POLLIN as u32)
                .multishot(true)
                .build()
                .user_data(100)],
        );
        peer.write_all(b"x").unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.is_more()), (100, true));
        submit_all(ring, [recv64(fd, 1)]);
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!(&take_mut(&mut c)[..], b"x", "{c:?}");
        // Emptied; new data comes and its event goes to the poll alone.
        peer.write_all(b"y").unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.is_more()), (100, true));
        // No event will come for "y" again: this receive must try.
        submit_all(ring, [recv64(fd, 2)]);
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (2, 1));
        assert_eq!(&take_mut(&mut c)[..], b"y");
        // The last data and the end of the stream; the poll hears of them
        // (in one event or two) and none follows.
        peer.write_all(b"z").unwrap();
        peer.shutdown(Dir::Write).unwrap();
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.is_more()), (100, true));
        let mut c = run(ring, recv64(fd, 3));
        assert_eq!(c.result(), 1);
        assert_eq!(&take_mut(&mut c)[..], b"z");
        // The socket is empty but not done with: this one must try too.
        assert_eq!(run(ring, recv64(fd, 4)).result(), 0);
        submit_all(ring, [PollRemove::new(100).build().user_data(101)]);
        let cqes = wait_sorted(ring, 2);
        assert_eq!(
            (cqes[0].user_data(), cqes[0].result(), cqes[0].is_more()),
            (100, -libc::ECANCELED, false)
        );
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (101, 0));
    });
}

#[test]
fn queued_receives_wait_after_an_emptying_read_and_see_the_end_of_stream() {
    each_mode(|ring| {
        let (mut peer, end) = pair();
        let fd = end.as_raw_fd();
        start(ring, [recv64(fd, 1), recv64(fd, 2)]);
        peer.write_all(b"abc").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (1, 3));
        assert_eq!(&take_mut(&mut c)[..], b"abc");
        // The second waits for the next message.
        assert_quiet(ring);
        peer.write_all(b"def").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (2, 3));
        assert_eq!(&take_mut(&mut c)[..], b"def");

        // Data and the end of the stream at once, perhaps in one event:
        // the first receive empties the socket, and no event follows the
        // end of the stream, so the second must still be served.
        start(ring, [recv64(fd, 3), recv64(fd, 4)]);
        peer.write_all(b"ghi").unwrap();
        peer.shutdown(Dir::Write).unwrap();
        let mut cqes = wait_n(ring, 2);
        assert_eq!((cqes[0].user_data(), cqes[0].result()), (3, 3));
        assert_eq!(&take_mut(&mut cqes[0])[..], b"ghi");
        assert_eq!((cqes[1].user_data(), cqes[1].result()), (4, 0));
    });
}

#[test]
fn a_multishot_receive_waits_after_an_emptying_read_and_ends_at_end_of_stream() {
    each_mode(|ring| {
        let (mut peer, end) = pair();
        let fd = end.as_raw_fd();
        let bufs = (0..4).map(|_| BytesMut::with_capacity(64)).collect();
        submit_all(
            ring,
            [ProvideBuffers::new(7, bufs, 0).build().user_data(50)],
        );
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (50, 0));
        start(
            ring,
            [Recv::select(fd, 7).multishot(true).build().user_data(1)],
        );
        let shot = |ring: &Ring, msg: &[u8]| {
            let mut c = wait_n(ring, 1).remove(0);
            assert_eq!((c.user_data(), c.result()), (1, msg.len() as i32));
            assert_eq!(c.flags() & cqe_flags::MORE, cqe_flags::MORE);
            assert_eq!(&take_mut(&mut c)[..], msg);
        };
        peer.write_all(b"one").unwrap();
        shot(ring, b"one");
        assert_quiet(ring);
        peer.write_all(b"two").unwrap();
        shot(ring, b"two");
        // The last data and the end of the stream together.
        peer.write_all(b"three").unwrap();
        peer.shutdown(Dir::Write).unwrap();
        shot(ring, b"three");
        let c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result(), c.is_more()), (1, 0, false));
    });
}
