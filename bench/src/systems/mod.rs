//! The systems under test, one module each. Every system implements the
//! workloads it can express; the others keep the default (`None`), shown as
//! "-" in the table.
//!
//! Each workload checks every result it gets (bytes echoed equal bytes
//! sent, reads return 4096 bytes of the right block, timers report
//! expiry) and fails with an error rather than count a wrong one.

use std::time::Duration;

use crate::Result;
use crate::fixtures::{TcpPair, TestFile};
use crate::stats::{Measurement, Recorder, Window};

pub mod blocking;
#[cfg(target_os = "linux")]
pub mod io_uring;
pub mod kqring;
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
    /// Timers armed at once (timeouts).
    pub timers: usize,
    /// TCP echo: kqring and io_uring register both ends of every
    /// connection as fixed files, as a server that owns its connections
    /// would.
    pub registered_files: bool,
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
            .map(|share| s.spawn(move || echo(share, window)))
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

/// The io_uring system, or why there is none: the kernel may refuse
/// (seccomp, `io_uring_disabled`), and other platforms have no io_uring.
pub fn io_uring() -> std::result::Result<Box<dyn System>, String> {
    #[cfg(target_os = "linux")]
    {
        io_uring::IoUringSystem::probe().map(|s| Box::new(s) as Box<dyn System>)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err("not Linux".to_string())
    }
}
