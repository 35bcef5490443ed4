//! kqring's futures (`kqring::proactor`) run by kqring's own `block_on`:
//! the same ring as the `kqring-*` columns, with the layer's futures,
//! owned-buffer results and per-future slots on top. Beside the raw ring
//! it shows what the layer costs; beside tokio, the async/await servers
//! one would write with either. The TCP echo's streams take registered
//! files as the raw ring's do (none with `--plain-fds`).

use std::time::Instant;

use bytes::BytesMut;
use futures::stream::{FuturesUnordered, StreamExt};
use kqring::proactor::{File, Proactor, RawCqe, TcpStream};
use kqring::{Mode, Ring, ops};

use super::kqring::Tuning;
use super::{Outcome, Params, System};
use crate::fixtures::{Messages, PipePartner, TcpPair, tcp_pairs};
use crate::stats::{Recorder, Window};
use crate::{Result, ensure};

/// kqring's futures on one ring.
#[derive(Debug)]
pub struct KqringAsync {
    mode: Mode,
    tuning: Tuning,
}

impl KqringAsync {
    /// kqring's futures on a ring driven by `mode`.
    pub fn tuned(mode: Mode, tuning: Tuning) -> KqringAsync {
        KqringAsync { mode, tuning }
    }

    fn ring(&self, sq_entries: usize) -> std::io::Result<Ring> {
        self.ring_with_files(sq_entries, 0)
    }

    /// A ring with a file table of `files` slots, where the types take
    /// one each.
    fn ring_with_files(&self, sq_entries: usize, files: u32) -> std::io::Result<Ring> {
        let mut b = Ring::builder()
            .mode(self.mode)
            .sq_entries(sq_entries)
            .files(files);
        if let Some(idle) = self.tuning.sq_idle {
            b = b.sq_idle(idle);
        }
        if let Some(n) = self.tuning.workers {
            b = b.workers(n);
        }
        b.build()
    }
}

impl System for KqringAsync {
    fn name(&self) -> &'static str {
        match self.mode {
            Mode::Inline => "kqring-async",
            _ => "kqring-async-poller",
        }
    }

    fn nop_rtt(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let ring = self.ring(8)?;
            let io = ring.proactor();
            io.block_on(async {
                let mut rec = Recorder::counting(Window::new(p.duration));
                let mut start = Instant::now();
                for i in 0.. {
                    let cqe = io.run(ops::Nop::new().build().user_data(i), RawCqe).await;
                    ensure!(
                        cqe.result() == 0 && cqe.user_data() == i,
                        "NOP {i} completed with {cqe:?}"
                    );
                    let now = Instant::now();
                    if !rec.record(1, start, now) {
                        break;
                    }
                    start = now;
                }
                Ok(rec.finish())
            })
        })())
    }

    fn pipe(&mut self, p: &Params) -> Outcome {
        Some((|| {
            // Non-blocking ends: kqring polls them.
            let PipePartner {
                ping,
                pong,
                partner,
            } = PipePartner::spawn(true)?;
            let ring = self.ring(8)?;
            let io = ring.proactor();
            let r = io.block_on(async {
                let tx = File::from_fd(&io, ping);
                let rx = File::from_fd(&io, pong);
                let msgs = Messages::new(p.msg_size);
                let mut buf = BytesMut::with_capacity(msgs.size());
                let mut rec = Recorder::sampling(Window::new(p.duration));
                for round in 0.. {
                    let start = Instant::now();
                    let (res, _) = tx.write_all(msgs.get(round).clone()).await;
                    res?;
                    buf.clear();
                    while buf.len() < msgs.size() {
                        let (n, b) = rx.read(buf).await;
                        buf = b;
                        ensure!(n? > 0, "the partner closed in round {round}");
                    }
                    msgs.check(round, &buf)?;
                    if !rec.record(1, start, Instant::now()) {
                        break;
                    }
                }
                Ok(rec.finish())
            });
            // The ring closes the ends as it goes; the partner then stops.
            drop(ring);
            partner.join();
            r
        })())
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        Some((|| {
            let pairs = tcp_pairs(conns)?;
            // Registered files (unless --plain-fds), as the raw ring's
            // columns use: the streams take a slot each.
            let files = if p.registered_files {
                2 * conns as u32
            } else {
                0
            };
            let ring = self.ring_with_files(4 * conns + 16, files)?;
            let io = ring.proactor();
            let window = Window::new(p.duration);
            io.block_on(echo(&io, pairs, p, window))
                .map(Recorder::finish)
        })())
    }
}

/// TCP echo over `pairs`: a future per end, all joined on this thread.
async fn echo(io: &Proactor, pairs: Vec<TcpPair>, p: &Params, window: Window) -> Result<Recorder> {
    let msgs = Messages::new(p.msg_size);
    let mut servers = FuturesUnordered::new();
    let mut clients = FuturesUnordered::new();
    for pair in pairs {
        let server = TcpStream::from_std(io, pair.server)?;
        let client = TcpStream::from_std(io, pair.client)?;
        servers.push(echo_server(server, msgs.server_buf()));
        clients.push(echo_client(client, msgs.clone(), window.clone()));
    }
    let mut rec = Recorder::sampling(window);
    let both = async {
        while let Some(r) = clients.next().await {
            rec.merge(r?);
        }
        Ok::<(), crate::Error>(())
    };
    let serve = async {
        while let Some(r) = servers.next().await {
            r?;
        }
        Ok::<(), crate::Error>(())
    };
    let (c, s) = futures::join!(both, serve);
    c?;
    s?;
    Ok(rec)
}

async fn echo_server(s: TcpStream, size: usize) -> Result<()> {
    let mut buf = BytesMut::with_capacity(size);
    loop {
        buf.clear();
        let (n, b) = s.read(buf).await;
        if n? == 0 {
            return Ok(());
        }
        let (res, b) = s.write_all(b).await;
        res?;
        buf = b;
    }
}

async fn echo_client(c: TcpStream, msgs: Messages, window: Window) -> Result<Recorder> {
    let mut rec = Recorder::sampling(window);
    let mut buf = BytesMut::with_capacity(msgs.size());
    for round in 0.. {
        let start = Instant::now();
        let (res, _) = c.write_all(msgs.get(round).clone()).await;
        res?;
        buf.clear();
        while buf.len() < msgs.size() {
            let (n, b) = c.read(buf).await;
            buf = b;
            ensure!(n? > 0, "the echo server closed in round {round}");
        }
        msgs.check(round, &buf)?;
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    // The server sees the end of the stream and stops.
    c.shutdown(std::net::Shutdown::Write).await?;
    Ok(rec)
}
