//! Runs a program on every backend and judges the outcome.
//!
//! A program with expectations (`expect` lines) is judged against them:
//! kqring's two driving modes must agree with each other, kqring must give
//! what is expected of it, and io_uring, where it runs, must give what was
//! recorded for it. Without io_uring, the expectations still hold kqring
//! to io_uring's recorded behaviour. A program without expectations is
//! only compared live: kqring against io_uring, or the two kqring modes
//! with each other where io_uring cannot run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kqring::Mode;

use crate::diff::diff_groups;
use crate::model::{CqeGroups, Program};
use crate::run::{Completions, RunError, Unavailable};
use crate::scenarios::Scenario;
use crate::{run_io_uring, run_kqring};

/// How a program's runs compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// kqring gives io_uring's completions: those recorded, and those of
    /// the live run where io_uring runs.
    Identical,
    /// kqring differs from io_uring, and the difference is documented.
    DocumentedDifference,
    /// kqring differs from io_uring, and the difference is not documented:
    /// a failure.
    UndocumentedDifference,
    /// Documented as a difference, but identical now: a failure, so the
    /// list of differences stays true.
    NoLongerDifferent,
    /// No expectation is written down and io_uring could not run here; the
    /// two kqring modes agree with each other (nothing more could be
    /// checked).
    Unchecked,
    /// kqring's polling-thread and inline modes disagree: a failure.
    ModesDisagree,
    /// kqring does not give the completions expected of it: a failure.
    KqringUnexpected,
    /// io_uring on this kernel does not give the completions recorded for
    /// it: a failure (the recording, or the kernel, is not what the suite
    /// assumes).
    IoUringUnexpected,
    /// A run could not be made: a failure.
    Error(String),
}

impl Verdict {
    /// Whether the verdict fails the suite.
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Verdict::Identical | Verdict::DocumentedDifference | Verdict::Unchecked
        )
    }

    /// The verdict in a few words, failures in capitals.
    pub fn label(&self) -> String {
        match self {
            Verdict::Identical => "identical".into(),
            Verdict::DocumentedDifference => "documented difference".into(),
            Verdict::UndocumentedDifference => {
                "FAILED: differs from io_uring, and the difference is not documented".into()
            }
            Verdict::NoLongerDifferent => {
                "FAILED: identical to io_uring now, but documented as a difference: take it off \
                 the list"
                    .into()
            }
            Verdict::Unchecked => {
                "kqring modes agree (no expectation written, io_uring not run)".into()
            }
            Verdict::ModesDisagree => {
                "FAILED: kqring's polling-thread and inline modes disagree".into()
            }
            Verdict::KqringUnexpected => "FAILED: kqring differs from the expectation".into(),
            Verdict::IoUringUnexpected => {
                "FAILED: io_uring on this kernel differs from the recorded expectation".into()
            }
            Verdict::Error(e) => format!("FAILED: {e}"),
        }
    }
}

/// Whether a check runs io_uring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// Runs io_uring where it can.
    Run,
    /// Does not run it, for this reason (as printed).
    Skip(String),
}

/// The runs of one program and their verdict.
#[derive(Debug)]
pub struct Outcome {
    /// The program's name.
    pub name: String,
    /// kqring, driven by its polling thread.
    pub polling: Result<Completions, RunError>,
    /// kqring, driven inline.
    pub inline: Result<Completions, RunError>,
    /// io_uring, the reference.
    pub io_uring: Result<Completions, RunError>,
    /// What io_uring and kqring are expected to give, in the order the
    /// comparison uses, when the program says.
    pub expected: Option<(CqeGroups, CqeGroups)>,
    /// How they compare.
    pub verdict: Verdict,
}

impl Outcome {
    /// Why io_uring was not run, if it was not.
    pub fn skipped_reason(&self) -> Option<String> {
        match &self.io_uring {
            Err(RunError::Unavailable(u)) => Some(u.reason.clone()),
            _ => None,
        }
    }

