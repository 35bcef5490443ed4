//! A minimal HTTP/1.1 keep-alive server written with async/await on
//! kqring's proactor: one future per connection, one owned receive buffer
//! that goes into each read and comes back with its result. Every request
//! gets the same fixed body; pipelined requests are answered in one write.
//! Run by kqring's `block_on`; loadable with wrk.
//!
//! ```sh
//! cargo run --release --example async_http_server -- --port 8080
//! wrk -t2 -c100 -d10s http://127.0.0.1:8080/
//! ```
//!
//! Options: `--host ADDR` (default 127.0.0.1), `--port N` (default 0: any
//! free port, printed), `--inline` (drive the ring on this thread inside
//! `block_on`). Ctrl-C (SIGINT) or SIGTERM exits cleanly.

mod common;

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use kqring::Ring;
use kqring::proactor::{File, Proactor, TcpListener, TcpStream};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: kqring\r\n\
Content-Type: text/plain\r\n\
Content-Length: 13\r\n\
\r\n\
Hello, world!";

/// A connection's receive buffer, and the most a request head may take.
const BUF_SIZE: usize = 8192;

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

/// Serves one connection until it closes or asks to.
async fn serve_conn(conn: TcpStream) -> io::Result<()> {
    let one = Bytes::from_static(RESPONSE);
    let mut buf = BytesMut::with_capacity(BUF_SIZE);
    loop {
        let (n, b) = conn.read(buf).await;
        buf = b;
        if n? == 0 {
            return Ok(());
        }
        let (count, used, close) = requests(&buf);
        buf.advance(used);
        if count > 0 {
            // One write for every request that came in this read.
            let reply = if count == 1 {
                one.clone()
            } else {
                Bytes::from(RESPONSE.repeat(count))
            };
            let (res, _) = conn.write_all(reply).await;
            res?;
        }
        if close {
            return Ok(());
        }
        if buf.capacity() - buf.len() < BUF_SIZE / 4 {
            if buf.len() > BUF_SIZE / 2 {
                // A request head that does not fit: give up on it.
                return Ok(());
            }
            let mut fresh = BytesMut::with_capacity(BUF_SIZE);
            fresh.extend_from_slice(&buf);
            buf = fresh;
        }
    }
}

async fn serve(io: &Proactor, addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(io, addr)?;
    println!(
        "http server listening on http://{}/",
        listener.local_addr()?
    );
    let (signals, _w) = common::signal_pipe()?;
    let signals = File::from_fd(io, signals);
    let mut stop = std::pin::pin!(signals.read(Vec::with_capacity(1)).fuse());
    let mut incoming = listener.incoming();
    let mut conns = FuturesUnordered::new();
    loop {
        futures::select_biased! {
            _ = stop => break,
            conn = incoming.next().fuse() => match conn {
                Some(Ok((conn, _peer))) => {
                    conn.set_nodelay(true)?;
                    conns.push(serve_conn(conn));
                }
                Some(Err(e)) => eprintln!("accept: {e}"),
                None => incoming = listener.incoming(),
            },
            done = conns.select_next_some() => {
                if let Err(e) = done {
                    eprintln!("connection: {e}");
                }
            }
        }
    }
    println!("stopping: {} connections open", conns.len());
    Ok(())
}

fn main() -> io::Result<()> {
    let (addr, mode) = common::address_and_mode("async_http_server");
    // A file table: the listener and each connection take a slot, so a
    // connection's idle readiness registration is the ring's own and is
    // not re-added before each wait; past 4095 connections, the rest work
    // on their descriptors. A connection on a slot holds two descriptors
    // (its own and the slot's duplicate): many connections want a higher
    // `ulimit -n`.
    let ring = Ring::builder()
        .mode(mode)
        .sq_entries(4096)
        .files(4096)
        .build()?;
    let io = ring.proactor();
    io.block_on(serve(&io, addr))
}
