//! The systems under test, one module each. Every system implements the
//! workloads it can express; the others keep the default (`None`), shown as
//! "-" in the table.
//!
//! Each workload checks every result it gets (bytes echoed equal bytes
//! sent, reads return 4096 bytes of the right block, timers report
//! expiry) and fails with an error rather than count a wrong one.

use std::time::Duration;

use crate::Result;
use crate::fixtures::{CopyFiles, TcpPair, TestFile};
use crate::stats::{Measurement, Recorder, Window};

pub mod blocking;
pub mod compio;
pub mod echo;
#[cfg(target_os = "linux")]
pub mod io_uring;
pub mod kqring;
pub mod kqring_async;
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub mod monoio;
pub mod tokio;

/// NOPs per submission in the batched NOP workload.
pub const BATCH: u64 = 64;

/// What every workload of a run shares.
#[derive(Debug, Clone)]
pub struct Params {
    /// Measured time per workload (a warm-up comes first).
    pub duration: Duration,
    /// Bytes per message (TCP echo, pipe ping-pong).
    pub msg_size: usize,
    /// Reads in flight (random reads).
    pub queue_depth: usize,
    /// Random reads with `IOSQE_ASYNC` (kqring, io_uring): on their threads.
    pub file_async: bool,
    /// Timers armed at once (timeouts).
    pub timers: usize,
    /// TCP echo: kqring and io_uring register both ends of every
    /// connection as fixed files, as a server that owns its connections
    /// would.
    pub registered_files: bool,
    /// kqring's polling-thread idle time if set (`None`: the library's,
    /// 1 ms); io_uring's SQPOLL thread gets the same.
    pub sq_idle: Option<Duration>,
}

/// A system's answer for one workload: `None` when the workload means
/// nothing for it (a NOP for tokio), else the measurement or the error
/// that stopped it.
pub type Outcome = Option<Result<Measurement>>;

/// One system under test.
///
/// Measurements are in operations: NOPs, round trips (one message sent and
/// its echo checked), reads, or timers (with per-timer lateness as the
/// latency samples and the time until the last fired as `elapsed`).
pub trait System {
    /// The column name.
    fn name(&self) -> &'static str;

    /// NOPs in batches of [`BATCH`] per submission.
    fn nop_batched(&mut self, _p: &Params) -> Outcome {
        None
    }

    /// One NOP submitted and reaped at a time.
    fn nop_rtt(&mut self, _p: &Params) -> Outcome {
        None
    }

    /// Pipe ping-pong with a partner thread; latency per round trip.
    fn pipe(&mut self, _p: &Params) -> Outcome {
        None
    }

    /// TCP echo over `conns` loopback connections, both ends driven by this
    /// system, one message in flight per connection; latency per round
    /// trip.
    fn tcp_echo(&mut self, _p: &Params, _conns: usize) -> Outcome {
        None
    }

    /// TCP echo over `conns` connections spread over `rings` rings, each
    /// driven by its own thread (thread per core). Systems without rings
    /// run [`System::tcp_echo`]: they spread over every CPU already.
    fn tcp_echo_rings(&mut self, p: &Params, conns: usize, _rings: usize) -> Outcome {
        self.tcp_echo(p, conns)
    }

    /// 4 KiB reads at random block offsets of a warm file.
    fn file_read(&mut self, _p: &Params, _file: &TestFile) -> Outcome {
        None
    }

    /// Opens, statx-es and closes `files`, each again as soon as its
    /// close is done: every file's round counts one.
    fn fs_meta(&mut self, _p: &Params, _files: &[std::ffi::CString]) -> Outcome {
        None
    }

    /// Copies `files`' source to its destination over and over, in
    /// chunks of [`COPY_CHUNK`](crate::fixtures::COPY_CHUNK), each read
    /// then written at its offset, [`COPY_DEPTH`](crate::fixtures::COPY_DEPTH)
    /// chunks at once (or as many as the system can have in flight): every
    /// chunk written counts one. The caller empties the destination before
    /// and checks the copy after.
    fn copy(&mut self, _p: &Params, _files: &CopyFiles) -> Outcome {
        None
    }

    /// `p.timers` timers of staggered durations armed at once.
    fn timeouts(&mut self, _p: &Params) -> Outcome {
        None
    }
}