    /// The program's line: its name, its verdict and, where io_uring did
    /// not run, that it did not.
    pub fn status_line(&self) -> String {
        let skipped = if self.skipped_reason().is_some() {
            " (io_uring skipped)"
        } else {
            ""
        };
        format!("{:<36} {}{skipped}", self.name, self.verdict.label())
    }

    /// The runs side by side where they matter: the two kqring modes when
    /// they disagree, a backend against what is expected of it when it
    /// differs, and kqring against io_uring (its live run, or else what is
    /// recorded of it) when they differ or `all`.
    pub fn report(&self, all: bool) -> String {
        let mut out = String::new();
        for (name, r) in [
            ("kqring/polling", &self.polling),
            ("kqring/inline", &self.inline),
            ("io_uring", &self.io_uring),
        ] {
            match r {
                // A skip is said on its own line.
                Ok(_) | Err(RunError::Unavailable(_)) => {}
                Err(e) => {
                    let _ = writeln!(out, "{name}: {e}");
                }
            }
        }
        let (Ok(p), Ok(i)) = (&self.polling, &self.inline) else {
            return out;
        };
        let u = self.io_uring.as_ref().ok();
        if p != i {
            out.push_str(&diff_groups(
                "kqring/polling",
                &p.groups,
                "kqring/inline",
                &i.groups,
            ));
            return out;
        }
        let before = out.len();
        if let Some((exp_u, exp_k)) = &self.expected {
            if p.groups != *exp_k {
                out.push_str(&diff_groups(
                    "expected of kqring",
                    exp_k,
                    "kqring (both modes)",
                    &p.groups,
                ));
            }
            if let Some(u) = u
                && u.groups != *exp_u
            {
                out.push_str(&diff_groups(
                    "recorded of io_uring",
                    exp_u,
                    "io_uring on this kernel",
                    &u.groups,
                ));
            }
        }
        if out.len() > before && !all {
            // The runs against what is expected of them say it all.
            return out;
        }
        let (name, reference) = match (u, &self.expected) {
            (Some(u), _) => ("io_uring", &u.groups),
            (None, Some((exp_u, _))) => ("io_uring (recorded)", exp_u),
            (None, None) => return out,
        };
        if all || p.groups != *reference {
            out.push_str(&diff_groups(
                "kqring (both modes)",
                &p.groups,
                name,
                reference,
            ));
        }
        out
    }
}

/// Runs a built-in scenario on both kqring modes and on io_uring, and
/// judges it against its expectations and its documented difference, if
/// it has one.
pub fn check(scenario: &Scenario) -> Outcome {
    check_with(scenario, Reference::Run)
}

/// [`check`], running io_uring or not as `reference` says.
pub fn check_with(scenario: &Scenario, reference: Reference) -> Outcome {
    match scenario.program() {
        Ok(program) => check_program_with(&program, scenario.difference.is_some(), reference),
        Err(e) => {
            let err = || Err(RunError::Invalid(e.to_string()));
            Outcome {
                name: scenario.name.to_string(),
                polling: err(),
                inline: err(),
                io_uring: err(),
                expected: None,
                verdict: Verdict::Error(format!("the scenario does not parse: {e}")),
            }
        }
    }
}

/// Runs `program` on both kqring modes and on io_uring; `documented` says
/// whether a difference from io_uring is known and written down.
pub fn check_program(program: &Program, documented: bool) -> Outcome {
    check_program_with(program, documented, Reference::Run)
}

/// [`check_program`], running io_uring or not as `reference` says.
pub fn check_program_with(program: &Program, documented: bool, reference: Reference) -> Outcome {
    let polling = run_kqring(program, Mode::PollingThread);
    let inline = run_kqring(program, Mode::Inline);
    let io_uring = match reference {
        Reference::Run => run_io_uring(program),
        Reference::Skip(reason) => Err(RunError::Unavailable(Unavailable { reason })),
    };
    let expected = program
        .expected
        .as_ref()
        .map(|e| (e.io_uring(program.order), e.kqring(program.order)));
    let verdict = judge(&polling, &inline, &io_uring, expected.as_ref(), documented);
    Outcome {
        name: program.name.clone(),
        polling,
        inline,
        io_uring,
        expected,
        verdict,
    }
}

