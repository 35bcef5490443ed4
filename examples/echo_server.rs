//! A proactor echo server: one multishot accept that puts each connection
//! into the ring's file table, one multishot receive per connection over a
//! provided buffer group, and a send of each received buffer, whose
//! completion hands the buffer back to the group. Idle connections hold no
//! buffer, and their sockets are the ring's own (registered files), so its
//! readiness registrations stay in place between messages.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 0      # prints the address
//! nc 127.0.0.1 <port>
//! ```
//!
//! Options: `--host ADDR` (default 127.0.0.1), `--port N` (default 0: any
//! free port), `--buffers N` and `--buffer-size B` (the group, default 256
//! of 4096 bytes), `--files N` (the file table: connections open at once,
//! default 4096), `--max-conns N` (exit after N connections have closed).
//! Ctrl-C (SIGINT) or SIGTERM exits cleanly: the ring is dropped, which
//! cancels what is in flight and returns every buffer.

mod common;

use common::{listen, push, signal_pipe};

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use bytes::{Bytes, BytesMut};
use kqring::ops::{Accept, AsyncCancel, Close, FileSlot, Fixed, ProvideBuffers, Read, Recv, Send};
use kqring::{Cqe, Ring, Sqe};

const GROUP: u16 = 1;

/// What a completion belongs to: the kind in the top byte of `user_data`,
/// for a send the connection's generation in the next byte, a buffer id in
/// the next 16 bits, the descriptor or file-table slot in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Provide = 5,
    Stop = 6,
    Setup = 7,
    /// The rest of a short send, in a buffer of its own.
    SendRest = 8,
}

fn ud(kind: Kind, bid: u16, fd: RawFd) -> u64 {
    (kind as u64) << 56 | u64::from(bid) << 32 | u64::from(fd as u32)
}

/// A send's `user_data`: `generation` tells the connection in `slot` from
/// a later one in the same slot, which a send that completes after its
/// connection's close must leave alone.
fn send_ud(kind: Kind, bid: u16, slot: u32, generation: u8) -> u64 {
    ud(kind, bid, slot as RawFd) | u64::from(generation) << 48
}

fn parse_ud(ud: u64) -> (Option<Kind>, u16, RawFd) {
    let kind = match ud >> 56 {
        1 => Some(Kind::Accept),
        2 => Some(Kind::Recv),
        3 => Some(Kind::Send),
        4 => Some(Kind::Close),
        5 => Some(Kind::Provide),
        6 => Some(Kind::Stop),
        7 => Some(Kind::Setup),
        8 => Some(Kind::SendRest),
        _ => None,
    };
    (kind, (ud >> 32) as u16, ud as u32 as RawFd)
}

/// The server's settings (the command line's options).
pub struct Options {
    pub addr: SocketAddr,
    pub buffers: u16,
    pub buffer_size: usize,
    pub files: u32,
    pub max_conns: Option<u64>,
}

fn options() -> Result<Options, String> {
    let mut host: IpAddr = [127, 0, 0, 1].into();
    let mut port = 0u16;
    let mut buffers = 256u16;
    let mut buffer_size = 4096usize;
    let mut files = 4096u32;
    let mut max_conns = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => {
                host = value("--host")?
                    .parse()
                    .map_err(|e| format!("--host: {e}"))?
            }
            "--port" => {
                port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--buffers" => {
                buffers = value("--buffers")?
                    .parse()
                    .map_err(|e| format!("--buffers: {e}"))?;
            }
            "--buffer-size" => {
                buffer_size = value("--buffer-size")?
                    .parse()
                    .map_err(|e| format!("--buffer-size: {e}"))?;
            }
            "--files" => {
                files = value("--files")?
                    .parse()
                    .map_err(|e| format!("--files: {e}"))?;
            }
            "--max-conns" => {
                max_conns = Some(
                    value("--max-conns")?
                        .parse()
                        .map_err(|e| format!("--max-conns: {e}"))?,
                );
            }
            "-h" | "--help" => {
                return Err("usage: echo_server [--host ADDR] [--port N] [--buffers N] \
                            [--buffer-size B] [--files N] [--max-conns N]"
                    .into());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if buffers == 0 || buffer_size == 0 || files == 0 {
        return Err("--buffers, --buffer-size and --files must be positive".into());
    }
    Ok(Options {
        addr: SocketAddr::new(host, port),
        buffers,
        buffer_size,
        files,
        max_conns,
    })
}

/// Runs one setup operation and checks its result.
fn setup(ring: &Ring, sqe: Sqe, what: &str) -> io::Result<i32> {
    common::setup(ring, sqe.user_data(ud(Kind::Setup, 0, 0)), what)
}

/// What the server did.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: u64,
    pub closed: u64,
    pub bytes: u64,
}

