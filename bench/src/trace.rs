//! Tracing: `RUST_LOG` output, and the span-cost measurement of `--trace`.
//!
//! Subscribers are global, so that kqring's polling thread (which no
//! scoped subscriber reaches) is seen too. A global subscriber can't be
//! removed, so `--trace` measures "off" first, then installs one.

use std::io::IsTerminal as _;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::report::SpanCost;
use crate::systems::kqring::{Kqring, Tuning};

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

/// Runs kqring's batched NOPs in each of `modes` with no subscriber, then
/// installs one (`RUST_LOG`'s if set, else the sink) and runs them again.
/// The subscriber stays installed for the rest of the run.
pub fn span_cost(modes: &[kqring::Mode], tuning: Tuning, duration: Duration) -> SpanCost {
    let run = |m: kqring::Mode| {
        Kqring::tuned(m, tuning)
            .run_nop_batched(duration)
            .map(|r| r.rate())
            .map_err(|e| e.to_string())
    };
    let off: Vec<_> = modes.iter().map(|&m| run(m)).collect();
    let subscriber = if install_from_env() {
        format!(
            "RUST_LOG={} formatted to stderr with FmtSpan::CLOSE",
            std::env::var("RUST_LOG").unwrap_or_default()
        )
    } else if install_sink() {
        "a registry with EnvFilter \"trace\" and a fmt layer (FmtSpan::CLOSE) writing to io::sink()"
            .to_string()
    } else {
        "an already-installed subscriber".to_string()
    };
    let rows = modes
        .iter()
        .zip(off)
        .map(|(&m, off)| {
            let on = run(m);
            (Kqring::column(m), off.and_then(|off| Ok((off, on?))))
        })
        .collect();
    SpanCost { subscriber, rows }
}
