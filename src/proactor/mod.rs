//! The proactor layer: futures and descriptor-owning types over a ring,
//! for servers written with async/await, on any executor.
//!
//! ```
//! use kqring::Ring;
//! use kqring::proactor::{TcpListener, TcpStream};
//!
//! let ring = Ring::new(64)?;
//! let io = ring.proactor();
//! io.block_on(async {
//!     let listener = TcpListener::bind(&io, "127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let client = TcpStream::connect(&io, addr).await?;
//!     let (server, _peer) = listener.accept().await?;
//!     let (n, _buf) = client.write(b"ping".as_slice()).await;
//!     assert_eq!(n?, 4);
//!     let (n, buf) = server.read(Vec::with_capacity(16)).await;
//!     assert_eq!((n?, &buf[..]), (4, &b"ping"[..]));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Futures
//!
//! Each operation is an [`OpFuture`]: its first poll pushes the entry,
//! carrying a slot of the future's as its completion target. The driver
//! fills the slot and wakes the task's waker in the turn the operation
//! ends — the completion never goes through the completion queue, and no
//! one decodes `user_data`. Raw SQ/CQ users and futures may share a ring:
//! each gets its own completions.
//!
//! Buffers are owned: an operation takes the caller's buffer `B` and its
//! output is `(io::Result<T>, B)`, the same `B` back on success, failure,
//! timeout and cancellation.
//!
//! Dropping a future cancels its operation when it is in flight; the
//! buffer stays with the operation until its completion arrives, and is
//! dropped then. Dropped before its first poll, nothing was sent; dropped
//! after its completion arrived, the completion is dropped (a connection
//! an accept made is closed).
//!
//! # Who drives the ring
//!
//! Wakers are all the futures need, so any executor runs them (tokio,
//! `futures::executor`, smol's, or [`Proactor::block_on`]). What turns the
//! ring depends on its [`Mode`](crate::Mode):
//!
//! - a polling-thread ring (the default) is driven by its own thread, which
//!   completes the futures: use it under any executor, the executor's
//!   threads never block on the ring;
//! - an inline ring is turned by whoever waits on it: [`Proactor::block_on`]
//!   turns it while its future is pending (no thread hop at all), as do the
//!   ring's own `submit_and_wait` and completion waits. A future on an
//!   inline ring that nobody turns waits; under another executor, use a
//!   polling-thread ring, which is that executor's driver thread.
//!
//! # Types
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`] and [`File`] own their descriptor and close it through
//! the ring when dropped (the driver ends what still waits on it and
//! deletes its registrations first). They convert from and into std's
//! types and raw descriptors. Creating a socket, `bind` and `listen` are
//! direct calls on the caller's thread (they never wait); everything that
//! may wait goes through the ring.
//!
//! # Registered files
//!
//! On a ring built with a file table ([`Builder::files`](crate::Builder::files)),
//! each type also takes a slot of the table, holding a duplicate of its
//! descriptor (the same open file), and its operations name the slot
//! (`FIXED_FILE`), as io_uring programs do with registered files. A slot's
//! file is the ring's own, so its idle readiness registration is trusted
//! after an idle spell; a plain descriptor's is re-added before each wait
//! (its number might name another file by then). That saves a `kevent`
//! change per wait on a connection that goes idle between messages: on
//! the Linux compat, a TCP echo's message takes 9 system calls instead of
//! 11, for about 44 more instructions in user space, and the futures'
//! CPU per message fell by 1–8 % at 1 to 256 connections
//! (docs/performance.md, "The proactor's futures").
//!
//! - The type keeps its descriptor: [`AsRawFd`](std::os::fd::AsRawFd),
//!   std's calls and conversions use it; [`TcpStream::fixed_file`] and the
//!   other types' `fixed_file` name the slot.
//! - It asks for the slot when made, with a message the driver takes in
//!   its next turn (at once on an inline ring nobody is turning). Until the
//!   answer, and for good when the table is full, the dup fails, or the
//!   ring is gone, its operations use the descriptor: same file, same
//!   results.
//! - It gives the slot back when dropped or converted (`into_std`,
//!   `into_raw_fd`, `OwnedFd::from`): the duplicate closes once no
//!   operation holds it (a cancelled one may, until its completion), and
//!   [`File::close`] closes it before the descriptor's `Close` runs. The
//!   futures borrow the type, so none of its own is left on the slot
//!   once it is given back (this does not build:
//!   ```compile_fail,E0505
//!   # let ring = kqring::Ring::builder().inline().files(4).build()?;
//!   # let io = ring.proactor();
//!   let (a, _b) = kqring::proactor::UnixStream::pair(&io)?;
//!   let read = a.read(Vec::with_capacity(8));
//!   let std = a.into_std(); // moved while `read` borrows it
//!   drop(read);
//!   # Ok::<(), std::io::Error>(())
//!   ```
//!   ). A slot a raw user emptied or refilled under the type is left as
//!   the raw user made it.
//! - The slots come from the table's free ones, as an `Alloc` does: raw
//!   users who fill slots by index share the table with the types, and a
//!   slot they overwrite is the type's no more. Each type holds two
//!   descriptors of the process's limit instead of one.
//!
//! [`Builder::proactor_files(false)`](crate::Builder::proactor_files)
//! keeps the table for raw users alone. Without a table (the default) the
//! types work on their descriptors.

