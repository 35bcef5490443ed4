//! MsgRing: completions and registered files sent from one ring to
//! another, delivered by the target's own driver.

mod common;

use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::thread;

use bytes::Bytes;
use common::{PATIENCE, assert_quiet, pair, run1, submit_all, wait_n, wait_sorted, wait_until};
use kqring::ops::{FileSlot, FilesUpdate, Fixed, MsgRing, Nop, Read, Send};
use kqring::{Mode, Ring, SqeFlags};

fn ring(mode: Mode, files: u32) -> Ring {
    Ring::builder()
        .mode(mode)
        .files(files)
        .build()
        .expect("ring")
}

const MODES: [Mode; 2] = [Mode::PollingThread, Mode::Inline];

#[test]
fn data_reaches_the_target_with_its_user_data_res_and_flags() {
    for (from, to) in MODES
        .iter()
        .flat_map(|a| MODES.iter().map(move |b| (*a, *b)))
    {
        let (a, b) = (ring(from, 0), ring(to, 0));
        let c = run1(
            &a,
            MsgRing::data(&b, -libc::EPIPE, 77)
                .flags(0x50)
                .build()
                .user_data(1),
        );
        assert_eq!(
            (c.user_data(), c.result(), c.flags()),
            (1, 0, 0),
            "{from:?} → {to:?}"
        );
        let got = b
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .expect("the message");
        assert_eq!(
            (got.user_data(), got.result(), got.flags()),
            (77, -libc::EPIPE, 0x50)
        );
        assert!(b.completion().pop().is_none());
    }
}

#[test]
fn a_parked_target_wakes() {
    for to in MODES {
        let (a, b) = (Ring::new(4).expect("ring"), ring(to, 0));
        let cq = b.completion().clone();
        let waiter =
            thread::spawn(move || cq.wait_timeout(PATIENCE).map(|c| c.map(|c| c.user_data())));
        // The polling thread parks after its idle time; an inline ring's
        // waiter parks in kevent.
        if to == Mode::PollingThread {
            wait_until("the target parks", || b.stats().parks > 0);
        }
        assert_eq!(
            run1(&a, MsgRing::data(b.handle(), 0, 5).build()).result(),
            0
        );
        assert_eq!(
            waiter.join().expect("waiter").expect("wait"),
            Some(5),
            "{to:?}"
        );
    }
}

#[test]
fn a_target_that_is_gone_is_ebadf() {
    let a = Ring::new(4).expect("ring");
    let handle = Ring::new(4).expect("ring").handle();
    let c = run1(&a, MsgRing::data(&handle, 1, 2).build());
    assert_eq!(c.result(), -libc::EBADF);
    let c = run1(
        &a,
        MsgRing::send_fd(&handle, Fixed(0), FileSlot::Alloc, 2).build(),
    );
    assert_eq!(c.result(), -libc::EBADF);
}

#[test]
fn skip_with_data_is_einval_as_in_io_uring() {
    let (a, b) = (Ring::new(4).expect("ring"), ring(Mode::Inline, 0));
    let m = MsgRing::data(&b, 1, 2).skip_target_cqe(true);
    assert_eq!(run1(&a, m.build().user_data(3)).result(), -libc::EINVAL);
    // A message sent after it arrives alone.
    run1(&a, MsgRing::data(&b, 4, 5).build());
    let got = b
        .completion()
        .wait_timeout(PATIENCE)
        .expect("wait")
        .expect("message");
    assert_eq!((got.user_data(), got.result()), (5, 4));
    assert!(b.completion().pop().is_none());
}

#[test]
fn a_ring_may_message_itself_and_that_completion_comes_first() {
    for mode in MODES {
        let a = ring(mode, 0);
        submit_all(&a, [MsgRing::data(&a, 9, 100).build().user_data(1)]);
        let c = wait_n(&a, 2);
        assert_eq!(
            c.iter()
                .map(|c| (c.user_data(), c.result()))
                .collect::<Vec<_>>(),
            [(100, 9), (1, 0)],
            "{mode:?}"
        );
    }
}

/// A ring whose slot 0 holds one end of a socket pair; the other end.
fn ring_with_socket(mode: Mode) -> (Ring, std::os::unix::net::UnixStream) {
    let r = ring(mode, 2);
    let (x, y) = pair();
    let c = run1(
        &r,
        FilesUpdate::new(FileSlot::Index(0), vec![x.as_raw_fd()]).build(),
    );
    assert_eq!(c.result(), 1);
    (r, y)
}

#[test]
fn send_fd_installs_the_file_and_the_source_keeps_its_own() {
    for (from, to) in MODES
        .iter()
        .flat_map(|a| MODES.iter().map(move |b| (*a, *b)))
    {
        let (a, mut peer) = ring_with_socket(from);
        let b = ring(to, 4);
        // Into slot 2: both completions say 0.
        let send = MsgRing::send_fd(&b, Fixed(0), FileSlot::Index(2), 40)
            .build()
            .user_data(1);
        let c = run1(&a, send);
        assert_eq!((c.user_data(), c.result()), (1, 0), "{from:?} → {to:?}");
        let got = b
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .expect("target's");
        assert_eq!((got.user_data(), got.result(), got.flags()), (40, 0, 0));
        // Allocated: the slot, in both completions.
        let c = run1(
            &a,
            MsgRing::send_fd(&b, Fixed(0), FileSlot::Alloc, 41).build(),
        );
        // The search starts past the last slot taken, as io_uring's.
        assert_eq!(c.result(), 3, "the allocated slot");
        let got = b
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .expect("target's");
        assert_eq!((got.user_data(), got.result()), (41, 3));
        // Each ring writes through its own slot to the same socket.
        let c = run1(&b, Send::new(Fixed(2), Bytes::from_static(b"to")).build());
        assert_eq!(c.result(), 2);
        let c = run1(
            &a,
            Send::new(Fixed(0), Bytes::from_static(b"gether")).build(),
        );
        assert_eq!(c.result(), 6);
        let mut got = [0u8; 8];
        peer.set_nonblocking(false).expect("blocking");
        peer.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"together");
    }
}

