//! Signal, and the WaitIds that wait on SIGCHLD (P_ALL, P_PGID, stops and
//! continues): a process of their own, since signals and "any child" are
//! process-wide.
//!
//! `main` blocks the signals used here before any thread exists, so every
//! thread (the harness's, the rings') inherits the mask: on the Linux
//! compat a signalfd only sees a signal that no thread takes first, and
//! a program using `Signal` there must do the same (docs/semantics.md,
//! "Signal"). A kernel kqueue records the delivery whatever the mask.
//! The trials run one at a time: a `WaitId` of any child would reap
//! another trial's.

// The children are reaped by the WaitIds under test, not by `Child::wait`.
#![allow(clippy::zombie_processes)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use kqring::ops::{AsyncCancel, Nop, Signal, WaitId};
use kqring::{Cqe, Ring, sys};
use libtest_mimic::{Arguments, Failed, Trial};

const PATIENCE: Duration = Duration::from_secs(10);

/// The signals this binary blocks in every thread.
fn used() -> Vec<i32> {
    vec![
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGCHLD,
        counted_signal(),
    ]
}

/// A signal whose every delivery counts: on Linux a real-time one (a
/// signalfd merges pending standard signals); a kernel kqueue counts each
/// delivery of any signal.
#[cfg(target_os = "linux")]
fn counted_signal() -> i32 {
    libc::SIGRTMIN() + 1
}

#[cfg(not(target_os = "linux"))]
fn counted_signal() -> i32 {
    libc::SIGUSR2
}

fn block(signals: &[i32]) {
    // SAFETY: a zeroed sigset_t is filled by sigemptyset before use; the
    // calls take valid pointers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            0
        );
    }
}

/// The current handler of `signal`.
fn handler(signal: i32) -> libc::sighandler_t {
    // SAFETY: a null new action only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction
    }
}

/// Sends `signal` to the whole process (`kill`), from another thread.
fn kill_process(signal: i32) {
    std::thread::spawn(move || {
        // SAFETY: kill of our own pid with a signal every thread blocks.
        assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
    })
    .join()
    .expect("sender");
}

fn wait1(ring: &Ring) -> Result<Cqe, Failed> {
    ring.completion()
        .wait_timeout(PATIENCE)?
        .ok_or_else(|| "no completion in time".into())
}

/// Pushes `sqes` and a Nop, and waits for the Nop: by then the
/// registrations they need are in the kqueue.
fn start(ring: &Ring, sqes: impl IntoIterator<Item = kqring::Sqe>) -> Result<(), Failed> {
    for sqe in sqes {
        ring.submission().push(sqe).map_err(|_| "queue full")?;
    }
    ring.submission()
        .push(Nop::new().build().user_data(u64::MAX))
        .map_err(|_| "queue full")?;
    ring.submission().submit()?;
    let c = wait1(ring)?;
    check(
        c.user_data() == u64::MAX,
        format!("only the Nop completes: {c:?}"),
    )
}

fn check(ok: bool, what: impl Into<String>) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(what.into().into()) }
}

fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T, what: &str) -> Result<(), Failed> {
    check(got == want, format!("{what}: got {got:?}, want {want:?}"))
}

fn rings() -> Vec<Ring> {
    vec![
        Ring::new(16).expect("ring"),
        Ring::builder().inline().build().expect("ring"),
    ]
}

fn a_process_directed_signal_completes_with_its_number() -> Result<(), Failed> {
    for ring in rings() {
        start(&ring, [Signal::new(libc::SIGUSR1).build().user_data(1)])?;
        kill_process(libc::SIGUSR1);
        let c = wait1(&ring)?;
        eq(
            (c.user_data(), c.result(), c.is_more()),
            (1, libc::SIGUSR1, true),
            "delivery",
        )?;
        eq(c.deliveries(), Some(1), "count")?;
        kill_process(libc::SIGUSR1);
        eq(wait1(&ring)?.result(), libc::SIGUSR1, "second delivery")?;
        ring.submission()
            .push(AsyncCancel::new(1).build().user_data(2))
            .map_err(|_| "full")?;
        ring.submission().submit()?;
        let mut c = [wait1(&ring)?, wait1(&ring)?];
        c.sort_by_key(Cqe::user_data);
        eq(
            (c[0].result(), c[0].is_more(), c[1].result()),
            (-libc::ECANCELED, false, 0),
            "cancel",
        )?;
    }
    Ok(())
}

