//! A fixed number of round trips on an inline ring, through the raw ring or
//! through kqring's futures, for counting what one costs in instructions
//! (`valgrind --tool=callgrind`, `perf stat -e instructions:u`), which a
//! busy machine does not blur as it does time. Run it at two counts and
//! divide the difference by the difference of the counts: the set-up
//! drops out.
//!
//! ```sh
//! cargo build --release -p kqring-bench --example op_count
//! valgrind --tool=callgrind target/release/examples/op_count nop-async 20000
//! ```
//!
//! Workloads: `nop-raw`, `nop-async` (a NOP round trip); `echo-raw`,
//! `echo-async` (a 64-byte TCP echo on one loopback connection, both ends
//! on the ring; the raw ring posts the same operations in the same order
//! as the futures do); `echo-raw-fixed`, `echo-async-fixed`, the same
//! echoes on a ring with a file table, where both ends are registered
//! files (the raw ring's by a `FilesUpdate`, the futures' types by taking
//! a slot each).

use std::net::Shutdown;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use kqring::ops::{Fd, FileSlot, FilesUpdate, Fixed, Nop, Recv, Send};
use kqring::proactor::{RawCqe, TcpStream};
use kqring::{Cqe, Ring, Sqe, SubmissionQueue};
use kqring_bench::fixtures::tcp_pairs;
use kqring_bench::{Result, ensure};

const MSG: usize = 64;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(what), Some(n)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: op_count nop-raw|nop-async|echo-raw|echo-async|echo-raw-fixed|echo-async-fixed COUNT"
                .into(),
        );
    };
    let n: u64 = n.parse()?;
    match what.as_str() {
        "nop-raw" => nop_raw(n),
        "nop-async" => nop_async(n),
        "echo-raw" => echo_raw(n, false),
        "echo-raw-fixed" => echo_raw(n, true),
        "echo-async" => echo_async(n, false),
        "echo-async-fixed" => echo_async(n, true),
        other => Err(format!("no workload {other}").into()),
    }
}

fn ring(entries: usize) -> Result<Ring> {
    Ok(Ring::builder().inline().sq_entries(entries).build()?)
}

fn push(sq: &SubmissionQueue, sqe: Sqe) -> Result<()> {
    sq.push(sqe)
        .map_err(|sqe| format!("submission queue full at {sqe:?}").into())
}

fn nop_raw(n: u64) -> Result<()> {
    let ring = ring(8)?;
    let (sq, cq) = (ring.submission(), ring.completion());
    for i in 0..n {
        push(sq, Nop::new().build().user_data(i))?;
        sq.submit_and_wait(1)?;
        let cqe = cq.pop().ok_or("no completion after submit_and_wait(1)")?;
        ensure!(
            cqe.result() == 0 && cqe.user_data() == i,
            "NOP {i}: {cqe:?}"
        );
    }
    Ok(())
}

fn nop_async(n: u64) -> Result<()> {
    let ring = ring(8)?;
    let io = ring.proactor();
    io.block_on(async {
        for i in 0..n {
            let cqe = io.run(Nop::new().build().user_data(i), RawCqe).await;
            ensure!(
                cqe.result() == 0 && cqe.user_data() == i,
                "NOP {i}: {cqe:?}"
            );
        }
        Ok(())
    })
}

fn message(round: u64) -> Bytes {
    Bytes::from(vec![round as u8; MSG])
}

const CLIENT_SEND: u64 = 0;
const CLIENT_RECV: u64 = 1;
const SERVER_RECV: u64 = 2;
const SERVER_SEND: u64 = 3;

fn io_res(cqe: &Cqe) -> Result<usize> {
    ensure!(cqe.result() >= 0, "failed: {}", cqe.result());
    Ok(cqe.result() as usize)
}

