//! The text format of a program: parsing and printing (see the crate
//! documentation for the grammar).

use std::fmt;
use std::time::Duration;

use crate::model::{
    CancelTarget, Entry, FdRef, FileRef, FileSlot, Flags, Offset, Op, Order, PollMask, Program,
    Resource, ResourceKind, Step, UpdateFd,
};

/// A line of a program that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// The `key=value` and bare-word arguments of one line, taken one by one;
/// whatever is left over is an error.
#[derive(Debug, Default)]
pub(crate) struct Args {
    items: Vec<(String, Option<String>)>,
}

impl Args {
    /// The value(s) of `key`, removed; `Some(None)` for a bare word.
    fn take_all(&mut self, key: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        self.items.retain(|(k, v)| {
            if k == key {
                out.push(v.clone());
                false
            } else {
                true
            }
        });
        out
    }

    /// The single value of `key`, if given.
    fn take_one(&mut self, key: &str) -> Result<Option<Option<String>>, String> {
        let mut all = self.take_all(key);
        match all.len() {
            0 => Ok(None),
            1 => Ok(all.pop()),
            _ => Err(format!("`{key}` given twice")),
        }
    }

    fn take_value(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.take_one(key)? {
            None => Ok(None),
            Some(None) => Err(format!("`{key}` needs a value (`{key}=...`)")),
            Some(Some(v)) => Ok(Some(v)),
        }
    }

    fn leftover(&self) -> Result<(), String> {
        match self.items.first() {
            None => Ok(()),
            Some((k, _)) => Err(format!("unknown argument `{k}`")),
        }
    }
}

/// The key of the argument that an opcode's field `field` holds: the
/// field's name with `-` for `_` (`file_index` is `file-index=`).
pub(crate) fn key(field: &str) -> String {
    field.replace('_', "-")
}

/// An argument type of an opcode: how it is read from and written to a
/// line.
pub(crate) trait Arg: Sized {
    /// Reads the argument named `key`; `default` stands in when it is
    /// absent.
    fn take(args: &mut Args, key: &str, default: Option<Self>) -> Result<Self, String> {
        match args.take_value(key)? {
            Some(v) => Self::parse(&v).map_err(|e| format!("`{key}`: {e}")),
            None => default
                .or_else(Self::absent)
                .ok_or_else(|| format!("missing `{key}=...`")),
        }
    }

    /// The value when the argument is absent and has no default.
    fn absent() -> Option<Self> {
        None
    }

    /// Reads a value.
    fn parse(_value: &str) -> Result<Self, String> {
        Err("unexpected value".into())
    }

    /// Appends ` key=value`.
    fn put(&self, key: &str, out: &mut String);

    /// Collects the descriptors it names.
    fn fd_refs<'a>(&'a self, _out: &mut Vec<&'a FdRef>) {}
}

fn parse_u64(v: &str) -> Result<u64, String> {
    let r = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    r.map_err(|_| format!("not a number: {v:?}"))
}

impl Arg for u64 {
    fn parse(v: &str) -> Result<u64, String> {
        parse_u64(v)
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={self}"));
    }
}

impl Arg for u32 {
    fn parse(v: &str) -> Result<u32, String> {
        u32::try_from(parse_u64(v)?).map_err(|_| format!("too large: {v}"))
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={self}"));
    }
}

impl Arg for bool {
    fn take(args: &mut Args, key: &str, default: Option<bool>) -> Result<bool, String> {
        match args.take_one(key)? {
            None => Ok(default.unwrap_or(false)),
            Some(None) => Ok(true),
            Some(Some(v)) => match v.as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(format!("`{key}`: not a boolean: {v:?}")),
            },
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        if *self {
            out.push(' ');
            out.push_str(key);
        }
    }
}

impl Arg for FdRef {
    fn parse(v: &str) -> Result<FdRef, String> {
        Ok(FdRef(v.to_string()))
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={self}"));
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        out.push(self);
    }
}

