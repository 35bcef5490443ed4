//! Results: rows of figures per system, printed as a table or as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::stats::{CpuTime, Samples};

/// The columns, in table order, as JSON and the plot name them.
pub const COLUMNS: [&str; 12] = [
    "kqring-poller",
    "kqring-inline",
    "io_uring",
    "io_uring-sqpoll",
    "io_uring-defer",
    "tokio",
    "tokio-ct",
    "monoio",
    "compio",
    "blocking",
    "kqring-async-poller",
    "kqring-async",
];

/// The table's headers for [`COLUMNS`], in the same order.
pub const HEADERS: [&str; 12] = [
    "kqring-poller",
    "kqring-inline",
    "io_uring",
    "io_uring SQPOLL",
    "io_uring DEFER_TASKRUN",
    TOKIO_HEADER,
    TOKIO_CT_HEADER,
    MONOIO_HEADER,
    "compio (poll driver)",
    "blocking syscalls",
    "kqring futures (poller)",
    "kqring futures (inline, block_on)",
];

/// tokio's headers name the readiness API its runtime stands on here.
#[cfg(any(target_os = "linux", target_os = "android"))]
const TOKIO_HEADER: &str = "tokio mt (epoll)";
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const TOKIO_HEADER: &str = "tokio mt (kqueue)";
#[cfg(any(target_os = "linux", target_os = "android"))]
const TOKIO_CT_HEADER: &str = "tokio ct (epoll)";
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const TOKIO_CT_HEADER: &str = "tokio ct (kqueue)";
#[cfg(any(target_os = "linux", target_os = "android"))]
const MONOIO_HEADER: &str = "monoio legacy (mio, epoll)";
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MONOIO_HEADER: &str = "monoio legacy (mio, kqueue)";

/// The kqring columns (the ratio takes the better of them).
pub const KQRING: [&str; 2] = ["kqring-poller", "kqring-inline"];

/// The io_uring columns (the ratio divides by the best of them).
pub const IO_URING: [&str; 3] = ["io_uring", "io_uring-sqpoll", "io_uring-defer"];

/// The short name of a column in a ratio: the kqring mode or the io_uring
/// variant.
pub fn short_name(column: &str) -> &str {
    match column {
        "io_uring" => "plain",
        "io_uring-sqpoll" => "sqpoll",
        "io_uring-defer" => "defer",
        c => c.strip_prefix("kqring-").unwrap_or(c),
    }
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Throughput.
    Higher,
    /// Time.
    Lower,
}

/// One system's figure in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// The figure, in the row's base unit.
    Value(f64),
    /// The workload means nothing for this system (a NOP for tokio).
    NotApplicable,
    /// This column was not selected (`--mode`).
    NotRun,
    /// The system could not be set up on this machine.
    Unavailable,
    /// The workload failed; the message says why.
    Failed(String),
}

