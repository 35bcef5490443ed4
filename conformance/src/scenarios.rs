//! The built-in scenarios, and the differences from io_uring that are
//! known and documented (in docs/semantics.md, "Conformance with
//! io_uring": "Differences by design" and "Open differences").
//!
//! The scenarios are data: one file per family in `conformance/scenarios/`,
//! built into the library. In a file, each scenario starts with its `##`
//! lines — `## NAME: what it checks`, then, for a documented difference,
//! `## by design: why` or `## open: why`; a `##` line that begins with
//! neither continues the line above — and its program follows in the text
//! format, up to the next scenario. Lines before the first scenario are
//! comments (`#`) about the file.
//!
//! Each scenario carries, after every wait, the completions io_uring gives
//! (`expect`), recorded with `kqring-conformance --bless` and read against
//! io_uring's documented semantics; a scenario that differs also carries
//! kqring's own (`expect-kqring`).
//!
//! Scenarios never rely on timing: an entry that must still be pending
//! when something else happens waits on a socket or pipe with no data, and
//! timers are either short ones whose expiry is awaited or long ones that
//! must never fire. Where io_uring leaves the order of completions open
//! (independent entries, a canceller and what it cancels) the scenario
//! compares each wait's completions sorted by `user_data`.

use std::sync::LazyLock;

use crate::model::Program;
use crate::text::ParseError;

/// Why a scenario's completions differ from io_uring's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// kqring differs on purpose, and says so in docs/semantics.md
    /// ("Differences by design").
    ByDesign(String),
    /// kqring means to behave as io_uring does here, and does not: a bug,
    /// reported, and listed in docs/semantics.md ("Open differences").
    /// Once fixed, kqring no longer gives its `expect-kqring` completions
    /// and the suite fails until the scenario drops them and leaves this
    /// list.
    Open(String),
}

impl Difference {
    /// The explanation.
    pub fn why(&self) -> &str {
        match self {
            Difference::ByDesign(w) | Difference::Open(w) => w,
        }
    }

    /// `"by design"` or `"open"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Difference::ByDesign(_) => "by design",
            Difference::Open(_) => "open",
        }
    }
}

/// A built-in scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name (what the CLI and the summary call it).
    pub name: &'static str,
    /// What it checks.
    pub about: String,
    /// The program, in the text format.
    pub text: &'static str,
    /// Why kqring differs from io_uring here, when it is a known and
    /// documented difference.
    pub difference: Option<Difference>,
    /// The file it is written in, under `conformance/`.
    pub file: &'static str,
    /// Its `##` lines as written there.
    pub header: &'static str,
}

impl Scenario {
    /// The program.
    pub fn program(&self) -> Result<Program, ParseError> {
        Program::parse(self.name, self.text)
    }
}

/// Every built-in scenario, family by family.
pub fn all() -> &'static [Scenario] {
    &ALL
}

/// Finds a built-in scenario by name.
pub fn find(name: &str) -> Option<&'static Scenario> {
    all().iter().find(|s| s.name == name)
}

macro_rules! family {
    ($name:literal) => {
        (
            concat!("scenarios/", $name, ".scenarios"),
            include_str!(concat!("../scenarios/", $name, ".scenarios")),
        )
    };
}

/// The files of scenarios (path under `conformance/`, contents), in the
/// order the suite runs them.
const FAMILIES: &[(&str, &str)] = &[
    family!("misc"),
    family!("socket-io"),
    family!("pipes"),
    family!("files"),
    family!("vectored"),
    family!("poll"),
    family!("recv-send"),
    family!("buffers"),
    family!("timeouts"),
    family!("links"),
    family!("drain"),
    family!("linked-timeouts"),
    family!("skip-success"),
    family!("async"),
    family!("cancel"),
    family!("close"),
    family!("registered-files"),
    family!("sockets"),
    family!("fs"),
    family!("processes"),
    family!("msg-ring"),
];

static ALL: LazyLock<Vec<Scenario>> = LazyLock::new(|| {
    FAMILIES
        .iter()
        .flat_map(|&(file, text)| parse_family(file, text))
        .collect()
});

/// The field a `##` continuation line adds to.
enum Field {
    About,
    Why,
}

