//! `Statx`: a file's status, run on the blocking pool, its result an
//! owned [`Stat`] in the completion.

use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::cq::{Extra, StatOut};
use crate::ops::path::OwnedPath;
use crate::ops::{BlockingOp, Op, operation};
use crate::sq::Sqe;
use crate::sys::fs::AT_FDCWD;
use crate::sys::io::FdKind;
use crate::sys::stat::{self as sys, Stat, StatxMask};

/// `IORING_OP_STATX`: the status of the file `path` names (or, built with
/// [`Statx::fd`], of an open descriptor). Completes with 0 and the
/// [`Stat`] in [`Cqe::statx`](crate::Cqe::statx), or `-errno` (`-ENOENT`,
/// `-ENOTDIR`, `-ELOOP`, `-ENAMETOOLONG`, `-EACCES`…).
///
/// On Linux it is `statx(2)`, and the stat's `mask` is what the kernel
/// says it filled. Elsewhere it is `fstatat(2)` (`fstat(2)` for a
/// descriptor): every field of `stat(2)` is filled, so the mask is
/// [`StatxMask::BASIC_STATS`], plus `BTIME` where the file system records
/// a creation time (macOS, FreeBSD, NetBSD), whatever mask was asked for.
///
/// ```
/// use kqring::{Ring, ops};
/// let ring = Ring::new(4)?;
/// ring.submission().push(ops::Statx::new("Cargo.toml").build())?;
/// ring.submission().submit_and_wait(1)?;
/// let mut cqe = ring.completion().pop().expect("a completion");
/// assert_eq!(cqe.result(), 0);
/// let stat = cqe.statx().expect("a stat");
/// assert!(stat.is_file() && stat.size > 0);
/// assert_eq!(cqe.take_path(), Some("Cargo.toml".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Statx {
    dir: RawFd,
    /// `None`: `dir` itself (`AT_EMPTY_PATH`).
    path: Option<OwnedPath>,
    no_follow: bool,
    mask: StatxMask,
}

impl Statx {
    /// The status of `path`, relative to the current directory.
    pub fn new(path: impl Into<PathBuf>) -> Statx {
        Statx {
            dir: AT_FDCWD,
            path: Some(OwnedPath::new(path)),
            no_follow: false,
            mask: StatxMask::default(),
        }
    }

    /// The status of the open descriptor `fd` (`statx(fd, "",
    /// AT_EMPTY_PATH)`, `fstat` elsewhere).
    pub fn fd(fd: RawFd) -> Statx {
        Statx {
            dir: fd,
            path: None,
            no_follow: false,
            mask: StatxMask::default(),
        }
    }

    /// The directory a relative path starts from (for [`Statx::fd`], the
    /// descriptor itself).
    #[must_use]
    pub fn dir(mut self, dir: RawFd) -> Statx {
        self.dir = dir;
        self
    }

    /// A symbolic link's own status, not its target's
    /// (`AT_SYMLINK_NOFOLLOW`).
    #[must_use]
    pub fn no_follow(mut self, on: bool) -> Statx {
        self.no_follow = on;
        self
    }

    /// The fields asked for (default [`StatxMask::BASIC_STATS`]).
    #[must_use]
    pub fn mask(mut self, mask: StatxMask) -> Statx {
        self.mask = mask;
        self
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Blocking(Box::new(StatxOp {
            args: self,
            stat: None,
        })))
    }
}

/// A `Statx` as it runs: its arguments, then its result.
#[derive(Debug)]
struct StatxOp {
    args: Statx,
    stat: Option<Stat>,
}

operation!(StatxOp, "Statx", |op, out| {
    out.extra = Extra::Stat(Box::new(StatOut {
        stat: op.stat,
        path: op.args.path.map(OwnedPath::into_path),
    }));
});

impl BlockingOp for StatxOp {
    fn run_blocking(&mut self, _kind: Option<FdKind>) -> i32 {
        let a = &self.args;
        let path = match a.path.as_ref().map(OwnedPath::c).transpose() {
            Ok(p) => p,
            Err(e) => return e.res(),
        };
        match sys::statx(a.dir, path, a.no_follow, a.mask) {
            Ok(stat) => {
                self.stat = Some(stat);
                0
            }
            Err(e) => e.res(),
        }
    }
}
