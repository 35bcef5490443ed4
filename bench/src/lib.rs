//! kqring beside Linux's io_uring, tokio (epoll) and blocking syscalls: the
//! same workloads, one process, one machine, one table.
//!
//! The binary (`cargo run --release -p kqring-bench`) is a thin shell over
//! this library: [`cli::Args`] says what to run, [`suite::run`] runs it and
//! gives a [`report::Report`], which prints as a table or as JSON and can
//! draw the latency distributions as SVG ([`plot`]).
//!
//! Each system lives in one module of [`systems`] and implements the
//! workloads it can run; a workload it can't express (a NOP for tokio) shows
//! as "-".

#![warn(missing_docs)]

pub mod cli;
pub mod fixtures;
pub mod plot;
pub mod report;
pub mod stats;
pub mod suite;
pub mod systems;
pub mod trace;

/// The error every workload returns: an I/O failure, or a completion that
/// does not say what the workload expects (a benchmark that measures errors
/// is worthless, so every result is checked).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Fails the workload with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+).into());
        }
    };
}
