//! The file table: registered files, and the descriptors the ring owns.
//!
//! A slot holds a descriptor of the ring's own: a duplicate of one given
//! to `FilesUpdate` (io_uring takes a reference on the file; a duplicate
//! is a reference to the same open file) or one made by a direct `Accept`
//! or `Socket`. An operation on a slot resolves it when it starts and
//! holds the descriptor until it completes, as io_uring's request holds
//! its file: emptying or replacing the slot meanwhile doesn't close the
//! file under it. A descriptor in no slot and held by no operation is
//! handed back to the driver to close, once it has deleted the
//! descriptor's registrations.
//!
//! Slot allocation follows io_uring's bitmap: the search starts at a
//! hint, which moves past each free slot taken and back to each slot
//! freed.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::fdmap::FdMap;
use crate::ops::{FileSlot, FilesUpdate};
use crate::sys::errno::Errno;

/// A descriptor the ring owns.
#[derive(Debug)]
struct Owned {
    fd: OwnedFd,
    /// It is in a slot.
    in_table: bool,
    /// Operations holding it.
    holds: u32,
    /// Which installation put it in its slot: a slot emptied and filled
    /// again holds another, even under the same number.
    stamp: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Files {
    /// `None`: the ring has no table.
    slots: Option<Vec<Option<RawFd>>>,
    alloc_hint: usize,
    /// Indexed by descriptor number: looked up twice per operation.
    owned: FdMap<Option<Owned>>,
    /// Installations so far.
    installs: u64,
}

impl Files {
    /// A table of `n` empty slots; none when `n` is 0.
    pub(crate) fn new(n: u32) -> Files {
        Files {
            slots: (n > 0).then(|| vec![None; n as usize]),
            ..Files::default()
        }
    }

    /// Whether the ring owns `fd`.
    pub(crate) fn owns(&self, fd: RawFd) -> bool {
        self.owned.get(fd).is_some_and(Option::is_some)
    }

    fn owned_mut(&mut self, fd: RawFd) -> Option<&mut Owned> {
        self.owned.get_mut(fd).and_then(Option::as_mut)
    }

    /// The descriptor in slot `index`, now held by an operation until it
    /// calls [`Files::release`]; `-EBADF` for an empty slot, one past the
    /// table, or no table, as io_uring answers.
    pub(crate) fn hold(&mut self, index: u32) -> Result<RawFd, Errno> {
        let fd = self.lookup(index)?;
        if let Some(o) = self.owned_mut(fd) {
            o.holds += 1;
        }
        Ok(fd)
    }

    /// The descriptor in slot `index`, not held (a cancel by slot);
    /// `-EBADF` as for [`Files::hold`].
    pub(crate) fn lookup(&self, index: u32) -> Result<RawFd, Errno> {
        self.slots
            .as_ref()
            .and_then(|s| s.get(index as usize).copied().flatten())
            .ok_or(Errno::EBADF)
    }

    /// The stamp of the installation that filled slot `index`: the same
    /// as long as that file stays there; `None` for an empty slot.
    pub(crate) fn stamp(&self, index: u32) -> Option<u64> {
        let fd = self.lookup(index).ok()?;
        self.owned.get(fd)?.as_ref().map(|o| o.stamp)
    }

    /// An operation is done with `fd`. Returns the descriptor if that was
    /// its last use: the caller deletes its registrations, then closes it.
    #[must_use]
    pub(crate) fn release(&mut self, fd: RawFd) -> Option<OwnedFd> {
        let o = self.owned_mut(fd)?;
        o.holds = o.holds.saturating_sub(1);
        self.retire_if_unused(fd)
    }

    fn retire_if_unused(&mut self, fd: RawFd) -> Option<OwnedFd> {
        let slot = self.owned.get_mut(fd)?;
        if slot.as_ref().is_some_and(|o| !o.in_table && o.holds == 0) {
            return slot.take().map(|o| o.fd);
        }
        None
    }

