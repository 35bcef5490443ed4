//! What the workloads run against, the same for every system: pipes with an
//! echoing partner thread, loopback TCP connections, a warm file, messages
//! to check echoes against, and timer durations.

use std::fs::File;
use std::io::{self, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use bytes::Bytes;
/// The pipes with an echoing partner thread are the tests' too.
pub use kqring_test_support::{Partner, PipePartner};

use crate::{Result, ensure};

/// Bytes per random read.
pub const BLOCK: usize = 4096;

/// Message variants a client cycles through, so an echo of the wrong round
/// (or of stale bytes) does not compare equal.
const VARIANTS: usize = 16;

/// The messages of one workload: `VARIANTS` different payloads of one size.
#[derive(Debug, Clone)]
pub struct Messages {
    variants: Vec<Bytes>,
}

impl Messages {
    /// Payloads of `size` bytes.
    pub fn new(size: usize) -> Messages {
        let variants = (0..VARIANTS)
            .map(|k| {
                (0..size)
                    .map(|i| (k * 31 + i * 7 + 1) as u8)
                    .collect::<Vec<u8>>()
                    .into()
            })
            .collect();
        Messages { variants }
    }

    /// The payload of round `round`.
    pub fn get(&self, round: u64) -> &Bytes {
        &self.variants[round as usize % VARIANTS]
    }

    /// The message size.
    pub fn size(&self) -> usize {
        self.variants[0].len()
    }

    /// What a server end receives into: a server can't know how big the
    /// next message is, so it reads into a page (or a message, if that is
    /// bigger), as servers do. Every system gets the same.
    pub fn server_buf(&self) -> usize {
        self.size().max(4096)
    }

    /// Checks that `got` is the payload of round `round`.
    pub fn check(&self, round: u64, got: &[u8]) -> Result<()> {
        ensure!(
            got == &self.get(round)[..],
            "echo of round {round} differs from what was sent ({} bytes back)",
            got.len()
        );
        Ok(())
    }
}

/// A loopback TCP connection: the client end and the server's accepted end.
#[derive(Debug)]
pub struct TcpPair {
    /// The connecting side.
    pub client: TcpStream,
    /// The accepted side.
    pub server: TcpStream,
}

/// `n` loopback connections, each accepted with std from a listener on an
/// ephemeral port, `TCP_NODELAY` on both ends, blocking.
///
/// Set-up is not measured. When kqring gains `Accept`, a workload that
/// wants to time it replaces this with a listener driven by the ring.
pub fn tcp_pairs(n: usize) -> io::Result<Vec<TcpPair>> {
    (0..n)
        .map(|_| {
            let (client, server) = kqring_test_support::tcp_pair()?;
            Ok(TcpPair { client, server })
        })
        .collect()
}

/// Raises this process's descriptor limit (`RLIMIT_NOFILE`) as far as it
/// is allowed: the hard limit too where the process may (root, up to
/// Linux's `fs.nr_open`), else the soft limit to the hard one. Returns the
/// soft limit now in force.
pub fn raise_nofile() -> io::Result<u64> {
    // SAFETY: getrlimit/setrlimit read and write a plain struct.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|n| n as libc::rlim_t);
    let mut tries = Vec::new();
    if let Some(max) = ceiling.filter(|&m| m > lim.rlim_max) {
        tries.push(libc::rlimit {
            rlim_cur: max,
            rlim_max: max,
        });
    }
    tries.push(libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    });
    for want in tries {
        if want.rlim_cur <= lim.rlim_cur {
            break;
        }
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim = want;
            break;
        }
    }
    Ok(lim.rlim_cur as u64)
}

/// A temporary file of 4 KiB blocks, each starting with its index (u64 LE)
/// so a read at the wrong offset is caught. Removed on drop.
#[derive(Debug)]
pub struct TestFile {
    file: File,
    blocks: u64,
    /// Its name, for the systems that open it by path; removed on drop.
    path: kqring_test_support::ScratchPath,
}

