//! Process events: `WaitId` (a child's state change), `Signal` (each
//! delivery of a signal, multishot; kqueue only).

use crate::cq::Extra;
use crate::ops::{EventOp, Interest, Op, Shot, operation};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::process::{self, ChildInfo, SignalClaim};
use crate::sys::{Event, Filter, Flags, note};

/// What [`WaitId`] reports of the child, as io_uring writes it into the
/// `siginfo_t` it is given (see [`Cqe::wait_info`]).
///
/// [`Cqe::wait_info`]: crate::Cqe::wait_info
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitInfo {
    /// `SIGCHLD` when a child was reported; 0 when `WNOHANG` found none.
    pub signo: i32,
    /// How it changed: `libc::CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`,
    /// `CLD_STOPPED`, `CLD_CONTINUED`…
    pub code: i32,
    /// The child's pid.
    pub pid: libc::pid_t,
    /// Its real user id.
    pub uid: libc::uid_t,
    /// Its exit code (`CLD_EXITED`), or the signal that killed, stopped
    /// or continued it.
    pub status: i32,
}

impl From<ChildInfo> for WaitInfo {
    fn from(c: ChildInfo) -> WaitInfo {
        WaitInfo {
            signo: c.signo,
            code: c.code,
            pid: c.pid,
            uid: c.uid,
            status: c.status,
        }
    }
}

/// `IORING_OP_WAITID`: completes when a child matching `idtype` and `id`
/// changes state as `options` asks (`libc::WEXITED`, `WSTOPPED`,
/// `WCONTINUED`, with `WNOHANG`, `WNOWAIT`), with `res` 0 and the child's
/// [`WaitInfo`] in the completion ([`Cqe::wait_info`]); the child is
/// reaped unless `WNOWAIT` says not to.
///
/// As io_uring: `-ECHILD` when no child matches (a pid that is not a
/// child of this process), `-EINVAL` for bad options or an idtype the
/// platform does not take; with `WNOHANG`, `res` 0 at once and a zeroed
/// info when no child has changed state. A child that exited before the
/// operation completes it at once.
///
/// `P_PID` with `WEXITED` alone waits on kqueue's EVFILT_PROC `NOTE_EXIT`
/// for the pid; anything else (`P_ALL`, `P_PGID`, `WSTOPPED`,
/// `WCONTINUED`) waits on `SIGCHLD` deliveries (EVFILT_SIGNAL), which on
/// the Linux compat the program must block in every thread
/// (docs/semantics.md, "WaitId").
///
/// ```no_run
/// use kqring::{Ring, ops};
/// let child = std::process::Command::new("true").spawn()?;
/// let ring = Ring::new(4)?;
/// let pid = child.id() as libc::id_t;
/// ring.submission().push(ops::WaitId::new(libc::P_PID, pid, libc::WEXITED).build())?;
/// ring.submit_and_wait(1)?;
/// let cqe = ring.completion().pop().expect("a completion");
/// let info = cqe.wait_info().expect("the child's state");
/// assert_eq!((cqe.result(), info.code, info.status), (0, libc::CLD_EXITED, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Cqe::wait_info`]: crate::Cqe::wait_info
#[derive(Debug, Clone, Copy)]
pub struct WaitId {
    idtype: libc::idtype_t,
    id: libc::id_t,
    options: libc::c_int,
    info: Option<ChildInfo>,
}

impl WaitId {
    /// Waits as `waitid(idtype, id, &info, options)` would.
    pub fn new(idtype: libc::idtype_t, id: libc::id_t, options: libc::c_int) -> WaitId {
        WaitId {
            idtype,
            id,
            options,
            info: None,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Event(Box::new(self)))
    }

    /// Whether EVFILT_PROC can tell: one process, and only its exit.
    fn by_pid(&self) -> bool {
        self.idtype == libc::P_PID
            && self.options & libc::WEXITED != 0
            && self.options & (libc::WSTOPPED | libc::WCONTINUED) == 0
    }
}

operation!(WaitId, "WaitId", |op, out| if let Some(info) = op.info {
    out.extra = Extra::Wait(Box::new(info.into()));
});

impl EventOp for WaitId {
    fn arm(&mut self) -> Result<Interest, Errno> {
        Ok(if self.by_pid() {
            Interest {
                ident: self.id as usize,
                filter: Filter::PROC,
                fflags: note::EXIT_STATUS,
                flags: Flags::NONE,
            }
        } else {
            Interest {
                ident: libc::SIGCHLD as usize,
                filter: Filter::SIGNAL,
                fflags: 0,
                flags: Flags::CLEAR,
            }
        })
    }

    /// `waitid` without blocking: a child to report ends it, and so does
    /// an error; nothing yet waits, unless the caller asked `WNOHANG`.
    fn check(&mut self) -> Shot {
        match process::waitid(self.idtype, self.id, self.options | libc::WNOHANG) {
            Err(e) => Shot::Last(e.res()),
            Ok(info) if info.signo == 0 && self.options & libc::WNOHANG == 0 => Shot::Pending,
            Ok(info) => {
                self.info = Some(info);
                Shot::Last(0)
            }
        }
    }

    fn on_event(&mut self, _ev: &Event) -> Shot {
        self.check()
    }

    /// The process is gone (ESRCH: reaped by someone else) or can't be
    /// watched: `waitid` says what the caller would have got.
    fn on_error(&mut self, err: Errno) -> i32 {
        match self.check() {
            Shot::Last(res) => res,
            _ => err.res(),
        }
    }
}

/// Posts a completion each time `signal` is delivered to the process
/// (kqueue's EVFILT_SIGNAL; io_uring has no such opcode): `res` is the
/// signal number, with `F_MORE`, and [`Cqe::deliveries`] how many
/// deliveries it stands for (signals sent while none was read coalesce, as
/// kqueue counts them). It goes on until cancelled; the ring's drop
/// cancels it too.
///
/// kqueue only records a delivery; what the process does with it is the
/// signal's disposition. While any `Signal` of a signal is in flight, a
/// signal whose action is the default and would do something (terminate,
/// stop, dump core) is set to ignored, process-wide; when the last one
/// ends, it is put back (unless the program changed it meanwhile). A
/// handler or an ignored signal is left as it is, and so are the signals
/// whose default is to ignore them. `SIGKILL` and `SIGSTOP` are `-EINVAL`.
/// On the Linux compat the program must also block the signal in every
/// thread (docs/semantics.md, "Signal").
///
/// [`Cqe::deliveries`]: crate::Cqe::deliveries
#[derive(Debug)]
pub struct Signal {
    signal: i32,
    claim: Option<SignalClaim>,
}

impl Signal {
    /// Listens for `signal` (`libc::SIGUSR1`…).
    pub fn new(signal: i32) -> Signal {
        Signal {
            signal,
            claim: None,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Event(Box::new(self)))
    }
}

operation!(Signal, "Signal", |_op, _out| {});

impl EventOp for Signal {
    fn arm(&mut self) -> Result<Interest, Errno> {
        self.claim = Some(SignalClaim::new(self.signal)?);
        Ok(Interest {
            ident: self.signal as usize,
            filter: Filter::SIGNAL,
            fflags: 0,
            flags: Flags::CLEAR,
        })
    }

    fn on_event(&mut self, ev: &Event) -> Shot {
        Shot::More {
            res: self.signal,
            extra: Extra::Count(ev.data().max(1) as u64),
        }
    }
}
