//! `Stat`, a file's status as [`Statx`](crate::ops::Statx) gives it
//! (re-exported as `kqring::ops::Stat`), and the call that fills it:
//! `statx` on Linux; elsewhere `fstatat` (or `fstat`, for a descriptor),
//! with the mask saying which fields that filled.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::time::{Duration, SystemTime};

use super::errno::{Errno, check};

bitflags::bitflags! {
    /// Which fields of a [`Stat`] are asked for, and which are valid:
    /// `statx`'s `STATX_*` bits, with Linux's values (io_uring's ABI).
    /// Bits this type does not name (`STATX_MNT_ID`…) are kept.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct StatxMask: u32 {
        /// The file type (in `mode`).
        const TYPE = 0x0001;
        /// The permission bits (in `mode`).
        const MODE = 0x0002;
        /// `nlink`.
        const NLINK = 0x0004;
        /// `uid`.
        const UID = 0x0008;
        /// `gid`.
        const GID = 0x0010;
        /// `atime`.
        const ATIME = 0x0020;
        /// `mtime`.
        const MTIME = 0x0040;
        /// `ctime`.
        const CTIME = 0x0080;
        /// `ino`.
        const INO = 0x0100;
        /// `size`.
        const SIZE = 0x0200;
        /// `blocks`.
        const BLOCKS = 0x0400;
        /// Everything `stat(2)` gives: the bits above.
        const BASIC_STATS = 0x07ff;
        /// `btime`, the file's creation.
        const BTIME = 0x0800;
    }
}

impl Default for StatxMask {
    /// [`StatxMask::BASIC_STATS`], what `stat(2)` gives.
    fn default() -> StatxMask {
        StatxMask::BASIC_STATS
    }
}

/// A time of a [`Stat`]: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatTime {
    /// Seconds since 1970-01-01 00:00:00 UTC (negative before it).
    pub sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub nsec: u32,
}

impl StatTime {
    fn new(sec: i64, nsec: i64) -> StatTime {
        StatTime {
            sec,
            nsec: nsec.clamp(0, 999_999_999) as u32,
        }
    }

    /// The time as a `SystemTime`.
    pub fn to_system_time(self) -> SystemTime {
        let nsec = Duration::from_nanos(u64::from(self.nsec));
        if self.sec >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(self.sec as u64) + nsec
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(self.sec.unsigned_abs()) + nsec
        }
    }
}

/// A file's status, as [`Statx`](crate::ops::Statx) completes with it
/// ([`Cqe::statx`](crate::Cqe::statx)). Only the fields `mask` names are
/// valid; the others are 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stat {
    /// The fields filled.
    pub mask: StatxMask,
    /// The size of a block for efficient I/O.
    pub blksize: u32,
    /// Hard links.
    pub nlink: u64,
    /// The owner.
    pub uid: u32,
    /// The group.
    pub gid: u32,
    /// The file type and permission bits (`S_IFMT`, `S_IRWXU`… of `libc`).
    pub mode: u32,
    /// The inode number.
    pub ino: u64,
    /// The size in bytes.
    pub size: u64,
    /// The 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: StatTime,
    /// Creation, where the file system records it (`mask` has `BTIME`).
    pub btime: StatTime,
    /// Last status change.
    pub ctime: StatTime,
    /// Last modification.
    pub mtime: StatTime,
    /// The device a device file is (as `st_rdev`).
    pub rdev: u64,
    /// The device the file is on (as `st_dev`).
    pub dev: u64,
}

// `mode_t` is `u16` on macOS and FreeBSD, `u32` on Linux and NetBSD.
#[allow(clippy::unnecessary_cast)]
const S_IFMT: u32 = libc::S_IFMT as u32;
#[allow(clippy::unnecessary_cast)]
const S_IFREG: u32 = libc::S_IFREG as u32;
#[allow(clippy::unnecessary_cast)]
const S_IFDIR: u32 = libc::S_IFDIR as u32;
#[allow(clippy::unnecessary_cast)]
const S_IFLNK: u32 = libc::S_IFLNK as u32;

