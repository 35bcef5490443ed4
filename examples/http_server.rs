//! A minimal HTTP/1.1 keep-alive server, proactor style: a multishot
//! accept, and per connection one owned receive buffer that goes into each
//! `Recv` and comes back with its completion. Every request gets the same
//! fixed body; pipelined requests are answered in one send.
//!
//! ```sh
//! cargo run --release --example http_server -- --port 8080
//! wrk -t2 -c100 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Options: `--host ADDR` (default 127.0.0.1), `--port N` (default 0: any
//! free port, printed), `--inline` (drive the ring on this thread instead
//! of a polling thread). Ctrl-C (SIGINT) or SIGTERM exits cleanly.

mod common;

use common::{listen, push, signal_pipe};

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use bytes::{Buf, Bytes, BytesMut};
use kqring::ops::{Accept, AsyncCancel, Close, Read, Recv, Send};
use kqring::{Cqe, Ring};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: kqring\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

/// A connection's receive buffer, and the most a request head may take.
const BUF_SIZE: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Stop = 5,
    Setup = 6,
}

fn ud(kind: Kind, fd: RawFd) -> u64 {
    (kind as u64) << 56 | u64::from(fd as u32)
}

fn parse_ud(ud: u64) -> (Option<Kind>, RawFd) {
    let kind = match ud >> 56 {
        1 => Some(Kind::Accept),
        2 => Some(Kind::Recv),
        3 => Some(Kind::Send),
        4 => Some(Kind::Close),
        5 => Some(Kind::Stop),
        6 => Some(Kind::Setup),
        _ => None,
    };
    (kind, ud as u32 as RawFd)
}

/// The complete request heads at the front of `buf`: how many, how many
/// bytes they take, and whether one asked to close the connection.
fn requests(buf: &[u8]) -> (usize, usize, bool) {
    let (mut n, mut used, mut close) = (0, 0, false);
    while let Some(end) = buf[used..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &buf[used..used + end];
        close |= head
            .split(|&b| b == b'\n')
            .any(|line| line.to_ascii_lowercase().starts_with(b"connection: close"));
        n += 1;
        used += end + 4;
    }
    (n, used, close)
}

struct Conn {
    fd: OwnedFd,
    /// Close once the responses in flight are sent.
    closing: bool,
    /// A send is in flight: one at a time, so a short send's rest goes out
    /// before anything later.
    sending: bool,
    /// Responses owed once the send in flight is done.
    queued: usize,
}

struct Server {
    ring: Ring,
    conns: HashMap<RawFd, Conn>,
    listener: RawFd,
    accepting: bool,
    stopping: bool,
    requests: u64,
    /// `RESPONSE` repeated, sliced for a batch of pipelined requests.
    responses: Bytes,
}

impl Server {
    fn arm_accept(&mut self, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        self.accepting = true;
        let sqe = Accept::new(self.listener)
            .multishot(true)
            .build()
            .user_data(ud(Kind::Accept, self.listener));
        push(&self.ring, sqe, backlog)
    }

    fn recv(&mut self, fd: RawFd, buf: BytesMut, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        push(
            &self.ring,
            Recv::new(fd, buf).build().user_data(ud(Kind::Recv, fd)),
            backlog,
        )
    }

    fn close(&mut self, fd: RawFd, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        if let Some(conn) = self.conns.remove(&fd) {
            let raw = conn.fd.into_raw_fd();
            push(
                &self.ring,
                Close::new(raw).build().user_data(ud(Kind::Close, raw)),
                backlog,
            )?;
        }
        Ok(())
    }

