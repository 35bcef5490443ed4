//! Watch: a file's or a directory's changes as multishot completions,
//! the change bits in `res`.
//!
//! The rings are inline: `start` returns once the driver's turn has made
//! the `kevent` call that registers the watch, so a change made after it
//! is one the watch must report, and changes made before the next wait
//! are read together (kqueue's `EV_CLEAR` coalescing them) — no timing.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;

use common::{assert_quiet, run1, start, submit_all, wait_n, wait_sorted};
use kqring::ops::{AsyncCancel, CancelTarget, Close, FileSlot, FilesUpdate, Fixed, Watch};
use kqring::sys::note;
use kqring::{Cqe, Ring};
use kqring_test_support::ScratchPath;

/// A new empty directory, removed with what it holds.
fn scratch_dir(name: &str) -> ScratchPath {
    let dir = ScratchPath::new(name).expect("scratch");
    fs::create_dir(dir.path()).expect("mkdir");
    dir
}

fn ring() -> Ring {
    Ring::builder().inline().files(2).build().expect("ring")
}

fn watch(fd: impl Into<kqring::ops::Fd>, events: u32, ud: u64) -> kqring::Sqe {
    Watch::new(fd, events).build().user_data(ud)
}

fn next(ring: &Ring) -> Cqe {
    wait_n(ring, 1).remove(0)
}

fn shot(c: &Cqe) -> (u64, u32, bool) {
    (c.user_data(), c.result() as u32, c.is_more())
}

#[test]
fn writes_and_growth_are_reported_and_coalesce() {
    let ring = ring();
    let dir = scratch_dir("watch-write");
    let mut f = File::create(dir.path().join("f")).expect("create");
    start(&ring, [watch(f.as_raw_fd(), note::WRITE | note::EXTEND, 1)]);
    assert_quiet(&ring);
    // Two writes before the driver looks again: one completion.
    f.write_all(b"one").expect("write");
    f.write_all(b"two").expect("write");
    assert_eq!(shot(&next(&ring)), (1, note::WRITE | note::EXTEND, true));
    assert_quiet(&ring);
    // A write that does not grow the file: WRITE alone.
    std::os::unix::fs::FileExt::write_at(&f, b"x", 0).expect("pwrite");
    assert_eq!(shot(&next(&ring)), (1, note::WRITE, true));
}

#[test]
fn only_the_bits_asked_for_are_reported() {
    let ring = ring();
    let dir = scratch_dir("watch-bits");
    let path = dir.path().join("f");
    let mut f = File::create(&path).expect("create");
    start(&ring, [watch(f.as_raw_fd(), note::ATTRIB, 2)]);
    // A write is not asked for: nothing.
    f.write_all(b"data").expect("write");
    assert_quiet(&ring);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(shot(&next(&ring)), (2, note::ATTRIB, true));
}

#[test]
fn links_renames_and_unlinks_go_on_until_cancelled() {
    let ring = ring();
    let dir = scratch_dir("watch-names");
    let path = dir.path().join("f");
    let f = File::create(&path).expect("create");
    start(
        &ring,
        [
            watch(f.as_raw_fd(), note::LINK, 1),
            watch(f.as_raw_fd(), note::RENAME, 2),
            watch(f.as_raw_fd(), note::DELETE, 3),
        ],
    );
    fs::hard_link(&path, dir.path().join("g")).expect("link");
    assert_eq!(shot(&next(&ring)), (1, note::LINK, true));
    fs::rename(&path, dir.path().join("h")).expect("rename");
    assert_eq!(shot(&next(&ring)), (2, note::RENAME, true));
    // FreeBSD reports every unlink of the file as DELETE (a link() is
    // LINK; an unlink is not).
    fs::remove_file(dir.path().join("h")).expect("unlink");
    assert_eq!(shot(&next(&ring)), (3, note::DELETE, true));
    fs::remove_file(dir.path().join("g")).expect("unlink");
    assert_eq!(shot(&next(&ring)), (3, note::DELETE, true));
    assert_quiet(&ring);
    // The open file lives on, unnamed: the watches go on until cancelled.
    submit_all(
        &ring,
        [AsyncCancel::matching(CancelTarget::Any)
            .build()
            .user_data(9)],
    );
    let c = wait_sorted(&ring, 4);
    let got: Vec<_> = c
        .iter()
        .map(|c| (c.user_data(), c.result(), c.is_more()))
        .collect();
    let ecanceled = -libc::ECANCELED;
    assert_eq!(
        got,
        [
            (1, ecanceled, false),
            (2, ecanceled, false),
            (3, ecanceled, false),
            (9, 3, false)
        ]
    );
}

#[test]
fn a_directory_reports_entries_made_and_removed() {
    let ring = ring();
    let dir = scratch_dir("watch-dir");
    let d = File::open(dir.path()).expect("open dir");
    start(&ring, [watch(d.as_raw_fd(), note::WRITE | note::LINK, 4)]);
    File::create(dir.path().join("entry")).expect("create");
    assert_eq!(shot(&next(&ring)), (4, note::WRITE, true));
    // A subdirectory changes the directory's link count too.
    fs::create_dir(dir.path().join("sub")).expect("mkdir");
    assert_eq!(shot(&next(&ring)), (4, note::WRITE | note::LINK, true));
    fs::remove_file(dir.path().join("entry")).expect("unlink");
    assert_eq!(shot(&next(&ring)), (4, note::WRITE, true));
}

