//! Tracing: `RUST_LOG` output, and the cost of kqring's per-operation spans
//! with a subscriber on vs off.
//!
//! Subscribers are global, so that kqring's polling thread (which no
//! scoped subscriber reaches) is seen too. A global subscriber can't be
//! removed, so the span cost measures "off" first, then installs one and
//! measures "on". Every run measures it: after the other workloads, which
//! then run with no subscriber; or before them, with `--trace` or
//! `RUST_LOG` set, and the subscriber stays on for every figure.

use std::io::IsTerminal as _;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use std::path::Path;
use std::process::Command;

use crate::report::{BuildCompare, OffOn, SpanCost};
use crate::stats::Measurement;
use crate::suite::Progress;
use crate::systems::kqring::{Kqring, Tuning};

/// The longest the span cost measures each of its runs: it is one row of
/// every run, so it stays cheap.
pub const SPAN_COST_MAX: Duration = Duration::from_millis(500);

/// The shortest: with every span recorded, a batch of 64 NOPs can take
/// milliseconds on a loaded machine, and only whole batches count.
pub const SPAN_COST_MIN: Duration = Duration::from_millis(100);

/// Whether `RUST_LOG` asks for output.
pub fn rust_log_set() -> bool {
    std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// With `RUST_LOG` set, installs a formatter on stderr that shows each
/// span's close with its `time.busy`/`time.idle`
/// (`RUST_LOG=kqring=trace` shows every operation). Without it, installs
/// nothing: spans then cost only their disabled check. Returns whether a
/// subscriber was installed.
pub fn install_from_env() -> bool {
    if !rust_log_set() {
        return false;
    }
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_default_env())
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init()
        .is_ok()
}

/// Installs a subscriber that enables every span and formats each close
/// into `io::sink()`: the whole cost of listening, without I/O.
fn install_sink() -> bool {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(std::io::sink)
        .try_init()
        .is_ok()
}

/// Installs `RUST_LOG`'s subscriber if it is set, else one that records
/// every span into `io::sink()`, and says which.
fn install() -> String {
    if install_from_env() {
        format!(
            "RUST_LOG's subscriber (RUST_LOG={}: the spans it enables, each close formatted \
             to stderr)",
            std::env::var("RUST_LOG").unwrap_or_default()
        )
    } else if install_sink() {
        "a subscriber that records every span (EnvFilter \"trace\" and a fmt layer that \
         formats each span's close, with its timing, into io::sink())"
            .to_string()
    } else {
        "an already-installed subscriber".to_string()
    }
}

/// Runs kqring's batched NOPs in each of `modes` with no subscriber, then
/// installs one (`RUST_LOG`'s if set, else one that records every span)
/// and runs them again; each figure is the median of `rounds` runs of
/// `duration`, kept within [`SPAN_COST_MIN`]..=[`SPAN_COST_MAX`]. The
/// subscriber stays installed for the rest of the run; `throughout` says
/// whether the rest is the other workloads.
pub fn span_cost(
    modes: &[kqring::Mode],
    tuning: Tuning,
    duration: Duration,
    rounds: usize,
    throughout: bool,
    progress: &mut Progress,
) -> SpanCost {
    let measured = duration.clamp(SPAN_COST_MIN, SPAN_COST_MAX);
    let mut run = |m: kqring::Mode, what: &str| -> Result<f64, String> {
        let mut rates = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            progress.show(what, Kqring::column(m));
            let got = Kqring::tuned(m, tuning).run_nop_batched(measured);
            progress.advance();
            rates.push(rate(got)?);
        }
        rates.sort_by(f64::total_cmp);
        Ok(rates[rates.len() / 2])
    };
    let off: Vec<_> = modes
        .iter()
        .map(|&m| run(m, "NOP batched, no subscriber"))
        .collect();
    // Nothing to measure and nothing after it: no subscriber is needed.
    let subscriber = if modes.is_empty() && !throughout {
        "none (kqring was not run)".to_string()
    } else {
        install()
    };
    let rows = modes
        .iter()
        .zip(off)
        .map(|(&m, off)| {
            let on = run(m, "NOP batched, spans recorded");
            (Kqring::column(m), off.and_then(|off| Ok((off, on?))))
        })
        .collect::<Vec<(&'static str, OffOn)>>();
    SpanCost {
        subscriber,
        throughout,
        measured,
        rows,
    }
}

