//! The text format of a program: parsing and printing (see the crate
//! documentation for the grammar).

use std::fmt;
use std::time::Duration;

use crate::model::{
    Addr, CancelTarget, ChildEnd, DirEntry, Domain, Entry, Expected, ExpectedGroup, FdName, FdRef,
    FileRef, FileSlot, Flags, How, Offset, Op, Order, PidRef, PollMask, Program, Resource,
    ResourceKind, RingName, SIGNAL_NAMES, SockType, Step, UpdateFd, WaitOptions,
};
use crate::run::{CqeRecord, DESCRIPTOR, F_BUFFER, F_MORE};

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
/// field's name with `-` for `_` (`file_index` is `file-index=`), a
/// trailing `_` (which keeps a keyword a field name) dropped.
pub(crate) fn key(field: &str) -> String {
    field.trim_end_matches('_').replace('_', "-")
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

/// An optional argument: absent is `None`.
impl<T: Arg> Arg for Option<T> {
    fn absent() -> Option<Self> {
        Some(None)
    }
    fn parse(v: &str) -> Result<Self, String> {
        T::parse(v).map(Some)
    }
    fn put(&self, key: &str, out: &mut String) {
        if let Some(v) = self {
            v.put(key, out);
        }
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        if let Some(v) = self {
            v.fd_refs(out);
        }
    }
}

impl Arg for FdName {
    fn parse(v: &str) -> Result<FdName, String> {
        Ok(FdName(v.to_string()))
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={}", self.0));
    }
}

/// Reads and writes a small set of keywords.
macro_rules! keywords {
    ($ty:ty { $($variant:path = $kw:literal),* $(,)? }) => {
        impl Arg for $ty {
            fn parse(v: &str) -> Result<$ty, String> {
                match v {
                    $( $kw => Ok($variant), )*
                    _ => Err(format!(
                        "unknown value {v:?} (one of: {})",
                        [$($kw),*].join(", ")
                    )),
                }
            }
            fn put(&self, key: &str, out: &mut String) {
                let kw = match self { $( $variant => $kw, )* };
                out.push_str(&format!(" {key}={kw}"));
            }
        }
    };
}

keywords!(Domain { Domain::Inet = "inet", Domain::Inet6 = "inet6", Domain::Unix = "unix" });
keywords!(SockType { SockType::Stream = "stream", SockType::Dgram = "dgram" });
keywords!(How { How::Read = "rd", How::Write = "wr", How::Both = "rdwr" });

impl Arg for Addr {
    fn parse(v: &str) -> Result<Addr, String> {
        match v.strip_prefix("local:") {
            Some(name) => Ok(Addr::LocalOf(FdRef(name.to_string()))),
            None => v
                .parse()
                .map(Addr::Ip)
                .map_err(|_| format!("not an address: {v:?} (127.0.0.1:0, [::1]:0 or local:NAME)")),
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        match self {
            Addr::Ip(a) => out.push_str(&format!(" {key}={a}")),
            Addr::LocalOf(fd) => out.push_str(&format!(" {key}=local:{fd}")),
        }
    }
    fn fd_refs<'a>(&'a self, out: &mut Vec<&'a FdRef>) {
        if let Addr::LocalOf(fd) = self {
            out.push(fd);
        }
    }
}

/// A result: a number, or `-NAME` for an errno (`-EPIPE`).
impl Arg for i32 {
    fn parse(v: &str) -> Result<i32, String> {
        match parse_res(v)? {
            DESCRIPTOR => Err(format!("not a number: {v:?}")),
            n => Ok(n),
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={}", crate::diff::render_res(*self)));
    }
}

impl Arg for RingName {
    fn parse(v: &str) -> Result<RingName, String> {
        Ok(RingName(v.to_string()))
    }
    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}={}", self.0));
    }
}

