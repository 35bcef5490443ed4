//! `kqring-conformance [--list] [--show] [--verbose] [NAME | FILE]...`
//!
//! Runs the built-in scenarios (all, or those named) on kqring, both
//! driving modes, and on Linux's io_uring, and prints how they compare.
//! An argument that is a file is read as a program in the text format
//! (see docs/conformance.md) and run the same way.

use std::process::ExitCode;

use kqring_conformance::scenarios::{self, Scenario};
use kqring_conformance::{Outcome, Program, Verdict, check, check_program, summary_line};

const USAGE: &str = "\
usage: kqring-conformance [--list] [--show] [--verbose] [NAME | FILE]...

  (no argument)  run every built-in scenario
  NAME           run the built-in scenario NAME
  FILE           run the SQE program in FILE (the text format: docs/conformance.md)
  --list         list the built-in scenarios and stop
  --show         print each program before running it
  --verbose      print the completions of identical runs too";

fn main() -> ExitCode {
    let mut list = false;
    let mut show = false;
    let mut verbose = false;
    let mut targets = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--list" => list = true,
            "--show" => show = true,
            "--verbose" | "-v" => verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') => {
                eprintln!("unknown option {a}\n{USAGE}");
                return ExitCode::FAILURE;
            }
            _ => targets.push(arg),
        }
    }
    if list {
        for s in scenarios::ALL {
            let mark = if s.difference.is_some() { "*" } else { " " };
            println!("{mark} {:<36} {}", s.name, s.about);
        }
        println!("(* a documented difference from io_uring)");
        return ExitCode::SUCCESS;
    }

    let mut outcomes = Vec::new();
    let mut failed = false;
    if targets.is_empty() {
        targets = scenarios::ALL.iter().map(|s| s.name.to_string()).collect();
    }
    for t in &targets {
        let outcome = if let Some(s) = scenarios::find(t) {
            if show {
                print_program(&s.program().map(|p| p.to_string()), s);
            }
            check(s)
        } else {
            match std::fs::read_to_string(t) {
                Ok(text) => match Program::parse(t.as_str(), &text) {
                    Ok(p) => {
                        if show {
                            println!("--- {t}\n{p}");
                        }
                        check_program(&p, false)
                    }
                    Err(e) => {
                        eprintln!("{t}: {e}");
                        failed = true;
                        continue;
                    }
                },
                Err(e) => {
                    eprintln!("{t}: not a scenario name, and not a readable file: {e}");
                    failed = true;
                    continue;
                }
            }
        };
        print_outcome(&outcome, verbose);
        failed |= outcome.verdict.is_failure();
        outcomes.push(outcome);
    }

    if let Some(reason) = outcomes.iter().find_map(Outcome::skipped_reason) {
        println!("io_uring skipped ({reason}): only the two kqring modes were compared");
    }
    println!("{}", summary_line(&outcomes));
    for o in &outcomes {
        if o.verdict == Verdict::DocumentedDifference {
            println!("  documented difference: {}", o.name);
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_program(text: &Result<String, kqring_conformance::ParseError>, s: &Scenario) {
    match text {
        Ok(t) => println!("--- {} ({})\n{t}", s.name, s.about),
        Err(e) => println!("--- {}: {e}", s.name),
    }
}

fn print_outcome(o: &Outcome, verbose: bool) {
    let label = match &o.verdict {
        Verdict::Identical => "identical".to_string(),
        Verdict::DocumentedDifference => "documented difference".to_string(),
        Verdict::UndocumentedDifference => "DIFFERENT (not documented)".to_string(),
        Verdict::NoLongerDifferent => {
            "IDENTICAL, but documented as a difference: update the list".to_string()
        }
        Verdict::Unchecked => "kqring modes agree (io_uring not run)".to_string(),
        Verdict::ModesDisagree => "kqring MODES DISAGREE".to_string(),
        Verdict::Error(e) => format!("ERROR: {e}"),
    };
    println!("{:<36} {label}", o.name);
    let quiet = matches!(o.verdict, Verdict::Identical | Verdict::Unchecked);
    if verbose || !quiet {
        for line in o.report().lines() {
            println!("    {line}");
        }
    }
    if o.verdict == Verdict::DocumentedDifference
        && let Some(why) = scenarios::find(&o.name).and_then(|s| s.difference)
    {
        println!("    why ({}): {}", why.kind(), why.why());
    }
}
