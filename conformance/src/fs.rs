//! The file-system part of a program: the argument types of its opcodes
//! (`openat`'s flags, modes, advice), the entries a `dir` resource starts
//! with, how a `statx` result is compared, and kqring's translation of the
//! opcodes (io_uring's is in `run_uring_fs.rs`).

use std::fmt;
use std::path::PathBuf;

use kqring::ops::{self, Advice, FallocateFlags, RenameFlags};
use kqring::{Cqe, Sqe};

use crate::model::{FileSlot, Op};
use crate::resources::Fds;
use crate::run::RunError;
use crate::text::{Arg, quote, unquote};

/// `open(2)`'s flags, written as names joined by `|`
/// (`oflags=rdwr|creat|excl`): `rdonly`, `wronly`, `rdwr`, `creat`,
/// `excl`, `trunc`, `append`, `nofollow`, `directory`, `cloexec`,
/// `nonblock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFlags(pub i32);

/// The flag names, the access mode's first.
const OPEN_NAMES: &[(&str, i32)] = &[
    ("rdonly", libc::O_RDONLY),
    ("wronly", libc::O_WRONLY),
    ("rdwr", libc::O_RDWR),
    ("creat", libc::O_CREAT),
    ("excl", libc::O_EXCL),
    ("trunc", libc::O_TRUNC),
    ("append", libc::O_APPEND),
    ("nofollow", libc::O_NOFOLLOW),
    ("directory", libc::O_DIRECTORY),
    ("cloexec", libc::O_CLOEXEC),
    ("nonblock", libc::O_NONBLOCK),
];

impl Arg for OpenFlags {
    fn absent() -> Option<OpenFlags> {
        Some(OpenFlags(libc::O_RDONLY))
    }

    fn parse(v: &str) -> Result<OpenFlags, String> {
        let mut flags = 0;
        for part in v.split('|') {
            let (_, bit) = OPEN_NAMES
                .iter()
                .find(|(n, _)| *n == part)
                .ok_or_else(|| format!("unknown open flag {part:?}"))?;
            flags |= bit;
        }
        Ok(OpenFlags(flags))
    }

    fn put(&self, key: &str, out: &mut String) {
        let access = self.0 & libc::O_ACCMODE;
        let mut names: Vec<&str> = OPEN_NAMES[..3]
            .iter()
            .filter(|(_, bit)| *bit == access)
            .map(|(n, _)| *n)
            .collect();
        names.extend(
            OPEN_NAMES[3..]
                .iter()
                .filter(|(_, bit)| self.0 & bit != 0)
                .map(|(n, _)| *n),
        );
        out.push_str(&format!(" {key}={}", names.join("|")));
    }
}

/// Permission bits, written in octal (`mode=0o644`; `644` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Arg for Mode {
    fn parse(v: &str) -> Result<Mode, String> {
        let digits = v.strip_prefix("0o").unwrap_or(v);
        u32::from_str_radix(digits, 8)
            .map(Mode)
            .map_err(|_| format!("not an octal mode: {v:?}"))
    }

    fn put(&self, key: &str, out: &mut String) {
        out.push_str(&format!(" {key}=0o{:o}", self.0));
    }
}

/// `posix_fadvise`'s advice: `normal`, `sequential`, `random`, `noreuse`,
/// `willneed`, `dontneed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAdvice(pub Advice);

const ADVICE_NAMES: &[(&str, Advice)] = &[
    ("normal", Advice::Normal),
    ("sequential", Advice::Sequential),
    ("random", Advice::Random),
    ("noreuse", Advice::NoReuse),
    ("willneed", Advice::WillNeed),
    ("dontneed", Advice::DontNeed),
];

impl FileAdvice {
    /// The `POSIX_FADV_*` value, as io_uring takes it (Linux's).
    pub fn raw(self) -> i32 {
        match self.0 {
            Advice::Sequential => 2,
            Advice::Random => 1,
            Advice::NoReuse => 5,
            Advice::WillNeed => 3,
            Advice::DontNeed => 4,
            _ => 0,
        }
    }
}

impl Arg for FileAdvice {
    fn parse(v: &str) -> Result<FileAdvice, String> {
        ADVICE_NAMES
            .iter()
            .find(|(n, _)| *n == v)
            .map(|&(_, a)| FileAdvice(a))
            .ok_or_else(|| format!("unknown advice {v:?}"))
    }

