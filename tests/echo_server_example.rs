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
const ROUNDS: usize = 5;

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

    // Every client sends first, so that the group runs dry; each message
    // is longer than a buffer.
    let message = |i: usize| format!("connection {i:04} says hello, {}", "x".repeat(i % 23));
    let mut clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            let mut c = TcpStream::connect(addr).expect("connect");
            // A stall fails the test instead of hanging it.
            c.set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            c.write_all(message(i).as_bytes()).expect("send");
            c
        })
        .collect();
    let mut total = 0;
    for (i, c) in clients.iter_mut().enumerate() {
        let want = message(i).into_bytes();
        let mut got = vec![0; want.len()];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("connection {i} got no full echo: {e}"));
        assert_eq!(got, want, "connection {i}");
        total += want.len() as u64;
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
