//! The model of an SQE program: resources, entries, steps.

use std::fmt;
use std::ops::BitOr;
use std::time::Duration;

use std::path::PathBuf;

use crate::SETTLE;
pub use crate::fs::{DirEntry, FileAdvice, Mode, OpenFlags};
use crate::run::CqeRecord;

/// Declares [`Op`]: one variant per opcode, with its name in the text
/// format and its arguments. Parsing and printing come from the argument
/// types (`text::Arg`), so a new opcode needs only its line here plus its
/// two translations (kqring, io_uring). An argument without a default is
/// required, except `bool`s (absent means false) and `Option`s. A field's
/// name is its argument's key, with `-` for `_` (`file_index` is
/// `file-index=`) and a trailing `_` dropped (`as_` is `as=`).
macro_rules! ops {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $kw:literal {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty $(= $default:expr)? ),* $(,)?
        }
    ),* $(,)?) => {
        /// One operation of an entry, with its arguments.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Op {
            $( $(#[$doc])* $variant { $( $(#[$fdoc])* $field: $ty ),* } ),*
        }

        impl Op {
            /// Every opcode's name in the text format.
            pub const KEYWORDS: &'static [&'static str] = &[$($kw),*];

            /// The opcode's name in the text format (`"read"`, `"poll"`…).
            pub fn keyword(&self) -> &'static str {
                match self { $( Op::$variant { .. } => $kw ),* }
            }

            /// Builds the opcode named `kw` from its arguments; `Ok(None)`
            /// when `kw` is no opcode.
            pub(crate) fn parse_args(
                kw: &str,
                args: &mut crate::text::Args,
            ) -> Result<Option<Op>, String> {
                match kw {
                    $( $kw => Ok(Some(Op::$variant {
                        $( $field: crate::text::Arg::take(
                            args,
                            &crate::text::key(stringify!($field)),
                            ops!(@default $($default)?),
                        )? ),*
                    })), )*
                    _ => Ok(None),
                }
            }

            /// Appends the arguments in the text format.
            pub(crate) fn write_args(&self, out: &mut String) {
                match self {
                    $( Op::$variant { $($field),* } => {
                        $( crate::text::Arg::put($field, &crate::text::key(stringify!($field)), out); )*
                    } )*
                }
            }

            /// The descriptors the operation names.
            pub fn fd_refs(&self) -> Vec<&FdRef> {
                #[allow(unused_mut)]
                let mut out = Vec::new();
                match self {
                    $( Op::$variant { $($field),* } => {
                        $( crate::text::Arg::fd_refs($field, &mut out); )*
                    } )*
                }
                out
            }
        }
    };
    (@default) => { None };
    (@default $e:expr) => { Some($e) };
}