fn judge(
    polling: &Result<Completions, RunError>,
    inline: &Result<Completions, RunError>,
    io_uring: &Result<Completions, RunError>,
    expected: Option<&(CqeGroups, CqeGroups)>,
    documented: bool,
) -> Verdict {
    let (p, i) = match (polling, inline) {
        (Ok(p), Ok(i)) => (p, i),
        (Err(e), _) => return Verdict::Error(format!("kqring/polling: {e}")),
        (_, Err(e)) => return Verdict::Error(format!("kqring/inline: {e}")),
    };
    if p != i {
        return Verdict::ModesDisagree;
    }
    let u = match io_uring {
        Ok(u) => Some(u),
        Err(RunError::Unavailable(_)) => None,
        Err(e) => return Verdict::Error(format!("io_uring: {e}")),
    };
    let differs = match expected {
        Some((exp_u, exp_k)) => {
            if p.groups != *exp_k {
                return Verdict::KqringUnexpected;
            }
            if u.is_some_and(|u| u.groups != *exp_u) {
                return Verdict::IoUringUnexpected;
            }
            exp_u != exp_k
        }
        None => match u {
            Some(u) => p != u,
            None => return Verdict::Unchecked,
        },
    };
    match (differs, documented) {
        (false, false) => Verdict::Identical,
        (false, true) => Verdict::NoLongerDifferent,
        (true, true) => Verdict::DocumentedDifference,
        (true, false) => Verdict::UndocumentedDifference,
    }
}

/// The suite's summary line: `conformance: N scenarios, N identical, N
/// documented differences, N failed; io_uring run on N, skipped on N`.
pub fn summary_line(outcomes: &[Outcome]) -> String {
    let count = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count();
    let failed = outcomes.iter().filter(|o| o.verdict.is_failure()).count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.skipped_reason().is_some())
        .count();
    let unchecked = match count(Verdict::Unchecked) {
        0 => String::new(),
        n => format!(", {n} unchecked"),
    };
    format!(
        "conformance: {} scenarios, {} identical, {} documented differences{unchecked}, {failed} \
         failed; io_uring run on {}, skipped on {skipped}",
        outcomes.len(),
        count(Verdict::Identical),
        count(Verdict::DocumentedDifference),
        outcomes.len() - skipped,
    )
}

