//! File-system operations: `OpenAt`, `Statx`, `Fsync`, `Fallocate`,
//! `Ftruncate`, `Fadvise`, `Madvise`, `UnlinkAt`, `RenameAt`, `MkdirAt`,
//! `SymlinkAt`, `LinkAt` — their results, their errnos as the system gives
//! them, their paths coming back, and cancellation before and while they
//! run. Every check runs in both driving modes.
//!
//! The errnos asserted are Linux's, where the tests run; where another
//! system answers otherwise the check says so.

mod common;

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

use common::*;
use kqring::ops::{
    Advice, AsyncCancel, Close, Fadvise, Fallocate, FallocateFlags, FileSlot, FilesUpdate, Fixed,
    Fsync, Ftruncate, LinkAt, Madvise, MemoryAdvice, MkdirAt, OpenAt, Read, RenameAt, RenameFlags,
    Statx, StatxMask, SymlinkAt, UnlinkAt,
};
use kqring::{Cqe, Mode, Ring, Sqe, SqeFlags};
use kqring_test_support::ScratchDir;
use libc::{O_CLOEXEC, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};

fn scratch() -> ScratchDir {
    ScratchDir::new().expect("a scratch directory")
}

/// Takes ownership of the descriptor a completion made.
fn own(cqe: &Cqe) -> OwnedFd {
    assert!(cqe.result() >= 0, "no descriptor: {cqe:?}");
    // SAFETY: the completion made this descriptor for the test, and
    // nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(cqe.result()) }
}

/// Runs `sqe`; its result, and the paths it handed back (closing a
/// descriptor it made).
fn run_paths(ring: &Ring, sqe: Sqe) -> (i32, Vec<PathBuf>) {
    let mut c = run1(ring, sqe);
    if c.result() >= 0 && c.user_data() == u64::from(OPENS) {
        drop(own(&c));
    }
    (c.result(), c.take_paths())
}

/// The `user_data` the tests give an `OpenAt` whose descriptor
/// [`run_paths`] closes.
const OPENS: u32 = 0x0be0;

/// The errno of opening `path` (relative to `d`) with `flags`, having
/// checked that the path came back as given.
fn open_errno(ring: &Ring, d: &ScratchDir, path: impl Into<PathBuf>, flags: i32) -> i32 {
    let path = path.into();
    let sqe = OpenAt::new(path.clone(), flags | O_CLOEXEC)
        .dir(d.fd())
        .build()
        .user_data(u64::from(OPENS));
    let (res, paths) = run_paths(ring, sqe);
    assert_eq!(paths, [path], "the path comes back");
    res
}

fn write_file(d: &ScratchDir, name: &str, contents: &[u8]) {
    fs::write(d.join(name), contents).expect("write a file");
}

fn one_rings(files: u32, workers: usize) -> Vec<Ring> {
    [Mode::PollingThread, Mode::Inline]
        .into_iter()
        .map(|mode| {
            Ring::builder()
                .mode(mode)
                .files(files)
                .workers(workers)
                .build()
                .expect("ring")
        })
        .collect()
}

#[test]
fn open_at_opens_relative_to_a_directory_and_gives_the_path_back() {
    each_mode(|ring| {
        let d = scratch();
        let mut c = run1(
            ring,
            OpenAt::new("new", O_CREAT | O_RDWR | O_CLOEXEC)
                .dir(d.fd())
                .mode(0o640)
                .build()
                .user_data(7),
        );
        assert_eq!(c.user_data(), 7);
        let fd = own(&c);
        assert_eq!(c.paths(), [PathBuf::from("new")]);
        assert_eq!(c.take_path(), Some(PathBuf::from("new")));
        assert!(c.paths().is_empty() && c.take_path().is_none());
        // The descriptor is the file made at d/new, with no more than the
        // permissions asked for (the umask may take some).
        let made = fs::metadata(d.join("new")).unwrap();
        assert!(made.is_file());
        assert_eq!(made.permissions().mode() & 0o777 & !0o640, 0);
        let mut file = File::from(fd);
        assert_eq!(file.metadata().unwrap().ino(), made.ino());
        file.write_all(b"through the ring's descriptor").unwrap();
        assert_eq!(
            fs::read(d.join("new")).unwrap(),
            b"through the ring's descriptor"
        );
        // The flags go as given: O_CLOEXEC when asked, not otherwise.
        // SAFETY: F_GETFD takes no pointer.
        let cloexec = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC;
        assert_ne!(cloexec(file.as_raw_fd()), 0);
        // An absolute path, no directory given: read what is there.
        write_file(&d, "data", b"hello");
        let c = run1(ring, OpenAt::new(d.join("data"), O_RDONLY).build());
        let fd = own(&c);
        assert_eq!(cloexec(fd.as_raw_fd()), 0);
        let mut got = String::new();
        File::from(fd).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
    });
}

#[test]
fn open_at_reports_each_errno_as_the_system_gives_it() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("f", d.join("ln")).unwrap();
        std::os::unix::fs::symlink("l2", d.join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", d.join("l2")).unwrap();
        let cases: [(&str, &[u8], i32, i32); 9] = [
            ("a missing file", b"missing", O_RDONLY, libc::ENOENT),
            (
                "O_CREAT|O_EXCL of a file",
                b"f",
                O_CREAT | O_EXCL | O_RDWR,
                libc::EEXIST,
            ),
            ("a path through a file", b"f/x", O_RDONLY, libc::ENOTDIR),
            ("a directory for writing", b"sub", O_WRONLY, libc::EISDIR),
            (
                "a name of 300 bytes",
                &[b'n'; 300],
                O_RDONLY,
                libc::ENAMETOOLONG,
            ),
            (
                "O_NOFOLLOW on a link",
                b"ln",
                O_RDONLY | O_NOFOLLOW,
                libc::ELOOP,
            ),
            ("links that loop", b"l1", O_RDONLY, libc::ELOOP),
            ("a NUL inside the path", b"f\0g", O_RDONLY, libc::EINVAL),
            ("an empty path", b"", O_RDONLY, libc::ENOENT),
        ];
        for (what, path, flags, errno) in cases {
            let path = PathBuf::from(OsStr::from_bytes(path));
            assert_eq!(open_errno(ring, &d, path, flags), -errno, "{what}");
        }
        // A relative path from a descriptor that is not open, or not a
        // directory.
        let sqe = OpenAt::new("f", O_RDONLY).dir(BAD_FD).build();
        assert_eq!(run1(ring, sqe).result(), -libc::EBADF);
        let file = File::open(d.join("f")).unwrap();
        let sqe = OpenAt::new("f", O_RDONLY).dir(file.as_raw_fd()).build();
        assert_eq!(run1(ring, sqe).result(), -libc::ENOTDIR);
        // A path that works, after all of that.
        assert!(open_errno(ring, &d, "f", O_RDONLY) >= 0);
    });
}