impl Cell {
    fn value(&self) -> Option<f64> {
        match self {
            Cell::Value(v) => Some(*v),
            _ => None,
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Value(v) => json!(v),
            Cell::NotApplicable => json!("n/a"),
            Cell::NotRun => json!("not run"),
            Cell::Unavailable => json!("unavailable"),
            Cell::Failed(e) => json!(format!("error: {e}")),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload's command-line name.
    pub workload: &'static str,
    /// What the row shows, with the display unit (`"NOP batched ×64, M ops/s"`).
    pub label: String,
    /// The base unit of the values (`"ops/s"`, `"ns"`).
    pub unit: &'static str,
    /// Display value = base value × `scale`.
    pub scale: f64,
    /// Which way is better.
    pub better: Better,
    /// One cell per column of [`COLUMNS`], in order.
    pub cells: Vec<Cell>,
    /// CPU time per operation, one per column (`None`: no figure); empty
    /// when the row shares its measurement with a row that has them.
    pub cpu: Vec<Option<CpuTime>>,
    /// What the CPU figures are per, as the CPU table's row label
    /// (`"TCP echo 16 conn, µs per msg"`).
    pub cpu_label: Option<String>,
    /// The connection count of a sweep row (the plot's x).
    pub connections: Option<usize>,
}

impl Row {
    fn cell(&self, column: &str) -> &Cell {
        let i = COLUMNS
            .iter()
            .position(|c| *c == column)
            .expect("a known column");
        &self.cells[i]
    }

    /// The best figure among `columns`, and its column.
    fn best(&self, columns: &[&'static str]) -> Option<(f64, &'static str)> {
        columns
            .iter()
            .filter_map(|m| self.cell(m).value().map(|v| (v, *m)))
            .reduce(|a, b| match self.better {
                Better::Higher if b.0 > a.0 => b,
                Better::Lower if b.0 < a.0 => b,
                _ => a,
            })
    }

    /// The better kqring mode's figure over the best io_uring variant's,
    /// with the mode and the variant.
    pub fn ratio(&self) -> Option<Ratio> {
        let (base, io_uring) = self.best(&IO_URING)?;
        let (best, kqring) = self.best(&KQRING)?;
        (base > 0.0).then(|| Ratio {
            value: best / base,
            kqring,
            io_uring,
        })
    }
}

/// kqring's best figure of a row over io_uring's best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    /// kqring / io_uring, the figures as shown.
    pub value: f64,
    /// The kqring column that gave kqring's figure.
    pub kqring: &'static str,
    /// The io_uring column that gave io_uring's figure.
    pub io_uring: &'static str,
}

impl Ratio {
    /// `0.76x (inline/sqpoll)`.
    pub fn text(&self) -> String {
        format!(
            "{:.2}x ({}/{})",
            self.value,
            short_name(self.kqring),
            short_name(self.io_uring)
        )
    }
}

/// The latency samples of one workload, per system that has them.
#[derive(Debug, Clone)]
pub struct LatencySet {
    /// Short key (`"pipe"`, `"tcp-1"`).
    pub key: String,
    /// Title for charts.
    pub title: String,
    /// (column, samples), in column order.
    pub series: Vec<(&'static str, Samples)>,
}

/// The cost of kqring's spans: its NOP batched workload with no subscriber
/// ("off"), then with one installed ("on").
#[derive(Debug, Clone)]
pub struct SpanCost {
    /// The subscriber that was on, in words.
    pub subscriber: String,
    /// Whether it stayed on for every other figure (`--trace`, or
    /// `RUST_LOG` set); if not, it was measured after them.
    pub throughout: bool,
    /// Measured time of each of its runs.
    pub measured: Duration,
    /// (column, its figures), per kqring mode run.
    pub rows: Vec<(&'static str, OffOn)>,
}

/// NOPs/s with no subscriber and with one, or why it failed.
pub type OffOn = Result<(f64, f64), String>;

/// The label of the span-cost row.
pub const SPAN_ROW: &str = "NOP batched ×64, spans recorded (subscriber on), M ops/s ↑";

impl SpanCost {
    /// The "on" figures as cells, one per column of [`COLUMNS`].
    fn cells(&self) -> Vec<Cell> {
        COLUMNS
            .iter()
            .map(|col| match self.rows.iter().find(|(c, _)| c == col) {
                Some((_, Ok((_, on)))) => Cell::Value(*on),
                Some((_, Err(e))) => Cell::Failed(e.clone()),
                None if KQRING.contains(col) => Cell::NotRun,
                None => Cell::NotApplicable,
            })
            .collect()
    }

    /// on/off of the mode with the better "on" figure, and that mode.
    pub fn ratio(&self) -> Option<(f64, &'static str)> {
        self.rows
            .iter()
            .filter_map(|(col, r)| r.as_ref().ok().map(|&(off, on)| (off, on, *col)))
            .filter(|&(off, _, _)| off > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(off, on, col)| (on / off, col))
    }

    /// The note under the table that says what the row measured.
    fn note(&self) -> String {
        let per_mode: Vec<String> = self
            .rows
            .iter()
            .map(|(col, r)| match r {
                Ok((off, on)) => format!(
                    "{} {} → {} M ops/s: {:.2}x",
                    short_name(col),
                    fmt_value(off * 1e-6),
                    fmt_value(on * 1e-6),
                    on / off
                ),
                Err(_) => format!("{} failed", short_name(col)),
            })
            .collect();
        let when = if self.throughout {
            "before the other workloads, and left on for them"
        } else {
            "after the other workloads, which ran with no subscriber"
        };
        format!(
            "spans recorded (subscriber on): kqring's NOP batched ×64 with {}, installed {when}; \
             its last column is on/off for the mode with the better \"on\" figure (named), over \
             the same workload with no subscriber measured just before it ({}; {:.2} s per run)",
            self.subscriber,
            per_mode.join("; "),
            self.measured.as_secs_f64()
        )
    }
}

/// Where the run happened.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available.
    pub cpus: usize,
    /// CPU model name.
    pub cpu_model: String,
    /// OS and kernel release.
    pub os: String,
    /// The 1-minute load average when the run started (it still counts
    /// work that ended up to a minute before).
    pub load: Option<f64>,
    /// The share of all CPUs busy in the 200 ms before the run (Linux):
    /// other work skews every figure, and those of spinning threads most.
    pub busy: Option<f64>,
}

impl Machine {
    /// This machine.
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, m)| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpus,
            cpu_model,
            os: uname(),
            load: load_average(),
            busy: busy_share(Duration::from_millis(200)),
        }
    }
}