/// The futures' echo as a state machine on the raw ring: the client sends,
/// then receives the echo; the server receives, sends back, receives.
/// `fixed`: both ends go into the ring's file table first.
fn echo_raw(n: u64, fixed: bool) -> Result<()> {
    let pair = tcp_pairs(1)?.pop().ok_or("no pair")?;
    pair.client.set_nonblocking(true)?;
    pair.server.set_nonblocking(true)?;
    let (mut c, mut s): (Fd, Fd) = (
        pair.client.as_raw_fd().into(),
        pair.server.as_raw_fd().into(),
    );
    let ring = if fixed {
        Ring::builder().inline().sq_entries(16).files(2).build()?
    } else {
        ring(16)?
    };
    let (sq, cq) = (ring.submission(), ring.completion());
    if fixed {
        let fds = vec![pair.client.as_raw_fd(), pair.server.as_raw_fd()];
        push(sq, FilesUpdate::new(FileSlot::Index(0), fds).build())?;
        sq.submit_and_wait(1)?;
        let cqe = cq.pop().ok_or("no completion for FilesUpdate")?;
        ensure!(cqe.result() == 2, "FilesUpdate: {cqe:?}");
        (c, s) = (Fixed(0).into(), Fixed(1).into());
    }
    let mut round = 0;
    let mut msg = message(round);
    let mut sent = 0;
    push(sq, Send::new(c, msg.clone()).build().user_data(CLIENT_SEND))?;
    push(
        sq,
        Recv::new(s, BytesMut::with_capacity(4096))
            .build()
            .user_data(SERVER_RECV),
    )?;
    let mut client_buf = Some(BytesMut::with_capacity(MSG));
    let mut server_done = false;
    while !server_done {
        sq.submit_and_wait(1)?;
        while let Some(mut cqe) = cq.pop() {
            let res = io_res(&cqe)?;
            match cqe.user_data() {
                CLIENT_SEND => {
                    sent += res;
                    if sent < MSG {
                        let rest = msg.slice(sent..);
                        push(sq, Send::new(c, rest).build().user_data(CLIENT_SEND))?;
                    } else {
                        let mut buf = client_buf.take().ok_or("client buffer lost")?;
                        buf.clear();
                        push(sq, Recv::new(c, buf).build().user_data(CLIENT_RECV))?;
                    }
                }
                CLIENT_RECV => {
                    ensure!(res > 0, "server closed");
                    let buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if buf.len() < MSG {
                        push(sq, Recv::new(c, buf).build().user_data(CLIENT_RECV))?;
                        continue;
                    }
                    ensure!(buf[..] == msg[..], "round {round}: wrong echo");
                    client_buf = Some(buf);
                    round += 1;
                    if round == n {
                        // The table's duplicate shares the connection.
                        pair.client.shutdown(Shutdown::Write)?;
                        continue;
                    }
                    msg = message(round);
                    sent = 0;
                    push(sq, Send::new(c, msg.clone()).build().user_data(CLIENT_SEND))?;
                }
                SERVER_RECV => {
                    let buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if res == 0 {
                        server_done = true;
                    } else {
                        push(sq, Send::new(s, buf).build().user_data(SERVER_SEND))?;
                    }
                }
                _ => {
                    let mut buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if res < buf.len() {
                        bytes::Buf::advance(&mut buf, res);
                        push(sq, Send::new(s, buf).build().user_data(SERVER_SEND))?;
                    } else {
                        buf.clear();
                        push(sq, Recv::new(s, buf).build().user_data(SERVER_RECV))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// `fixed`: on a ring with a file table, where each end takes a slot.
fn echo_async(n: u64, fixed: bool) -> Result<()> {
    let pair = tcp_pairs(1)?.pop().ok_or("no pair")?;
    let ring = if fixed {
        Ring::builder().inline().sq_entries(16).files(2).build()?
    } else {
        ring(16)?
    };
    let io = ring.proactor();
    let client = TcpStream::from_std(&io, pair.client)?;
    let server = TcpStream::from_std(&io, pair.server)?;
    ensure!(
        client.fixed_file().is_some() == fixed && server.fixed_file().is_some() == fixed,
        "slots: {:?} {:?}",
        client.fixed_file(),
        server.fixed_file()
    );
    let client = async {
        let mut buf = BytesMut::with_capacity(MSG);
        for round in 0..n {
            let msg = message(round);
            let (res, _) = client.write_all(msg.clone()).await;
            res?;
            buf.clear();
            while buf.len() < MSG {
                let (got, b) = client.read(buf).await;
                buf = b;
                ensure!(got? > 0, "server closed");
            }
            ensure!(buf[..] == msg[..], "round {round}: wrong echo");
        }
        client.shutdown(Shutdown::Write).await?;
        Ok::<(), kqring_bench::Error>(())
    };
    let server = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            buf.clear();
            let (got, b) = server.read(buf).await;
            if got? == 0 {
                return Ok::<(), kqring_bench::Error>(());
            }
            let (res, b) = server.write_all(b).await;
            res?;
            buf = b;
        }
    };
    io.block_on(async {
        let (c, s) = futures::join!(client, server);
        c?;
        s
    })
}