#[test]
fn open_at_of_a_file_the_process_may_not_write_is_eacces() {
    // Linux: a read-only sysctl refuses writers, root or not (the
    // permission bits of a file in a scratch directory would not stop
    // root).
    let path = PathBuf::from("/proc/sys/kernel/version");
    if !cfg!(target_os = "linux") {
        return;
    }
    each_mode(|ring| {
        let sqe = OpenAt::new(path.clone(), O_WRONLY | O_CLOEXEC).build();
        let mut c = run1(ring, sqe);
        assert_eq!(c.result(), -libc::EACCES);
        assert_eq!(c.take_path(), Some(path.clone()));
    });
}

#[test]
fn open_at_direct_puts_the_file_in_a_slot_of_the_table() {
    for ring in one_rings(4, 2) {
        let d = scratch();
        write_file(&d, "data", b"direct");
        // Slot 2, then a free one: the next after the last one filled (3),
        // as io_uring's allocation hint picks it; both are read through.
        let sqe = OpenAt::new("data", O_RDONLY)
            .dir(d.fd())
            .file_index(FileSlot::Index(2))
            .build();
        let mut c = run1(&ring, sqe);
        assert_eq!(c.result(), 0, "{c:?}");
        assert_eq!(c.take_path(), Some(PathBuf::from("data")));
        let sqe = OpenAt::new(d.join("data"), O_RDONLY)
            .file_index(FileSlot::Alloc)
            .build();
        assert_eq!(run1(&ring, sqe).result(), 3, "the slot after the hint");
        for slot in [2, 3] {
            let read = Read::new(Fixed(slot), bytes::BytesMut::with_capacity(16)).build();
            let mut c = run1(&ring, read);
            assert_eq!(c.result(), 6);
            assert_eq!(&take_mut(&mut c)[..], b"direct");
        }
        // O_CLOEXEC is refused for a slot, as io_uring refuses it.
        let sqe = OpenAt::new("data", O_RDONLY | O_CLOEXEC)
            .dir(d.fd())
            .file_index(FileSlot::Index(1))
            .build();
        assert_eq!(run1(&ring, sqe).result(), -libc::EINVAL);
        // A full table; a slot past its end.
        let fill = FilesUpdate::new(FileSlot::Index(0), vec![d.fd(), d.fd()]).build();
        assert_eq!(run1(&ring, fill).result(), 2);
        let alloc = OpenAt::new("data", O_RDONLY)
            .dir(d.fd())
            .file_index(FileSlot::Alloc)
            .build();
        assert_eq!(run1(&ring, alloc).result(), -libc::ENFILE);
        let past = OpenAt::new("data", O_RDONLY)
            .dir(d.fd())
            .file_index(FileSlot::Index(9))
            .build();
        assert_eq!(run1(&ring, past).result(), -libc::EINVAL);
        // An error of the open itself, before any slot is touched.
        let missing = OpenAt::new("missing", O_RDONLY)
            .dir(d.fd())
            .file_index(FileSlot::Index(0))
            .build();
        assert_eq!(run1(&ring, missing).result(), -libc::ENOENT);
    }
    // No table at all: io_uring's answers, -ENFILE for a free slot (no
    // bitmap to take one from), -ENXIO for a given one.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    each_mode(|ring| {
        let alloc = OpenAt::new(manifest, O_RDONLY)
            .file_index(FileSlot::Alloc)
            .build();
        assert_eq!(run1(ring, alloc).result(), -libc::ENFILE);
        let index = OpenAt::new(manifest, O_RDONLY)
            .file_index(FileSlot::Index(0))
            .build();
        assert_eq!(run1(ring, index).result(), -libc::ENXIO);
    });
}

#[test]
fn statx_gives_what_stat_gives() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"hello world");
        std::os::unix::fs::symlink("f", d.join("ln")).unwrap();
        let want = fs::metadata(d.join("f")).unwrap();
        let mut c = run1(ring, Statx::new("f").dir(d.fd()).build().user_data(3));
        assert_eq!((c.user_data(), c.result()), (3, 0));
        let st = *c.statx().expect("a stat");
        assert!(st.mask.contains(StatxMask::BASIC_STATS), "{:?}", st.mask);
        assert!(st.is_file() && !st.is_dir() && !st.is_symlink());
        assert_eq!(st.size, 11);
        assert_eq!(st.mode, want.mode());
        assert_eq!(st.permissions(), want.mode() & 0o7777);
        assert_eq!(
            (st.nlink, st.uid, st.gid, st.ino, st.dev, st.rdev),
            (
                want.nlink(),
                want.uid(),
                want.gid(),
                want.ino(),
                want.dev(),
                want.rdev()
            )
        );
        assert_eq!(
            (u64::from(st.blksize), st.blocks),
            (want.blksize(), want.blocks())
        );
        assert_eq!(
            (st.mtime.sec, i64::from(st.mtime.nsec)),
            (want.mtime(), want.mtime_nsec())
        );
        assert_eq!(
            (st.ctime.sec, i64::from(st.ctime.nsec)),
            (want.ctime(), want.ctime_nsec())
        );
        assert_eq!(
            (st.atime.sec, i64::from(st.atime.nsec)),
            (want.atime(), want.atime_nsec())
        );
        assert_eq!(st.mtime.to_system_time(), want.modified().unwrap());
        assert_eq!(c.take_path(), Some(PathBuf::from("f")));
        // The link followed, and not.
        let c = run1(ring, Statx::new(d.join("ln")).build());
        assert_eq!(c.statx().map(|s| s.ino), Some(want.ino()));
        let c = run1(ring, Statx::new("ln").dir(d.fd()).no_follow(true).build());
        let link = c.statx().expect("the link's stat");
        assert!(link.is_symlink());
        assert_eq!(link.size, 1, "a link's size is its target's length");
        // An open descriptor's status; a directory's.
        let file = File::open(d.join("f")).unwrap();
        let mut c = run1(ring, Statx::fd(file.as_raw_fd()).build());
        assert_eq!(c.statx().map(|s| (s.ino, s.size)), Some((want.ino(), 11)));
        assert!(c.take_paths().is_empty(), "no path given, none back");
        let c = run1(ring, Statx::fd(d.fd()).mask(StatxMask::TYPE).build());
        assert!(c.statx().is_some_and(|s| s.is_dir()));
    });
}