/// One line per reason io_uring was skipped for, with how many programs
/// (and which, when not all): a skip is never silent.
pub fn skip_lines(outcomes: &[Outcome]) -> Vec<String> {
    let mut by_reason: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for o in outcomes {
        if let Some(r) = o.skipped_reason() {
            by_reason.entry(r).or_default().push(&o.name);
        }
    }
    by_reason
        .into_iter()
        .map(|(reason, names)| {
            let which = if names.len() == outcomes.len() {
                format!("all {}", names.len())
            } else {
                format!("{} ({})", names.len(), names.join(", "))
            };
            let reason = reason.strip_prefix("io_uring: ").unwrap_or(&reason);
            format!("io_uring skipped for {which}: {reason}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_program_is_identical_or_unchecked() {
        let p = Program::parse(
            "t",
            "pair p\nwrite-peer p.a \"hi\"\nread fd=p.b len=2 ud=1\nwait 1",
        )
        .unwrap();
        let o = check_program(&p, false);
        assert!(
            matches!(o.verdict, Verdict::Identical | Verdict::Unchecked),
            "{:?}\n{}",
            o.verdict,
            o.report(true)
        );
        let cqes = o.polling.unwrap();
        assert_eq!(cqes.all().len(), 1);
        assert_eq!(cqes.all()[0].data.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn a_listed_difference_that_is_identical_fails() {
        let p = Program::parse("t", "nop ud=1\nwait 1\nexpect ud=1 res=0").unwrap();
        let o = check_program(&p, true);
        assert_eq!(o.verdict, Verdict::NoLongerDifferent, "{}", o.report(true));
        assert!(o.verdict.is_failure());
    }

    #[test]
    fn an_invalid_program_is_an_error() {
        let mut p = Program::new("t");
        p.steps.push(crate::Step::ClosePeer {
            fd: crate::FdRef::new("nowhere"),
        });
        let o = check_program(&p, false);
        assert!(matches!(o.verdict, Verdict::Error(_)), "{:?}", o.verdict);
    }

    const SKIP: &str = "io_uring: turned off for this test";

    /// Without io_uring, the expectations still hold kqring, and the skip
    /// is said with its reason.
    #[test]
    fn without_io_uring_kqring_is_held_to_the_expectations() {
        let skip = || Reference::Skip(SKIP.into());
        let good = Program::parse(
            "good",
            "pair p\nwrite-peer p.a \"hi\"\nread fd=p.b len=2 ud=1\nwait 1\n\
             expect ud=1 res=2 data=\"hi\"",
        )
        .unwrap();
        let o = check_program_with(&good, false, skip());
        assert_eq!(o.verdict, Verdict::Identical, "{}", o.report(true));
        assert_eq!(o.skipped_reason().as_deref(), Some(SKIP));
        assert!(
            o.status_line().contains("io_uring skipped"),
            "{}",
            o.status_line()
        );
        let bad = Program::parse(
            "bad",
            "pair p\nwrite-peer p.a \"hi\"\nread fd=p.b len=2 ud=1\nwait 1\n\
             expect ud=1 res=-ECANCELED",
        )
        .unwrap();
        let o2 = check_program_with(&bad, false, skip());
        assert_eq!(o2.verdict, Verdict::KqringUnexpected);
        let report = o2.report(false);
        assert!(report.contains("expected of kqring"), "{report}");
        assert!(report.contains("!= ud=1 res=-ECANCELED"), "{report}");
        let outcomes = [o, o2];
        let lines = skip_lines(&outcomes);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("skipped for all 2: turned off for this test"),
            "{lines:?}"
        );
        let summary = summary_line(&outcomes);
        assert!(
            summary.starts_with("conformance: 2 scenarios, 1 identical, 0 documented differences"),
            "{summary}"
        );
        assert!(summary.ends_with("skipped on 2"), "{summary}");
    }

    /// A difference pinned on both sides: kqring is held to its own
    /// expectation, and the verdict needs the documentation.
    #[test]
    fn a_pinned_difference_is_documented_or_fails() {
        let text = "nop ud=1\nwait 1\nexpect ud=1 res=0\nexpect-kqring ud=1 res=0";
        let p = Program::parse("t", text).unwrap();
        // Both expectations alike: no difference to document.
        let o = check_program_with(&p, true, Reference::Skip(SKIP.into()));
        assert_eq!(o.verdict, Verdict::NoLongerDifferent);
        // io_uring is recorded as differing: kqring keeps its own.
        let text = "nop ud=1\nwait 1\nexpect ud=1 res=-EINVAL\nexpect-kqring ud=1 res=0";
        let p = Program::parse("t", text).unwrap();
        let o = check_program_with(&p, true, Reference::Skip(SKIP.into()));
        assert_eq!(o.verdict, Verdict::DocumentedDifference);
        let o = check_program_with(&p, false, Reference::Skip(SKIP.into()));
        assert_eq!(o.verdict, Verdict::UndocumentedDifference);
    }

    /// Where io_uring runs, a recording it does not give fails, said as
    /// such.
    #[test]
    fn io_uring_is_held_to_the_recording() {
        let p = Program::parse(
            "t",
            "nop ud=1\nwait 1\nexpect ud=1 res=-EINVAL\nexpect-kqring ud=1 res=0",
        )
        .unwrap();
        let o = check_program(&p, true);
        if o.skipped_reason().is_none() {
            assert_eq!(o.verdict, Verdict::IoUringUnexpected, "{}", o.report(true));
            assert!(o.report(false).contains("io_uring on this kernel"));
            assert!(o.verdict.label().contains("recorded expectation"));
        }
    }
}
