//! A program's descriptors, made afresh for each run.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use kqring_test_support::{
    BAD_FD, ScratchDir, ScratchPath, set_nonblocking, tcp_listener, temp_file, unix_pair,
};

use crate::model::{ChildEnd, FdRef, Resource, ResourceKind};
use crate::run::RunError;

/// Where TCP and UDP resources are bound: loopback, a port the kernel
/// picks.
const LOOPBACK: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 0);

/// The descriptors of one run, by name. Closed on drop, except those the
/// program closed itself.
pub(crate) struct Fds {
    numbers: HashMap<String, RawFd>,
    owned: HashMap<String, OwnedFd>,
    /// Every name, in the order declared or made.
    names: Vec<String>,
    /// The names of pipe ends.
    pipes: Vec<String>,
    /// How many unnamed descriptors the program made.
    unnamed: usize,
    /// The `dir` resources' directories, removed with what they hold.
    dirs: Vec<ScratchDir>,
    /// The `child` resources (not descriptors, but made and ended with
    /// them).
    children: Children,
}

/// A socket address, as far as a program tells addresses apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SockAddress {
    /// An IPv4 or IPv6 address.
    Ip(SocketAddr),
    /// A Unix-domain socket bound to a path.
    Unix(PathBuf),
    /// A Unix-domain socket bound to nothing (an end of a socket pair), or
    /// no address at all.
    Unnamed,
}