#[test]
fn statx_reports_each_errno_and_gives_the_path_back() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        std::os::unix::fs::symlink("l2", d.join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", d.join("l2")).unwrap();
        let cases: [(&[u8], i32); 5] = [
            (b"missing", libc::ENOENT),
            (b"f/x", libc::ENOTDIR),
            (b"l1", libc::ELOOP),
            (&[b'n'; 300], libc::ENAMETOOLONG),
            (b"f\0", libc::EINVAL),
        ];
        for (path, errno) in cases {
            let path = PathBuf::from(OsStr::from_bytes(path));
            let mut c = run1(ring, Statx::new(path.clone()).dir(d.fd()).build());
            assert_eq!(c.result(), -errno, "{path:?}");
            assert!(c.statx().is_none(), "no stat on failure");
            assert_eq!(c.take_paths(), [path]);
        }
        assert_eq!(run1(ring, Statx::fd(BAD_FD).build()).result(), -libc::EBADF);
    });
}

#[test]
fn fsync_and_fdatasync_sync_a_file_and_refuse_what_is_no_file() {
    for ring in one_rings(1, 2) {
        let d = scratch();
        let file = File::create(d.join("f")).unwrap();
        let fd = file.as_raw_fd();
        for sqe in [
            Fsync::new(fd).build(),
            Fsync::new(fd).datasync(true).build(),
            Fsync::new(fd).full(true).build(),
            Fsync::new(fd).range(0, 4096).build(),
        ] {
            assert_eq!(run1(&ring, sqe).result(), 0);
        }
        // Through a registered file.
        assert_eq!(
            run1(
                &ring,
                FilesUpdate::new(FileSlot::Index(0), vec![fd]).build()
            )
            .result(),
            1
        );
        assert_eq!(run1(&ring, Fsync::new(Fixed(0)).build()).result(), 0);
        assert_eq!(
            run1(&ring, Fsync::new(BAD_FD).build()).result(),
            -libc::EBADF
        );
        assert_eq!(
            run1(&ring, Fsync::new(Fixed(0)).datasync(true).build()).result(),
            0
        );
        // A pipe has nothing to sync (Linux's answer).
        let (r, _w) = nonblocking_pipe();
        if cfg!(target_os = "linux") {
            let c = run1(&ring, Fsync::new(r.as_raw_fd()).build());
            assert_eq!(c.result(), -libc::EINVAL);
        }
    }
}

#[test]
fn fallocate_grows_keeps_the_size_and_punches_holes() {
    for ring in one_rings(1, 2) {
        let d = scratch();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(d.join("f"))
            .unwrap();
        let fd = file.as_raw_fd();
        let size = || file.metadata().unwrap().len();
        assert_eq!(run1(&ring, Fallocate::new(fd, 0, 8192).build()).result(), 0);
        assert_eq!(size(), 8192);
        assert!(file.metadata().unwrap().blocks() >= 16, "allocated");
        if !cfg!(target_os = "linux") {
            continue;
        }
        // KEEP_SIZE: space past the end, the size unchanged.
        let keep = Fallocate::new(fd, 8192, 8192)
            .flags(FallocateFlags::KEEP_SIZE)
            .build();
        assert_eq!(run1(&ring, keep).result(), 0);
        assert_eq!(size(), 8192);
        assert!(file.metadata().unwrap().blocks() >= 32);
        // A hole reads as zeros; the bytes after it stay.
        (&file).write_all(&[b'x'; 8192]).unwrap();
        let punch = Fallocate::new(fd, 0, 4096)
            .flags(FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE)
            .build();
        assert_eq!(run1(&ring, punch).result(), 0);
        let got = fs::read(d.join("f")).unwrap();
        assert!(got[..4096].iter().all(|&b| b == 0), "the hole");
        assert!(got[4096..].iter().all(|&b| b == b'x'), "after it");
        // Through a registered file, growing it.
        assert_eq!(
            run1(
                &ring,
                FilesUpdate::new(FileSlot::Index(0), vec![fd]).build()
            )
            .result(),
            1
        );
        assert_eq!(
            run1(&ring, Fallocate::new(Fixed(0), 0, 20000).build()).result(),
            0
        );
        assert_eq!(size(), 20000);
        // What Linux refuses: a hole that changes the size; a length of 0;
        // no file; a pipe.
        let punch = Fallocate::new(fd, 0, 4096)
            .flags(FallocateFlags::PUNCH_HOLE)
            .build();
        assert_eq!(run1(&ring, punch).result(), -libc::EOPNOTSUPP);
        assert_eq!(
            run1(&ring, Fallocate::new(fd, 0, 0).build()).result(),
            -libc::EINVAL
        );
        let c = run1(&ring, Fallocate::new(BAD_FD, 0, 1).build());
        assert_eq!(c.result(), -libc::EBADF);
        let (_r, w) = nonblocking_pipe();
        let c = run1(&ring, Fallocate::new(w.as_raw_fd(), 0, 1).build());
        assert_eq!(c.result(), -libc::ESPIPE);
    }
}

