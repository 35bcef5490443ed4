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
//! opcode this kernel lacks) kqring is still held to the recorded
//! expectations, and the reason is printed.
//!
//! Each scenario is a trial of its own (`libtest-mimic`), and so is the
//! check that docs/semantics.md lists exactly the scenarios that differ:
//! `--list`, `--exact NAME`, a filter (`cargo test --test conformance --
//! poll`) and `--test-threads` work as in any test binary. A failing
//! scenario's trial shows the completions side by side. After the trials
//! the suite prints why io_uring was skipped, if it was, and its summary
//! line, which every `cargo test` log carries.

use std::sync::Mutex;

use kqring_conformance::scenarios::{self, Difference, Scenario};
use kqring_conformance::{Outcome, RunError, Verdict, check, skip_lines, summary_line};
use libtest_mimic::{Arguments, Failed, FormatSetting, Trial};

/// The outcomes of the scenario trials that ran, for the summary.
static OUTCOMES: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());

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
fn docs_in_sync() -> Result<(), Failed> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/semantics.md");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut problems = Vec::new();
    for (heading, by_design) in [
        ("### Differences by design", true),
        ("### Open differences", false),
    ] {
        let Some(names) = listed(&text, heading) else {
            problems.push(format!("docs/semantics.md has no `{heading}` section"));
            continue;
        };
        for s in scenarios::all() {
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
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

/// Runs one scenario and keeps its outcome; a failure carries the
/// completions side by side.
fn run_scenario(s: &'static Scenario) -> Result<(), Failed> {
    // A panic is a failure like any other, counted in the summary.
    let o = std::panic::catch_unwind(|| check(s)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let err = || Err(RunError::Invalid("the check panicked".into()));
        Outcome {
            name: s.name.to_string(),
            polling: err(),
            inline: err(),
            io_uring: err(),
            expected: None,
            verdict: Verdict::Error(format!("the check panicked: {why}")),
        }
    });
    let result = if o.verdict.is_failure() {
        let mut msg = o.status_line();
        for line in o.report(false).lines() {
            msg.push_str("\n    ");
            msg.push_str(line);
        }
        if let Some(d) = &s.difference {
            msg.push_str(&format!(
                "\n    documented as {} difference: {}",
                d.kind(),
                d.why()
            ));
        }
        Err(msg.into())
    } else {
        Ok(())
    };
    OUTCOMES.lock().unwrap().push(o);
    result
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![Trial::test(
        "docs_semantics_md_lists_the_scenarios_that_differ",
        docs_in_sync,
    )];
    trials.extend(
        scenarios::all()
            .iter()
            .map(|s| Trial::test(s.name, move || run_scenario(s))),
    );
    let conclusion = libtest_mimic::run(&args, trials);

    if !args.list && args.format != Some(FormatSetting::Json) {
        let mut outcomes = std::mem::take(&mut *OUTCOMES.lock().unwrap());
        // Trials finish in any order: report in the scenarios' own.
        outcomes.sort_by_key(|o| scenarios::all().iter().position(|s| s.name == o.name));
        // Never skip io_uring silently.
        for line in skip_lines(&outcomes) {
            println!("conformance: {line}");
        }
        println!("{}", summary_line(&outcomes));
        for o in &outcomes {
            if o.verdict == Verdict::DocumentedDifference
                && let Some(d) = scenarios::find(&o.name).and_then(|s| s.difference.as_ref())
            {
                println!("  documented difference ({}): {}", d.kind(), o.name);
            }
        }
    }
    conclusion.exit();
}
