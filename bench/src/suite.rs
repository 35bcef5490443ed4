//! Runs the selected workloads on every system and gathers the report.

use std::io::IsTerminal as _;
use std::time::Instant;

use crate::cli::{Args, SWEEP_COLUMNS, Workload};
use crate::fixtures::{COPY_CHUNK, COPY_DEPTH, COPY_MIB, CopyFiles, TIMER_RANGE, TestFile};
use crate::report::{Better, COLUMNS, Cell, LatencySet, Machine, Report, Row};
use crate::stats::{CpuTime, CpuUse, Measurement};
use crate::systems::{self, Outcome, Params, System};
use crate::{fixtures, trace};

/// A progress line on stderr, rewritten in place; only on a terminal.
#[derive(Debug)]
pub struct Progress {
    on: bool,
    total: usize,
    done: usize,
    start: Instant,
}

impl Progress {
    /// A progress line for `total` steps.
    pub fn new(total: usize) -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            total,
            done: 0,
            start: Instant::now(),
        }
    }

    /// Shows the step about to run: `what` on `system`.
    pub fn show(&self, what: &str, system: &str) {
        if self.on {
            eprint!(
                "\r\x1b[K[{}/{}] {:5.1} s  {what} · {system}",
                (self.done + 1).min(self.total),
                self.total,
                self.start.elapsed().as_secs_f64()
            );
        }
    }

    /// Counts a step as done.
    pub fn advance(&mut self) {
        self.done += 1;
    }

    /// Clears the line (before other output, and at the end).
    pub fn clear(&self) {
        if self.on {
            eprint!("\r\x1b[K");
        }
    }
}

/// A column: a system to run, or the cell it shows instead.
enum Slot {
    Ready(Box<dyn System>),
    Absent(Cell),
}

/// What one system gave for one workload run.
type Got = Result<Measurement, Cell>;

struct Runner {
    slots: Vec<Slot>,
    rounds: usize,
    progress: Progress,
    errors: Vec<String>,
}

impl Runner {
    /// Runs `f` on every column's system, in column order, `rounds` times
    /// over (round by round, so that noise spreads over every column);
    /// each column keeps its median run by rate. A failure in any round is
    /// the column's result.
    fn each(&mut self, what: &str, f: impl FnMut(&mut dyn System) -> Outcome) -> Vec<Got> {
        self.each_of(what, &COLUMNS, f)
    }

    /// [`Runner::each`] on the columns in `only`; the others show "-".
    fn each_of(
        &mut self,
        what: &str,
        only: &[&str],
        mut f: impl FnMut(&mut dyn System) -> Outcome,
    ) -> Vec<Got> {
        let mut runs: Vec<Vec<Got>> = self.slots.iter().map(|_| Vec::new()).collect();
        for _ in 0..self.rounds {
            for ((slot, runs), col) in self.slots.iter_mut().zip(&mut runs).zip(COLUMNS) {
                let Slot::Ready(sys) = slot else {
                    continue;
                };
                if !only.contains(&col) {
                    runs.push(Err(Cell::NotApplicable));
                    continue;
                }
                self.progress.show(what, sys.name());
                // A window that saw nothing complete (the machine stalled
                // the run for the whole window) is run again, twice at
                // most, before the cell counts as failed.
                let mut attempts = 0;
                let (outcome, used) = loop {
                    let before = CpuTime::now();
                    let outcome = f(sys.as_mut());
                    let used = CpuTime::now().zip(before).map(|(a, b)| a.since(b));
                    attempts += 1;
                    match &outcome {
                        Some(Ok(m)) if m.ops == 0 && attempts < 3 => continue,
                        _ => break (outcome, used),
                    }
                };
                let got = match outcome {
                    None => Err(Cell::NotApplicable),
                    Some(Ok(m)) if m.ops == 0 => Err(Cell::Failed(
                        "nothing completed in the measured window".into(),
                    )),
                    Some(Ok(mut m)) => {
                        // A workload without a window (timers) is charged
                        // the CPU of its whole run.
                        if m.cpu.is_none() {
                            m.cpu = used.map(|cpu| CpuUse {
                                cpu,
                                wall: m.elapsed,
                            });
                        }
                        Ok(m)
                    }
                    Some(Err(e)) => Err(Cell::Failed(e.to_string())),
                };
                if let Err(Cell::Failed(e)) = &got {
                    self.progress.clear();
                    let msg = format!("{what} / {}: {e}", sys.name());
                    eprintln!("error: {msg}");
                    self.errors.push(msg);
                }
                self.progress.advance();
                runs.push(got);
            }
        }
        self.slots
            .iter()
            .zip(runs)
            .map(|(slot, runs)| match slot {
                Slot::Absent(cell) => Err(cell.clone()),
                Slot::Ready(_) => median_run(runs),
            })
            .collect()
    }