#[test]
fn ftruncate_cuts_and_grows_a_file() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"hello world");
        let file = fs::OpenOptions::new()
            .write(true)
            .open(d.join("f"))
            .unwrap();
        assert_eq!(
            run1(ring, Ftruncate::new(file.as_raw_fd(), 5).build()).result(),
            0
        );
        assert_eq!(fs::read(d.join("f")).unwrap(), b"hello");
        assert_eq!(
            run1(ring, Ftruncate::new(file.as_raw_fd(), 8).build()).result(),
            0
        );
        assert_eq!(fs::read(d.join("f")).unwrap(), b"hello\0\0\0");
        // Not open for writing; not a file at all.
        let ro = File::open(d.join("f")).unwrap();
        let c = run1(ring, Ftruncate::new(ro.as_raw_fd(), 0).build());
        assert_eq!(c.result(), -libc::EINVAL);
        let c = run1(ring, Ftruncate::new(BAD_FD, 0).build());
        assert_eq!(c.result(), -libc::EBADF);
        assert_eq!(fs::read(d.join("f")).unwrap(), b"hello\0\0\0");
    });
}

#[test]
fn unlink_at_removes_files_and_with_remove_dir_directories() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        fs::create_dir(d.join("empty")).unwrap();
        fs::create_dir(d.join("full")).unwrap();
        write_file(&d, "full/g", b"y");
        let unlink = |path: &str, dir: bool| {
            let sqe = UnlinkAt::new(path).dir(d.fd()).remove_dir(dir).build();
            let (res, paths) = run_paths(ring, sqe);
            assert_eq!(paths, [PathBuf::from(path)]);
            res
        };
        assert_eq!(unlink("f", false), 0);
        assert!(!d.join("f").exists());
        assert_eq!(unlink("f", false), -libc::ENOENT);
        assert_eq!(unlink("empty", false), -libc::EISDIR, "a directory");
        assert_eq!(unlink("full", true), -libc::ENOTEMPTY);
        assert_eq!(unlink("full/g", true), -libc::ENOTDIR, "a file");
        assert_eq!(unlink("full/g/h", false), -libc::ENOTDIR);
        assert_eq!(unlink("empty", true), 0);
        assert!(!d.join("empty").exists());
        let long = "n".repeat(300);
        assert_eq!(unlink(&long, false), -libc::ENAMETOOLONG);
        // An absolute path, no directory.
        let (res, _) = run_paths(ring, UnlinkAt::new(d.join("full/g")).build());
        assert_eq!(res, 0);
        assert!(!d.join("full/g").exists());
    });
}

#[test]
fn rename_at_renames_and_keeps_its_flags() {
    each_mode(|ring| {
        let d = scratch();
        let other = scratch();
        write_file(&d, "a", b"A");
        write_file(&d, "b", b"B");
        let rename = |from: &str, to: &str, flags: RenameFlags| {
            let sqe = RenameAt::new(from, to)
                .from_dir(d.fd())
                .to_dir(other.fd())
                .flags(flags)
                .build();
            let (res, paths) = run_paths(ring, sqe);
            assert_eq!(paths, [PathBuf::from(from), PathBuf::from(to)]);
            res
        };
        // Across directories, relative to each.
        assert_eq!(rename("a", "a2", RenameFlags::empty()), 0);
        assert_eq!(fs::read(other.join("a2")).unwrap(), b"A");
        assert!(!d.join("a").exists());
        assert_eq!(rename("a", "a3", RenameFlags::empty()), -libc::ENOENT);
        // Replacing, and refusing to.
        fs::write(d.join("c"), b"C").unwrap();
        assert_eq!(rename("c", "a2", RenameFlags::NOREPLACE), -libc::EEXIST);
        assert_eq!(fs::read(other.join("a2")).unwrap(), b"A");
        assert_eq!(rename("c", "a2", RenameFlags::empty()), 0);
        assert_eq!(fs::read(other.join("a2")).unwrap(), b"C");
        // Swapping (Linux's renameat2, macOS's RENAME_SWAP); both flags at
        // once are refused everywhere.
        assert_eq!(
            rename("b", "a2", RenameFlags::NOREPLACE | RenameFlags::EXCHANGE),
            -libc::EINVAL
        );
        if cfg!(target_os = "linux") {
            assert_eq!(rename("b", "a2", RenameFlags::EXCHANGE), 0);
            assert_eq!(fs::read(d.join("b")).unwrap(), b"C");
            assert_eq!(fs::read(other.join("a2")).unwrap(), b"B");
            assert_eq!(rename("b", "none", RenameFlags::EXCHANGE), -libc::ENOENT);
        }
        // A directory over a file, a file into a missing directory.
        fs::create_dir(d.join("dir")).unwrap();
        assert_eq!(rename("dir", "a2", RenameFlags::empty()), -libc::ENOTDIR);
        assert_eq!(rename("b", "no/b", RenameFlags::empty()), -libc::ENOENT);
    });
}

#[test]
fn mkdir_at_makes_directories() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        let mkdir = |path: &str| {
            let sqe = MkdirAt::new(path).dir(d.fd()).mode(0o750).build();
            let (res, paths) = run_paths(ring, sqe);
            assert_eq!(paths, [PathBuf::from(path)]);
            res
        };
        assert_eq!(mkdir("m"), 0);
        let made = fs::metadata(d.join("m")).unwrap();
        assert!(made.is_dir());
        assert_eq!(made.permissions().mode() & 0o777 & !0o750, 0);
        assert_eq!(mkdir("m"), -libc::EEXIST);
        assert_eq!(mkdir("f"), -libc::EEXIST);
        assert_eq!(mkdir("no/m"), -libc::ENOENT);
        assert_eq!(mkdir("f/m"), -libc::ENOTDIR);
        assert_eq!(mkdir(&"n".repeat(300)), -libc::ENAMETOOLONG);
        assert_eq!(mkdir("m/inner"), 0);
        assert!(d.join("m/inner").is_dir());
    });
}

