//! The `kqring-conformance` command on a user's own program files.

use std::process::{Command, Output};

use kqring_test_support::ScratchPath;

/// A program file of its own, in a scratch directory.
struct ProgramFile(ScratchPath);

impl ProgramFile {
    fn new(tag: &str, text: &str) -> ProgramFile {
        let path = ScratchPath::new(&format!("{tag}.sqe")).unwrap();
        std::fs::write(&path, text).unwrap();
        ProgramFile(path)
    }
}

fn run(args: &[&str], file: &ProgramFile) -> (Output, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kqring-conformance"))
        .args(args)
        .arg(file.0.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

/// Whether io_uring runs here, as the command reports it.
fn io_uring_runs(stdout: &str) -> bool {
    !stdout.contains("io_uring skipped")
}

const GOOD: &str = r#"# a read of data written from outside
pair p
write-peer p.a "hello"
read fd=p.b len=16 ud=1
wait 1
expect ud=1 res=5 data="hello"
"#;

#[test]
fn an_identical_program_exits_0() {
    let f = ProgramFile::new("good", GOOD);
    let (out, stdout, stderr) = run(&[], &f);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(" identical"), "{stdout}");
    assert!(
        stdout.contains("conformance: 1 scenarios, 1 identical, 0 documented differences"),
        "{stdout}"
    );
}

#[test]
fn without_io_uring_the_skip_is_said_and_the_expectation_still_holds() {
    let f = ProgramFile::new("skip", GOOD);
    let (out, stdout, stderr) = run(&["--no-io-uring"], &f);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("io_uring skipped for all 1: turned off (--no-io-uring)"),
        "{stdout}"
    );
    let bad = ProgramFile::new("skip-bad", &GOOD.replace("res=5", "res=4"));
    let (out, stdout, _) = run(&["--no-io-uring"], &bad);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAILED: kqring differs from the expectation"),
        "{stdout}"
    );
}

#[test]
fn a_difference_fails_and_shows_the_diff() {
    let f = ProgramFile::new("wrong", &GOOD.replace("res=5", "res=-ECANCELED"));
    let (out, stdout, _) = run(&[], &f);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("FAILED: kqring differs from the expectation"),
        "{stdout}"
    );
    assert!(stdout.contains("expected of kqring"), "{stdout}");
    assert!(
        stdout.contains("!= ud=1 res=-ECANCELED") && stdout.contains("ud=1 res=5 data=\"hello\""),
        "{stdout}"
    );
    if io_uring_runs(&stdout) {
        assert!(
            stdout.contains("FAILED: io_uring on this kernel differs")
                || stdout.contains("recorded of io_uring"),
            "{stdout}"
        );
    }
}

/// With no expectation written, a program is compared live: a close
/// under a waiting read is a difference from io_uring (documented for the
/// built-in scenario, not for a file).
#[test]
fn a_live_difference_fails_where_io_uring_runs() {
    let text = "pair p\nread fd=p.b len=2 ud=1\nclose fd=p.b ud=2\nwait 1\n\
                write-peer p.a \"ok\"\nwait 1\n";
    let f = ProgramFile::new("live", text);
    let (out, stdout, _) = run(&[], &f);
    if io_uring_runs(&stdout) {
        assert!(!out.status.success(), "{stdout}");
        assert!(stdout.contains("not documented"), "{stdout}");
        assert!(stdout.contains("!="), "{stdout}");
    } else {
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("kqring modes agree"), "{stdout}");
    }
}

#[test]
fn a_parse_error_names_the_line() {
    let f = ProgramFile::new("parse", "pair p\nnop ud=1\nread fd=p.b ud=2\nwait 2\n");
    let (out, stdout, stderr) = run(&[], &f);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("len"), "{stderr}");
    let f = ProgramFile::new("parse-expect", "nop ud=1\nexpect ud=1 res=0\nwait 1\n");
    let (out, _, stderr) = run(&[], &f);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 2") && stderr.contains("after a `wait`"),
        "{stderr}"
    );
}

/// `--bless` fills in the expectations, which then hold.
#[test]
fn bless_fills_in_expectations() {
    let f = ProgramFile::new(
        "bless",
        "# kept\npair p\nread fd=p.b len=2 ud=1\nwrite-peer p.a \"ok\"\n  wait 1\n  expect ud=9 res=0\n",
    );
    let (out, stdout, stderr) = run(&["--bless"], &f);
    if !out.status.success() {
        // No io_uring to record from: said so, and nothing printed.
        assert!(stderr.contains("cannot bless without io_uring"), "{stderr}");
        return;
    }
    assert_eq!(
        stdout,
        "# kept\npair p\nread fd=p.b len=2 ud=1\nwrite-peer p.a \"ok\"\n  wait 1\n  expect ud=1 res=2 data=\"ok\"\n"
    );
    let blessed = ProgramFile::new("blessed", &stdout);
    let (out, stdout, _) = run(&[], &blessed);
    assert!(out.status.success(), "{stdout}");
}
