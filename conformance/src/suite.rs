//! Runs a program on every backend and classifies the outcome.

use std::fmt::Write as _;

use kqring::Mode;

use crate::model::Program;
use crate::run::{CqeRecord, RunError};
use crate::scenarios::Scenario;
use crate::{diff, run_io_uring, run_kqring};

/// How a program's runs compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Both kqring modes gave exactly io_uring's completions.
    Identical,
    /// A kqring mode differs from io_uring, and the difference is
    /// documented.
    DocumentedDifference,
    /// A kqring mode differs from io_uring, and the difference is not
    /// documented: a failure.
    UndocumentedDifference,
    /// Documented as a difference, but identical now: a failure, so the
    /// list of differences stays true.
    NoLongerDifferent,
    /// io_uring could not run here; the two kqring modes agree with each
    /// other (nothing more could be checked).
    Unchecked,
    /// io_uring could not run here, and the two kqring modes disagree: a
    /// failure.
    ModesDisagree,
    /// A run could not be made: a failure.
    Error(String),
}

impl Verdict {
    /// Whether the verdict fails the suite.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Verdict::UndocumentedDifference
                | Verdict::NoLongerDifferent
                | Verdict::ModesDisagree
                | Verdict::Error(_)
        )
    }
}

/// The runs of one program and their verdict.
#[derive(Debug)]
pub struct Outcome {
    /// The program's name.
    pub name: String,
    /// kqring, driven by its polling thread.
    pub polling: Result<Vec<CqeRecord>, RunError>,
    /// kqring, driven inline.
    pub inline: Result<Vec<CqeRecord>, RunError>,
    /// io_uring, the reference.
    pub io_uring: Result<Vec<CqeRecord>, RunError>,
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

    /// The runs side by side (io_uring against each kqring mode that
    /// differs from it, or the two modes against each other).
    pub fn report(&self) -> String {
        let mut out = String::new();
        let show = |r: &Result<Vec<CqeRecord>, RunError>| match r {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(e.to_string()),
        };
        let (p, i, u) = (
            show(&self.polling),
            show(&self.inline),
            show(&self.io_uring),
        );
        for (name, r) in [
            ("kqring/polling", &p),
            ("kqring/inline", &i),
            ("io_uring", &u),
        ] {
            if let Err(e) = r {
                let _ = writeln!(out, "{name}: {e}");
            }
        }
        match (&p, &i, &u) {
            (Ok(p), Ok(i), Ok(u)) if p == i => {
                out.push_str(&diff("kqring (both modes)", p, "io_uring", u));
            }
            (Ok(p), Ok(i), Ok(u)) => {
                out.push_str(&diff("kqring/polling", p, "io_uring", u));
                out.push_str(&diff("kqring/inline", i, "io_uring", u));
            }
            (Ok(p), Ok(i), Err(_)) => out.push_str(&diff("kqring/polling", p, "kqring/inline", i)),
            (Ok(k), Err(_), Ok(u)) | (Err(_), Ok(k), Ok(u)) => {
                out.push_str(&diff("kqring", k, "io_uring", u))
            }
            _ => {}
        }
        out
    }
}

/// Runs a built-in scenario on both kqring modes and on io_uring, and
/// judges it against its documented difference, if it has one.
pub fn check(scenario: &Scenario) -> Outcome {
    match scenario.program() {
        Ok(program) => check_program(&program, scenario.difference.is_some()),
        Err(e) => Outcome {
            name: scenario.name.to_string(),
            polling: Err(RunError::Invalid(e.to_string())),
            inline: Err(RunError::Invalid(e.to_string())),
            io_uring: Err(RunError::Invalid(e.to_string())),
            verdict: Verdict::Error(format!("the scenario does not parse: {e}")),
        },
    }
}

/// Runs `program` on both kqring modes and on io_uring; `documented` says
/// whether a difference from io_uring is known and written down.
pub fn check_program(program: &Program, documented: bool) -> Outcome {
    let polling = run_kqring(program, Mode::PollingThread);
    let inline = run_kqring(program, Mode::Inline);
    let io_uring = run_io_uring(program);
    let verdict = judge(&polling, &inline, &io_uring, documented);
    Outcome {
        name: program.name.clone(),
        polling,
        inline,
        io_uring,
        verdict,
    }
}

fn judge(
    polling: &Result<Vec<CqeRecord>, RunError>,
    inline: &Result<Vec<CqeRecord>, RunError>,
    io_uring: &Result<Vec<CqeRecord>, RunError>,
    documented: bool,
) -> Verdict {
    let (p, i) = match (polling, inline) {
        (Ok(p), Ok(i)) => (p, i),
        (Err(e), _) => return Verdict::Error(format!("kqring/polling: {e}")),
        (_, Err(e)) => return Verdict::Error(format!("kqring/inline: {e}")),
    };
    let u = match io_uring {
        Ok(u) => u,
        Err(RunError::Unavailable(_)) if p == i => return Verdict::Unchecked,
        Err(RunError::Unavailable(_)) => return Verdict::ModesDisagree,
        Err(e) => return Verdict::Error(format!("io_uring: {e}")),
    };
    match (p == u && i == u, documented) {
        (true, false) => Verdict::Identical,
        (true, true) => Verdict::NoLongerDifferent,
        (false, true) => Verdict::DocumentedDifference,
        (false, false) => Verdict::UndocumentedDifference,
    }
}

/// The suite's summary line:
/// `conformance: N scenarios, N identical, N documented differences`.
pub fn summary_line(outcomes: &[Outcome]) -> String {
    let count = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count();
    format!(
        "conformance: {} scenarios, {} identical, {} documented differences",
        outcomes.len(),
        count(Verdict::Identical),
        count(Verdict::DocumentedDifference),
    )
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
            o.report()
        );
        let cqes = o.polling.unwrap();
        assert_eq!(cqes.len(), 1);
        assert_eq!(cqes[0].data.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn a_listed_difference_that_is_identical_fails() {
        let p = Program::parse("t", "nop ud=1\nwait 1").unwrap();
        let o = check_program(&p, true);
        if o.skipped_reason().is_none() {
            assert_eq!(o.verdict, Verdict::NoLongerDifferent);
            assert!(o.verdict.is_failure());
        }
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
}
