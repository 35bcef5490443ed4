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
//! Workloads: `nop-raw`, `nop-async` (a NOP round trip); `nop-batch`
//! (COUNT batches of 64 NOPs, submitted and reaped together); `echo-raw`,
//! `echo-async` (a 64-byte TCP echo on one loopback connection, both ends
//! on the ring; the raw ring posts the same operations in the same order
//! as the futures do); `echo-raw-fixed`, `echo-async-fixed`, the same
//! echoes on a ring with a file table, where both ends are registered
//! files (the raw ring's by a `FilesUpdate`, the futures' types by taking
//! a slot each). A third argument runs the echoes over that many
//! connections at once (`COUNT` messages on each; the futures' pairs in
//! one `FuturesUnordered`, as the benchmark's).
//!
//! ```sh
//! valgrind --tool=callgrind target/release/examples/op_count echo-async-fixed 60 256
//! ```

use std::net::Shutdown;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
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
            "usage: op_count nop-raw|nop-async|nop-batch|echo-raw|echo-async|echo-raw-fixed|echo-async-fixed COUNT [CONNECTIONS]"
                .into(),
        );
    };
    let n: u64 = n.parse()?;
    // The echoes' connections (default 1): COUNT messages on each.
    let conns: usize = args.get(3).map_or(Ok(1), |c| c.parse())?;
    ensure!(conns > 0, "no connections");
    match what.as_str() {
        "nop-raw" => nop_raw(n),
        "nop-async" => nop_async(n),
        "nop-batch" => nop_batch(n),
        "echo-raw" => echo_raw(n, false, conns),
        "echo-raw-fixed" => echo_raw(n, true, conns),
        "echo-async" => echo_async(n, false, conns),
        "echo-async-fixed" => echo_async(n, true, conns),
        other => Err(format!("no workload {other}").into()),
    }
}

fn ring(entries: usize) -> Result<Ring> {
    Ok(Ring::builder().inline().sq_entries(entries).build()?)
}

