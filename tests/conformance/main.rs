//! The conformance suite: every built-in scenario of `kqring-conformance`
//! on kqring, in both driving modes, and on Linux's io_uring.
//!
//! Each scenario carries the completions io_uring gives (`expect` lines)
//! and, where kqring differs by design or by a known bug, kqring's own
//! (`expect-kqring`). A scenario passes when kqring's two modes agree,
//! kqring gives what is expected of it, and io_uring — where it runs —
//! gives what was recorded; a difference must be documented (listed in
//! `kqring_conformance::scenarios` and in docs/semantics.md), and a
//! documented one that has become identical fails too, so the list stays
//! true. Without io_uring (not Linux, `io_uring_setup` refused, or an
//! opcode this kernel lacks) the reason is printed and kqring is still
//! held to the recorded expectations.
//!
//! The suite also checks that docs/semantics.md lists exactly the
//! scenarios that differ.
//!
//! `harness = false`: this prints the summary line in every `cargo test`
//! log. Arguments that are not options select scenarios whose name contains
//! them (`cargo test --test conformance -- poll`).

use std::process::ExitCode;

use kqring_conformance::scenarios::{self, Difference, Scenario};
use kqring_conformance::{Outcome, Verdict, check, skip_lines, summary_line};

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

/// The scenario names listed (as "- `name` — ...") under the heading
/// `heading` of a Markdown text, up to the next heading.
fn listed(markdown: &str, heading: &str) -> Option<Vec<String>> {
    let mut lines = markdown.lines().skip_while(|l| l.trim() != heading);
    lines.next()?;
    Some(
        lines
            .take_while(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("- `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name.to_string())
            .collect(),
    )
}

/// Whether docs/semantics.md lists every scenario that differs from
/// io_uring under the heading of its kind, and nothing else there.
fn docs_in_sync() -> Result<usize, Vec<String>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/semantics.md");
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("{path}: {e}")])?;
    let mut problems = Vec::new();
    let mut count = 0;
    for (heading, by_design) in [
        ("### Differences by design", true),
        ("### Open differences", false),
    ] {
        let Some(names) = listed(&text, heading) else {
            problems.push(format!("docs/semantics.md has no `{heading}` section"));
            continue;
        };
        for s in scenarios::ALL {
            let kind = match s.difference {
                Some(Difference::ByDesign(_)) => true,
                Some(Difference::Open(_)) => false,
                None => continue,
            };
            if kind == by_design && !names.iter().any(|n| n == s.name) {
                problems.push(format!(
                    "`{}` differs from io_uring but is not listed under `{heading}` in \
                     docs/semantics.md",
                    s.name
                ));
            }
        }
        for n in &names {
            let matches = scenarios::find(n).is_some_and(|s| match s.difference {
                Some(Difference::ByDesign(_)) => by_design,
                Some(Difference::Open(_)) => !by_design,
                None => false,
            });
            if !matches {
                problems.push(format!(
                    "docs/semantics.md lists `{n}` under `{heading}`, but no scenario of that \
                     name differs from io_uring that way"
                ));
            }
            count += 1;
        }
    }
    if problems.is_empty() {
        Ok(count)
    } else {
        Err(problems)
    }
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
        println!("conformance {}", o.status_line());
        if o.verdict.is_failure() {
            for line in o.report(false).lines() {
                println!("    {line}");
            }
            if let Some(d) = s.difference {
                println!("    documented as {} difference: {}", d.kind(), d.why());
            }
        }
        outcomes.push(o);
    }

    let docs = docs_in_sync();
    match &docs {
        Ok(n) => println!("conformance: docs/semantics.md lists the {n} scenarios that differ"),
        Err(problems) => {
            for p in problems {
                println!("conformance: FAILED: {p}");
            }
        }
    }
    // Never skip io_uring silently.
    for line in skip_lines(&outcomes) {
        println!("conformance: {line}");
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
    if failed.is_empty() && docs.is_ok() {
        ExitCode::SUCCESS
    } else {
        if !failed.is_empty() {
            eprintln!("conformance: FAILED: {}", failed.join(", "));
        }
        ExitCode::FAILURE
    }
}