fn deliveries_read_together_are_counted() -> Result<(), Failed> {
    if sys::BACKEND == "libkqueue" {
        println!("skipped on libkqueue: its EVFILT_SIGNAL reports 1 per delivery read");
        return Ok(());
    }
    let sig = counted_signal();
    // Inline: nothing reads the registration until the wait below, so the
    // three deliveries are counted in one event.
    let ring = Ring::builder().inline().build()?;
    start(&ring, [Signal::new(sig).build().user_data(3)])?;
    for _ in 0..3 {
        kill_process(sig);
    }
    let c = wait1(&ring)?;
    eq((c.result(), c.deliveries()), (sig, Some(3)), "coalesced")
}

fn two_signals_of_one_number_each_hear_each_delivery() -> Result<(), Failed> {
    let ring = Ring::new(16)?;
    start(
        &ring,
        [
            Signal::new(libc::SIGUSR2).build().user_data(1),
            Signal::new(libc::SIGUSR2).build().user_data(2),
        ],
    )?;
    kill_process(libc::SIGUSR2);
    let mut c = [wait1(&ring)?, wait1(&ring)?];
    c.sort_by_key(Cqe::user_data);
    eq(
        c.iter()
            .map(|c| (c.user_data(), c.result()))
            .collect::<Vec<_>>(),
        vec![(1, libc::SIGUSR2), (2, libc::SIGUSR2)],
        "both",
    )
}

fn the_disposition_is_ignored_while_listening_and_restored_after_the_last() -> Result<(), Failed> {
    let ring = Ring::new(16)?;
    eq(handler(libc::SIGTERM), libc::SIG_DFL, "before")?;
    start(
        &ring,
        [
            Signal::new(libc::SIGTERM).build().user_data(1),
            Signal::new(libc::SIGTERM).build().user_data(2),
        ],
    )?;
    eq(handler(libc::SIGTERM), libc::SIG_IGN, "while listening")?;
    ring.submission()
        .push(AsyncCancel::new(1).build().user_data(3))
        .map_err(|_| "full")?;
    ring.submission().submit()?;
    wait1(&ring)?;
    wait1(&ring)?;
    eq(handler(libc::SIGTERM), libc::SIG_IGN, "one is left")?;
    drop(ring);
    eq(handler(libc::SIGTERM), libc::SIG_DFL, "after the last")?;
    // A handler is left alone; so is SIGCHLD, whose default ignores it.
    extern "C" fn on_hup(_: libc::c_int) {}
    // SAFETY: installs a handler that does nothing.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_hup as extern "C" fn(libc::c_int) as usize;
        assert_eq!(libc::sigaction(libc::SIGHUP, &act, std::ptr::null_mut()), 0);
    }
    let ring = Ring::new(16)?;
    start(
        &ring,
        [
            Signal::new(libc::SIGHUP).build().user_data(4),
            Signal::new(libc::SIGCHLD).build().user_data(5),
        ],
    )?;
    eq(
        handler(libc::SIGHUP),
        on_hup as extern "C" fn(libc::c_int) as usize,
        "handler kept",
    )?;
    eq(handler(libc::SIGCHLD), libc::SIG_DFL, "SIGCHLD kept")?;
    Ok(())
}

fn uncatchable_signals_are_einval_and_cancel_before_start_works() -> Result<(), Failed> {
    let ring = Ring::new(16)?;
    for (ud, s) in [(1, libc::SIGKILL), (2, libc::SIGSTOP), (3, 0)] {
        ring.submission()
            .push(Signal::new(s).build().user_data(ud))
            .map_err(|_| "full")?;
        ring.submission().submit()?;
        eq(wait1(&ring)?.result(), -libc::EINVAL, "uncatchable")?;
    }
    let bad = kqring::ops::Read::new(-1, Vec::with_capacity(1));
    ring.submission()
        .push(bad.build().user_data(4).flags(kqring::SqeFlags::IO_LINK))
        .map_err(|_| "full")?;
    ring.submission()
        .push(Signal::new(libc::SIGUSR1).build().user_data(5))
        .map_err(|_| "full")?;
    ring.submission().submit()?;
    let mut c = [wait1(&ring)?, wait1(&ring)?];
    c.sort_by_key(Cqe::user_data);
    eq(
        (c[0].result(), c[1].result()),
        (-libc::EBADF, -libc::ECANCELED),
        "linked",
    )
}