ops! {
    /// `IORING_OP_NOP`.
    Nop = "nop" {},
    /// `IORING_OP_READ` of `len` bytes.
    Read = "read" {
        /// The descriptor.
        fd: FileRef,
        /// How many bytes to ask for.
        len: u32,
        /// Where to read.
        off: Offset = Offset::At(0),
    },
    /// `IORING_OP_WRITE` of `data`.
    Write = "write" {
        /// The descriptor.
        fd: FileRef,
        /// The bytes to write.
        data: Vec<u8>,
        /// Where to write.
        off: Offset = Offset::At(0),
    },
    /// `IORING_OP_READV` into buffers of the given lengths.
    Readv = "readv" {
        /// The descriptor.
        fd: FileRef,
        /// Each buffer's length.
        lens: Vec<u32>,
        /// Where to read.
        off: Offset = Offset::At(0),
    },
    /// `IORING_OP_WRITEV` of the buffers, in order.
    Writev = "writev" {
        /// The descriptor.
        fd: FileRef,
        /// The buffers (`data=` repeated in the text format).
        data: Vec<Vec<u8>>,
        /// Where to write.
        off: Offset = Offset::At(0),
    },
    /// `IORING_OP_POLL_ADD`, one-shot or multishot.
    PollAdd = "poll" {
        /// The descriptor.
        fd: FileRef,
        /// The `poll(2)` events to wait for.
        events: PollMask,
        /// `IORING_POLL_ADD_MULTI`.
        multi: bool,
    },
    /// `IORING_OP_POLL_REMOVE` of the poll with `user_data == target`.
    PollRemove = "poll-remove" {
        /// The poll's `user_data`.
        target: u64,
    },
    /// `IORING_OP_TIMEOUT`.
    Timeout = "timeout" {
        /// Milliseconds from the submission.
        ms: u64,
        /// Completes with 0 after this many other completions (0: never).
        count: u32 = 0,
        /// Passes the time as an absolute `CLOCK_MONOTONIC` time
        /// (`IORING_TIMEOUT_ABS`), `ms` after the submission.
        abs: bool,
    },
    /// `IORING_OP_TIMEOUT_REMOVE`.
    TimeoutRemove = "timeout-remove" {
        /// The timeout's `user_data`.
        target: u64,
    },
    /// `IORING_OP_TIMEOUT_REMOVE` with `IORING_TIMEOUT_UPDATE`.
    TimeoutUpdate = "timeout-update" {
        /// The timeout's `user_data`.
        target: u64,
        /// The new time, in milliseconds from this submission.
        ms: u64,
        /// As an absolute time.
        abs: bool,
    },
    /// `IORING_OP_LINK_TIMEOUT` for the entry linked before it.
    LinkTimeout = "link-timeout" {
        /// Milliseconds from when the bounded entry starts.
        ms: u64,
        /// As an absolute time.
        abs: bool,
    },
    /// `IORING_OP_ASYNC_CANCEL`.
    AsyncCancel = "cancel" {
        /// What to cancel.
        target: CancelTarget,
        /// Every match rather than the first (`IORING_ASYNC_CANCEL_ALL`).
        all: bool,
    },
    /// `IORING_OP_CLOSE`; of a slot (`fd=@N`), empties it (io_uring's
    /// `file_index`).
    Close = "close" {
        /// The descriptor to close, or the slot to empty.
        fd: FileRef,
    },
    /// `IORING_OP_RECV` of `len` bytes into a buffer of its own.
    Recv = "recv" {
        /// The socket.
        fd: FileRef,
        /// How many bytes to ask for.
        len: u32,
        /// `MSG_WAITALL`: wait for all `len` bytes.
        waitall: bool,
        /// `MSG_PEEK`: leave the bytes in the socket.
        peek: bool,
    },
    /// `IORING_OP_RECV` with `IOSQE_BUFFER_SELECT`: into a buffer of
    /// `group`, taken when the data is there; multishot with
    /// `IORING_RECV_MULTISHOT`.
    RecvSelect = "recv-select" {
        /// The socket.
        fd: FileRef,
        /// The provided buffer group.
        group: u32,
        /// Keeps receiving (`IORING_RECV_MULTISHOT`).
        multi: bool,
    },
    /// `IORING_OP_SEND` of `data`.
    Send = "send" {
        /// The socket.
        fd: FileRef,
        /// The bytes to send.
        data: Vec<u8>,
    },
    /// `IORING_OP_PROVIDE_BUFFERS`: `count` buffers of `len` bytes to
    /// `group`, with ids from `bid` up.
    ProvideBuffers = "provide-buffers" {
        /// The group.
        group: u32,
        /// How many buffers.
        count: u32,
        /// Each buffer's length.
        len: u32,
        /// The first buffer's id.
        bid: u32 = 0,
    },
    /// `IORING_OP_REMOVE_BUFFERS`: up to `n` buffers of `group`.
    RemoveBuffers = "remove-buffers" {
        /// The group.
        group: u32,
        /// How many buffers at most.
        n: u32,
    },
    /// `IORING_OP_FILES_UPDATE`: puts descriptors into the ring's file
    /// table, one slot each from `at` on, or each into a free slot.
    FilesUpdate = "files-update" {
        /// The first slot, or `IORING_FILE_INDEX_ALLOC`.
        at: FileSlot,
        /// What goes into each slot.
        fds: Vec<UpdateFd>,
    },
    /// `IORING_OP_ACCEPT` of a connection: into the ring's file table (a
    /// direct descriptor) with `file-index=`, else into a descriptor of the
    /// process (`res=fd`); multishot with `IORING_ACCEPT_MULTISHOT`.
    Accept = "accept" {
        /// The listening socket.
        fd: FileRef,
        /// The slot the connection goes into; none: a plain descriptor.
        file_index: Option<FileSlot>,
        /// Keeps accepting (`IORING_ACCEPT_MULTISHOT`).
        multi: bool,
        /// The name later entries use for the new descriptor (`as=NAME`).
        as_: Option<FdName>,
    },
    /// `IORING_OP_SOCKET`: a new socket, as a descriptor of the process
    /// (`res=fd`) or, with `file-index=`, in the ring's file table.
    Socket = "socket" {
        /// `inet`, `inet6` or `unix`.
        domain: Domain,
        /// `stream` or `dgram`.
        type_: SockType,
        /// The protocol (0: the domain's default).
        protocol: u32 = 0,
        /// The slot it goes into; none: a plain descriptor.
        file_index: Option<FileSlot>,
        /// Leaves it blocking (default: `SOCK_NONBLOCK`).
        blocking: bool,
        /// The name later entries use for the new descriptor (`as=NAME`).
        as_: Option<FdName>,
    },
    /// `IORING_OP_BIND`.
    Bind = "bind" {
        /// The socket.
        fd: FileRef,
        /// The address (port 0: one the kernel picks).
        addr: Addr,
    },
    /// `IORING_OP_LISTEN`.
    Listen = "listen" {
        /// The socket.
        fd: FileRef,
        /// Room for pending connections.
        backlog: u32 = 16,
    },
    /// `IORING_OP_CONNECT`.
    Connect = "connect" {
        /// The socket.
        fd: FileRef,
        /// Where to.
        addr: Addr,
    },
    /// `IORING_OP_SHUTDOWN`.
    Shutdown = "shutdown" {
        /// The socket.
        fd: FileRef,
        /// `rd`, `wr` or `rdwr`.
        how: How,
    },
    /// `IORING_OP_SENDMSG` of the buffers as one message, to `to` or the
    /// connected peer.
    SendMsg = "sendmsg" {
        /// The socket.
        fd: FileRef,
        /// The buffers (`data=` repeated in the text format).
        data: Vec<Vec<u8>>,
        /// The destination, for an unconnected datagram socket.
        to: Option<Addr>,
    },
    /// `IORING_OP_RECVMSG` into buffers of the given lengths; the
    /// completion names the sender (`from=`).
    RecvMsg = "recvmsg" {
        /// The socket.
        fd: FileRef,
        /// Each buffer's length.
        lens: Vec<u32>,
    },
    /// `IORING_OP_RECVMSG` with `IOSQE_BUFFER_SELECT`: into a buffer of
    /// `group`, taken when the data is there.
    RecvMsgSelect = "recvmsg-select" {
        /// The socket.
        fd: FileRef,
        /// The provided buffer group.
        group: u32,
    },
    /// `IORING_OP_READ` with `IOSQE_BUFFER_SELECT`: into a buffer of
    /// `group`, taken when the data is there.
    ReadSelect = "read-select" {
        /// The descriptor.
        fd: FileRef,
        /// The provided buffer group.
        group: u32,
        /// Where to read.
        off: Offset = Offset::At(0),
    },
    /// `IORING_OP_OPENAT` of `path` relative to the directory `dir`: a
    /// descriptor of the process (`res=fd`), or with `file-index=` one in
    /// the ring's file table.
    OpenAt = "openat" {
        /// The directory (a `dir` resource, or any descriptor).
        dir: FdRef,
        /// The path.
        path: PathBuf,
        /// `open(2)`'s flags (default `rdonly`).
        oflags: OpenFlags,
        /// A created file's permissions.
        mode: Mode = Mode(0o644),
        /// The slot it goes into; none: a plain descriptor.
        file_index: Option<FileSlot>,
        /// The name later entries use for the new descriptor (`as=NAME`).
        as_: Option<FdName>,
    },
    /// `IORING_OP_STATX` of `path` relative to `dir`, or without `path` of
    /// `dir` itself (`AT_EMPTY_PATH`); the completion carries the status
    /// (`stat=`).
    Statx = "statx" {
        /// The directory, or the descriptor itself.
        dir: FdRef,
        /// The path.
        path: Option<PathBuf>,
        /// `AT_SYMLINK_NOFOLLOW`.
        no_follow: bool,
    },
    /// `IORING_OP_FSYNC`.
    Fsync = "fsync" {
        /// The file.
        fd: FileRef,
        /// `IORING_FSYNC_DATASYNC`.
        datasync: bool,
    },
    /// `IORING_OP_FALLOCATE` of `len` bytes from `off`.
    Fallocate = "fallocate" {
        /// The file.
        fd: FileRef,
        /// Where the range starts.
        off: u64 = 0,
        /// Its length.
        len: u64,
        /// `FALLOC_FL_KEEP_SIZE`.
        keep_size: bool,
        /// `FALLOC_FL_PUNCH_HOLE`.
        punch_hole: bool,
    },
    /// `IORING_OP_FTRUNCATE`.
    Ftruncate = "ftruncate" {
        /// The file.
        fd: FileRef,
        /// The new size.
        len: u64,
    },
    /// `IORING_OP_FADVISE` of `len` bytes from `off` (0: to the end).
    Fadvise = "fadvise" {
        /// The file.
        fd: FileRef,
        /// Where the range starts.
        off: u64 = 0,
        /// Its length.
        len: u32 = 0,
        /// The advice.
        advice: FileAdvice,
    },
    /// `IORING_OP_UNLINKAT` of `path` relative to `dir`.
    UnlinkAt = "unlinkat" {
        /// The directory.
        dir: FdRef,
        /// The path.
        path: PathBuf,
        /// `AT_REMOVEDIR`.
        remove_dir: bool,
    },
    /// `IORING_OP_RENAMEAT` of `from` (relative to `dir`) to `to`
    /// (relative to `to-dir`, or `dir`).
    RenameAt = "renameat" {
        /// The directory of `from` (and of `to`, without `to-dir`).
        dir: FdRef,
        /// The old name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
        /// The directory of `to`.
        to_dir: Option<FdRef>,
        /// `RENAME_NOREPLACE`.
        noreplace: bool,
        /// `RENAME_EXCHANGE`.
        exchange: bool,
    },
    /// `IORING_OP_MKDIRAT` of `path` relative to `dir`.
    MkdirAt = "mkdirat" {
        /// The directory.
        dir: FdRef,
        /// The path.
        path: PathBuf,
        /// The permissions.
        mode: Mode = Mode(0o755),
    },
    /// `IORING_OP_SYMLINKAT`: a link at `path` (relative to `dir`) holding
    /// `target`.
    SymlinkAt = "symlinkat" {
        /// What the link points to.
        target: PathBuf,
        /// The directory.
        dir: FdRef,
        /// The link's path.
        path: PathBuf,
    },
    /// `IORING_OP_LINKAT`: `to` a new name of `from`, both relative to
    /// `dir`.
    LinkAt = "linkat" {
        /// The directory.
        dir: FdRef,
        /// The existing name.
        from: PathBuf,
        /// The new name.
        to: PathBuf,
        /// `AT_SYMLINK_FOLLOW`.
        follow: bool,
    },
    /// `IORING_OP_WAITID` with `P_PID`: the completion carries the child's
    /// state as `waitid(2)` reports it (`waited=`).
    WaitId = "waitid" {
        /// The child (a `child` resource), or a pid by number.
        pid: PidRef,
        /// `waitid(2)`'s options (default `exited`).
        options: WaitOptions = WaitOptions(libc::WEXITED),
    },
    /// `IORING_OP_MSG_RING` with `IORING_MSG_DATA`: posts a completion
    /// with `target-ud` and `res` into the ring `to`.
    MsgRing = "msg-ring" {
        /// The target ring (a `ring` resource).
        to: RingName,
        /// The target completion's `res`.
        res: i32,
        /// The target completion's `user_data`.
        target_ud: u64,
        /// `IORING_MSG_RING_CQE_SKIP` (`-EINVAL` with data).
        skip_target_cqe: bool,
    },
    /// `IORING_OP_MSG_RING` with `IORING_MSG_SEND_FD`: the file in slot
    /// `src` of this ring's table goes into slot `dest` of the ring `to`,
    /// whose completion carries `target-ud`.
    MsgRingFd = "msg-ring-fd" {
        /// The target ring (a `ring` resource).
        to: RingName,
        /// The slot of this ring's table.
        src: u32,
        /// The slot of the target's table, or `alloc`.
        dest: FileSlot,
        /// The target completion's `user_data`.
        target_ud: u64,
        /// `IORING_MSG_RING_CQE_SKIP`: the target posts nothing.
        skip_target_cqe: bool,
    },
}

