//! Registrations on files epoll refuses.
//!
//! Regular files and directories cannot be in an epoll (EPERM). kqueue's
//! vnode filters treat them as always writable and readable while the
//! offset is before the end; the compat evaluates such registrations before
//! each wait instead (fstat and lseek), through the pending queue.

use std::os::fd::RawFd;

use super::{FILTERS, READ, Readiness, WRITE};
use crate::sys::compat::Key;
use crate::sys::compat::os::{self, Errno};
use crate::sys::compat::queue::{Out, Pending};
use crate::sys::compat::registration::After;
use crate::sys::{Filter, Flags};

/// A regular file (or another file epoll refuses), evaluated before each
/// wait.
#[derive(Debug)]
pub(super) struct File {
    dev: u64,
    ino: u64,
    regular: bool,
    /// In the pending queue, with `data` to report.
    pub(super) queued: bool,
    data: i64,
    /// The `data` last reported, for `EV_CLEAR`.
    last: Option<i64>,
}

impl File {
    pub(super) fn open(fd: RawFd) -> Result<File, Errno> {
        let st = os::fstat(fd)?;
        Ok(File {
            dev: st.st_dev,
            ino: st.st_ino,
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
            queued: false,
            data: 0,
            last: None,
        })
    }

    /// EBADF once the descriptor is closed, ENOENT once its number names
    /// another file: either way kqueue would have dropped the knote.
    pub(super) fn check(&self, fd: RawFd) -> Result<libc::stat, Errno> {
        let st = os::fstat(fd)?;
        if (st.st_dev, st.st_ino) == (self.dev, self.ino) {
            Ok(st)
        } else {
            Err(Errno::ENOENT)
        }
    }

    /// kqueue's vnode filters: readable while the offset is not at the end
    /// (`data` = size - offset), always writable (`data` 0). `None`: not
    /// ready.
    fn evaluate(&self, fd: RawFd, dir: usize) -> Result<Option<i64>, Errno> {
        let st = self.check(fd)?;
        if dir == WRITE || !self.regular {
            return Ok(Some(0));
        }
        let left = st.st_size - os::offset(fd)?;
        Ok((left != 0).then_some(left))
    }
}

impl Readiness {
    /// Drops the file registration (`fd`, `dir`) from the list evaluated
    /// before each wait, and from the pending queue.
    pub(super) fn forget_file(
        &mut self,
        fd: RawFd,
        dir: usize,
        queued: bool,
        pending: &mut Pending,
    ) {
        self.files.retain(|&entry| entry != (fd, dir));
        if queued {
            pending.remove((fd as usize, FILTERS[dir]));
        }
    }

    /// Evaluates the file registrations before a wait, queueing those that
    /// are ready. A file whose descriptor was closed or replaced loses its
    /// registration, as kqueue's would at close().
    pub(in crate::sys::compat) fn poll_files(&mut self, pending: &mut Pending) {
        let mut i = 0;
        while i < self.files.len() {
            let (fd, dir) = self.files[i];
            let Some(side) = self.side_mut(fd, dir) else {
                self.files.swap_remove(i);
                continue;
            };
            let Some(knote) = side.knote.as_mut() else {
                self.files.swap_remove(i);
                continue;
            };
            let Some(file) = knote.file.as_mut() else {
                self.files.swap_remove(i);
                continue;
            };
            if !knote.reg.enabled || file.queued {
                i += 1;
                continue;
            }
            match file.evaluate(fd, dir) {
                Err(_) => {
                    side.knote = None;
                    self.files.swap_remove(i);
                    continue;
                }
                // EV_CLEAR: report again only once the count has changed
                // (kqueue waits for the next write to the file).
                Ok(Some(data))
                    if !(knote.reg.flags.contains(Flags::CLEAR) && file.last == Some(data)) =>
                {
                    file.data = data;
                    file.queued = true;
                    pending.push((fd as usize, FILTERS[dir]));
                }
                Ok(_) => {}
            }
            i += 1;
        }
    }

    /// Delivers a queued file registration.
    pub(in crate::sys::compat) fn deliver_file(&mut self, key: Key, out: &mut Out<'_>) {
        let dir = if key.1 == Filter::WRITE { WRITE } else { READ };
        let Ok(fd) = RawFd::try_from(key.0) else {
            return;
        };
        let Some(side) = self.side_mut(fd, dir) else {
            return;
        };
        let Some(knote) = side.knote.as_mut() else {
            return;
        };
        let Some(file) = knote.file.as_mut() else {
            return;
        };
        if !std::mem::take(&mut file.queued) || !knote.reg.enabled {
            return;
        }
        let (event, after) = knote.reg.event(key, Flags::NONE, 0, file.data);
        out.push(event);
        file.last = Some(file.data);
        match after {
            After::Keep => {}
            After::Disable => knote.reg.enabled = false,
            After::Delete => {
                side.knote = None;
                self.files.retain(|&entry| entry != (fd, dir));
            }
        }
    }
}
