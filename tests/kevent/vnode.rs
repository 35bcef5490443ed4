//! EVFILT_VNODE on a temp file: which NOTE_* bits each change reports.
//!
//! Every registration asks for the same set ([`REQUESTED`]) with EV_CLEAR
//! (without it a vnode event stays reported forever), and each check is on
//! exactly the bits among those requested. NOTE_LINK is not requested:
//! platforms differ on it (macOS reports it with NOTE_DELETE on unlink, and
//! a real kqueue may report more bits than asked for when one operation
//! posts several at once).

use std::io::Write;
use std::os::unix::fs::{FileExt, PermissionsExt};

use kqring::sys::{Change, Filter, Flags, note};

use crate::common::*;

const REQUESTED: u32 = note::DELETE | note::WRITE | note::EXTEND | note::ATTRIB | note::RENAME;

/// Registers the file and returns the expectation for its events.
fn watch(kq: &kqring::sys::Kqueue, file: &TempFile, token: u64) -> Want {
    let flags = Flags::ADD | Flags::CLEAR;
    apply(
        kq,
        &[Change::vnode(file.fd(), flags, REQUESTED).token(token)],
    );
    assert_quiet(kq);
    Want::new(file.fd() as usize, Filter::VNODE, flags, token)
}

#[test]
fn write_that_grows_the_file_reports_write_and_extend() {
    let kq = kq();
    let mut file = TempFile::new("extend");
    let want = watch(&kq, &file, 0x81);

    file.file.write_all(b"hello").expect("write");
    want.fflags_among(note::WRITE | note::EXTEND, REQUESTED)
        .check(&wait_one(&kq));
    assert_quiet(&kq);

    // Appending grows it again.
    file.file.write_all(b" world").expect("write");
    want.fflags_among(note::WRITE | note::EXTEND, REQUESTED)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}

#[test]
fn write_in_place_reports_write_only() {
    let kq = kq();
    let file = TempFile::new("overwrite");
    file.file.write_all_at(b"0123456789", 0).expect("write");
    let want = watch(&kq, &file, 0x82);

    file.file.write_all_at(b"ab", 3).expect("pwrite");
    want.fflags_among(note::WRITE, REQUESTED)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}

#[test]
fn chmod_reports_attrib() {
    let kq = kq();
    let file = TempFile::new("chmod");
    let want = watch(&kq, &file, 0x83);

    std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    want.fflags_among(note::ATTRIB, REQUESTED)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// Unlinking the (still open) file reports NOTE_DELETE.
#[test]
fn unlink_reports_delete() {
    let kq = kq();
    let file = TempFile::new("unlink");
    let want = watch(&kq, &file, 0x84);

    std::fs::remove_file(&file.path).expect("unlink");
    let mask = if libkqueue_skips(
        "NOTE_ATTRIB absent on unlink",
        "libkqueue's inotify sees the link count change as IN_ATTRIB",
    ) {
        REQUESTED & !note::ATTRIB
    } else {
        REQUESTED
    };
    want.fflags_among(note::DELETE, mask).check(&wait_one(&kq));
    assert_quiet(&kq);
}

#[test]
fn rename_reports_rename() {
    let kq = kq();
    let mut file = TempFile::new("rename");
    let want = watch(&kq, &file, 0x85);

    let to = file.path.with_file_name("renamed");
    std::fs::rename(&file.path, &to).expect("rename");
    file.path = to;
    want.fflags_among(note::RENAME, REQUESTED)
        .check(&wait_one(&kq));
    assert_quiet(&kq);
}

/// Only the requested notes are reported: a registration for NOTE_ATTRIB
/// alone says nothing about a write.
#[test]
fn unrequested_notes_are_not_reported() {
    let kq = kq();
    let mut file = TempFile::new("filter");
    let flags = Flags::ADD | Flags::CLEAR;
    apply(
        &kq,
        &[Change::vnode(file.fd(), flags, note::ATTRIB).token(0x86)],
    );

    file.file.write_all(b"hello").expect("write");
    assert_quiet(&kq);
    std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    Want::new(file.fd() as usize, Filter::VNODE, flags, 0x86)
        .fflags_among(note::ATTRIB, REQUESTED)
        .check(&wait_one(&kq));
}