impl Op {
    /// Whether the operation reads into a buffer of its own (its final CQE
    /// carries the bytes read; one that selects a provided buffer carries
    /// them in each CQE with `F_BUFFER`: see [`selects`](Self::selects)).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            Op::Read { .. } | Op::Readv { .. } | Op::Recv { .. } | Op::RecvMsg { .. }
        )
    }

    /// The buffer group the operation reads into, if it selects a
    /// provided buffer.
    pub fn selects(&self) -> Option<u32> {
        match self {
            Op::RecvSelect { group, .. }
            | Op::RecvMsgSelect { group, .. }
            | Op::ReadSelect { group, .. } => Some(*group),
            _ => None,
        }
    }

    /// Whether a successful completion's `res` is a new descriptor of the
    /// process (a socket, or an accept that is not direct): its number
    /// differs between backends and runs, so it is compared as `res=fd`.
    pub fn makes_fd(&self) -> bool {
        matches!(
            self,
            Op::Socket {
                file_index: None,
                ..
            } | Op::Accept {
                file_index: None,
                ..
            } | Op::OpenAt {
                file_index: None,
                ..
            }
        )
    }

    /// The name a new descriptor gets (`as=NAME`), if it gets one.
    pub fn names_fd(&self) -> Option<&FdName> {
        match self {
            Op::Socket { as_, .. } | Op::Accept { as_, .. } | Op::OpenAt { as_, .. } => {
                as_.as_ref()
            }
            _ => None,
        }
    }
}

