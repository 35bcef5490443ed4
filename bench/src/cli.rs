//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// kqring beside io_uring, tokio, monoio, compio and blocking syscalls.
///
/// With no arguments, runs the default suite (every workload but the
/// sweep, on every column: both kqring modes, io_uring plain, SQPOLL and
/// DEFER_TASKRUN, tokio multi-thread and current-thread, monoio's legacy
/// driver, compio's poll driver, blocking syscalls; and kqring's spans with
/// a subscriber on vs off; about 80 s on 2 cores; kqring's futures with
/// `--system all` or `kqring-async`) and prints the table and
/// the CPU each operation took. Figures are only comparable within one run
/// on one machine.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "kqring-bench",
    version,
    about,
    long_about = None,
    after_help = "Every run also measures kqring's spans with a subscriber on vs off; RUST_LOG \
                  (e.g. kqring=trace) prints each operation's span on stderr; a progress line \
                  shows on stderr when it is a terminal. --help says more.",
    after_long_help = "Every run also measures what kqring's per-operation spans cost: NOP batched \
                  with no subscriber, then with one that records every span (the table's row \
                  \"spans recorded (subscriber on)\", its last column on/off). It runs after the \
                  other workloads, which thus run with no subscriber, unless --trace is given \
                  or RUST_LOG is set.\n\n\
                  RUST_LOG=kqring=trace prints every kqring operation's span on stderr when it \
                  closes: the op, its user_data, fd and res, with time.busy and time.idle (keep \
                  the run short: --duration 0.1). Its subscriber is then the one the span row \
                  measures, and it stays on for every figure.\n\n\
                  While it runs, a progress line on stderr shows the step, the time so far and \
                  the workload and system being measured; it is rewritten in place, and left out \
                  when stderr is not a terminal (redirected, or in a pipe)."
)]
pub struct Args {
    /// Workloads to run (default: all).
    #[arg(long = "workload", value_enum, num_args = 1.., value_delimiter = ',')]
    pub workloads: Vec<WorkloadArg>,

    /// Measured seconds per workload and system (a short warm-up comes
    /// before it).
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    pub duration: Duration,

    /// Runs of every cell, interleaved across systems; each cell shows its
    /// median run (by throughput). Shared machines are noisy: several
    /// rounds keep a burst of noise from deciding a ratio.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=99))]
    pub rounds: u32,

    /// Connection counts for TCP echo; latency percentiles are reported for
    /// the smallest.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "1,16,256",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub connections: Vec<u32>,

    /// Rings for the thread-per-core TCP echo row (at the largest
    /// connection count): kqring and io_uring spread the connections over
    /// this many rings, each driven by its own thread; tokio and blocking
    /// run as in the other rows (they use every CPU already). 1 leaves the
    /// row out. Default: the number of CPUs.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub rings: Option<u32>,

    /// Message size in bytes for TCP echo and pipe ping-pong.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub msg_size: u32,

    /// Systems to run (default: the default suite's columns, see below);
    /// the others show "-". A family name (kqring, io-uring, tokio) selects
    /// each of its columns.
    #[arg(long = "system", value_enum, num_args = 1.., value_delimiter = ',')]
    pub systems: Vec<SystemArg>,

    /// Connection counts of the connection sweep (`--workload sweep`):
    /// TCP echo on kqring, io_uring and tokio at each count. The descriptor
    /// limit is raised as far as allowed first; a count it can't hold is
    /// reported as failed.
    #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "1,16,256,1024,10000",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sweep_connections: Vec<u32>,

    /// Adds a row comparing kqring's batched NOPs in this build with the
    /// same in FILE, a build of this program with spans compiled out
    /// (`--features spans-off`), run as a child process by turns with this
    /// one. bench/spans-off.sh builds it and runs this.
    #[arg(long, value_name = "FILE")]
    pub spans_off_build: Option<PathBuf>,

    /// Leaves out the span-cost row (subscriber on vs off); for the child
    /// runs of --spans-off-build.
    #[arg(long, hide = true)]
    pub no_span_cost: bool,

    /// Which kqring driving modes to run.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    pub mode: ModeArg,

    /// Keeps spans recorded for every figure: the subscriber that records
    /// every span (RUST_LOG's, if set) is installed before the workloads
    /// run, rather than after them for the span row only.
    #[arg(long)]
    pub trace: bool,

    /// Prints machine-readable results (JSON) on stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Writes an SVG chart of the round-trip latency distributions.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Timers armed at once by the timeouts workload.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub timers: u32,

    /// Size of the temporary file for random reads, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub file_mib: u32,