impl TestFile {
    /// Creates a file of `mib` MiB in the temp directory and reads it back
    /// once, so its pages are in the cache.
    pub fn create(mib: u32) -> io::Result<TestFile> {
        let blocks = u64::from(mib) * 1024 * 1024 / BLOCK as u64;
        let path = kqring_test_support::ScratchPath::new("blocks")?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path.path())?;
        let guard = TestFile {
            file: file.try_clone()?,
            blocks,
            path,
        };
        let mut chunk = vec![0u8; 256 * BLOCK];
        let mut block = 0u64;
        while block < blocks {
            let n = (blocks - block).min(256) as usize;
            for (i, b) in chunk.chunks_mut(BLOCK).take(n).enumerate() {
                b[..8].copy_from_slice(&(block + i as u64).to_le_bytes());
                b[8..].fill((block as usize + i) as u8);
            }
            file.write_all(&chunk[..n * BLOCK])?;
            block += n as u64;
        }
        file.sync_data()?;
        let mut warm = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < blocks * BLOCK as u64 {
            off += file.read_at(&mut warm, off)?.max(1) as u64;
        }
        Ok(guard)
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        self.path.path()
    }

    /// The open file (read-write).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// How many 4 KiB blocks it has.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Checks a read of block `block`: `res` bytes into `buf`.
    pub fn check(&self, block: u64, res: i64, buf: &[u8]) -> Result<()> {
        check_block(block, res, buf)
    }
}

/// Checks a read of block `block` of a [`TestFile`]: `res` bytes into `buf`.
pub fn check_block(block: u64, res: i64, buf: &[u8]) -> Result<()> {
    ensure!(
        res == BLOCK as i64,
        "read of block {block} returned {res}, want {BLOCK}"
    );
    ensure!(
        buf.len() >= 8 && buf[..8] == block.to_le_bytes(),
        "read of block {block} brought another block's bytes"
    );
    Ok(())
}

/// The size of the sequential copy's source file, in MiB.
pub const COPY_MIB: u32 = 64;

/// Bytes per read and write of the sequential copy.
pub const COPY_CHUNK: usize = 128 * 1024;

/// Chunks in flight in the sequential copy (each a read, then a write).
pub const COPY_DEPTH: usize = 16;

/// The sequential copy's files: a warm [`TestFile`] of [`COPY_MIB`] MiB
/// and a destination beside it, both open read-write.
#[derive(Debug)]
pub struct CopyFiles {
    source: TestFile,
    destination: File,
    /// The destination's name; removed on drop.
    _path: kqring_test_support::ScratchPath,
}

impl CopyFiles {
    /// The source, written and read back once (its pages cached), and an
    /// empty destination.
    pub fn create() -> io::Result<CopyFiles> {
        let source = TestFile::create(COPY_MIB)?;
        let path = kqring_test_support::ScratchPath::new("copy")?;
        let destination = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path.path())?;
        Ok(CopyFiles {
            source,
            destination,
            _path: path,
        })
    }

    /// The source file.
    pub fn source(&self) -> &File {
        self.source.file()
    }

    /// The destination file.
    pub fn destination(&self) -> &File {
        &self.destination
    }

    /// The source's size in bytes.
    pub fn len(&self) -> u64 {
        self.source.blocks() * BLOCK as u64
    }

    /// Whether the source is empty (never: it has [`COPY_MIB`] MiB).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the destination, so that a run must write all of it.
    pub fn reset(&self) -> io::Result<()> {
        self.destination.set_len(0)
    }

    /// A plan of chunks for one measured run that stops on `window`'s end
    /// (see [`CopyPlan`]).
    pub fn plan(&self, window: &crate::stats::Window) -> CopyPlan {
        CopyPlan {
            window: window.clone(),
            size: self.len(),
            next: 0,
            stop: None,
        }
    }

    /// Checks that the destination is the source, byte for byte.
    pub fn check(&self) -> Result<()> {
        let len = self.destination.metadata()?.len();
        ensure!(
            len == self.len(),
            "the copy has {len} bytes, the source {}",
            self.len()
        );
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut off = 0;
        while off < len {
            let n = (len - off).min(a.len() as u64) as usize;
            self.source().read_exact_at(&mut a[..n], off)?;
            self.destination.read_exact_at(&mut b[..n], off)?;
            ensure!(
                a[..n] == b[..n],
                "the copy differs from the source in the MiB at {off}"
            );
            off += n as u64;
        }
        Ok(())
    }
}

/// The chunks of a sequential copy, handed out in order, the file over
/// and over: after the window ends, up to the end of the pass under way
/// (and at least one whole pass), so that the destination is then a whole
/// copy to check.
#[derive(Debug, Clone)]
pub struct CopyPlan {
    window: crate::stats::Window,
    size: u64,
    /// Chunks handed out so far, over every pass.
    next: u64,
    /// The chunk count at which to stop, once the window is over.
    stop: Option<u64>,
}