/// The process a [`Op::WaitId`] waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidRef {
    /// A `child` resource, by name; the runner puts in its pid.
    Child(String),
    /// A pid by number (`1` is never a child of the runner).
    Number(u32),
}

/// `waitid(2)`'s options (`WEXITED`, `WNOHANG`…; `exited|nohang` in the
/// text format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions(pub i32);

/// A ring of the program besides the one its entries go to (a `ring`
/// resource), by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RingName(pub String);

/// How a `child` resource ends, at its `end-child` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEnd {
    /// It exits with this status (`exit=N`).
    Exit(u8),
    /// It is killed by this signal (`signal=KILL`).
    Signal(i32),
}

/// Signal names of the text format (without `SIG`).
pub const SIGNAL_NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGCHLD, "CHLD"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
];

/// A signal's name (`KILL`), or its number.
pub fn signal_name(signal: i32) -> String {
    SIGNAL_NAMES
        .iter()
        .find(|(s, _)| *s == signal)
        .map_or_else(|| signal.to_string(), |(_, n)| (*n).to_string())
}

/// The name a new descriptor gets for the entries after it (`as=NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FdName(pub String);

/// A socket's address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// `AF_INET` (`inet`).
    Inet,
    /// `AF_INET6` (`inet6`).
    Inet6,
    /// `AF_UNIX` (`unix`).
    Unix,
}

