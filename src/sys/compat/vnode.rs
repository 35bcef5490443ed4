//! EVFILT_VNODE over one inotify instance per kqueue.
//!
//! kqueue watches the file a descriptor refers to; inotify watches paths.
//! The compat hands inotify the descriptor's `/proc/self/fd/N` link, which
//! the kernel resolves to the open file itself, so the watch lands on the
//! right inode even after a rename or an unlink (a `readlink` of the same
//! link would give a path that may no longer exist). inotify keys watches
//! by inode: several descriptors of one file share one watch descriptor,
//! whose mask grows with each (`IN_MASK_ADD`) and which is removed with the
//! last of them.
//!
//! inotify reports operations, kqueue reports what they did to the file,
//! so each inotify event is read together with a fresh `fstat` of the
//! descriptor (which also tells a closed or replaced descriptor, whose
//! registration kqueue would have dropped at close):
//!
//! | kqueue | from |
//! |---|---|
//! | `NOTE_WRITE` | `IN_MODIFY`; on a directory, an entry created, deleted or moved |
//! | `NOTE_EXTEND` | the size grew since the last event |
//! | `NOTE_ATTRIB` | `IN_ATTRIB` with the link count unchanged; `IN_MODIFY` that shrank the file (a truncation, which FreeBSD reports as an attribute change) |
//! | `NOTE_LINK` | the link count went up; on a directory, a subdirectory created, removed or moved |
//! | `NOTE_DELETE` | the link count went down (FreeBSD reports every `unlink` of the file, whatever links remain; while our descriptor is open Linux sends `IN_ATTRIB` for it, not `IN_DELETE_SELF`) |
//! | `NOTE_RENAME` | `IN_MOVE_SELF` |
//!
//! Only the bits the registration asked for are reported. They accumulate
//! until delivered; without `EV_CLEAR` they stay and are reported by every
//! call, as filt_vnode does.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use libc::c_int;

use super::filter::{Ops, Report, Shared, Source};
use super::os::{self, Errno};
use super::{Key, Registration, TOKEN_VNODE};
use crate::sys::{Change, Filter, Flags, note};

/// EVFILT_VNODE in the registry: the ident is a descriptor.
pub(super) const OPS: Ops = Ops::of::<Vnode>(Filter::VNODE, true);

/// Directory events: an entry was created, deleted, or moved in or out.
const ENTRIES: u32 = libc::IN_CREATE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

/// The inotify events needed to see the notes of `fflags`.
fn mask_for(fflags: u32) -> u32 {
    // Always asked for: a watch needs a non-empty mask, and this one is
    // rare (it comes once the file is gone and closed).
    let mut mask = libc::IN_DELETE_SELF;
    if fflags & (note::WRITE | note::EXTEND | note::ATTRIB) != 0 {
        mask |= libc::IN_MODIFY;
    }
    if fflags & (note::WRITE | note::EXTEND | note::LINK) != 0 {
        mask |= ENTRIES;
    }
    if fflags & (note::ATTRIB | note::LINK | note::DELETE) != 0 {
        mask |= libc::IN_ATTRIB;
    }
    if fflags & note::RENAME != 0 {
        mask |= libc::IN_MOVE_SELF;
    }
    mask
}

/// The kqueue's inotify instance and which registrations each watch
/// serves.
#[derive(Debug)]
pub(super) struct Inotify {
    fd: OwnedFd,
    /// Watch descriptor → the idents (descriptors) of the VNODE
    /// registrations on that inode.
    watches: HashMap<c_int, Vec<usize>>,
}

impl Inotify {
    /// Creates the instance and puts it in the sources epoll under `token`.
    fn new(sources: RawFd, token: u64) -> Result<Inotify, Errno> {
        let fd = os::inotify_init()?;
        os::epoll_ctl(
            sources,
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            token,
        )?;
        Ok(Inotify {
            fd,
            watches: HashMap::new(),
        })
    }