/// A child's name, or a pid by number.
impl Arg for PidRef {
    fn parse(v: &str) -> Result<PidRef, String> {
        if v.starts_with(|c: char| c.is_ascii_digit()) {
            <u32 as Arg>::parse(v).map(PidRef::Number)
        } else {
            Ok(PidRef::Child(v.to_string()))
        }
    }
    fn put(&self, key: &str, out: &mut String) {
        match self {
            PidRef::Child(name) => out.push_str(&format!(" {key}={name}")),
            PidRef::Number(n) => out.push_str(&format!(" {key}={n}")),
        }
    }
}

/// `waitid(2)` option names of the text format.
const WAIT_NAMES: &[(&str, libc::c_int)] = &[
    ("exited", libc::WEXITED),
    ("stopped", libc::WSTOPPED),
    ("continued", libc::WCONTINUED),
    ("nohang", libc::WNOHANG),
    ("nowait", libc::WNOWAIT),
];

impl Arg for WaitOptions {
    fn parse(v: &str) -> Result<WaitOptions, String> {
        let mut options = 0;
        for part in v.split('|') {
            options |= match WAIT_NAMES.iter().find(|(n, _)| *n == part) {
                Some(&(_, bit)) => bit,
                None if part == "0" => 0,
                None => return Err(format!("unknown waitid option {part:?}")),
            };
        }
        Ok(WaitOptions(options))
    }
    fn put(&self, key: &str, out: &mut String) {
        let names: Vec<&str> = WAIT_NAMES
            .iter()
            .filter(|(_, bit)| self.0 & bit != 0)
            .map(|(n, _)| *n)
            .collect();
        let names = if names.is_empty() {
            "0".to_string()
        } else {
            names.join("|")
        };
        out.push_str(&format!(" {key}={names}"));
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
pub(crate) fn unquote(v: &str) -> Result<Vec<u8>, String> {
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
            "unknown line `{kw}` (opcodes: {}; directives: order, settle, files, pair, pipe, file, dir, bad, listener, udp, client, submit, write-peer, close-peer, wait, expect, expect-kqring, end)",
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

/// The expectation lines of one wait (or of `end`), as read so far.
#[derive(Default)]
struct GroupLines {
    /// The line of the `wait` or `end` they belong to.
    line: usize,
    io_uring: Option<Vec<CqeRecord>>,
    kqring: Option<Vec<CqeRecord>>,
    /// `expect none` / `expect-kqring none` was given.
    io_uring_none: bool,
    kqring_none: bool,
}

impl GroupLines {
    fn add(&mut self, kqring: bool, cqe: Option<CqeRecord>) -> Result<(), String> {
        let (list, none, kw) = if kqring {
            (&mut self.kqring, &mut self.kqring_none, "expect-kqring")
        } else {
            (&mut self.io_uring, &mut self.io_uring_none, "expect")
        };
        let list = list.get_or_insert_with(Vec::new);
        match cqe {
            None if !list.is_empty() || *none => {
                Err(format!("`{kw} none` after other `{kw}` lines of this wait"))
            }
            None => {
                *none = true;
                Ok(())
            }
            Some(_) if *none => Err(format!("`{kw}` line after `{kw} none`")),
            Some(c) => {
                list.push(c);
                Ok(())
            }
        }
    }

    fn finish(self, what: &str) -> Result<ExpectedGroup, ParseError> {
        let err = |message: String| ParseError {
            line: self.line,
            message,
        };
        match self.io_uring {
            Some(io_uring) => Ok(ExpectedGroup {
                io_uring,
                kqring: self.kqring,
            }),
            None if self.kqring.is_some() => Err(err(format!(
                "{what} has `expect-kqring` lines but no `expect` line (io_uring's completions)"
            ))),
            None => Err(err(format!(
                "{what} has no `expect` line: once a program has expectations, every wait \
                 needs them (`expect none` for no completion)"
            ))),
        }
    }
}

impl Program {
    /// Reads a program in the text format (see the crate documentation).
    pub fn parse(name: impl Into<String>, text: &str) -> Result<Program, ParseError> {
        let mut program = Program::new(name);
        let mut batch: Option<Vec<Entry>> = None;
        let mut groups: Vec<GroupLines> = Vec::new();
        let mut end: Option<GroupLines> = None;
        // The wait the next `expect` line belongs to, if any.
        let mut attach: Option<usize> = None;
        let mut any_expectation = false;
        for (i, line) in text.lines().enumerate() {
            let err = |message: String| ParseError {
                line: i + 1,
                message,
            };
            let words = words(line).map_err(err)?;
            let Some((kw, rest)) = words.split_first() else {
                continue;
            };
            if let Some(kqring) = match kw.as_str() {
                "expect" => Some(false),
                "expect-kqring" => Some(true),
                _ => None,
            } {
                any_expectation = true;
                let cqe = match rest {
                    [none] if none == "none" => None,
                    _ => Some(parse_cqe(rest).map_err(err)?),
                };
                let group = match (end.as_mut(), attach) {
                    (Some(g), _) => g,
                    (None, Some(w)) => &mut groups[w],
                    (None, None) => {
                        return Err(err(format!(
                            "`{kw}` belongs right after a `wait` (or after `end`)"
                        )));
                    }
                };
                group.add(kqring, cqe).map_err(err)?;
                continue;
            }
            if end.is_some() {
                return Err(err("only `expect` lines may follow `end`".to_string()));
            }
            if kw == "end" {
                expect_words(rest, 0, "end").map_err(err)?;
                end = Some(GroupLines {
                    line: i + 1,
                    ..GroupLines::default()
                });
                continue;
            }
            let step = parse_line(&mut program, kw, rest).map_err(err)?;
            attach = None;
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
                    if let Step::Wait(_) | Step::WaitRing { .. } = step {
                        attach = Some(groups.len());
                        groups.push(GroupLines {
                            line: i + 1,
                            ..GroupLines::default()
                        });
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
        if any_expectation {
            let mut expected = Expected::default();
            for g in groups {
                expected.groups.push(g.finish("this wait")?);
            }
            expected.groups.push(match end {
                Some(g) => g.finish("`end`")?,
                None => ExpectedGroup::default(),
            });
            program.expected = Some(expected);
        } else if let Some(g) = end {
            return Err(ParseError {
                line: g.line,
                message: "`end` without `expect` lines".into(),
            });
        }
        program
            .validate()
            .map_err(|message| ParseError { line: 0, message })?;
        Ok(program)
    }
}

/// Reads the arguments of an `expect` line: `ud=N res=R [more] [buf=ID]
/// [data="..."] [from=NAME] [stat="..."]`.
fn parse_cqe(rest: &[String]) -> Result<CqeRecord, String> {
    let mut args = args(rest);
    let user_data = match args.take_value("ud")? {
        Some(v) => parse_u64(&v).map_err(|e| format!("`ud`: {e}"))?,
        None => return Err("missing `ud=...`".into()),
    };
    let res = match args.take_value("res")? {
        Some(v) => parse_res(&v).map_err(|e| format!("`res`: {e}"))?,
        None => return Err("missing `res=...`".into()),
    };
    let mut flags = 0;
    if <bool as Arg>::take(&mut args, "more", None)? {
        flags |= F_MORE;
    }
    if let Some(v) = args.take_value("buf")? {
        let id = u16::try_from(parse_u64(&v)?).map_err(|_| format!("`buf`: too large: {v}"))?;
        flags |= F_BUFFER | (u32::from(id) << 16);
    }
    let data = args.take_value("data")?.map(|v| unquote(&v)).transpose()?;
    let from = args.take_value("from")?;
    let text = |v: String| unquote(&v).map(|b| String::from_utf8_lossy(&b).into_owned());
    let stat = args.take_value("stat")?.map(text).transpose()?;
    let waited = args.take_value("waited")?.map(text).transpose()?;
    args.leftover()?;
    Ok(CqeRecord {
        user_data,
        res,
        flags,
        data,
        from,
        stat,
        waited,
    })
}

/// Reads a result: a number, `-NAME` for an errno (`-ECANCELED`), or `fd`
/// for a new descriptor.
fn parse_res(v: &str) -> Result<i32, String> {
    if v == "fd" {
        return Ok(DESCRIPTOR);
    }
    if let Some(name) = v.strip_prefix('-')
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return crate::diff::errno(name)
            .map(|e| -e)
            .ok_or_else(|| format!("unknown errno {name:?}"));
    }
    v.parse().map_err(|_| format!("not a result: {v:?}"))
}

/// The program's text with its expectation lines replaced by `expected`:
/// each wait's right after it, at its indentation, and what arrives after
/// the last step after an `end` line at the end. Everything else (comments
/// included) is kept as it is.
pub fn with_expectations(text: &str, expected: &Expected) -> String {
    let mut out = String::new();
    let mut groups = expected.groups.iter();
    let mut indent = "";
    for line in text.lines() {
        let kw = words(line).ok().and_then(|w| w.into_iter().next());
        if matches!(kw.as_deref(), Some("expect" | "expect-kqring" | "end")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim_start();
        if !trimmed.is_empty() {
            indent = &line[..line.len() - trimmed.len()];
        }
        if kw.as_deref() == Some("wait")
            && let Some(group) = groups.next()
        {
            write_group(&mut out, indent, group);
        }
    }
    if let Some(last) = groups.next()
        && (!last.io_uring.is_empty() || last.kqring.is_some())
    {
        out.push_str(indent);
        out.push_str("end\n");
        write_group(&mut out, indent, last);
    }
    out
}

/// Appends a group's `expect` lines, then its `expect-kqring` lines.
fn write_group(out: &mut String, indent: &str, group: &ExpectedGroup) {
    let mut put = |kw: &str, list: &[CqeRecord]| {
        if list.is_empty() {
            out.push_str(&format!("{indent}{kw} none\n"));
        }
        for c in list {
            out.push_str(&format!("{indent}{kw} {c}\n"));
        }
    };
    put("expect", &group.io_uring);
    if let Some(kq) = &group.kqring {
        put("expect-kqring", kq);
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
        "dir" => {
            let entries = rest
                .get(1..)
                .ok_or("usage: dir NAME [name=\"contents\" | name/ | name->target]...")?
                .iter()
                .map(|w| DirEntry::parse(w))
                .collect::<Result<Vec<_>, _>>()?;
            declare(program, ResourceKind::Dir { entries })
        }
        "minus-one" => {
            expect_words(rest, 1, "minus-one NAME")?;
            declare(program, ResourceKind::MinusOne)
        }
        "listener" => {
            let usage = "usage: listener NAME [tcp] [blocking]";
            let (mut tcp, mut blocking) = (false, false);
            for w in rest.get(1..).ok_or(usage)? {
                match w.as_str() {
                    "tcp" if !tcp => tcp = true,
                    "blocking" if !blocking => blocking = true,
                    _ => return Err(usage.into()),
                }
            }
            declare(program, ResourceKind::Listener { tcp, blocking })
        }
        "udp" => {
            expect_words(rest, 1, "udp NAME")?;
            declare(program, ResourceKind::Udp)
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
        "child" => {
            let usage = "usage: child NAME [exit=N | signal=NAME]";
            let end = match rest {
                [_] => ChildEnd::Exit(0),
                [_, how] => match how.split_once('=') {
                    Some(("exit", n)) => ChildEnd::Exit(
                        u8::try_from(parse_u64(n)?).map_err(|_| format!("exit {n}: over 255"))?,
                    ),
                    Some(("signal", name)) => ChildEnd::Signal(
                        SIGNAL_NAMES
                            .iter()
                            .find(|(_, n)| *n == name.trim_start_matches("SIG"))
                            .map(|(s, _)| *s)
                            .ok_or_else(|| format!("unknown signal {name:?}"))?,
                    ),
                    _ => return Err(usage.into()),
                },
                _ => return Err(usage.into()),
            };
            declare(program, ResourceKind::Child { end })
        }
        "ring" => {
            let usage = "usage: ring NAME [files=N]";
            let files = match rest {
                [_] => 0,
                [_, files] => match files.strip_prefix("files=") {
                    Some(n) => <u32 as Arg>::parse(n)?,
                    None => return Err(usage.into()),
                },
                _ => return Err(usage.into()),
            };
            declare(program, ResourceKind::Ring { files })
        }
        "close-ring" => {
            expect_words(rest, 1, "close-ring RING")?;
            Ok(Line::Step(Step::CloseRing {
                ring: RingName(rest[0].clone()),
            }))
        }
        "end-child" => {
            expect_words(rest, 1, "end-child CHILD")?;
            Ok(Line::Step(Step::EndChild {
                child: rest[0].clone(),
            }))
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
            let usage = "usage: wait N [ring=RING]";
            let n = usize::try_from(parse_u64(rest.first().ok_or(usage)?)?)
                .map_err(|e| e.to_string())?;
            match rest {
                [_] => Ok(Line::Step(Step::Wait(n))),
                [_, ring] => match ring.strip_prefix("ring=") {
                    Some(ring) => Ok(Line::Step(Step::WaitRing {
                        ring: RingName(ring.to_string()),
                        n,
                    })),
                    None => Err(usage.into()),
                },
                _ => Err(usage.into()),
            }
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
                ResourceKind::Dir { entries } => {
                    write!(f, "dir {}", r.name)?;
                    for e in entries {
                        write!(f, " {e}")?;
                    }
                    writeln!(f)?
                }
                ResourceKind::MinusOne => writeln!(f, "minus-one {}", r.name)?,
                ResourceKind::Listener { tcp, blocking } => writeln!(
                    f,
                    "listener {}{}{}",
                    r.name,
                    if *tcp { " tcp" } else { "" },
                    if *blocking { " blocking" } else { "" }
                )?,
                ResourceKind::Udp => writeln!(f, "udp {}", r.name)?,
                ResourceKind::Client { listener, blocking } => writeln!(
                    f,
                    "client {} {listener}{}",
                    r.name,
                    if *blocking { " blocking" } else { "" }
                )?,
                ResourceKind::Child { end } => match end {
                    ChildEnd::Exit(n) => writeln!(f, "child {} exit={n}", r.name)?,
                    ChildEnd::Signal(s) => writeln!(
                        f,
                        "child {} signal={}",
                        r.name,
                        crate::model::signal_name(*s)
                    )?,
                },
                ResourceKind::Ring { files } => writeln!(f, "ring {} files={files}", r.name)?,
            }
        }
        let mut groups = self.expected.iter().flat_map(|e| e.groups.iter());
        let group_lines = |f: &mut fmt::Formatter<'_>, group: Option<&ExpectedGroup>| {
            let mut out = String::new();
            if let Some(g) = group {
                write_group(&mut out, "", g);
            }
            f.write_str(&out)
        };
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
                Step::Wait(n) => {
                    writeln!(f, "wait {n}")?;
                    group_lines(f, groups.next())?;
                }
                Step::WaitRing { ring, n } => {
                    writeln!(f, "wait {n} ring={}", ring.0)?;
                    group_lines(f, groups.next())?;
                }
                Step::CloseRing { ring } => writeln!(f, "close-ring {}", ring.0)?,
                Step::EndChild { child } => writeln!(f, "end-child {child}")?,
            }
        }
        if let Some(last) = groups.next()
            && (!last.io_uring.is_empty() || last.kqring.is_some())
        {
            writeln!(f, "end")?;
            group_lines(f, Some(last))?;
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
            expect ud=1 res=-ECANCELED
            expect ud=2 res=fd more buf=3 data="a\x00" from=u
            expect-kqring none
            udp u
            listener t tcp blocking
            socket domain=inet6 type=dgram protocol=17 file-index=alloc blocking ud=21
            socket domain=unix type=stream as=s ud=22
            accept fd=l as=conn ud=23
            submit
            bind fd=s addr=[::1]:0 ud=24
            listen fd=@1 backlog=3 ud=25
            connect fd=conn addr=local:t ud=26
            shutdown fd=s how=rdwr ud=27
            sendmsg fd=u data="a" data="b" to=127.0.0.1:0 ud=28
            recvmsg fd=u lens=1,2 ud=29
            recvmsg-select fd=u group=2 ud=30
            read-select fd=q.r group=1 off=cur ud=31
            wait 0
            expect none
            end
            expect ud=9 res=3
        "#;
        let p = Program::parse("t", text).unwrap();
        assert_eq!(p.order, Order::ByUserData);
        assert_eq!(p.files, 4);
        assert_eq!(p.resources.len(), 8);
        assert!(matches!(&p.steps[0], Step::Submit(e) if e.len() == 2));
        assert!(matches!(&p.steps[1], Step::Submit(e) if e.len() == 19));
        assert!(matches!(&p.steps[5], Step::Submit(e) if e.len() == 3));
        assert!(matches!(&p.steps[6], Step::Submit(e) if e.len() == 8));
        assert_eq!(p.steps.last(), Some(&Step::Wait(0)));
        let expected = p.expected.as_ref().unwrap();
        assert_eq!(expected.groups.len(), 3);
        assert_eq!(expected.groups[0].io_uring[1].res, DESCRIPTOR);
        assert_eq!(
            expected.groups[0].io_uring[1].flags,
            F_MORE | F_BUFFER | 3 << 16
        );
        assert_eq!(expected.groups[0].kqring, Some(Vec::new()));
        assert_eq!(expected.groups[2].io_uring[0].user_data, 9);
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
        let e = Program::parse("t", "socket domain=inet type=stream as=s ud=1\nlisten fd=s")
            .unwrap_err();
        assert!(e.message.contains("same batch"), "{e}");
        let e = Program::parse("t", "socket domain=inet type=stream as=s\nnop").unwrap_err();
        assert!(e.message.contains("user_data of its own"), "{e}");
        let e = Program::parse("t", "bind fd=x addr=localhost ud=1").unwrap_err();
        assert!(e.message.contains("not an address"), "{e}");
    }

    #[test]
    fn children_and_second_rings_round_trip() {
        let text = "child c exit=7\nchild k signal=TERM\nring t files=2\nring u files=0\n\
                    waitid pid=c options=exited|nowait ud=1\nwaitid pid=1 ud=2\n\
                    msg-ring to=t res=-EPIPE target-ud=9 skip-target-cqe ud=3\n\
                    msg-ring-fd to=u src=1 dest=alloc target-ud=10 ud=4\n\
                    end-child c\nclose-ring u\nwait 2\n\
                    expect ud=1 res=0 waited=\"exited 7 pid=c\"\n\
                    expect ud=2 res=-ECHILD\nwait 1 ring=t\nexpect ud=9 res=-EPIPE\n";
        let p = Program::parse("t", text).unwrap();
        assert_eq!(
            p.resources[1].kind,
            ResourceKind::Child {
                end: ChildEnd::Signal(libc::SIGTERM)
            }
        );
        assert!(matches!(&p.steps[0], Step::Submit(e) if e.len() == 4));
        assert_eq!(
            p.steps[4],
            Step::WaitRing {
                ring: RingName("t".into()),
                n: 1
            }
        );
        let expected = p.expected.as_ref().unwrap();
        assert_eq!(
            expected.groups[0].io_uring[0].waited.as_deref(),
            Some("exited 7 pid=c")
        );
        assert_eq!(expected.groups[1].io_uring[0].user_data, 9);
        let again = Program::parse("t", &p.to_string()).unwrap();
        assert_eq!(again, p, "{p}");
    }

    #[test]
    fn children_and_rings_are_checked() {
        for (text, wants) in [
            ("waitid pid=c ud=1", "no child named c"),
            ("ring c\nwaitid pid=c ud=1", "no child named c"),
            ("msg-ring to=t res=0 target-ud=1", "no ring named t"),
            (
                "child t\nmsg-ring-fd to=t src=0 dest=0 target-ud=1",
                "no ring named t",
            ),
            ("wait 1 ring=t", "no ring named t"),
            ("close-ring t", "no ring named t"),
            ("end-child c", "no child named c"),
            ("child c\nring c", "declared twice"),
            ("child c exit=256", "over 255"),
            ("child c signal=BOGUS", "unknown signal"),
            (
                "waitid pid=1 options=exited|sometimes",
                "unknown waitid option",
            ),
        ] {
            let e = Program::parse("t", text).unwrap_err();
            assert!(e.message.contains(wants), "{text}: {e}");
        }
    }

    #[test]
    fn expectation_errors_name_the_line() {
        let e = Program::parse("t", "nop ud=1\nexpect ud=1 res=0\nwait 1").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("after a `wait`"), "{e}");
        let e = Program::parse("t", "nop ud=1\nwait 1\nexpect ud=1 res=0\nnop ud=2\nwait 1")
            .unwrap_err();
        assert_eq!(e.line, 5);
        assert!(e.message.contains("no `expect` line"), "{e}");
        let e = Program::parse("t", "nop ud=1\nwait 1\nexpect ud=1 res=-EWHAT").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("EWHAT"), "{e}");
        let e =
            Program::parse("t", "nop ud=1\nwait 1\nexpect none\nexpect ud=1 res=0").unwrap_err();
        assert_eq!(e.line, 4);
        let e = Program::parse("t", "nop ud=1\nwait 1\nexpect-kqring ud=1 res=0").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no `expect` line"), "{e}");
        let e = Program::parse("t", "nop ud=1\nwait 1\nexpect none\nend\nnop").unwrap_err();
        assert_eq!(e.line, 5);
        let e = Program::parse("t", "nop ud=1\nwait 1\nexpect ud=1").unwrap_err();
        assert!(e.message.contains("res"), "{e}");
    }

    #[test]
    fn expectations_are_filled_in_where_the_waits_are() {
        let text = "# a comment\npair p\n  nop ud=1\n  wait 1 # first\n  expect ud=7 res=0\n\
                    nop ud=2\nwait 1\nend\nexpect ud=3 res=0\n";
        let rec = |ud, res| CqeRecord {
            user_data: ud,
            res,
            flags: 0,
            data: None,
            from: None,
            stat: None,
            waited: None,
        };
        let expected = Expected {
            groups: vec![
                ExpectedGroup {
                    io_uring: vec![rec(1, 0)],
                    kqring: None,
                },
                ExpectedGroup {
                    io_uring: vec![rec(2, -libc::EINVAL)],
                    kqring: Some(vec![rec(2, 0)]),
                },
                ExpectedGroup {
                    io_uring: vec![rec(3, 4)],
                    kqring: None,
                },
            ],
        };
        let out = with_expectations(text, &expected);
        assert_eq!(
            out,
            "# a comment\npair p\n  nop ud=1\n  wait 1 # first\n  expect ud=1 res=0\n\
             nop ud=2\nwait 1\nexpect ud=2 res=-EINVAL\nexpect-kqring ud=2 res=0\n\
             end\nexpect ud=3 res=4\n"
        );
        let p = Program::parse("t", &out).unwrap();
        assert_eq!(p.expected.as_ref(), Some(&expected));
        assert_eq!(Program::parse("t", &p.to_string()).unwrap(), p);
    }
}