/// (busy, total) jiffies of all CPUs so far, from `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

fn busy_share(over: Duration) -> Option<f64> {
    let (b0, t0) = cpu_jiffies()?;
    std::thread::sleep(over);
    let (b1, t1) = cpu_jiffies()?;
    (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
}

fn load_average() -> Option<f64> {
    let mut avg = [0f64; 1];
    // SAFETY: getloadavg writes at most `nelem` doubles into the array.
    let n = unsafe { libc::getloadavg(avg.as_mut_ptr(), 1) };
    (n == 1).then_some(avg[0])
}

fn uname() -> String {
    // SAFETY: utsname is plain bytes; uname fills it or fails.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return std::env::consts::OS.into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}

/// Everything one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The machine.
    pub machine: Machine,
    /// Measured time per workload and system.
    pub duration: Duration,
    /// Runs per cell; a cell shows the median one.
    pub rounds: usize,
    /// Message size of TCP echo and pipe ping-pong.
    pub msg_size: usize,
    /// kqring's builder settings, as a note (`"sq_idle 1 ms (default), 2 workers (default: one per CPU)"`).
    pub kqring_settings: String,
    /// tokio's runtime, as a note (`"one worker thread per CPU"`).
    pub tokio_settings: String,
    /// How kqring and io_uring name TCP echo's sockets, as a note.
    pub tcp_descriptors: &'static str,
    /// Workloads run (command-line names).
    pub workloads: Vec<&'static str>,
    /// Systems that could not run, and why.
    pub unavailable: Vec<(&'static str, String)>,
    /// The table.
    pub rows: Vec<Row>,
    /// Latency samples behind the percentile rows and the plot.
    pub latency: Vec<LatencySet>,
    /// The cost of kqring's spans, subscriber on vs off.
    pub span_cost: SpanCost,
    /// The default build against one with spans compiled out
    /// (`--spans-off-build`), if asked for.
    pub spans_compiled_out: Option<BuildCompare>,
    /// Facts about the systems found at run time, printed in the header
    /// (the driver compio chose, SQPOLL's thread, the descriptor limit).
    pub system_notes: Vec<String>,
    /// Failures, as "workload / system: message".
    pub errors: Vec<String>,
    /// How long the whole run took.
    pub wall_time: Duration,
}

/// kqring's batched NOPs in this build against the same in a build with
/// spans compiled out (tracing's static max level off), no subscriber in
/// either, interleaved round by round.
#[derive(Debug, Clone)]
pub struct BuildCompare {
    /// The other build's program.
    pub program: String,
    /// (column, (this build's M ops/s... in ops/s, the other build's)).
    pub rows: Vec<(&'static str, OffOn)>,
}

/// The label of the compiled-out spans row.
pub const SPANS_OUT_ROW: &str = "NOP batched ×64, spans compiled out (other build), M ops/s ↑";

impl BuildCompare {
    fn cells(&self) -> Vec<Cell> {
        COLUMNS
            .iter()
            .map(|col| match self.rows.iter().find(|(c, _)| c == col) {
                Some((_, Ok((_, out)))) => Cell::Value(*out),
                Some((_, Err(e))) => Cell::Failed(e.clone()),
                None if KQRING.contains(col) => Cell::NotRun,
                None => Cell::NotApplicable,
            })
            .collect()
    }

    /// default/compiled-out for the mode with the better default figure.
    pub fn ratio(&self) -> Option<(f64, &'static str)> {
        self.rows
            .iter()
            .filter_map(|(col, r)| r.as_ref().ok().map(|&(def, out)| (def, out, *col)))
            .filter(|&(_, out, _)| out > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(def, out, col)| (def / out, col))
    }

    fn note(&self) -> String {
        let per_mode: Vec<String> = self
            .rows
            .iter()
            .map(|(col, r)| match r {
                Ok((def, out)) => format!(
                    "{} {} (default) vs {} (compiled out) M ops/s: {:.2}x",
                    short_name(col),
                    fmt_value(def * 1e-6),
                    fmt_value(out * 1e-6),
                    def / out
                ),
                Err(_) => format!("{} failed", short_name(col)),
            })
            .collect();
        format!(
            "spans compiled out: kqring's NOP batched ×64 in this build and in {} (built with \
             the bench feature spans-off: tracing's static max level off), no subscriber in \
             either, the two run by turns; its last column is default/compiled-out ({})",
            self.program,
            per_mode.join("; ")
        )
    }
}

/// How each TCP echo is built, stated with the results.
pub const TCP_SETUP: &str = "TCP echo: client and server ends both driven by the system under test \
(kqring, io_uring: one ring; tokio, monoio, compio: one task per end; blocking: one thread per \
end), one message in flight per connection, connections made with std before timing; \
the \"rings\" row spreads the connections of kqring, io_uring and the single-threaded \
runtimes (tokio ct, monoio, compio) over that many threads, each with its own ring or \
runtime, and runs tokio mt and blocking as in the other rows";

/// The measurement notes printed under the table.
const NOTES: &[&str] = &[
    "↑ higher is better, ↓ lower is better; kqring/io_uring best divides the better kqring \
     mode's figure by the best io_uring variant's, as shown, and names both (mode/variant); \
     in the spans rows it compares builds or subscribers instead (last notes)",
    "kqring: Recv/Send on non-blocking sockets, Read/Write on non-blocking pipes; \
     file reads on its blocking pool",
    "io_uring: Recv/Send on blocking sockets, Read/Write on blocking pipes and the file; \
     plain: no setup flags; SQPOLL: a kernel thread takes the submissions (its idle time \
     kqring's sq_idle), the reaper spins 20 µs on the CQ before it waits, as kqring's does; \
     DEFER_TASKRUN: SINGLE_ISSUER | DEFER_TASKRUN, completions run when the ring's one \
     thread waits; the SQPOLL and DEFER_TASKRUN rings also use a multishot receive into a \
     provided-buffer ring on TCP echo's server ends and registered buffers for file reads",
    "tokio mt: multi-thread runtime; tokio ct: current-thread runtime; file reads via \
     spawn_blocking pread, one task per slot; monoio: its legacy (mio) driver, TCP and timers \
     (it can't take a pipe it did not open); compio: its poll driver (driver_type() \
     checked), non-blocking pipes, file reads on its blocking pool",
    "blocking: one thread per waiting end; file reads are one pread at a time (queue depth 1)",
    "pipe: a partner thread echoes with blocking calls; timers: durations spread over 1–100 ms, \
     lateness = seen done − (asked + duration)",
    "copy (--workload copy): each chunk is read, then written at its offset, then the slot takes \
     the next chunk (the SQPOLL and DEFER_TASKRUN rings with registered buffers); tokio: a \
     spawn_blocking pread and pwrite per chunk; blocking: one chunk at a time; the destination \
     is emptied before each cell and compared with the source byte for byte after it",
];

fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn fmt_cell(c: &Cell, scale: f64) -> String {
    match c {
        Cell::Value(v) => fmt_value(v * scale),
        Cell::Failed(_) => "ERR".into(),
        _ => "-".into(),
    }
}

/// Lays out a markdown table with padded columns.
fn markdown(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count(), 3])
            .max()
            .unwrap_or(3)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                let _ = write!(s, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{c} |", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        out.push_str(&if i == 0 {
            format!("{}|", "-".repeat(w + 2))
        } else {
            format!("{}:|", "-".repeat(w + 1))
        });
    }
    out.push('\n');
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