/// Runs `echo` on `rings` threads at once, each with its share of `pairs`
/// (dealt round-robin) and the same measuring window, and adds up what
/// they counted.
pub fn on_rings<F>(p: &Params, pairs: Vec<TcpPair>, rings: usize, echo: F) -> Result<Measurement>
where
    F: Fn(Vec<TcpPair>, Window) -> Result<Recorder> + Sync,
{
    let mut shares: Vec<Vec<TcpPair>> = (0..rings.max(1)).map(|_| Vec::new()).collect();
    let n = shares.len();
    for (i, pair) in pairs.into_iter().enumerate() {
        shares[i % n].push(pair);
    }
    let window = Window::new(p.duration);
    let echo = &echo;
    let results: Vec<Result<Recorder>> = std::thread::scope(|s| {
        let threads: Vec<_> = shares
            .into_iter()
            .filter(|share| !share.is_empty())
            .map(|share| {
                let window = window.clone();
                s.spawn(move || echo(share, window))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("an echo thread panicked".into()))
            })
            .collect()
    });
    let mut total: Option<Recorder> = None;
    for r in results {
        let r = r?;
        match &mut total {
            Some(t) => t.merge(r),
            None => total = Some(r),
        }
    }
    Ok(total.ok_or("no connections")?.finish())
}

/// Why a column has no system.
#[derive(Debug, Clone)]
pub enum Missing {
    /// This machine or OS can't run it (no io_uring, seccomp, another OS).
    Unavailable(String),
    /// It runs, but not as the column says (compio picked another driver):
    /// a failure, reported as such.
    Wrong(String),
}

/// The system behind the column named `column` (one of
/// `report::COLUMNS`), with a note for the table's header if it has one.
pub fn make(
    column: &str,
    args: &crate::cli::Args,
    p: &Params,
) -> std::result::Result<(Box<dyn System>, Option<String>), Missing> {
    let plain = |s: Box<dyn System>| Ok((s, None));
    match column {
        "kqring-poller" => plain(Box::new(kqring::Kqring::tuned(
            ::kqring::Mode::PollingThread,
            args.tuning(),
        ))),
        "kqring-inline" => plain(Box::new(kqring::Kqring::tuned(
            ::kqring::Mode::Inline,
            args.tuning(),
        ))),
        "io_uring" | "io_uring-sqpoll" | "io_uring-defer" => io_uring(column, p),
        "tokio" => plain(Box::new(tokio::Tokio::new(
            args.tokio_workers.map(|n| n as usize),
        ))),
        "tokio-ct" => plain(Box::new(tokio::Tokio::current_thread())),
        "kqring-async" => plain(Box::new(kqring_async::KqringAsync::tuned(
            ::kqring::Mode::Inline,
            args.tuning(),
        ))),
        "kqring-async-poller" => plain(Box::new(kqring_async::KqringAsync::tuned(
            ::kqring::Mode::PollingThread,
            args.tuning(),
        ))),
        "monoio" => monoio(),
        "compio" => {
            compio::Compio::probe().map(|(s, note)| (Box::new(s) as Box<dyn System>, Some(note)))
        }
        "blocking" => plain(Box::new(blocking::Blocking::new())),
        other => Err(Missing::Wrong(format!("no system named {other}"))),
    }
}

fn monoio() -> std::result::Result<(Box<dyn System>, Option<String>), Missing> {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    {
        monoio::Monoio::probe()
            .map(|s| (Box::new(s) as Box<dyn System>, None))
            .map_err(Missing::Unavailable)
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        Err(Missing::Unavailable(
            "monoio 0.2 does not build for this OS".into(),
        ))
    }
}

/// An io_uring column's system, or why there is none: the kernel may refuse
/// (seccomp, `io_uring_disabled`, a setup flag it lacks), and other
/// platforms have no io_uring.
fn io_uring(
    column: &str,
    p: &Params,
) -> std::result::Result<(Box<dyn System>, Option<String>), Missing> {
    #[cfg(target_os = "linux")]
    {
        let variant = match column {
            "io_uring-sqpoll" => io_uring::Variant::SqPoll,
            "io_uring-defer" => io_uring::Variant::DeferTaskrun,
            _ => io_uring::Variant::Plain,
        };
        io_uring::IoUringSystem::probe(variant, p.sq_idle)
            .map(|(s, note)| (Box::new(s) as Box<dyn System>, note))
            .map_err(Missing::Unavailable)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (column, p);
        Err(Missing::Unavailable("not Linux".to_string()))
    }
}