impl Stat {
    /// The file type bits of `mode`.
    fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }

    /// Whether it is a regular file.
    pub fn is_file(&self) -> bool {
        self.file_type() == S_IFREG
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }

    /// Whether it is a symbolic link (a `Statx` with `no_follow` on one).
    pub fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }

    /// The permission bits of `mode` (`0o7777`).
    pub fn permissions(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Where `statx` finds the file: `path` relative to `dir`, or (`path`
/// `None`) `dir` itself.
pub(crate) fn statx(
    dir: RawFd,
    path: Option<&CStr>,
    no_follow: bool,
    mask: StatxMask,
) -> Result<Stat, Errno> {
    statx_impl(dir, path, no_follow, mask)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn statx_impl(
    dir: RawFd,
    path: Option<&CStr>,
    no_follow: bool,
    mask: StatxMask,
) -> Result<Stat, Errno> {
    let mut flags = 0;
    if no_follow {
        flags |= libc::AT_SYMLINK_NOFOLLOW;
    }
    let path = match path {
        Some(p) => p,
        None => {
            flags |= libc::AT_EMPTY_PATH;
            c""
        }
    };
    let mut sx = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated and lives across the call; statx
    // writes one `struct statx` through the pointer.
    check(unsafe { libc::statx(dir, path.as_ptr(), flags, mask.bits(), sx.as_mut_ptr()) })?;
    // SAFETY: zeroed, then filled by the kernel: initialised either way.
    let sx = unsafe { sx.assume_init() };
    let time = |t: libc::statx_timestamp| StatTime::new(t.tv_sec, i64::from(t.tv_nsec));
    Ok(Stat {
        mask: StatxMask::from_bits_retain(sx.stx_mask),
        blksize: sx.stx_blksize,
        nlink: u64::from(sx.stx_nlink),
        uid: sx.stx_uid,
        gid: sx.stx_gid,
        mode: u32::from(sx.stx_mode),
        ino: sx.stx_ino,
        size: sx.stx_size,
        blocks: sx.stx_blocks,
        atime: time(sx.stx_atime),
        btime: time(sx.stx_btime),
        ctime: time(sx.stx_ctime),
        mtime: time(sx.stx_mtime),
        rdev: libc::makedev(sx.stx_rdev_major, sx.stx_rdev_minor),
        dev: libc::makedev(sx.stx_dev_major, sx.stx_dev_minor),
    })
}

// The field types differ by system (`dev_t` is `i32` on macOS, `u64` on
// the BSDs): the casts widen each to one type, and are no-ops on some.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(clippy::unnecessary_cast)]
fn statx_impl(
    dir: RawFd,
    path: Option<&CStr>,
    no_follow: bool,
    _mask: StatxMask,
) -> Result<Stat, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    let flags = if no_follow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: `path` is NUL-terminated and lives across the call; each
    // call writes one `struct stat` through the pointer.
    check(unsafe {
        match path {
            Some(p) => libc::fstatat(dir, p.as_ptr(), st.as_mut_ptr(), flags),
            None => libc::fstat(dir, st.as_mut_ptr()),
        }
    })?;
    // SAFETY: zeroed, then filled by the kernel: initialised either way.
    let st = unsafe { st.assume_init() };
    let (atime, mtime, ctime) = times(&st);
    let btime = birth_time(&st);
    let mut mask = StatxMask::BASIC_STATS;
    // A file system that records no creation reports 0 or -1.
    if let Some(b) = btime
        && b.sec > 0
    {
        mask |= StatxMask::BTIME;
    }
    Ok(Stat {
        mask,
        blksize: st.st_blksize as u32,
        nlink: st.st_nlink as u64,
        uid: st.st_uid,
        gid: st.st_gid,
        mode: st.st_mode as u32,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime,
        btime: if mask.contains(StatxMask::BTIME) {
            btime.unwrap_or_default()
        } else {
            StatTime::default()
        },
        ctime,
        mtime,
        rdev: st.st_rdev as u64,
        dev: st.st_dev as u64,
    })
}

/// Access, modification and change times: NetBSD names their nanoseconds
/// `st_*timensec`, the others `st_*time_nsec`.
#[cfg(target_os = "netbsd")]
#[allow(clippy::unnecessary_cast)]
fn times(st: &libc::stat) -> (StatTime, StatTime, StatTime) {
    (
        StatTime::new(st.st_atime as i64, st.st_atimensec as i64),
        StatTime::new(st.st_mtime as i64, st.st_mtimensec as i64),
        StatTime::new(st.st_ctime as i64, st.st_ctimensec as i64),
    )
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "netbsd")))]
#[allow(clippy::unnecessary_cast)]
fn times(st: &libc::stat) -> (StatTime, StatTime, StatTime) {
    (
        StatTime::new(st.st_atime as i64, st.st_atime_nsec as i64),
        StatTime::new(st.st_mtime as i64, st.st_mtime_nsec as i64),
        StatTime::new(st.st_ctime as i64, st.st_ctime_nsec as i64),
    )
}

/// The creation time, where `struct stat` has one.
#[cfg(target_os = "netbsd")]
#[allow(clippy::unnecessary_cast)]
fn birth_time(st: &libc::stat) -> Option<StatTime> {
    Some(StatTime::new(
        st.st_birthtime as i64,
        st.st_birthtimensec as i64,
    ))
}

#[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
#[allow(clippy::unnecessary_cast)]
fn birth_time(st: &libc::stat) -> Option<StatTime> {
    Some(StatTime::new(
        st.st_birthtime as i64,
        st.st_birthtime_nsec as i64,
    ))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "netbsd",
    target_vendor = "apple",
    target_os = "freebsd"
)))]
fn birth_time(_st: &libc::stat) -> Option<StatTime> {
    // OpenBSD's field is not filled by its file systems; DragonFly has
    // none.
    None
}
