//! tokio (epoll on Linux, kqueue on the BSDs): its multi-thread runtime,
//! one worker per CPU unless `--tokio-workers` says otherwise, or its
//! current-thread runtime; a fresh runtime per workload.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::unix::pipe;
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use super::{Outcome, Params, System, on_rings};
use crate::fixtures::{
    BLOCK, COPY_CHUNK, COPY_DEPTH, CopyFiles, Messages, PipePartner, Rng, TcpPair, TestFile,
    check_block, tcp_pairs, timer_durations,
};
use crate::stats::{Measurement, Recorder, Samples, Window, lateness_ns};
use crate::{Error, Result};

/// The tokio system.
#[derive(Debug, Default)]
pub struct Tokio {
    /// Worker threads of the multi-thread runtime; `None`: tokio's
    /// default, one per CPU.
    workers: Option<usize>,
    /// The current-thread runtime instead.
    current_thread: bool,
}

impl Tokio {
    /// tokio's multi-thread runtime with `workers` worker threads (`None`:
    /// one per CPU).
    pub fn new(workers: Option<usize>) -> Tokio {
        Tokio {
            workers,
            current_thread: false,
        }
    }

    /// tokio's current-thread runtime: every task on the caller's thread.
    pub fn current_thread() -> Tokio {
        Tokio {
            workers: None,
            current_thread: true,
        }
    }

    /// Runs `fut` and waits for it: as a task on the multi-thread runtime
    /// (not on the blocking caller's thread, which is not a worker), or on
    /// the caller's thread with the current-thread runtime.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let rt = self.runtime()?;
        let r = if self.current_thread {
            rt.block_on(fut)
        } else {
            rt.block_on(async move { tokio::spawn(fut).await })?
        };
        // Let the blocking pool's idle threads go before the next workload.
        rt.shutdown_background();
        r
    }

    fn runtime(&self) -> io::Result<Runtime> {
        let mut b = if self.current_thread {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = self.workers {
                b.worker_threads(n);
            }
            b
        };
        b.enable_all().build()
    }
}