struct Server {
    ring: Ring,
    /// The file-table slots of open connections, with each one's
    /// generation.
    conns: HashMap<u32, u8>,
    next_generation: u8,
    /// Connections whose receive ended with ENOBUFS: re-armed as buffers
    /// come back, one per buffer.
    starved: Vec<u32>,
    /// Buffers in the group, as the completions tell: taken by a receive,
    /// back once their `ProvideBuffers` completes.
    in_group: u32,
    accepting: bool,
    stopping: bool,
    listener: RawFd,
    counters: Counters,
    max_conns: Option<u64>,
}

impl Server {
    fn arm_accept(&mut self, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        self.accepting = true;
        let sqe = Accept::new(self.listener)
            .multishot(true)
            .peer_addr(true)
            .file_index(FileSlot::Alloc)
            .build()
            .user_data(ud(Kind::Accept, 0, self.listener));
        push(&self.ring, sqe, backlog)
    }

    fn arm_recv(&mut self, slot: u32, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        let sqe = Recv::select(Fixed(slot), GROUP)
            .multishot(true)
            .build()
            .user_data(ud(Kind::Recv, 0, slot as RawFd));
        push(&self.ring, sqe, backlog)
    }

    fn give_back(&mut self, buf: BytesMut, bid: u16, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        let sqe = ProvideBuffers::one(GROUP, buf, bid)
            .build()
            .user_data(ud(Kind::Provide, bid, 0));
        push(&self.ring, sqe, backlog)
    }

    /// Re-arms a starved connection per buffer in the group. A connection
    /// starves with data waiting, so its receive takes a buffer at once;
    /// should another connection take it first, it starves again and waits
    /// for the next buffer back. Every buffer back must re-arm one: a
    /// receive that ran dry after the last buffer came back would
    /// otherwise wait for good.
    fn feed_starved(&mut self, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        let mut spare = self.in_group;
        while spare > 0 {
            let Some(slot) = self.starved.pop() else {
                break;
            };
            self.arm_recv(slot, backlog)?;
            spare -= 1;
        }
        Ok(())
    }

    fn close(&mut self, slot: u32, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        if self.conns.remove(&slot).is_some() {
            // Emptying the slot closes the socket once the operations
            // still on it (its multishot receive) have completed; cancel
            // that one so it does.
            let recv = AsyncCancel::new(ud(Kind::Recv, 0, slot as RawFd))
                .build()
                .user_data(ud(Kind::Setup, 0, 0));
            push(&self.ring, recv, backlog)?;
            let close =
                Close::new(Fixed(slot))
                    .build()
                    .user_data(ud(Kind::Close, 0, slot as RawFd));
            push(&self.ring, close, backlog)?;
        }
        Ok(())
    }

    fn on_cqe(&mut self, mut cqe: Cqe, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        let (kind, bid, fd) = parse_ud(cqe.user_data());
        // For a connection's operations, the low bits are its slot; a
        // send's also carry the connection's generation.
        let slot = fd as u32;
        let generation = (cqe.user_data() >> 48) as u8;
        let current = self.conns.get(&slot) == Some(&generation);
        match kind {
            Some(Kind::Accept) => {
                if cqe.result() >= 0 {
                    self.counters.accepted += 1;
                    let slot = cqe.result() as u32;
                    if let Some(peer) = cqe.socket_addr() {
                        println!("accepted {peer} (slot {slot})");
                    }
                    self.next_generation = self.next_generation.wrapping_add(1);
                    self.conns.insert(slot, self.next_generation);
                    if self.stopping {
                        self.close(slot, backlog)?;
                    } else {
                        self.arm_recv(slot, backlog)?;
                    }
                } else if cqe.result() != -libc::ECANCELED {
                    eprintln!("accept: {}", io::Error::from_raw_os_error(-cqe.result()));
                }
                if !cqe.is_more() {
                    self.accepting = false;
                    // EMFILE, ENFILE (a full table) and friends end a
                    // multishot accept: start again, unless shutting down.
                    if !self.stopping && cqe.result() != -libc::ECANCELED {
                        self.arm_accept(backlog)?;
                    }
                }
            }
            Some(Kind::Recv) => {
                if cqe.result() > 0 {
                    self.in_group = self.in_group.saturating_sub(1);
                    self.counters.bytes += cqe.result() as u64;
                    let buf = cqe.take_buf::<BytesMut>().ok();
                    match (buf, cqe.buffer_id(), self.conns.get(&slot)) {
                        (Some(buf), Some(bid), Some(&generation)) => {
                            let sqe = Send::new(Fixed(slot), buf).build().user_data(send_ud(
                                Kind::Send,
                                bid,
                                slot,
                                generation,
                            ));
                            push(&self.ring, sqe, backlog)?;
                        }
                        // The connection is closing: the group gets the
                        // buffer back at once.
                        (Some(buf), Some(bid), None) => self.give_back(buf, bid, backlog)?,
                        _ => {}
                    }
                }
                if !cqe.is_more() {
                    match cqe.result() {
                        r if r == -libc::ENOBUFS && !self.stopping => {
                            self.starved.push(slot);
                            self.feed_starved(backlog)?;
                        }
                        r if r > 0 && !self.stopping => self.arm_recv(slot, backlog)?,
                        _ => self.close(slot, backlog)?,
                    }
                }
            }
            Some(Kind::Send) => {
                let Some(buf) = cqe.take_buf::<BytesMut>().ok() else {
                    return Ok(());
                };
                let sent = cqe.result();
                if sent >= 0 && (sent as usize) < buf.len() && current {
                    // A short send (rare): the rest goes in a copy, so the
                    // group gets its whole buffer back now. Sends on one
                    // socket complete in order.
                    let rest = Bytes::copy_from_slice(&buf[sent as usize..]);
                    let sqe = Send::new(Fixed(slot), rest).build().user_data(send_ud(
                        Kind::SendRest,
                        0,
                        slot,
                        generation,
                    ));
                    push(&self.ring, sqe, backlog)?;
                } else if sent < 0 && current {
                    self.close(slot, backlog)?;
                }
                self.give_back(buf, bid, backlog)?;
            }
            Some(Kind::SendRest) => {
                let sent = cqe.result();
                let rest = cqe.take_buf::<Bytes>().ok().unwrap_or_default();
                if sent < 0 && current {
                    self.close(slot, backlog)?;
                } else if (sent as usize) < rest.len() && current {
                    let sqe = Send::new(Fixed(slot), rest.slice(sent as usize..))
                        .build()
                        .user_data(send_ud(Kind::SendRest, 0, slot, generation));
                    push(&self.ring, sqe, backlog)?;
                }
            }
            Some(Kind::Close) => {
                self.counters.closed += 1;
                self.starved.retain(|&s| s != slot);
                if self.max_conns.is_some_and(|m| self.counters.closed >= m) {
                    self.stop(backlog)?;
                }
            }
            Some(Kind::Provide) => {
                if cqe.result() >= 0 {
                    self.in_group += 1;
                    self.feed_starved(backlog)?;
                } else {
                    eprintln!(
                        "provide buffers: {}",
                        io::Error::from_raw_os_error(-cqe.result())
                    );
                }
            }
            Some(Kind::Stop) => self.stop(backlog)?,
            Some(Kind::Setup) | None => {}
        }
        Ok(())
    }

