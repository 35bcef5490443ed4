//! kqueue semantics over Linux's readiness primitives (in progress).

use std::io;
use std::time::Duration;

use crate::sys::{Change, Event};

/// A kqueue emulated over epoll.
#[derive(Debug)]
pub struct Kqueue {}

impl Kqueue {
    /// Creates the emulated kqueue.
    pub fn new() -> io::Result<Kqueue> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    /// See the native backend.
    pub fn kevent(
        &self,
        _changes: &[Change],
        _events: &mut Vec<Event>,
        _timeout: Option<Duration>,
    ) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}