    /// kqring's polling-thread spin time before it parks, in µs (default:
    /// the library's, 1000).
    #[arg(long, value_name = "US")]
    pub sq_idle_us: Option<u64>,

    /// Threads in kqring's blocking pool (default: the library's, one per CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Worker threads of tokio's runtime (default: tokio's, one per CPU).
    /// `--tokio-workers 1` sets one thread against one ring.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub tokio_workers: Option<u32>,

    /// TCP echo on plain descriptors: kqring and io_uring then use the
    /// connections' own descriptor numbers rather than registered files.
    #[arg(long)]
    pub plain_fds: bool,

    /// Reads in flight in the random-read workload.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub queue_depth: u32,

    /// Random reads with IOSQE_ASYNC on kqring and io_uring: every read goes
    /// to kqring's blocking pool and to io_uring's io-wq workers, which
    /// measures the hand-off to threads and back (the others are
    /// unchanged).
    #[arg(long)]
    pub file_async: bool,
}

/// A workload, or a group of them, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Every workload.
    All,
    /// `nop-batched` and `nop-rtt`.
    Nop,
    /// NOP throughput, 64 per submit.
    NopBatched,
    /// NOP round trip, one in flight.
    NopRtt,
    /// Pipe ping-pong with a partner thread.
    Pipe,
    /// TCP echo over loopback: latency and throughput per connection count.
    Tcp,
    /// 4 KiB random reads from a warm file.
    File,
    /// Many timers armed at once.
    Timeouts,
    /// TCP echo over many connection counts (`--sweep-connections`), for
    /// kqring, io_uring and tokio; not part of `all`.
    Sweep,
    /// Open + statx + close of small files, `--queue-depth` files at once,
    /// for kqring, io_uring and blocking syscalls; not part of `all`.
    FsMeta,
    /// A 64 MiB sequential copy of a warm file, 16 chunks of 128 KiB in
    /// flight, for kqring, io_uring, tokio and blocking syscalls, the copy
    /// checked; not part of `all`.
    Copy,
}

/// A system, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SystemArg {
    /// kqring, in the modes `--mode` selects.
    Kqring,
    /// kqring's futures (`kqring::proactor`) on kqring's `block_on`, in
    /// the modes `--mode` selects.
    KqringAsync,
    /// Every io_uring column: plain, SQPOLL and DEFER_TASKRUN.
    IoUring,
    /// io_uring with no setup flags.
    IoUringPlain,
    /// io_uring with SQPOLL (beside kqring's polling thread).
    IoUringSqpoll,
    /// io_uring with SINGLE_ISSUER | DEFER_TASKRUN (beside kqring inline).
    IoUringDefer,
    /// Both tokio runtimes.
    Tokio,
    /// tokio's multi-thread runtime.
    TokioMt,
    /// tokio's current-thread runtime.
    TokioCt,
    /// monoio with its legacy (mio) driver.
    Monoio,
    /// compio with its poll driver.
    Compio,
    /// Blocking syscalls.
    Blocking,
    /// Every column.
    All,
}

impl SystemArg {
    /// The columns this name selects.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            SystemArg::Kqring => &["kqring-poller", "kqring-inline"],
            SystemArg::KqringAsync => &["kqring-async-poller", "kqring-async"],
            SystemArg::IoUring => &crate::report::IO_URING,
            SystemArg::IoUringPlain => &["io_uring"],
            SystemArg::IoUringSqpoll => &["io_uring-sqpoll"],
            SystemArg::IoUringDefer => &["io_uring-defer"],
            SystemArg::Tokio => &["tokio", "tokio-ct"],
            SystemArg::TokioMt => &["tokio"],
            SystemArg::TokioCt => &["tokio-ct"],
            SystemArg::Monoio => &["monoio"],
            SystemArg::Compio => &["compio"],
            SystemArg::Blocking => &["blocking"],
            SystemArg::All => &crate::report::COLUMNS,
        }
    }
}

/// The columns the default suite runs (no `--system`): every one but
/// kqring's futures (`--system kqring-async`, or `all`), which would take
/// it past 90 s on 2 cores. The sweep runs kqring, io_uring and tokio of
/// these.
pub const DEFAULT_COLUMNS: &[&str] = {
    // The futures' two columns come last (`systems_filter_columns` checks).
    let (default, _futures) = crate::report::COLUMNS.split_at(10);
    default
};

/// The columns the connection sweep runs, of those selected.
pub const SWEEP_COLUMNS: &[&str] = &[
    "kqring-poller",
    "kqring-inline",
    "io_uring",
    "io_uring-sqpoll",
    "io_uring-defer",
    "tokio",
    "tokio-ct",
];

