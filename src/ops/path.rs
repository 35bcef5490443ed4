//! Directory-entry operations, run on the blocking pool: `UnlinkAt`,
//! `RenameAt`, `MkdirAt`, `SymlinkAt`, `LinkAt`; and [`OwnedPath`], the
//! path every path-taking operation owns and hands back.
//!
//! Each path is relative to a directory descriptor (`dir`), or to the
//! current directory when none is given (`AT_FDCWD`); an absolute path
//! ignores it. The completion gives the paths back
//! ([`Cqe::take_paths`](crate::Cqe::take_paths)), as buffers come back.

use std::ffi::{CStr, CString, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use crate::cq::Extra;
use crate::ops::{BlockingOp, Op, Output, operation};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::fs::{self as sys, AT_FDCWD, RenameFlags};
use crate::sys::io::FdKind;

/// A path an operation owns: NUL-terminated for its syscall, given back
/// as the `PathBuf` it came as (the same bytes, moved, not copied).
#[derive(Debug)]
pub(crate) struct OwnedPath(Result<CString, PathBuf>);

impl OwnedPath {
    pub(crate) fn new(path: impl Into<PathBuf>) -> OwnedPath {
        match CString::new(path.into().into_os_string().into_vec()) {
            Ok(c) => OwnedPath(Ok(c)),
            // Kept as it is: the operation fails with -EINVAL when it runs.
            Err(e) => OwnedPath(Err(PathBuf::from(OsString::from_vec(e.into_vec())))),
        }
    }

    /// The path for a syscall; `-EINVAL` for one with a NUL inside, which
    /// no syscall can take.
    pub(crate) fn c(&self) -> Result<&CStr, Errno> {
        self.0.as_deref().map_err(|_| Errno::EINVAL)
    }

    /// The path, as given.
    pub(crate) fn into_path(self) -> PathBuf {
        match self.0 {
            Ok(c) => PathBuf::from(OsString::from_vec(c.into_bytes())),
            Err(p) => p,
        }
    }
}

/// Hands the paths back to the completion, in the order given.
pub(crate) fn give_back(out: &mut Output, paths: impl IntoIterator<Item = OwnedPath>) {
    out.extra = Extra::Paths(paths.into_iter().map(OwnedPath::into_path).collect());
}

/// A `()` call's outcome as a completion's `res`: 0, or `-errno`.
pub(crate) fn done(r: Result<(), Errno>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => e.res(),
    }
}

/// `IORING_OP_UNLINKAT`: removes the name `path` — a file's, or with
/// [`remove_dir`](Self::remove_dir) an empty directory's. Completes with 0
/// or `-errno` (`-ENOENT`, `-EISDIR` for a directory without `remove_dir`,
/// `-ENOTDIR`, `-ENOTEMPTY`…).
#[derive(Debug)]
pub struct UnlinkAt {
    dir: RawFd,
    path: OwnedPath,
    remove_dir: bool,
}

impl UnlinkAt {
    /// Removes `path`, relative to the current directory.
    pub fn new(path: impl Into<PathBuf>) -> UnlinkAt {
        UnlinkAt {
            dir: AT_FDCWD,
            path: OwnedPath::new(path),
            remove_dir: false,
        }
    }

    /// The directory a relative `path` starts from.
    #[must_use]
    pub fn dir(mut self, dir: RawFd) -> UnlinkAt {
        self.dir = dir;
        self
    }

    /// Removes a directory instead of a file (`AT_REMOVEDIR`).
    #[must_use]
    pub fn remove_dir(mut self, on: bool) -> UnlinkAt {
        self.remove_dir = on;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(UnlinkAt, "UnlinkAt", |op, out| give_back(out, [op.path]));

impl BlockingOp for UnlinkAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(
            self.path
                .c()
                .and_then(|p| sys::unlink_at(self.dir, p, self.remove_dir)),
        )
    }
}

/// `IORING_OP_RENAMEAT`: renames `from` to `to`, replacing what `to` names
/// unless a flag says otherwise. Completes with 0 or `-errno`.
///
/// Flags ([`RenameFlags`]) are Linux's `renameat2` ones: macOS has
/// `NOREPLACE` and `EXCHANGE` (`renameatx_np`); elsewhere any flag is
/// `-EINVAL`, as a Linux without `renameat2` answers.
#[derive(Debug)]
pub struct RenameAt {
    from_dir: RawFd,
    from: OwnedPath,
    to_dir: RawFd,
    to: OwnedPath,
    flags: RenameFlags,
}

