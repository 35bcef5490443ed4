//! An echo server written with async/await on kqring's proactor: a
//! multishot accept as a stream, one future per connection that reads
//! into its own buffer and writes it back, all run by kqring's `block_on`
//! (no executor crate).
//!
//! ```sh
//! cargo run --release --example async_echo_server -- --port 7000
//! ```
//!
//! Options: `--host ADDR` (default 127.0.0.1), `--port N` (default 0: any
//! free port, printed), `--inline` (drive the ring on this thread inside
//! `block_on` instead of on a polling thread). Ctrl-C (SIGINT) or SIGTERM
//! exits cleanly.

mod common;

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use kqring::Ring;
use kqring::proactor::{File, Proactor, TcpListener, TcpStream};

/// Echoes what `conn` sends until it closes.
async fn echo(conn: TcpStream) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (n, b) = conn.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let (res, b) = conn.write_all(b).await;
        res?;
        buf = b;
    }
}

async fn serve(io: &Proactor, addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(io, addr)?;
    println!("echo server listening on {}", listener.local_addr()?);
    // SIGINT/SIGTERM make the pipe readable: a read of it is the stop.
    let (signals, _w) = common::signal_pipe()?;
    let signals = File::from_fd(io, signals);
    let mut stop = std::pin::pin!(signals.read(Vec::with_capacity(1)).fuse());
    let mut incoming = listener.incoming();
    let mut conns = FuturesUnordered::new();
    loop {
        futures::select_biased! {
            _ = stop => break,
            conn = incoming.next().fuse() => match conn {
                Some(Ok((conn, _peer))) => conns.push(echo(conn)),
                Some(Err(e)) => eprintln!("accept: {e}"),
                // The multishot accept ended: start another.
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
    // Dropping the connections' futures cancels their operations; the
    // streams close through the ring.
    Ok(())
}

fn main() -> io::Result<()> {
    let (addr, mode) = common::address_and_mode("async_echo_server");
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