    /// Puts `fd` (the ring's from now on) into the table. Returns the
    /// `res` of the operation that made it — 0, or the slot `Alloc`
    /// chose — and a descriptor the slot held before if that was its last
    /// use. On failure `fd` is closed.
    pub(crate) fn install(
        &mut self,
        slot: FileSlot,
        fd: OwnedFd,
    ) -> Result<(i32, Option<OwnedFd>), Errno> {
        use std::os::fd::AsRawFd;
        let Some(slots) = self.slots.as_mut() else {
            // io_uring looks for a free slot before it looks for a table.
            return Err(Errno::new(if slot == FileSlot::Alloc {
                libc::ENFILE
            } else {
                libc::ENXIO
            }));
        };
        let (index, res) = match slot {
            FileSlot::Index(i) if (i as usize) < slots.len() => (i as usize, 0),
            FileSlot::Index(_) => return Err(Errno::EINVAL),
            FileSlot::Alloc => {
                let i = free_slot(slots, self.alloc_hint).ok_or(Errno::new(libc::ENFILE))?;
                (i, i as i32)
            }
        };
        let raw = fd.as_raw_fd();
        let old = slots[index].replace(raw);
        // As io_uring's bitmap: taking a free slot moves the hint past it;
        // replacing a file leaves it.
        if old.is_none() {
            self.alloc_hint = index + 1;
        }
        // A number the table owns is open, so `raw` is not one of them.
        self.installs += 1;
        if let Some(slot) = self.owned.entry(raw) {
            *slot = Some(Owned {
                fd,
                in_table: true,
                holds: 0,
                stamp: self.installs,
            });
        }
        Ok((res, old.and_then(|old| self.leave_table(old))))
    }

    /// Empties slot `index` (a `Close` of a slot). Returns the descriptor
    /// it held if that was its last use.
    pub(crate) fn remove(&mut self, index: u32) -> Result<Option<OwnedFd>, Errno> {
        let Some(slots) = self.slots.as_mut() else {
            return Err(Errno::new(libc::ENXIO));
        };
        let slot = slots.get_mut(index as usize).ok_or(Errno::EINVAL)?;
        let fd = slot.take().ok_or(Errno::EBADF)?;
        self.alloc_hint = index as usize;
        Ok(self.leave_table(fd))
    }

    fn leave_table(&mut self, fd: RawFd) -> Option<OwnedFd> {
        if let Some(o) = self.owned_mut(fd) {
            o.in_table = false;
        }
        self.retire_if_unused(fd)
    }

    /// Runs a `FilesUpdate`: its `res`, and the descriptors whose last use
    /// it ended, for the caller to retire. Each descriptor given is
    /// duplicated (close-on-exec); the caller's stays theirs.
    pub(crate) fn update(&mut self, op: &mut FilesUpdate, retired: &mut Vec<OwnedFd>) -> i32 {
        let fds = &mut op.fds;
        if fds.is_empty() {
            return -libc::EINVAL;
        }
        let Some(len) = self.slots.as_ref().map(Vec::len) else {
            return -libc::ENXIO;
        };
        if let FileSlot::Index(off) = op.slot
            && off as usize + fds.len() > len
        {
            return -libc::EINVAL;
        }
        let mut done = 0;
        for (i, fd) in fds.iter_mut().enumerate() {
            let step = match op.slot {
                FileSlot::Index(off) => self.update_one(off as usize + i, *fd, retired),
                FileSlot::Alloc => match dup(*fd) {
                    Err(e) => Err(e),
                    Ok(copy) => self.install(FileSlot::Alloc, copy).map(|(slot, old)| {
                        retired.extend(old);
                        *fd = slot;
                    }),
                },
            };
            if let Err(e) = step {
                return if done > 0 { done } else { e.res() };
            }
            done += 1;
        }
        done
    }

    /// Puts `fd` into slot `index`: -1 empties it, `SKIP` leaves it. As
    /// in io_uring, the slot is emptied before `fd` is looked at, so a bad
    /// descriptor leaves it empty.
    fn update_one(
        &mut self,
        index: usize,
        fd: RawFd,
        retired: &mut Vec<OwnedFd>,
    ) -> Result<(), Errno> {
        if fd == FilesUpdate::SKIP {
            return Ok(());
        }
        // An empty slot emptied again is no error.
        if let Ok(Some(old)) = self.remove(index as u32) {
            retired.push(old);
        }
        if fd == -1 {
            return Ok(());
        }
        let (_, old) = self.install(FileSlot::Index(index as u32), dup(fd)?)?;
        retired.extend(old);
        Ok(())
    }

