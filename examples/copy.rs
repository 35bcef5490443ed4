//! A file copy through the ring, with several reads and writes in flight:
//! both files opened with `OpenAt`, the source's size from `Statx`, then
//! up to `--depth` blocks at once, each read at its offset and written at
//! the same offset as soon as it is in — blocks finish in any order. Short
//! reads and short writes are carried on from where they stopped; a
//! source that ends before its size said leaves the copy that long
//! (`Ftruncate`). `--sync` makes an `Fsync` of the copy before both files
//! are closed with `Close`.
//!
//! ```sh
//! cargo run --release --example copy -- SRC DST [--depth 16] [--block-size 131072] [--sync] [--inline]
//! ```
//!
//! `--inline` drives the ring on the calling thread instead of its
//! polling thread. tests/copy_example.rs runs [`copy`] in both modes and
//! checks the copies byte for byte.

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kqring::ops::{Close, Fsync, Ftruncate, OpenAt, Read, Statx, Write};
use kqring::{Cqe, Mode, Ring, Sqe};

/// How to copy.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Blocks in flight at once, each a read or a write (at least 1).
    pub depth: usize,
    /// Bytes per block (at least 1).
    pub block_size: usize,
    /// Sync the copy before closing it.
    pub sync: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Bytes copied: the copy's size.
    pub bytes: u64,
    /// Reads and writes made (more than one per block where one was
    /// short).
    pub reads: u64,
    /// See `reads`.
    pub writes: u64,
    /// The most blocks that were in flight at once.
    pub most_in_flight: usize,
}

/// One block being copied: bytes `[offset, offset + len)` of both files.
struct Block {
    offset: u64,
    len: usize,
    /// What has been read of it; while it is being written, the part not
    /// yet written.
    buf: Vec<u8>,
    /// How much of it has been written.
    written: usize,
}

/// `user_data`: the kind in the top byte, the block's slot in the rest.
const READ: u64 = 1 << 56;
const WRITE: u64 = 2 << 56;
const SLOT: u64 = (1 << 56) - 1;

/// Copies `src` to `dst` (created, or truncated) through `ring`, whose
/// submission queue must hold `opts.depth` entries; the copy gets the
/// source's permission bits, as far as the umask lets it.
pub fn copy(ring: &Ring, src: &Path, dst: &Path, opts: Options) -> io::Result<Report> {
    if opts.depth == 0 || opts.block_size == 0 || opts.depth > ring.submission().capacity() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the depth and block size must be positive, the depth no more than the \
             submission queue holds",
        ));
    }
    let from = one(
        ring,
        OpenAt::new(src, libc::O_RDONLY | libc::O_CLOEXEC).build(),
    )?
    .result();
    let result = copy_from(ring, from, dst, opts);
    let closed = one(ring, Close::new(from).build());
    let report = result?;
    closed?;
    Ok(report)
}

fn copy_from(ring: &Ring, from: RawFd, dst: &Path, opts: Options) -> io::Result<Report> {
    let stat = one(ring, Statx::fd(from).build())?;
    let stat = *stat
        .statx()
        .ok_or_else(|| io::Error::other("statx gave no status"))?;
    if stat.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    let to = one(
        ring,
        OpenAt::new(
            dst,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
        )
        .mode(stat.permissions())
        .build(),
    )?
    .result();
    let result = blocks(ring, from, to, stat.size, opts).and_then(|report| {
        if opts.sync {
            one(ring, Fsync::new(to).build())?;
        }
        Ok(report)
    });
    let closed = one(ring, Close::new(to).build());
    let report = result?;
    closed?;
    Ok(report)
}