fn a_thread_directed_signal_is_seen_by_an_inline_ring_on_its_thread() -> Result<(), Failed> {
    if sys::BACKEND == "libkqueue" {
        println!(
            "skipped on libkqueue: it reads signals on a thread of its own, which a signal \
             sent to this thread never reaches"
        );
        return Ok(());
    }
    // On the Linux compat a signalfd sees the signals sent to the thread
    // that reads it: an inline ring's driver runs on this one. A kernel
    // kqueue sees any thread's.
    let ring = Ring::builder().inline().build()?;
    start(&ring, [Signal::new(libc::SIGUSR2).build().user_data(6)])?;
    // SAFETY: signals this thread, which blocks SIGUSR2.
    eq(
        unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGUSR2) },
        0,
        "pthread_kill",
    )?;
    eq(wait1(&ring)?.result(), libc::SIGUSR2, "seen")
}

fn sh(script: &str) -> std::process::Child {
    Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh")
}

fn waitid_of_any_child_and_of_a_group() -> Result<(), Failed> {
    for ring in rings() {
        // No child at all.
        ring.submission()
            .push(
                WaitId::new(libc::P_ALL, 0, libc::WEXITED)
                    .build()
                    .user_data(1),
            )
            .map_err(|_| "full")?;
        ring.submission().submit()?;
        eq(wait1(&ring)?.result(), -libc::ECHILD, "no child")?;
        let mut child = sh("read l; exit 4");
        start(
            &ring,
            [WaitId::new(libc::P_ALL, 0, libc::WEXITED)
                .build()
                .user_data(2)],
        )?;
        drop(child.stdin.take());
        let c = wait1(&ring)?;
        let info = c.wait_info().copied().ok_or("no info")?;
        eq(
            (c.result(), info.pid, info.code, info.status),
            (0, child.id() as i32, libc::CLD_EXITED, 4),
            "any",
        )?;
        // A child in a group of its own.
        let mut child = Command::new("sh")
            .args(["-c", "read l; exit 6"])
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pgid = child.id() as libc::id_t;
        start(
            &ring,
            [WaitId::new(libc::P_PGID, pgid, libc::WEXITED)
                .build()
                .user_data(3)],
        )?;
        drop(child.stdin.take());
        let c = wait1(&ring)?;
        eq(
            c.wait_info().map(|i| (i.pid, i.status)),
            Some((child.id() as i32, 6)),
            "group",
        )?;
    }
    Ok(())
}

fn waitid_of_a_stop_and_a_continue() -> Result<(), Failed> {
    let ring = Ring::new(16)?;
    let mut child = sh("read l");
    let pid = child.id() as libc::id_t;
    start(
        &ring,
        [WaitId::new(libc::P_PID, pid, libc::WSTOPPED)
            .build()
            .user_data(1)],
    )?;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    let c = wait1(&ring)?;
    eq(
        c.wait_info().map(|i| (i.code, i.status)),
        Some((libc::CLD_STOPPED, libc::SIGSTOP)),
        "stop",
    )?;
    start(
        &ring,
        [WaitId::new(libc::P_PID, pid, libc::WCONTINUED)
            .build()
            .user_data(2)],
    )?;
    // SAFETY: as above.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let c = wait1(&ring)?;
    eq(
        c.wait_info().map(|i| (i.code, i.status)),
        Some((libc::CLD_CONTINUED, libc::SIGCONT)),
        "continue",
    )?;
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}

fn main() {
    // Before any thread: all inherit the mask.
    block(&used());
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let trials = vec![
        Trial::test(
            "a_process_directed_signal_completes_with_its_number",
            a_process_directed_signal_completes_with_its_number,
        ),
        Trial::test(
            "deliveries_read_together_are_counted",
            deliveries_read_together_are_counted,
        ),
        Trial::test(
            "two_signals_of_one_number_each_hear_each_delivery",
            two_signals_of_one_number_each_hear_each_delivery,
        ),
        Trial::test(
            "the_disposition_is_ignored_while_listening_and_restored_after_the_last",
            the_disposition_is_ignored_while_listening_and_restored_after_the_last,
        ),
        Trial::test(
            "uncatchable_signals_are_einval_and_cancel_before_start_works",
            uncatchable_signals_are_einval_and_cancel_before_start_works,
        ),
        Trial::test(
            "a_thread_directed_signal_is_seen_by_an_inline_ring_on_its_thread",
            a_thread_directed_signal_is_seen_by_an_inline_ring_on_its_thread,
        ),
        Trial::test(
            "waitid_of_any_child_and_of_a_group",
            waitid_of_any_child_and_of_a_group,
        ),
        Trial::test(
            "waitid_of_a_stop_and_a_continue",
            waitid_of_a_stop_and_a_continue,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