impl Report {
    /// The human-readable table, with its header and notes.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "kqring-bench: {} CPUs, {}, {}; {:.2} s measured per cell{}, {}-byte messages\n",
            m.cpus,
            m.cpu_model,
            m.os,
            self.duration.as_secs_f64(),
            if self.rounds > 1 {
                format!(" (median of {} interleaved runs)", self.rounds)
            } else {
                String::new()
            },
            self.msg_size
        );
        match (m.busy, m.load) {
            (Some(busy), load) => {
                let load = load.map_or(String::new(), |l| format!(", 1-min load average {l:.2}"));
                let _ = writeln!(out, "CPUs busy before the run: {:.0}%{load}", busy * 100.0);
                if busy >= 0.2 {
                    let _ = writeln!(
                        out,
                        "warning: the machine is busy; other work skews every figure, and those \
                         of kqring's polling thread most of all."
                    );
                }
            }
            (None, Some(load)) => {
                let _ = writeln!(out, "1-min load average at start: {load:.2}");
            }
            (None, None) => {}
        }
        if self.span_cost.throughout {
            let _ = writeln!(
                out,
                "spans on for every figure below: {}",
                self.span_cost.subscriber
            );
        }
        for (sys, why) in &self.unavailable {
            let _ = writeln!(out, "{sys} unavailable: {why}");
        }
        for n in &self.system_notes {
            let _ = writeln!(out, "{n}");
        }
        out.push('\n');
        let mut header = vec!["workload".to_string()];
        header.extend(HEADERS.iter().map(|c| c.to_string()));
        header.push("kqring/io_uring best".into());
        let mut rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut line = vec![r.label.clone()];
                line.extend(r.cells.iter().map(|c| fmt_cell(c, r.scale)));
                line.push(r.ratio().map_or("-".into(), |x| x.text()));
                line
            })
            .collect();
        let spans = &self.span_cost;
        if !spans.rows.is_empty() {
            let mut line = vec![SPAN_ROW.to_string()];
            line.extend(spans.cells().iter().map(|c| fmt_cell(c, 1e-6)));
            line.push(spans.ratio().map_or("-".into(), |(x, m)| {
                format!("{x:.2}x on/off ({})", short_name(m))
            }));
            rows.push(line);
        }
        if let Some(b) = &self.spans_compiled_out {
            let mut line = vec![SPANS_OUT_ROW.to_string()];
            line.extend(b.cells().iter().map(|c| fmt_cell(c, 1e-6)));
            line.push(b.ratio().map_or("-".into(), |(x, m)| {
                format!("{x:.2}x default/out ({})", short_name(m))
            }));
            rows.push(line);
        }
        out.push_str(&markdown(&header, &rows));
        let cpu_rows = self.cpu_rows();
        if !cpu_rows.is_empty() {
            out.push_str(
                "\nCPU per operation, µs (user + system, every thread of the process, over the \
                 measured window; ↓):\n\n",
            );
            let mut header = vec!["workload".to_string()];
            header.extend(HEADERS.iter().map(|c| c.to_string()));
            out.push_str(&markdown(&header, &cpu_rows));
        }
        out.push('\n');
        if self.workloads.contains(&"tcp") || self.workloads.contains(&"sweep") {
            let _ = writeln!(out, "{TCP_SETUP}; {}.", self.tcp_descriptors);
        }
        let _ = writeln!(
            out,
            "kqring settings: {}; tokio mt: {}.",
            self.kqring_settings, self.tokio_settings
        );
        for n in NOTES {
            let _ = writeln!(out, "{n}.");
        }
        if self.workloads.contains(&"sweep") {
            let _ = writeln!(
                out,
                "sweep: kqring, io_uring and tokio only; each cell measures at least n / 3,333 s \
                 (3 s at 10,000 connections): rounds complete in waves, a round trip of every \
                 connection, and a window holds a whole number of them; a count the descriptor \
                 limit can't hold runs as the most it can (named)."
            );
        }
        let _ = writeln!(
            out,
            "CPU: getrusage(RUSAGE_SELF) read as the window opens and closes, scaled to the \
             window, over the operations counted in it; user and system apart in --json."
        );
        if !spans.rows.is_empty() {
            let _ = writeln!(out, "{}.", spans.note());
        }
        if let Some(b) = &self.spans_compiled_out {
            let _ = writeln!(out, "{}.", b.note());
        }
        if !self.errors.is_empty() {
            out.push_str("\nErrors:\n");
            for e in &self.errors {
                let _ = writeln!(out, "  {e}");
            }
        }
        let _ = writeln!(out, "\nwall time: {:.1} s", self.wall_time.as_secs_f64());
        out
    }

    /// The CPU table's lines: rows with CPU figures, in µs per operation.
    fn cpu_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .filter_map(|r| {
                let label = r.cpu_label.clone()?;
                let mut line = vec![label];
                line.extend(
                    r.cells
                        .iter()
                        .zip(&r.cpu)
                        .map(|(cell, cpu)| match (cell, cpu) {
                            (Cell::Value(_), Some(c)) => fmt_value(c.total().as_secs_f64() * 1e6),
                            (Cell::Failed(_), _) => "ERR".into(),
                            _ => "-".into(),
                        }),
                );
                Some(line)
            })
            .collect()
    }

    /// The results as JSON: figures in base units, with the latency
    /// percentiles behind them.
    pub fn to_json(&self) -> Value {
        let mut rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let values: serde_json::Map<String, Value> = COLUMNS
                    .iter()
                    .zip(&r.cells)
                    .map(|(c, v)| (c.to_string(), v.json()))
                    .collect();
                let ratio = r.ratio();
                let mut v = json!({
                    "workload": r.workload,
                    "metric": r.label,
                    "unit": r.unit,
                    "better": match r.better { Better::Higher => "higher", Better::Lower => "lower" },
                    "values": values,
                    "kqring_over_io_uring": ratio.map(|x| x.value),
                    "ratio_mode": ratio.map(|x| x.kqring),
                    "ratio_io_uring": ratio.map(|x| x.io_uring),
                });
                if let Some(n) = r.connections {
                    v["connections"] = json!(n);
                }
                if r.cpu_label.is_some() {
                    let cpu: serde_json::Map<String, Value> = COLUMNS
                        .iter()
                        .zip(r.cells.iter().zip(&r.cpu))
                        .map(|(col, (cell, cpu))| {
                            let v = match (cell, cpu) {
                                (Cell::Value(_), Some(c)) => json!({
                                    "user": c.user.as_secs_f64() * 1e6,
                                    "system": c.system.as_secs_f64() * 1e6,
                                    "total": c.total().as_secs_f64() * 1e6,
                                }),
                                _ => Value::Null,
                            };
                            (col.to_string(), v)
                        })
                        .collect();
                    v["cpu_us_per_op"] = Value::Object(cpu);
                }
                v
            })
            .collect();
        let latency: serde_json::Map<String, Value> = self
            .latency
            .iter()
            .map(|set| {
                let per: serde_json::Map<String, Value> = set
                    .series
                    .iter()
                    .map(|(col, s)| {
                        let q = |q| s.quantile(q);
                        (
                            col.to_string(),
                            json!({
                                "count": s.len(),
                                "mean_ns": s.mean(),
                                "p50_ns": q(0.5),
                                "p90_ns": q(0.9),
                                "p99_ns": q(0.99),
                                "p99_9_ns": q(0.999),
                                "max_ns": s.max(),
                            }),
                        )
                    })
                    .collect();
                (
                    set.key.clone(),
                    json!({ "title": set.title, "systems": per }),
                )
            })
            .collect();
        let s = &self.span_cost;
        let modes: serde_json::Map<String, Value> = s
            .rows
            .iter()
            .map(|(col, r)| {
                let v = match r {
                    Ok((off, on)) => json!({
                        "off_ops_per_s": off, "on_ops_per_s": on, "on_over_off": on / off,
                    }),
                    Err(e) => json!({ "error": e }),
                };
                (col.to_string(), v)
            })
            .collect();
        if !s.rows.is_empty() {
            let values: serde_json::Map<String, Value> = COLUMNS
                .iter()
                .zip(s.cells())
                .map(|(c, v)| (c.to_string(), v.json()))
                .collect();
            let (ratio, mode) = s.ratio().map_or((None, None), |(x, m)| (Some(x), Some(m)));
            rows.push(json!({
                "workload": "spans",
                "metric": SPAN_ROW,
                "unit": "ops/s",
                "better": "higher",
                "values": values,
                "kqring_over_io_uring": None::<f64>,
                "ratio_mode": mode,
                "on_over_off": ratio,
                "modes": modes,
            }));
        }
        let compiled_out = self.spans_compiled_out.as_ref().map(|b| {
            let modes: serde_json::Map<String, Value> = b
                .rows
                .iter()
                .map(|(col, r)| {
                    let v = match r {
                        Ok((def, out)) => json!({
                            "default_ops_per_s": def, "compiled_out_ops_per_s": out,
                            "default_over_compiled_out": def / out,
                        }),
                        Err(e) => json!({ "error": e }),
                    };
                    (col.to_string(), v)
                })
                .collect();
            let values: serde_json::Map<String, Value> = COLUMNS
                .iter()
                .zip(b.cells())
                .map(|(c, v)| (c.to_string(), v.json()))
                .collect();
            let (ratio, mode) = b.ratio().map_or((None, None), |(x, m)| (Some(x), Some(m)));
            rows.push(json!({
                "workload": "spans-compiled-out",
                "metric": SPANS_OUT_ROW,
                "unit": "ops/s",
                "better": "higher",
                "values": values,
                "kqring_over_io_uring": None::<f64>,
                "ratio_mode": mode,
                "default_over_compiled_out": ratio,
                "modes": modes,
            }));
            json!({ "program": b.program, "modes": modes })
        });
        let span_cost = json!({
            "subscriber": s.subscriber,
            "throughout": s.throughout,
            "measured_s": s.measured.as_secs_f64(),
            "modes": modes,
            "compiled_out": compiled_out,
        });
        json!({
            "machine": {
                "cpus": self.machine.cpus,
                "cpu_model": self.machine.cpu_model,
                "os": self.machine.os,
                "load_average": self.machine.load,
                "busy_before": self.machine.busy,
            },
            "config": {
                "duration_s": self.duration.as_secs_f64(),
                "rounds": self.rounds,
                "msg_size": self.msg_size,
                "kqring_settings": self.kqring_settings,
                "tokio_settings": self.tokio_settings,
                "workloads": self.workloads,
                "tcp_setup": TCP_SETUP,
                "tcp_descriptors": self.tcp_descriptors,
                "spans_compiled_out": spans_compiled_out(),
                "cpu_measure": "getrusage(RUSAGE_SELF): every thread of the process",
            },
            "columns": COLUMNS,
            "system_notes": self.system_notes,
            "unavailable": self.unavailable.iter().map(|(s, w)| (s.to_string(), json!(w))).collect::<serde_json::Map<_, _>>(),
            "rows": rows,
            "latency": latency,
            "span_cost": span_cost,
            "errors": self.errors,
            "wall_time_s": self.wall_time.as_secs_f64(),
        })
    }
}

