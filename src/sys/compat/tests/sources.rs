//! The filters with a descriptor of the compat's own or state in the
//! registry: process, signal, timer, user.

use super::*;

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn process_exit_leaves_the_child_to_its_parent() {
    let kq = Kqueue::new().unwrap();
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "read x; exit 7"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    apply(&kq, &[Change::proc_exit(pid, Flags::ADD).token(6)]);
    quiet(&kq);
    drop(child.stdin.take());
    let ev = one(&kq);
    assert_eq!(
        (ev.ident(), ev.filter(), ev.token()),
        (pid as usize, Filter::PROC, 6)
    );
    assert_eq!((ev.fflags(), ev.data()), (note::EXIT, 7 << 8));
    assert!(ev.is_eof() && ev.flags().contains(Flags::ONESHOT));
    // Not reaped by the compat: the parent still can.
    assert_eq!(child.wait().expect("wait").code(), Some(7));
    // The registration is gone.
    assert_eq!(
        result(&kq, Change::proc_exit(pid, Flags::DELETE)),
        i64::from(libc::ENOENT)
    );
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn realtime_signals_count_exactly_and_stay_blocked() {
    let sig = libc::SIGRTMIN() + 5;
    let kq = Kqueue::new().unwrap();
    apply(&kq, &[Change::signal(sig, Flags::ADD).token(8)]);
    for _ in 0..3 {
        // SAFETY: a thread-directed signal to this thread, which blocks
        // it (the registration did), so only the signalfd sees it.
        check(
            unsafe { libc::pthread_kill(libc::pthread_self(), sig) },
            "pthread_kill",
        );
    }
    let ev = one(&kq);
    assert_eq!((ev.ident(), ev.token(), ev.data()), (sig as usize, 8, 3));
    assert!(ev.flags().contains(Flags::CLEAR));
    quiet(&kq);
    apply(&kq, &[Change::signal(sig, Flags::DELETE)]);
    // SAFETY: reads this thread's mask into `set`.
    let blocked = unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        libc::sigismember(&set, sig)
    };
    assert_eq!(blocked, 1, "deleting the registration must not unblock");
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn dispatched_timer_stops_waking_the_wait() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[Change::timer(3, Flags::ADD | Flags::DISPATCH, Duration::from_millis(2)).token(1)],
    );
    let ev = one(&kq);
    assert_eq!((ev.filter(), ev.token()), (Filter::TIMER, 1));
    // Disabled, still running: the expiries neither report nor wake.
    sleeps_quietly(&kq, Duration::from_millis(100));
    apply(
        &kq,
        &[Change::timer(3, Flags::ENABLE, Duration::ZERO).token(1)],
    );
    let ev = one(&kq);
    assert!(ev.data() >= 40, "expirations while disabled: {ev:?}");
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn oneshot_timers_reuse_their_descriptors() {
    let kq = Kqueue::new().unwrap();
    for round in 0..50u64 {
        apply(
            &kq,
            &[
                Change::timer(7, Flags::ADD | Flags::ONESHOT, Duration::from_micros(100))
                    .token(round),
            ],
        );
        let ev = one(&kq);
        assert_eq!((ev.ident(), ev.token(), ev.data()), (7, round, 1));
    }
    let registry = kq.lock();
    assert!(registry.knotes.is_empty());
    assert_eq!(registry.shared.spare_timers.len(), 1);
}

#[test]
#[cfg_attr(miri, ignore = "Miri's epoll cannot watch another epoll")]
fn user_trigger_replaces_the_token_like_kqueue() {
    let kq = Kqueue::new().unwrap();
    apply(
        &kq,
        &[Change::user(1, Flags::ADD | Flags::CLEAR, note::FFNOP).token(10)],
    );
    // FreeBSD's kqueue_register stores every change's udata.
    apply(&kq, &[Change::trigger(1).token(11)]);
    let ev = one(&kq);
    assert_eq!((ev.token(), ev.fflags(), ev.data()), (11, 0, 0));
    quiet(&kq);
}