/// An inline ring for `conns` echoing connections; `fixed`: with a file
/// table holding both ends of each.
fn echo_ring(conns: usize, fixed: bool) -> Result<Ring> {
    let entries = (4 * conns).max(16);
    if fixed {
        Ok(Ring::builder()
            .inline()
            .sq_entries(entries)
            .files(2 * conns as u32)
            .build()?)
    } else {
        ring(entries)
    }
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

/// `n` batches of 64 NOPs: pushed, submitted and waited for at once, as
/// the benchmark's batched NOPs.
fn nop_batch(n: u64) -> Result<()> {
    const BATCH: u64 = 64;
    let ring = ring(2 * BATCH as usize)?;
    let (sq, cq) = (ring.submission(), ring.completion());
    for _ in 0..n {
        for i in 0..BATCH {
            push(sq, Nop::new().build().user_data(i))?;
        }
        sq.submit_and_wait(BATCH as usize)?;
        let got = cq.drain().filter(|c| c.result() == 0).count();
        ensure!(got == BATCH as usize, "{got} NOP completions for {BATCH}");
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

/// One connection's state in the raw echo.
struct Conn {
    c: Fd,
    s: Fd,
    round: u64,
    msg: Bytes,
    sent: usize,
    client_buf: Option<BytesMut>,
    done: bool,
}

/// The futures' echo as a state machine on the raw ring: each client
/// sends, then receives the echo; each server receives, sends back,
/// receives. `fixed`: every end goes into the ring's file table first.
/// `user_data` is the connection's index times 4 plus the step.
fn echo_raw(n: u64, fixed: bool, conns: usize) -> Result<()> {
    let pairs = tcp_pairs(conns)?;
    for p in &pairs {
        p.client.set_nonblocking(true)?;
        p.server.set_nonblocking(true)?;
    }
    let ring = echo_ring(conns, fixed)?;
    let (sq, cq) = (ring.submission(), ring.completion());
    let mut state: Vec<Conn> = pairs
        .iter()
        .map(|p| Conn {
            c: p.client.as_raw_fd().into(),
            s: p.server.as_raw_fd().into(),
            round: 0,
            msg: message(0),
            sent: 0,
            client_buf: Some(BytesMut::with_capacity(MSG)),
            done: false,
        })
        .collect();
    if fixed {
        let fds = pairs
            .iter()
            .flat_map(|p| [p.client.as_raw_fd(), p.server.as_raw_fd()])
            .collect();
        push(sq, FilesUpdate::new(FileSlot::Index(0), fds).build())?;
        sq.submit_and_wait(1)?;
        let cqe = cq.pop().ok_or("no completion for FilesUpdate")?;
        ensure!(cqe.result() == 2 * conns as i32, "FilesUpdate: {cqe:?}");
        for (i, st) in state.iter_mut().enumerate() {
            (st.c, st.s) = (Fixed(2 * i as u32).into(), Fixed(2 * i as u32 + 1).into());
        }
    }
    let ud = |i: usize, step: u64| (i as u64) << 2 | step;
    for (i, st) in state.iter().enumerate() {
        push(
            sq,
            Send::new(st.c, st.msg.clone())
                .build()
                .user_data(ud(i, CLIENT_SEND)),
        )?;
        push(
            sq,
            Recv::new(st.s, BytesMut::with_capacity(4096))
                .build()
                .user_data(ud(i, SERVER_RECV)),
        )?;
    }
    let mut running = conns;
    while running > 0 {
        sq.submit_and_wait(1)?;
        while let Some(mut cqe) = cq.pop() {
            let res = io_res(&cqe)?;
            let (i, step) = ((cqe.user_data() >> 2) as usize, cqe.user_data() & 3);
            let st = state.get_mut(i).ok_or("no such connection")?;
            let (c, s) = (st.c, st.s);
            match step {
                CLIENT_SEND => {
                    st.sent += res;
                    if st.sent < MSG {
                        let rest = st.msg.slice(st.sent..);
                        push(sq, Send::new(c, rest).build().user_data(ud(i, CLIENT_SEND)))?;
                    } else {
                        let mut buf = st.client_buf.take().ok_or("client buffer lost")?;
                        buf.clear();
                        push(sq, Recv::new(c, buf).build().user_data(ud(i, CLIENT_RECV)))?;
                    }
                }
                CLIENT_RECV => {
                    ensure!(res > 0, "server closed");
                    let buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if buf.len() < MSG {
                        push(sq, Recv::new(c, buf).build().user_data(ud(i, CLIENT_RECV)))?;
                        continue;
                    }
                    ensure!(buf[..] == st.msg[..], "round {}: wrong echo", st.round);
                    st.client_buf = Some(buf);
                    st.round += 1;
                    if st.round == n {
                        // The table's duplicate shares the connection.
                        pairs[i].client.shutdown(Shutdown::Write)?;
                        continue;
                    }
                    st.msg = message(st.round);
                    st.sent = 0;
                    let msg = st.msg.clone();
                    push(sq, Send::new(c, msg).build().user_data(ud(i, CLIENT_SEND)))?;
                }
                SERVER_RECV => {
                    let buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if res == 0 {
                        ensure!(!st.done, "connection {i} ended twice");
                        st.done = true;
                        running -= 1;
                    } else {
                        push(sq, Send::new(s, buf).build().user_data(ud(i, SERVER_SEND)))?;
                    }
                }
                _ => {
                    let mut buf = cqe.take_buf::<BytesMut>().map_err(|_| "no buffer")?;
                    if res < buf.len() {
                        bytes::Buf::advance(&mut buf, res);
                        push(sq, Send::new(s, buf).build().user_data(ud(i, SERVER_SEND)))?;
                    } else {
                        buf.clear();
                        push(sq, Recv::new(s, buf).build().user_data(ud(i, SERVER_RECV)))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One connection's two ends as futures, joined: `n` messages echoed.
async fn echo_pair(client: TcpStream, server: TcpStream, n: u64) -> Result<()> {
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
    let (c, s) = futures::join!(client, server);
    c?;
    s
}

/// `fixed`: on a ring with a file table, where each end takes a slot.
/// More than one connection: their pairs of futures run in one
/// `FuturesUnordered`, as the benchmark's.
fn echo_async(n: u64, fixed: bool, conns: usize) -> Result<()> {
    let pairs = tcp_pairs(conns)?;
    let ring = echo_ring(conns, fixed)?;
    let io = ring.proactor();
    let mut echoes = Vec::with_capacity(conns);
    for pair in pairs {
        let client = TcpStream::from_std(&io, pair.client)?;
        let server = TcpStream::from_std(&io, pair.server)?;
        ensure!(
            client.fixed_file().is_some() == fixed && server.fixed_file().is_some() == fixed,
            "slots: {:?} {:?}",
            client.fixed_file(),
            server.fixed_file()
        );
        echoes.push(echo_pair(client, server, n));
    }
    if conns == 1 {
        let one = echoes.pop().ok_or("no connection")?;
        return io.block_on(one);
    }
    io.block_on(async {
        let mut all: FuturesUnordered<_> = echoes.into_iter().collect();
        while let Some(r) = all.next().await {
            r?;
        }
        Ok(())
    })
}
