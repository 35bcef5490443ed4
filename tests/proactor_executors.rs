//! The same programs under every executor: tokio's current-thread and
//! multi-thread runtimes, `futures::executor`, smol's executor, and
//! kqring's own `block_on` (on an inline ring, which it turns, and on a
//! polling-thread ring). The futures need only wakers; the polling thread
//! completes them under the other executors. Each runs on a ring without
//! a file table and on one whose table holds some of the types' slots.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use kqring::Ring;
use kqring::proactor::{Proactor, TcpListener, TcpStream};

const CLIENTS: usize = 8;
const ROUNDS: usize = 20;

/// An echo server's connection: reads and writes back until the end.
async fn echo(conn: TcpStream) -> io::Result<u64> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut total = 0;
    loop {
        buf.clear();
        let (n, b) = conn.read(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(total);
        }
        let (res, b) = conn.write_all(b).await;
        res?;
        buf = b;
        total += n as u64;
    }
}

/// A client: `ROUNDS` request/response round trips, each checked byte for
/// byte.
async fn client(io: Proactor, addr: SocketAddr, id: usize) -> io::Result<()> {
    let conn = TcpStream::connect(&io, addr).await?;
    let mut reply = Vec::with_capacity(64);
    for round in 0..ROUNDS {
        let msg = format!("client {id} round {round}").into_bytes();
        let (res, msg) = conn.write_all(msg).await;
        res?;
        reply.clear();
        while reply.len() < msg.len() {
            let (n, r) = conn.read(reply).await;
            reply = r;
            if n? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        assert_eq!(reply, msg);
    }
    // A timer and a timeout work here too.
    io.sleep(Duration::from_millis(1)).await?;
    let (res, _) = conn
        .read(Vec::with_capacity(1))
        .timeout(Duration::from_millis(5))
        .await;
    assert_eq!(
        res.map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::TimedOut)
    );
    Ok(())
}

/// The whole program without spawning: a server accepting `CLIENTS`
/// connections from a multishot accept and echoing them, and the clients,
/// all joined in one task.
async fn joined(io: Proactor) -> io::Result<()> {
    let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = async {
        let conns: Vec<_> = listener.incoming().take(CLIENTS).collect().await;
        let echoes = conns.into_iter().map(|c| async { echo(c?.0).await });
        let totals = futures::future::try_join_all(echoes).await?;
        assert!(totals.iter().all(|&t| t > 0));
        Ok::<(), io::Error>(())
    };
    let clients =
        futures::future::try_join_all((0..CLIENTS).map(|id| client(io.clone(), addr, id)));
    let (s, c) = futures::join!(server, clients);
    s?;
    c?;
    Ok(())
}

/// The file table's slots in the rings that have one: fewer than a
/// program's listener and 16 connections, so some types take a slot and
/// the rest work on their descriptors.
const SLOTS: u32 = 12;

/// A polling-thread ring without a file table, then one with a table
/// where the types take slots.
fn polling_rings() -> [Ring; 2] {
    [0, SLOTS].map(|files| Ring::builder().files(files).build().expect("ring"))
}

#[test]
fn kqring_block_on_turns_an_inline_ring() {
    for files in [0, SLOTS] {
        let ring = Ring::builder().inline().files(files).build().expect("ring");
        let io = ring.proactor();
        io.block_on(joined(io.clone())).expect("program");
    }
}

#[test]
fn kqring_block_on_with_a_polling_thread() {
    for ring in polling_rings() {
        let io = ring.proactor();
        io.block_on(joined(io.clone())).expect("program");
    }
}

#[test]
fn tokio_current_thread() {
    for ring in polling_rings() {
        let io = ring.proactor();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(joined(io)).expect("program");
    }
}

#[test]
fn tokio_multi_thread_with_spawned_tasks() {
    for ring in polling_rings() {
        let io = ring.proactor();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            // The server accepts on one task and echoes each connection on a
            // task of its own: futures move between worker threads.
            let server = tokio::spawn(async move {
                let mut incoming = listener.incoming();
                let mut echoes = Vec::new();
                for _ in 0..CLIENTS {
                    let (conn, _) = incoming.next().await.expect("a connection")?;
                    echoes.push(tokio::spawn(echo(conn)));
                }
                for e in echoes {
                    e.await.expect("echo task")?;
                }
                Ok::<(), io::Error>(())
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|id| tokio::spawn(client(io.clone(), addr, id)))
                .collect();
            for c in clients {
                c.await.expect("client task")?;
            }
            server.await.expect("server task")
        })
        .expect("program");
    }
}

#[test]
fn futures_executor_block_on_and_local_pool() {
    for ring in polling_rings() {
        let io = ring.proactor();
        futures::executor::block_on(joined(io.clone())).expect("program");
        let mut pool = futures::executor::LocalPool::new();
        pool.run_until(joined(io)).expect("program");
    }
}

#[test]
fn smol_executor() {
    for ring in polling_rings() {
        let io = ring.proactor();
        smol::block_on(joined(io.clone())).expect("program");
        let ex = smol::Executor::new();
        smol::block_on(ex.run(async {
            let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            let server = ex.spawn(async move {
                for _ in 0..CLIENTS {
                    let (conn, _) = listener.accept().await?;
                    echo(conn).await?;
                }
                Ok::<(), io::Error>(())
            });
            for id in 0..CLIENTS {
                ex.spawn(client(io.clone(), addr, id)).await?;
            }
            server.await
        }))
        .expect("program");
    }
}
