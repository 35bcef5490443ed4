//! READ and WRITE: closed and reused numbers, level events, regular
//! files, socket errors, uncounted events.

use super::*;

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn readding_a_reused_number_watches_the_new_file() {
    let kq = Kqueue::new().unwrap();
    let (r1, w1) = pipe();
    let r1 = high(r1, 3000);
    // A duplicate keeps the first pipe's epoll entry alive after the close.
    let _r1_dup = r1.try_clone().unwrap();
    let number = r1.as_raw_fd();
    apply(&kq, &[Change::read(number, Flags::ADD).token(1)]);
    write(&w1, b"x");
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (number as usize, 1, 1));

    // The caller closes the descriptor without EV_DELETE and the number
    // comes back naming another pipe: EV_ADD must register the new file.
    drop(r1);
    let (r2, w2) = pipe();
    let _r2 = at(r2, number);
    apply(&kq, &[Change::read(number, Flags::ADD).token(2)]);
    quiet(&kq);
    write(&w2, b"yz");
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (number as usize, 2, 2));
    // The first pipe is still readable through its duplicate, but nothing
    // of it is reported under the number.
    write(&w1, b"first pipe");
    let events = kevent(&kq, &[], NOW);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].token(), events[0].data()), (2, 2));
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn changes_after_close_answer_as_kqueue() {
    let kq = Kqueue::new().unwrap();
    let (r, _w) = pipe();
    let r = high(r, 3100);
    let number = r.as_raw_fd();
    apply(&kq, &[Change::read(number, Flags::ADD | Flags::ONESHOT)]);
    drop(r);
    // Closed: kqueue dropped the registration and has no descriptor.
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::EBADF)
    );
    assert_eq!(
        result(&kq, Change::read(number, Flags::ENABLE)),
        i64::from(libc::EBADF)
    );

    let (r, _w) = pipe();
    let r = high(r, 3150);
    let number = r.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(number, Flags::ADD),
            Change::write(number, Flags::ADD | Flags::DISPATCH),
        ],
    );
    drop(r);
    let (other, _w2) = pipe();
    let _other = at(other, number);
    // Reused: the descriptor exists, the registrations do not.
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    assert_eq!(
        result(&kq, Change::write(number, Flags::DISABLE)),
        i64::from(libc::ENOENT)
    );
    // EV_ADD|EV_DELETE only looks the descriptor up.
    assert_eq!(
        result(&kq, Change::read(number, Flags::ADD | Flags::DELETE)),
        0
    );
    assert_eq!(
        result(&kq, Change::read(number, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    assert_eq!(
        result(&kq, Change::read(3199, Flags::ADD | Flags::DELETE)),
        i64::from(libc::EBADF)
    );
    quiet(&kq);
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn a_closed_duplicate_does_not_keep_the_wait_spinning() {
    let kq = Kqueue::new().unwrap();
    let (r, w) = pipe();
    let r2 = r.try_clone().unwrap();
    apply(&kq, &[Change::read(r2.as_raw_fd(), Flags::ADD).token(5)]);
    write(&w, b"abc");
    assert_eq!(one(&kq).token(), 5);
    // `r` keeps the open file (and so its epoll entry) alive.
    drop(r2);
    sleeps_quietly(&kq, Duration::from_millis(100));
    write(&w, b"more");
    sleeps_quietly(&kq, Duration::from_millis(50));
    drop(r);
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn level_events_are_reported_once_per_call() {
    let kq = Kqueue::new().unwrap();
    let pipes: Vec<_> = (0..100).map(|_| pipe()).collect();
    let changes: Vec<_> = pipes
        .iter()
        .enumerate()
        .map(|(i, (r, _))| Change::read(r.as_raw_fd(), Flags::ADD).token(i as u64))
        .collect();
    apply(&kq, &changes);
    for (_, w) in &pipes {
        write(w, b"x");
    }
    for _ in 0..3 {
        let mut events = Vec::with_capacity(500);
        kq.kevent(&[], &mut events, WAIT).unwrap();
        let mut tokens: Vec<u64> = events.iter().map(Event::token).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), events.len(), "duplicates in one call");
        assert_eq!(events.len(), 100);
        assert_eq!(events.capacity(), 500, "the vector was reallocated");
    }
    // A small vector takes them in turns.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        let mut events = Vec::with_capacity(10);
        kq.kevent(&[], &mut events, WAIT).unwrap();
        assert_eq!(events.len(), 10);
        seen.extend(events.iter().map(Event::token));
    }
    assert_eq!(seen.len(), 100);
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn regular_files_follow_the_vnode_read_and_write_filters() {
    let kq = Kqueue::new().unwrap();
    let path = temp_path("file");
    let file = open(&path, libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC);
    write(&file, b"0123456789");
    // SAFETY: lseek on an fd we own.
    assert_eq!(
        unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_SET) },
        0
    );
    let fd = file.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD).token(1),
            Change::write(fd, Flags::ADD | Flags::ONESHOT).token(2),
        ],
    );
    let mut events = kevent(&kq, &[], WAIT);
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[0].filter(), events[0].data()), (Filter::READ, 10));
    assert_eq!((events[1].filter(), events[1].data()), (Filter::WRITE, 0));
    assert_eq!(read(&file, 4), 4);
    let ev = one(&kq);
    assert_eq!((ev.filter(), ev.data()), (Filter::READ, 6));
    assert_eq!(read(&file, 100), 6);
    // At the end of the file: not readable.
    quiet(&kq);

    // EV_CLEAR: once, then again only when the count changes.
    apply(&kq, &[Change::read(fd, Flags::ADD | Flags::CLEAR).token(3)]);
    // SAFETY: lseek on an fd we own.
    unsafe { libc::lseek(file.as_raw_fd(), 2, libc::SEEK_SET) };
    assert_eq!(one(&kq).data(), 8);
    quiet(&kq);
    assert_eq!(read(&file, 1), 1);
    assert_eq!(one(&kq).data(), 7);

    // Close the file by putting another one in its place with dup2, which
    // is atomic: a bare close would let a test on another thread take the
    // number, and what this checks would depend on that race.
    let other = open(&CString::new("/dev/null").unwrap(), libc::O_RDONLY);
    // SAFETY: dup2 onto a number we own; `file` forgets it below.
    assert_eq!(unsafe { libc::dup2(other.as_raw_fd(), fd) }, fd);
    let file = file.into_raw_fd();
    // SAFETY: unlinks our temp file.
    unsafe { libc::unlink(path.as_ptr()) };
    // The file is gone and the registration with it; the number now names
    // another file, for which kqueue has no registration.
    quiet(&kq);
    assert_eq!(
        result(&kq, Change::read(fd, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
    // SAFETY: the number is ours (it holds the dup of /dev/null).
    unsafe { libc::close(file) };
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn tcp_reset_error_reaches_both_directions() {
    let (client, server) = tcp_pair().unwrap();
    client.set_nonblocking(true).unwrap();
    let kq = Kqueue::new().unwrap();
    let fd = client.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD | Flags::CLEAR).token(1),
            Change::write(fd, Flags::ADD | Flags::CLEAR).token(2),
        ],
    );
    let ev = one(&kq);
    assert_eq!(ev.filter(), Filter::WRITE);
    assert!(!ev.is_eof() && ev.data() > 0, "{ev:?}");
    close_with_reset(server).unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < 2 && Instant::now() < deadline {
        events.extend(kevent(&kq, &[], Some(Duration::from_millis(100))));
    }
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 2, "{events:?}");
    for ev in &events {
        assert!(ev.is_eof(), "{ev:?}");
        assert_eq!(ev.fflags(), libc::ECONNRESET as u32, "{ev:?}");
    }
}
/// An uncounted kqueue reports the same events with `data` 1, and still
/// carries EOF and the socket error.
#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn uncounted_events_carry_flags_without_counts() {
    use std::io::Write as _;

    let kq = Kqueue::uncounted().unwrap();
    let (mut client, server) = tcp_pair().unwrap();
    let fd = server.as_raw_fd();
    apply(
        &kq,
        &[
            Change::read(fd, Flags::ADD | Flags::CLEAR).token(1),
            Change::write(fd, Flags::ADD | Flags::CLEAR).token(2),
        ],
    );
    let mut events = kevent(&kq, &[], WAIT);
    events.sort_by_key(Event::token);
    assert_eq!(events.len(), 1, "only writable so far: {events:?}");
    assert_eq!((events[0].token(), events[0].data()), (2, 1));
    assert!(!events[0].is_eof());

    client.write_all(&[7; 100]).unwrap();
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (1, 1, false));

    // A reset: EOF on both directions, with the error in fflags.
    close_with_reset(client).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while seen.len() < 2 && Instant::now() < deadline {
        seen.extend(kevent(&kq, &[], WAIT));
        seen.sort_by_key(Event::token);
        seen.dedup_by_key(|e| e.token());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    for ev in &seen {
        assert!(ev.is_eof(), "{ev:?}");
        assert_eq!(ev.fflags(), libc::ECONNRESET as u32, "{ev:?}");
    }
    assert_eq!(seen[0].data(), 1, "still readable: the bytes and the EOF");

    // A pipe whose reader is gone: EOF with no room.
    let (r, w) = pipe();
    apply(
        &kq,
        &[Change::write(w.as_raw_fd(), Flags::ADD | Flags::CLEAR).token(3)],
    );
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (3, 1, false));
    drop(r);
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.data(), ev.is_eof()), (3, 0, true));
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn reads_of_the_compats_own_descriptors_take_nothing_over() {
    let kq = Kqueue::new().unwrap();
    let (sources, write) = (kq.sources.as_raw_fd(), kq.lock().fds.write_fd());
    // The nested epolls' entries in the main epoll are the compat's, and
    // the write epoll can't watch itself.
    for change in [
        Change::read(sources, Flags::ADD),
        Change::read(write, Flags::ADD),
        Change::write(write, Flags::ADD),
    ] {
        assert_eq!(result(&kq, change), i64::from(libc::EINVAL), "{change:?}");
    }
    // A read registration that names a timer's timerfd sits in the main
    // epoll, the timerfd in the sources epoll: the timer still fires.
    apply(
        &kq,
        &[Change::timer(1, Flags::ADD | Flags::ONESHOT, Duration::from_millis(20)).token(1)],
    );
    let timerfd = {
        let mut reg = kq.lock();
        let knote = reg.knotes.get_mut(&(1, Filter::TIMER)).expect("the timer");
        knote.source.watched().expect("a timerfd").raw()
    };
    apply(
        &kq,
        &[Change::read(timerfd, Flags::ADD | Flags::CLEAR).token(2)],
    );
    let mut fired = false;
    for _ in 0..50 {
        let events = kevent(&kq, &[], Some(Duration::from_millis(100)));
        if events
            .iter()
            .any(|e| e.filter() == Filter::TIMER && e.token() == 1)
        {
            fired = true;
            break;
        }
    }
    assert!(fired, "the timer never fired");
}