    /// Watches the file open at `fd` for `fflags`, on behalf of the
    /// registration `ident`.
    fn watch(&mut self, ident: usize, fd: RawFd, fflags: u32) -> Result<c_int, Errno> {
        let wd = os::inotify_watch_fd(
            self.fd.as_raw_fd(),
            fd,
            mask_for(fflags) | libc::IN_MASK_ADD,
        )?;
        let idents = self.watches.entry(wd).or_default();
        if !idents.contains(&ident) {
            idents.push(ident);
        }
        Ok(wd)
    }

    /// Drops `ident` from a watch, and the watch with its last user.
    fn unwatch(&mut self, wd: c_int, ident: usize) {
        let Some(idents) = self.watches.get_mut(&wd) else {
            return;
        };
        idents.retain(|&i| i != ident);
        if idents.is_empty() {
            self.watches.remove(&wd);
            os::inotify_rm_watch(self.fd.as_raw_fd(), wd);
        }
    }

    /// Reads every queued inotify event and calls `observe(ident, mask)`
    /// for each registration it concerns (all of them after a queue
    /// overflow). Returns the idents for which `observe` said the
    /// registration is stale.
    pub(super) fn read(&mut self, mut observe: impl FnMut(usize, u32) -> bool) -> Vec<usize> {
        let mut stale = Vec::new();
        // Large enough for any event (16 bytes and a NAME_MAX name).
        let mut buf = [0u8; 4096];
        while let Ok(n) = os::read(self.fd.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            let mut at = 0;
            while let Some((wd, mask, len)) = parse(&buf[..n], at) {
                at += 16 + len;
                if mask & libc::IN_Q_OVERFLOW != 0 {
                    for &ident in self.watches.values().flatten() {
                        if !observe(ident, mask) {
                            stale.push(ident);
                        }
                    }
                } else if let Some(idents) = self.watches.get(&wd) {
                    for &ident in idents {
                        if !observe(ident, mask) {
                            stale.push(ident);
                        }
                    }
                }
                if mask & libc::IN_IGNORED != 0 {
                    // The kernel removed the watch (the inode is gone, or
                    // its file system was unmounted).
                    self.watches.remove(&wd);
                }
            }
        }
        stale
    }
}

/// The `struct inotify_event` header at `at`: (wd, mask, name length).
fn parse(buf: &[u8], at: usize) -> Option<(c_int, u32, usize)> {
    let header = buf.get(at..at.checked_add(16)?)?;
    let word = |i: usize| -> Option<[u8; 4]> { header.get(i..i + 4)?.try_into().ok() };
    let wd = c_int::from_ne_bytes(word(0)?);
    let mask = u32::from_ne_bytes(word(4)?);
    let len = u32::from_ne_bytes(word(12)?) as usize;
    Some((wd, mask, len))
}

/// The filter state of one EVFILT_VNODE registration.
#[derive(Debug)]
pub(super) struct Vnode {
    wd: c_int,
    dev: u64,
    ino: u64,
    is_dir: bool,
    /// Size and link count at the last look, to tell `NOTE_EXTEND`,
    /// `NOTE_LINK` and `NOTE_DELETE`.
    size: i64,
    nlink: libc::nlink_t,
    /// Notes seen and not delivered yet.
    fired: u32,
}

impl Vnode {
    /// Watches the file open at `fd`. Sockets, pipes and the like have no
    /// vnode filter in kqueue: EINVAL.
    fn watch(inotify: &mut Inotify, ident: usize, fd: RawFd, fflags: u32) -> Result<Vnode, Errno> {
        let st = os::fstat(fd)?;
        let kind = st.st_mode & libc::S_IFMT;
        if ![
            libc::S_IFREG,
            libc::S_IFDIR,
            libc::S_IFLNK,
            libc::S_IFCHR,
            libc::S_IFBLK,
        ]
        .contains(&kind)
        {
            return Err(Errno::EINVAL);
        }
        let wd = inotify.watch(ident, fd, fflags)?;
        Ok(Vnode {
            wd,
            dev: st.st_dev,
            ino: st.st_ino,
            is_dir: kind == libc::S_IFDIR,
            size: st.st_size,
            nlink: st.st_nlink,
            fired: 0,
        })
    }