#[test]
fn send_fd_errors_are_io_urings() {
    let (a, _peer) = ring_with_socket(Mode::PollingThread);
    let no_table = Ring::new(4).expect("ring");
    let small = ring(Mode::PollingThread, 1);
    let cases = [
        // An empty source slot, one past the source's table.
        (
            MsgRing::send_fd(&small, Fixed(1), FileSlot::Alloc, 0),
            -libc::EBADF,
        ),
        (
            MsgRing::send_fd(&small, Fixed(9), FileSlot::Alloc, 0),
            -libc::EBADF,
        ),
        // The target has no table: ENFILE to allocate, ENXIO for a slot.
        (
            MsgRing::send_fd(&no_table, Fixed(0), FileSlot::Alloc, 0),
            -libc::ENFILE,
        ),
        (
            MsgRing::send_fd(&no_table, Fixed(0), FileSlot::Index(0), 0),
            -libc::ENXIO,
        ),
        // A slot past the target's table.
        (
            MsgRing::send_fd(&small, Fixed(0), FileSlot::Index(1), 0),
            -libc::EINVAL,
        ),
        // To this very ring.
        (
            MsgRing::send_fd(&a, Fixed(0), FileSlot::Alloc, 0),
            -libc::EINVAL,
        ),
    ];
    for (i, (m, res)) in cases.into_iter().enumerate() {
        let c = run1(&a, m.build().user_data(i as u64));
        assert_eq!((c.user_data(), c.result()), (i as u64, res), "case {i}");
    }
    // The target's one slot filled, a second allocation finds none.
    let c = run1(
        &a,
        MsgRing::send_fd(&small, Fixed(0), FileSlot::Alloc, 7).build(),
    );
    assert_eq!(c.result(), 0);
    let got = small
        .completion()
        .wait_timeout(PATIENCE)
        .expect("wait")
        .expect("target's");
    assert_eq!((got.user_data(), got.result()), (7, 0));
    let c = run1(
        &a,
        MsgRing::send_fd(&small, Fixed(0), FileSlot::Alloc, 8).build(),
    );
    assert_eq!(c.result(), -libc::ENFILE);
    // Failures post nothing in the target.
    assert!(small.completion().pop().is_none() && no_table.completion().pop().is_none());
}

#[test]
fn send_fd_with_skip_installs_without_a_target_completion() {
    let (a, _peer) = ring_with_socket(Mode::PollingThread);
    let b = ring(Mode::PollingThread, 2);
    let m = MsgRing::send_fd(&b, Fixed(0), FileSlot::Alloc, 3).skip_target_cqe(true);
    assert_eq!(run1(&a, m.build()).result(), 0);
    assert_quiet(&b);
    // Slot 0 holds it: a second allocation gets slot 1.
    let c = run1(
        &a,
        MsgRing::send_fd(&b, Fixed(0), FileSlot::Alloc, 4).build(),
    );
    assert_eq!(c.result(), 1);
}

#[test]
fn cancelled_before_it_starts_it_sends_nothing() {
    let (a, b) = (Ring::new(4).expect("ring"), ring(Mode::PollingThread, 0));
    let bad = Read::new(common::BAD_FD, Vec::with_capacity(1));
    submit_all(
        &a,
        [
            bad.build().user_data(1).flags(SqeFlags::IO_LINK),
            MsgRing::data(&b, 1, 2).build().user_data(2),
        ],
    );
    let c = wait_sorted(&a, 2);
    assert_eq!(
        (c[0].result(), c[1].result()),
        (-libc::EBADF, -libc::ECANCELED)
    );
    // A message sent after it is the target's first.
    run1(&a, MsgRing::data(&b, 3, 4).build());
    let got = b
        .completion()
        .wait_timeout(PATIENCE)
        .expect("wait")
        .expect("message");
    assert_eq!(got.user_data(), 4);
}

#[test]
fn many_messages_from_many_threads_all_arrive_in_order_per_sender() {
    let target = ring(Mode::PollingThread, 0);
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let handle = target.handle();
            thread::spawn(move || {
                let a = Ring::new(64).expect("ring");
                for i in 0..200u64 {
                    let m = MsgRing::data(&handle, i as i32, t << 32 | i);
                    let c = run1(&a, m.build());
                    assert_eq!(c.result(), 0);
                }
                // The ring stays until its messages are out.
                assert_eq!(run1(&a, Nop::new().build()).result(), 0);
            })
        })
        .collect();
    let mut next = [0u64; 4];
    for _ in 0..800 {
        let c = target
            .completion()
            .wait_timeout(PATIENCE)
            .expect("wait")
            .expect("message");
        let (t, i) = ((c.user_data() >> 32) as usize, c.user_data() & 0xffff_ffff);
        assert_eq!((i, c.result() as u64), (next[t], next[t]));
        next[t] += 1;
    }
    for s in senders {
        s.join().expect("sender");
    }
}