    fn put(&self, key: &str, out: &mut String) {
        let name = ADVICE_NAMES
            .iter()
            .find(|(_, a)| *a == self.0)
            .map_or("normal", |(n, _)| *n);
        out.push_str(&format!(" {key}={name}"));
    }
}

/// A path argument: a quoted string (`path="a/b"`), bytes as given.
impl Arg for PathBuf {
    fn parse(v: &str) -> Result<PathBuf, String> {
        use std::os::unix::ffi::OsStringExt;
        unquote(v).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)))
    }

    fn put(&self, key: &str, out: &mut String) {
        use std::os::unix::ffi::OsStrExt;
        out.push_str(&format!(" {key}={}", quote(self.as_os_str().as_bytes())));
    }
}

/// What a `dir` resource holds when the run starts, made in the order
/// written: `name="contents"` (a file), `name/` (a directory), `name->target`
/// (a symbolic link). Names are relative and may be nested (`sub/f="x"`
/// after `sub/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirEntry {
    /// A regular file with these contents.
    File {
        /// Its path in the directory.
        name: String,
        /// Its contents.
        contents: Vec<u8>,
    },
    /// An empty directory.
    Dir {
        /// Its path in the directory.
        name: String,
    },
    /// A symbolic link.
    Symlink {
        /// Its path in the directory.
        name: String,
        /// What it points to (not resolved).
        target: String,
    },
}

impl DirEntry {
    /// Reads one entry word.
    pub(crate) fn parse(word: &str) -> Result<DirEntry, String> {
        let entry = if let Some(name) = word.strip_suffix('/') {
            DirEntry::Dir {
                name: name.to_string(),
            }
        } else if let Some((name, target)) = word.split_once("->") {
            DirEntry::Symlink {
                name: name.to_string(),
                target: target.to_string(),
            }
        } else if let Some((name, contents)) = word.split_once('=')
            && contents.starts_with('"')
        {
            DirEntry::File {
                name: name.to_string(),
                contents: unquote(contents)?,
            }
        } else {
            return Err(format!(
                "unknown entry {word:?} (name=\"contents\", name/, name->target)"
            ));
        };
        let name = entry.name();
        let relative = !name.is_empty()
            && !name.starts_with('/')
            && name.split('/').all(|c| !c.is_empty() && c != "..");
        if !relative {
            return Err(format!(
                "entry {name:?}: a relative path inside the directory"
            ));
        }
        Ok(entry)
    }

    /// Its path in the directory.
    pub fn name(&self) -> &str {
        match self {
            DirEntry::File { name, .. }
            | DirEntry::Dir { name }
            | DirEntry::Symlink { name, .. } => name,
        }
    }

    /// Makes it in `dir`.
    pub(crate) fn make(&self, dir: &std::path::Path) -> std::io::Result<()> {
        match self {
            DirEntry::File { name, contents } => std::fs::write(dir.join(name), contents),
            DirEntry::Dir { name } => std::fs::create_dir(dir.join(name)),
            DirEntry::Symlink { name, target } => {
                std::os::unix::fs::symlink(target, dir.join(name))
            }
        }
    }
}

impl fmt::Display for DirEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirEntry::File { name, contents } => write!(f, "{name}={}", quote(contents)),
            DirEntry::Dir { name } => write!(f, "{name}/"),
            DirEntry::Symlink { name, target } => write!(f, "{name}->{target}"),
        }
    }
}

/// A file's status as a program compares it (`stat="file 0644 size=11
/// nlink=1"`): its type and permissions (not a link's), and for anything
/// but a directory its size and link count (a directory's size and links
/// depend on the file system). Times, owners and numbers differ from run
/// to run.
pub fn render_stat(mode: u32, size: u64, nlink: u64) -> String {
    // `mode_t` is u16 on some systems, u32 on others.
    #[allow(clippy::unnecessary_cast)]
    let kind = match mode & libc::S_IFMT as u32 {
        m if m == libc::S_IFREG as u32 => "file",
        m if m == libc::S_IFDIR as u32 => "dir",
        m if m == libc::S_IFLNK as u32 => "symlink",
        m if m == libc::S_IFIFO as u32 => "fifo",
        m if m == libc::S_IFSOCK as u32 => "socket",
        m if m == libc::S_IFCHR as u32 => "chr",
        m if m == libc::S_IFBLK as u32 => "blk",
        _ => "other",
    };
    let perm = mode & 0o7777;
    match kind {
        "dir" => format!("{kind} {perm:04o}"),
        // A link's permissions mean nothing, and differ (Linux 0777, the
        // BSDs' by the umask).
        "symlink" => format!("{kind} size={size} nlink={nlink}"),
        _ => format!("{kind} {perm:04o} size={size} nlink={nlink}"),
    }
}

