//! EVFILT_VNODE over inotify.

use super::*;

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn vnode_notes_of_a_file() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("vnode");
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let fd = file.as_raw_fd();
    let all = note::WRITE | note::EXTEND | note::ATTRIB | note::LINK | note::DELETE | note::RENAME;
    apply(
        &kq,
        &[Change::vnode(fd, Flags::ADD | Flags::CLEAR, all).token(9)],
    );
    quiet(&kq);

    let expect = |what: &str, fflags: u32| {
        let ev = one(&kq);
        assert_eq!(
            (ev.ident(), ev.filter(), ev.token()),
            (fd as usize, Filter::VNODE, 9)
        );
        assert_eq!(ev.fflags(), fflags, "{what}: {ev:?}");
        assert_eq!(ev.data(), 0);
        quiet(&kq);
    };

    write(&file, b"hello");
    expect("append", note::WRITE | note::EXTEND);
    // SAFETY: pwrite from a valid buffer.
    assert_eq!(unsafe { libc::pwrite(fd, b"J".as_ptr().cast(), 1, 0) }, 1);
    expect("overwrite", note::WRITE);
    // SAFETY: fchmod/ftruncate/link/rename/unlink on our temp file.
    check(unsafe { libc::fchmod(fd, 0o600) }, "fchmod");
    expect("chmod", note::ATTRIB);
    check(unsafe { libc::ftruncate(fd, 2) }, "ftruncate");
    expect("truncate", note::ATTRIB);
    let link = with_suffix(&path, ".link");
    check(unsafe { libc::link(path.as_ptr(), link.as_ptr()) }, "link");
    expect("link", note::LINK);
    check(unsafe { libc::unlink(link.as_ptr()) }, "unlink link");
    expect("unlink of a second name", note::DELETE);
    let moved = with_suffix(&path, ".moved");
    check(
        unsafe { libc::rename(path.as_ptr(), moved.as_ptr()) },
        "rename",
    );
    expect("rename", note::RENAME);
    check(unsafe { libc::unlink(moved.as_ptr()) }, "unlink");
    expect("unlink", note::DELETE);
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn vnode_only_reports_what_was_asked_and_shares_watches() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("shared");
    let a = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    let b = open(&path, libc::O_RDONLY);
    apply(
        &kq,
        &[
            Change::vnode(a.as_raw_fd(), Flags::ADD | Flags::CLEAR, note::DELETE).token(1),
            Change::vnode(b.as_raw_fd(), Flags::ADD | Flags::CLEAR, note::WRITE).token(2),
        ],
    );
    write(&a, b"x");
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags()), (2, note::WRITE));
    quiet(&kq);
    // Deleting one registration keeps the shared watch for the other.
    apply(&kq, &[Change::vnode(b.as_raw_fd(), Flags::DELETE, 0)]);
    // SAFETY: unlinks our temp file.
    check(unsafe { libc::unlink(path.as_ptr()) }, "unlink");
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags()), (1, note::DELETE));
    // Without EV_CLEAR a note stays reported.
    apply(
        &kq,
        &[Change::vnode(a.as_raw_fd(), Flags::ADD, note::WRITE).token(3)],
    );
    write(&a, b"y");
    for _ in 0..3 {
        let ev = one(&kq);
        assert_eq!((ev.token(), ev.fflags()), (3, note::WRITE));
    }
    // Not a vnode.
    let (r, _w) = pipe();
    assert_eq!(
        result(&kq, Change::vnode(r.as_raw_fd(), Flags::ADD, note::WRITE)),
        i64::from(libc::EINVAL)
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn vnode_notes_of_a_directory() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("dir");
    // SAFETY: creates our temp directory.
    check(unsafe { libc::mkdir(path.as_ptr(), 0o755) }, "mkdir");
    let dir = open(&path, libc::O_RDONLY | libc::O_DIRECTORY);
    let fd = dir.as_raw_fd();
    apply(
        &kq,
        &[Change::vnode(fd, Flags::ADD | Flags::CLEAR, note::WRITE | note::LINK).token(4)],
    );
    let file = with_suffix(&path, "/f");
    drop(open(&file, libc::O_RDWR | libc::O_CREAT));
    assert_eq!(one(&kq).fflags(), note::WRITE);
    let sub = with_suffix(&path, "/sub");
    // SAFETY: creates and removes entries of our temp directory.
    check(unsafe { libc::mkdir(sub.as_ptr(), 0o755) }, "mkdir sub");
    assert_eq!(one(&kq).fflags(), note::WRITE | note::LINK);
    check(unsafe { libc::rmdir(sub.as_ptr()) }, "rmdir sub");
    assert_eq!(one(&kq).fflags(), note::WRITE | note::LINK);
    check(unsafe { libc::unlink(file.as_ptr()) }, "unlink");
    assert_eq!(one(&kq).fflags(), note::WRITE);
    quiet(&kq);
    check(unsafe { libc::rmdir(path.as_ptr()) }, "rmdir");
}