impl Domain {
    /// The `AF_*` value.
    pub fn raw(self) -> i32 {
        match self {
            Domain::Inet => libc::AF_INET,
            Domain::Inet6 => libc::AF_INET6,
            Domain::Unix => libc::AF_UNIX,
        }
    }
}

/// A socket's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// `SOCK_STREAM` (`stream`).
    Stream,
    /// `SOCK_DGRAM` (`dgram`).
    Dgram,
}

impl SockType {
    /// The `SOCK_*` value.
    pub fn raw(self) -> i32 {
        match self {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::Dgram => libc::SOCK_DGRAM,
        }
    }
}

/// Which directions a shutdown closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// `SHUT_RD` (`rd`).
    Read,
    /// `SHUT_WR` (`wr`).
    Write,
    /// `SHUT_RDWR` (`rdwr`).
    Both,
}

impl How {
    /// The `SHUT_*` value.
    pub fn raw(self) -> i32 {
        match self {
            How::Read => libc::SHUT_RD,
            How::Write => libc::SHUT_WR,
            How::Both => libc::SHUT_RDWR,
        }
    }
}

/// A socket address an entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// An IP address and port (`127.0.0.1:0`, `[::1]:0`). Bind to port 0
    /// and connect through `local:`: a fixed port may be taken.
    Ip(std::net::SocketAddr),
    /// The address a descriptor of the program is bound to
    /// (`local:NAME`), looked up when the entry is submitted.
    LocalOf(FdRef),
}

/// A descriptor of a program's resource, by name: `p.a`, `q.w`, `f`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FdRef(pub String);

impl FdRef {
    /// Names a descriptor.
    pub fn new(name: impl Into<String>) -> FdRef {
        FdRef(name.into())
    }
}

impl fmt::Display for FdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The file an entry works on: a descriptor of the program, or a slot of
/// the ring's file table (a registered file: `IOSQE_FIXED_FILE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// A descriptor, by name (`p.a`).
    Fd(FdRef),
    /// Slot `N` of the ring's file table (`@N`).
    Fixed(u32),
}

impl FileRef {
    /// Names a descriptor.
    pub fn fd(name: impl Into<String>) -> FileRef {
        FileRef::Fd(FdRef::new(name))
    }
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileRef::Fd(fd) => write!(f, "{fd}"),
            FileRef::Fixed(slot) => write!(f, "@{slot}"),
        }
    }
}

/// Where a descriptor goes in the ring's file table (io_uring's
/// `file_index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileSlot {
    /// This slot (`N`).
    Index(u32),
    /// A free slot, which the completion names (`IORING_FILE_INDEX_ALLOC`;
    /// `alloc`).
    Alloc,
}

/// What a [`Op::FilesUpdate`] puts into one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateFd {
    /// This descriptor (`p.a`).
    Fd(FdRef),
    /// Nothing: the slot is emptied (`-1`).
    Clear,
    /// The slot is left as it is (`IORING_REGISTER_FILES_SKIP`; `skip`).
    Skip,
}

/// A read's or write's file offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// This offset (ignored by sockets and pipes).
    At(u64),
    /// The file's current position, advanced by the transfer (io_uring's
    /// `-1`; kqring's `u64::MAX`).
    Current,
}

impl Offset {
    /// The value both backends take: `u64::MAX` for the current position.
    pub fn raw(self) -> u64 {
        match self {
            Offset::At(n) => n,
            Offset::Current => u64::MAX,
        }
    }
}

/// A `poll(2)` event mask (`POLLIN`, `POLLOUT`…).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollMask(pub u32);

/// What an [`Op::AsyncCancel`] matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    /// Entries with this `user_data`.
    UserData(u64),
    /// Entries on this descriptor (`IORING_ASYNC_CANCEL_FD`).
    Fd(FdRef),
    /// Entries on the file in this slot of the ring's file table
    /// (`IORING_ASYNC_CANCEL_FD_FIXED`).
    Fixed(u32),
    /// Any entry (`IORING_ASYNC_CANCEL_ANY`).
    Any,
}

/// Submission flags, with io_uring's `IOSQE_*` bit values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// `IOSQE_IO_DRAIN`.
    pub const DRAIN: Flags = Flags(1 << 1);
    /// `IOSQE_IO_LINK`.
    pub const LINK: Flags = Flags(1 << 2);
    /// `IOSQE_IO_HARDLINK`.
    pub const HARDLINK: Flags = Flags(1 << 3);
    /// `IOSQE_ASYNC`.
    pub const ASYNC: Flags = Flags(1 << 4);
    /// `IOSQE_CQE_SKIP_SUCCESS`.
    pub const SKIP_SUCCESS: Flags = Flags(1 << 6);

    /// Each flag with its name in the text format.
    pub const NAMES: &'static [(Flags, &'static str)] = &[
        (Flags::LINK, "link"),
        (Flags::HARDLINK, "hardlink"),
        (Flags::DRAIN, "drain"),
        (Flags::ASYNC, "async"),
        (Flags::SKIP_SUCCESS, "skip_success"),
    ];

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Flags::NAMES
            .iter()
            .filter(|(fl, _)| self.contains(*fl))
            .map(|(_, n)| *n)
            .collect();
        write!(f, "Flags({})", names.join("|"))
    }
}

