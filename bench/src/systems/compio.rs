//! compio with its poll driver (the `polling` crate: epoll on Linux,
//! kqueue on macOS and the BSDs), never its io_uring one: the crate is
//! built without it, and every runtime is checked to report
//! `DriverType::Poll`. A fresh single-threaded runtime per workload; thread
//! per core for the rings row, as compio is meant to run.

use std::rc::Rc;
use std::time::Instant;

use compio::BufResult;
use compio::buf::{IntoInner as _, IoBuf as _};
use compio::driver::DriverType;
use compio::fs::File;
use compio::fs::pipe::{Receiver, Sender};
use compio::io::{
    AsyncRead as _, AsyncReadAt as _, AsyncReadExt as _, AsyncWrite as _, AsyncWriteExt as _,
};
use compio::net::TcpStream;
use compio::runtime::Runtime;
use std::os::fd::{FromRawFd as _, IntoRawFd as _};

use super::{Outcome, Params, System, on_rings};
use crate::fixtures::{
    BLOCK, Messages, PipePartner, Rng, TcpPair, TestFile, check_block, tcp_pairs, timer_durations,
};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Error, Result};

/// The compio system.
#[derive(Debug)]
pub struct Compio(());

impl Compio {
    /// Builds a runtime and checks that it drives the poll driver; says so
    /// in a note for the table's header.
    pub fn probe() -> std::result::Result<(Compio, String), super::Missing> {
        let rt = Runtime::new().map_err(|e| super::Missing::Unavailable(e.to_string()))?;
        match rt.driver_type() {
            DriverType::Poll => Ok((
                Compio(()),
                "compio: driver_type() reports Poll (its poll driver)".into(),
            )),
            other => Err(super::Missing::Wrong(format!(
                "compio runs its {other:?} driver, not the poll driver"
            ))),
        }
    }
}

/// Runs `fut` to completion on a new runtime on this thread, after
/// checking the runtime's driver.
fn run<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    let rt = Runtime::new()?;
    crate::ensure!(
        rt.driver_type() == DriverType::Poll,
        "compio runs its {:?} driver, not the poll driver",
        rt.driver_type()
    );
    rt.block_on(fut)
}

impl System for Compio {
    fn name(&self) -> &'static str {
        "compio"
    }

    fn pipe(&mut self, p: &Params) -> Outcome {
        Some((|| {
            // The poll driver reads and writes until EAGAIN, then waits for
            // readiness: the workload's ends are non-blocking.
            let PipePartner {
                ping,
                pong,
                partner,
            } = PipePartner::spawn(true)?;
            let msgs = Messages::new(p.msg_size);
            let window = Window::new(p.duration);
            let r = run(async move {
                // SAFETY: the descriptors are the workload's own, moved in.
                let mut tx = unsafe { Sender::from_raw_fd(ping.into_raw_fd()) };
                let mut rx = unsafe { Receiver::from_raw_fd(pong.into_raw_fd()) };
                let size = msgs.size();
                let mut buf = Vec::with_capacity(size);
                let mut rec = Recorder::sampling(window);
                for round in 0.. {
                    let start = Instant::now();
                    let BufResult(res, _) = tx.write_all(msgs.get(round).clone()).await;
                    res?;
                    buf.clear();
                    let BufResult(res, slice) = rx.read_exact(buf.slice(..size)).await;
                    res?;
                    buf = slice.into_inner();
                    msgs.check(round, &buf)?;
                    if !rec.record(1, start, Instant::now()) {
                        break;
                    }
                }
                Ok(rec.finish())
            });
            partner.join();
            r
        })())
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

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        let qd = p.queue_depth;
        let blocks = file.blocks();
        let path = file.path().to_path_buf();
        let window = Window::new(p.duration);
        Some(run(async move {
            let f = Rc::new(File::open(&path).await?);
            let readers: Vec<_> = (0..qd)
                .map(|q| {
                    let (f, window) = (Rc::clone(&f), window.clone());
                    compio::runtime::spawn(async move {
                        let mut rng = Rng::new(q as u64 + 1);
                        let mut rec = Recorder::counting(window);
                        let mut buf = Vec::with_capacity(BLOCK);
                        loop {
                            let block = rng.below(blocks);
                            let start = Instant::now();
                            buf.clear();
                            let BufResult(n, b) = f.read_at(buf, block * BLOCK as u64).await;
                            buf = b;
                            check_block(block, n? as i64, &buf)?;
                            if !rec.record(1, start, Instant::now()) {
                                return Ok::<_, Error>(rec);
                            }
                        }
                    })
                })
                .collect();
            let mut rec = Recorder::counting(window);
            for r in readers {
                rec.merge(
                    r.await
                        .map_err(|e| format!("a reader task failed: {e:?}"))??,
                );
            }
            Ok(rec.finish())
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
                    compio::runtime::spawn(async move {
                        compio::time::sleep(d).await;
                        lateness_ns(due, Instant::now())
                    })
                })
                .collect();
            let mut lateness = Vec::with_capacity(timers.len());
            for t in timers {
                lateness.push(
                    t.await
                        .map_err(|e| format!("a timer task failed: {e:?}"))??,
                );
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
        pair.client.set_nonblocking(true)?;
        pair.server.set_nonblocking(true)?;
        let server = TcpStream::from_std(pair.server)?;
        let client = TcpStream::from_std(pair.client)?;
        servers.push(compio::runtime::spawn(echo_server(
            server,
            msgs.server_buf(),
        )));
        clients.push(compio::runtime::spawn(echo_client(
            client,
            msgs.clone(),
            window.clone(),
        )));
    }
    let joined = |e| format!("an echo task failed: {e:?}");
    let mut rec = Recorder::sampling(window);
    for c in clients {
        rec.merge(c.await.map_err(joined)??);
    }
    for s in servers {
        s.await.map_err(joined)??;
    }
    Ok(rec)
}

async fn echo_server(mut s: TcpStream, size: usize) -> Result<()> {
    let mut buf = Vec::with_capacity(size);
    loop {
        let BufResult(n, b) = s.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let BufResult(res, mut b) = s.write_all(b).await;
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
        let BufResult(res, _) = c.write_all(msgs.get(round).clone()).await;
        res?;
        // Exactly one message: more would wait for bytes that never come.
        buf.clear();
        let BufResult(res, slice) = c.read_exact(buf.slice(..size)).await;
        res?;
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
