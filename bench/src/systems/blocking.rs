//! Plain blocking syscalls: one thread per thing that waits.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;
use std::thread;
use std::time::Instant;

use super::{Outcome, Params, System};
use crate::Result;
use crate::fixtures::{
    BLOCK, COPY_CHUNK, CopyFiles, Messages, PipePartner, Rng, TestFile, tcp_pairs,
};
use crate::stats::{Recorder, Window};

/// The blocking system.
#[derive(Debug, Default)]
pub struct Blocking(());

impl Blocking {
    /// Blocking syscalls.
    pub fn new() -> Blocking {
        Blocking(())
    }
}

/// Small stacks: TCP echo runs two threads per connection.
const STACK: usize = 128 * 1024;

impl System for Blocking {
    fn name(&self) -> &'static str {
        "blocking"
    }

    fn pipe(&mut self, p: &Params) -> Outcome {
        Some((|| {
            let PipePartner {
                ping,
                pong,
                partner,
            } = PipePartner::spawn(false)?;
            let (mut tx, mut rx) = (File::from(ping), File::from(pong));
            let msgs = Messages::new(p.msg_size);
            let mut buf = vec![0u8; msgs.size()];
            let mut rec = Recorder::sampling(Window::new(p.duration));
            let r = (|| {
                for round in 0.. {
                    let start = Instant::now();
                    tx.write_all(msgs.get(round))?;
                    rx.read_exact(&mut buf)?;
                    msgs.check(round, &buf)?;
                    if !rec.record(1, start, Instant::now()) {
                        break;
                    }
                }
                Ok::<_, crate::Error>(())
            })();
            drop((tx, rx));
            partner.join();
            r.map(|()| rec.finish())
        })())
    }

    fn tcp_echo(&mut self, p: &Params, conns: usize) -> Outcome {
        Some((|| {
            let msgs = Messages::new(p.msg_size);
            let window = Window::new(p.duration);
            let mut servers = Vec::with_capacity(conns);
            let mut clients = Vec::with_capacity(conns);
            for pair in tcp_pairs(conns)? {
                let size = msgs.server_buf();
                servers.push(
                    thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(move || echo_server(pair.server, size))?,
                );
                let (msgs, window) = (msgs.clone(), window.clone());
                clients.push(
                    thread::Builder::new()
                        .stack_size(STACK)
                        .spawn(move || echo_client(pair.client, msgs, window))?,
                );
            }
            let mut rec = Recorder::sampling(window);
            for c in clients {
                rec.merge(c.join().map_err(|_| "echo client panicked")??);
            }
            for s in servers {
                s.join().map_err(|_| "echo server panicked")??;
            }
            Ok(rec.finish())
        })())
    }

    fn file_read(&mut self, p: &Params, file: &TestFile) -> Outcome {
        // One thread, one read at a time: what a plain pread loop does.
        Some((|| {
            let f = file.file();
            let mut rng = Rng::new(1);
            let mut buf = vec![0u8; BLOCK];
            let mut rec = Recorder::counting(Window::new(p.duration));
            loop {
                let block = rng.below(file.blocks());
                let start = Instant::now();
                let n = f.read_at(&mut buf, block * BLOCK as u64)?;
                file.check(block, n as i64, &buf)?;
                if !rec.record(1, start, Instant::now()) {
                    return Ok(rec.finish());
                }
            }
        })())
    }

    fn copy(&mut self, p: &Params, files: &CopyFiles) -> Outcome {
        // One thread, one chunk at a time: a pread, then a pwrite.
        Some((|| {
            let (src, dst) = (files.source(), files.destination());
            let mut buf = vec![0u8; COPY_CHUNK];
            let mut rec = Recorder::counting(Window::new(p.duration));
            let mut plan = files.plan(&rec.window());
            while let Some((off, len)) = plan.next_chunk(Instant::now()) {
                let start = Instant::now();
                src.read_exact_at(&mut buf[..len], off)?;
                dst.write_all_at(&buf[..len], off)?;
                rec.record(1, start, Instant::now());
            }
            Ok(rec.finish())
        })())
    }

    fn fs_meta(&mut self, p: &Params, files: &[std::ffi::CString]) -> Outcome {
        // One thread, one file at a time: open, stat (statx on Linux),
        // close.
        use std::os::unix::ffi::OsStrExt;
        Some((|| {
            let mut rec = Recorder::counting(Window::new(p.duration));
            for path in files.iter().cycle() {
                let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
                let start = Instant::now();
                let file = File::open(path)?;
                std::fs::metadata(path)?;
                drop(file);
                if !rec.record(1, start, Instant::now()) {
                    break;
                }
            }
            Ok(rec.finish())
        })())
    }
}

fn echo_server(mut s: TcpStream, size: usize) -> Result<()> {
    let mut buf = vec![0u8; size];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n])?;
    }
}

fn echo_client(mut c: TcpStream, msgs: Messages, window: Window) -> Result<Recorder> {
    let mut rec = Recorder::sampling(window);
    let mut buf = vec![0u8; msgs.size()];
    for round in 0.. {
        let start = Instant::now();
        c.write_all(msgs.get(round))?;
        c.read_exact(&mut buf)?;
        msgs.check(round, &buf)?;
        if !rec.record(1, start, Instant::now()) {
            break;
        }
    }
    c.shutdown(Shutdown::Write)?;
    Ok(rec)
}
