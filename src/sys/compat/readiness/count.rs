//! The `data` of read and write events, and what it takes to count it.
//!
//! `data` comes from the file: bytes readable (FIONREAD), the accept
//! backlog of a TCP listener (TCP_INFO), room to write (socket: SO_SNDBUF
//! minus SIOCOUTQ; pipe: F_GETPIPE_SZ minus FIONREAD). What kind of file a
//! descriptor is gets learned from the first event and remembered while
//! its entry stays in its epoll (a successful `EPOLL_CTL_MOD` proves
//! the number still names the same file), so steady state costs one ioctl
//! per read event and two calls per write event. The calls double as the
//! check that the number is still open (EBADF), for the entries whose
//! re-arming does not check it.
//!
//! A kqueue made with `Kqueue::uncounted` skips those calls: its events
//! carry `data` 1 while readable or writable, and only the first write
//! event of a file probes what it is. Without the calls an event is not
//! checked against a closed number either: an `EV_CLEAR` entry whose file
//! lives on in a duplicate after the number was closed can still report.
//! The ring's driver, which never reads `data` and retries its syscall on
//! every event, uses it.

use std::os::fd::RawFd;

use super::READ;
use super::entry::{EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDHUP};
use crate::sys::compat::os::{self, Errno};

/// `TCP_LISTEN` from the kernel's `include/net/tcp_states.h` (`tcpi_state`).
const TCP_LISTEN: u8 = 10;

/// What one epoll event says of a descriptor's direction: `EV_EOF`, the
/// `fflags` (the socket error with EOF) and the `data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Status {
    pub(super) eof: bool,
    pub(super) fflags: u32,
    pub(super) data: i64,
}

impl Status {
    /// A pipe whose last reader closed: BSD reports EV_EOF with `data` 0.
    const PIPE_EOF: Status = Status {
        eof: true,
        fflags: 0,
        data: 0,
    };
}

/// Facts about the open file behind a descriptor, learned from its events.
#[derive(Debug, Default)]
pub(super) struct Facts {
    readable: ReadCount,
    room: WriteRoom,
    /// The last socket error read with SO_ERROR (which clears it), kept so
    /// that later EOF events of either direction still carry it, as a BSD
    /// socket's `so_error` stays set.
    so_error: i32,
}

/// How to count the bytes readable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ReadCount {
    #[default]
    Fionread,
    /// A listening TCP socket: the accept queue from TCP_INFO.
    TcpBacklog,
    /// No count available: 1 while readable.
    Unknown,
}

/// How to measure the room to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum WriteRoom {
    #[default]
    Unprobed,
    Socket,
    Pipe,
    /// Neither: 0.
    Unknown,
}

impl Facts {
    /// What the epoll event `bits` of `fd` in direction `dir` reports;
    /// `None` when the descriptor turns out to be closed. `counted`: see
    /// `Kqueue::uncounted`.
    pub(super) fn status(
        &mut self,
        fd: RawFd,
        dir: usize,
        bits: u32,
        counted: bool,
    ) -> Option<Status> {
        match (dir == READ, counted) {
            (true, true) => self.read_counted(fd, bits),
            (true, false) => Some(self.read_uncounted(fd, bits)),
            (false, true) => self.write_counted(fd, bits),
            (false, false) => self.write_uncounted(fd, bits),
        }
    }

    /// A read event, counted; `None` when the descriptor is closed.
    fn read_counted(&mut self, fd: RawFd, bits: u32) -> Option<Status> {
        // The peer shut down its writing side (EPOLLRDHUP) or everything
        // hung up, including a pipe whose last writer closed (EPOLLHUP).
        let eof = bits & (EPOLLRDHUP | EPOLLHUP) != 0;
        let data = self.readable(fd, bits)?;
        let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
        Some(Status { eof, fflags, data })
    }

    /// A read event of an uncounted kqueue: `data` 1 while readable. It
    /// costs no call unless the socket has failed.
    fn read_uncounted(&mut self, fd: RawFd, bits: u32) -> Status {
        let eof = bits & (EPOLLRDHUP | EPOLLHUP) != 0;
        let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
        let data = i64::from(bits & EPOLLIN != 0);
        Status { eof, fflags, data }
    }

    /// A write event of an uncounted kqueue: `data` 1 while writable. What
    /// the file is (socket or pipe, which flag EOF differently) is probed
    /// once, by the first event, counted.
    fn write_uncounted(&mut self, fd: RawFd, bits: u32) -> Option<Status> {
        let writable = i64::from(bits & EPOLLOUT != 0);
        match self.room {
            WriteRoom::Socket => {
                let eof = bits & EPOLLHUP != 0;
                let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
                Some(Status {
                    eof,
                    fflags,
                    data: writable,
                })
            }
            WriteRoom::Pipe if bits & (EPOLLERR | EPOLLHUP) != 0 => Some(Status::PIPE_EOF),
            WriteRoom::Pipe => Some(Status {
                eof: false,
                fflags: 0,
                data: writable,
            }),
            WriteRoom::Unprobed | WriteRoom::Unknown => {
                self.write_counted(fd, bits).map(|status| Status {
                    data: status.data.min(writable),
                    ..status
                })
            }
        }
    }