#[test]
fn symlink_at_and_link_at_make_names() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        // A symbolic link holds its target as given, resolved or not.
        let sqe = SymlinkAt::new("f", "s").dir(d.fd()).build();
        let (res, paths) = run_paths(ring, sqe);
        assert_eq!(res, 0);
        assert_eq!(paths, [PathBuf::from("f"), PathBuf::from("s")]);
        assert_eq!(fs::read_link(d.join("s")).unwrap(), PathBuf::from("f"));
        let dangling = SymlinkAt::new("nowhere", d.join("dangling")).build();
        assert_eq!(run1(ring, dangling).result(), 0);
        let again = SymlinkAt::new("f", "s").dir(d.fd()).build();
        assert_eq!(run1(ring, again).result(), -libc::EEXIST);
        let under_file = SymlinkAt::new("f", "f/s").dir(d.fd()).build();
        assert_eq!(run1(ring, under_file).result(), -libc::ENOTDIR);
        // A hard link: one file, two names.
        let link = |from: &str, to: &str, follow: bool| {
            let sqe = LinkAt::new(from, to)
                .from_dir(d.fd())
                .to_dir(d.fd())
                .follow(follow)
                .build();
            let (res, paths) = run_paths(ring, sqe);
            assert_eq!(paths, [PathBuf::from(from), PathBuf::from(to)]);
            res
        };
        assert_eq!(link("f", "h", false), 0);
        let (f, h) = (
            fs::metadata(d.join("f")).unwrap(),
            fs::metadata(d.join("h")).unwrap(),
        );
        assert_eq!((f.ino(), f.nlink()), (h.ino(), 2));
        assert_eq!(link("f", "h", false), -libc::EEXIST);
        assert_eq!(link("missing", "h2", false), -libc::ENOENT);
        // Of the link itself, or of what it names.
        assert_eq!(link("s", "of-link", false), 0);
        assert!(
            fs::symlink_metadata(d.join("of-link"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(link("s", "of-target", true), 0);
        assert_eq!(fs::metadata(d.join("of-target")).unwrap().ino(), f.ino());
        assert_eq!(link("dangling", "x", true), -libc::ENOENT);
    });
}

#[test]
fn fadvise_and_madvise_take_their_advice() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", &[7; 8192]);
        let file = File::open(d.join("f")).unwrap();
        let fd = file.as_raw_fd();
        for advice in [
            Advice::Normal,
            Advice::Sequential,
            Advice::Random,
            Advice::NoReuse,
            Advice::WillNeed,
            Advice::DontNeed,
        ] {
            let c = run1(ring, Fadvise::new(fd, 0, 0, advice).build());
            // Linux and FreeBSD have posix_fadvise; the others say so.
            let want = if cfg!(any(target_os = "linux", target_os = "freebsd")) {
                0
            } else {
                -libc::EOPNOTSUPP
            };
            assert_eq!(c.result(), want, "{advice:?}");
        }
        let c = run1(ring, Fadvise::new(BAD_FD, 0, 0, Advice::Normal).build());
        assert!(matches!(-c.result(), libc::EBADF | libc::EOPNOTSUPP));
        // A page of our own.
        // SAFETY: a fresh anonymous mapping, nothing else uses it.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        let addr = page.cast::<u8>();
        for advice in [
            MemoryAdvice::WillNeed,
            MemoryAdvice::Random,
            MemoryAdvice::Normal,
        ] {
            // SAFETY: the mapping is ours and holds nothing.
            let sqe = unsafe { Madvise::new(addr, 4096, advice) }.build();
            assert_eq!(run1(ring, sqe).result(), 0, "{advice:?}");
        }
        // SAFETY: as above; an address inside a page is refused.
        let sqe = unsafe { Madvise::new(addr.wrapping_add(1), 10, MemoryAdvice::Normal) }.build();
        assert_eq!(run1(ring, sqe).result(), -libc::EINVAL);
        // SAFETY: the mapping made above, used by nothing now.
        assert_eq!(unsafe { libc::munmap(page, 4096) }, 0);
    });
}

/// Every operation of the family, each followed in its submission by a
/// cancel of it: pool work starts only once its submission is made, so
/// the cancel finds every one unstarted, and none makes its call.
#[test]
fn an_operation_cancelled_in_its_submission_never_runs() {
    each_mode(|ring| {
        let d = scratch();
        for name in ["f", "g", "h"] {
            write_file(&d, name, b"keep");
        }
        let file = fs::OpenOptions::new()
            .write(true)
            .open(d.join("f"))
            .unwrap();
        let fd = file.as_raw_fd();
        let dir = d.fd();
        let ops: Vec<(Sqe, Vec<&str>)> = vec![
            (
                OpenAt::new("new", O_CREAT | O_RDWR | O_CLOEXEC)
                    .dir(dir)
                    .build(),
                vec!["new"],
            ),
            (Statx::new("f").dir(dir).build(), vec!["f"]),
            (Fsync::new(fd).build(), vec![]),
            (Fallocate::new(fd, 0, 1 << 20).build(), vec![]),
            (Ftruncate::new(fd, 0).build(), vec![]),
            (Fadvise::new(fd, 0, 0, Advice::DontNeed).build(), vec![]),
            (UnlinkAt::new("g").dir(dir).build(), vec!["g"]),
            (
                RenameAt::new("h", "h2").from_dir(dir).to_dir(dir).build(),
                vec!["h", "h2"],
            ),
            (MkdirAt::new("m").dir(dir).build(), vec!["m"]),
            (SymlinkAt::new("f", "s").dir(dir).build(), vec!["f", "s"]),
            (
                LinkAt::new("f", "l").from_dir(dir).to_dir(dir).build(),
                vec!["f", "l"],
            ),
            // A Close runs at once unless ASYNC sends it to the pool.
            (Close::new(fd).build().flags(SqeFlags::ASYNC), vec![]),
        ];
        let n = ops.len() as u64;
        let mut sqes = Vec::new();
        let mut paths = Vec::new();
        for (i, (sqe, p)) in ops.into_iter().enumerate() {
            let ud = i as u64;
            sqes.push(sqe.user_data(ud));
            sqes.push(AsyncCancel::new(ud).build().user_data(100 + ud));
            paths.push(p);
        }
        submit_all(ring, sqes);
        let mut cqes = wait_sorted(ring, 2 * n as usize);
        for (i, c) in cqes.iter_mut().enumerate() {
            if (i as u64) < n {
                assert_eq!((c.user_data(), c.result()), (i as u64, -libc::ECANCELED));
                let want: Vec<PathBuf> = paths[i].iter().map(PathBuf::from).collect();
                assert_eq!(c.take_paths(), want, "its paths come back");
                assert!(c.statx().is_none());
            } else {
                assert_eq!((c.user_data(), c.result()), (100 + i as u64 - n, 0));
            }
        }
        // Nothing happened.
        let names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, ["f", "g", "h"]);
        assert_eq!(fs::read(d.join("f")).unwrap(), b"keep");
        // SAFETY: F_GETFD takes no pointer: the descriptor is still open.
        assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    });
}

