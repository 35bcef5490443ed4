//! `kqring-conformance [--list] [--show] [--verbose] [--no-io-uring] [--bless] [NAME | FILE]...`
//!
//! Runs the built-in scenarios (all, or those named) on kqring, both
//! driving modes, and on Linux's io_uring, and prints how they compare.
//! An argument that is a file is read as a program in the text format
//! (see docs/conformance.md) and run the same way. `--bless` prints each
//! program back with its expectation lines filled in from the runs.

use std::process::ExitCode;

use kqring::Mode;
use kqring_conformance::scenarios::{self, Scenario};
use kqring_conformance::{
    Expected, ExpectedGroup, Outcome, Program, Reference, Verdict, check_program_with, check_with,
    diff_groups, run_io_uring, run_kqring, skip_lines, summary_line, with_expectations,
};

const USAGE: &str = "\
usage: kqring-conformance [--list] [--show] [--verbose] [--no-io-uring] [--bless] [NAME | FILE]...

  (no argument)  run every built-in scenario
  NAME           run the built-in scenario NAME
  FILE           run the SQE program in FILE (the text format: docs/conformance.md)
  --list         list the built-in scenarios and stop
  --show         print each program before running it
  --verbose      print the completions of identical runs too
  --no-io-uring  do not run io_uring: hold kqring to the recorded expectations only
  --bless        run each program on io_uring and kqring and print it back with its
                 expectation lines (`expect`, and `expect-kqring` where kqring differs)
                 filled in (a built-in scenario with its `##` lines, as in its file under
                 conformance/scenarios/); read them before keeping them";

/// A program to run: a built-in scenario or a file's.
struct Target {
    name: String,
    text: String,
    scenario: Option<&'static Scenario>,
}

fn main() -> ExitCode {
    let mut list = false;
    let mut show = false;
    let mut verbose = false;
    let mut bless = false;
    let mut reference = Reference::Run;
    let mut names = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--list" => list = true,
            "--show" => show = true,
            "--verbose" | "-v" => verbose = true,
            "--bless" => bless = true,
            "--no-io-uring" => {
                reference = Reference::Skip("io_uring: turned off (--no-io-uring)".into());
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') => {
                eprintln!("unknown option {a}\n{USAGE}");
                return ExitCode::FAILURE;
            }
            _ => names.push(arg),
        }
    }
    if list {
        for s in scenarios::all() {
            let mark = if s.difference.is_some() { "*" } else { " " };
            println!("{mark} {:<36} {}", s.name, s.about);
        }
        println!("(* a documented difference from io_uring)");
        return ExitCode::SUCCESS;
    }
    if names.is_empty() {
        names = scenarios::all()
            .iter()
            .map(|s| s.name.to_string())
            .collect();
    }
    let mut failed = false;
    let mut targets = Vec::new();
    for n in names {
        if let Some(s) = scenarios::find(&n) {
            targets.push(Target {
                name: n,
                text: s.text.to_string(),
                scenario: Some(s),
            });
            continue;
        }
        match std::fs::read_to_string(&n) {
            Ok(text) => targets.push(Target {
                name: n,
                text,
                scenario: None,
            }),
            Err(e) => {
                eprintln!("{n}: not a scenario name, and not a readable file: {e}");
                failed = true;
            }
        }
    }
    let failed = if bless {
        bless_all(&targets) || failed
    } else {
        check_all(&targets, &reference, show, verbose) || failed
    };
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks every target and prints the outcome; whether any failed.
fn check_all(targets: &[Target], reference: &Reference, show: bool, verbose: bool) -> bool {
    let mut failed = false;
    let mut outcomes = Vec::new();
    for t in targets {
        let outcome = match t.scenario {
            Some(s) => {
                if show {
                    println!("--- {} ({})\n{}", s.name, s.about, s.text);
                }
                check_with(s, reference.clone())
            }
            None => match Program::parse(t.name.as_str(), &t.text) {
                Ok(p) => {
                    if show {
                        println!("--- {}\n{p}", t.name);
                    }
                    // A file documents a difference by pinning kqring's own
                    // completions (`expect-kqring`).
                    let documented = p.expected.as_ref().is_some_and(|e| e.differs(p.order));
                    check_program_with(&p, documented, reference.clone())
                }
                Err(e) => {
                    eprintln!("{}: {e}", t.name);
                    failed = true;
                    continue;
                }
            },
        };
        print_outcome(&outcome, verbose);
        failed |= outcome.verdict.is_failure();
        outcomes.push(outcome);
    }
    for line in skip_lines(&outcomes) {
        println!("{line}");
    }
    println!("{}", summary_line(&outcomes));
    for o in &outcomes {
        if o.verdict == Verdict::DocumentedDifference {
            println!("  documented difference: {}", o.name);
        }
    }
    failed
}

