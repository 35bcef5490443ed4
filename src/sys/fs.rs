//! The file-system syscalls operations make: opening and naming files
//! relative to a directory descriptor, syncing, space, advice.
//!
//! Every function returns `Ok` or `Err(Errno)`, as the rest of `sys`. The
//! platforms differ here and nowhere above:
//!
//! | call | Linux | macOS | FreeBSD, DragonFly | NetBSD, OpenBSD |
//! |---|---|---|---|---|
//! | `fdatasync` | `fdatasync` | `fsync` (no `fdatasync` in its libc) | `fdatasync` | `fdatasync` |
//! | a full sync | `fsync` (which flushes the device's cache) | `fcntl(F_FULLFSYNC)` | `fsync` | `fsync` |
//! | `fallocate` | `fallocate`, every mode | `F_PREALLOCATE` (+ `ftruncate`), `F_PUNCHHOLE` | `posix_fallocate`, mode 0 only | `-EOPNOTSUPP` |
//! | rename flags | `renameat2` | `renameatx_np` (`RENAME_EXCL`, `RENAME_SWAP`) | `-EINVAL` | `-EINVAL` |
//! | `fadvise` | `posix_fadvise` | `-EOPNOTSUPP` | `posix_fadvise` | `-EOPNOTSUPP` |
//!
//! (`sys/stat.rs` has `statx` and its fallback.)

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::errno::{Errno, check, retry};

/// The directory descriptor that means "the current working directory"
/// (`AT_FDCWD`): paths of operations given no directory are relative to
/// it.
pub const AT_FDCWD: RawFd = libc::AT_FDCWD;

bitflags::bitflags! {
    /// How [`Fallocate`](crate::ops::Fallocate) changes a file's space:
    /// io_uring's `mode`, with Linux's `FALLOC_FL_*` values. None set:
    /// allocate the range, growing the file if it ends past the end.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct FallocateFlags: u32 {
        /// `FALLOC_FL_KEEP_SIZE`: allocate, but leave the file's size.
        const KEEP_SIZE = 0x01;
        /// `FALLOC_FL_PUNCH_HOLE` (with `KEEP_SIZE`): free the range; it
        /// reads as zeros.
        const PUNCH_HOLE = 0x02;
        /// `FALLOC_FL_ZERO_RANGE`: make the range read as zeros, allocated.
        const ZERO_RANGE = 0x10;
    }
}

bitflags::bitflags! {
    /// [`RenameAt`](crate::ops::RenameAt)'s flags, with Linux's
    /// `RENAME_*` values (io_uring's `rename_flags`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct RenameFlags: u32 {
        /// `RENAME_NOREPLACE`: fail with `-EEXIST` rather than replace the
        /// target.
        const NOREPLACE = 0x01;
        /// `RENAME_EXCHANGE`: swap the two names, which must both exist.
        const EXCHANGE = 0x02;
        /// `RENAME_WHITEOUT`: leave a whiteout where the source was
        /// (overlay file systems; Linux only).
        const WHITEOUT = 0x04;
    }
}

/// What a program tells the kernel about how it will read a file
/// ([`Fadvise`](crate::ops::Fadvise), `posix_fadvise`'s `POSIX_FADV_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Advice {
    /// No particular pattern (the default).
    Normal,
    /// Read in order: read ahead more.
    Sequential,
    /// Read at random: read ahead less.
    Random,
    /// Read once.
    NoReuse,
    /// Needed soon: start reading it in.
    WillNeed,
    /// Not needed soon: its cached pages may go.
    DontNeed,
}

/// What a program tells the kernel about a range of its memory
/// ([`Madvise`](crate::ops::Madvise), `madvise`'s `MADV_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MemoryAdvice {
    /// No particular pattern (the default).
    Normal,
    /// Used in order.
    Sequential,
    /// Used at random.
    Random,
    /// Needed soon: page it in.
    WillNeed,
    /// Not needed soon. On private anonymous memory this discards the
    /// contents (the pages read as zeros next).
    DontNeed,
}

/// A file offset or length as the kernel's signed `off_t`: a value past
/// `i64::MAX` turns negative, and the call refuses it, as io_uring's
/// `loff_t` does.
fn off(n: u64) -> libc::off_t {
    n as libc::off_t
}