/// The kqring modes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// The dedicated polling thread (io_uring's SQPOLL).
    Poller,
    /// The caller's thread drives the ring.
    Inline,
    /// Both, side by side.
    Both,
}

/// One workload to run, after groups are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// NOP throughput, 64 per submit.
    NopBatched,
    /// NOP round trip.
    NopRtt,
    /// Pipe ping-pong.
    Pipe,
    /// TCP echo.
    Tcp,
    /// Random file reads.
    File,
    /// Timers.
    Timeouts,
    /// The connection sweep.
    Sweep,
    /// Open + statx + close.
    FsMeta,
    /// Sequential copy.
    Copy,
}

impl Workload {
    /// Every workload of the default suite, in table order.
    pub const ALL: [Workload; 6] = [
        Workload::NopBatched,
        Workload::NopRtt,
        Workload::Pipe,
        Workload::Tcp,
        Workload::File,
        Workload::Timeouts,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::NopBatched => "nop-batched",
            Workload::NopRtt => "nop-rtt",
            Workload::Pipe => "pipe",
            Workload::Tcp => "tcp",
            Workload::File => "file",
            Workload::Timeouts => "timeouts",
            Workload::Sweep => "sweep",
            Workload::FsMeta => "fs-meta",
            Workload::Copy => "copy",
        }
    }
}