impl Arg for FileRef {
    fn parse(v: &str) -> Result<FileRef, String> {
        match v.strip_prefix('@') {
            Some(slot) => <u32 as Arg>::parse(slot).map(FileRef::Fixed),
            None => <FdRef as Arg>::parse(v).map(FileRef::Fd),
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={self}"));
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        if let FileRef::Fd(fd) = self {
            out.push(fd);
        }
    }
}

impl Arg for FileSlot {
    fn parse(v: &str) -> Result<FileSlot, String> {
        match v {
            "alloc" => Ok(FileSlot::Alloc),
            _ => <u32 as Arg>::parse(v).map(FileSlot::Index),
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        match self {
            FileSlot::Index(n) => out.push_str(&format!(" {key}={n}")),
            FileSlot::Alloc => out.push_str(&format!(" {key}=alloc")),
        }
    }
}

impl Arg for Vec<UpdateFd> {
    fn parse(v: &str) -> Result<Vec<UpdateFd>, String> {
        if v.is_empty() {
            return Ok(Vec::new());
        }
        Ok(v.split(',')
            .map(|fd| match fd {
                "-1" => UpdateFd::Clear,
                "skip" => UpdateFd::Skip,
                name => UpdateFd::Fd(FdRef(name.to_string())),
            })
            .collect())
    }
    fn put(&self, key: &str, out: &mut String) {
        let list: Vec<String> = self
            .iter()
            .map(|fd| match fd {
                UpdateFd::Fd(fd) => fd.to_string(),
                UpdateFd::Clear => "-1".to_string(),
                UpdateFd::Skip => "skip".to_string(),
            })
            .collect();
        out.push_str(&format!(" {key}={}", list.join(",")));
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        for fd in self {
            if let UpdateFd::Fd(fd) = fd {
                out.push(fd);
            }
        }
    }
}

impl Arg for Offset {
    fn parse(v: &str) -> Result<Offset, String> {
        match v {
            "cur" => Ok(Offset::Current),
            _ => parse_u64(v).map(Offset::At),
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        match self {
            // The default: left out.
            Offset::At(0) => {}
            Offset::At(n) => out.push_str(&format!(" {key}={n}")),
            Offset::Current => out.push_str(&format!(" {key}=cur")),
        }
    }
}

impl Arg for Vec<u8> {
    fn parse(v: &str) -> Result<Vec<u8>, String> {
        unquote(v)
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={}", quote(self)));
    }
}

impl Arg for Vec<Vec<u8>> {
    fn take(args: &mut Args, key: &str, _default: Option<Self>) -> Result<Self, String> {
        let all = args.take_all(key);
        if all.is_empty() {
            return Err(format!("missing `{key}=...` (one per buffer)"));
        }
        all.into_iter()
            .map(|v| match v {
                Some(v) => unquote(&v),
                None => Err(format!("`{key}` needs a value")),
            })
            .collect()
    }
    fn put(&self, key: &str, out: &mut String) {
        for buf in self {
            buf.put(key, out);
        }
    }
}

impl Arg for Vec<u32> {
    fn parse(v: &str) -> Result<Vec<u32>, String> {
        v.split(',').map(<u32 as Arg>::parse).collect()
    }
    fn put(&self, key: &str, out: &mut String) {
        let list: Vec<String> = self.iter().map(u32::to_string).collect();
        out.push_str(&format!(" {key}={}", list.join(",")));
    }
}

/// Poll event names of the text format.
const POLL_NAMES: &[(&str, libc::c_short)] = &[
    ("in", libc::POLLIN),
    ("pri", libc::POLLPRI),
    ("out", libc::POLLOUT),
    ("err", libc::POLLERR),
    ("hup", libc::POLLHUP),
    ("nval", libc::POLLNVAL),
    ("rdnorm", libc::POLLRDNORM),
    ("rdband", libc::POLLRDBAND),
    ("wrnorm", libc::POLLWRNORM),
    ("wrband", libc::POLLWRBAND),
];

impl PollMask {
    /// The mask as names joined by `|` (`in|hup`), with any unnamed bits
    /// as a number.
    pub fn names(self) -> String {
        let mut left = self.0;
        let mut parts = Vec::new();
        for &(name, bit) in POLL_NAMES {
            let bit = bit as u16 as u32;
            if left & bit != 0 {
                parts.push(name.to_string());
                left &= !bit;
            }
        }
        if left != 0 || parts.is_empty() {
            parts.push(format!("{left:#x}"));
        }
        parts.join("|")
    }
}

impl Arg for PollMask {
    fn parse(v: &str) -> Result<PollMask, String> {
        let mut mask = 0u32;
        for part in v.split('|') {
            mask |= match POLL_NAMES.iter().find(|(n, _)| *n == part) {
                Some(&(_, bit)) => bit as u16 as u32,
                None => {
                    <u32 as Arg>::parse(part).map_err(|_| format!("unknown poll event {part:?}"))?
                }
            };
        }
        Ok(PollMask(mask))
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={}", self.names()));
    }
}

impl Arg for CancelTarget {
    fn parse(v: &str) -> Result<CancelTarget, String> {
        if v == "any" {
            Ok(CancelTarget::Any)
        } else if let Some(fd) = v.strip_prefix("fd:") {
            match <FileRef as Arg>::parse(fd)? {
                FileRef::Fd(fd) => Ok(CancelTarget::Fd(fd)),
                FileRef::Fixed(slot) => Ok(CancelTarget::Fixed(slot)),
            }
        } else {
            parse_u64(v).map(CancelTarget::UserData)
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        match self {
            CancelTarget::UserData(ud) => out.push_str(&format!(" {key}={ud}")),
            CancelTarget::Fd(fd) => out.push_str(&format!(" {key}=fd:{fd}")),
            CancelTarget::Fixed(slot) => out.push_str(&format!(" {key}=fd:@{slot}")),
            CancelTarget::Any => out.push_str(&format!(" {key}=any")),
        }
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        if let CancelTarget::Fd(fd) = self {
            out.push(fd);
        }
    }
}

/// Writes bytes as a quoted string of the text format.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}

/// Reads a quoted string (or a bare word, taken as it is) into bytes.
fn unquote(v: &str) -> Result<Vec<u8>, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.as_bytes().to_vec());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!("unterminated string {v}"));
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            Some(b'"') => out.push(b'"'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let n = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad \\x escape in {v}"))?;
                out.push(n);
            }
            _ => return Err(format!("bad escape in {v}")),
        }
    }
    Ok(out)
}