impl CopyPlan {
    /// The next chunk to copy, as (offset, length), or `None` when the
    /// copy is done.
    pub fn next_chunk(&mut self, now: std::time::Instant) -> Option<(u64, usize)> {
        let per_pass = self.size.div_ceil(COPY_CHUNK as u64).max(1);
        if self.stop.is_none() && self.window.over(now) {
            self.stop = Some(self.next.div_ceil(per_pass).max(1) * per_pass);
        }
        if self.stop.is_some_and(|stop| self.next >= stop) {
            return None;
        }
        let off = (self.next % per_pass) * COPY_CHUNK as u64;
        self.next += 1;
        Some((off, (self.size - off).min(COPY_CHUNK as u64) as usize))
    }
}

/// A small xorshift generator: random offsets without a dependency, the
/// same sequence for every system.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The shortest and longest timer of the timeouts workload.
pub const TIMER_RANGE: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_millis(100));

/// `n` timer durations spread over [`TIMER_RANGE`] at microsecond steps, in
/// shuffled order, so timer structures see inserts all over their range.
pub fn timer_durations(n: usize) -> Vec<Duration> {
    let (lo, hi) = TIMER_RANGE;
    let span = (hi - lo).as_micros() as u64;
    let mut rng = Rng::new(7);
    (0..n)
        .map(|_| lo + Duration::from_micros(rng.below(span + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn a_copy_plan_ends_on_a_whole_pass_and_the_check_catches_a_bad_copy() {
        let files = CopyFiles::create().unwrap();
        let per_pass = files.len() / COPY_CHUNK as u64;
        // A window already over: exactly one whole pass, in order.
        let window = crate::stats::Window::new(Duration::ZERO);
        let later = std::time::Instant::now() + Duration::from_secs(1);
        let mut plan = files.plan(&window);
        let chunks: Vec<(u64, usize)> = std::iter::from_fn(|| plan.next_chunk(later)).collect();
        assert_eq!(chunks.len() as u64, per_pass);
        for (i, &(off, len)) in chunks.iter().enumerate() {
            assert_eq!((off, len), (i as u64 * COPY_CHUNK as u64, COPY_CHUNK));
        }
        // Over in the middle of a second pass: up to that pass's end.
        let window = crate::stats::Window::new(Duration::from_secs(3600));
        let mut plan = files.plan(&window);
        let now = std::time::Instant::now();
        for _ in 0..per_pass + 3 {
            assert!(plan.next_chunk(now).is_some());
        }
        let far = now + Duration::from_secs(7200);
        let rest = std::iter::from_fn(|| plan.next_chunk(far)).count() as u64;
        assert_eq!(rest, per_pass - 3);
        // The check: an empty destination, a whole copy, one byte off.
        files.reset().unwrap();
        assert!(files.check().is_err());
        let mut buf = vec![0u8; COPY_CHUNK];
        for (off, len) in chunks {
            files.source().read_exact_at(&mut buf[..len], off).unwrap();
            files.destination().write_all_at(&buf[..len], off).unwrap();
        }
        files.check().unwrap();
        files
            .destination()
            .write_all_at(b"?", files.len() - 1)
            .unwrap();
        assert!(files.check().is_err());
    }

    #[test]
    fn messages_differ_by_round() {
        let m = Messages::new(64);
        assert_eq!(m.size(), 64);
        assert!(m.check(3, m.get(3)).is_ok());
        assert!(m.check(4, m.get(3)).is_err());
        assert!(m.check(3, &m.get(3)[..63]).is_err());
    }

    #[test]
    fn timers_stay_in_range() {
        let d = timer_durations(1000);
        assert!(
            d.iter()
                .all(|d| (TIMER_RANGE.0..=TIMER_RANGE.1).contains(d))
        );
        assert!(d.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn descriptor_limit_never_drops() {
        let first = raise_nofile().unwrap();
        assert!(first >= 256, "{first}");
        assert!(raise_nofile().unwrap() >= first);
    }

    #[test]
    fn tcp_pairs_connect() {
        let mut pairs = tcp_pairs(3).unwrap();
        let p = &mut pairs[2];
        p.client.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        p.server.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
    }

    #[test]
    fn test_file_blocks_are_tagged() {
        let f = TestFile::create(1).unwrap();
        assert_eq!(f.blocks(), 256);
        let mut buf = vec![0u8; BLOCK];
        let n = f.file().read_at(&mut buf, 17 * BLOCK as u64).unwrap();
        assert!(f.check(17, n as i64, &buf).is_ok());
        assert!(f.check(16, n as i64, &buf).is_err());
    }
}