mod block_on;
mod file;
mod net;
mod op;
pub(crate) mod registered;
pub(crate) mod slot;
mod socket;
mod stream;
mod timeout;
mod unix;

use std::sync::Arc;

pub use file::{File, Opened, Status};
pub use net::{Accepted, Accepts, Incoming, RecvFrom, SentTo, TcpListener, TcpStream, UdpSocket};
pub use op::{BufResult, Decode, OpFuture, RawCqe, Unit};
pub use stream::{DecodeShot, Received, RecvStream, ShotStream};
pub use timeout::{Elapsed, Sleep, Timeout};
pub use unix::{UnixListener, UnixStream};

use crate::driver::Message;
use crate::ring::Ring;
use crate::sq::{Sqe, SubmissionQueue};

/// A ring as futures see it: cheap to clone, `Send + Sync`; made by
/// [`Ring::proactor`]. It does not keep the ring running: once the
/// [`Ring`] is dropped, operations in flight complete cancelled and new
/// ones fail with `ESHUTDOWN`.
#[derive(Clone)]
pub struct Proactor {
    sq: SubmissionQueue,
}

impl Proactor {
    /// The proactor of `ring`.
    pub fn new(ring: &Ring) -> Proactor {
        Proactor {
            sq: ring.submission().clone(),
        }
    }

    /// Any entry as a future: its output is its completion, decoded by
    /// `decode` ([`RawCqe`] gives the [`Cqe`](crate::Cqe) itself). The
    /// entry's `user_data` is kept but plays no part.
    pub fn run<D: Decode>(&self, sqe: Sqe, decode: D) -> OpFuture<'static, D> {
        OpFuture::new(self, sqe, decode)
    }

    fn shared(&self) -> &Arc<crate::ring::Shared> {
        &self.sq.shared
    }

    /// Sends a dropped future's cancel to the driver, through the ring's
    /// inbox (a full SQ can't refuse it). A driver that is gone has
    /// cancelled everything already.
    fn cancel(&self, slot: Arc<slot::Slot>) {
        let _ = self.shared().send(Message::Cancel(slot));
    }

    /// Hands a dropped type's descriptor to the driver to close; closes it
    /// here if the driver is gone.
    fn close(&self, fd: std::os::fd::OwnedFd) {
        if let Err(Message::Close(fd)) = self.shared().send(Message::Close(fd)) {
            drop(fd);
        }
    }
}

impl From<&Ring> for Proactor {
    fn from(ring: &Ring) -> Proactor {
        Proactor::new(ring)
    }
}

impl std::fmt::Debug for Proactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proactor")
            .field("mode", &self.shared().mode())
            .finish()
    }
}

impl Ring {
    /// The ring's [`Proactor`]: its futures and descriptor-owning types.
    pub fn proactor(&self) -> Proactor {
        Proactor::new(self)
    }
}