/// One submission queue entry: an operation, its `user_data`, its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The operation.
    pub op: Op,
    /// The value its completions carry.
    pub user_data: u64,
    /// Its submission flags.
    pub flags: Flags,
}

impl Entry {
    /// `op` with `user_data` 0 and no flag.
    pub fn new(op: Op) -> Entry {
        Entry {
            op,
            user_data: 0,
            flags: Flags::NONE,
        }
    }

    /// Sets the `user_data`.
    #[must_use]
    pub fn ud(mut self, user_data: u64) -> Entry {
        self.user_data = user_data;
        self
    }

    /// Sets the flags.
    #[must_use]
    pub fn flags(mut self, flags: Flags) -> Entry {
        self.flags = flags;
        self
    }
}

/// What a program declares it needs; created afresh for every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceKind {
    /// A connected `AF_UNIX` stream socket pair: ends `NAME.a`, `NAME.b`.
    SocketPair {
        /// Leave the ends blocking (default: `O_NONBLOCK`).
        blocking: bool,
    },
    /// A pipe: ends `NAME.r`, `NAME.w`.
    Pipe {
        /// Leave the ends blocking (default: `O_NONBLOCK`).
        blocking: bool,
    },
    /// An unlinked temporary regular file with these contents, open
    /// read-write at position 0: `NAME`.
    File {
        /// The initial contents.
        contents: Vec<u8>,
    },
    /// A descriptor number that is never open: `NAME`.
    BadFd,
    /// The descriptor number -1: `NAME`.
    MinusOne,
    /// A listening stream socket: `NAME`.
    Listener {
        /// A TCP socket on 127.0.0.1 (a port the kernel picks), rather
        /// than `AF_UNIX`.
        tcp: bool,
        /// Leave it blocking (default: `O_NONBLOCK`).
        blocking: bool,
    },
    /// A UDP socket bound to 127.0.0.1, a port the kernel picks,
    /// non-blocking: `NAME`.
    Udp,
    /// A new directory under the temporary directory, holding `entries`,
    /// open (`O_RDONLY | O_DIRECTORY`): `NAME`. The paths of file-system
    /// entries are relative to it, so that a program touches nothing else.
    Dir {
        /// What it holds when the run starts.
        entries: Vec<DirEntry>,
    },
    /// A socket connected to a listener declared before it, its
    /// connection waiting in the listener's queue (connections queue in
    /// the order declared): `NAME`.
    Client {
        /// The listener's name.
        listener: String,
        /// Leave it blocking (default: `O_NONBLOCK`).
        blocking: bool,
    },
    /// A child process of the runner, alive until its `end-child` step
    /// (or the end of the run), then ending as `end` says; a `waitid`
    /// names it by `NAME`, and the runner puts in its pid. Not a
    /// descriptor.
    Child {
        /// How it ends.
        end: ChildEnd,
    },
    /// A second ring of the same backend, for `msg-ring` to post to; its
    /// completions are collected by `wait N ring=NAME`. Not a descriptor.
    Ring {
        /// Its file table's slots (0: none).
        files: u32,
    },
}

/// A named resource of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its name; its descriptors are named after it.
    pub name: String,
    /// What it is.
    pub kind: ResourceKind,
}

impl Resource {
    /// The names of its descriptors (`p.a`, `p.b`; `f`).
    pub fn ends(&self) -> Vec<String> {
        match self.kind {
            ResourceKind::SocketPair { .. } => {
                vec![format!("{}.a", self.name), format!("{}.b", self.name)]
            }
            ResourceKind::Pipe { .. } => {
                vec![format!("{}.r", self.name), format!("{}.w", self.name)]
            }
            ResourceKind::File { .. }
            | ResourceKind::Dir { .. }
            | ResourceKind::BadFd
            | ResourceKind::MinusOne
            | ResourceKind::Listener { .. }
            | ResourceKind::Udp
            | ResourceKind::Client { .. } => vec![self.name.clone()],
            ResourceKind::Child { .. } | ResourceKind::Ring { .. } => Vec::new(),
        }
    }
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Pushes the entries in order, then submits them as one batch.
    Submit(Vec<Entry>),
    /// Writes the bytes to a descriptor from outside the ring.
    WritePeer {
        /// Where to write.
        fd: FdRef,
        /// What to write.
        data: Vec<u8>,
    },
    /// Closes a descriptor from outside the ring.
    ClosePeer {
        /// What to close.
        fd: FdRef,
    },
    /// Waits for this many completions (at most [`PATIENCE`](crate::PATIENCE)).
    Wait(usize),
    /// Waits for this many completions of a second ring (a `ring`
    /// resource), as [`Wait`](Step::Wait) does for the program's ring.
    WaitRing {
        /// The ring.
        ring: RingName,
        /// How many completions.
        n: usize,
    },
    /// Closes a second ring (io_uring: its descriptor; kqring: drops the
    /// `Ring`); a message to it after this is `-EBADF`.
    CloseRing {
        /// The ring.
        ring: RingName,
    },
    /// Ends a `child` resource as it says (closes its standard input, or
    /// sends its signal), then waits until it has ended, without reaping
    /// it.
    EndChild {
        /// The child's name.
        child: String,
    },
}

