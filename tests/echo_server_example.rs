//! examples/echo_server.rs: its server, run here as the example runs it,
//! with a buffer group far smaller than the connections: every connection
//! is served, byte for byte, and the server exits when they have closed.

#[path = "../examples/echo_server.rs"]
#[allow(dead_code)]
mod example;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Connections at once, against two 16-byte buffers.
const CONNECTIONS: usize = 200;
/// Rounds of a message per connection.
const ROUNDS: usize = 5;

/// Round `round`'s message of connection `i`: longer than a buffer.
fn message(round: usize, i: usize) -> Vec<u8> {
    format!(
        "round {round} connection {i:04} says hello, {}",
        "x".repeat(i % 23)
    )
    .into_bytes()
}

#[test]
fn a_small_group_serves_every_connection() {
    let (stop_r, _stop_w) = std::io::pipe().expect("pipe");
    let (addr_tx, addr_rx) = mpsc::channel();
    let opts = example::Options {
        addr: "127.0.0.1:0".parse().expect("address"),
        buffers: 2,
        buffer_size: 16,
        files: 1024,
        max_conns: Some(CONNECTIONS as u64),
    };
    let server = thread::spawn(move || {
        example::serve(opts, stop_r.into(), |addr| {
            let _ = addr_tx.send(addr);
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server listens");

    let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let c = TcpStream::connect(addr).expect("connect");
            // A stall fails the test instead of hanging it.
            c.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            c
        })
        .collect();
    let mut total = 0;
    for round in 0..ROUNDS {
        // Every client sends first, so that the group runs dry.
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&message(round, i)).expect("send");
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let want = message(round, i);
            let mut got = vec![0; want.len()];
            c.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("round {round}: connection {i} got no full echo: {e}"));
            assert_eq!(got, want, "round {round}, connection {i}");
            total += want.len() as u64;
        }
    }
    drop(clients);
    let counters = server
        .join()
        .expect("the server thread")
        .expect("the server runs");
    assert_eq!(counters.accepted, CONNECTIONS as u64);
    assert_eq!(counters.closed, CONNECTIONS as u64);
    assert_eq!(counters.bytes, total);
}