    /// Every column fails with `e` (a fixture could not be made).
    fn fail_all(&mut self, what: &str, e: &str) -> Vec<Got> {
        self.errors.push(format!("{what}: {e}"));
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Absent(c) => Err(c.clone()),
                Slot::Ready(_) => Err(Cell::Failed(e.to_string())),
            })
            .collect()
    }
}

/// The run with the median rate, or the first failure.
fn median_run(mut runs: Vec<Got>) -> Got {
    if let Some(i) = runs.iter().position(Result::is_err) {
        return runs.swap_remove(i);
    }
    let mut runs: Vec<Measurement> = runs.into_iter().flatten().collect();
    runs.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let mid = runs.len() / 2;
    Ok(runs.swap_remove(mid))
}

/// A row from one figure of each measurement.
fn row(
    workload: Workload,
    label: String,
    (unit, scale, better): (&'static str, f64, Better),
    got: &[Got],
    metric: impl Fn(&Measurement) -> Option<f64>,
) -> Row {
    let cells = got
        .iter()
        .map(|g| match g {
            Ok(m) => metric(m).map_or_else(|| Cell::Failed("no samples".into()), Cell::Value),
            Err(c) => c.clone(),
        })
        .collect();
    Row {
        workload: workload.name(),
        label,
        unit,
        scale,
        better,
        cells,
        cpu: Vec::new(),
        cpu_label: None,
        connections: None,
    }
}

impl Row {
    /// Adds the CPU figures of `got`, labelled `label` in the CPU table.
    fn with_cpu(mut self, label: String, got: &[Got]) -> Row {
        self.cpu = got
            .iter()
            .map(|g| g.as_ref().ok().and_then(Measurement::cpu_per_op))
            .collect();
        self.cpu_label = Some(label);
        self
    }
}

fn latency_set(key: String, title: String, got: &[Got]) -> LatencySet {
    let series = COLUMNS
        .iter()
        .zip(got)
        .filter_map(|(col, g)| Some((*col, g.as_ref().ok()?.latency.clone()?)))
        .collect();
    LatencySet { key, title, series }
}

fn quantile(q: f64) -> impl Fn(&Measurement) -> Option<f64> {
    move |m| m.latency.as_ref()?.quantile(q).map(|v| v as f64)
}

/// Descriptors a sweep leaves beside its connections' two ends: the
/// listener, standard streams, rings, epoll and event descriptors.
const SWEEP_SPARE_FDS: u64 = 64;

/// The measured time of a sweep cell of `n` connections: at least
/// `duration`, and n / 3,333 s (3 s at 10,000), so that a window holds a
/// dozen or more waves of round trips.
pub fn sweep_duration(duration: std::time::Duration, n: usize) -> std::time::Duration {
    duration.max(std::time::Duration::from_secs_f64(n as f64 / 3333.0))
}

const RATE_M: (&str, f64, Better) = ("ops/s", 1e-6, Better::Higher);
const NS: (&str, f64, Better) = ("ns", 1.0, Better::Lower);
const NS_AS_US: (&str, f64, Better) = ("ns", 1e-3, Better::Lower);
const NS_AS_MS: (&str, f64, Better) = ("ns", 1e-6, Better::Lower);

fn count_label(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// Runs what `args` selects on `machine` (detected before anything ran),
/// and the span cost: after the workloads, which then run with no
/// subscriber; or, with `--trace` or `RUST_LOG` set, before them, leaving
/// its subscriber installed for every figure.
pub fn run(args: &Args, machine: Machine) -> Report {
    let started = Instant::now();
    let params = Params {
        duration: args.duration,
        msg_size: args.msg_size as usize,
        queue_depth: args.queue_depth as usize,
        file_async: args.file_async,
        timers: args.timers as usize,
        registered_files: !args.plain_fds,
        sq_idle: args.tuning().sq_idle,
    };
    let workloads = args.selected();
    let conns = args.connection_counts();
    let sweep = args.sweep_counts();
    let modes = args.kqring_modes();
    let mut unavailable = Vec::new();
    let mut system_notes = Vec::new();
    let mut errors = Vec::new();
    let networked = workloads.contains(&Workload::Tcp) || workloads.contains(&Workload::Sweep);
    let nofile = fixtures::raise_nofile();
    if networked {
        system_notes.push(match nofile {
            Ok(n) => format!("descriptor limit (RLIMIT_NOFILE): {n}"),
            Err(ref e) => format!("descriptor limit (RLIMIT_NOFILE): unknown ({e})"),
        });
    }
    let mut slots = Vec::with_capacity(COLUMNS.len());
    for col in COLUMNS {
        if !args.runs(col) {
            slots.push(Slot::Absent(Cell::NotRun));
            continue;
        }
        match systems::make(col, args, &params) {
            Ok((sys, note)) => {
                system_notes.extend(note);
                slots.push(Slot::Ready(sys));
            }
            Err(systems::Missing::Unavailable(why)) => {
                eprintln!("{col} unavailable: {why}");
                unavailable.push((col, why));
                slots.push(Slot::Absent(Cell::Unavailable));
            }
            Err(systems::Missing::Wrong(why)) => {
                eprintln!("error: {col}: {why}");
                errors.push(format!("{col}: {why}"));
                slots.push(Slot::Absent(Cell::Failed(why)));
            }
        }
    }
    let ready = |only: &[&str]| {
        slots
            .iter()
            .zip(COLUMNS)
            .filter(|(s, c)| matches!(s, Slot::Ready(_)) && only.contains(c))
            .count()
    };
    let rounds = args.rounds as usize;
    let steps: usize = workloads
        .iter()
        .map(|w| match w {
            Workload::Tcp => (conns.len() + usize::from(args.rings() > 1)) * ready(&COLUMNS),
            Workload::Sweep => sweep.len() * ready(SWEEP_COLUMNS),
            _ => ready(&COLUMNS),
        })
        .sum();
    let span_steps = if args.no_span_cost {
        0
    } else {
        2 * modes.len() * rounds
    };
    let compare_steps = args
        .spans_off_build
        .as_ref()
        .map_or(0, |_| 2 * modes.len() * rounds);
    let mut r = Runner {
        slots,
        rounds,
        progress: Progress::new(steps * rounds + span_steps + compare_steps),
        errors,
    };
    let listen_first = args.trace || trace::rust_log_set();
    let span_cost = |progress: &mut Progress| {
        if args.no_span_cost {
            return trace::no_span_cost();
        }
        trace::span_cost(
            &modes,
            args.tuning(),
            args.duration,
            rounds,
            listen_first,
            progress,
        )
    };
    let early = listen_first.then(|| span_cost(&mut r.progress));
    let mut rows = Vec::new();
    let mut latency = Vec::new();
    let p = &params;
    for &w in &workloads {
        match w {
            Workload::NopBatched => {
                let got = r.each("NOP batched", |s| s.nop_batched(p));
                rows.push(
                    row(
                        w,
                        "NOP batched ×64, M ops/s ↑".into(),
                        RATE_M,
                        &got,
                        |m| Some(m.rate()),
                    )
                    .with_cpu("NOP batched ×64, per NOP".into(), &got),
                );
            }
            Workload::NopRtt => {
                let got = r.each("NOP round trip", |s| s.nop_rtt(p));
                rows.push(
                    row(w, "NOP round trip, ns ↓".into(), NS, &got, |m| {
                        Some(m.mean_ns())
                    })
                    .with_cpu("NOP round trip, per NOP".into(), &got),
                );
            }
            Workload::Pipe => {
                let got = r.each("pipe ping-pong", |s| s.pipe(p));
                for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                    let label = format!("pipe ping-pong RTT {name}, µs ↓");
                    let row = row(w, label, NS_AS_US, &got, quantile(q));
                    rows.push(if q == 0.5 {
                        row.with_cpu("pipe ping-pong, per round trip".into(), &got)
                    } else {
                        row
                    });
                }
                let title = format!("pipe ping-pong round trip ({} B)", p.msg_size);
                latency.push(latency_set("pipe".into(), title, &got));
            }
            Workload::Tcp => {
                let mut throughput = Vec::new();
                for (i, &n) in conns.iter().enumerate() {
                    let what = format!("TCP echo, {n} conn");
                    let got = r.each(&what, |s| s.tcp_echo(p, n));
                    // Latency rows for the smallest count: one connection
                    // by default, the unloaded round trip.
                    if i == 0 {
                        for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                            let label = format!("TCP echo {n} conn RTT {name}, µs ↓");
                            rows.push(row(w, label, NS_AS_US, &got, quantile(q)));
                        }
                    }
                    let label = format!("TCP echo {n} conn, k msg/s ↑");
                    let unit = ("msg/s", 1e-3, Better::Higher);
                    let cpu = format!("TCP echo {n} conn, per msg");
                    throughput
                        .push(row(w, label, unit, &got, |m| Some(m.rate())).with_cpu(cpu, &got));
                    let title = format!("TCP echo round trip, {n} conn ({} B)", p.msg_size);
                    latency.push(latency_set(format!("tcp-{n}"), title, &got));
                }
                let rings = args.rings();
                if let Some(&n) = conns.last().filter(|_| rings > 1) {
                    let what = format!("TCP echo, {n} conn, {rings} rings");
                    let got = r.each(&what, |s| s.tcp_echo_rings(p, n, rings));
                    let label = format!("TCP echo {n} conn, {rings} rings, k msg/s ↑");
                    let unit = ("msg/s", 1e-3, Better::Higher);
                    let cpu = format!("TCP echo {n} conn, {rings} rings, per msg");
                    throughput
                        .push(row(w, label, unit, &got, |m| Some(m.rate())).with_cpu(cpu, &got));
                }
                rows.extend(throughput);
            }
            Workload::File => {
                let what = "random reads";
                let got = match TestFile::create(args.file_mib) {
                    Ok(file) => r.each(what, |s| s.file_read(p, &file)),
                    Err(e) => r.fail_all(what, &format!("temporary file: {e}")),
                };
                let flag = if p.file_async { " ASYNC" } else { "" };
                let label = format!("4 KiB random read QD{}{flag}, k reads/s ↑", p.queue_depth);
                let unit = ("reads/s", 1e-3, Better::Higher);
                let cpu = format!("4 KiB random read QD{}{flag}, per read", p.queue_depth);
                rows.push(row(w, label, unit, &got, |m| Some(m.rate())).with_cpu(cpu, &got));
            }
            Workload::FsMeta => {
                let what = "open + statx + close";
                let got = match meta_files(p.queue_depth) {
                    Ok((dir, files)) => {
                        let got = r.each(what, |s| s.fs_meta(p, &files));
                        let _ = std::fs::remove_dir_all(dir);
                        got
                    }
                    Err(e) => r.fail_all(what, &format!("temporary files: {e}")),
                };
                let label = format!("open + statx + close QD{}, k files/s ↑", p.queue_depth);
                let unit = ("files/s", 1e-3, Better::Higher);
                let cpu = format!("open + statx + close QD{}, per file", p.queue_depth);
                rows.push(row(w, label, unit, &got, |m| Some(m.rate())).with_cpu(cpu, &got));
            }
            Workload::Copy => {
                let what = "sequential copy";
                let got = match CopyFiles::create() {
                    // Each run starts from an empty destination and must
                    // leave a whole copy: else its cell fails.
                    Ok(files) => r.each(what, |s| {
                        if let Err(e) = files.reset() {
                            return Some(Err(e.into()));
                        }
                        match s.copy(p, &files) {
                            Some(Ok(m)) => Some(files.check().map(|()| m)),
                            other => other,
                        }
                    }),
                    Err(e) => r.fail_all(what, &format!("temporary files: {e}")),
                };
                let kib = COPY_CHUNK / 1024;
                let label = format!(
                    "{COPY_MIB} MiB sequential copy, {COPY_DEPTH} × {kib} KiB in flight, MiB/s ↑"
                );
                let unit = (
                    "chunks/s",
                    COPY_CHUNK as f64 / f64::from(1 << 20),
                    Better::Higher,
                );
                let cpu = format!("{COPY_MIB} MiB sequential copy, per {kib} KiB chunk");
                rows.push(row(w, label, unit, &got, |m| Some(m.rate())).with_cpu(cpu, &got));
            }
            Workload::Timeouts => {
                let got = r.each("timers", |s| s.timeouts(p));
                let (lo, hi) = TIMER_RANGE;
                let n = count_label(p.timers);
                let label = format!(
                    "{n} timers ({}–{} ms): all fired, ms ↓",
                    lo.as_millis(),
                    hi.as_millis()
                );
                let cpu = format!("{n} timers, per timer (whole run)");
                rows.push(
                    row(w, label, NS_AS_MS, &got, |m| {
                        Some(m.elapsed.as_nanos() as f64)
                    })
                    .with_cpu(cpu, &got),
                );
                for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                    let label = format!("timer lateness {name}, ms ↓");
                    rows.push(row(w, label, NS_AS_MS, &got, quantile(q)));
                }
            }
            Workload::Sweep => {
                for &asked in &sweep {
                    // Both ends of every connection, the listener, and room
                    // for what the systems open themselves: a count the
                    // descriptor limit can't hold runs as the most it can.
                    let room = |n: usize| 2 * n as u64 + SWEEP_SPARE_FDS;
                    let n = match nofile {
                        Ok(limit) if limit < room(asked) => {
                            (limit.saturating_sub(SWEEP_SPARE_FDS) / 2) as usize
                        }
                        _ => asked,
                    };
                    let name = if n == asked {
                        format!("sweep: TCP echo {} conn", count_label(n))
                    } else {
                        format!("sweep: TCP echo {n} conn ({} asked)", count_label(asked))
                    };
                    // Round trips complete in waves (every connection's, one
                    // after another), and a window holds a whole number of
                    // them: long windows for many connections.
                    let pn = Params {
                        duration: sweep_duration(p.duration, n),
                        ..p.clone()
                    };
                    let got = if n == 0 {
                        r.fail_all(&name, "the descriptor limit leaves no room for connections")
                    } else {
                        r.each_of(&name, SWEEP_COLUMNS, |s| s.tcp_echo(&pn, n))
                    };
                    let unit = ("msg/s", 1e-3, Better::Higher);
                    let mut row = row(w, format!("{name}, k msg/s ↑"), unit, &got, |m| {
                        Some(m.rate())
                    })
                    .with_cpu(format!("{name}, per msg"), &got);
                    row.connections = Some(n);
                    rows.push(row);
                }
            }
        }
    }
    let spans_compiled_out = args.spans_off_build.as_ref().map(|program| {
        trace::compare_build(
            program,
            &modes,
            args.tuning(),
            args.duration,
            rounds,
            listen_first,
            &mut r.progress,
        )
    });
    let span_cost = early.unwrap_or_else(|| span_cost(&mut r.progress));
    r.progress.clear();
    let mut errors = r.errors;
    let compared = spans_compiled_out.iter().flat_map(|b| &b.rows);
    for (what, (col, res)) in (span_cost.rows.iter().map(|x| ("span cost", x)))
        .chain(compared.map(|x| ("spans compiled out", x)))
    {
        if let Err(e) = res {
            eprintln!("error: {what} / {col}: {e}");
            errors.push(format!("{what} / {col}: {e}"));
        }
    }
    Report {
        machine,
        duration: args.duration,
        rounds,
        msg_size: p.msg_size,
        kqring_settings: args.kqring_settings(),
        tokio_settings: args.tokio_settings(),
        tcp_descriptors: args.tcp_descriptors(),
        workloads: workloads.iter().map(|w| w.name()).collect(),
        unavailable,
        rows,
        latency,
        span_cost,
        spans_compiled_out,
        system_notes,
        errors,
        wall_time: started.elapsed(),
    }
}

/// `n` small files in a new temporary directory, by absolute path, for
/// the open + statx + close workload.
fn meta_files(n: usize) -> std::io::Result<(std::path::PathBuf, Vec<std::ffi::CString>)> {
    use std::os::unix::ffi::OsStrExt;
    let dir = std::env::temp_dir().join(format!("kqring-bench-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let files = (0..n)
        .map(|i| {
            let path = dir.join(format!("f{i}"));
            std::fs::write(&path, b"kqring")?;
            std::ffi::CString::new(path.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((dir, files))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn run(ops: u64) -> Got {
        Ok(Measurement {
            ops,
            elapsed: Duration::from_secs(1),
            latency: None,
            cpu: None,
        })
    }

    #[test]
    fn a_cell_keeps_its_median_run_or_its_failure() {
        let got = median_run(vec![run(10), run(50), run(30)]);
        assert_eq!(got.map(|m| m.ops).ok(), Some(30));
        let got = median_run(vec![run(10), Err(Cell::Failed("x".into())), run(30)]);
        assert!(matches!(got, Err(Cell::Failed(e)) if e == "x"));
    }
}