fn rate(got: crate::Result<Measurement>) -> Result<f64, String> {
    match got {
        Ok(m) if m.ops == 0 => Err("nothing completed in the measured window".into()),
        Ok(m) => Ok(m.rate()),
        Err(e) => Err(e.to_string()),
    }
}

/// The span cost of a run that was told to leave it out.
pub fn no_span_cost() -> SpanCost {
    SpanCost {
        subscriber: "none (--no-span-cost)".into(),
        throughout: false,
        measured: Duration::ZERO,
        rows: Vec::new(),
    }
}

/// Runs kqring's batched NOPs in each of `modes` in this process and in
/// `program` (a build with spans compiled out, as a child process), by
/// turns, `rounds` times, and keeps the median of each. Neither has a
/// subscriber: with `--trace` or `RUST_LOG` this one would, so the
/// comparison is refused.
pub fn compare_build(
    program: &Path,
    modes: &[kqring::Mode],
    tuning: Tuning,
    duration: Duration,
    rounds: usize,
    listening: bool,
    progress: &mut Progress,
) -> BuildCompare {
    let measured = duration.clamp(SPAN_COST_MIN, SPAN_COST_MAX);
    let rows = modes
        .iter()
        .map(|&m| {
            let col = Kqring::column(m);
            if listening {
                return (
                    col,
                    Err("a subscriber is on (--trace or RUST_LOG): nothing to compare".into()),
                );
            }
            let mut here = Vec::with_capacity(rounds);
            let mut there = Vec::with_capacity(rounds);
            let got = (|| {
                for _ in 0..rounds {
                    progress.show("NOP batched, this build", col);
                    here.push(rate(Kqring::tuned(m, tuning).run_nop_batched(measured))?);
                    progress.advance();
                    progress.show("NOP batched, spans compiled out", col);
                    there.push(child_nop_batched(program, m, tuning, measured)?);
                    progress.advance();
                }
                Ok((median(&mut here), median(&mut there)))
            })();
            (col, got)
        })
        .collect();
    BuildCompare {
        program: program.display().to_string(),
        rows,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One run of `program --workload nop-batched` in mode `m`: its NOPs/s,
/// after checking that it is a build with spans compiled out.
fn child_nop_batched(
    program: &Path,
    m: kqring::Mode,
    tuning: Tuning,
    measured: Duration,
) -> Result<f64, String> {
    let mode = if m == kqring::Mode::Inline {
        "inline"
    } else {
        "poller"
    };
    let mut cmd = Command::new(program);
    cmd.env_remove("RUST_LOG").args([
        "--workload",
        "nop-batched",
        "--system",
        "kqring",
        "--mode",
        mode,
        "--json",
        "--no-span-cost",
        "--duration",
        &measured.as_secs_f64().to_string(),
    ]);
    if let Some(idle) = tuning.sq_idle {
        cmd.args(["--sq-idle-us", &idle.as_micros().to_string()]);
    }
    if let Some(n) = tuning.workers {
        cmd.args(["--workers", &n.to_string()]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} exited with {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("{} printed no JSON: {e}", program.display()))?;
    if v["config"]["spans_compiled_out"] != true {
        return Err(format!(
            "{} is not a build with spans compiled out (--features spans-off)",
            program.display()
        ));
    }
    v["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["workload"] == "nop-batched"))
        .and_then(|r| r["values"][Kqring::column(m)].as_f64())
        .ok_or_else(|| format!("{} gave no NOP batched figure", program.display()))
}