fn print_outcome(o: &Outcome, verbose: bool) {
    println!("{}", o.status_line());
    if verbose && let Some(reason) = o.skipped_reason() {
        println!("    {reason}");
    }
    let quiet = matches!(o.verdict, Verdict::Identical | Verdict::Unchecked);
    if verbose || !quiet {
        for line in o.report(verbose).lines() {
            println!("    {line}");
        }
    }
    if o.verdict == Verdict::DocumentedDifference
        && let Some(why) = scenarios::find(&o.name).and_then(|s| s.difference.as_ref())
    {
        println!("    why ({}): {}", why.kind(), why.why());
    }
}

/// Prints every target back with its expectations filled in; whether any
/// could not be.
fn bless_all(targets: &[Target]) -> bool {
    let mut failed = false;
    for (i, t) in targets.iter().enumerate() {
        // A built-in scenario comes back as it stands in its file, `##`
        // lines first, ready to replace it there.
        match t.scenario {
            Some(s) => print!("{}{}", if i > 0 { "\n" } else { "" }, s.header),
            None if targets.len() > 1 => println!("# --- {}", t.name),
            None => {}
        }
        match bless(&t.name, &t.text) {
            Ok(text) => print!("{text}"),
            Err(e) => {
                eprintln!("{}: {e}", t.name);
                failed = true;
            }
        }
    }
    failed
}

/// `text` with expectations from a run on io_uring (`expect`) and, where
/// kqring gives something else, on kqring (`expect-kqring`).
fn bless(name: &str, text: &str) -> Result<String, String> {
    let mut program = Program::parse(name, text).map_err(|e| e.to_string())?;
    program.expected = None;
    let u = run_io_uring(&program).map_err(|e| format!("cannot bless without io_uring: {e}"))?;
    let p = run_kqring(&program, Mode::PollingThread).map_err(|e| format!("kqring: {e}"))?;
    let i = run_kqring(&program, Mode::Inline).map_err(|e| format!("kqring: {e}"))?;
    if p != i {
        return Err(format!(
            "kqring's two modes disagree, so there is nothing to pin:\n{}",
            diff_groups("kqring/polling", &p.groups, "kqring/inline", &i.groups)
        ));
    }
    let waits: Vec<usize> = program
        .steps
        .iter()
        .filter_map(|s| match s {
            kqring_conformance::Step::Wait(n) => Some(*n),
            _ => None,
        })
        .collect();
    for (k, (n, got)) in waits.iter().zip(&u.groups).enumerate() {
        if got.len() < *n {
            eprintln!(
                "{name}: warning: wait #{} got {} of its {n} completions on io_uring",
                k + 1,
                got.len()
            );
        }
    }
    let groups = u
        .groups
        .into_iter()
        .zip(p.groups)
        .map(|(io_uring, kq)| {
            let kqring = (kq != io_uring).then_some(kq);
            ExpectedGroup { io_uring, kqring }
        })
        .collect();
    Ok(with_expectations(text, &Expected { groups }))
}