/// Whether this build has tracing's spans compiled out (the bench feature
/// `spans-off`: tracing's static max level is off).
pub fn spans_compiled_out() -> bool {
    tracing::level_filters::STATIC_MAX_LEVEL == tracing::level_filters::LevelFilter::OFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(better: Better, cells: [Cell; 12]) -> Row {
        Row {
            workload: "x",
            label: "x".into(),
            unit: "ns",
            scale: 1.0,
            better,
            cells: cells.to_vec(),
            cpu: Vec::new(),
            cpu_label: None,
            connections: None,
        }
    }

    /// kqring poller, inline, then the three io_uring columns; the rest
    /// not run.
    fn cells(kq: [Cell; 2], uring: [Cell; 3]) -> [Cell; 12] {
        let [p, i] = kq;
        let [a, b, c] = uring;
        use Cell::NotRun as N;
        [p, i, a, b, c, N, N, N, N, N, N, N]
    }

    #[test]
    fn ratio_takes_the_better_mode_over_the_best_io_uring() {
        use Cell::*;
        let r = row(
            Better::Higher,
            cells(
                [Value(2.0), Value(3.0)],
                [Value(4.0), Value(6.0), Value(5.0)],
            ),
        );
        let x = r.ratio().unwrap();
        assert_eq!(
            (x.value, x.kqring, x.io_uring),
            (0.5, "kqring-inline", "io_uring-sqpoll")
        );
        assert_eq!(x.text(), "0.50x (inline/sqpoll)");
        let r = row(
            Better::Lower,
            cells(
                [Value(2.0), Value(3.0)],
                [Value(4.0), Unavailable, Value(1.0)],
            ),
        );
        let x = r.ratio().unwrap();
        assert_eq!(
            (x.value, x.kqring, x.io_uring),
            (2.0, "kqring-poller", "io_uring-defer")
        );
        let r = row(
            Better::Lower,
            cells([NotRun, Value(3.0)], [Unavailable, Unavailable, NotRun]),
        );
        assert_eq!(r.ratio(), None);
    }

    #[test]
    fn cpu_table_shows_totals_of_rows_that_have_them() {
        use Cell::*;
        let per = CpuTime {
            user: Duration::from_micros(1),
            system: Duration::from_micros(2),
        };
        let mut with = row(
            Better::Higher,
            cells(
                [Value(1.0), Failed("x".into())],
                [Value(1.0), NotRun, NotRun],
            ),
        );
        with.cpu = vec![
            Some(per),
            None,
            Some(per),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ];
        with.cpu_label = Some("TCP echo 1 conn, per msg".into());
        let without = row(
            Better::Higher,
            cells([Value(1.0), NotRun], [NotRun, NotRun, NotRun]),
        );
        let report = Report {
            machine: Machine {
                cpus: 2,
                cpu_model: "x".into(),
                os: "x".into(),
                load: None,
                busy: None,
            },
            duration: Duration::from_secs(1),
            rounds: 1,
            msg_size: 64,
            kqring_settings: String::new(),
            tokio_settings: String::new(),
            tcp_descriptors: "",
            workloads: vec!["tcp"],
            unavailable: Vec::new(),
            rows: vec![with, without],
            latency: Vec::new(),
            span_cost: SpanCost {
                subscriber: String::new(),
                throughout: false,
                measured: Duration::ZERO,
                rows: Vec::new(),
            },
            spans_compiled_out: None,
            system_notes: vec!["a note".into()],
            errors: Vec::new(),
            wall_time: Duration::ZERO,
        };
        let lines = report.cpu_rows();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0][..4],
            ["TCP echo 1 conn, per msg", "3.00", "ERR", "3.00"]
        );
        let v = report.to_json();
        let cpu = &v["rows"][0]["cpu_us_per_op"];
        assert_eq!(cpu["kqring-poller"]["total"], 3.0);
        assert_eq!(cpu["kqring-poller"]["user"], 1.0);
        assert!(cpu["kqring-inline"].is_null());
        assert!(v["rows"][1].get("cpu_us_per_op").is_none());
        assert!(report.table().contains("a note"));
    }

    #[test]
    fn span_row_puts_on_under_its_mode_and_divides_by_off() {
        let s = SpanCost {
            subscriber: "x".into(),
            throughout: false,
            measured: Duration::from_millis(100),
            rows: vec![
                ("kqring-poller", Ok((4e6, 1e5))),
                ("kqring-inline", Ok((8e6, 4e5))),
            ],
        };
        let mut want = vec![Cell::Value(1e5), Cell::Value(4e5)];
        want.resize(COLUMNS.len(), Cell::NotApplicable);
        assert_eq!(s.cells(), want);
        assert_eq!(s.ratio(), Some((0.05, "kqring-inline")));
        let s = SpanCost {
            rows: vec![("kqring-inline", Err("no".into()))],
            ..s
        };
        assert_eq!(s.cells()[0], Cell::NotRun);
        assert!(matches!(&s.cells()[1], Cell::Failed(e) if e == "no"));
        assert_eq!(s.ratio(), None);
    }

    #[test]
    fn values_keep_three_digits() {
        assert_eq!(fmt_value(1234.5), "1234");
        assert_eq!(fmt_value(12.345), "12.3");
        assert_eq!(fmt_value(1.2345), "1.23");
        assert_eq!(fmt_value(0.12345), "0.123");
    }

    #[test]
    fn table_is_aligned_markdown() {
        let t = markdown(
            &["a".into(), "bb".into()],
            &[vec!["long name".into(), "1".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count())
        );
        assert!(lines[1].ends_with(":|"));
    }
}
