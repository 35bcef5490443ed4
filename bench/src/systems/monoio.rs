//! monoio with its legacy driver (mio: epoll on Linux, kqueue on macOS),
//! never its io_uring one: what a monoio user on macOS and the BSDs gets.
//! A fresh single-threaded runtime per workload; thread per core for the
//! rings row, as monoio is meant to run.

use std::time::Instant;

use monoio::buf::IoBufMut as _;
use monoio::io::{
    AsyncReadRent as _, AsyncReadRentExt as _, AsyncWriteRent as _, AsyncWriteRentExt as _,
};
use monoio::net::TcpStream;
use monoio::{LegacyDriver, RuntimeBuilder};

use super::{Outcome, Params, System, on_rings};
use crate::fixtures::{Messages, TcpPair, tcp_pairs, timer_durations};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Result, ensure};

/// The monoio system.
#[derive(Debug)]
pub struct Monoio(());

impl Monoio {
    /// Checks that a legacy-driver runtime can be built here.
    pub fn probe() -> std::result::Result<Monoio, String> {
        run(async { Ok(()) })
            .map(|()| Monoio(()))
            .map_err(|e| e.to_string())
    }
}

/// Runs `fut` to completion on a new runtime on this thread.
fn run<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let mut rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    rt.block_on(fut)
}

impl System for Monoio {
    fn name(&self) -> &'static str {
        "monoio"
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        Some((|| {
            let pairs = tcp_pairs(conns)?;
            run(echo(pairs, p.msg_size, Window::new(p.duration))).map(Recorder::finish)
        })())
    }

    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, rings: usize) -> Outcome {
        Some(tcp_pairs(conns).map_err(Into::into).and_then(|pairs| {
            on_rings(p, pairs, rings, |share, w| run(echo(share, p.msg_size, w)))
        }))
    }

    fn timeouts(&mut self, p: &Params) -> Outcome {
        let durations = timer_durations(p.timers);
        Some(run(async move {
            let t0 = Instant::now();
            let timers: Vec<_> = durations
                .into_iter()
                .map(|d| {
                    let due = Instant::now() + d;
                    monoio::spawn(async move {
                        monoio::time::sleep(d).await;
                        lateness_ns(due, Instant::now())
                    })
                })
                .collect();
            let mut lateness = Vec::with_capacity(timers.len());
            for t in timers {
                lateness.push(t.await?);
            }
            Ok(Measurement {
                ops: lateness.len() as u64,
                elapsed: t0.elapsed(),
                latency: Some(Samples::new(lateness)),
                cpu: None,
            })
        }))
    }
}

/// TCP echo over `pairs` on the current runtime: a task per end.
async fn echo(pairs: Vec<TcpPair>, msg_size: usize, window: Window) -> Result<Recorder> {
    let msgs = Messages::new(msg_size);
    let mut servers = Vec::with_capacity(pairs.len());
    let mut clients = Vec::with_capacity(pairs.len());
    for pair in pairs {
        // mio wants non-blocking sockets.
        pair.client.set_nonblocking(true)?;
        pair.server.set_nonblocking(true)?;
        let server = TcpStream::from_std(pair.server)?;
        let client = TcpStream::from_std(pair.client)?;
        servers.push(monoio::spawn(echo_server(server, msgs.server_buf())));
        clients.push(monoio::spawn(echo_client(
            client,
            msgs.clone(),
            window.clone(),
        )));
    }
    let mut rec = Recorder::sampling(window);
    for c in clients {
        rec.merge(c.await?);
    }
    for s in servers {
        s.await?;
    }
    Ok(rec)
}

async fn echo_server(mut s: TcpStream, size: usize) -> Result<()> {
    let mut buf = Vec::with_capacity(size);
    loop {
        let (res, b) = s.read(buf).await;
        if res? == 0 {
            return Ok(());
        }
        let (res, mut b) = s.write_all(b).await;
        res?;
        b.clear();
        buf = b;
    }
}

async fn echo_client(mut c: TcpStream, msgs: Messages, window: Window) -> Result<Recorder> {
    let mut rec = Recorder::sampling(window);
    let size = msgs.size();
    let mut buf = Vec::with_capacity(size);
    for round in 0.. {
        let start = Instant::now();
        let (res, _) = c.write_all(msgs.get(round).clone()).await;
        res?;
        // Exactly one message: more would wait for bytes that never come.
        let (res, slice) = c.read_exact(buf.slice_mut(0..size)).await;
        ensure!(res? == size, "short echo on connection");
        buf = slice.into_inner();
        msgs.check(round, &buf)?;
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    // The server sees the end of the stream and stops.
    c.shutdown().await?;
    Ok(rec)
}