/// A pipe's write end closed by a `Close` and a cancel of it in the same
/// submission, on kqring in `mode` or on io_uring: the two results, and
/// whether the reader then reads the end of the stream (the write end was
/// the only one).
fn close_and_cancel(submit: impl FnOnce(RawFd) -> Vec<(u64, i32)>) -> (Vec<(u64, i32)>, bool) {
    let (r, w) = kqring_test_support::pipe(false).expect("a pipe");
    let w = w.into_raw_fd();
    let got = submit(w);
    let closed = got.iter().any(|&(ud, res)| ud == 1 && res == 0);
    if !closed {
        // SAFETY: the Close did not close it: it is still ours.
        drop(unsafe { OwnedFd::from_raw_fd(w) });
    }
    // Without a writer left, a read sees the end of the stream at once;
    // else, with none written, EAGAIN (non-blocking).
    let mut buf = [0u8; 1];
    let eof = (&File::from(r))
        .read(&mut buf)
        .map(|n| n == 0)
        .unwrap_or(false);
    (got, eof && closed)
}

/// `Close` of a plain descriptor runs on the driver's thread, as io_uring
/// closes at issue: a cancel in the same submission finds nothing
/// (-ENOENT), the descriptor is closed, and nothing went to the pool.
/// Compared with io_uring where it runs.
#[test]
fn a_close_runs_at_once_as_io_urings_and_a_cancel_after_it_finds_nothing() {
    let want = (vec![(1, 0), (2, -libc::ENOENT)], true);
    each_mode(|ring| {
        let offloaded = ring.stats().offloaded;
        let got = close_and_cancel(|w| {
            submit_all(
                ring,
                [
                    Close::new(w).build().user_data(1),
                    AsyncCancel::new(1).build().user_data(2),
                ],
            );
            wait_sorted(ring, 2)
                .iter()
                .map(|c| (c.user_data(), c.result()))
                .collect()
        });
        assert_eq!(got, want, "kqring");
        assert_eq!(ring.stats().offloaded, offloaded, "no close on the pool");
    });
    #[cfg(target_os = "linux")]
    {
        let Ok(mut uring) = io_uring::IoUring::new(8) else {
            println!("io_uring unavailable: kqring held to the written result");
            return;
        };
        let got = close_and_cancel(|w| {
            let close = io_uring::opcode::Close::new(io_uring::types::Fd(w))
                .build()
                .user_data(1);
            let cancel = io_uring::opcode::AsyncCancel::new(1).build().user_data(2);
            // SAFETY: neither entry points at memory.
            unsafe {
                uring.submission().push(&close).expect("room");
                uring.submission().push(&cancel).expect("room");
            }
            uring.submit_and_wait(2).expect("io_uring_enter");
            let mut got: Vec<(u64, i32)> = uring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            got.sort();
            got
        });
        assert_eq!(got, want, "io_uring");
    }
}

/// A `Close` with `ASYNC` goes to the pool, after its submission is made:
/// a cancel in the same submission withdraws it, and the descriptor stays
/// open. (io_uring's io-wq may or may not have started it by then: no
/// answer of its own to compare with.)
#[test]
fn an_async_close_goes_to_the_pool_and_a_cancel_in_its_submission_withdraws_it() {
    each_mode(|ring| {
        let got = close_and_cancel(|w| {
            submit_all(
                ring,
                [
                    Close::new(w).build().flags(SqeFlags::ASYNC).user_data(1),
                    AsyncCancel::new(1).build().user_data(2),
                ],
            );
            wait_sorted(ring, 2)
                .iter()
                .map(|c| (c.user_data(), c.result()))
                .collect()
        });
        assert_eq!(got, (vec![(1, -libc::ECANCELED), (2, 0)], false));
        let offloaded = ring.stats().offloaded;
        let got = close_and_cancel(|w| {
            vec![(
                1,
                run1(
                    ring,
                    Close::new(w).build().flags(SqeFlags::ASYNC).user_data(1),
                )
                .result(),
            )]
        });
        assert_eq!(got, (vec![(1, 0)], true));
        assert_eq!(
            ring.stats().offloaded,
            offloaded + 1,
            "the close ran on the pool"
        );
    });
}

/// A socket with a receive waiting (its registration in the kernel) and a
/// duplicate elsewhere, so that its file outlives the close: the `Close`
/// on the driver's thread ends the receive first, and the duplicate then
/// receives as any descriptor does.
#[test]
fn a_close_at_once_ends_what_waits_and_leaves_a_duplicate_working() {
    each_mode(|ring| {
        let (a, b) = kqring_test_support::unix_pair(true).expect("a pair");
        let b = OwnedFd::from(b);
        // SAFETY: dup takes no pointer; the duplicate is owned below.
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(b.as_raw_fd())) };
        let fd = b.into_raw_fd();
        submit_all(
            ring,
            [
                kqring::ops::Recv::new(fd, bytes::BytesMut::with_capacity(4))
                    .build()
                    .user_data(1),
            ],
        );
        assert_quiet(ring);
        submit_all(ring, [Close::new(fd).build().user_data(2)]);
        let got: Vec<(u64, i32)> = wait_sorted(ring, 2)
            .iter()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        assert_eq!(got, [(1, -libc::ECANCELED), (2, 0)]);
        (&a).write_all(b"late").unwrap();
        // Nothing wakes for the closed number.
        assert_quiet(ring);
        let mut c = run1(
            ring,
            kqring::ops::Recv::new(dup.as_raw_fd(), bytes::BytesMut::with_capacity(4))
                .build()
                .user_data(3),
        );
        assert_eq!((c.user_data(), c.result()), (3, 4));
        let buf = c.take_buf::<bytes::BytesMut>().expect("its buffer");
        assert_eq!(&buf[..], b"late");
    });
}