/// The scenarios of one file. A file that breaks the format is a bug of
/// the build, found by this crate's tests: it panics, naming the line.
fn parse_family(file: &'static str, text: &'static str) -> Vec<Scenario> {
    let mut out: Vec<Scenario> = Vec::new();
    // The scenario being read, and whether its `##` lines are still going.
    let mut in_header = false;
    let mut field = Field::About;
    let mut header_start = 0;
    let mut body = (0, 0);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        let at = || format!("conformance/{file}:{}", n + 1);
        if let Some(h) = line.strip_prefix("##") {
            let h = h.trim();
            if in_header {
                let s = out.last_mut().expect("a scenario is being read");
                if let Some(why) = h.strip_prefix("by design:") {
                    s.difference = Some(Difference::ByDesign(why.trim().into()));
                    field = Field::Why;
                } else if let Some(why) = h.strip_prefix("open:") {
                    s.difference = Some(Difference::Open(why.trim().into()));
                    field = Field::Why;
                } else {
                    let to = match (&field, &mut s.difference) {
                        (Field::Why, Some(Difference::ByDesign(w) | Difference::Open(w))) => w,
                        _ => &mut s.about,
                    };
                    to.push(' ');
                    to.push_str(h);
                }
                continue;
            }
            if let Some(s) = out.last_mut() {
                s.text = &text[body.0..body.1.max(body.0)];
            }
            let (name, about) = h
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: `## NAME: what it checks` expected", at()));
            let name = name.trim();
            assert!(
                !name.is_empty() && !name.contains(char::is_whitespace),
                "{}: `{name}` is no name: a scenario's name is one word",
                at()
            );
            out.push(Scenario {
                name,
                about: about.trim().into(),
                text: "",
                difference: None,
                file,
                header: "",
            });
            in_header = true;
            field = Field::About;
            header_start = start;
            continue;
        }
        if in_header {
            in_header = false;
            if let Some(s) = out.last_mut() {
                s.header = &text[header_start..start];
            }
            body = (start, start);
        }
        if out.is_empty() {
            assert!(
                line.trim().is_empty() || line.starts_with('#'),
                "{}: a program line before the first `## NAME: ...`",
                at()
            );
        } else if !line.trim().is_empty() {
            body.1 = offset;
        }
    }
    if let Some(s) = out.last_mut() {
        if in_header {
            s.header = &text[header_start..];
        } else {
            s.text = &text[body.0..body.1.max(body.0)];
        }
    }
    assert!(!out.is_empty(), "conformance/{file}: no scenario");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_parses_and_prints_back() {
        for s in all() {
            let p = s.program().unwrap_or_else(|e| panic!("{}: {e}", s.name));
            let again = Program::parse(s.name, &p.to_string()).unwrap();
            assert_eq!(p, again, "{}", s.name);
        }
    }

    /// Every scenario pins io_uring's completions; a documented difference
    /// pins kqring's own too, and only a documented difference does.
    #[test]
    fn every_scenario_has_expectations_that_match_its_difference() {
        for s in all() {
            let p = s.program().unwrap();
            let e = p
                .expected
                .as_ref()
                .unwrap_or_else(|| panic!("{}: no expectations", s.name));
            assert_eq!(
                e.differs(p.order),
                s.difference.is_some(),
                "{}: expect-kqring lines go with a documented difference, and only there",
                s.name
            );
        }
    }

    #[test]
    fn a_family_file_gives_names_abouts_differences_and_programs() {
        let text = "# a comment about the file\n\n\
                    ## one: the first\n\
                    nop ud=1\n\
                    \n\
                    # a comment of the program\n\
                    wait 1\n\
                    \n\
                    ## two: the second,\n\
                    ##   on two lines\n\
                    ## open: a bug,\n\
                    ##   reported\n\
                    nop ud=2\n\
                    wait 1\n\n";
        let got = parse_family("test.scenarios", text);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name, got[0].about.as_str()), ("one", "the first"));
        assert_eq!(got[0].header, "## one: the first\n");
        assert_eq!(
            got[0].text,
            "nop ud=1\n\n# a comment of the program\nwait 1\n"
        );
        assert_eq!(got[0].difference, None);
        assert_eq!(got[1].about, "the second, on two lines");
        assert_eq!(
            got[1].difference,
            Some(Difference::Open("a bug, reported".into()))
        );
        assert_eq!(got[1].text, "nop ud=2\nwait 1\n");
        assert_eq!(got[1].file, "test.scenarios");
    }

    #[test]
    #[should_panic(expected = "conformance/t.scenarios:1: a program line before")]
    fn a_program_line_before_the_first_scenario_is_refused() {
        parse_family("t.scenarios", "nop ud=1\n## one: the first\nnop\n");
    }

    #[test]
    #[should_panic(expected = "conformance/t.scenarios:2: `## NAME: what it checks` expected")]
    fn a_scenario_without_a_name_is_refused() {
        parse_family("t.scenarios", "# the file\n## no name here\nnop\n");
    }

    /// A difference must follow its scenario's name, not its program.
    #[test]
    #[should_panic(expected = "conformance/t.scenarios:3: `by design` is no name")]
    fn a_difference_after_the_program_is_refused() {
        parse_family(
            "t.scenarios",
            "## one: the first\nnop\n## by design: why\nnop\n",
        );
    }

    /// A file in conformance/scenarios/ that is not built in would never
    /// run.
    #[test]
    fn every_file_of_scenarios_is_built_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = format!("scenarios/{}", entry.unwrap().file_name().display());
            assert!(
                FAMILIES.iter().any(|&(file, _)| file == name),
                "{name} is not in scenarios::FAMILIES"
            );
        }
    }

    #[test]
    fn names_are_unique() {
        for (i, s) in all().iter().enumerate() {
            assert!(
                all()[i + 1..].iter().all(|t| t.name != s.name),
                "{} twice",
                s.name
            );
        }
    }
}