    /// EBADF once the descriptor is closed, ENOENT once its number names
    /// another file.
    fn same_file(&self, fd: RawFd) -> Result<(), Errno> {
        let st = os::fstat(fd)?;
        if (st.st_dev, st.st_ino) == (self.dev, self.ino) {
            Ok(())
        } else {
            Err(Errno::ENOENT)
        }
    }

    /// A modification asking for (possibly) more notes: widens the watch.
    fn rewatch(&mut self, inotify: &mut Inotify, ident: usize, fflags: u32) -> Result<(), Errno> {
        let fd = RawFd::try_from(ident).map_err(|_| Errno::EBADF)?;
        let wd = inotify.watch(ident, fd, fflags)?;
        if wd != self.wd {
            // The old watch was removed by the kernel in the meantime.
            inotify.unwatch(self.wd, ident);
            self.wd = wd;
        }
        Ok(())
    }

    /// The notes (among `want`) an inotify event `mask` stands for; `None`
    /// when the descriptor is closed or names another file.
    fn observe(&mut self, ident: usize, mask: u32, want: u32) -> Option<u32> {
        let fd = RawFd::try_from(ident).ok()?;
        let st = os::fstat(fd).ok()?;
        if (st.st_dev, st.st_ino) != (self.dev, self.ino) {
            return None;
        }
        let bits = self.notes(mask, st.st_size, st.st_nlink);
        self.size = st.st_size;
        self.nlink = st.st_nlink;
        Some(bits & want)
    }

    /// The mapping itself, from the event and the file's new size and link
    /// count. After a queue overflow (events lost) only the differences
    /// tell.
    fn notes(&self, mask: u32, size: i64, nlink: libc::nlink_t) -> u32 {
        let overflow = mask & libc::IN_Q_OVERFLOW != 0;
        let mut bits = 0;
        let modified = mask & libc::IN_MODIFY != 0 || (overflow && size != self.size);
        if modified {
            bits |= if size < self.size {
                note::ATTRIB
            } else {
                note::WRITE
            };
        }
        if mask & ENTRIES != 0 {
            bits |= note::WRITE;
            if mask & libc::IN_ISDIR != 0 {
                bits |= note::LINK;
            }
        }
        if size > self.size && (modified || mask & ENTRIES != 0) {
            bits |= note::EXTEND;
        }
        if mask & libc::IN_ATTRIB != 0 || (overflow && nlink != self.nlink) {
            bits |= if nlink < self.nlink {
                if self.is_dir && nlink > 0 {
                    note::LINK
                } else {
                    note::DELETE
                }
            } else if nlink > self.nlink {
                note::LINK
            } else {
                note::ATTRIB
            };
        }
        if mask & libc::IN_DELETE_SELF != 0 {
            bits |= note::DELETE;
        }
        if mask & libc::IN_MOVE_SELF != 0 {
            bits |= note::RENAME;
        }
        bits
    }
}

impl Source for Vnode {
    fn attach(shared: &mut Shared, key: Key, change: &Change) -> Result<Vnode, Errno> {
        let fd = RawFd::try_from(key.0).map_err(|_| Errno::EBADF)?;
        let sources = shared.sources;
        let inotify = match &mut shared.inotify {
            Some(inotify) => inotify,
            slot @ None => slot.insert(Inotify::new(sources, TOKEN_VNODE)?),
        };
        Vnode::watch(inotify, key.0, fd, change.get_fflags())
    }

    fn modify(
        &mut self,
        shared: &mut Shared,
        key: Key,
        reg: &mut Registration,
        change: &Change,
    ) -> Result<(), Errno> {
        reg.modify(change, true);
        match &mut shared.inotify {
            Some(inotify) => self.rewatch(inotify, key.0, change.get_fflags()),
            None => Ok(()),
        }
    }

    /// The notes recorded. Without EV_CLEAR they stay recorded and are
    /// reported on every call, as filt_vnode does.
    fn report(&mut self, reg: &Registration) -> Report {
        if self.fired == 0 {
            return Report::Nothing;
        }
        let fflags = self.fired;
        if reg.flags.contains(Flags::CLEAR) {
            self.fired = 0;
        }
        Report::event(fflags, 0)
    }