    fn stop(&mut self, backlog: &mut Vec<Cqe>) -> io::Result<()> {
        if self.stopping {
            return Ok(());
        }
        self.stopping = true;
        if self.accepting {
            let sqe = AsyncCancel::new(ud(Kind::Accept, 0, self.listener))
                .build()
                .user_data(ud(Kind::Setup, 0, 0));
            push(&self.ring, sqe, backlog)?;
        }
        let slots: Vec<u32> = self.conns.keys().copied().collect();
        for slot in slots {
            self.close(slot, backlog)?;
        }
        Ok(())
    }

    /// Whether anything is still to come back before exiting: the accept,
    /// or a connection not yet closed.
    fn busy(&self) -> bool {
        self.accepting || !self.conns.is_empty()
    }
}

fn main() -> io::Result<()> {
    let opts = match options() {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    let (signals, _signals_w) = signal_pipe()?;
    let c = serve(opts, signals, |addr| {
        println!("echo server listening on {addr}")
    })?;
    println!(
        "echo server done: {} connections, {} bytes echoed",
        c.accepted, c.bytes
    );
    Ok(())
}

/// Serves until `stop` becomes readable or `max_conns` connections have
/// closed; `listening` is told the bound address first.
pub fn serve(
    opts: Options,
    stop: OwnedFd,
    listening: impl FnOnce(SocketAddr),
) -> io::Result<Counters> {
    let ring = Ring::builder().sq_entries(1024).files(opts.files).build()?;
    let listener = listen(&ring, opts.addr, 1024, ud(Kind::Setup, 0, 0))?;
    let lfd = listener.as_raw_fd();
    let bufs = (0..opts.buffers)
        .map(|_| BytesMut::with_capacity(opts.buffer_size))
        .collect();
    setup(
        &ring,
        ProvideBuffers::new(GROUP, bufs, 0).build(),
        "provide buffers",
    )?;
    listening(listener.local_addr()?);

    let mut server = Server {
        ring,
        conns: HashMap::new(),
        next_generation: 0,
        starved: Vec::new(),
        in_group: u32::from(opts.buffers),
        accepting: false,
        stopping: false,
        listener: lfd,
        counters: Counters::default(),
        max_conns: opts.max_conns,
    };
    let mut backlog = Vec::new();
    server.arm_accept(&mut backlog)?;
    let stop = Read::new(stop.as_raw_fd(), BytesMut::with_capacity(8))
        .build()
        .user_data(ud(Kind::Stop, 0, stop.as_raw_fd()));
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
        if server.stopping && !server.busy() && backlog.is_empty() {
            break;
        }
    }
    // Dropping the ring cancels the stop read and returns its buffer.
    let Server { counters, .. } = server;
    Ok(counters)
}