/// Splits a line into words; a quoted string is part of its word (it may
/// hold spaces); `#` outside quotes starts a comment.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut escaped = false;
    for c in line.chars() {
        if in_quote {
            cur.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        match c {
            '#' => break,
            '"' => {
                in_quote = true;
                cur.push(c);
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if in_quote {
        return Err("unterminated string".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Splits `key=value` words (a word that starts with a quote is a value
/// alone).
fn args(words: &[String]) -> Args {
    let items = words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.contains('"') => (k.to_string(), Some(v.to_string())),
            _ => (w.clone(), None),
        })
        .collect();
    Args { items }
}

fn parse_flags(v: &str) -> Result<Flags, String> {
    let mut flags = Flags::NONE;
    for part in v.split(['|', ',']) {
        let (fl, _) = Flags::NAMES
            .iter()
            .find(|(_, n)| *n == part)
            .ok_or_else(|| format!("unknown flag {part:?}"))?;
        flags = flags | *fl;
    }
    Ok(flags)
}

fn expect_words(words: &[String], n: usize, usage: &str) -> Result<(), String> {
    if words.len() == n {
        Ok(())
    } else {
        Err(format!("usage: {usage}"))
    }
}

fn parse_entry(kw: &str, rest: &[String]) -> Result<Entry, String> {
    let mut args = args(rest);
    let user_data = match args.take_value("ud")? {
        Some(v) => parse_u64(&v).map_err(|e| format!("`ud`: {e}"))?,
        None => 0,
    };
    let flags = match args.take_value("flags")? {
        Some(v) => parse_flags(&v)?,
        None => Flags::NONE,
    };
    let op = Op::parse_args(kw, &mut args)?.ok_or_else(|| {
        format!(
            "unknown line `{kw}` (opcodes: {}; directives: order, settle, files, pair, pipe, file, bad, listener, client, submit, write-peer, close-peer, wait)",
            Op::KEYWORDS.join(", ")
        )
    })?;
    args.leftover()?;
    Ok(Entry {
        op,
        user_data,
        flags,
    })
}

impl Program {
    /// Reads a program in the text format (see the crate documentation).
    pub fn parse(name: impl Into<String>, text: &str) -> Result<Program, ParseError> {
        let mut program = Program::new(name);
        let mut batch: Option<Vec<Entry>> = None;
        for (i, line) in text.lines().enumerate() {
            let err = |message: String| ParseError {
                line: i + 1,
                message,
            };
            let words = words(line).map_err(err)?;
            let Some((kw, rest)) = words.split_first() else {
                continue;
            };
            let step = parse_line(&mut program, kw, rest).map_err(err)?;
            match step {
                Line::Entry(e) => batch.get_or_insert_with(Vec::new).push(e),
                Line::Declaration => {}
                Line::Step(step) => {
                    let explicit = matches!(step, Step::Submit(_));
                    match batch.take() {
                        Some(entries) => program.steps.push(Step::Submit(entries)),
                        None if explicit => program.steps.push(Step::Submit(Vec::new())),
                        None => {}
                    }
                    if !explicit {
                        program.steps.push(step);
                    }
                }
            }
        }
        if let Some(entries) = batch {
            program.steps.push(Step::Submit(entries));
        }
        program
            .validate()
            .map_err(|message| ParseError { line: 0, message })?;
        Ok(program)
    }
}

enum Line {
    Entry(Entry),
    Declaration,
    Step(Step),
}

fn parse_line(program: &mut Program, kw: &str, rest: &[String]) -> Result<Line, String> {
    let blocking = |usage: &str| match rest {
        [_] => Ok(false),
        [_, b] if b == "blocking" => Ok(true),
        _ => Err(format!("usage: {usage}")),
    };
    let declare = |program: &mut Program, kind: ResourceKind| {
        program.resources.push(Resource {
            name: rest[0].clone(),
            kind,
        });
        Ok(Line::Declaration)
    };
    match kw {
        "order" => {
            expect_words(rest, 1, "order exact|user_data")?;
            program.order = match rest[0].as_str() {
                "exact" => Order::Exact,
                "user_data" => Order::ByUserData,
                o => return Err(format!("unknown order {o:?} (exact, user_data)")),
            };
            Ok(Line::Declaration)
        }
        "settle" => {
            expect_words(rest, 1, "settle MS")?;
            program.settle = Duration::from_millis(parse_u64(&rest[0])?);
            Ok(Line::Declaration)
        }
        "files" => {
            expect_words(rest, 1, "files N")?;
            program.files = <u32 as Arg>::parse(&rest[0])?;
            Ok(Line::Declaration)
        }
        "pair" => {
            let blocking = blocking("pair NAME [blocking]")?;
            declare(program, ResourceKind::SocketPair { blocking })
        }
        "pipe" => {
            let blocking = blocking("pipe NAME [blocking]")?;
            declare(program, ResourceKind::Pipe { blocking })
        }
        "file" => {
            expect_words(rest, 2, "file NAME \"contents\"")?;
            let contents = unquote(&rest[1])?;
            declare(program, ResourceKind::File { contents })
        }
        "bad" => {
            expect_words(rest, 1, "bad NAME")?;
            declare(program, ResourceKind::BadFd)
        }
        "listener" => {
            let blocking = blocking("listener NAME [blocking]")?;
            declare(program, ResourceKind::Listener { blocking })
        }
        "client" => {
            let usage = "client NAME LISTENER [blocking]";
            let blocking = match rest {
                [_, _] => false,
                [_, _, b] if b == "blocking" => true,
                _ => return Err(format!("usage: {usage}")),
            };
            let listener = rest[1].clone();
            declare(program, ResourceKind::Client { listener, blocking })
        }
        "submit" => {
            expect_words(rest, 0, "submit")?;
            Ok(Line::Step(Step::Submit(Vec::new())))
        }
        "write-peer" => {
            expect_words(rest, 2, "write-peer FD \"bytes\"")?;
            Ok(Line::Step(Step::WritePeer {
                fd: FdRef(rest[0].clone()),
                data: unquote(&rest[1])?,
            }))
        }
        "close-peer" => {
            expect_words(rest, 1, "close-peer FD")?;
            Ok(Line::Step(Step::ClosePeer {
                fd: FdRef(rest[0].clone()),
            }))
        }
        "wait" => {
            expect_words(rest, 1, "wait N")?;
            let n = usize::try_from(parse_u64(&rest[0])?).map_err(|e| e.to_string())?;
            Ok(Line::Step(Step::Wait(n)))
        }
        _ => parse_entry(kw, rest).map(Line::Entry),
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::from(self.op.keyword());
        self.op.write_args(&mut s);
        s.push_str(&format!(" ud={}", self.user_data));
        if self.flags != Flags::NONE {
            let names: Vec<&str> = Flags::NAMES
                .iter()
                .filter(|(fl, _)| self.flags.contains(*fl))
                .map(|(_, n)| *n)
                .collect();
            s.push_str(&format!(" flags={}", names.join("|")));
        }
        f.write_str(&s)
    }
}

/// Writes the program in the text format; [`Program::parse`] reads it back
/// to the same program.
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.order == Order::ByUserData {
            writeln!(f, "order user_data")?;
        }
        if self.settle != crate::SETTLE {
            writeln!(f, "settle {}", self.settle.as_millis())?;
        }
        if self.files != 0 {
            writeln!(f, "files {}", self.files)?;
        }
        for r in &self.resources {
            match &r.kind {
                ResourceKind::SocketPair { blocking } => writeln!(
                    f,
                    "pair {}{}",
                    r.name,
                    if *blocking { " blocking" } else { "" }
                )?,
                ResourceKind::Pipe { blocking } => writeln!(
                    f,
                    "pipe {}{}",
                    r.name,
                    if *blocking { " blocking" } else { "" }
                )?,
                ResourceKind::File { contents } => {
                    writeln!(f, "file {} {}", r.name, quote(contents))?
                }
                ResourceKind::BadFd => writeln!(f, "bad {}", r.name)?,
                ResourceKind::Listener { blocking } => writeln!(
                    f,
                    "listener {}{}",
                    r.name,
                    if *blocking { " blocking" } else { "" }
                )?,
                ResourceKind::Client { listener, blocking } => writeln!(
                    f,
                    "client {} {listener}{}",
                    r.name,
                    if *blocking { " blocking" } else { "" }
                )?,
            }
        }
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Submit(entries) => {
                    for e in entries {
                        writeln!(f, "{e}")?;
                    }
                    let next_is_batch = matches!(self.steps.get(i + 1), Some(Step::Submit(_)));
                    if entries.is_empty() || next_is_batch {
                        writeln!(f, "submit")?;
                    }
                }
                Step::WritePeer { fd, data } => writeln!(f, "write-peer {fd} {}", quote(data))?,
                Step::ClosePeer { fd } => writeln!(f, "close-peer {fd}")?,
                Step::Wait(n) => writeln!(f, "wait {n}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_kind_round_trips() {
        let text = r#"
            order user_data
            settle 5
            files 4
            pair p blocking
            pipe q
            file f "a\"b\\c\n\x01"
            bad x
            listener l
            client c l blocking
            read fd=p.b len=3 off=cur ud=1 flags=link|async
            write fd=q.w data="hi there" off=7 ud=2
            submit
            readv fd=f lens=1,2 ud=3 flags=drain
            writev fd=p.a data="a" data="b" ud=4 flags=hardlink,skip_success
            poll fd=q.r events=in|hup multi ud=5
            poll-remove target=5 ud=6
            timeout ms=10 count=2 abs ud=7
            timeout-remove target=7 ud=8
            timeout-update target=7 ms=3 ud=9
            link-timeout ms=4 abs ud=10
            cancel target=fd:q.r all ud=11
            cancel target=any ud=12
            cancel target=0x10 ud=13
            close fd=x ud=14
            files-update at=1 fds=p.a,-1,skip,x ud=15
            files-update at=alloc fds= ud=16
            accept fd=l file-index=alloc multi ud=17
            recv fd=@2 len=4 ud=18
            close fd=@0 ud=19
            cancel target=fd:@3 ud=20
            nop
            write-peer p.a "x y"
            close-peer p.a
            wait 3
            submit
        "#;
        let p = Program::parse("t", text).unwrap();
        assert_eq!(p.order, Order::ByUserData);
        assert_eq!(p.files, 4);
        assert_eq!(p.resources.len(), 6);
        assert!(matches!(&p.steps[0], Step::Submit(e) if e.len() == 2));
        assert!(matches!(&p.steps[1], Step::Submit(e) if e.len() == 19));
        assert_eq!(p.steps.last(), Some(&Step::Submit(Vec::new())));
        let again = Program::parse("t", &p.to_string()).unwrap();
        assert_eq!(p, again, "printed:\n{p}");
    }

    #[test]
    fn errors_name_the_line() {
        let e = Program::parse("t", "pair p\nread fd=p.b\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("len"), "{e}");
        let e = Program::parse("t", "nop bogus=1").unwrap_err();
        assert!(e.message.contains("bogus"), "{e}");
        let e = Program::parse("t", "read fd=nope len=1").unwrap_err();
        assert!(e.message.contains("nope"), "{e}");
        let e = Program::parse("t", "frobnicate").unwrap_err();
        assert!(e.message.contains("frobnicate"), "{e}");
        let e = Program::parse("t", "listener l\nclient c m").unwrap_err();
        assert!(e.message.contains("no listener m"), "{e}");
        let e = Program::parse("t", "read fd=@x len=1").unwrap_err();
        assert!(
            e.message.contains("@x") || e.message.contains("\"x\""),
            "{e}"
        );
        let e = Program::parse("t", "pair p\nfiles-update at=0 fds=p.a,q.b").unwrap_err();
        assert!(e.message.contains("q.b"), "{e}");
    }
}