/// A `Close` deletes the descriptor's registrations before its number is
/// free: a new socket put on the same number (dup2) while the old file
/// lives on in a duplicate gets no readiness of the old file's. Had the
/// old registration outlived the close (the Linux compat's epoll keeps an
/// entry while its file is open anywhere), data for the old file would
/// wake the new socket's receive into a try that finds nothing.
#[test]
fn a_closed_number_reused_at_once_sees_only_its_new_files_readiness() {
    each_mode(|ring| {
        let (old_peer, old) = kqring_test_support::unix_pair(true).expect("a pair");
        let old = OwnedFd::from(old);
        // SAFETY: dup takes no pointer; the duplicate is owned below.
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(old.as_raw_fd())) };
        let fd = old.into_raw_fd();
        submit_all(
            ring,
            [
                kqring::ops::Recv::new(fd, bytes::BytesMut::with_capacity(4))
                    .build()
                    .user_data(1),
            ],
        );
        assert_quiet(ring);
        // Made before the close, so that neither end takes the number.
        let (new_peer, new) = kqring_test_support::unix_pair(true).expect("a pair");
        submit_all(ring, [Close::new(fd).build().user_data(2)]);
        let got: Vec<(u64, i32)> = wait_sorted(ring, 2)
            .iter()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        assert_eq!(got, [(1, -libc::ECANCELED), (2, 0)]);
        // The number goes to the new socket.
        // SAFETY: dup2 onto a number no one holds (the ring closed it);
        // the test owns the new descriptor from here.
        let reused = unsafe { OwnedFd::from_raw_fd(libc::dup2(new.as_raw_fd(), fd)) };
        assert_eq!(reused.as_raw_fd(), fd, "dup2 put the socket on the number");
        drop(new);
        submit_all(
            ring,
            [
                kqring::ops::Recv::new(fd, bytes::BytesMut::with_capacity(4))
                    .build()
                    .user_data(3),
            ],
        );
        assert_quiet(ring);
        // Data for the old file: nothing tries the new socket for it.
        let tries = ring.stats().would_block;
        (&old_peer).write_all(b"gone").unwrap();
        assert_quiet(ring);
        assert_eq!(
            ring.stats().would_block,
            tries,
            "the old file's readiness woke the new socket's receive"
        );
        // The new file's data reaches the receive, byte for byte.
        (&new_peer).write_all(b"next").unwrap();
        let mut c = wait_n(ring, 1).remove(0);
        assert_eq!((c.user_data(), c.result()), (3, 4));
        let buf = c.take_buf::<bytes::BytesMut>().expect("its buffer");
        assert_eq!(&buf[..], b"next");
        // The old file still holds its data, for its duplicate.
        let mut got = [0u8; 4];
        assert_eq!((&File::from(dup)).read(&mut got).unwrap(), 4);
        assert_eq!(&got, b"gone");
        // The ring's entries on the number are the new socket's: close it
        // through the ring, as the test gave it no other owner.
        let c = run1(ring, Close::new(reused.into_raw_fd()).build().user_data(4));
        assert_eq!((c.user_data(), c.result()), (4, 0));
    });
}

/// An open of a FIFO on a worker (`ASYNC`) blocks until a writer comes: a
/// cancel that finds it under way answers -EALREADY, and the open completes
/// with its descriptor once the writer opens (io_uring interrupts its
/// worker instead, and the open completes -ERESTARTSYS: docs/semantics.md).
/// The cancel is sent once a thread of this process is seen blocked in
/// `openat` (Linux's /proc), so it can't come before the worker starts;
/// without /proc there is no such sign, and no test.
#[cfg(target_os = "linux")]
#[test]
fn a_cancel_of_an_open_under_way_is_ealready() {
    for ring in one_rings(0, 1) {
        let d = scratch();
        let fifo = d.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let open = OpenAt::new(fifo.clone(), O_RDONLY | O_CLOEXEC)
            .build()
            .user_data(1)
            .flags(SqeFlags::ASYNC);
        submit_all(&ring, [open]);
        wait_until("a worker blocks in the FIFO's open", a_thread_is_in_openat);
        let c = run1(&ring, AsyncCancel::new(1).build().user_data(2));
        assert_eq!((c.user_data(), c.result()), (2, -libc::EALREADY));
        // The writer comes: the open completes with a descriptor.
        let writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let mut c = wait_n(&ring, 1).remove(0);
        assert_eq!(c.user_data(), 1);
        let reader = File::from(own(&c));
        assert_eq!(c.take_path(), Some(fifo.clone()));
        (&writer).write_all(b"late").unwrap();
        drop(writer);
        let mut got = Vec::new();
        (&reader).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"late");
    }
}

/// Whether a thread of this process is blocked in `openat`: the first
/// number of its /proc `syscall` file is the call it sits in.
#[cfg(target_os = "linux")]
fn a_thread_is_in_openat() -> bool {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return false;
    };
    let openat = libc::SYS_openat.to_string();
    tasks.flatten().any(|t| {
        fs::read_to_string(t.path().join("syscall"))
            .is_ok_and(|s| s.split_whitespace().next() == Some(openat.as_str()))
    })
}

/// Without `ASYNC`, Linux opens a FIFO as io_uring's first try does: with
/// `O_NONBLOCK` (taken off again after), so a reader's open completes at
/// once and a writer's without a reader is -ENXIO. Elsewhere the open runs
/// on a worker and waits for its partner, as open(2) does.
#[test]
fn a_fifo_opens_on_linux_as_io_uring_opens_it() {
    if !cfg!(target_os = "linux") {
        return;
    }
    each_mode(|ring| {
        let d = scratch();
        let fifo = d.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let c = run1(
            ring,
            OpenAt::new(fifo.clone(), O_WRONLY | O_CLOEXEC).build(),
        );
        assert_eq!(c.result(), -libc::ENXIO, "no reader");
        let c = run1(
            ring,
            OpenAt::new(fifo.clone(), O_RDONLY | O_CLOEXEC).build(),
        );
        let reader = own(&c);
        // SAFETY: F_GETFL takes no pointer.
        let fl = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0, "O_NONBLOCK is taken off");
        let c = run1(
            ring,
            OpenAt::new(fifo.clone(), O_WRONLY | O_NONBLOCK | O_CLOEXEC).build(),
        );
        let writer = own(&c);
        // SAFETY: F_GETFL takes no pointer.
        let fl = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0, "O_NONBLOCK asked for stays");
    });
}

