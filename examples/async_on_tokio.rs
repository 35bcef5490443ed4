//! kqring's futures on tokio's executor: a polling-thread ring completes
//! the futures (its thread is the driver), tokio's multi-thread runtime
//! runs the tasks — an echo server with a task per connection, and a
//! client that checks the echo.
//!
//! ```sh
//! cargo run --release --example async_on_tokio
//! ```

use std::io;

use futures::StreamExt;
use kqring::Ring;
use kqring::proactor::{TcpListener, TcpStream};

async fn echo(conn: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
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

fn main() -> io::Result<()> {
    // The default ring: a polling thread drives it, so tokio's workers
    // never block on it.
    let ring = Ring::new(1024)?;
    let io = ring.proactor();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        println!("echo server on {addr}, on tokio's executor");
        tokio::spawn(async move {
            let mut incoming = listener.incoming();
            while let Some(conn) = incoming.next().await {
                match conn {
                    Ok((conn, _peer)) => {
                        tokio::spawn(async move {
                            if let Err(e) = echo(conn).await {
                                eprintln!("connection: {e}");
                            }
                        });
                    }
                    Err(e) => eprintln!("accept: {e}"),
                }
            }
        });
        let clients: Vec<_> = (0..4)
            .map(|i| {
                let io = io.clone();
                tokio::spawn(async move {
                    let conn = TcpStream::connect(&io, addr).await?;
                    let msg = format!("hello from client {i}").into_bytes();
                    let (res, msg) = conn.write_all(msg).await;
                    res?;
                    let mut got = Vec::with_capacity(64);
                    while got.len() < msg.len() {
                        let (n, g) = conn.read(got).await;
                        got = g;
                        if n? == 0 {
                            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                        }
                    }
                    assert_eq!(got, msg);
                    println!("client {i}: {}", String::from_utf8_lossy(&got));
                    Ok::<(), io::Error>(())
                })
            })
            .collect();
        for c in clients {
            c.await.map_err(io::Error::other)??;
        }
        Ok(())
    })
}