/// How two runs' completions are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// In the order they were posted: io_uring defines it.
    Exact,
    /// Each `wait`'s completions sorted by `user_data` (stable, so a
    /// multishot's completions keep their order): io_uring leaves the order
    /// open, e.g. between a canceller and what it cancels.
    ByUserData,
}

/// An SQE program: its resources and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its name (a scenario's name, or a file's).
    pub name: String,
    /// How its runs' completions are compared.
    pub order: Order,
    /// How long completions are still collected after the last step.
    pub settle: Duration,
    /// How many slots the ring's file table has (io_uring's sparse
    /// registration right after setup); 0: no table.
    pub files: u32,
    /// The descriptors it needs.
    pub resources: Vec<Resource>,
    /// What it does.
    pub steps: Vec<Step>,
    /// The completions it is expected to give, if they are written down.
    pub expected: Option<Expected>,
}

/// Completions grouped by the `wait` step that collected them (the last
/// group: what arrived after the last step).
pub type CqeGroups = Vec<Vec<CqeRecord>>;

/// The completions a program is expected to give: what each `wait` step
/// collects, then what arrives after the last step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expected {
    /// One group per `wait` step, in order, then one for the completions
    /// that arrive after the last step (within the settle time).
    pub groups: Vec<ExpectedGroup>,
}

/// What one `wait` step is expected to collect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpectedGroup {
    /// io_uring's completions (`expect` lines), which are kqring's too
    /// unless [`kqring`](Self::kqring) says otherwise.
    pub io_uring: Vec<CqeRecord>,
    /// kqring's own completions where it differs (`expect-kqring` lines).
    pub kqring: Option<Vec<CqeRecord>>,
}

impl Expected {
    /// What io_uring is expected to give, a group per wait; sorted by
    /// `user_data` within each group when `order` says so.
    pub fn io_uring(&self, order: Order) -> CqeGroups {
        self.groups
            .iter()
            .map(|g| sorted(g.io_uring.clone(), order))
            .collect()
    }

    /// What kqring is expected to give, a group per wait; sorted by
    /// `user_data` within each group when `order` says so.
    pub fn kqring(&self, order: Order) -> CqeGroups {
        self.groups
            .iter()
            .map(|g| sorted(g.kqring.as_ref().unwrap_or(&g.io_uring).clone(), order))
            .collect()
    }

    /// Whether kqring is expected to differ from io_uring.
    pub fn differs(&self, order: Order) -> bool {
        self.io_uring(order) != self.kqring(order)
    }
}

/// A group of completions in the order the comparison uses.
pub(crate) fn sorted(mut group: Vec<CqeRecord>, order: Order) -> Vec<CqeRecord> {
    if order == Order::ByUserData {
        group.sort_by_key(|c| c.user_data);
    }
    group
}

impl Program {
    /// An empty program: exact order, no resource, no step.
    pub fn new(name: impl Into<String>) -> Program {
        Program {
            name: name.into(),
            order: Order::Exact,
            settle: SETTLE,
            files: 0,
            resources: Vec::new(),
            steps: Vec::new(),
            expected: None,
        }
    }

    /// Sets the comparison order.
    #[must_use]
    pub fn order(mut self, order: Order) -> Program {
        self.order = order;
        self
    }

    /// Gives the ring a file table of `n` empty slots.
    #[must_use]
    pub fn files(mut self, n: u32) -> Program {
        self.files = n;
        self
    }

    /// Declares a resource.
    #[must_use]
    pub fn resource(mut self, name: impl Into<String>, kind: ResourceKind) -> Program {
        self.resources.push(Resource {
            name: name.into(),
            kind,
        });
        self
    }

    /// Adds a step.
    #[must_use]
    pub fn step(mut self, step: Step) -> Program {
        self.steps.push(step);
        self
    }

    /// Adds a batch of entries.
    #[must_use]
    pub fn submit(self, entries: impl IntoIterator<Item = Entry>) -> Program {
        self.step(Step::Submit(entries.into_iter().collect()))
    }

