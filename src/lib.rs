//! kqring: the io_uring programming model on kqueue.
//!
//! Programs push operation descriptors into a submission queue; a driver
//! (a dedicated polling thread, or the caller's own thread) turns each into
//! kevent registrations or a direct syscall and posts completions, carrying
//! the operation's owned buffer back, to a completion queue. The semantics
//! are io_uring's: `user_data`, `-errno` results, multishot, links, drain,
//! cancel.
//!
//! The [`sys`] module is the kevent layer everything stands on: native
//! kqueue on macOS and the BSDs, a built-in compat on Linux.

#![warn(missing_docs)]

pub mod sys;
