//! What the example servers share: a self-pipe for SIGINT/SIGTERM, pushing
//! with reaping while the submission queue is full, and one-shot setup
//! operations.
#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use kqring::ops::{Bind, Listen, Socket};
use kqring::{Cqe, Mode, Ring, Sqe};

/// The write end of the self-pipe SIGINT and SIGTERM write to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; one byte from a static.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
}

/// A non-blocking pipe whose read end becomes readable on SIGINT/SIGTERM.
pub fn signal_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
    for fd in [r.as_raw_fd(), w.as_raw_fd()] {
        // SAFETY: fcntl with integer arguments on descriptors we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    SIGNAL_PIPE.store(w.as_raw_fd(), Ordering::Relaxed);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only makes an async-signal-safe
        // write.
        if unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) }
            == libc::SIG_ERR
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((r, w))
}

/// Pushes an entry, submitting and reaping into `backlog` while the queue
/// is full.
pub fn push(ring: &Ring, mut sqe: Sqe, backlog: &mut Vec<Cqe>) -> io::Result<()> {
    loop {
        match ring.submission().push(sqe) {
            Ok(()) => return Ok(()),
            Err(back) => {
                sqe = back.into_inner();
                match ring.submission().submit() {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                    Err(e) => return Err(e),
                }
                backlog.extend(ring.completion().drain());
            }
        }
    }
}

/// Runs one setup operation (its `user_data` already set) and checks its
/// result.
pub fn setup(ring: &Ring, sqe: Sqe, what: &str) -> io::Result<i32> {
    ring.submission()
        .push(sqe)
        .map_err(|_| io::Error::other("submission queue full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring.completion().wait()?;
    cqe.io_result()
        .map(|v| v as i32)
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))
}

/// A listening TCP socket on `addr`, made through the ring (Socket, Bind,
/// Listen) with SO_REUSEADDR so that a restart can rebind at once; each
/// operation carries `user_data`.
pub fn listen(
    ring: &Ring,
    addr: SocketAddr,
    backlog: i32,
    user_data: u64,
) -> io::Result<TcpListener> {
    let setup = |sqe: Sqe, what| setup(ring, sqe.user_data(user_data), what);
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let lfd = setup(Socket::new(domain, libc::SOCK_STREAM, 0).build(), "socket")?;
    // SAFETY: the Socket operation made it for us alone.
    let listener = TcpListener::from(unsafe { OwnedFd::from_raw_fd(lfd) });
    let one: libc::c_int = 1;
    // SAFETY: a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            lfd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    setup(Bind::new(lfd, addr).build(), "bind")?;
    setup(Listen::new(lfd, backlog).build(), "listen")?;
    Ok(listener)
}

/// The async servers' command line: `[--host ADDR] [--port N] [--inline]`
/// (default 127.0.0.1, port 0: any free one, a polling thread). Exits with
/// the usage of `name` on anything else.
pub fn address_and_mode(name: &str) -> (SocketAddr, Mode) {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port = 0u16;
    let mut mode = Mode::PollingThread;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match arg.as_str() {
            "--host" => args.next().and_then(|v| v.parse().ok()).map(|v| host = v),
            "--port" => args.next().and_then(|v| v.parse().ok()).map(|v| port = v),
            "--inline" => {
                mode = Mode::Inline;
                Some(())
            }
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("usage: {name} [--host ADDR] [--port N] [--inline]");
            std::process::exit(2);
        }
    }
    (SocketAddr::new(host, port), mode)
}