    /// Takes every descriptor, for shutdown (no operation is left).
    pub(crate) fn take_all(&mut self) -> Vec<OwnedFd> {
        if let Some(slots) = self.slots.as_mut() {
            slots.fill(None);
        }
        self.owned
            .iter_mut()
            .filter_map(|(_, slot)| slot.take().map(|o| o.fd))
            .collect()
    }
}

/// The first free slot from `hint` on, then from the start.
fn free_slot(slots: &[Option<RawFd>], hint: usize) -> Option<usize> {
    let hint = hint.min(slots.len());
    (hint..slots.len())
        .chain(0..hint)
        .find(|&i| slots[i].is_none())
}

/// A close-on-exec duplicate of `fd`; `-EBADF` if it is not open.
pub(crate) fn dup(fd: RawFd) -> Result<OwnedFd, Errno> {
    if fd < 0 {
        return Err(Errno::EBADF);
    }
    // SAFETY: F_DUPFD_CLOEXEC takes an integer and reads no memory.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `copy` is a descriptor just made here, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn descriptor() -> OwnedFd {
        let (r, _w) = std::io::pipe().expect("pipe");
        r.into()
    }

    #[test]
    fn without_a_table_nothing_resolves_or_installs() {
        let mut f = Files::new(0);
        assert_eq!(f.hold(0), Err(Errno::EBADF));
        assert_eq!(f.remove(0).err(), Some(Errno::new(libc::ENXIO)));
        let at = f.install(FileSlot::Index(0), descriptor());
        assert_eq!(at.err(), Some(Errno::new(libc::ENXIO)));
        let any = f.install(FileSlot::Alloc, descriptor());
        assert_eq!(any.err(), Some(Errno::new(libc::ENFILE)));
    }

    #[test]
    fn a_held_descriptor_outlives_its_slot() {
        let mut f = Files::new(2);
        let (res, old) = f.install(FileSlot::Alloc, descriptor()).unwrap();
        assert_eq!((res, old.is_none()), (0, true));
        let fd = f.hold(0).unwrap();
        assert!(f.owns(fd));
        // Emptied while an operation holds it: kept until the release.
        assert!(f.remove(0).unwrap().is_none());
        assert_eq!(f.hold(0), Err(Errno::EBADF));
        let last = f.release(fd).expect("the last use hands it back");
        assert_eq!(last.as_raw_fd(), fd);
        assert!(!f.owns(fd));
        // Replacing an unheld file hands the old one back at once.
        f.install(FileSlot::Index(1), descriptor()).unwrap();
        let (res, old) = f.install(FileSlot::Index(1), descriptor()).unwrap();
        assert_eq!((res, old.is_some()), (0, true));
        assert_eq!(f.take_all().len(), 1);
    }

    #[test]
    fn allocation_follows_the_hint() {
        let mut f = Files::new(3);
        let alloc = |f: &mut Files| f.install(FileSlot::Alloc, descriptor()).map(|(s, _)| s);
        assert_eq!(alloc(&mut f), Ok(0));
        assert_eq!(alloc(&mut f), Ok(1));
        // A freed slot is where the next search starts.
        assert!(f.remove(0).unwrap().is_some());
        assert_eq!(alloc(&mut f), Ok(0));
        // Replacing slot 0 leaves the hint past it; filling the empty slot
        // 2 moves it on; then the search wraps and finds nothing.
        f.install(FileSlot::Index(0), descriptor()).unwrap();
        assert_eq!(alloc(&mut f), Ok(2));
        assert_eq!(alloc(&mut f), Err(Errno::new(libc::ENFILE)));
        assert_eq!(
            f.install(FileSlot::Index(3), descriptor()).err(),
            Some(Errno::EINVAL)
        );
    }
}
