//! Runs one SQE program on kqring and on Linux's io_uring, and compares the
//! completions, with each other and with those the program expects.
//!
//! A [`Program`] names the descriptors it needs ([`Resource`]s: a socket
//! pair, a pipe, a temporary file, a number that is never open, listeners,
//! UDP sockets), then lists [`Step`]s: submit a batch of entries, write to
//! or close a descriptor from the outside, wait for completions. After a
//! wait it may say which completions it expects ([`Expected`]). Every run
//! creates the resources afresh, so the same program gives each backend
//! the same start.
//!
//! [`run_kqring`] runs it on a kqring [`Ring`](kqring::Ring) in either
//! driving [`Mode`](kqring::Mode); [`run_io_uring`] runs it on the kernel's
//! io_uring (Linux only; elsewhere, where `io_uring_setup` is refused, or
//! where the kernel lacks an opcode the program needs, it reports
//! [`RunError::Unavailable`]). Both give the [`Completions`], grouped by
//! the wait that collected them, as [`CqeRecord`]s — `user_data`, `res`,
//! the compared flags and, for reads, the bytes read — and
//! [`diff_groups`] shows two runs side by side.
//!
//! [`scenarios`] holds the built-in programs, each with the completions
//! io_uring gives, and the differences between kqring and io_uring that
//! are known and documented; [`check`] runs one scenario on every backend
//! and judges the outcome ([`Verdict`]).
//!
//! # The text format
//!
//! [`Program::parse`] reads a program written one line at a time
//! (`#` starts a comment; `"..."` strings take `\n`, `\t`, `\\`, `\"` and
//! `\xNN` escapes):
//!
//! ```text
//! order user_data          # compare each wait's CQEs sorted by user_data
//! pair p                   # a socket pair: p.a, p.b
//! pipe q                   # a pipe: q.r, q.w
//! file f "hello world"     # a temporary regular file: f
//! bad x                    # a descriptor number that is never open: x
//!
//! read fd=p.b len=16 ud=1 flags=link
//! nop ud=2
//! write-peer p.a "hi"      # ends the batch above, then writes from outside
//! wait 2
//! expect ud=1 res=2 data="hi"
//! expect ud=2 res=0
//! ```
//!
//! Directives:
//!
//! | line | meaning |
//! |---|---|
//! | `order exact` / `order user_data` | how CQEs are compared (default `exact`; `user_data` sorts each wait's CQEs, stable) |
//! | `settle MS` | how long completions are still collected after the last step (default [`SETTLE`]) |
//! | `pair NAME [blocking]` | a connected `AF_UNIX` stream pair, ends `NAME.a`, `NAME.b`, non-blocking unless `blocking` |
//! | `pipe NAME [blocking]` | a pipe, ends `NAME.r`, `NAME.w`, non-blocking unless `blocking` |
//! | `file NAME "contents"` | an unlinked temporary file opened read-write at position 0 |
//! | `bad NAME` | a descriptor number that is never open |
//! | `listener NAME [tcp] [blocking]` | a listening stream socket: `AF_UNIX`, or TCP on 127.0.0.1 (a port the kernel picks); non-blocking unless `blocking` |
//! | `udp NAME` | a non-blocking UDP socket bound to 127.0.0.1, a port the kernel picks |
//! | `client NAME LISTENER [blocking]` | a socket connected to `LISTENER`, its connection waiting to be accepted |
//! | `files N` | the ring gets a file table of `N` empty slots (io_uring: sparse registration) |
//! | `child NAME [exit=N\|signal=SIG]` | a child process, alive until `end-child NAME`, then exiting with `N` (default 0) or killed by `SIG` (`KILL`, `TERM`…); `waitid pid=NAME` waits for it |
//! | `ring NAME [files=N]` | a second ring of the same backend (with a file table of `N` slots), for `msg-ring` to post to |
//! | `end-child NAME` | ends the child as declared, and waits until it has ended (not reaping it) |
//! | `close-ring NAME` | closes the second ring |
//! | `wait N ring=NAME` | waits for `N` completions of the second ring |
//! | `submit` | ends the current batch (entries in a row form one batch) |
//! | `write-peer FD "bytes"` | writes the bytes to `FD` from outside the ring |
//! | `close-peer FD` | closes `FD` from outside the ring |
//! | `wait N` | waits for `N` completions (at most [`PATIENCE`]) |
//! | `expect ud=N res=R [more] [buf=ID] [data="..."] [from=NAME]` | after a `wait`, one completion it expects, in order; `expect none` for none |
//! | `expect-kqring ...` | after a `wait`, kqring's own completions where it differs from io_uring's |
//! | `end` | the `expect` lines after it are for completions that arrive after the last step |
//!
//! Any other line is one entry: an opcode, its arguments, and the common
//! `ud=N` (user_data, default 0) and `flags=a|b` (`link`, `hardlink`,
//! `drain`, `async`, `skip_success`). The opcodes and their arguments
//! (defaults in brackets):
//!
//! | opcode | arguments |
//! |---|---|
//! | `nop` | |
//! | `read` | `fd=FD len=N [off=0]`; `off=cur` reads at the file position |
//! | `read-select` | `fd=FD group=G [off=0]`: into a buffer of group `G` |
//! | `write` | `fd=FD data="..." [off=0]` |
//! | `readv` | `fd=FD lens=N,N,.. [off=0]` |
//! | `writev` | `fd=FD data="..." data="..." .. [off=0]` |
//! | `poll` | `fd=FD events=in\|out\|pri\|err\|hup\|N [multi]` |
//! | `poll-remove` | `target=UD` |
//! | `timeout` | `ms=N [count=0] [abs]`; `abs` means `ms` after the submission, given as an absolute `CLOCK_MONOTONIC` time |
//! | `timeout-remove` | `target=UD` |
//! | `timeout-update` | `target=UD ms=N [abs]` |
//! | `link-timeout` | `ms=N [abs]` |
//! | `cancel` | `target=UD` or `target=fd:FD` or `target=any`, `[all]` |
//! | `close` | `fd=FD` |
//! | `recv` | `fd=FD len=N [waitall] [peek]` |
//! | `recv-select` | `fd=FD group=G [multi]` |
//! | `send` | `fd=FD data="..."` |
//! | `provide-buffers` | `group=G count=N len=N [bid=0]` |
//! | `remove-buffers` | `group=G n=N` |
//! | `files-update` | `at=N\|alloc fds=FD,-1,skip,..` (`-1` empties a slot, `skip` leaves it) |
//! | `accept` | `fd=FD [file-index=N\|alloc] [multi] [as=NAME]` |
//! | `socket` | `domain=inet\|inet6\|unix type=stream\|dgram [protocol=0] [file-index=N\|alloc] [blocking] [as=NAME]` |
//! | `bind` | `fd=FD addr=ADDR` |
//! | `listen` | `fd=FD [backlog=16]` |
//! | `connect` | `fd=FD addr=ADDR` |
//! | `shutdown` | `fd=FD how=rd\|wr\|rdwr` |
//! | `sendmsg` | `fd=FD data="..." .. [to=ADDR]` |
//! | `recvmsg` | `fd=FD lens=N,N,..` |
//! | `recvmsg-select` | `fd=FD group=G` |
//! | `waitid` | `pid=CHILD\|N [options=exited\|stopped\|continued\|nohang\|nowait]` (`P_PID`; default `exited`) |
//! | `msg-ring` | `to=RING res=R target-ud=N [skip-target-cqe]` (`IORING_MSG_DATA`) |
//! | `msg-ring-fd` | `to=RING src=SLOT dest=N\|alloc target-ud=N [skip-target-cqe]` (`IORING_MSG_SEND_FD`) |
//!
//! Wherever an opcode takes `fd=FD`, `fd=@N` names slot `N` of the ring's
//! file table instead (a registered file, `IOSQE_FIXED_FILE`), and so does
//! `target=fd:@N` of `cancel`. An `ADDR` is `127.0.0.1:0`, `[::1]:0` or
//! `local:NAME`, the address descriptor `NAME` is bound to: bind to port
//! 0 and connect through `local:`, never to a fixed port.
//!
//! A `socket`, or an `accept` without `file-index=`, makes a descriptor of
//! the process: its completion's `res` is compared as `fd` (its number
//! differs between backends), and `as=NAME` names it for the entries of
//! later batches. A `recvmsg` completion names its sender (`from=`) by the
//! program's descriptor bound to the sender's address.
//!
//! After the last step, completions that still arrive within the
//! program's settle time are recorded too, so an extra completion shows
//! up as a difference. Give every read its own `user_data`: a completion
//! names its entry only by `user_data`, so the bytes of a read that shares
//! it with another entry are left out of the comparison (`data` is `None`
//! on every backend).
//!
//! ```
//! use kqring_conformance::{Program, run_kqring};
//! let program = Program::parse("demo", "pair p\nwrite fd=p.a data=\"hi\" ud=1\nread fd=p.b len=2 ud=2\nwait 2\n")?;
//! let cqes = run_kqring(&program, kqring::Mode::Inline)?;
//! assert_eq!(cqes.all()[1].data.as_deref(), Some(&b"hi"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Expectations
//!
//! Once a program has an `expect` line, every `wait` needs its own (`expect
//! none` for a wait that collects nothing): the completions io_uring gives
//! there, which kqring must give too. Where kqring differs on purpose (or
//! by a known bug), `expect-kqring` lines pin kqring's own completions for
//! that wait. [`check`] then requires kqring's two modes to agree with each
//! other, kqring to give what is expected of it, and io_uring — where it
//! runs — to give what was recorded. `kqring-conformance --bless FILE`
//! prints a program back with its expectation lines filled in from a run
//! ([`with_expectations`]).
//!
//! # Adding an opcode
//!
//! Add a line to the `ops!` table (its name in the text format and its
//! arguments, which then parse and print by themselves), an arm in the
//! kqring translation and an arm in the io_uring translation (and, if an
//! older kernel lacks it, a line in the io_uring runner's `needs`).
//!
//! # Compared flags
//!
//! Only `IORING_CQE_F_BUFFER` (with the buffer id above it) and
//! `IORING_CQE_F_MORE` are compared; the io_uring flags kqring does not
//! model (`F_SOCK_NONEMPTY`, `F_NOTIF`, `F_BUF_MORE`, ...) are masked out
//! (see [`COMPARED_FLAGS`]).