impl RenameAt {
    /// Renames `from` to `to`, both relative to the current directory.
    pub fn new(from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> RenameAt {
        RenameAt {
            from_dir: AT_FDCWD,
            from: OwnedPath::new(from),
            to_dir: AT_FDCWD,
            to: OwnedPath::new(to),
            flags: RenameFlags::empty(),
        }
    }

    /// The directory a relative `from` starts from.
    #[must_use]
    pub fn from_dir(mut self, dir: RawFd) -> RenameAt {
        self.from_dir = dir;
        self
    }

    /// The directory a relative `to` starts from.
    #[must_use]
    pub fn to_dir(mut self, dir: RawFd) -> RenameAt {
        self.to_dir = dir;
        self
    }

    /// `renameat2`'s flags.
    #[must_use]
    pub fn flags(mut self, flags: RenameFlags) -> RenameAt {
        self.flags = flags;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(RenameAt, "RenameAt", |op, out| give_back(
    out,
    [op.from, op.to]
));

impl BlockingOp for RenameAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(self.from.c().and_then(|from| {
            let to = self.to.c()?;
            sys::rename_at(self.from_dir, from, self.to_dir, to, self.flags)
        }))
    }
}

/// `IORING_OP_MKDIRAT`: makes the directory `path` with permissions
/// `mode` (default `0o777`; the process's umask applies). Completes with
/// 0 or `-errno` (`-EEXIST`, `-ENOENT` for a missing parent…).
#[derive(Debug)]
pub struct MkdirAt {
    dir: RawFd,
    path: OwnedPath,
    mode: u32,
}

impl MkdirAt {
    /// Makes `path`, relative to the current directory.
    pub fn new(path: impl Into<PathBuf>) -> MkdirAt {
        MkdirAt {
            dir: AT_FDCWD,
            path: OwnedPath::new(path),
            mode: 0o777,
        }
    }

    /// The directory a relative `path` starts from.
    #[must_use]
    pub fn dir(mut self, dir: RawFd) -> MkdirAt {
        self.dir = dir;
        self
    }

    /// The new directory's permissions, before the umask.
    #[must_use]
    pub fn mode(mut self, mode: u32) -> MkdirAt {
        self.mode = mode;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(MkdirAt, "MkdirAt", |op, out| give_back(out, [op.path]));

impl BlockingOp for MkdirAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(
            self.path
                .c()
                .and_then(|p| sys::mkdir_at(self.dir, p, self.mode)),
        )
    }
}

/// `IORING_OP_SYMLINKAT`: makes a symbolic link at `link` whose contents
/// are `target` (not resolved: it may name nothing). Completes with 0 or
/// `-errno`. The completion's paths are `target`, then `link`.
#[derive(Debug)]
pub struct SymlinkAt {
    target: OwnedPath,
    dir: RawFd,
    link: OwnedPath,
}

impl SymlinkAt {
    /// Makes `link`, relative to the current directory, pointing at
    /// `target`.
    pub fn new(target: impl Into<PathBuf>, link: impl Into<PathBuf>) -> SymlinkAt {
        SymlinkAt {
            target: OwnedPath::new(target),
            dir: AT_FDCWD,
            link: OwnedPath::new(link),
        }
    }

    /// The directory a relative `link` starts from.
    #[must_use]
    pub fn dir(mut self, dir: RawFd) -> SymlinkAt {
        self.dir = dir;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(SymlinkAt, "SymlinkAt", |op, out| give_back(
    out,
    [op.target, op.link]
));

impl BlockingOp for SymlinkAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(self.target.c().and_then(|target| {
            let link = self.link.c()?;
            sys::symlink_at(target, self.dir, link)
        }))
    }
}

/// `IORING_OP_LINKAT`: makes `to` a new name (a hard link) of the file
/// `from` names — of a symbolic link itself, unless
/// [`follow`](Self::follow). Completes with 0 or `-errno`. The
/// completion's paths are `from`, then `to`.
#[derive(Debug)]
pub struct LinkAt {
    from_dir: RawFd,
    from: OwnedPath,
    to_dir: RawFd,
    to: OwnedPath,
    follow: bool,
}

impl LinkAt {
    /// Links `to` to `from`, both relative to the current directory.
    pub fn new(from: impl Into<PathBuf>, to: impl Into<PathBuf>) -> LinkAt {
        LinkAt {
            from_dir: AT_FDCWD,
            from: OwnedPath::new(from),
            to_dir: AT_FDCWD,
            to: OwnedPath::new(to),
            follow: false,
        }
    }

    /// The directory a relative `from` starts from.
    #[must_use]
    pub fn from_dir(mut self, dir: RawFd) -> LinkAt {
        self.from_dir = dir;
        self
    }

    /// The directory a relative `to` starts from.
    #[must_use]
    pub fn to_dir(mut self, dir: RawFd) -> LinkAt {
        self.to_dir = dir;
        self
    }

    /// Links to what a symbolic link at `from` points to
    /// (`AT_SYMLINK_FOLLOW`).
    #[must_use]
    pub fn follow(mut self, on: bool) -> LinkAt {
        self.follow = on;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(self)))
    }
}

operation!(LinkAt, "LinkAt", |op, out| give_back(out, [op.from, op.to]));

impl BlockingOp for LinkAt {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        done(self.from.c().and_then(|from| {
            let to = self.to.c()?;
            sys::link_at(self.from_dir, from, self.to_dir, to, self.follow)
        }))
    }
}
