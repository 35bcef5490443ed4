//! The conformance suite: every built-in scenario of `kqring-conformance`
//! on kqring, in both driving modes, and on Linux's io_uring.
//!
//! A scenario passes when its completions are identical on every backend,
//! or when it differs and the difference is documented (listed in
//! `kqring_conformance::scenarios` and described in docs/semantics.md). A
//! documented difference that has become identical fails too, so the list
//! stays true. Without io_uring (not Linux, or `io_uring_setup` refused) the
//! two kqring modes are compared with each other, and the reason is printed.
//!
//! `harness = false`: this prints the summary line in every `cargo test`
//! log. Arguments that are not options select scenarios whose name contains
//! them (`cargo test --test conformance -- poll`).

use std::process::ExitCode;

use kqring_conformance::scenarios::{self, Scenario};
use kqring_conformance::{Outcome, Verdict, check, summary_line};

/// libtest options that take a value in the next argument: skipped with it.
const VALUED: &[&str] = &[
    "--skip",
    "--test-threads",
    "--color",
    "--format",
    "--logfile",
    "-Z",
];

fn filters() -> Vec<String> {
    let mut out = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if VALUED.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            out.push(a);
        }
    }
    out
}

fn main() -> ExitCode {
    let filters = filters();
    let selected: Vec<&Scenario> = scenarios::ALL
        .iter()
        .filter(|s| filters.is_empty() || filters.iter().any(|f| s.name.contains(f.as_str())))
        .collect();

    let mut outcomes: Vec<Outcome> = Vec::new();
    for s in &selected {
        let o = check(s);
        let label = match &o.verdict {
            Verdict::Identical => "identical",
            Verdict::DocumentedDifference => "documented difference",
            Verdict::Unchecked => "kqring modes agree (io_uring not run)",
            Verdict::UndocumentedDifference => "FAILED: differs from io_uring, not documented",
            Verdict::NoLongerDifferent => {
                "FAILED: identical now, but listed as a difference: take it off the list"
            }
            Verdict::ModesDisagree => "FAILED: the two kqring modes disagree",
            Verdict::Error(_) => "FAILED: error",
        };
        println!("conformance {:<36} {label}", s.name);
        if o.verdict.is_failure() {
            if let Verdict::Error(e) = &o.verdict {
                println!("    {e}");
            }
            for line in o.report().lines() {
                println!("    {line}");
            }
        }
        outcomes.push(o);
    }

    // Never skip io_uring silently.
    if let Some(reason) = outcomes.iter().find_map(Outcome::skipped_reason) {
        println!(
            "conformance: io_uring skipped ({reason}); only the two kqring modes were compared"
        );
    }
    println!("{}", summary_line(&outcomes));
    for o in &outcomes {
        if o.verdict == Verdict::DocumentedDifference
            && let Some(d) = scenarios::find(&o.name).and_then(|s| s.difference)
        {
            println!("  documented difference ({}): {}", d.kind(), o.name);
        }
    }

    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.verdict.is_failure())
        .map(|o| o.name.as_str())
        .collect();
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("conformance: FAILED: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