/// `openat(dir, path, flags, mode)`: the new descriptor.
pub(crate) fn open_at(dir: RawFd, path: &CStr, flags: i32, mode: u32) -> Result<RawFd, Errno> {
    // SAFETY: `path` is NUL-terminated and lives across the call; the mode
    // is passed as the variadic `unsigned int` openat reads.
    retry(|| check(unsafe { libc::openat(dir, path.as_ptr(), flags, mode as libc::c_uint) }))
}

/// Opens `path` as [`open_at`] does, if that can be done without
/// blocking: `Some` with its outcome, or `None` when it would have to
/// wait (and `open_at` on a worker does it).
///
/// On Linux this is io_uring's own first try: `openat2` with
/// `RESOLVE_CACHED` (only a lookup the dentry cache answers) and
/// `O_NONBLOCK` (no wait for a FIFO's partner or a device), the flag then
/// taken off again unless asked for. An open that creates or truncates
/// does I/O, and is left to the worker, as io_uring leaves it. Elsewhere
/// there is no such call: always `None`.
pub(crate) fn open_cached(dir: RawFd, path: &CStr, flags: i32) -> Option<Result<RawFd, Errno>> {
    open_cached_impl(dir, path, flags)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_cached_impl(dir: RawFd, path: &CStr, flags: i32) -> Option<Result<RawFd, Errno>> {
    if flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE) != 0 || !OPENAT2.on() {
        return None;
    }
    // SAFETY: open_how is plain data; all-zero is "no flags, no mode".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_NONBLOCK) as u32 as u64;
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: `path` is NUL-terminated and `how` lives across the call,
    // its size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        return match Errno::last().raw() {
            // Not cached, or the device wants to wait: the worker opens.
            libc::EAGAIN => None,
            // No openat2 (or a flag it refuses, which openat ignores):
            // openat on the worker gives the answer.
            libc::ENOSYS | libc::E2BIG => {
                OPENAT2.turn_off();
                None
            }
            // A sandbox that refuses the call, or this file's own refusal
            // (`O_NOATIME` on another's file): the worker's openat answers
            // either way, and a probe tells which it was.
            libc::EPERM => {
                OPENAT2.refused(openat2_works);
                None
            }
            libc::EINVAL => None,
            e => Some(Err(Errno::new(e))),
        };
    }
    let fd = r as RawFd;
    if flags & libc::O_NONBLOCK == 0 {
        // F_SETFL sets only the status flags (O_APPEND, O_DIRECT…): the
        // caller's, without O_NONBLOCK.
        // SAFETY: F_SETFL takes an int.
        if let Err(e) = check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }) {
            // SAFETY: the descriptor was just made here.
            unsafe { libc::close(fd) };
            return Some(Err(e));
        }
    }
    Some(Ok(fd))
}

/// Whether `openat2` may be tried: on until the kernel or a sandbox is
/// seen to refuse the call itself.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Openat2(std::sync::atomic::AtomicU8);

#[cfg(any(target_os = "linux", target_os = "android"))]
static OPENAT2: Openat2 = Openat2::new();

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Openat2 {
    /// Not known yet whether an `EPERM` is the call's or the file's.
    const UNPROBED: u8 = 0;
    /// A probe opened: an `EPERM` is the file's.
    const WORKS: u8 = 1;
    /// The call is refused: openat on the worker from now on.
    const OFF: u8 = 2;

    const fn new() -> Openat2 {
        Openat2(std::sync::atomic::AtomicU8::new(Openat2::UNPROBED))
    }

    fn on(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) != Openat2::OFF
    }

    fn turn_off(&self) {
        self.0
            .store(Openat2::OFF, std::sync::atomic::Ordering::Relaxed);
    }

    /// A call failed `EPERM`: unless a probe has shown the call works, a
    /// probe (`works`) decides whether it stays on.
    fn refused(&self, works: impl FnOnce() -> bool) {
        use std::sync::atomic::Ordering;
        if self.0.load(Ordering::Relaxed) == Openat2::WORKS {
            return;
        }
        let state = if works() {
            Openat2::WORKS
        } else {
            Openat2::OFF
        };
        self.0.store(state, Ordering::Relaxed);
    }
}