    fn on_cqe(&mut self, mut cqe: Cqe, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        let (kind, fd) = parse_ud(cqe.user_data());
        match kind {
            Some(Kind::Accept) => {
                if cqe.result() >= 0 {
                    // SAFETY: the accepted descriptor is ours alone.
                    let conn = unsafe { OwnedFd::from_raw_fd(cqe.result()) };
                    let fd = conn.as_raw_fd();
                    self.conns.insert(
                        fd,
                        Conn {
                            fd: conn,
                            closing: false,
                            sending: false,
                            queued: 0,
                        },
                    );
                    if self.stopping {
                        self.close(fd, backlog)?;
                    } else {
                        self.recv(fd, BytesMut::with_capacity(BUF_SIZE), backlog)?;
                    }
                } else if cqe.result() != -libc::ECANCELED {
                    eprintln!("accept: {}", io::Error::from_raw_os_error(-cqe.result()));
                }
                if !cqe.is_more() {
                    self.accepting = false;
                    if !self.stopping && cqe.result() != -libc::ECANCELED {
                        self.arm_accept(backlog)?;
                    }
                }
            }
            Some(Kind::Recv) => {
                let buf = cqe.take_buf::<BytesMut>().ok();
                let (Some(mut buf), true) = (buf, cqe.result() > 0) else {
                    // End of stream, an error, or cancelled: done.
                    return self.close(fd, backlog);
                };
                let (n, used, close) = requests(&buf);
                buf.advance(used);
                if n > 0 {
                    self.requests += n as u64;
                    self.respond(fd, n, backlog)?;
                }
                if close || self.stopping {
                    match self.conns.get_mut(&fd) {
                        Some(c) if c.sending => c.closing = true,
                        _ => self.close(fd, backlog)?,
                    }
                    return Ok(());
                }
                if buf.capacity() - buf.len() < BUF_SIZE / 4 {
                    if buf.len() > BUF_SIZE / 2 {
                        // A request head that does not fit: give up on it.
                        return self.close(fd, backlog);
                    }
                    // Move the partial request to a fresh buffer.
                    let mut fresh = BytesMut::with_capacity(BUF_SIZE);
                    fresh.extend_from_slice(&buf);
                    buf = fresh;
                }
                self.recv(fd, buf, backlog)?;
            }
            Some(Kind::Send) => {
                let sent = cqe.result();
                let body = cqe.take_buf::<Bytes>().ok().unwrap_or_default();
                let Some(c) = self.conns.get_mut(&fd) else {
                    return Ok(());
                };
                if sent < 0 {
                    return self.close(fd, backlog);
                }
                if (sent as usize) < body.len() {
                    // A short send: the rest, before anything later.
                    let sqe = Send::new(fd, body.slice(sent as usize..))
                        .build()
                        .user_data(ud(Kind::Send, fd));
                    return push(&self.ring, sqe, backlog);
                }
                c.sending = false;
                let queued = std::mem::take(&mut c.queued);
                if queued > 0 {
                    self.respond(fd, queued, backlog)?;
                } else if c.closing {
                    self.close(fd, backlog)?;
                }
            }
            Some(Kind::Stop) => self.stop(backlog)?,
            Some(Kind::Close) | Some(Kind::Setup) | None => {}
        }
        Ok(())
    }

    /// Sends `n` responses, or owes them until the send in flight is done.
    fn respond(&mut self, fd: RawFd, n: usize, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        let Some(c) = self.conns.get_mut(&fd) else {
            return Ok(());
        };
        if c.sending {
            c.queued += n;
            return Ok(());
        }
        c.sending = true;
        let body = self.batch(n);
        push(
            &self.ring,
            Send::new(fd, body).build().user_data(ud(Kind::Send, fd)),
            backlog,
        )
    }

    /// `n` responses in one buffer, sharing the prepared copies.
    fn batch(&mut self, n: usize) -> Bytes {
        let want = n * RESPONSE.len();
        if want > self.responses.len() {
            self.responses = Bytes::from(RESPONSE.repeat(n.next_power_of_two()));
        }
        self.responses.slice(..want)
    }

    fn stop(&mut self, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        self.stopping = true;
        if self.accepting {
            let sqe = AsyncCancel::new(ud(Kind::Accept, self.listener))
                .build()
                .user_data(ud(Kind::Setup, 0));
            push(&self.ring, sqe, backlog)?;
        }
        let fds: Vec<RawFd> = self.conns.keys().copied().collect();
        for fd in fds {
            self.close(fd, backlog)?;
        }
        Ok(())
    }
}

fn main() -> io::Result<()> {
    let (addr, mode) = common::address_and_mode("http_server");
    let ring = Ring::builder().mode(mode).sq_entries(4096).build()?;
    let (signals, _signals_w) = signal_pipe()?;

    let listener = listen(&ring, addr, 4096, ud(Kind::Setup, 0))?;
    let lfd = listener.as_raw_fd();
    println!(
        "http server listening on http://{}/",
        listener.local_addr()?
    );

    let mut server = Server {
        ring,
        conns: HashMap::new(),
        listener: lfd,
        accepting: false,
        stopping: false,
        requests: 0,
        responses: Bytes::from_static(RESPONSE),
    };
    let mut backlog = Vec::new();
    server.arm_accept(&mut backlog)?;
    let stop = Read::new(signals.as_raw_fd(), BytesMut::with_capacity(8))
        .build()
        .user_data(ud(Kind::Stop, signals.as_raw_fd()));
    push(&server.ring, stop, &mut backlog)?;

    loop {
        match server.ring.submission().submit_and_wait(1) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        let mut cqes = std::mem::take(&mut backlog);
        cqes.extend(server.ring.completion().drain());
        for cqe in cqes {
            server.on_cqe(cqe, &mut backlog)?;
        }
        if server.stopping && !server.accepting && server.conns.is_empty() && backlog.is_empty() {
            break;
        }
    }
    println!("http server done: {} requests answered", server.requests);
    drop(server);
    Ok(())
}