impl Args {
    /// The workloads to run, in table order, without repeats.
    pub fn selected(&self) -> Vec<Workload> {
        if self.workloads.is_empty() {
            return Workload::ALL.to_vec();
        }
        let mut out: Vec<Workload> = self
            .workloads
            .iter()
            .flat_map(|w| match w {
                WorkloadArg::All => Workload::ALL.to_vec(),
                WorkloadArg::Nop => vec![Workload::NopBatched, Workload::NopRtt],
                WorkloadArg::NopBatched => vec![Workload::NopBatched],
                WorkloadArg::NopRtt => vec![Workload::NopRtt],
                WorkloadArg::Pipe => vec![Workload::Pipe],
                WorkloadArg::Tcp => vec![Workload::Tcp],
                WorkloadArg::File => vec![Workload::File],
                WorkloadArg::Timeouts => vec![Workload::Timeouts],
                WorkloadArg::Sweep => vec![Workload::Sweep],
                WorkloadArg::FsMeta => vec![Workload::FsMeta],
                WorkloadArg::Copy => vec![Workload::Copy],
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The connection counts, ascending, without repeats.
    pub fn connection_counts(&self) -> Vec<usize> {
        let mut c: Vec<usize> = self.connections.iter().map(|&n| n as usize).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// Rings for the thread-per-core TCP echo row (1: no such row).
    pub fn rings(&self) -> usize {
        self.rings.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |n| n as usize,
        )
    }

    /// Whether the column named `column` (one of `report::COLUMNS`) is to
    /// run; kqring's two also depend on `--mode`.
    pub fn runs(&self, column: &str) -> bool {
        let selected = if self.systems.is_empty() {
            DEFAULT_COLUMNS.contains(&column)
        } else {
            self.systems.iter().any(|s| s.columns().contains(&column))
        };
        selected
            && match column {
                "kqring-poller" | "kqring-async-poller" => self.mode != ModeArg::Inline,
                "kqring-inline" | "kqring-async" => self.mode != ModeArg::Poller,
                _ => true,
            }
    }

    /// The sweep's connection counts, ascending, without repeats.
    pub fn sweep_counts(&self) -> Vec<usize> {
        let mut c: Vec<usize> = self.sweep_connections.iter().map(|&n| n as usize).collect();
        c.sort_unstable();
        c.dedup();
        c
    }

    /// kqring's builder settings from the command line.
    pub fn tuning(&self) -> crate::systems::kqring::Tuning {
        crate::systems::kqring::Tuning {
            sq_idle: self.sq_idle_us.map(Duration::from_micros),
            workers: self.workers.map(|n| n as usize),
        }
    }

    /// kqring's builder settings, in words, marking the library's defaults.
    pub fn kqring_settings(&self) -> String {
        let idle = match self.sq_idle_us {
            Some(us) => format!("sq_idle {us} µs"),
            None => "sq_idle 1 ms (default)".into(),
        };
        let workers = match self.workers {
            Some(n) => format!("{n} workers"),
            None => format!(
                "{} workers (default: one per CPU)",
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
            ),
        };
        format!("{idle}, {workers}")
    }

    /// tokio's runtime, in words.
    pub fn tokio_settings(&self) -> String {
        match self.tokio_workers {
            Some(1) => "1 worker thread".into(),
            Some(n) => format!("{n} worker threads"),
            None => "one worker thread per CPU (default)".into(),
        }
    }

    /// How kqring and io_uring name TCP echo's sockets, in words.
    pub fn tcp_descriptors(&self) -> &'static str {
        if self.plain_fds {
            "kqring and io_uring use plain descriptors (--plain-fds)"
        } else {
            "kqring and io_uring register both ends of every connection \
             as fixed files (--plain-fds: plain descriptors)"
        }
    }

    /// The kqring modes to run (none if kqring is not selected).
    pub fn kqring_modes(&self) -> Vec<kqring::Mode> {
        [kqring::Mode::PollingThread, kqring::Mode::Inline]
            .into_iter()
            .filter(|&m| self.runs(crate::systems::kqring::Kqring::column(m)))
            .collect()
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!("{s} s is out of range (0, 3600]"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("kqring-bench").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn defaults_select_everything() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.selected(), Workload::ALL.to_vec());
        assert_eq!(a.connection_counts(), vec![1, 16, 256]);
        assert_eq!(a.msg_size, 64);
        assert_eq!(a.kqring_modes().len(), 2);
        assert!(!a.json && !a.trace && a.plot.is_none());
    }

    #[test]
    fn groups_expand_in_table_order() {
        let a = parse(&["--workload", "timeouts", "nop", "--workload", "nop-rtt"]).unwrap();
        assert_eq!(
            a.selected(),
            vec![Workload::NopBatched, Workload::NopRtt, Workload::Timeouts]
        );
        let a = parse(&["--workload", "tcp,pipe"]).unwrap();
        assert_eq!(a.selected(), vec![Workload::Pipe, Workload::Tcp]);
    }

    #[test]
    fn numbers_are_validated() {
        let a = parse(&["--duration", "0.25", "--connections", "16,1,16"]).unwrap();
        assert_eq!(a.duration, Duration::from_millis(250));
        assert_eq!(a.connection_counts(), vec![1, 16]);
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--duration", "soon"]).is_err());
        assert!(parse(&["--connections", "0"]).is_err());
        assert!(parse(&["--msg-size", "0"]).is_err());
        assert!(parse(&["--workload", "bogus"]).is_err());
        assert!(parse(&["--mode", "sideways"]).is_err());
    }

    #[test]
    fn systems_filter_columns() {
        let a = parse(&["--system", "io-uring,tokio-ct"]).unwrap();
        assert!(a.runs("io_uring") && a.runs("io_uring-sqpoll") && a.runs("io_uring-defer"));
        assert!(a.runs("tokio-ct") && !a.runs("tokio"));
        assert!(!a.runs("blocking") && !a.runs("monoio"));
        assert!(a.kqring_modes().is_empty());
        let a = parse(&["--system", "io-uring-sqpoll,monoio,compio,tokio"]).unwrap();
        assert!(a.runs("io_uring-sqpoll") && !a.runs("io_uring"));
        assert!(a.runs("monoio") && a.runs("compio") && a.runs("tokio") && a.runs("tokio-ct"));
        let a = parse(&[]).unwrap();
        for col in DEFAULT_COLUMNS {
            assert!(a.runs(col), "{col}");
        }
        assert!(!a.runs("kqring-async") && !a.runs("kqring-async-poller"));
        let a = parse(&["--system", "all"]).unwrap();
        assert!(a.runs("kqring-async") && a.runs("kqring-async-poller"));
        let a = parse(&["--system", "all", "--mode", "inline"]).unwrap();
        assert!(a.runs("blocking") && !a.runs("kqring-poller"));
    }

    #[test]
    fn sweep_is_its_own_workload() {
        let a = parse(&["--workload", "all"]).unwrap();
        assert!(!a.selected().contains(&Workload::Sweep));
        let a = parse(&["--workload", "sweep", "--sweep-connections", "16,1,16"]).unwrap();
        assert_eq!(a.selected(), vec![Workload::Sweep]);
        assert_eq!(a.sweep_counts(), vec![1, 16]);
        let a = parse(&[]).unwrap();
        assert_eq!(a.sweep_counts(), vec![1, 16, 256, 1024, 10_000]);
        assert!(parse(&["--sweep-connections", "0"]).is_err());
    }

    #[test]
    fn mode_selects_columns() {
        let a = parse(&["--mode", "inline"]).unwrap();
        assert_eq!(a.kqring_modes(), vec![kqring::Mode::Inline]);
        let a = parse(&["--mode", "poller", "--json", "--plot", "x.svg", "--trace"]).unwrap();
        assert_eq!(a.kqring_modes(), vec![kqring::Mode::PollingThread]);
        assert!(a.json && a.trace);
        assert_eq!(a.plot.as_deref(), Some(std::path::Path::new("x.svg")));
    }
}