/// Whether `openat2` opens what anyone may open (`/`, as a path only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_works() -> bool {
    // SAFETY: open_how is plain data; all-zero is "no flags, no mode".
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    // SAFETY: the path is NUL-terminated and `how` lives across the call,
    // its size given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c"/".as_ptr(),
            &raw const how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if r < 0 {
        return false;
    }
    // SAFETY: the descriptor was just made here.
    unsafe { libc::close(r as RawFd) };
    true
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn open_cached_impl(_dir: RawFd, _path: &CStr, _flags: i32) -> Option<Result<RawFd, Errno>> {
    None
}

/// Flushes `fd`'s data (`data_only`: and only the metadata needed to read
/// it back) to stable storage; `full` also asks the device to empty its
/// cache where that is a call of its own (macOS's `F_FULLFSYNC`).
pub(crate) fn sync(fd: RawFd, data_only: bool, full: bool) -> Result<(), Errno> {
    retry(|| check(sync_once(fd, data_only, full)).map(drop))
}

#[cfg(target_vendor = "apple")]
fn sync_once(fd: RawFd, _data_only: bool, full: bool) -> libc::c_int {
    // SAFETY: neither call takes a pointer. macOS's libc has no
    // fdatasync: fsync does more, never less.
    unsafe {
        if full {
            libc::fcntl(fd, libc::F_FULLFSYNC)
        } else {
            libc::fsync(fd)
        }
    }
}

