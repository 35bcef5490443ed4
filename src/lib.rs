//! kqring: the io_uring programming model on kqueue.
//!
//! Programs push operation descriptors ([`Sqe`]s, built by the types in
//! [`ops`]) into a [`SubmissionQueue`]; a driver — a dedicated polling
//! thread, or the caller's own thread — turns each into kevent
//! registrations or a direct syscall, and posts [`Cqe`]s, carrying the
//! operation's owned buffer back, to a [`CompletionQueue`]. The semantics
//! are io_uring's: `user_data`, `-errno` results, multishot with `F_MORE`,
//! cancel, timeouts with counts, and no dropped completion.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use kqring::{Ring, ops};
//! use std::os::fd::AsRawFd;
//!
//! let ring = Ring::new(16)?;
//! let (a, b) = std::os::unix::net::UnixStream::pair()?;
//! let sq = ring.submission();
//! sq.push(ops::Write::new(a.as_raw_fd(), Bytes::from_static(b"ping")).build().user_data(1))?;
//! sq.push(ops::Read::new(b.as_raw_fd(), BytesMut::with_capacity(16)).build().user_data(2))?;
//! sq.submit_and_wait(2)?;
//! let mut cqes = ring.completion().wait_nr(2)?;
//! cqes.sort_by_key(|c| c.user_data());
//! assert_eq!(cqes[0].result(), 4);
//! let buf: BytesMut = cqes[1].take_buf()?;
//! assert_eq!(&buf[..], b"ping");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For servers written with async/await, [`proactor`] has futures of the
//! same operations (`(io::Result<T>, B)` with the caller's buffer `B`,
//! completed by the driver without going through the CQ, cancelled when
//! dropped) and descriptor-owning types (`TcpStream`, `File`…), on any
//! executor or kqring's own `block_on`.
//!
//! The [`sys`] module is the kevent layer everything stands on: native
//! kqueue on macOS and the BSDs, a built-in compat on Linux.

#![warn(missing_docs)]

mod buf;
mod cq;
mod driver;
mod fdmap;
pub mod ops;
pub mod proactor;
mod ring;
mod sq;
pub mod sys;

pub use buf::{BufError, IoBuf, IoBufMut};
pub use cq::{CompletionQueue, Cqe, Drain, flags as cqe_flags};
pub use ring::{Builder, Mode, Ring, RingHandle, Stats};
pub use sq::{PushError, Sqe, SqeFlags, SubmissionQueue};
pub use sys::net::SockAddr;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