impl SockAddress {
    /// Reads a raw address of `len` bytes.
    pub(crate) fn from_raw(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> SockAddress {
        let len = len as usize;
        match i32::from(storage.ss_family) {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says sockaddr_in, the length covers it,
                // and sockaddr_storage is aligned for it.
                let sin = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                SockAddress::Ip(SocketAddr::from((
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                SockAddress::Ip(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    0,
                    sin6.sin6_scope_id,
                )))
            }
            libc::AF_UNIX => {
                // SAFETY: the family says sockaddr_un, which fits in the
                // storage.
                let un = unsafe {
                    &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_un>()
                };
                let offset = mem::offset_of!(libc::sockaddr_un, sun_path);
                let n = len.saturating_sub(offset).min(un.sun_path.len());
                let path: Vec<u8> = un.sun_path[..n]
                    .iter()
                    .map(|&c| c as u8)
                    .take_while(|&b| b != 0)
                    .collect();
                if path.is_empty() {
                    SockAddress::Unnamed
                } else {
                    SockAddress::Unix(PathBuf::from(std::ffi::OsString::from_vec(path)))
                }
            }
            _ => SockAddress::Unnamed,
        }
    }
}

impl From<SocketAddr> for SockAddress {
    fn from(a: SocketAddr) -> SockAddress {
        SockAddress::Ip(a)
    }
}

/// The address `fd` is bound to.
fn local_addr(fd: RawFd) -> io::Result<SockAddress> {
    // SAFETY: sockaddr_storage is plain data; all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into the storage.
    let r = unsafe { libc::getsockname(fd, (&raw mut storage).cast(), &mut len) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SockAddress::from_raw(&storage, len))
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

impl Fds {
    pub(crate) fn create(resources: &[Resource]) -> Result<Fds, RunError> {
        let mut fds = Fds {
            numbers: HashMap::new(),
            owned: HashMap::new(),
            names: Vec::new(),
            pipes: Vec::new(),
            unnamed: 0,
            dirs: Vec::new(),
            children: Children::default(),
        };
        // Unix listeners' paths: once every client has connected, nothing
        // needs them, and they go with their directories.
        let mut listeners: HashMap<String, ScratchPath> = HashMap::new();
        let mut tcp_listeners: HashMap<String, SocketAddr> = HashMap::new();
        for r in resources {
            let err = |e| RunError::io(format!("creating resource {}", r.name), e);
            match &r.kind {
                ResourceKind::SocketPair { blocking } => {
                    let (a, b) = unix_pair(!blocking).map_err(err)?;
                    fds.add(format!("{}.a", r.name), a.into());
                    fds.add(format!("{}.b", r.name), b.into());
                }
                ResourceKind::Pipe { blocking } => {
                    let (rd, wr) = kqring_test_support::pipe(!blocking).map_err(err)?;
                    fds.add(format!("{}.r", r.name), rd);
                    fds.add(format!("{}.w", r.name), wr);
                    fds.pipes.extend(r.ends());
                }
                ResourceKind::File { contents } => {
                    let f = temp_file(contents).map_err(err)?;
                    fds.add(r.name.clone(), f.into());
                }
                ResourceKind::Dir { entries } => {
                    // Permissions are compared as made: one umask for
                    // every run, whatever the caller's.
                    // SAFETY: umask takes no pointer.
                    unsafe { libc::umask(0o022) };
                    let dir = ScratchDir::new().map_err(err)?;
                    for e in entries {
                        e.make(dir.path()).map_err(err)?;
                    }
                    // A descriptor of its own, closed (or forgotten, when
                    // a program closes it) as the others are.
                    let fd: OwnedFd = std::fs::File::open(dir.path()).map_err(err)?.into();
                    fds.add(r.name.clone(), fd);
                    fds.dirs.push(dir);
                }
                ResourceKind::BadFd => {
                    fds.numbers.insert(r.name.clone(), BAD_FD);
                    fds.names.push(r.name.clone());
                }
                ResourceKind::MinusOne => {
                    fds.numbers.insert(r.name.clone(), -1);
                    fds.names.push(r.name.clone());
                }
                ResourceKind::Listener {
                    tcp: true,
                    blocking,
                } => {
                    let (l, addr) = tcp_listener(!blocking).map_err(err)?;
                    tcp_listeners.insert(r.name.clone(), addr);
                    fds.add(r.name.clone(), l.into());
                }
                ResourceKind::Udp => {
                    let u: OwnedFd = UdpSocket::bind(LOOPBACK).map_err(err)?.into();
                    set_nonblocking(&u, true).map_err(err)?;
                    fds.add(r.name.clone(), u);
                }
                ResourceKind::Listener {
                    tcp: false,
                    blocking,
                } => {
                    let path = ScratchPath::new("listener.sock").map_err(err)?;
                    let l = UnixListener::bind(&path).map_err(err)?;
                    listeners.insert(r.name.clone(), path);
                    let l: OwnedFd = l.into();
                    set_nonblocking(&l, !blocking).map_err(err)?;
                    fds.add(r.name.clone(), l);
                }
                ResourceKind::Child { end } => {
                    let status = match end {
                        ChildEnd::Exit(n) => *n,
                        ChildEnd::Signal(_) => 0,
                    };
                    let child = spawn_child(status).map_err(err)?;
                    fds.children.0.insert(r.name.clone(), (child, *end));
                }
                ResourceKind::Ring { .. } => {}
                ResourceKind::Client { listener, blocking } => {
                    // A Unix stream connect completes at once, and so does
                    // a TCP one over loopback: the connection is queued on
                    // the listener, in order.
                    let c: OwnedFd = if let Some(path) = listeners.get(listener) {
                        UnixStream::connect(path).map_err(err)?.into()
                    } else if let Some(addr) = tcp_listeners.get(listener) {
                        TcpStream::connect(addr).map_err(err)?.into()
                    } else {
                        return Err(RunError::Invalid(format!(
                            "client {}: no listener {listener}",
                            r.name
                        )));
                    };
                    set_nonblocking(&c, !blocking).map_err(err)?;
                    fds.add(r.name.clone(), c);
                }
            }
        }
        Ok(fds)
    }

    fn add(&mut self, name: String, fd: OwnedFd) {
        self.numbers.insert(name.clone(), fd.as_raw_fd());
        self.names.push(name.clone());
        self.owned.insert(name, fd);
    }

    /// Takes ownership of `raw`, a descriptor an entry made, under `name`
    /// (or none: it is only closed at the end).
    pub(crate) fn adopt(&mut self, name: Option<&str>, raw: RawFd) {
        // SAFETY: the descriptor was just made for the program (the result
        // of a socket or accept), and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let name = match name {
            Some(n) => n.to_string(),
            None => {
                self.unnamed += 1;
                // Not a valid resource name, so never one a program uses.
                format!("#{}", self.unnamed)
            }
        };
        self.add(name, fd);
    }

    /// The address the named descriptor is bound to.
    pub(crate) fn local_addr(&self, fd: &FdRef) -> Result<SockAddress, RunError> {
        local_addr(self.get(fd)?).map_err(|e| RunError::io(format!("getsockname({fd})"), e))
    }

    /// Names an address: the first descriptor of the program (in the order
    /// declared or made) bound to it, or the address itself when it is
    /// none of theirs; `None` for an unnamed address.
    pub(crate) fn name_of(&self, addr: &SockAddress) -> Option<String> {
        let shown = match addr {
            SockAddress::Unnamed => return None,
            SockAddress::Ip(a) => a.to_string(),
            SockAddress::Unix(p) => p.display().to_string(),
        };
        let ours = self.names.iter().find(|n| {
            !n.starts_with('#')
                && self.owned.contains_key(*n)
                && self
                    .numbers
                    .get(*n)
                    .is_some_and(|&fd| local_addr(fd).ok().as_ref() == Some(addr))
        });
        Some(ours.cloned().unwrap_or(shown))
    }

    /// The number of a named descriptor (still given after it was closed:
    /// using a closed descriptor is something a program may test).
    pub(crate) fn get(&self, fd: &FdRef) -> Result<RawFd, RunError> {
        self.numbers.get(&fd.0).copied().ok_or_else(|| {
            RunError::Invalid(format!(
                "no descriptor {fd} (yet): the entry that makes it has not completed \
                     successfully before this step"
            ))
        })
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

    /// The pid of the `child` resource `name`.
    pub(crate) fn child_pid(&self, name: &str) -> Result<u32, RunError> {
        self.children
            .0
            .get(name)
            .map(|(c, _)| c.id())
            .ok_or_else(|| RunError::Invalid(format!("no child {name}")))
    }

    /// The name of the `child` resource whose pid is `pid`.
    pub(crate) fn child_named(&self, pid: i32) -> Option<String> {
        self.children
            .0
            .iter()
            .find(|(_, (c, _))| i64::from(c.id()) == i64::from(pid))
            .map(|(name, _)| name.clone())
    }

    /// Ends the child `name` as its resource says, then waits (at most
    /// [`PATIENCE`](crate::PATIENCE)) until it has, leaving it a zombie
    /// for the program to reap.
    pub(crate) fn end_child(&mut self, name: &str) -> Result<(), RunError> {
        let (child, end) = self
            .children
            .0
            .get_mut(name)
            .ok_or_else(|| RunError::Invalid(format!("no child {name}")))?;
        match *end {
            // Its shell reads a line; end of file ends it.
            ChildEnd::Exit(_) => drop(child.stdin.take()),
            ChildEnd::Signal(signal) => {
                // SAFETY: kill takes no pointer; the child is not reaped
                // yet (only an entry of the program, after this step,
                // can), so its pid is still its own.
                unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            }
        }
        let pid = child.id();
        let deadline = std::time::Instant::now() + crate::PATIENCE;
        loop {
            match peek_child(pid) {
                Ok(true) | Err(_) => return Ok(()),
                Ok(false) if std::time::Instant::now() < deadline => {
                    // Polled: waitid has no timeout of its own.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(false) => {
                    return Err(RunError::io(
                        format!("end-child {name}"),
                        io::Error::new(io::ErrorKind::TimedOut, "the child did not end"),
                    ));
                }
            }
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

/// The `child` resources of a run, by name, with how each ends. On drop,
/// a child the program did not reap is killed and reaped.
#[derive(Default)]
struct Children(HashMap<String, (std::process::Child, ChildEnd)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (child, _) in self.0.values_mut() {
            // A child an entry reaped is gone (ECHILD): its pid may be
            // another process's by now, and is left alone.
            match peek_child(child.id()) {
                Err(_) => {}
                Ok(ended) => {
                    if !ended {
                        let _ = child.kill();
                    }
                    let _ = child.wait();
                }
            }
        }
    }
}

/// A child that waits for its standard input to end, then exits with
/// `status` (`sh -c 'read line; exit "$0"' STATUS`). Every descriptor but
/// 0, 1 and 2 is closed in it: it must hold no copy of a descriptor
/// another run made without `O_CLOEXEC`.
fn spawn_child(status: u8) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let mut command = Command::new("sh");
    command
        .args(["-c", "read line; exit \"$0\"", &status.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (close, close_range).
    unsafe { command.pre_exec(close_from_3) };
    command.spawn()
}

/// Whether the child `pid` has ended (`waitid` with `WNOWAIT`: it stays
/// a zombie); `Err` when it is no child (reaped).
fn peek_child(pid: u32) -> io::Result<bool> {
    // SAFETY: a zeroed siginfo_t is valid; waitid writes into it.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    loop {
        // SAFETY: `info` is a live siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 {
            // SAFETY: waitid filled it (or left it zeroed: none ended).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Closes every descriptor from 3 up, between fork and exec.
fn close_from_3() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range takes no pointer.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
            return Ok(());
        }
    }
    // SAFETY: getdtablesize takes no pointer.
    let max = unsafe { libc::getdtablesize() };
    for fd in 3..max {
        // SAFETY: close takes no pointer; a number that is not open is
        // EBADF, ignored.
        unsafe { libc::close(fd) };
    }
    Ok(())
}