impl System for Tokio {
    fn name(&self) -> &'static str {
        if self.current_thread {
            "tokio-ct"
        } else {
            "tokio"
        }
    }

    fn pipe(&mut self, p: &Params) -> Outcome {
        let p = p.clone();
        Some((|| {
            let PipePartner {
                ping,
                pong,
                partner,
            } = PipePartner::spawn(false)?;
            let r = self.run(async move {
                // Both ends are made non-blocking and registered here.
                let mut tx = pipe::Sender::from_owned_fd(ping)?;
                let mut rx = pipe::Receiver::from_owned_fd(pong)?;
                let msgs = Messages::new(p.msg_size);
                let mut buf = vec![0u8; msgs.size()];
                let mut rec = Recorder::sampling(Window::new(p.duration));
                for round in 0.. {
                    let start = Instant::now();
                    tx.write_all(msgs.get(round)).await?;
                    rx.read_exact(&mut buf).await?;
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
        let p = p.clone();
        Some((|| {
            let pairs = tcp_pairs(conns)?;
            let window = Window::new(p.duration);
            self.run(echo(pairs, p, window)).map(Recorder::finish)
        })())
    }

    /// The current-thread runtime runs thread per core, one runtime per
    /// thread, as a user of it would on several cores; the multi-thread
    /// one spreads over every CPU already.
    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, rings: usize) -> Outcome {
        if !self.current_thread {
            return self.tcp_echo(p, conns);
        }
        Some(tcp_pairs(conns).map_err(Into::into).and_then(|pairs| {
            on_rings(p, pairs, rings, |share, w| {
                Tokio::current_thread().run(echo(share, p.clone(), w))
            })
        }))
    }

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        let p = p.clone();
        Some((|| {
            // tokio has no asynchronous positional read; tokio::fs itself
            // runs each call through spawn_blocking, as this does.
            let f = Arc::new(file.file().try_clone()?);
            let blocks = file.blocks();
            let window = Window::new(p.duration);
            self.run(async move {
                let mut readers = JoinSet::new();
                for q in 0..p.queue_depth {
                    let f = Arc::clone(&f);
                    let window = window.clone();
                    readers.spawn(async move {
                        let mut rng = Rng::new(q as u64 + 1);
                        let mut rec = Recorder::counting(window);
                        let mut buf = vec![0u8; BLOCK];
                        loop {
                            let block = rng.below(blocks);
                            let start = Instant::now();
                            let f = Arc::clone(&f);
                            let (b, n) = tokio::task::spawn_blocking(move || {
                                let n = f.read_at(&mut buf, block * BLOCK as u64);
                                (buf, n)
                            })
                            .await?;
                            buf = b;
                            check_block(block, n? as i64, &buf)?;
                            if !rec.record(1, start, Instant::now()) {
                                return Ok::<_, Error>(rec);
                            }
                        }
                    });
                }
                let mut rec = Recorder::counting(window);
                while let Some(r) = readers.join_next().await {
                    rec.merge(r??);
                }
                Ok(rec.finish())
            })
        })())
    }

    fn copy(&mut self, p: &Params, files: &CopyFiles) -> Outcome {
        let p = p.clone();
        Some((|| {
            // As tokio::fs would: each read and each write a spawn_blocking
            // call, COPY_DEPTH chunks at once.
            let src = Arc::new(files.source().try_clone()?);
            let dst = Arc::new(files.destination().try_clone()?);
            let window = Window::new(p.duration);
            let plan = Arc::new(Mutex::new(files.plan(&window)));
            self.run(async move {
                let mut copiers = JoinSet::new();
                for _ in 0..COPY_DEPTH {
                    let (src, dst, plan) = (Arc::clone(&src), Arc::clone(&dst), Arc::clone(&plan));
                    let window = window.clone();
                    copiers.spawn(async move {
                        let mut rec = Recorder::counting(window);
                        let mut buf = vec![0u8; COPY_CHUNK];
                        loop {
                            let next = plan
                                .lock()
                                .map_err(|_| "the copy plan's lock is poisoned")?
                                .next_chunk(Instant::now());
                            let Some((off, len)) = next else {
                                return Ok::<_, Error>(rec);
                            };
                            let start = Instant::now();
                            let f = Arc::clone(&src);
                            let (b, r) = tokio::task::spawn_blocking(move || {
                                let r = f.read_exact_at(&mut buf[..len], off);
                                (buf, r)
                            })
                            .await?;
                            r?;
                            let f = Arc::clone(&dst);
                            let (b, r) = tokio::task::spawn_blocking(move || {
                                let r = f.write_all_at(&b[..len], off);
                                (b, r)
                            })
                            .await?;
                            r?;
                            buf = b;
                            rec.record(1, start, Instant::now());
                        }
                    });
                }
                let mut rec = Recorder::counting(window);
                while let Some(r) = copiers.join_next().await {
                    rec.merge(r??);
                }
                Ok(rec.finish())
            })
        })())
    }

    fn timeouts(&mut self, p: &Params) -> Outcome {
        let durations = timer_durations(p.timers);
        Some(self.run(async move {
            let mut set = JoinSet::new();
            let t0 = Instant::now();
            for d in durations {
                let due = Instant::now() + d;
                set.spawn(async move {
                    tokio::time::sleep(d).await;
                    lateness_ns(due, Instant::now())
                });
            }
            let mut lateness = Vec::with_capacity(set.len());
            while let Some(r) = set.join_next().await {
                lateness.push(r??);
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
async fn echo(pairs: Vec<TcpPair>, p: Params, window: Window) -> Result<Recorder> {
    let msgs = Messages::new(p.msg_size);
    let mut servers = JoinSet::new();
    let mut clients = JoinSet::new();
    for pair in pairs {
        pair.client.set_nonblocking(true)?;
        pair.server.set_nonblocking(true)?;
        let server = TcpStream::from_std(pair.server)?;
        let client = TcpStream::from_std(pair.client)?;
        servers.spawn(echo_server(server, msgs.server_buf()));
        clients.spawn(echo_client(client, msgs.clone(), window.clone()));
    }
    let mut rec = Recorder::sampling(window);
    while let Some(r) = clients.join_next().await {
        rec.merge(r??);
    }
    while let Some(r) = servers.join_next().await {
        r??;
    }
    Ok(rec)
}

async fn echo_server(mut s: TcpStream, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

async fn echo_client(mut c: TcpStream, msgs: Messages, window: Window) -> Result<Recorder> {
    let mut rec = Recorder::sampling(window);
    let mut buf = vec![0u8; msgs.size()];
    for round in 0.. {
        let start = Instant::now();
        c.write_all(msgs.get(round)).await?;
        c.read_exact(&mut buf).await?;
        msgs.check(round, &buf)?;
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    // The server sees the end of the stream and stops.
    c.shutdown().await?;
    Ok(rec)
}