#[cfg(not(target_vendor = "apple"))]
fn sync_once(fd: RawFd, data_only: bool, _full: bool) -> libc::c_int {
    // SAFETY: neither call takes a pointer. fsync already flushes the
    // device's cache here: there is no fuller sync to ask for.
    unsafe {
        if data_only {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    }
}

/// Allocates (or, with `PUNCH_HOLE`/`ZERO_RANGE`, frees or zeroes) the
/// bytes from `offset` for `len`.
pub(crate) fn fallocate(
    fd: RawFd,
    flags: FallocateFlags,
    offset: u64,
    len: u64,
) -> Result<(), Errno> {
    retry(|| fallocate_once(fd, flags, offset, len))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn fallocate_once(fd: RawFd, flags: FallocateFlags, offset: u64, len: u64) -> Result<(), Errno> {
    let mut mode = 0;
    for (ours, theirs) in [
        (FallocateFlags::KEEP_SIZE, libc::FALLOC_FL_KEEP_SIZE),
        (FallocateFlags::PUNCH_HOLE, libc::FALLOC_FL_PUNCH_HOLE),
        (FallocateFlags::ZERO_RANGE, libc::FALLOC_FL_ZERO_RANGE),
    ] {
        if flags.contains(ours) {
            mode |= theirs;
        }
    }
    if !FallocateFlags::all().contains(flags) {
        return Err(Errno::new(libc::EOPNOTSUPP));
    }
    // SAFETY: fallocate takes no pointer.
    check(unsafe { libc::fallocate(fd, mode, off(offset), off(len)) }).map(drop)
}

#[cfg(target_vendor = "apple")]
fn fallocate_once(fd: RawFd, flags: FallocateFlags, offset: u64, len: u64) -> Result<(), Errno> {
    let (start, len) = (off(offset), off(len));
    if start < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let end = start.checked_add(len).ok_or(Errno::new(libc::EFBIG))?;
    if flags == FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE {
        let hole = libc::fpunchhole_t {
            fp_flags: 0,
            reserved: 0,
            fp_offset: start,
            fp_length: len,
        };
        // SAFETY: F_PUNCHHOLE reads one fpunchhole_t through the pointer.
        return check(unsafe { libc::fcntl(fd, libc::F_PUNCHHOLE, &raw const hole) }).map(drop);
    }
    if !FallocateFlags::KEEP_SIZE.contains(flags) {
        // A hole punched without KEEP_SIZE, or zeroing: what Linux also
        // refuses, and what macOS has no call for.
        return Err(Errno::new(libc::EOPNOTSUPP));
    }
    let size = fstat_size(fd)?;
    if end > size {
        // F_PREALLOCATE allocates from the end of the file's allocation
        // (F_PEOFPOSMODE): a range inside the file is allocated already or
        // a hole it can't fill, so only what lies past the end is asked
        // for.
        let mut store = libc::fstore_t {
            fst_flags: libc::F_ALLOCATEALL,
            fst_posmode: libc::F_PEOFPOSMODE,
            fst_offset: 0,
            fst_length: end - size,
            fst_bytesalloc: 0,
        };
        // SAFETY: F_PREALLOCATE reads and writes one fstore_t.
        check(unsafe { libc::fcntl(fd, libc::F_PREALLOCATE, &raw mut store) })?;
        if !flags.contains(FallocateFlags::KEEP_SIZE) {
            // SAFETY: ftruncate takes no pointer.
            check(unsafe { libc::ftruncate(fd, end) })?;
        }
    }
    Ok(())
}

/// The size of the file `fd` names.
#[cfg(target_vendor = "apple")]
fn fstat_size(fd: RawFd) -> Result<libc::off_t, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one `struct stat` through the pointer.
    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so it initialised `st`.
    Ok(unsafe { st.assume_init() }.st_size)
}

#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
fn fallocate_once(fd: RawFd, flags: FallocateFlags, offset: u64, len: u64) -> Result<(), Errno> {
    // posix_fallocate always grows the file: no other mode.
    if !flags.is_empty() {
        return Err(Errno::new(libc::EOPNOTSUPP));
    }
    // SAFETY: posix_fallocate takes no pointer; it returns the error
    // number itself rather than setting errno.
    match unsafe { libc::posix_fallocate(fd, off(offset), off(len)) } {
        0 => Ok(()),
        e => Err(Errno::new(e)),
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
fn fallocate_once(_fd: RawFd, _flags: FallocateFlags, _off: u64, _len: u64) -> Result<(), Errno> {
    // NetBSD's and OpenBSD's libc bindings have no posix_fallocate (and
    // their file systems mostly refuse it).
    Err(Errno::new(libc::EOPNOTSUPP))
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: RawFd, len: u64) -> Result<(), Errno> {
    // SAFETY: ftruncate takes no pointer.
    retry(|| check(unsafe { libc::ftruncate(fd, off(len)) }).map(drop))
}

/// `unlinkat(dir, path)`: a file, or with `remove_dir` an empty
/// directory.
pub(crate) fn unlink_at(dir: RawFd, path: &CStr, remove_dir: bool) -> Result<(), Errno> {
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `path` is NUL-terminated and lives across the call.
    check(unsafe { libc::unlinkat(dir, path.as_ptr(), flags) }).map(drop)
}

/// `renameat(from_dir, from, to_dir, to)`, with `flags` where the system
/// has them.
pub(crate) fn rename_at(
    from_dir: RawFd,
    from: &CStr,
    to_dir: RawFd,
    to: &CStr,
    flags: RenameFlags,
) -> Result<(), Errno> {
    if flags.is_empty() {
        // SAFETY: both paths are NUL-terminated and live across the call.
        return check(unsafe { libc::renameat(from_dir, from.as_ptr(), to_dir, to.as_ptr()) })
            .map(drop);
    }
    rename_with_flags(from_dir, from, to_dir, to, flags)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn rename_with_flags(
    from_dir: RawFd,
    from: &CStr,
    to_dir: RawFd,
    to: &CStr,
    flags: RenameFlags,
) -> Result<(), Errno> {
    let mut raw = 0;
    for (ours, theirs) in [
        (RenameFlags::NOREPLACE, libc::RENAME_NOREPLACE),
        (RenameFlags::EXCHANGE, libc::RENAME_EXCHANGE),
        (RenameFlags::WHITEOUT, libc::RENAME_WHITEOUT),
    ] {
        if flags.contains(ours) {
            raw |= theirs;
        }
    }
    if !RenameFlags::all().contains(flags) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: both paths are NUL-terminated and live across the call.
    check(unsafe { libc::renameat2(from_dir, from.as_ptr(), to_dir, to.as_ptr(), raw) }).map(drop)
}

#[cfg(target_vendor = "apple")]
fn rename_with_flags(
    from_dir: RawFd,
    from: &CStr,
    to_dir: RawFd,
    to: &CStr,
    flags: RenameFlags,
) -> Result<(), Errno> {
    let raw = if flags == RenameFlags::NOREPLACE {
        libc::RENAME_EXCL
    } else if flags == RenameFlags::EXCHANGE {
        libc::RENAME_SWAP
    } else {
        // Linux refuses NOREPLACE with EXCHANGE too; macOS has no
        // whiteouts to leave.
        return Err(Errno::EINVAL);
    };
    // SAFETY: both paths are NUL-terminated and live across the call.
    check(unsafe { libc::renameatx_np(from_dir, from.as_ptr(), to_dir, to.as_ptr(), raw) })
        .map(drop)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn rename_with_flags(
    _from_dir: RawFd,
    _from: &CStr,
    _to_dir: RawFd,
    _to: &CStr,
    _flags: RenameFlags,
) -> Result<(), Errno> {
    // No rename with flags in the BSDs' libc bindings (FreeBSD's
    // renameat2 is new in 15): the flags are refused, as an old Linux
    // refuses flags it does not know.
    Err(Errno::EINVAL)
}

/// `mkdirat(dir, path, mode)`.
pub(crate) fn mkdir_at(dir: RawFd, path: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and lives across the call.
    check(unsafe { libc::mkdirat(dir, path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `symlinkat(target, dir, link)`: a symbolic link at `link` (relative to
/// `dir`) whose contents are `target`.
pub(crate) fn symlink_at(target: &CStr, dir: RawFd, link: &CStr) -> Result<(), Errno> {
    // SAFETY: both paths are NUL-terminated and live across the call.
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, link.as_ptr()) }).map(drop)
}

/// `linkat(from_dir, from, to_dir, to)`: a hard link; `follow`: to what a
/// symbolic link at `from` names rather than to the link.
pub(crate) fn link_at(
    from_dir: RawFd,
    from: &CStr,
    to_dir: RawFd,
    to: &CStr,
    follow: bool,
) -> Result<(), Errno> {
    let flags = if follow { libc::AT_SYMLINK_FOLLOW } else { 0 };
    // SAFETY: both paths are NUL-terminated and live across the call.
    check(unsafe { libc::linkat(from_dir, from.as_ptr(), to_dir, to.as_ptr(), flags) }).map(drop)
}

/// `posix_fadvise(fd, offset, len, advice)`.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly"
))]
pub(crate) fn fadvise(fd: RawFd, offset: u64, len: u64, advice: Advice) -> Result<(), Errno> {
    let advice = match advice {
        Advice::Normal => libc::POSIX_FADV_NORMAL,
        Advice::Sequential => libc::POSIX_FADV_SEQUENTIAL,
        Advice::Random => libc::POSIX_FADV_RANDOM,
        Advice::NoReuse => libc::POSIX_FADV_NOREUSE,
        Advice::WillNeed => libc::POSIX_FADV_WILLNEED,
        Advice::DontNeed => libc::POSIX_FADV_DONTNEED,
    };
    // SAFETY: posix_fadvise takes no pointer; it returns the error number
    // itself rather than setting errno.
    match unsafe { libc::posix_fadvise(fd, off(offset), off(len), advice) } {
        0 => Ok(()),
        e => Err(Errno::new(e)),
    }
}

/// `posix_fadvise`: not in this system's libc bindings.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly"
)))]
pub(crate) fn fadvise(_fd: RawFd, _offset: u64, _len: u64, _advice: Advice) -> Result<(), Errno> {
    Err(Errno::new(libc::EOPNOTSUPP))
}