/// The path errnos of every operation that takes paths, each path coming
/// back as given: a NUL inside a path (in either path of the two-path
/// operations, and in a link's target) is -EINVAL before any call; then
/// -ENOENT, -ENOTDIR, -ENAMETOOLONG and -ELOOP as the system gives them.
#[test]
fn every_path_operation_reports_the_path_errnos() {
    each_mode(|ring| {
        let d = scratch();
        write_file(&d, "f", b"x");
        std::os::unix::fs::symlink("l2", d.join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", d.join("l2")).unwrap();
        let dir = d.fd();
        let p = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let long = [b'n'; 300];
        let nul = b"a\0b";
        // (what, entry, the paths it names, the errno)
        let mut cases: Vec<(&str, Sqe, Vec<PathBuf>, i32)> = Vec::new();
        for (what, path, errno) in [
            ("NUL", &nul[..], libc::EINVAL),
            ("missing parent", b"no/x", libc::ENOENT),
            ("through a file", b"f/x", libc::ENOTDIR),
            ("too long", &long[..], libc::ENAMETOOLONG),
            ("looping links", b"l1/x", libc::ELOOP),
        ] {
            let path = p(path);
            cases.push((
                what,
                UnlinkAt::new(path.clone()).dir(dir).build(),
                vec![path.clone()],
                errno,
            ));
            cases.push((
                what,
                MkdirAt::new(path.clone()).dir(dir).build(),
                vec![path.clone()],
                errno,
            ));
            cases.push((
                what,
                SymlinkAt::new("f", path.clone()).dir(dir).build(),
                vec![p(b"f"), path.clone()],
                errno,
            ));
            // The bad path as the source, then as the destination.
            cases.push((
                what,
                RenameAt::new(path.clone(), "to")
                    .from_dir(dir)
                    .to_dir(dir)
                    .build(),
                vec![path.clone(), p(b"to")],
                errno,
            ));
            cases.push((
                what,
                RenameAt::new("f", path.clone())
                    .from_dir(dir)
                    .to_dir(dir)
                    .build(),
                vec![p(b"f"), path.clone()],
                errno,
            ));
            cases.push((
                what,
                LinkAt::new(path.clone(), "to")
                    .from_dir(dir)
                    .to_dir(dir)
                    .build(),
                vec![path.clone(), p(b"to")],
                errno,
            ));
            cases.push((
                what,
                LinkAt::new("f", path.clone())
                    .from_dir(dir)
                    .to_dir(dir)
                    .build(),
                vec![p(b"f"), path.clone()],
                errno,
            ));
        }
        // A link's target is no path to resolve, but a NUL in it is
        // refused as well.
        cases.push((
            "NUL in a target",
            SymlinkAt::new(p(nul), "s").dir(dir).build(),
            vec![p(nul), p(b"s")],
            libc::EINVAL,
        ));
        for (i, (what, sqe, paths, errno)) in cases.into_iter().enumerate() {
            let mut c = run1(ring, sqe.user_data(i as u64));
            assert_eq!(
                (c.user_data(), c.result()),
                (i as u64, -errno),
                "case {i}: {what} {paths:?}"
            );
            assert_eq!(c.take_paths(), paths, "case {i}: the paths come back");
        }
        // None of it made or removed anything.
        let mut names: Vec<String> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["f", "l1", "l2"]);
    });
}

/// -EACCES as the system gives it. The tests may run as root, whom
/// permission bits do not stop: a read-only sysctl refuses root too (Linux
/// only), and the permission-bit cases run only for another user.
#[test]
fn path_operations_refused_by_permissions_are_eacces() {
    // SAFETY: geteuid takes nothing and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    each_mode(|ring| {
        if cfg!(target_os = "linux") {
            let version = PathBuf::from("/proc/sys/kernel/version");
            let mut c = run1(ring, UnlinkAt::new(version.clone()).build());
            assert_eq!(c.result(), -libc::EACCES);
            assert_eq!(c.take_path(), Some(version.clone()));
            let mut c = run1(
                ring,
                OpenAt::new(version.clone(), O_RDWR | O_CLOEXEC).build(),
            );
            assert_eq!(c.result(), -libc::EACCES);
            assert_eq!(c.take_path(), Some(version));
        }
        if root {
            return;
        }
        let d = scratch();
        fs::create_dir(d.join("locked")).unwrap();
        write_file(&d, "locked/f", b"x");
        fs::create_dir(d.join("ro")).unwrap();
        write_file(&d, "ro/f", b"x");
        fs::set_permissions(d.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(d.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
        let dir = d.fd();
        let cases = [
            Statx::new("locked/f").dir(dir).build(),
            OpenAt::new("locked/f", O_RDONLY | O_CLOEXEC)
                .dir(dir)
                .build(),
            MkdirAt::new("ro/m").dir(dir).build(),
            UnlinkAt::new("ro/f").dir(dir).build(),
            SymlinkAt::new("f", "ro/s").dir(dir).build(),
            LinkAt::new("ro/f", "ro/h")
                .from_dir(dir)
                .to_dir(dir)
                .build(),
            RenameAt::new("ro/f", "moved")
                .from_dir(dir)
                .to_dir(dir)
                .build(),
        ];
        for (i, sqe) in cases.into_iter().enumerate() {
            assert_eq!(run1(ring, sqe).result(), -libc::EACCES, "case {i}");
        }
        for sub in ["locked", "ro"] {
            fs::set_permissions(d.join(sub), fs::Permissions::from_mode(0o700)).unwrap();
        }
        assert_eq!(fs::read(d.join("ro/f")).unwrap(), b"x");
    });
}