    /// Adds a wait for `n` completions.
    #[must_use]
    pub fn wait(self, n: usize) -> Program {
        self.step(Step::Wait(n))
    }

    /// Checks that resource names are unique and well formed, that every
    /// client names a listener declared before it, that every descriptor
    /// named exists (a resource's, or one an entry of an earlier batch
    /// makes with `as=`), and that expectations, if any, cover every wait.
    pub fn validate(&self) -> Result<(), String> {
        let well_formed = |name: &str| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let mut ends: Vec<String> = Vec::new();
        for (i, r) in self.resources.iter().enumerate() {
            if !well_formed(&r.name) {
                return Err(format!("bad resource name {:?}", r.name));
            }
            if let ResourceKind::Client { listener, .. } = &r.kind {
                let declared = self.resources[..i].iter().any(|l| {
                    l.name == *listener && matches!(l.kind, ResourceKind::Listener { .. })
                });
                if !declared {
                    return Err(format!(
                        "client {}: no listener {listener} declared before it",
                        r.name
                    ));
                }
            }
            for end in r.ends() {
                if ends.contains(&end) {
                    return Err(format!("resource {end} declared twice"));
                }
                ends.push(end);
            }
            if self.resources[..i].iter().any(|o| o.name == r.name) {
                return Err(format!("resource {} declared twice", r.name));
            }
        }
        let declared = |name: &str, ring: bool| {
            let found = self.resources.iter().any(|r| {
                r.name == name
                    && if ring {
                        matches!(r.kind, ResourceKind::Ring { .. })
                    } else {
                        matches!(r.kind, ResourceKind::Child { .. })
                    }
            });
            if found {
                Ok(())
            } else {
                Err(format!(
                    "no {} named {name}",
                    if ring { "ring" } else { "child" }
                ))
            }
        };
        let known = |ends: &[String], fd: &FdRef| {
            if ends.contains(&fd.0) {
                Ok(())
            } else {
                Err(format!(
                    "no descriptor named {fd} (have: {})",
                    ends.join(", ")
                ))
            }
        };
        let mut waits = 0;
        for step in &self.steps {
            match step {
                Step::Submit(entries) => {
                    for e in entries {
                        match &e.op {
                            Op::WaitId {
                                pid: PidRef::Child(child),
                                ..
                            } => declared(child, false)?,
                            Op::MsgRing { to, .. } | Op::MsgRingFd { to, .. } => {
                                declared(&to.0, true)?
                            }
                            _ => {}
                        }
                        for fd in e.op.fd_refs() {
                            let made_here = entries
                                .iter()
                                .any(|m| m.op.names_fd().is_some_and(|n| n.0 == fd.0));
                            if made_here && !ends.contains(&fd.0) {
                                return Err(format!(
                                    "{fd} is made by an entry of the same batch: its number is \
                                     only known once that entry has completed (wait for it first)"
                                ));
                            }
                            known(&ends, fd)?;
                        }
                    }
                    for e in entries {
                        // Its completion's res is a descriptor to adopt: no
                        // other entry's result may be taken for one.
                        if e.op.makes_fd()
                            && self
                                .entries()
                                .filter(|o| o.user_data == e.user_data)
                                .count()
                                > 1
                        {
                            return Err(format!(
                                "{} ud={}: an entry that makes a descriptor needs a user_data \
                                 of its own",
                                e.op.keyword(),
                                e.user_data
                            ));
                        }
                        let Some(name) = e.op.names_fd() else {
                            continue;
                        };
                        if !well_formed(&name.0) {
                            return Err(format!("bad descriptor name {:?}", name.0));
                        }
                        if !e.op.makes_fd() {
                            return Err(format!(
                                "as={}: only an entry that makes a descriptor of the process \
                                 (no file-index=) names it",
                                name.0
                            ));
                        }
                        if matches!(e.op, Op::Accept { multi: true, .. }) {
                            return Err(format!(
                                "as={}: a multishot accept makes many descriptors",
                                name.0
                            ));
                        }
                        if ends.contains(&name.0) {
                            return Err(format!("descriptor {} named twice", name.0));
                        }
                        ends.push(name.0.clone());
                    }
                }
                Step::WritePeer { fd, .. } | Step::ClosePeer { fd } => known(&ends, fd)?,
                Step::Wait(_) => waits += 1,
                Step::WaitRing { ring, .. } => {
                    declared(&ring.0, true)?;
                    waits += 1;
                }
                Step::CloseRing { ring } => declared(&ring.0, true)?,
                Step::EndChild { child } => declared(child, false)?,
            }
        }
        if let Some(expected) = &self.expected
            && expected.groups.len() != waits + 1
        {
            return Err(format!(
                "expectations for {} waits, but the program has {waits}",
                expected.groups.len().saturating_sub(1)
            ));
        }
        Ok(())
    }

    /// Every entry, in submission order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.steps.iter().flat_map(|s| match s {
            Step::Submit(entries) => entries.as_slice(),
            _ => &[],
        })
    }
}
