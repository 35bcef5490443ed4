//! A program's descriptors, made afresh for each run.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{FdRef, Resource, ResourceKind};
use crate::run::RunError;

/// The number a `bad` resource stands for: never open (closing a real
/// descriptor to get a bad one races with whoever reuses the number).
pub(crate) const BAD_FD: RawFd = 1_000_000;

/// The descriptors of one run, by name. Closed on drop, except those the
/// program closed itself.
pub(crate) struct Fds {
    numbers: HashMap<String, RawFd>,
    owned: HashMap<String, OwnedFd>,
    /// The names of pipe ends.
    pipes: Vec<String>,
}

#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
// macOS has no MSG_NOSIGNAL; Rust programs ignore SIGPIPE anyway.
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
const SEND_FLAGS: libc::c_int = 0;

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl with integer arguments on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A path of its own in the temporary directory.
fn temp_path(suffix: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "kqring-conformance-{}-{n}{suffix}",
        std::process::id()
    ))
}

/// Socket paths, removed on drop: once every client has connected,
/// nothing needs them.
struct SocketPaths(HashMap<String, PathBuf>);

impl Drop for SocketPaths {
    fn drop(&mut self) {
        for path in self.0.values() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn temp_file(contents: &[u8]) -> io::Result<OwnedFd> {
    let path = temp_path("");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Unlinked at once: nothing is left behind, whatever happens next.
    std::fs::remove_file(&path)?;
    file.write_all(contents)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file.into())
}

impl Fds {
    pub(crate) fn create(resources: &[Resource]) -> Result<Fds, RunError> {
        let mut fds = Fds {
            numbers: HashMap::new(),
            owned: HashMap::new(),
            pipes: Vec::new(),
        };
        let mut listeners = SocketPaths(HashMap::new());
        for r in resources {
            let err = |e| RunError::io(format!("creating resource {}", r.name), e);
            match &r.kind {
                ResourceKind::SocketPair { blocking } => {
                    let (a, b) = UnixStream::pair().map_err(err)?;
                    let (a, b): (OwnedFd, OwnedFd) = (a.into(), b.into());
                    if !blocking {
                        set_nonblocking(&a).map_err(err)?;
                        set_nonblocking(&b).map_err(err)?;
                    }
                    fds.add(format!("{}.a", r.name), a);
                    fds.add(format!("{}.b", r.name), b);
                }
                ResourceKind::Pipe { blocking } => {
                    let (rd, wr) = io::pipe().map_err(err)?;
                    let (rd, wr): (OwnedFd, OwnedFd) = (rd.into(), wr.into());
                    if !blocking {
                        set_nonblocking(&rd).map_err(err)?;
                        set_nonblocking(&wr).map_err(err)?;
                    }
                    fds.add(format!("{}.r", r.name), rd);
                    fds.add(format!("{}.w", r.name), wr);
                    fds.pipes.extend(r.ends());
                }
                ResourceKind::File { contents } => {
                    let f = temp_file(contents).map_err(err)?;
                    fds.add(r.name.clone(), f);
                }
                ResourceKind::BadFd => {
                    fds.numbers.insert(r.name.clone(), BAD_FD);
                }
                ResourceKind::Listener { blocking } => {
                    let path = temp_path(".sock");
                    let l = UnixListener::bind(&path).map_err(err)?;
                    listeners.0.insert(r.name.clone(), path);
                    let l: OwnedFd = l.into();
                    if !blocking {
                        set_nonblocking(&l).map_err(err)?;
                    }
                    fds.add(r.name.clone(), l);
                }
                ResourceKind::Client { listener, blocking } => {
                    let path = listeners.0.get(listener).ok_or_else(|| {
                        RunError::Invalid(format!("client {}: no listener {listener}", r.name))
                    })?;
                    // A Unix stream connect completes at once, the
                    // connection queued on the listener, in order.
                    let c: OwnedFd = UnixStream::connect(path).map_err(err)?.into();
                    if !blocking {
                        set_nonblocking(&c).map_err(err)?;
                    }
                    fds.add(r.name.clone(), c);
                }
            }
        }
        Ok(fds)
    }

    fn add(&mut self, name: String, fd: OwnedFd) {
        self.numbers.insert(name.clone(), fd.as_raw_fd());
        self.owned.insert(name, fd);
    }

    /// The number of a named descriptor (still given after it was closed:
    /// using a closed descriptor is something a program may test).
    pub(crate) fn get(&self, fd: &FdRef) -> Result<RawFd, RunError> {
        self.numbers
            .get(&fd.0)
            .copied()
            .ok_or_else(|| RunError::Invalid(format!("no descriptor named {fd}")))
    }

    /// Writes all of `data` to `fd` from outside the ring. A peer that is
    /// gone (`EPIPE`, `ECONNRESET`) takes nothing and is not an error: a
    /// program may test what a backend does to the other end.
    pub(crate) fn write_peer(&self, fd: &FdRef, data: &[u8]) -> Result<(), RunError> {
        let raw = self.get(fd)?;
        let mut done = 0;
        let mut socket = true;
        while done < data.len() {
            let rest = &data[done..];
            // SAFETY: reads from a live slice, its length given. A socket
            // gets MSG_NOSIGNAL: no SIGPIPE for a peer that is gone.
            let n = unsafe {
                if socket {
                    libc::send(raw, rest.as_ptr().cast(), rest.len(), SEND_FLAGS)
                } else {
                    libc::write(raw, rest.as_ptr().cast(), rest.len())
                }
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOTSOCK) if socket => {
                        socket = false;
                        continue;
                    }
                    Some(libc::EPIPE | libc::ECONNRESET) => return Ok(()),
                    _ => return Err(RunError::io(format!("write-peer {fd}"), e)),
                }
            }
            done += n as usize;
        }
        Ok(())
    }

    /// Wakes whatever may be blocked on these descriptors (a blocking read
    /// on a worker thread would otherwise keep a ring from shutting down):
    /// sockets are shut down, pipes closed.
    pub(crate) fn unblock(&mut self) {
        let pipes: Vec<String> = self
            .owned
            .iter()
            .filter_map(|(name, fd)| {
                // SAFETY: shutdown takes no pointer; ENOTSOCK for a non-socket.
                let r = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
                let not_socket =
                    r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK);
                (not_socket && self.pipes.contains(name)).then(|| name.clone())
            })
            .collect();
        for name in pipes {
            self.owned.remove(&name);
        }
    }

    /// Closes `fd` from outside the ring.
    pub(crate) fn close_peer(&mut self, fd: &FdRef) {
        self.owned.remove(&fd.0);
    }

    /// Gives up ownership of `fd` without closing it: the program closed
    /// it.
    pub(crate) fn forget(&mut self, fd: &FdRef) {
        if let Some(owned) = self.owned.remove(&fd.0) {
            let _ = owned.into_raw_fd();
        }
    }
}
