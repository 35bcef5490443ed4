//! `kqring-bench`: kqring beside io_uring, tokio and blocking syscalls.
//! See `kqring-bench --help`.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use kqring_bench::cli::Args;
use kqring_bench::report::Machine;
use kqring_bench::{plot, suite};

fn main() -> ExitCode {
    let args = Args::parse();
    let started = Instant::now();
    let machine = Machine::detect();
    let mut report = suite::run(&args, machine);
    report.wall_time = started.elapsed();
    if let Some(path) = &args.plot {
        match std::fs::write(path, plot::report_svg(&report)) {
            Ok(()) => eprintln!("plot written to {}", path.display()),
            Err(e) => {
                eprintln!("error: writing {}: {e}", path.display());
                report.errors.push(format!("plot: {e}"));
            }
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&report.to_json()) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