    fn readable(&mut self, fd: RawFd, bits: u32) -> Option<i64> {
        let fallback = i64::from(bits & EPOLLIN != 0);
        let count = match self.readable {
            ReadCount::Fionread => match os::ioctl_int(fd, libc::FIONREAD) {
                Ok(n) => i64::from(n),
                Err(Errno::EBADF) => return None,
                // Linux refuses FIONREAD on a listening socket (EINVAL).
                Err(_) => match tcp_backlog(fd).ok()? {
                    Some(backlog) => {
                        self.readable = ReadCount::TcpBacklog;
                        backlog
                    }
                    None => {
                        self.readable = ReadCount::Unknown;
                        fallback
                    }
                },
            },
            ReadCount::TcpBacklog => tcp_backlog(fd).ok()?.unwrap_or(fallback),
            ReadCount::Unknown => fallback,
        };
        Some(count)
    }

    /// The socket error for an EOF event. Reading SO_ERROR clears it on
    /// Linux (BSD keeps `so_error` until read), so it is read only when
    /// epoll flags an error, and kept for the events that follow; it
    /// travels in the event, and a later `getsockopt(SO_ERROR)` by the
    /// caller finds 0.
    fn socket_error(&mut self, fd: RawFd, bits: u32) -> u32 {
        if bits & EPOLLERR != 0 {
            match os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) | Err(_) => {}
                Ok(errno) => self.so_error = errno,
            }
        }
        self.so_error as u32
    }

    /// A write event, counted; `None` when the descriptor is closed.
    fn write_counted(&mut self, fd: RawFd, bits: u32) -> Option<Status> {
        if matches!(self.room, WriteRoom::Unprobed | WriteRoom::Socket) {
            let sndbuf = os::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF);
            if sndbuf == Err(Errno::EBADF) {
                return None;
            }
            if let Ok(sndbuf) = sndbuf {
                self.room = WriteRoom::Socket;
                // A socket hangs up for writing when the connection is
                // gone (reset, refused, both sides shut down). EPOLLERR
                // alone is an error a send will return (an ICMP error on
                // UDP), which BSD reports as ready without EOF.
                let eof = bits & EPOLLHUP != 0;
                // SIOCOUTQ is TIOCOUTQ's number on Linux: bytes not yet
                // sent or acknowledged.
                let queued = os::ioctl_int(fd, libc::TIOCOUTQ).unwrap_or(0);
                let fflags = if eof { self.socket_error(fd, bits) } else { 0 };
                let data = i64::from(sndbuf.saturating_sub(queued).max(0));
                return Some(Status { eof, fflags, data });
            }
            self.room = WriteRoom::Unprobed;
        }
        // A pipe's write end gets EPOLLERR when the last reader closed: BSD
        // reports that as EV_EOF with data 0.
        let eof = bits & (EPOLLERR | EPOLLHUP) != 0;
        if matches!(self.room, WriteRoom::Unprobed | WriteRoom::Pipe) {
            match os::fcntl(fd, libc::F_GETPIPE_SZ) {
                Ok(_) if eof => {
                    self.room = WriteRoom::Pipe;
                    return Some(Status::PIPE_EOF);
                }
                Ok(size) => {
                    self.room = WriteRoom::Pipe;
                    let used = os::ioctl_int(fd, libc::FIONREAD).unwrap_or(0);
                    let data = i64::from(size.saturating_sub(used).max(0));
                    return Some(Status {
                        eof: false,
                        fflags: 0,
                        data,
                    });
                }
                Err(Errno::EBADF) => return None,
                Err(_) => {}
            }
        }
        self.room = WriteRoom::Unknown;
        Some(Status {
            eof,
            fflags: 0,
            data: 0,
        })
    }
}

/// The accept queue of a listening TCP socket: Linux has no FIONREAD for
/// it, but TCP_INFO reports the queue length in `tcpi_unacked`. `Ok(None)`:
/// not a listening TCP socket; `Err`: the descriptor is closed.
fn tcp_backlog(fd: RawFd) -> Result<Option<i64>, Errno> {
    match os::tcp_info(fd) {
        Ok(info) => Ok((info.tcpi_state == TCP_LISTEN).then_some(i64::from(info.tcpi_unacked))),
        Err(Errno::EBADF) => Err(Errno::EBADF),
        Err(_) => Ok(None),
    }
}
