//! The bad-input table: every operation given a descriptor that is closed,
//! -1, of the wrong kind, a length of nothing or too much, and the rows of
//! cancels, timeouts, links and `user_data` that a careless or hostile
//! program writes. Each row runs on kqring in both driving modes and on
//! Linux's io_uring (the `io-uring` crate) in the same test, and each must
//! give the answer the row writes: io_uring's, and kqring's where it
//! differs. The table in docs/semantics.md ("Bad input") is this table,
//! checked by `the_documented_table_is_this_table`.

#![cfg(target_os = "linux")]

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{IntoRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::PATIENCE;
use io_uring::{IoUring, opcode, squeue, types};
use kqring::ops::{self as kq, CancelTarget};
use kqring::{Mode, Ring, SqeFlags};

/// How long an entry that has not completed is given before it counts as
/// waiting. It is then cancelled, and counts as waiting only if the cancel
/// is what ends it, so a slow completion is still seen for what it is.
const QUIET: Duration = Duration::from_millis(100);

/// One buffer more than a vectored call takes (`IOV_MAX`).
const TOO_MANY: usize = 1025;

/// The `user_data` of the cancels that end what still waits (never shown).
const CLEANUP: u64 = 1 << 40;

/// What a row's operation is given as its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A number that was open and is closed now.
    Closed,
    MinusOne,
    /// A regular file holding "hello world", at position 0.
    File,
    Dir,
    /// The read end of an empty pipe.
    PipeR,
    /// The write end of an empty pipe.
    PipeW,
    /// An eventfd whose counter is 0.
    EventFd,
    /// A timerfd never armed.
    TimerFd,
    /// An inotify descriptor with no event.
    Inotify,
    Epoll,
    /// A connected TCP socket, nothing received.
    Socket,
}

use Input::*;

impl Input {
    fn name(self) -> &'static str {
        match self {
            Closed => "closed",
            MinusOne => "-1",
            File => "file",
            Dir => "dir",
            PipeR => "pipe-r",
            PipeW => "pipe-w",
            EventFd => "eventfd",
            TimerFd => "timerfd",
            Inotify => "inotify",
            Epoll => "epoll",
            Socket => "socket",
        }
    }
}

/// Every descriptor kind.
const ALL: &[Input] = &[
    Closed, MinusOne, File, Dir, PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll, Socket,
];

/// An operation on one descriptor, with the arguments its row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// 8 bytes at the current position.
    Read,
    /// "12345678" at the current position.
    Write,
    Readv,
    Writev,
    Recv,
    Send,
    RecvMsg,
    SendMsg,
    Accept,
    /// To a TCP listener on 127.0.0.1.
    Connect,
    /// To 127.0.0.1:0.
    Bind,
    Listen,
    /// `SHUT_WR`.
    Shutdown,
    /// `POLLIN`.
    PollAdd,
    Fsync,
    /// 4096 bytes at 0.
    Fallocate,
    /// To 0 bytes.
    Ftruncate,
    /// `POSIX_FADV_NORMAL` over everything.
    Fadvise,
    /// `statx(fd, "", AT_EMPTY_PATH)`.
    Statx,
    /// `openat(fd, "missing", O_RDONLY)`.
    OpenAt,
    Close,
    /// `AsyncCancel` by descriptor.
    CancelFd,
    /// A read into an empty buffer.
    ReadEmpty,
    WriteEmpty,
    RecvEmpty,
    SendEmpty,
    /// A readv of no buffer.
    ReadvNone,
    WritevNone,
    /// A read at offset `u64::MAX - 1` (negative as `off_t`).
    ReadNegativeOffset,
    /// `fallocate` of `u64::MAX` bytes (negative as `off_t`).
    FallocateHuge,
    /// `ftruncate` to `u64::MAX` bytes (negative as `off_t`).
    FtruncateHuge,
    /// A write at offset `u64::MAX - 1` (negative as `off_t`).
    WriteNegativeOffset,
    /// `mkdirat(fd, "new", 0o755)`.
    MkdirAt,
    /// `unlinkat(fd, "missing", 0)`.
    UnlinkAt,
    /// `renameat(fd, "missing", fd, "other")`.
    RenameAt,
    /// `linkat(fd, "missing", fd, "other", 0)`.
    LinkAt,
    /// `symlinkat("missing", fd, "link")`.
    SymlinkAt,
    /// `POLLIN`, multishot.
    PollAddMulti,
    AcceptMulti,
    /// A readv of 1025 (`IOV_MAX` + 1) buffers of 1 byte.
    ReadvTooMany,
    /// A writev of 1025 (`IOV_MAX` + 1) buffers of 1 byte.
    WritevTooMany,
    /// A recvmsg into 1025 buffers of 1 byte.
    RecvMsgTooMany,
    /// A sendmsg of 1025 buffers of 1 byte.
    SendMsgTooMany,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Read => "Read",
            Op::Write => "Write",
            Op::Readv => "Readv",
            Op::Writev => "Writev",
            Op::Recv => "Recv",
            Op::Send => "Send",
            Op::RecvMsg => "RecvMsg",
            Op::SendMsg => "SendMsg",
            Op::Accept => "Accept",
            Op::Connect => "Connect",
            Op::Bind => "Bind",
            Op::Listen => "Listen",
            Op::Shutdown => "Shutdown",
            Op::PollAdd => "PollAdd",
            Op::Fsync => "Fsync",
            Op::Fallocate => "Fallocate",
            Op::Ftruncate => "Ftruncate",
            Op::Fadvise => "Fadvise",
            Op::Statx => "Statx::fd",
            Op::OpenAt => "OpenAt::dir",
            Op::Close => "Close",
            Op::CancelFd => "AsyncCancel by fd",
            Op::ReadEmpty => "Read, len 0",
            Op::WriteEmpty => "Write, len 0",
            Op::RecvEmpty => "Recv, len 0",
            Op::SendEmpty => "Send, len 0",
            Op::ReadvNone => "Readv, no iovec",
            Op::WritevNone => "Writev, no iovec",
            Op::ReadNegativeOffset => "Read, offset -2",
            Op::FallocateHuge => "Fallocate, len u64::MAX",
            Op::FtruncateHuge => "Ftruncate, len u64::MAX",
            Op::WriteNegativeOffset => "Write, offset -2",
            Op::MkdirAt => "MkdirAt::dir",
            Op::UnlinkAt => "UnlinkAt::dir",
            Op::RenameAt => "RenameAt::from_dir, to_dir",
            Op::LinkAt => "LinkAt::from_dir, to_dir",
            Op::SymlinkAt => "SymlinkAt::dir",
            Op::PollAddMulti => "PollAdd, multishot",
            Op::AcceptMulti => "Accept, multishot",
            Op::ReadvTooMany => "Readv, 1025 iovecs",
            Op::WritevTooMany => "Writev, 1025 iovecs",
            Op::RecvMsgTooMany => "RecvMsg, 1025 iovecs",
            Op::SendMsgTooMany => "SendMsg, 1025 iovecs",
        }
    }

    /// Whether a completion of 0 or more is a new descriptor.
    fn makes_fd(self) -> bool {
        matches!(self, Op::Accept | Op::OpenAt)
    }
}

/// One entry of a program, for either backend.
#[derive(Debug, Clone, Copy)]
enum Ent {
    Op(Op, RawFd),
    Nop,
    Cancel(u64, bool),
    Timeout(Duration),
    LinkTimeout(Duration),
    PollRemove(u64),
    TimeoutRemove(u64),
    TimeoutUpdate(u64, Duration),
    RemoveBuffers(u16),
    /// Slot 0 of the ring's file table (which it has not) to `fd`.
    FilesUpdate(RawFd),
    /// `IORING_ASYNC_CANCEL_ANY`.
    CancelAny,
    /// A socket of this domain, `SOCK_STREAM`.
    Socket(i32),
}

