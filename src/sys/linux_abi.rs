//! The kevent ABI kqring uses on Linux: libkqueue's `sys/event.h`.
//!
//! Linux has no kqueue, so `libc` has no `struct kevent` for it. Both Linux
//! backends speak this one shape: the built-in compat uses it as its own
//! layout, and the `libkqueue` feature passes it to the C library, whose
//! header it mirrors field for field (the 32-byte shape: `ident` usize,
//! `filter` i16, `flags` u16, `fflags` u32, `data` isize, `udata` pointer).

#![allow(non_camel_case_types)]

use libc::{c_short, c_uint, c_ushort, c_void, intptr_t, uintptr_t};

/// libkqueue's `struct kevent`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kevent {
    pub ident: uintptr_t,
    pub filter: c_short,
    pub flags: c_ushort,
    pub fflags: c_uint,
    pub data: intptr_t,
    pub udata: *mut c_void,
}

pub const EVFILT_READ: c_short = -1;
pub const EVFILT_WRITE: c_short = -2;
pub const EVFILT_VNODE: c_short = -4;
pub const EVFILT_PROC: c_short = -5;
pub const EVFILT_SIGNAL: c_short = -6;
pub const EVFILT_TIMER: c_short = -7;
pub const EVFILT_USER: c_short = -11;

pub const EV_ADD: c_ushort = 0x0001;
pub const EV_DELETE: c_ushort = 0x0002;
pub const EV_ENABLE: c_ushort = 0x0004;
pub const EV_DISABLE: c_ushort = 0x0008;
pub const EV_ONESHOT: c_ushort = 0x0010;
pub const EV_CLEAR: c_ushort = 0x0020;
pub const EV_RECEIPT: c_ushort = 0x0040;
pub const EV_DISPATCH: c_ushort = 0x0080;
pub const EV_ERROR: c_ushort = 0x4000;
pub const EV_EOF: c_ushort = 0x8000;

pub const NOTE_FFNOP: c_uint = 0x0000_0000;
pub const NOTE_FFAND: c_uint = 0x4000_0000;
pub const NOTE_FFOR: c_uint = 0x8000_0000;
pub const NOTE_FFCOPY: c_uint = 0xc000_0000;
pub const NOTE_FFCTRLMASK: c_uint = 0xc000_0000;
pub const NOTE_FFLAGSMASK: c_uint = 0x00ff_ffff;
pub const NOTE_TRIGGER: c_uint = 0x0100_0000;

pub const NOTE_DELETE: c_uint = 0x0001;
pub const NOTE_WRITE: c_uint = 0x0002;
pub const NOTE_EXTEND: c_uint = 0x0004;
pub const NOTE_ATTRIB: c_uint = 0x0008;
pub const NOTE_LINK: c_uint = 0x0010;
pub const NOTE_RENAME: c_uint = 0x0020;
pub const NOTE_REVOKE: c_uint = 0x0040;

pub const NOTE_EXIT: c_uint = 0x8000_0000;

pub const NOTE_SECONDS: c_uint = 0x0001;
pub const NOTE_USECONDS: c_uint = 0x0002;
pub const NOTE_NSECONDS: c_uint = 0x0004;

/// See `TIMER_UNITS` in `sys/mod.rs`: seconds, microseconds, nanoseconds.
pub const TIMER_UNITS: [Option<u32>; 3] =
    [Some(NOTE_SECONDS), Some(NOTE_USECONDS), Some(NOTE_NSECONDS)];

/// NOTE_EXIT alone puts the wait status in `data` here.
pub const NOTE_EXIT_STATUS: u32 = NOTE_EXIT;

#[cfg(kq_libkqueue)]
#[link(name = "kqueue")]
unsafe extern "C" {
    pub fn kqueue() -> libc::c_int;
    pub fn kevent(
        kq: libc::c_int,
        changelist: *const kevent,
        nchanges: libc::c_int,
        eventlist: *mut kevent,
        nevents: libc::c_int,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

// The layout the C library expects, checked at compile time.
const _: () =
    assert!(std::mem::size_of::<kevent>() == 32 || cfg!(not(target_pointer_width = "64")));

/// The most event slots libkqueue's `kevent()` uses in one call
/// (`MAX_KEVENT` in its sources); it clamps a larger `nevents` to this.
#[cfg_attr(not(kq_libkqueue), allow(dead_code))]
pub const MAX_KEVENT: usize = 512;