/// `madvise(addr, len, advice)`.
///
/// # Safety
///
/// The range must be memory the caller may give this advice about: mapped,
/// and, for [`MemoryAdvice::DontNeed`], memory whose contents may be lost.
pub(crate) unsafe fn madvise(addr: usize, len: usize, advice: MemoryAdvice) -> Result<(), Errno> {
    let advice = match advice {
        MemoryAdvice::Normal => libc::MADV_NORMAL,
        MemoryAdvice::Sequential => libc::MADV_SEQUENTIAL,
        MemoryAdvice::Random => libc::MADV_RANDOM,
        MemoryAdvice::WillNeed => libc::MADV_WILLNEED,
        MemoryAdvice::DontNeed => libc::MADV_DONTNEED,
    };
    // SAFETY: the caller vouches for the range (see above).
    check(unsafe { libc::madvise(addr as *mut libc::c_void, len, advice) }).map(drop)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::Openat2;

    #[test]
    fn an_eperm_turns_openat2_off_only_when_a_probe_is_refused_too() {
        // The file's own refusal: the probe opens, the call stays on, and
        // later refusals need no probe.
        let s = Openat2::new();
        s.refused(|| true);
        assert!(s.on());
        s.refused(|| unreachable!("a probe has shown the call works"));
        assert!(s.on());
        // A sandbox's: the probe is refused as well.
        let s = Openat2::new();
        s.refused(|| false);
        assert!(!s.on());
        // No openat2 at all.
        let s = Openat2::new();
        s.turn_off();
        assert!(!s.on());
    }
}
