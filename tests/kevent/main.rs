//! The kevent semantics suite: `kqring::sys` must behave like a real kqueue
//! (FreeBSD's kevent(2) is the reference) on every backend — the native
//! kqueue of macOS and the BSDs, the Linux compat, and libkqueue.
//!
//! Every test is self-contained (its own kqueue, descriptors, idents, temp
//! files and signal numbers) and safe to run in parallel with the others.
//! Nothing synchronises by sleeping: events are waited for with kevent
//! timeouts, which are generous so that a broken backend fails instead of
//! hanging.

mod common;

mod errors;
mod proc;
mod readiness;
mod signal;
mod timer;
mod user;
mod vnode;