/// The copy itself: `size` bytes from `from` to `to`, `opts.depth` blocks
/// in flight. After an error no block starts, and the ones in flight are
/// waited for, so nothing of the copy is left in the ring.
fn blocks(ring: &Ring, from: RawFd, to: RawFd, size: u64, opts: Options) -> io::Result<Report> {
    let block = opts.block_size as u64;
    let mut report = Report {
        bytes: 0,
        reads: 0,
        writes: 0,
        most_in_flight: 0,
    };
    // Where the source ends: `size`, or sooner if it shrank meanwhile.
    let mut end = size;
    let mut next = 0u64;
    let mut slots: Vec<Option<Block>> = (0..opts.depth).map(|_| None).collect();
    // Buffers of finished blocks, for the next ones.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut in_flight = 0usize;
    let mut failed: Option<io::Error> = None;
    loop {
        // Every free slot takes the next block.
        for (slot, b) in slots.iter_mut().enumerate() {
            if b.is_some() || next >= end || failed.is_some() {
                continue;
            }
            let len = block.min(end - next) as usize;
            let mut buf = spare.pop().unwrap_or_default();
            buf.clear();
            buf.reserve_exact(len);
            push(ring, read(from, slot, next, buf))?;
            *b = Some(Block {
                offset: next,
                len,
                buf: Vec::new(),
                written: 0,
            });
            next += len as u64;
            report.reads += 1;
            in_flight += 1;
        }
        report.most_in_flight = report.most_in_flight.max(in_flight);
        if in_flight == 0 {
            break;
        }
        ring.submit_and_wait(1)?;
        while let Some(mut cqe) = ring.completion().pop() {
            let slot = (cqe.user_data() & SLOT) as usize;
            let Some(b) = slots.get_mut(slot).and_then(Option::as_mut) else {
                return Err(io::Error::other(format!(
                    "a completion of no block: {cqe:?}"
                )));
            };
            let step = match (cqe.take_buf::<Vec<u8>>(), cqe.io_result()) {
                (Err(e), _) => Err(io::Error::other(format!("the block's buffer: {e:?}"))),
                (Ok(buf), res) => {
                    b.buf = buf;
                    match res {
                        _ if failed.is_some() => Ok(true),
                        Err(e) => Err(e),
                        Ok(n) if cqe.user_data() & !SLOT == READ => {
                            on_read(ring, from, to, slot, b, n as usize, &mut end, &mut report)
                        }
                        Ok(n) => on_write(ring, to, slot, b, n as usize, &mut report),
                    }
                }
            };
            match step {
                Ok(false) => {}
                Ok(true) => {
                    if let Some(b) = slots[slot].take() {
                        spare.push(b.buf);
                    }
                    in_flight -= 1;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                    slots[slot] = None;
                    in_flight -= 1;
                }
            }
        }
        next = next.min(end);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if end < size {
        one(ring, Ftruncate::new(to, end).build())?;
    }
    Ok(report)
}

/// A read of block `b` gave `n` bytes: read the rest, or write it. Whether
/// the block is done.
#[allow(clippy::too_many_arguments)]
fn on_read(
    ring: &Ring,
    from: RawFd,
    to: RawFd,
    slot: usize,
    b: &mut Block,
    n: usize,
    end: &mut u64,
    report: &mut Report,
) -> io::Result<bool> {
    if n == 0 && b.buf.len() < b.len {
        // The source ended early: the copy ends there too.
        b.len = b.buf.len();
        *end = (*end).min(b.offset + b.len as u64);
    }
    if b.len == 0 {
        return Ok(true);
    }
    if b.buf.len() < b.len {
        // Short: read the rest of the block, after what came.
        let at = b.offset + b.buf.len() as u64;
        push(ring, read(from, slot, at, std::mem::take(&mut b.buf)))?;
        report.reads += 1;
    } else {
        b.buf.truncate(b.len);
        push(ring, write(to, slot, b.offset, std::mem::take(&mut b.buf)))?;
        report.writes += 1;
    }
    Ok(false)
}

/// A write of block `b` took `n` bytes: write the rest. Whether the block
/// is done.
fn on_write(
    ring: &Ring,
    to: RawFd,
    slot: usize,
    b: &mut Block,
    n: usize,
    report: &mut Report,
) -> io::Result<bool> {
    if n == 0 {
        return Err(io::Error::from(io::ErrorKind::WriteZero));
    }
    b.written += n;
    report.bytes += n as u64;
    if b.written == b.len {
        return Ok(true);
    }
    // Short: write the rest from where it stopped.
    b.buf.drain(..n);
    let at = b.offset + b.written as u64;
    push(ring, write(to, slot, at, std::mem::take(&mut b.buf)))?;
    report.writes += 1;
    Ok(false)
}

fn read(fd: RawFd, slot: usize, offset: u64, buf: Vec<u8>) -> Sqe {
    Read::new(fd, buf)
        .offset(offset)
        .build()
        .user_data(READ | slot as u64)
}

fn write(fd: RawFd, slot: usize, offset: u64, buf: Vec<u8>) -> Sqe {
    Write::new(fd, buf)
        .offset(offset)
        .build()
        .user_data(WRITE | slot as u64)
}

/// Pushes an entry; the submission queue holds `depth` of them (checked
/// in `copy`), so it is never full here.
fn push(ring: &Ring, sqe: Sqe) -> io::Result<()> {
    ring.submission()
        .push(sqe)
        .map_err(|_| io::Error::other("the submission queue is full"))
}

/// Runs one entry on its own; its completion, or its error.
fn one(ring: &Ring, sqe: Sqe) -> io::Result<Cqe> {
    push(ring, sqe)?;
    ring.submit_and_wait(1)?;
    let cqe = ring
        .completion()
        .pop()
        .ok_or_else(|| io::Error::other("no completion"))?;
    cqe.io_result()?;
    Ok(cqe)
}

struct Args {
    src: PathBuf,
    dst: PathBuf,
    opts: Options,
    inline: bool,
}

fn args() -> Result<Args, String> {
    let usage = "usage: copy SRC DST [--depth N] [--block-size B] [--sync] [--inline]";
    let mut paths = Vec::new();
    let mut opts = Options {
        depth: 16,
        block_size: 128 * 1024,
        sync: false,
    };
    let mut inline = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or(format!("{name} needs a value"))?
                .parse::<usize>()
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--depth" => opts.depth = value("--depth")?,
            "--block-size" => opts.block_size = value("--block-size")?,
            "--sync" => opts.sync = true,
            "--inline" => inline = true,
            "-h" | "--help" => return Err(usage.into()),
            a if a.starts_with("--") => return Err(format!("unknown flag {a:?}\n{usage}")),
            _ => paths.push(PathBuf::from(arg)),
        }
    }
    let [src, dst] = <[PathBuf; 2]>::try_from(paths).map_err(|_| usage.to_string())?;
    if opts.depth == 0 || opts.block_size == 0 {
        return Err("--depth and --block-size must be positive".into());
    }
    Ok(Args {
        src,
        dst,
        opts,
        inline,
    })
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let ring = Ring::builder()
        .mode(if args.inline {
            Mode::Inline
        } else {
            Mode::PollingThread
        })
        .sq_entries(args.opts.depth.max(4))
        .build();
    let ring = match ring {
        Ok(r) => r,
        Err(e) => {
            eprintln!("copy: a ring: {e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    match copy(&ring, &args.src, &args.dst, args.opts) {
        Ok(r) => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "{} bytes in {:.3} s ({:.1} MiB/s): {} reads, {} writes, up to {} blocks in flight",
                r.bytes,
                secs,
                r.bytes as f64 / secs.max(1e-9) / (1 << 20) as f64,
                r.reads,
                r.writes,
                r.most_in_flight
            );
        }
        Err(e) => {
            eprintln!("copy: {}: {e}", args.src.display());
            std::process::exit(1);
        }
    }
}