#[test]
fn two_watches_of_one_file_each_hear_each_change() {
    let ring = ring();
    let mut f = kqring_test_support::temp_file(b"").expect("file");
    start(
        &ring,
        [
            watch(f.as_raw_fd(), note::WRITE, 1),
            watch(f.as_raw_fd(), note::WRITE | note::EXTEND, 2),
        ],
    );
    f.write_all(b"x").expect("write");
    let c = wait_sorted(&ring, 2);
    assert_eq!(shot(&c[0]), (1, note::WRITE, true));
    assert_eq!(shot(&c[1]), (2, note::WRITE | note::EXTEND, true));
    // One leaves; the other keeps hearing.
    submit_all(&ring, [AsyncCancel::new(1).build().user_data(3)]);
    let c = wait_sorted(&ring, 2);
    assert_eq!((c[0].result(), c[1].result()), (-libc::ECANCELED, 0));
    f.write_all(b"y").expect("write");
    assert_eq!(shot(&next(&ring)), (2, note::WRITE | note::EXTEND, true));
}

#[test]
fn bad_arguments_and_descriptors() {
    let ring = ring();
    let f = kqring_test_support::temp_file(b"").expect("file");
    assert_eq!(
        run1(&ring, watch(f.as_raw_fd(), 0, 1)).result(),
        -libc::EINVAL
    );
    assert_eq!(
        run1(&ring, watch(f.as_raw_fd(), 0x8000, 1)).result(),
        -libc::EINVAL
    );
    assert_eq!(
        run1(&ring, watch(common::BAD_FD, note::WRITE, 2)).result(),
        -libc::EBADF
    );
    assert_eq!(
        run1(&ring, watch(-1, note::WRITE, 2)).result(),
        -libc::EBADF
    );
    assert_eq!(
        run1(&ring, watch(Fixed(1), note::WRITE, 3)).result(),
        -libc::EBADF
    );
}

#[test]
fn cancel_before_it_starts_and_while_it_waits_deletes_the_registration() {
    let ring = ring();
    let mut f = kqring_test_support::temp_file(b"").expect("file");
    let bad = kqring::ops::Read::new(common::BAD_FD, Vec::with_capacity(1));
    submit_all(
        &ring,
        [
            bad.build().user_data(1).flags(kqring::SqeFlags::IO_LINK),
            watch(f.as_raw_fd(), note::WRITE, 2),
        ],
    );
    let c = wait_sorted(&ring, 2);
    assert_eq!(
        (c[0].result(), c[1].result()),
        (-libc::EBADF, -libc::ECANCELED)
    );
    let before = ring.stats().changes;
    start(&ring, [watch(f.as_raw_fd(), note::WRITE, 3)]);
    // A cancel by descriptor finds it, as it finds io_uring's polls.
    let c = run1(
        &ring,
        AsyncCancel::matching(CancelTarget::Fd(f.as_raw_fd()))
            .build()
            .user_data(4),
    );
    let mut c = [c, next(&ring)];
    c.sort_by_key(Cqe::user_data);
    assert_eq!(
        (c[0].result(), c[0].is_more(), c[1].result()),
        (-libc::ECANCELED, false, 0)
    );
    // Added, then deleted: nothing of it is left.
    assert_eq!(ring.stats().changes - before, 2);
    f.write_all(b"x").expect("write");
    assert_quiet(&ring);
}

#[test]
fn a_close_through_the_ring_ends_the_watch_and_a_slot_works() {
    let ring = ring();
    let f = kqring_test_support::temp_file(b"").expect("file");
    let fd = f.as_raw_fd();
    start(&ring, [watch(fd, note::WRITE, 1)]);
    std::mem::forget(f);
    submit_all(&ring, [Close::new(fd).build().user_data(2)]);
    let c = wait_sorted(&ring, 2);
    assert_eq!(
        (c[0].result(), c[0].is_more(), c[1].result()),
        (-libc::ECANCELED, false, 0)
    );
    // Through a slot of the file table.
    let mut g = kqring_test_support::temp_file(b"").expect("file");
    let c = run1(
        &ring,
        FilesUpdate::new(FileSlot::Index(0), vec![g.as_raw_fd()]).build(),
    );
    assert_eq!(c.result(), 1);
    start(&ring, [watch(Fixed(0), note::EXTEND, 3)]);
    g.write_all(b"more").expect("write");
    assert_eq!(shot(&next(&ring)), (3, note::EXTEND, true));
}

#[test]
fn dropping_the_ring_ends_a_watch() {
    let f = kqring_test_support::temp_file(b"").expect("file");
    let cq = {
        let ring = ring();
        start(&ring, [watch(f.as_raw_fd(), note::WRITE, 5)]);
        ring.completion().clone()
    };
    let c = cq.pop().expect("its completion");
    assert_eq!(
        (c.user_data(), c.result(), c.is_more()),
        (5, -libc::ECANCELED, false)
    );
}

#[test]
fn a_polling_thread_ring_reports_too() {
    let ring = Ring::new(8).expect("ring");
    let mut f = kqring_test_support::temp_file(b"").expect("file");
    // By the Nop's completion the registration is made (common::start).
    start(&ring, [watch(f.as_raw_fd(), note::WRITE, 6)]);
    f.write_all(b"z").expect("write");
    assert_eq!(shot(&next(&ring)), (6, note::WRITE, true));
}