#[derive(Debug, Clone, Copy)]
struct E {
    ent: Ent,
    ud: u64,
    link: bool,
}

fn e(ent: Ent, ud: u64) -> E {
    E {
        ent,
        ud,
        link: false,
    }
}

fn linked(ent: Ent, ud: u64) -> E {
    E {
        ent,
        ud,
        link: true,
    }
}

/// A ring the rows run on.
trait Backend: std::marker::Send {
    fn push(&mut self, e: E);
    fn submit(&mut self);
    /// The next completion (user_data, res, `F_MORE`), if one comes
    /// within `within`.
    fn next(&mut self, within: Duration) -> Option<(u64, i32, bool)>;
}

/// The address `Connect` connects to.
fn listener_addr() -> SocketAddr {
    static LISTENER: std::sync::OnceLock<TcpListener> = std::sync::OnceLock::new();
    LISTENER
        .get_or_init(|| TcpListener::bind("127.0.0.1:0").expect("listener"))
        .local_addr()
        .unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

struct Kq(Ring);

impl Kq {
    fn new(mode: Mode) -> Kq {
        Kq(Ring::builder()
            .mode(mode)
            .sq_entries(32)
            .build()
            .expect("ring"))
    }
}

fn kq_op(op: Op, fd: RawFd) -> kqring::Sqe {
    let eight = || BytesMut::with_capacity(8);
    let data = || Bytes::from_static(b"12345678");
    let four = || vec![BytesMut::with_capacity(4), BytesMut::with_capacity(4)];
    let halves = || vec![Bytes::from_static(b"1234"), Bytes::from_static(b"5678")];
    match op {
        Op::Read => kq::Read::new(fd, eight()).offset(u64::MAX).build(),
        Op::Write => kq::Write::new(fd, data()).offset(u64::MAX).build(),
        Op::Readv => kq::Readv::new(fd, four()).offset(u64::MAX).build(),
        Op::Writev => kq::Writev::new(fd, halves()).offset(u64::MAX).build(),
        Op::Recv => kq::Recv::new(fd, eight()).build(),
        Op::Send => kq::Send::new(fd, data()).build(),
        Op::RecvMsg => kq::RecvMsg::new(fd, four()).build(),
        Op::SendMsg => kq::SendMsg::new(fd, halves()).build(),
        Op::Accept => kq::Accept::new(fd).build(),
        Op::Connect => kq::Connect::new(fd, listener_addr()).build(),
        Op::Bind => kq::Bind::new(fd, any_port()).build(),
        Op::Listen => kq::Listen::new(fd, 16).build(),
        Op::Shutdown => kq::Shutdown::new(fd, std::net::Shutdown::Write).build(),
        Op::PollAdd => kq::PollAdd::new(fd, libc::POLLIN as u32).build(),
        Op::Fsync => kq::Fsync::new(fd).build(),
        Op::Fallocate => kq::Fallocate::new(fd, 0, 4096).build(),
        Op::Ftruncate => kq::Ftruncate::new(fd, 0).build(),
        Op::Fadvise => kq::Fadvise::new(fd, 0, 0, kq::Advice::Normal).build(),
        Op::Statx => kq::Statx::fd(fd).build(),
        Op::OpenAt => kq::OpenAt::new("missing", libc::O_RDONLY).dir(fd).build(),
        Op::Close => kq::Close::new(fd).build(),
        Op::CancelFd => kq::AsyncCancel::matching(CancelTarget::Fd(fd)).build(),
        Op::ReadEmpty => kq::Read::new(fd, BytesMut::new()).offset(u64::MAX).build(),
        Op::WriteEmpty => kq::Write::new(fd, Bytes::new()).offset(u64::MAX).build(),
        Op::RecvEmpty => kq::Recv::new(fd, BytesMut::new()).build(),
        Op::SendEmpty => kq::Send::new(fd, Bytes::new()).build(),
        Op::ReadvNone => kq::Readv::<BytesMut>::new(fd, vec![])
            .offset(u64::MAX)
            .build(),
        Op::WritevNone => kq::Writev::<Bytes>::new(fd, vec![])
            .offset(u64::MAX)
            .build(),
        Op::ReadNegativeOffset => kq::Read::new(fd, eight()).offset(u64::MAX - 1).build(),
        Op::FallocateHuge => kq::Fallocate::new(fd, 0, u64::MAX).build(),
        Op::FtruncateHuge => kq::Ftruncate::new(fd, u64::MAX).build(),
        Op::WriteNegativeOffset => kq::Write::new(fd, data()).offset(u64::MAX - 1).build(),
        Op::MkdirAt => kq::MkdirAt::new("new").dir(fd).mode(0o755).build(),
        Op::UnlinkAt => kq::UnlinkAt::new("missing").dir(fd).build(),
        Op::RenameAt => kq::RenameAt::new("missing", "other")
            .from_dir(fd)
            .to_dir(fd)
            .build(),
        Op::LinkAt => kq::LinkAt::new("missing", "other")
            .from_dir(fd)
            .to_dir(fd)
            .build(),
        Op::SymlinkAt => kq::SymlinkAt::new("missing", "link").dir(fd).build(),
        Op::PollAddMulti => kq::PollAdd::new(fd, libc::POLLIN as u32)
            .multishot(true)
            .build(),
        Op::AcceptMulti => kq::Accept::new(fd).multishot(true).build(),
        Op::ReadvTooMany => kq::Readv::new(fd, vec![BytesMut::with_capacity(1); TOO_MANY])
            .offset(u64::MAX)
            .build(),
        Op::WritevTooMany => kq::Writev::new(fd, vec![Bytes::from_static(b"x"); TOO_MANY])
            .offset(u64::MAX)
            .build(),
        Op::RecvMsgTooMany => {
            kq::RecvMsg::new(fd, vec![BytesMut::with_capacity(1); TOO_MANY]).build()
        }
        Op::SendMsgTooMany => {
            kq::SendMsg::new(fd, vec![Bytes::from_static(b"x"); TOO_MANY]).build()
        }
    }
}

impl Backend for Kq {
    fn push(&mut self, e: E) {
        let sqe = match e.ent {
            Ent::Op(op, fd) => kq_op(op, fd),
            Ent::Nop => kq::Nop::new().build(),
            Ent::Cancel(ud, all) => kq::AsyncCancel::new(ud).all(all).build(),
            Ent::Timeout(d) => kq::Timeout::new(d).build(),
            Ent::LinkTimeout(d) => kq::LinkTimeout::new(d).build(),
            Ent::PollRemove(ud) => kq::PollRemove::new(ud).build(),
            Ent::TimeoutRemove(ud) => kq::TimeoutRemove::new(ud).build(),
            Ent::TimeoutUpdate(ud, d) => kq::TimeoutUpdate::new(ud, d).build(),
            Ent::RemoveBuffers(group) => kq::RemoveBuffers::new(group, 1).build(),
            Ent::FilesUpdate(fd) => kq::FilesUpdate::new(kq::FileSlot::Index(0), vec![fd]).build(),
            Ent::CancelAny => kq::AsyncCancel::matching(CancelTarget::Any).build(),
            Ent::Socket(domain) => kq::Socket::new(domain, libc::SOCK_STREAM, 0).build(),
        };
        let flags = if e.link {
            SqeFlags::IO_LINK
        } else {
            SqeFlags::empty()
        };
        self.0
            .submission()
            .push(sqe.user_data(e.ud).flags(flags))
            .expect("room in the submission queue");
    }

    fn submit(&mut self) {
        self.0.submission().submit().expect("submit");
    }

    fn next(&mut self, within: Duration) -> Option<(u64, i32, bool)> {
        let c = self.0.completion().wait_timeout(within).expect("wait")?;
        Some((c.user_data(), c.result(), c.is_more()))
    }
}

/// Memory an io_uring entry points into, kept until the ring is gone.
struct Keep(#[allow(dead_code)] Box<dyn std::any::Any>);

// SAFETY: the kept memory is only ever touched by the kernel, through the
// entries; the boxes move with the ring, never shared between threads.
unsafe impl std::marker::Send for Keep {}

struct Ur {
    // Declared first: dropped before the memory its entries point into.
    ring: IoUring,
    keep: Vec<Keep>,
    ready: VecDeque<(u64, i32, bool)>,
}

impl Ur {
    fn new() -> Option<Ur> {
        match IoUring::new(32) {
            Ok(ring) => Some(Ur {
                ring,
                keep: Vec::new(),
                ready: VecDeque::new(),
            }),
            Err(err) => {
                println!(
                    "io_uring unavailable ({err}): kqring is held to the written answers only"
                );
                None
            }
        }
    }

    fn keep<T: 'static>(&mut self, v: T) -> *mut T {
        let mut b = Box::new(v);
        let p: *mut T = &mut *b;
        self.keep.push(Keep(b));
        p
    }

    fn bytes(&mut self, len: usize, fill: &[u8]) -> *mut u8 {
        let mut v = vec![0u8; len.max(1)];
        v[..fill.len()].copy_from_slice(fill);
        let p = v.as_mut_ptr();
        self.keep.push(Keep(Box::new(v)));
        p
    }

    fn iovecs(&mut self, parts: &[&[u8]], room: usize) -> (*mut libc::iovec, u32) {
        let iovs: Vec<libc::iovec> = parts
            .iter()
            .map(|p| libc::iovec {
                iov_base: self.bytes(room.max(p.len()), p).cast(),
                iov_len: room.max(p.len()),
            })
            .collect();
        let n = iovs.len() as u32;
        let mut iovs = iovs.into_boxed_slice();
        let p = iovs.as_mut_ptr();
        self.keep.push(Keep(Box::new(iovs)));
        (p, n)
    }

    fn msghdr(&mut self, parts: &[&[u8]], room: usize) -> *mut libc::msghdr {
        let (iov, n) = self.iovecs(parts, room);
        // SAFETY: a zeroed msghdr is valid (no name, no control).
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = iov;
        m.msg_iovlen = n as _;
        self.keep(m)
    }

    fn sockaddr(&mut self, addr: SocketAddr) -> (*const libc::sockaddr, libc::socklen_t) {
        let SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only")
        };
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let p = self.keep(sin);
        (
            p.cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    }

    fn cstr(&mut self, s: &str) -> *const libc::c_char {
        let c = CString::new(s).unwrap();
        let p = c.as_ptr();
        self.keep.push(Keep(Box::new(c)));
        p
    }

    fn op(&mut self, op: Op, fd: RawFd) -> squeue::Entry {
        let f = types::Fd(fd);
        let halves: &[&[u8]] = &[b"1234", b"5678"];
        let empty: &[&[u8]] = &[b"", b""];
        match op {
            Op::Read => opcode::Read::new(f, self.bytes(8, b""), 8)
                .offset(u64::MAX)
                .build(),
            Op::Write => opcode::Write::new(f, self.bytes(8, b"12345678"), 8)
                .offset(u64::MAX)
                .build(),
            Op::Readv => {
                let (iov, n) = self.iovecs(empty, 4);
                opcode::Readv::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::Writev => {
                let (iov, n) = self.iovecs(halves, 0);
                opcode::Writev::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::Recv => opcode::Recv::new(f, self.bytes(8, b""), 8).build(),
            Op::Send => opcode::Send::new(f, self.bytes(8, b"12345678"), 8).build(),
            Op::RecvMsg => opcode::RecvMsg::new(f, self.msghdr(empty, 4)).build(),
            Op::SendMsg => opcode::SendMsg::new(f, self.msghdr(halves, 0)).build(),
            Op::Accept => {
                opcode::Accept::new(f, std::ptr::null_mut(), std::ptr::null_mut()).build()
            }
            Op::Connect => {
                let (a, l) = self.sockaddr(listener_addr());
                opcode::Connect::new(f, a, l).build()
            }
            Op::Bind => {
                let (a, l) = self.sockaddr(any_port());
                opcode::Bind::new(f, a, l).build()
            }
            Op::Listen => opcode::Listen::new(f, 16).build(),
            Op::Shutdown => opcode::Shutdown::new(f, libc::SHUT_WR).build(),
            Op::PollAdd => opcode::PollAdd::new(f, libc::POLLIN as u32).build(),
            Op::Fsync => opcode::Fsync::new(f).build(),
            Op::Fallocate => opcode::Fallocate::new(f, 4096).build(),
            Op::Ftruncate => opcode::Ftruncate::new(f, 0).build(),
            Op::Fadvise => opcode::Fadvise::new(f, 0, libc::POSIX_FADV_NORMAL).build(),
            Op::Statx => {
                // SAFETY: an all-zero statx is a valid value to be filled.
                let buf = self.keep(unsafe { std::mem::zeroed::<libc::statx>() });
                opcode::Statx::new(f, self.cstr(""), buf.cast())
                    .flags(libc::AT_EMPTY_PATH)
                    .mask(libc::STATX_BASIC_STATS)
                    .build()
            }
            Op::OpenAt => opcode::OpenAt::new(f, self.cstr("missing"))
                .flags(libc::O_RDONLY | libc::O_CLOEXEC)
                .build(),
            Op::Close => opcode::Close::new(f).build(),
            Op::CancelFd => opcode::AsyncCancel2::new(types::CancelBuilder::fd(f)).build(),
            Op::ReadEmpty => opcode::Read::new(f, self.bytes(0, b""), 0)
                .offset(u64::MAX)
                .build(),
            Op::WriteEmpty => opcode::Write::new(f, self.bytes(0, b""), 0)
                .offset(u64::MAX)
                .build(),
            Op::RecvEmpty => opcode::Recv::new(f, self.bytes(0, b""), 0).build(),
            Op::SendEmpty => opcode::Send::new(f, self.bytes(0, b""), 0).build(),
            Op::ReadvNone => {
                let (iov, n) = self.iovecs(&[], 0);
                opcode::Readv::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::WritevNone => {
                let (iov, n) = self.iovecs(&[], 0);
                opcode::Writev::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::ReadNegativeOffset => opcode::Read::new(f, self.bytes(8, b""), 8)
                .offset(u64::MAX - 1)
                .build(),
            Op::FallocateHuge => opcode::Fallocate::new(f, u64::MAX).build(),
            Op::FtruncateHuge => opcode::Ftruncate::new(f, u64::MAX).build(),
            Op::WriteNegativeOffset => opcode::Write::new(f, self.bytes(8, b"12345678"), 8)
                .offset(u64::MAX - 1)
                .build(),
            Op::MkdirAt => opcode::MkDirAt::new(f, self.cstr("new"))
                .mode(0o755)
                .build(),
            Op::UnlinkAt => opcode::UnlinkAt::new(f, self.cstr("missing")).build(),
            Op::RenameAt => {
                opcode::RenameAt::new(f, self.cstr("missing"), f, self.cstr("other")).build()
            }
            Op::LinkAt => {
                opcode::LinkAt::new(f, self.cstr("missing"), f, self.cstr("other")).build()
            }
            Op::SymlinkAt => {
                opcode::SymlinkAt::new(f, self.cstr("missing"), self.cstr("link")).build()
            }
            Op::PollAddMulti => opcode::PollAdd::new(f, libc::POLLIN as u32)
                .multi(true)
                .build(),
            Op::AcceptMulti => opcode::AcceptMulti::new(f).build(),
            Op::ReadvTooMany => {
                let (iov, n) = self.iovecs(&[&b""[..]; TOO_MANY], 1);
                opcode::Readv::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::WritevTooMany => {
                let (iov, n) = self.iovecs(&[&b"x"[..]; TOO_MANY], 1);
                opcode::Writev::new(f, iov, n).offset(u64::MAX).build()
            }
            Op::RecvMsgTooMany => {
                opcode::RecvMsg::new(f, self.msghdr(&[&b""[..]; TOO_MANY], 1)).build()
            }
            Op::SendMsgTooMany => {
                opcode::SendMsg::new(f, self.msghdr(&[&b"x"[..]; TOO_MANY], 1)).build()
            }
        }
    }

    fn timespec(&mut self, d: Duration) -> *const types::Timespec {
        self.keep(types::Timespec::from(d))
    }
}

impl Backend for Ur {
    fn push(&mut self, e: E) {
        let entry = match e.ent {
            Ent::Op(op, fd) => self.op(op, fd),
            Ent::Nop => opcode::Nop::new().build(),
            Ent::Cancel(ud, all) => {
                let mut b = types::CancelBuilder::user_data(ud);
                if all {
                    b = b.all();
                }
                opcode::AsyncCancel2::new(b).build()
            }
            Ent::Timeout(d) => opcode::Timeout::new(self.timespec(d)).build(),
            Ent::LinkTimeout(d) => opcode::LinkTimeout::new(self.timespec(d)).build(),
            Ent::PollRemove(ud) => opcode::PollRemove::new(ud).build(),
            Ent::TimeoutRemove(ud) => opcode::TimeoutRemove::new(ud).build(),
            Ent::TimeoutUpdate(ud, d) => opcode::TimeoutUpdate::new(ud, self.timespec(d)).build(),
            Ent::RemoveBuffers(group) => opcode::RemoveBuffers::new(1, group).build(),
            Ent::FilesUpdate(fd) => opcode::FilesUpdate::new(self.keep(fd), 1).build(),
            Ent::CancelAny => opcode::AsyncCancel2::new(types::CancelBuilder::any()).build(),
            Ent::Socket(domain) => opcode::Socket::new(domain, libc::SOCK_STREAM, 0).build(),
        };
        let flags = if e.link {
            squeue::Flags::IO_LINK
        } else {
            squeue::Flags::empty()
        };
        // SAFETY: all memory the entry points into is in `self.keep`,
        // which outlives the ring.
        unsafe {
            self.ring
                .submission()
                .push(&entry.user_data(e.ud).flags(flags))
                .expect("room in the submission queue");
        }
    }

    fn submit(&mut self) {
        self.ring.submit().expect("io_uring submit");
    }

    fn next(&mut self, within: Duration) -> Option<(u64, i32, bool)> {
        let deadline = Instant::now() + within;
        loop {
            self.ready.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), io_uring::cqueue::more(c.flags()))),
            );
            if let Some(c) = self.ready.pop_front() {
                return Some(c);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let ts = types::Timespec::from(left);
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(e) => panic!("io_uring wait: {e}"),
            }
        }
    }
}

/// What a run of entries gave: for each `user_data`, its results in the
/// order they came, `waits` for an entry still pending after `QUIET` that
/// its cancel ended.
#[derive(Default)]
struct Outcome {
    results: BTreeMap<u64, Vec<String>>,
    /// New descriptors the entries made (closed when rendered).
    fds: Vec<RawFd>,
}

/// Collects the completions of the entries `pushed` (user_data, count,
/// whether a non-negative result is a descriptor), cancelling what still
/// waits after `QUIET`.
fn collect(b: &mut dyn Backend, pushed: &[(u64, usize, bool)]) -> Outcome {
    let mut out = Outcome::default();
    let mut left: BTreeMap<u64, (usize, bool)> = BTreeMap::new();
    for &(ud, n, fd) in pushed {
        let slot = left.entry(ud).or_insert((0, fd));
        slot.0 += n;
        slot.1 |= fd;
    }
    let record =
        |out: &mut Outcome, left: &mut BTreeMap<u64, (usize, bool)>, ud, res, more, cancelled| {
            let Some(slot) = left.get_mut(&ud) else {
                panic!("a completion of an unknown user_data {ud}: {res}")
            };
            assert!(slot.0 > 0, "more completions of {ud} than entries");
            if more {
                // A multishot's: it goes on.
                out.results
                    .entry(ud)
                    .or_default()
                    .push(format!("{} more", render(res)));
                return;
            }
            slot.0 -= 1;
            let shown = if cancelled && res == -libc::ECANCELED {
                "waits".to_string()
            } else if slot.1 && res >= 0 {
                out.fds.push(res);
                "fd".to_string()
            } else {
                render(res)
            };
            out.results.entry(ud).or_default().push(shown);
        };
    while left.values().any(|s| s.0 > 0) {
        match b.next(QUIET) {
            Some((ud, res, more)) => record(&mut out, &mut left, ud, res, more, false),
            None => break,
        }
    }
    // What still waits: cancel it, by user_data, in order.
    let waiting: Vec<u64> = left.iter().filter(|s| s.1.0 > 0).map(|s| *s.0).collect();
    for ud in waiting {
        if left[&ud].0 == 0 {
            continue;
        }
        b.push(e(Ent::Cancel(ud, true), CLEANUP + ud));
        b.submit();
        let deadline = Instant::now() + PATIENCE;
        let mut cancel_done = false;
        while left[&ud].0 > 0 || !cancel_done {
            let within = deadline.saturating_duration_since(Instant::now());
            let (cud, res, more) = b
                .next(within)
                .unwrap_or_else(|| panic!("user_data {ud} did not end after its cancel"));
            if cud == CLEANUP + ud {
                cancel_done = true;
            } else if cud < CLEANUP {
                record(&mut out, &mut left, cud, res, more, true);
            }
        }
    }
    out
}

impl Outcome {
    /// One entry, `ud=1`: its answer alone; more: `ud:answer` each.
    fn render(self) -> String {
        for fd in &self.fds {
            // SAFETY: a descriptor the row's entry made, owned by no one.
            unsafe { libc::close(*fd) };
        }
        let single = self.results.len() == 1 && self.results.get(&1).is_some_and(|r| r.len() == 1);
        if single {
            return self.results[&1][0].clone();
        }
        self.results
            .iter()
            .flat_map(|(ud, rs)| rs.iter().map(move |r| format!("{ud}:{r}")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `-ENAME` for an errno this table meets, else the number.
fn render(res: i32) -> String {
    const NAMES: &[(i32, &str)] = &[
        (libc::EBADF, "EBADF"),
        (libc::EINVAL, "EINVAL"),
        (libc::ENOTSOCK, "ENOTSOCK"),
        (libc::ESPIPE, "ESPIPE"),
        (libc::EISDIR, "EISDIR"),
        (libc::ENOTDIR, "ENOTDIR"),
        (libc::ENOENT, "ENOENT"),
        (libc::ENODEV, "ENODEV"),
        (libc::EOPNOTSUPP, "EOPNOTSUPP"),
        (libc::EISCONN, "EISCONN"),
        (libc::ENOTCONN, "ENOTCONN"),
        (libc::EFBIG, "EFBIG"),
        (libc::EAGAIN, "EAGAIN"),
        (libc::ECANCELED, "ECANCELED"),
        (libc::ETIME, "ETIME"),
        (libc::EALREADY, "EALREADY"),
        (libc::EPIPE, "EPIPE"),
        (libc::EFAULT, "EFAULT"),
        (libc::EACCES, "EACCES"),
        (libc::EPERM, "EPERM"),
        (libc::ENXIO, "ENXIO"),
        (libc::EROFS, "EROFS"),
        (libc::EDESTADDRREQ, "EDESTADDRREQ"),
        (libc::EADDRINUSE, "EADDRINUSE"),
        (libc::EMSGSIZE, "EMSGSIZE"),
        (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
    ];
    if res >= 0 {
        return res.to_string();
    }
    match NAMES.iter().find(|(e, _)| *e == -res) {
        Some((_, n)) => format!("-{n}"),
        None => res.to_string(),
    }
}

/// The descriptors of one run: the one the row names and what it needs.
struct Fds {
    target: RawFd,
    owned: Vec<RawFd>,
    /// A directory made for the run, removed with what the run made in it.
    scratch: Option<std::path::PathBuf>,
}

impl Drop for Fds {
    fn drop(&mut self) {
        for &fd in &self.owned {
            // SAFETY: descriptors this run opened and nothing else owns.
            unsafe { libc::close(fd) };
        }
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn check_fd(what: &str, fd: RawFd) -> RawFd {
    assert!(fd >= 0, "{what}: {}", std::io::Error::last_os_error());
    fd
}

fn open(input: Input) -> Fds {
    let one = |fd| Fds {
        target: fd,
        owned: vec![fd],
        scratch: None,
    };
    let pipe = || {
        let mut p = [0; 2];
        // SAFETY: `p` has room for the two descriptors.
        let r = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(r, 0, "pipe2: {}", std::io::Error::last_os_error());
        p
    };
    match input {
        Closed => {
            // A number well above those the process has open, so that no
            // other thread is handed it while the row runs.
            let above = (common::raise_nofile() / 2).min(4096) as libc::c_int;
            let p = pipe();
            // SAFETY: F_DUPFD takes no pointer.
            let fd = check_fd("dup", unsafe {
                libc::fcntl(p[0], libc::F_DUPFD_CLOEXEC, above)
            });
            // SAFETY: three descriptors this run opened, closed once.
            unsafe {
                libc::close(fd);
                libc::close(p[0]);
                libc::close(p[1]);
            }
            Fds {
                target: fd,
                owned: vec![],
                scratch: None,
            }
        }
        MinusOne => Fds {
            target: -1,
            owned: vec![],
            scratch: None,
        },
        File => {
            let dir =
                CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path; the descriptor is owned below.
            let fd = check_fd("O_TMPFILE", unsafe {
                libc::open(
                    dir.as_ptr(),
                    libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                    0o600,
                )
            });
            let text = b"hello world";
            // SAFETY: `text` is readable for its length.
            let n = unsafe { libc::pwrite(fd, text.as_ptr().cast(), text.len(), 0) };
            assert_eq!(n, text.len() as isize);
            one(fd)
        }
        Dir => {
            // A directory of its own: the rows make entries in it.
            static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path =
                std::env::temp_dir().join(format!("kqring-bad-input-{}-{n}", std::process::id()));
            std::fs::create_dir(&path).expect("a scratch directory");
            let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: a NUL-terminated path; the descriptor is owned below.
            let fd = check_fd("open dir", unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            });
            Fds {
                target: fd,
                owned: vec![fd],
                scratch: Some(path),
            }
        }
        PipeR | PipeW => {
            let p = pipe();
            Fds {
                target: if input == PipeR { p[0] } else { p[1] },
                owned: p.to_vec(),
                scratch: None,
            }
        }
        // SAFETY (these four): no pointers; the new descriptor is owned
        // by the `Fds` it goes into.
        EventFd => one(check_fd("eventfd", unsafe {
            libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC)
        })),
        TimerFd => one(check_fd("timerfd", unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        })),
        Inotify => one(check_fd("inotify", unsafe {
            libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC)
        })),
        Epoll => one(check_fd("epoll", unsafe {
            libc::epoll_create1(libc::EPOLL_CLOEXEC)
        })),
        Socket => {
            let (client, server) = common::tcp_pair();
            client.set_nonblocking(true).unwrap();
            server.set_nonblocking(true).unwrap();
            let (c, s) = (client.into_raw_fd(), server.into_raw_fd());
            Fds {
                target: c,
                owned: vec![c, s],
                scratch: None,
            }
        }
    }
}

/// A row whose program is not one operation on one descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// `Timeout` of 0.
    TimeoutZero,
    /// A read of an empty pipe, linked to a `LinkTimeout` of 0.
    LinkTimeoutZeroOnWaiting,
    /// A `Nop`, linked to a `LinkTimeout` of 0.
    LinkTimeoutZeroOnDone,
    /// A cancel of a `user_data` nothing has.
    CancelUnknown,
    /// A cancel of its own `user_data`.
    CancelItself,
    /// Two reads of an empty pipe with one `user_data`, then a cancel of it.
    DuplicateCancelOne,
    /// The same, the cancel with `all`.
    DuplicateCancelAll,
    /// A read of an empty pipe, `IO_LINK` and last of its submission; a
    /// `Nop` in the next submission.
    LinkAtEnd,
    /// A read of an empty pipe, `IO_LINK`; another thread pushes a `Nop`;
    /// then the submit.
    LinkThenOtherThread,
    /// A `PollRemove` of a `user_data` nothing has.
    PollRemoveUnknown,
    /// A `TimeoutRemove` of a `user_data` nothing has.
    TimeoutRemoveUnknown,
    /// A `TimeoutUpdate` of a `user_data` nothing has.
    TimeoutUpdateUnknown,
    /// A `TimeoutUpdate` of a waiting `Timeout` to 0.
    TimeoutUpdateToZero,
    /// A `RemoveBuffers` of a group never provided.
    RemoveBuffersUnknown,
    /// A `FilesUpdate` of a ring with no file table.
    FilesUpdateNoTable,
    /// A `LinkTimeout` with no entry before it.
    LinkTimeoutAlone,
    /// A cancel with `all` of a `user_data` nothing has.
    CancelAllUnknown,
    /// A cancel of any operation, when there is none.
    CancelAnyNothing,
    /// A `Socket` of domain -1.
    SocketBadDomain,
}

impl Special {
    fn name(self) -> (&'static str, &'static str) {
        match self {
            Special::TimeoutZero => ("Timeout", "0 s (ud 1)"),
            Special::LinkTimeoutZeroOnWaiting => {
                ("LinkTimeout", "0 s, after a waiting read (ud 1, 2)")
            }
            Special::LinkTimeoutZeroOnDone => ("LinkTimeout", "0 s, after a Nop (ud 1, 2)"),
            Special::CancelUnknown => ("AsyncCancel", "user_data nothing has (ud 1)"),
            Special::CancelItself => ("AsyncCancel", "its own user_data (ud 1)"),
            Special::DuplicateCancelOne => (
                "AsyncCancel",
                "two waiting reads share ud 1; cancel of 1 (ud 2)",
            ),
            Special::DuplicateCancelAll => (
                "AsyncCancel all",
                "two waiting reads share ud 1; cancel of 1 (ud 2)",
            ),
            Special::LinkAtEnd => (
                "IO_LINK",
                "on the last entry of a submission (waiting read, ud 1); a Nop (ud 2) submitted next",
            ),
            Special::LinkThenOtherThread => (
                "IO_LINK",
                "waiting read (ud 1); another thread pushes a Nop (ud 2); then submit",
            ),
            Special::PollRemoveUnknown => ("PollRemove", "user_data nothing has (ud 1)"),
            Special::TimeoutRemoveUnknown => ("TimeoutRemove", "user_data nothing has (ud 1)"),
            Special::TimeoutUpdateUnknown => ("TimeoutUpdate", "user_data nothing has (ud 1)"),
            Special::TimeoutUpdateToZero => {
                ("TimeoutUpdate", "a 60 s Timeout (ud 1) to 0 s (ud 2)")
            }
            Special::RemoveBuffersUnknown => ("RemoveBuffers", "a group never provided (ud 1)"),
            Special::FilesUpdateNoTable => ("FilesUpdate", "a ring with no file table (ud 1)"),
            Special::LinkTimeoutAlone => ("LinkTimeout", "no entry before it (ud 1)"),
            Special::CancelAllUnknown => ("AsyncCancel all", "user_data nothing has (ud 1)"),
            Special::CancelAnyNothing => ("AsyncCancel any", "nothing pending (ud 1)"),
            Special::SocketBadDomain => ("Socket", "domain -1 (ud 1)"),
        }
    }

    fn run(self, b: &mut dyn Backend) -> String {
        let pipe = open(PipeR);
        let read = Ent::Op(Op::Read, pipe.target);
        let zero = Duration::ZERO;
        let pushed: Vec<(u64, usize, bool)> = match self {
            Special::TimeoutZero => {
                b.push(e(Ent::Timeout(zero), 1));
                vec![(1, 1, false)]
            }
            Special::LinkTimeoutZeroOnWaiting | Special::LinkTimeoutZeroOnDone => {
                let first = if self == Special::LinkTimeoutZeroOnDone {
                    Ent::Nop
                } else {
                    read
                };
                b.push(linked(first, 1));
                b.push(e(Ent::LinkTimeout(zero), 2));
                vec![(1, 1, false), (2, 1, false)]
            }
            Special::CancelUnknown => {
                b.push(e(Ent::Cancel(77, false), 1));
                vec![(1, 1, false)]
            }
            Special::CancelItself => {
                b.push(e(Ent::Cancel(1, false), 1));
                vec![(1, 1, false)]
            }
            Special::DuplicateCancelOne | Special::DuplicateCancelAll => {
                b.push(e(read, 1));
                b.push(e(read, 1));
                b.submit();
                b.push(e(Ent::Cancel(1, self == Special::DuplicateCancelAll), 2));
                vec![(1, 2, false), (2, 1, false)]
            }
            Special::LinkAtEnd => {
                b.push(linked(read, 1));
                b.submit();
                b.push(e(Ent::Nop, 2));
                vec![(1, 1, false), (2, 1, false)]
            }
            Special::LinkThenOtherThread => {
                b.push(linked(read, 1));
                std::thread::scope(|s| {
                    s.spawn(|| b.push(e(Ent::Nop, 2))).join().unwrap();
                });
                vec![(1, 1, false), (2, 1, false)]
            }
            Special::PollRemoveUnknown => {
                b.push(e(Ent::PollRemove(77), 1));
                vec![(1, 1, false)]
            }
            Special::TimeoutRemoveUnknown => {
                b.push(e(Ent::TimeoutRemove(77), 1));
                vec![(1, 1, false)]
            }
            Special::TimeoutUpdateUnknown => {
                b.push(e(Ent::TimeoutUpdate(77, Duration::from_secs(1)), 1));
                vec![(1, 1, false)]
            }
            Special::TimeoutUpdateToZero => {
                b.push(e(Ent::Timeout(Duration::from_secs(60)), 1));
                b.submit();
                b.push(e(Ent::TimeoutUpdate(1, zero), 2));
                vec![(1, 1, false), (2, 1, false)]
            }
            Special::RemoveBuffersUnknown => {
                b.push(e(Ent::RemoveBuffers(9), 1));
                vec![(1, 1, false)]
            }
            Special::FilesUpdateNoTable => {
                b.push(e(Ent::FilesUpdate(pipe.target), 1));
                vec![(1, 1, false)]
            }
            Special::LinkTimeoutAlone => {
                b.push(e(Ent::LinkTimeout(Duration::from_secs(1)), 1));
                vec![(1, 1, false)]
            }
            Special::CancelAllUnknown => {
                b.push(e(Ent::Cancel(77, true), 1));
                vec![(1, 1, false)]
            }
            Special::CancelAnyNothing => {
                b.push(e(Ent::CancelAny, 1));
                vec![(1, 1, false)]
            }
            Special::SocketBadDomain => {
                b.push(e(Ent::Socket(-1), 1));
                vec![(1, 1, true)]
            }
        };
        b.submit();
        let out = collect(b, &pushed).render();
        drop(pipe);
        out
    }
}

/// What a row runs.
#[derive(Debug, Clone, Copy)]
enum What {
    /// The operation on each of the inputs.
    Op(Op, &'static [Input]),
    Special(Special),
}

/// One row: what runs, io_uring's answer, kqring's where it differs
/// (`None`: the same), and why it differs.
struct Row {
    what: What,
    uring: &'static str,
    kqring: Option<&'static str>,
    note: &'static str,
}

const fn op(op: Op, inputs: &'static [Input], uring: &'static str) -> Row {
    Row {
        what: What::Op(op, inputs),
        uring,
        kqring: None,
        note: "",
    }
}

const fn special(s: Special, uring: &'static str) -> Row {
    Row {
        what: What::Special(s),
        uring,
        kqring: None,
        note: "",
    }
}

impl Row {
    const fn differs(mut self, kqring: &'static str, note: &'static str) -> Row {
        self.kqring = Some(kqring);
        self.note = note;
        self
    }

    fn cells(&self) -> (String, String) {
        match self.what {
            What::Op(op, inputs) => (
                op.name().to_string(),
                inputs
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            What::Special(s) => {
                let (a, b) = s.name();
                (a.to_string(), b.to_string())
            }
        }
    }
}

/// The table. Descriptors are non-blocking; reads and writes are at the
/// current position; "waits" is pending until cancelled.
const ROWS: &[Row] = &[
    op(Op::Read, &[Closed, MinusOne, PipeW], "-EBADF"),
    op(Op::Read, &[File], "8"),
    op(Op::Read, &[Dir], "-EISDIR"),
    op(Op::Read, &[PipeR, EventFd, TimerFd, Inotify, Epoll, Socket], "waits"),
    op(Op::Write, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::Write, &[File, PipeW, EventFd, Socket], "8"),
    op(Op::Write, &[TimerFd], "-EINVAL"),
    op(Op::Write, &[Epoll], "waits"),
    op(Op::Readv, &[Closed, MinusOne, PipeW], "-EBADF"),
    op(Op::Readv, &[File], "8"),
    op(Op::Readv, &[Dir], "-EISDIR"),
    op(Op::Readv, &[PipeR, EventFd, TimerFd, Inotify, Epoll, Socket], "waits"),
    op(Op::Writev, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::Writev, &[File, PipeW, Socket], "8"),
    op(Op::Writev, &[EventFd, TimerFd], "-EINVAL"),
    op(Op::Writev, &[Epoll], "waits"),
    op(Op::Recv, &[Closed, MinusOne], "-EBADF"),
    op(Op::Recv, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Recv, &[Socket], "waits"),
    op(Op::Send, &[Closed, MinusOne], "-EBADF"),
    op(Op::Send, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Send, &[Socket], "8"),
    op(Op::RecvMsg, &[Closed, MinusOne], "-EBADF"),
    op(Op::RecvMsg, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::RecvMsg, &[Socket], "waits"),
    op(Op::SendMsg, &[Closed, MinusOne], "-EBADF"),
    op(Op::SendMsg, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::SendMsg, &[Socket], "8"),
    op(Op::Accept, &[Closed, MinusOne], "-EBADF"),
    op(Op::Accept, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Accept, &[Socket], "-EINVAL"),
    op(Op::AcceptMulti, &[Closed, MinusOne], "-EBADF"),
    op(Op::AcceptMulti, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::AcceptMulti, &[Socket], "-EINVAL"),
    op(Op::Connect, &[Closed, MinusOne], "-EBADF"),
    op(Op::Connect, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Connect, &[Socket], "-EISCONN"),
    op(Op::Bind, &[Closed, MinusOne], "-EBADF"),
    op(Op::Bind, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Bind, &[Socket], "-EINVAL"),
    op(Op::Listen, &[Closed, MinusOne], "-EBADF"),
    op(Op::Listen, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Listen, &[Socket], "-EINVAL"),
    op(Op::Shutdown, &[Closed, MinusOne], "-EBADF"),
    op(Op::Shutdown, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::Shutdown, &[Socket], "0"),
    op(Op::PollAdd, &[Closed, MinusOne], "-EBADF"),
    op(Op::PollAdd, &[File, Dir], "1"),
    op(Op::PollAdd, STREAMS, "waits"),
    op(Op::PollAddMulti, &[Closed, MinusOne], "-EBADF"),
    op(Op::PollAddMulti, &[File, Dir], "1"),
    op(Op::PollAddMulti, STREAMS, "waits"),
    op(Op::Fsync, &[Closed, MinusOne], "-EBADF"),
    op(Op::Fsync, &[File, Dir], "0"),
    op(Op::Fsync, STREAMS, "-EINVAL"),
    op(Op::Fallocate, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::Fallocate, &[File], "0"),
    op(Op::Fallocate, &[PipeW], "-ESPIPE"),
    op(Op::Fallocate, &[EventFd, TimerFd, Epoll, Socket], "-ENODEV"),
    op(Op::Ftruncate, &[Closed, MinusOne], "-EBADF"),
    op(Op::Ftruncate, &[File], "0"),
    op(Op::Ftruncate, &[Dir, PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll, Socket], "-EINVAL"),
    op(Op::Fadvise, &[Closed, MinusOne], "-EBADF"),
    op(Op::Fadvise, &[File, Dir, EventFd, TimerFd, Inotify, Epoll, Socket], "0"),
    op(Op::Fadvise, &[PipeR, PipeW], "-ESPIPE"),
    op(Op::Statx, &[Closed, MinusOne], "-EBADF"),
    op(Op::Statx, OPEN, "0"),
    op(Op::OpenAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::OpenAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::OpenAt, &[Dir], "-ENOENT"),
    op(Op::MkdirAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::MkdirAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::MkdirAt, &[Dir], "0"),
    op(Op::UnlinkAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::UnlinkAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::UnlinkAt, &[Dir], "-ENOENT"),
    op(Op::RenameAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::RenameAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::RenameAt, &[Dir], "-ENOENT"),
    op(Op::LinkAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::LinkAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::LinkAt, &[Dir], "-ENOENT"),
    op(Op::SymlinkAt, &[Closed, MinusOne], "-EBADF"),
    op(Op::SymlinkAt, NOT_DIRS, "-ENOTDIR"),
    op(Op::SymlinkAt, &[Dir], "0"),
    op(Op::Close, &[Closed, MinusOne], "-EBADF"),
    op(Op::Close, OPEN, "0"),
    op(Op::CancelFd, &[Closed, MinusOne], "-EBADF"),
    op(Op::CancelFd, OPEN, "-ENOENT"),
    op(Op::ReadEmpty, &[Closed, MinusOne, PipeW], "-EBADF"),
    op(Op::ReadEmpty, &[File, Dir, PipeR, Socket], "0"),
    op(Op::ReadEmpty, &[EventFd, TimerFd], "-EINVAL"),
    op(Op::ReadEmpty, &[Inotify], "0").differs("waits", NOTHING),
    op(Op::ReadEmpty, &[Epoll], "waits"),
    op(Op::WriteEmpty, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::WriteEmpty, &[File, PipeW, Socket], "0"),
    op(Op::WriteEmpty, &[EventFd], "0").differs("-EINVAL", NOTHING),
    op(Op::WriteEmpty, &[TimerFd], "-EINVAL"),
    op(Op::WriteEmpty, &[Epoll], "waits"),
    op(Op::ReadvNone, &[Closed, MinusOne, PipeW], "-EBADF"),
    op(Op::ReadvNone, &[File, Dir, PipeR, Inotify, Socket], "0"),
    op(Op::ReadvNone, &[EventFd, TimerFd], "-EINVAL").differs("0", NOTHING),
    op(Op::ReadvNone, &[Epoll], "waits"),
    op(Op::WritevNone, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::WritevNone, &[File, PipeW, EventFd, Socket], "0"),
    op(Op::WritevNone, &[TimerFd], "-EINVAL"),
    op(Op::WritevNone, &[Epoll], "waits"),
    op(Op::ReadvTooMany, ALL, "-EINVAL"),
    op(Op::WritevTooMany, ALL, "-EINVAL"),
    op(Op::RecvMsgTooMany, ALL, "-EMSGSIZE"),
    op(Op::SendMsgTooMany, ALL, "-EMSGSIZE"),
    op(Op::RecvEmpty, &[Closed, MinusOne], "-EBADF"),
    op(Op::RecvEmpty, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::RecvEmpty, &[Socket], "waits"),
    op(Op::SendEmpty, &[Closed, MinusOne], "-EBADF"),
    op(Op::SendEmpty, NOT_SOCKETS, "-ENOTSOCK"),
    op(Op::SendEmpty, &[Socket], "0"),
    op(Op::ReadNegativeOffset, &[Closed, MinusOne, PipeW], "-EBADF"),
    op(Op::ReadNegativeOffset, &[File, Dir, PipeR, EventFd, TimerFd, Inotify, Socket], "-EINVAL"),
    op(Op::ReadNegativeOffset, &[Epoll], "waits"),
    op(Op::WriteNegativeOffset, &[Closed, MinusOne, Dir, PipeR, Inotify], "-EBADF"),
    op(Op::WriteNegativeOffset, &[File, PipeW, EventFd, TimerFd, Socket], "-EINVAL"),
    op(Op::WriteNegativeOffset, &[Epoll], "waits"),
    op(Op::FallocateHuge, &[File], "-EINVAL"),
    op(Op::FtruncateHuge, &[File], "-EINVAL"),
    special(Special::TimeoutZero, "-ETIME"),
    special(Special::LinkTimeoutZeroOnWaiting, "1:-ECANCELED 2:-ETIME"),
    special(Special::LinkTimeoutAlone, "-EINVAL"),
    special(Special::LinkTimeoutZeroOnDone, "1:0 2:-ENOENT").differs(
        "1:0 2:-ECANCELED",
        "the Nop ends first; its timeout is cancelled, as any non-zero one is",
    ),
    special(Special::CancelUnknown, "-ENOENT"),
    special(Special::CancelItself, "-ENOENT"),
    special(Special::CancelAllUnknown, "0"),
    special(Special::CancelAnyNothing, "0"),
    special(Special::DuplicateCancelOne, "1:-ECANCELED 1:waits 2:0"),
    special(Special::DuplicateCancelAll, "1:-ECANCELED 1:-ECANCELED 2:2"),
    special(Special::LinkAtEnd, "1:-EAGAIN 2:0").differs(
        "1:waits 2:0",
        "the chain ends with the submission; io_uring runs its head on a worker, without waiting for readiness",
    ),
    special(Special::LinkThenOtherThread, "1:waits 2:waits"),
    special(Special::PollRemoveUnknown, "-ENOENT"),
    special(Special::TimeoutRemoveUnknown, "-ENOENT"),
    special(Special::TimeoutUpdateUnknown, "-ENOENT"),
    special(Special::TimeoutUpdateToZero, "1:-ETIME 2:0"),
    special(Special::RemoveBuffersUnknown, "-ENOENT"),
    special(Special::FilesUpdateNoTable, "-ENXIO"),
    special(Special::SocketBadDomain, "-EAFNOSUPPORT"),
];

/// The note of a read or write of nothing where io_uring does not make the
/// call kqring makes.
const NOTHING: &str =
    "kqring makes the call of nothing; io_uring does only where the file has an iterator method";

/// Every descriptor kind but a socket.
const NOT_SOCKETS: &[Input] = &[File, Dir, PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll];

/// Every open descriptor kind but a directory.
const NOT_DIRS: &[Input] = &[File, PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll, Socket];

/// Every descriptor kind that is no regular file or directory.
const STREAMS: &[Input] = &[PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll, Socket];

/// Every open descriptor kind.
const OPEN: &[Input] = &[
    File, Dir, PipeR, PipeW, EventFd, TimerFd, Inotify, Epoll, Socket,
];

/// Every operation of the table, and the inputs it is given.
const OPS: &[(Op, &[Input])] = &[
    (Op::Read, ALL),
    (Op::Write, ALL),
    (Op::Readv, ALL),
    (Op::Writev, ALL),
    (Op::Recv, ALL),
    (Op::Send, ALL),
    (Op::RecvMsg, ALL),
    (Op::SendMsg, ALL),
    (Op::Accept, ALL),
    (Op::Connect, ALL),
    (Op::Bind, ALL),
    (Op::Listen, ALL),
    (Op::Shutdown, ALL),
    (Op::PollAdd, ALL),
    (Op::Fsync, ALL),
    (Op::Fallocate, ALL),
    (Op::Ftruncate, ALL),
    (Op::Fadvise, ALL),
    (Op::Statx, ALL),
    (Op::OpenAt, ALL),
    (Op::Close, ALL),
    (Op::CancelFd, ALL),
    (Op::ReadEmpty, ALL),
    (Op::WriteEmpty, ALL),
    (Op::ReadvNone, ALL),
    (Op::WritevNone, ALL),
    (Op::RecvEmpty, ALL),
    (Op::SendEmpty, ALL),
    (Op::ReadNegativeOffset, ALL),
    (Op::WriteNegativeOffset, ALL),
    (Op::FallocateHuge, &[File]),
    (Op::FtruncateHuge, &[File]),
    (Op::MkdirAt, ALL),
    (Op::UnlinkAt, ALL),
    (Op::RenameAt, ALL),
    (Op::LinkAt, ALL),
    (Op::SymlinkAt, ALL),
    (Op::PollAddMulti, ALL),
    (Op::AcceptMulti, ALL),
    (Op::ReadvTooMany, ALL),
    (Op::WritevTooMany, ALL),
    (Op::RecvMsgTooMany, ALL),
    (Op::SendMsgTooMany, ALL),
];

/// The table as docs/semantics.md holds it.
fn markdown() -> String {
    let mut s = String::from("| op | input | io_uring | kqring | note |\n|---|---|---|---|---|\n");
    for r in ROWS {
        let (what, input) = r.cells();
        s += &format!(
            "| {what} | {input} | {} | {} | {} |\n",
            r.uring,
            r.kqring.unwrap_or("same"),
            r.note
        );
    }
    s
}

/// Runs one row's program on a backend, for one input.
fn run_on(b: &mut dyn Backend, what: What, input: Option<Input>) -> String {
    match what {
        What::Op(op, _) => {
            let fds = open(input.expect("an input"));
            b.push(e(Ent::Op(op, fds.target), 1));
            b.submit();
            let out = collect(b, &[(1, 1, op.makes_fd())]).render();
            let mut fds = fds;
            if op == Op::Close && out == "0" {
                // Closed by the row: not to be closed again.
                let t = fds.target;
                fds.owned.retain(|&fd| fd != t);
            }
            out
        }
        What::Special(s) => s.run(b),
    }
}

/// Each run of each row: (row, input, backend, expected, got).
fn every_run(mut each: impl FnMut(&Row, Option<Input>, &str, &str, String)) {
    for row in ROWS {
        let inputs: Vec<Option<Input>> = match row.what {
            What::Op(_, inputs) => inputs.iter().copied().map(Some).collect(),
            What::Special(_) => vec![None],
        };
        for input in inputs {
            for mode in [Mode::PollingThread, Mode::Inline] {
                let mut kq = Kq::new(mode);
                let got = run_on(&mut kq, row.what, input);
                each(
                    row,
                    input,
                    &format!("kqring {mode:?}"),
                    row.kqring.unwrap_or(row.uring),
                    got,
                );
            }
            if let Some(mut ur) = Ur::new() {
                let got = run_on(&mut ur, row.what, input);
                each(row, input, "io_uring", row.uring, got);
            }
        }
    }
}

/// Every row gives its answers, on each backend.
#[test]
fn every_row_gives_its_answer() {
    let mut failures = Vec::new();
    let mut runs = 0;
    every_run(|row, input, backend, want, got| {
        runs += 1;
        if got != want {
            let (what, _) = row.cells();
            failures.push(format!(
                "{what} on {}: {backend} gave {got}, the table says {want}",
                input.map_or("-", Input::name)
            ));
        }
    });
    kqring_test_support::report(&format!("bad input: {} rows, {runs} runs", ROWS.len()));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// docs/semantics.md holds this table, between its markers.
#[test]
fn the_documented_table_is_this_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/semantics.md"))
        .expect("docs/semantics.md");
    let begin = "<!-- bad-input table (tests/bad_input.rs) -->\n";
    let end = "<!-- end of the bad-input table -->";
    let from = doc.find(begin).expect("the table's begin marker") + begin.len();
    let to = doc[from..].find(end).expect("the table's end marker") + from;
    let want = markdown();
    assert!(
        doc[from..to] == want,
        "docs/semantics.md's bad-input table is not the test's; it should read:\n{want}"
    );
}

/// Each operation's rows give it each of its inputs exactly once.
#[test]
fn the_table_gives_each_op_each_input_once() {
    for &(op, inputs) in OPS {
        let mut given: Vec<Input> = ROWS
            .iter()
            .filter_map(|r| match r.what {
                What::Op(o, is) if o == op => Some(is),
                _ => None,
            })
            .flatten()
            .copied()
            .collect();
        for i in inputs {
            let n = given.iter().filter(|g| *g == i).count();
            assert_eq!(n, 1, "{} on {}: {n} rows", op.name(), i.name());
        }
        given.retain(|g| !inputs.contains(g));
        assert!(
            given.is_empty(),
            "{}: rows for {given:?}, not its inputs",
            op.name()
        );
    }
    for r in ROWS {
        if let What::Op(op, _) = r.what {
            assert!(OPS.iter().any(|o| o.0 == op), "{} is not in OPS", op.name());
        }
    }
}
