//! io_uring's entries for the file-system opcodes, with the memory each
//! keeps until it completes: its paths, and a `statx`'s result.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use io_uring::types::{Fd, Fixed, FsyncFlags};
use io_uring::{opcode, squeue, types};

use crate::fs::{fallocate_flags, rename_flags, render_stat};
use crate::model::{FileRef, Op};
use crate::resources::Fds;
use crate::run::RunError;
use crate::run_uring::{destination, on_file};

/// What the kernel reads (the paths) or writes (the status) until the
/// entry completes. Boxed and heap-allocated: moving it moves no memory
/// the kernel was given.
pub(crate) struct FsMem {
    #[allow(dead_code)]
    paths: Vec<CString>,
    stat: Option<Box<libc::statx>>,
}

impl FsMem {
    /// A successful `statx`'s status, as compared.
    pub(crate) fn stat(&self) -> Option<String> {
        self.stat
            .as_ref()
            .map(|s| render_stat(u32::from(s.stx_mode), s.stx_size, u64::from(s.stx_nlink)))
    }
}

/// A path as the kernel takes it: NUL-terminated.
fn c_path(p: &Path) -> Result<CString, RunError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        RunError::Invalid(format!(
            "{}: io_uring takes no path with a NUL inside",
            p.display()
        ))
    })
}

/// io_uring's entry for a file-system opcode.
pub(crate) fn translate(op: &Op, fds: &Fds) -> Result<(squeue::Entry, FsMem), RunError> {
    let mut paths = Vec::new();
    let mut path = |p: &Path| -> Result<*const libc::c_char, RunError> {
        let c = c_path(p)?;
        // The CString's heap buffer stays where it is when the CString
        // moves into `paths`.
        let ptr = c.as_ptr();
        paths.push(c);
        Ok(ptr)
    };
    let mut stat = None;
    let sqe = match op {
        Op::OpenAt {
            dir,
            path: p,
            oflags,
            mode,
            file_index,
            as_: _,
        } => {
            let open = opcode::OpenAt::new(Fd(fds.get(dir)?), path(p)?)
                .flags(oflags.0)
                .mode(mode.0 as libc::mode_t);
            match file_index {
                Some(slot) => open.file_index(Some(destination(*slot)?)),
                None => open,
            }
            .build()
        }
        Op::Statx {
            dir,
            path: p,
            no_follow,
        } => {
            let mut flags = if *no_follow {
                libc::AT_SYMLINK_NOFOLLOW
            } else {
                0
            };
            let name = match p {
                Some(p) => path(p)?,
                None => {
                    flags |= libc::AT_EMPTY_PATH;
                    path(Path::new(""))?
                }
            };
            // SAFETY: statx is plain data; all-zero is valid.
            let mut buf: Box<libc::statx> = Box::new(unsafe { std::mem::zeroed() });
            let ptr = (&raw mut *buf).cast::<types::statx>();
            stat = Some(buf);
            opcode::Statx::new(Fd(fds.get(dir)?), name, ptr)
                .flags(flags)
                .mask(libc::STATX_BASIC_STATS)
                .build()
        }
        Op::Fsync { fd, datasync } => {
            let flags = if *datasync {
                FsyncFlags::DATASYNC
            } else {
                FsyncFlags::empty()
            };
            on_file!(fds, fd, |f| opcode::Fsync::new(f).flags(flags).build())
        }
        Op::Fallocate {
            fd,
            off,
            len,
            keep_size,
            punch_hole,
        } => {
            let mode = fallocate_flags(*keep_size, *punch_hole).bits() as i32;
            on_file!(fds, fd, |f| opcode::Fallocate::new(f, *len)
                .offset(*off)
                .mode(mode)
                .build())
        }
        Op::Ftruncate { fd, len } => {
            on_file!(fds, fd, |f| opcode::Ftruncate::new(f, *len).build())
        }
        Op::Fadvise {
            fd,
            off,
            len,
            advice,
        } => on_file!(fds, fd, |f| opcode::Fadvise::new(
            f,
            libc::off_t::from(*len),
            advice.raw()
        )
        .offset(*off)
        .build()),
        Op::UnlinkAt {
            dir,
            path: p,
            remove_dir,
        } => opcode::UnlinkAt::new(Fd(fds.get(dir)?), path(p)?)
            .flags(if *remove_dir { libc::AT_REMOVEDIR } else { 0 })
            .build(),
        Op::RenameAt {
            dir,
            from,
            to,
            to_dir,
            noreplace,
            exchange,
        } => {
            let to_dir = fds.get(to_dir.as_ref().unwrap_or(dir))?;
            let (from, to) = (path(from)?, path(to)?);
            opcode::RenameAt::new(Fd(fds.get(dir)?), from, Fd(to_dir), to)
                .flags(rename_flags(*noreplace, *exchange).bits())
                .build()
        }
        Op::MkdirAt { dir, path: p, mode } => opcode::MkDirAt::new(Fd(fds.get(dir)?), path(p)?)
            .mode(mode.0 as libc::mode_t)
            .build(),
        Op::SymlinkAt {
            target,
            dir,
            path: p,
        } => {
            let (target, link) = (path(target)?, path(p)?);
            opcode::SymlinkAt::new(Fd(fds.get(dir)?), target, link).build()
        }
        Op::LinkAt {
            dir,
            from,
            to,
            follow,
        } => {
            let d = fds.get(dir)?;
            let (from, to) = (path(from)?, path(to)?);
            opcode::LinkAt::new(Fd(d), from, Fd(d), to)
                .flags(if *follow { libc::AT_SYMLINK_FOLLOW } else { 0 })
                .build()
        }
        other => {
            return Err(RunError::Invalid(format!(
                "{} is no file-system opcode",
                other.keyword()
            )));
        }
    };
    Ok((sqe, FsMem { paths, stat }))
}