#![warn(missing_docs)]

mod diff;
mod fs;
mod model;
mod resources;
mod run;
mod run_kqring;
#[cfg(target_os = "linux")]
mod run_uring;
#[cfg(target_os = "linux")]
mod run_uring_fs;
pub mod scenarios;
mod suite;
mod text;

use std::time::Duration;

pub use diff::{diff, diff_groups, render_res};
pub use fs::render_stat;
pub use model::{
    Addr, CancelTarget, ChildEnd, CqeGroups, DirEntry, Domain, Entry, Expected, ExpectedGroup,
    FdName, FdRef, FileAdvice, FileRef, FileSlot, Flags, How, Mode, Offset, Op, OpenFlags, Order,
    PidRef, PollMask, Program, Resource, ResourceKind, RingName, SockType, Step, UpdateFd,
    WaitOptions,
};
pub use run::{
    COMPARED_FLAGS, ChildState, Completions, CqeRecord, DESCRIPTOR, RunError, Unavailable,
    normalize_flags,
};
pub use run_kqring::run_kqring;
pub use suite::{
    Outcome, Reference, Verdict, check, check_program, check_program_with, check_with, skip_lines,
    summary_line,
};
pub use text::{ParseError, with_expectations};

/// How long a `wait` step waits for its completions before it gives up and
/// the run goes on (what is missing then shows in the comparison).
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How long a run keeps collecting completions after its last step, so
/// that an extra one is seen.
pub const SETTLE: Duration = Duration::from_millis(25);

/// Runs `program` on Linux's io_uring.
///
/// Fails with [`RunError::Unavailable`] where there is no io_uring: not
/// Linux, or `io_uring_setup` refused (`ENOSYS`, `EPERM`, `EACCES`).
pub fn run_io_uring(program: &Program) -> Result<Completions, RunError> {
    #[cfg(target_os = "linux")]
    {
        run_uring::run(program)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = program;
        Err(RunError::Unavailable(Unavailable {
            reason: "io_uring: not Linux".into(),
        }))
    }
}