    fn detach(self: Box<Self>, shared: &mut Shared, key: Key, _: bool) {
        if let Some(inotify) = &mut shared.inotify {
            inotify.unwatch(self.wd, key.0);
        }
    }

    fn holds_event(&self) -> bool {
        self.fired != 0
    }

    /// Records the notes an inotify event (`hint`, its mask) stands for.
    fn notify(&mut self, ident: usize, reg: &Registration, hint: u32) -> bool {
        match self.observe(ident, hint, reg.fflags) {
            // The descriptor was closed (or now names another file):
            // kqueue would have dropped the knote at close().
            None => false,
            Some(bits) => {
                self.fired |= bits;
                true
            }
        }
    }

    fn gone(&self, fd: RawFd) -> Option<Errno> {
        self.same_file(fd).err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: i64, nlink: libc::nlink_t, is_dir: bool) -> Vnode {
        Vnode {
            wd: 1,
            dev: 0,
            ino: 0,
            is_dir,
            size,
            nlink,
            fired: 0,
        }
    }

    #[test]
    fn notes_from_events() {
        let f = file(10, 1, false);
        assert_eq!(f.notes(libc::IN_MODIFY, 10, 1), note::WRITE);
        assert_eq!(f.notes(libc::IN_MODIFY, 12, 1), note::WRITE | note::EXTEND);
        assert_eq!(f.notes(libc::IN_MODIFY, 0, 1), note::ATTRIB);
        assert_eq!(f.notes(libc::IN_ATTRIB, 10, 1), note::ATTRIB);
        assert_eq!(f.notes(libc::IN_ATTRIB, 10, 2), note::LINK);
        assert_eq!(f.notes(libc::IN_ATTRIB, 10, 0), note::DELETE);
        assert_eq!(
            file(10, 2, false).notes(libc::IN_ATTRIB, 10, 1),
            note::DELETE
        );
        assert_eq!(f.notes(libc::IN_MOVE_SELF, 10, 1), note::RENAME);
        assert_eq!(f.notes(libc::IN_DELETE_SELF, 10, 0), note::DELETE);
        assert_eq!(f.notes(libc::IN_Q_OVERFLOW, 10, 1), 0);
        assert_eq!(
            f.notes(libc::IN_Q_OVERFLOW, 11, 2),
            note::WRITE | note::EXTEND | note::LINK
        );
    }

    #[test]
    fn notes_of_directories() {
        let d = file(60, 3, true);
        assert_eq!(d.notes(libc::IN_CREATE, 60, 3), note::WRITE);
        assert_eq!(
            d.notes(libc::IN_CREATE | libc::IN_ISDIR, 80, 4),
            note::WRITE | note::LINK | note::EXTEND
        );
        assert_eq!(
            d.notes(libc::IN_DELETE | libc::IN_ISDIR, 60, 2),
            note::WRITE | note::LINK
        );
        assert_eq!(d.notes(libc::IN_ATTRIB, 60, 2), note::LINK);
        assert_eq!(d.notes(libc::IN_ATTRIB, 60, 0), note::DELETE);
    }

    #[test]
    fn masks() {
        assert_eq!(mask_for(0), libc::IN_DELETE_SELF);
        assert_eq!(
            mask_for(note::RENAME),
            libc::IN_DELETE_SELF | libc::IN_MOVE_SELF
        );
        assert_eq!(
            mask_for(note::DELETE),
            libc::IN_DELETE_SELF | libc::IN_ATTRIB
        );
        assert_eq!(
            mask_for(note::WRITE),
            libc::IN_DELETE_SELF | libc::IN_MODIFY | ENTRIES
        );
    }

    #[test]
    fn parses_headers() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&7i32.to_ne_bytes());
        buf.extend_from_slice(&libc::IN_MODIFY.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&16u32.to_ne_bytes());
        buf.extend_from_slice(&[0; 16]);
        assert_eq!(parse(&buf, 0), Some((7, libc::IN_MODIFY, 16)));
        assert_eq!(parse(&buf, 32), None);
        assert_eq!(parse(&buf[..10], 0), None);
    }
}
