//! The descriptors kqring's tests, its benchmark program (`bench/`) and its
//! conformance tool (`conformance/`) set up, written once: socket pairs and
//! pipes, blocking or not, a loopback TCP connection, a number that is
//! never open, temporary files and paths, a pipe with an echoing partner.
//!
//! Nothing here uses kqring: helpers that drive a ring stay with the tests
//! that use them (`tests/common`), so that a change of kqring's API leaves
//! this crate alone.
//!
//! Every function returns [`io::Result`]: the benchmark and the conformance
//! tool report a failed set-up as an error, a test unwraps it.

#![warn(missing_docs)]

use std::fs::File;
use std::io::{self, Read as _, Seek as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A descriptor number that is never open, far above any a test opens:
/// closing a real descriptor to get a bad one races with threads that
/// reuse the number.
pub const BAD_FD: RawFd = 1_000_000;

/// Sets (`on`) or clears `O_NONBLOCK` on the open file description of
/// `fd`, which its duplicates share.
pub fn set_nonblocking(fd: impl AsFd, on: bool) -> io::Result<()> {
    let fd = fd.as_fd().as_raw_fd();
    // SAFETY: fcntl with integer arguments on a descriptor the caller holds.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(fd, libc::F_SETFL, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A pipe, `(read end, write end)`, non-blocking if `nonblocking`. Both
/// ends are close-on-exec (atomically where the platform can, as
/// [`std::io::pipe`] makes them), so that a child another thread spawns
/// cannot hold the write end and with it the end of stream.
pub fn pipe(nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe()?;
    let (r, w): (OwnedFd, OwnedFd) = (r.into(), w.into());
    if nonblocking {
        set_nonblocking(&r, true)?;
        set_nonblocking(&w, true)?;
    }
    Ok((r, w))
}

/// A connected pair of `AF_UNIX` stream sockets, close-on-exec,
/// non-blocking if `nonblocking`.
pub fn unix_pair(nonblocking: bool) -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(nonblocking)?;
    b.set_nonblocking(nonblocking)?;
    Ok((a, b))
}

/// A TCP listener on 127.0.0.1, on a port the kernel picks, non-blocking
/// if `nonblocking`, and its address.
pub fn tcp_listener(nonblocking: bool) -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    listener.set_nonblocking(nonblocking)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A TCP connection over 127.0.0.1, `(client, server)`: the connecting end
/// and the end accepted from a [`tcp_listener`] (and checked to be the
/// client's). Both are blocking and have `TCP_NODELAY`, so that a small
/// write leaves at once.
pub fn tcp_pair() -> io::Result<(TcpStream, TcpStream)> {
    let (listener, addr) = tcp_listener(false)?;
    let client = TcpStream::connect(addr)?;
    let (server, peer) = listener.accept()?;
    if peer != client.local_addr()? {
        return Err(io::Error::other(format!(
            "accepted a connection from {peer}, not from the client"
        )));
    }
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}

/// Closes the stream socket `socket` with a reset (`SO_LINGER` of zero)
/// rather than an orderly end of stream: its peer's calls then fail with
/// `ECONNRESET`.
pub fn close_with_reset(socket: impl Into<OwnedFd>) -> io::Result<()> {
    let fd: OwnedFd = socket.into();
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a pointer to a live linger and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    drop(fd);
    Ok(())
}

/// The byte [`fill`] writes.
pub const FILLER: u8 = 0xa5;

/// Writes [`FILLER`] bytes into the non-blocking `fd` (a pipe or a stream
/// socket) until not even one more byte fits; returns how many it wrote.
pub fn fill(fd: impl AsFd) -> io::Result<usize> {
    let fd = fd.as_fd().as_raw_fd();
    let chunk = [FILLER; 65536];
    let mut total = 0;
    let mut size = chunk.len();
    loop {
        // SAFETY: `chunk` is readable for `size <= chunk.len()` bytes.
        let n = unsafe { libc::write(fd, chunk.as_ptr().cast(), size) };
        if n >= 0 {
            total += n as usize;
            // Pipe and socket buffers hold megabytes at most: this one
            // never fills up (a regular file, say).
            if total > 1 << 30 {
                return Err(io::Error::other("never filled up"));
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::WouldBlock {
            return Err(e);
        }
        if size == 1 {
            return Ok(total);
        }
        size /= 2;
    }
}

/// A regular temporary file holding `contents`, open for reading and
/// writing at position 0, and already unlinked: nothing is left behind,
/// however the caller ends.
pub fn temp_file(contents: &[u8]) -> io::Result<File> {
    let mut file = tempfile::tempfile()?;
    file.write_all(contents)?;
    file.rewind()?;
    Ok(file)
}

/// A path nothing uses yet: a name in a new directory of its own under the
/// temporary directory. Dropping it removes the directory with whatever was
/// made in it — a file or directory at the path, a socket bound to it,
/// siblings made beside it — however the caller ends.
#[derive(Debug)]
pub struct ScratchPath {
    path: PathBuf,
    // Removed on drop, with all it holds.
    _dir: tempfile::TempDir,
}

impl ScratchPath {
    /// `name`, one path component, in a new directory.
    pub fn new(name: &str) -> io::Result<ScratchPath> {
        let dir = tempfile::Builder::new().prefix("kqring-").tempdir()?;
        let path = dir.path().join(name);
        Ok(ScratchPath { path, _dir: dir })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ScratchPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A new empty directory under the temporary directory, removed with all
/// it holds on drop, however the caller ends; with its descriptor, for
/// paths relative to it.
#[derive(Debug)]
pub struct ScratchDir {
    fd: OwnedFd,
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// A new empty directory, open (`O_RDONLY | O_DIRECTORY`).
    pub fn new() -> io::Result<ScratchDir> {
        let dir = tempfile::Builder::new().prefix("kqring-").tempdir()?;
        let fd = File::open(dir.path())?.into();
        Ok(ScratchDir { fd, dir })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Its descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Two pipes and a partner thread that echoes, with blocking calls,
/// whatever arrives on the first into the second: the far end of a round
/// trip through pipes. The caller's ends are `ping` (it writes there) and
/// `pong` (the echo comes back there); closing `ping` stops the partner.
#[derive(Debug)]
pub struct PipePartner {
    /// Where the caller writes.
    pub ping: OwnedFd,
    /// Where the caller reads the echo.
    pub pong: OwnedFd,
    /// The echoing thread.
    pub partner: Partner,
}

/// The thread behind a [`PipePartner`].
#[derive(Debug)]
pub struct Partner(JoinHandle<()>);

impl Partner {
    /// Waits for the partner to stop (once the caller's ends are closed).
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl PipePartner {
    /// Spawns the partner; the caller's two ends are made non-blocking if
    /// `nonblocking` (the partner's ends are open files of their own and
    /// stay blocking).
    pub fn spawn(nonblocking: bool) -> io::Result<PipePartner> {
        let (ping_r, ping_w) = io::pipe()?;
        let (pong_r, pong_w) = io::pipe()?;
        let partner = std::thread::Builder::new()
            .name("pipe-partner".into())
            .spawn(move || {
                let (mut r, mut w) = (ping_r, pong_w);
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    if w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            })?;
        let (ping, pong): (OwnedFd, OwnedFd) = (ping_w.into(), pong_r.into());
        if nonblocking {
            set_nonblocking(&ping, true)?;
            set_nonblocking(&pong, true)?;
        }
        Ok(PipePartner {
            ping,
            pong,
            partner: Partner(partner),
        })
    }

    /// Closes the caller's ends and joins the partner.
    pub fn finish(self) {
        drop(self.ping);
        drop(self.pong);
        self.partner.join();
    }
}

/// Writes `line` to the process's standard error past the test harness's
/// capture (which takes only the `print!` family), so that a suite's
/// counts reach the CI log when its tests pass.
pub fn report(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_nonblocking(fd: impl AsFd) -> bool {
        // SAFETY: F_GETFL takes no pointer.
        let flags = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFL) };
        assert!(flags >= 0);
        flags & libc::O_NONBLOCK != 0
    }

    fn is_cloexec(fd: impl AsFd) -> bool {
        // SAFETY: F_GETFD takes no pointer.
        let flags = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    }

    #[test]
    fn set_nonblocking_sets_and_clears() {
        let (r, _w) = pipe(false).unwrap();
        assert!(!is_nonblocking(&r));
        set_nonblocking(&r, true).unwrap();
        assert!(is_nonblocking(&r));
        set_nonblocking(&r, false).unwrap();
        assert!(!is_nonblocking(&r));
    }

    #[test]
    fn pipes_and_pairs_are_close_on_exec_and_blocking_as_asked() {
        for nonblocking in [false, true] {
            let (r, w) = pipe(nonblocking).unwrap();
            let (a, b) = unix_pair(nonblocking).unwrap();
            for fd in [r.as_fd(), w.as_fd(), a.as_fd(), b.as_fd()] {
                assert!(is_cloexec(fd));
                assert_eq!(is_nonblocking(fd), nonblocking);
            }
            let (mut a, mut b) = (a, b);
            a.set_nonblocking(false).unwrap();
            b.set_nonblocking(false).unwrap();
            a.write_all(b"ab").unwrap();
            let mut got = [0; 2];
            b.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ab");
        }
    }

    #[test]
    fn a_tcp_listener_is_on_loopback_and_blocking_as_asked() {
        for nonblocking in [false, true] {
            let (l, addr) = tcp_listener(nonblocking).unwrap();
            assert_eq!(l.local_addr().unwrap(), addr);
            assert!(addr.ip().is_loopback() && addr.port() != 0);
            assert_eq!(is_nonblocking(&l), nonblocking);
        }
    }

    #[test]
    fn a_tcp_pair_is_connected_both_ways_without_delay() {
        let (mut client, mut server) = tcp_pair().unwrap();
        assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        assert!(client.nodelay().unwrap() && server.nodelay().unwrap());
        assert!(!is_nonblocking(&client) && !is_nonblocking(&server));
        client.write_all(b"up").unwrap();
        server.write_all(b"down").unwrap();
        let (mut up, mut down) = ([0; 2], [0; 4]);
        server.read_exact(&mut up).unwrap();
        client.read_exact(&mut down).unwrap();
        assert_eq!((&up, &down), (b"up", b"down"));
    }

    #[test]
    fn a_reset_is_econnreset_for_the_peer() {
        let (client, mut server) = tcp_pair().unwrap();
        close_with_reset(client).unwrap();
        let e = server.read(&mut [0; 8]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET), "{e}");
        let (r, _w) = pipe(false).unwrap();
        let e = close_with_reset(r).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSOCK));
    }

    #[test]
    fn fill_leaves_no_room_at_all() {
        let (r, w) = pipe(true).unwrap();
        let n = fill(&w).unwrap();
        assert!(n > 0);
        // SAFETY: one readable byte.
        let rc = unsafe { libc::write(w.as_raw_fd(), [0u8].as_ptr().cast(), 1) };
        assert_eq!(rc, -1);
        let mut got = vec![0u8; n];
        File::from(r).read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&b| b == FILLER));
        let (a, _b) = unix_pair(false).unwrap();
        set_nonblocking(&a, true).unwrap();
        assert!(fill(&a).unwrap() > 0);
    }

    #[test]
    fn a_temp_file_holds_its_contents_from_the_start_and_has_no_name() {
        let mut f = temp_file(b"contents").unwrap();
        let mut got = String::new();
        f.read_to_string(&mut got).unwrap();
        assert_eq!(got, "contents");
        f.write_all(b"!").unwrap();
        assert_eq!(f.metadata().unwrap().len(), 9);
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!(f.metadata().unwrap().nlink(), 0);
    }

    #[test]
    fn a_scratch_path_is_free_and_goes_with_its_directory() {
        let p = ScratchPath::new("x.sock").unwrap();
        let q = ScratchPath::new("x.sock").unwrap();
        assert_ne!(p.path(), q.path());
        assert!(!p.exists() && p.file_name() == Some("x.sock".as_ref()));
        let dir = p.parent().unwrap().to_owned();
        let _l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        std::fs::write(dir.join("beside"), b"x").unwrap();
        drop(p);
        assert!(!dir.exists());
    }

    #[test]
    fn the_pipe_partner_echoes() {
        for nonblocking in [false, true] {
            let p = PipePartner::spawn(nonblocking).unwrap();
            assert_eq!(is_nonblocking(&p.ping), nonblocking);
            assert_eq!(is_nonblocking(&p.pong), nonblocking);
            let mut w = File::from(p.ping.try_clone().unwrap());
            let mut r = File::from(p.pong.try_clone().unwrap());
            set_nonblocking(&r, false).unwrap();
            w.write_all(b"hello").unwrap();
            drop(w);
            let mut got = [0u8; 5];
            r.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
            drop(r);
            p.finish();
        }
    }
}