/// A completion's status, rendered, for a `statx` that succeeded.
pub(crate) fn kqring_stat(cqe: &Cqe) -> Option<String> {
    cqe.statx().map(|s| render_stat(s.mode, s.size, s.nlink))
}

/// kqring's entry for a file-system opcode.
pub(crate) fn kqring_sqe(op: &Op, fds: &Fds) -> Result<Sqe, RunError> {
    let file = |f: &crate::model::FileRef| -> Result<ops::Fd, RunError> {
        Ok(match f {
            crate::model::FileRef::Fd(fd) => ops::Fd::Raw(fds.get(fd)?),
            crate::model::FileRef::Fixed(slot) => ops::Fd::Fixed(*slot),
        })
    };
    let sqe = match op {
        Op::OpenAt {
            dir,
            path,
            oflags,
            mode,
            file_index,
            as_: _,
        } => {
            let open = ops::OpenAt::new(path.clone(), oflags.0)
                .dir(fds.get(dir)?)
                .mode(mode.0);
            match file_index {
                Some(FileSlot::Index(i)) => open.file_index(ops::FileSlot::Index(*i)),
                Some(FileSlot::Alloc) => open.file_index(ops::FileSlot::Alloc),
                None => open,
            }
            .build()
        }
        Op::Statx {
            dir,
            path,
            no_follow,
        } => match path {
            Some(p) => ops::Statx::new(p.clone()).dir(fds.get(dir)?),
            None => ops::Statx::fd(fds.get(dir)?),
        }
        .no_follow(*no_follow)
        .build(),
        Op::Fsync { fd, datasync } => ops::Fsync::new(file(fd)?).datasync(*datasync).build(),
        Op::Fallocate {
            fd,
            off,
            len,
            keep_size,
            punch_hole,
        } => ops::Fallocate::new(file(fd)?, *off, *len)
            .flags(fallocate_flags(*keep_size, *punch_hole))
            .build(),
        Op::Ftruncate { fd, len } => ops::Ftruncate::new(file(fd)?, *len).build(),
        Op::Fadvise {
            fd,
            off,
            len,
            advice,
        } => ops::Fadvise::new(file(fd)?, *off, u64::from(*len), advice.0).build(),
        Op::UnlinkAt {
            dir,
            path,
            remove_dir,
        } => ops::UnlinkAt::new(path.clone())
            .dir(fds.get(dir)?)
            .remove_dir(*remove_dir)
            .build(),
        Op::RenameAt {
            dir,
            from,
            to,
            to_dir,
            noreplace,
            exchange,
        } => {
            let to_dir = to_dir.as_ref().unwrap_or(dir);
            ops::RenameAt::new(from.clone(), to.clone())
                .from_dir(fds.get(dir)?)
                .to_dir(fds.get(to_dir)?)
                .flags(rename_flags(*noreplace, *exchange))
                .build()
        }
        Op::MkdirAt { dir, path, mode } => ops::MkdirAt::new(path.clone())
            .dir(fds.get(dir)?)
            .mode(mode.0)
            .build(),
        Op::SymlinkAt { target, dir, path } => ops::SymlinkAt::new(target.clone(), path.clone())
            .dir(fds.get(dir)?)
            .build(),
        Op::LinkAt {
            dir,
            from,
            to,
            follow,
        } => ops::LinkAt::new(from.clone(), to.clone())
            .from_dir(fds.get(dir)?)
            .to_dir(fds.get(dir)?)
            .follow(*follow)
            .build(),
        other => {
            return Err(RunError::Invalid(format!(
                "{} is no file-system opcode",
                other.keyword()
            )));
        }
    };
    Ok(sqe)
}

/// `Fallocate`'s flags.
pub(crate) fn fallocate_flags(keep_size: bool, punch_hole: bool) -> FallocateFlags {
    let mut flags = FallocateFlags::empty();
    flags.set(FallocateFlags::KEEP_SIZE, keep_size);
    flags.set(FallocateFlags::PUNCH_HOLE, punch_hole);
    flags
}

/// `RenameAt`'s flags.
pub(crate) fn rename_flags(noreplace: bool, exchange: bool) -> RenameFlags {
    let mut flags = RenameFlags::empty();
    flags.set(RenameFlags::NOREPLACE, noreplace);
    flags.set(RenameFlags::EXCHANGE, exchange);
    flags
}
