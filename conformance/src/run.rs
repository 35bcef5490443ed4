//! What a run gives, and the step interpreter both backends share.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::time::Instant;

use crate::PATIENCE;
use crate::model::{Entry, FileRef, Op, Program, ResourceKind, RingName, Step};
use crate::resources::{Fds, SockAddress};

/// One completion as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqeRecord {
    /// The entry's `user_data`.
    pub user_data: u64,
    /// The result: `>= 0`, or `-errno`; [`DESCRIPTOR`] for a new
    /// descriptor of the process.
    pub res: i32,
    /// The compared flags ([`normalize_flags`]).
    pub flags: u32,
    /// For a successful read, the bytes it read.
    pub data: Option<Vec<u8>>,
    /// For a received message, who sent it: the name of the program's
    /// descriptor bound to the sender's address (or the address itself,
    /// when it is none of theirs); `None` for an unnamed sender.
    pub from: Option<String>,
    /// For a successful `statx`, the status as compared
    /// ([`render_stat`](crate::render_stat)).
    pub stat: Option<String>,
    /// For a successful `waitid`, the child's state as compared
    /// ([`ChildState::render`]).
    pub waited: Option<String>,
}

/// What a `waitid` reports of a child (`siginfo_t`'s fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildState {
    /// `si_signo`: `SIGCHLD`, or 0 when `WNOHANG` found nothing.
    pub signo: i32,
    /// `si_code`: `CLD_EXITED`, `CLD_KILLED`…
    pub code: i32,
    /// `si_status`: the exit status, or the signal.
    pub status: i32,
    /// `si_pid`.
    pub pid: i32,
    /// `si_uid`.
    pub uid: u32,
}

impl ChildState {
    /// The state as an `expect` line's `waited=` gives it: `exited 3
    /// pid=c`, `killed KILL pid=c` (`pid=` names the `child` resource, or
    /// is the number), `none` when `WNOHANG` found nothing; a `signo`
    /// other than `SIGCHLD` and a `uid` other than the runner's are
    /// added.
    pub fn render(&self, pid_name: Option<&str>) -> String {
        if self.signo == 0 && self.pid == 0 {
            return "none".into();
        }
        let mut out = Vec::new();
        if self.signo != libc::SIGCHLD {
            out.push(format!("signo={}", self.signo));
        }
        let (code, signal) = match self.code {
            libc::CLD_EXITED => ("exited", false),
            libc::CLD_KILLED => ("killed", true),
            libc::CLD_DUMPED => ("dumped", true),
            libc::CLD_STOPPED => ("stopped", true),
            libc::CLD_TRAPPED => ("trapped", true),
            libc::CLD_CONTINUED => ("continued", true),
            _ => ("", false),
        };
        if code.is_empty() {
            out.push(format!("code={} {}", self.code, self.status));
        } else if signal {
            out.push(format!("{code} {}", crate::model::signal_name(self.status)));
        } else {
            out.push(format!("{code} {}", self.status));
        }
        match pid_name {
            Some(name) => out.push(format!("pid={name}")),
            None => out.push(format!("pid={}", self.pid)),
        }
        // SAFETY: getuid takes no pointer and cannot fail.
        if self.uid != unsafe { libc::getuid() } {
            out.push(format!("uid={}", self.uid));
        }
        out.join(" ")
    }
}

/// The `res` of a completion that made a descriptor of the process (a
/// socket, an accept that is not direct), whatever its number: numbers
/// differ between backends and runs. Written `res=fd`.
pub const DESCRIPTOR: i32 = i32::MAX;

/// `IORING_CQE_F_BUFFER`.
pub(crate) const F_BUFFER: u32 = 1 << 0;
/// `IORING_CQE_F_MORE`.
pub(crate) const F_MORE: u32 = 1 << 1;
/// Where a provided buffer's id starts (`IORING_CQE_BUFFER_SHIFT`).
const BUFFER_SHIFT: u32 = 16;

/// The flag bits compared: `F_BUFFER` and `F_MORE`, plus the buffer id when
/// `F_BUFFER` is set. io_uring's other bits (`F_SOCK_NONEMPTY`, `F_NOTIF`,
/// `F_BUF_MORE`…) describe things kqring does not model.
pub const COMPARED_FLAGS: u32 = F_BUFFER | F_MORE;

/// Keeps the compared bits of a CQE's flags (see [`COMPARED_FLAGS`]).
pub fn normalize_flags(flags: u32) -> u32 {
    let id = if flags & F_BUFFER != 0 {
        flags & (0xffff << BUFFER_SHIFT)
    } else {
        0
    };
    (flags & COMPARED_FLAGS) | id
}

/// A completion in the text format of an `expect` line:
/// `ud=1 res=-ECANCELED more buf=5 data="hi" from=u`.
impl fmt::Display for CqeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ud={} res={}",
            self.user_data,
            crate::diff::render_res(self.res)
        )?;
        if self.flags & F_MORE != 0 {
            f.write_str(" more")?;
        }
        if self.flags & F_BUFFER != 0 {
            write!(f, " buf={}", self.flags >> BUFFER_SHIFT)?;
        }
        if let Some(data) = &self.data {
            write!(f, " data={}", crate::text::quote(data))?;
        }
        if let Some(from) = &self.from {
            write!(f, " from={from}")?;
        }
        if let Some(stat) = &self.stat {
            write!(f, " stat={}", crate::text::quote(stat.as_bytes()))?;
        }
        if let Some(waited) = &self.waited {
            write!(f, " waited={}", crate::text::quote(waited.as_bytes()))?;
        }
        Ok(())
    }
}

/// The completions of one run, as its `wait` steps collected them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Completions {
    /// One group per `wait` step, in order, then one for the completions
    /// that arrived after the last step (within the settle time). A group
    /// is sorted by `user_data` when the program's order says so.
    pub groups: Vec<Vec<CqeRecord>>,
}

impl Completions {
    /// Every completion, in order.
    pub fn all(&self) -> Vec<&CqeRecord> {
        self.groups.iter().flatten().collect()
    }
}

/// A completion as a backend gives it: the sender of a received message
/// is still an address.
pub(crate) struct Got {
    pub(crate) record: CqeRecord,
    pub(crate) from: Option<SockAddress>,
    /// A successful `waitid`'s report, its pid still a number.
    pub(crate) child: Option<ChildState>,
}

/// The `recv(2)` flags of a receive.
pub(crate) fn recv_flags(waitall: bool, peek: bool) -> i32 {
    let mut flags = 0;
    if waitall {
        flags |= libc::MSG_WAITALL;
    }
    if peek {
        flags |= libc::MSG_PEEK;
    }
    flags
}

/// The descriptor array of a `files-update`, as both backends take it:
/// -1 empties a slot, -2 (`IORING_REGISTER_FILES_SKIP`) leaves it.
pub(crate) fn update_fds(
    list: &[crate::model::UpdateFd],
    fds: &crate::resources::Fds,
) -> Result<Vec<i32>, RunError> {
    use crate::model::UpdateFd;
    list.iter()
        .map(|fd| match fd {
            UpdateFd::Fd(fd) => fds.get(fd),
            UpdateFd::Clear => Ok(-1),
            UpdateFd::Skip => Ok(-2),
        })
        .collect()
}

/// A buffer group id, which both backends take as 16 bits.
pub(crate) fn group16(group: u32) -> Result<u16, RunError> {
    u16::try_from(group).map_err(|_| RunError::Invalid(format!("group {group} is over 65535")))
}

/// A buffer id or count, 16 bits.
pub(crate) fn bid16(n: u32) -> Result<u16, RunError> {
    u16::try_from(n).map_err(|_| RunError::Invalid(format!("{n} is over 65535")))
}

/// Why io_uring could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// The reason, as printed (`io_uring: not Linux`…).
    pub reason: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Why a run could not be made.
#[derive(Debug)]
pub enum RunError {
    /// The backend does not exist here (io_uring off Linux, or refused).
    Unavailable(Unavailable),
    /// The program is not valid (an unknown descriptor…).
    Invalid(String),
    /// A resource or the ring could not be set up, or the ring failed.
    Io {
        /// What was being done.
        what: String,
        /// The error.
        error: io::Error,
    },
}

impl RunError {
    pub(crate) fn io(what: impl Into<String>, error: io::Error) -> RunError {
        RunError::Io {
            what: what.into(),
            error,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Unavailable(u) => write!(f, "{u}"),
            RunError::Invalid(m) => write!(f, "invalid program: {m}"),
            RunError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

/// What the step interpreter needs of a backend.
pub(crate) trait Backend {
    /// Pushes `entries` in order and submits them as one batch.
    fn submit(&mut self, entries: &[Entry], fds: &Fds) -> Result<(), RunError>;
    /// The next completion, waiting until `deadline` at most.
    fn next(&mut self, deadline: Instant) -> Result<Option<Got>, RunError>;
    /// The next completion of the second ring `ring`, waiting until
    /// `deadline` at most; `None` once it is closed.
    fn next_of(&mut self, ring: &RingName, deadline: Instant) -> Result<Option<Got>, RunError>;
    /// Closes the second ring `ring`.
    fn close_ring(&mut self, ring: &RingName);
    /// Ends the run: whatever is still in flight is stopped, not recorded.
    fn finish(self);
}

/// Runs `program`'s steps on `backend` over freshly made resources, and
/// gives the completions, each wait's sorted when the program says so.
pub(crate) fn drive<B: Backend>(
    program: &Program,
    make: impl FnOnce() -> Result<B, RunError>,
) -> Result<Completions, RunError> {
    program.validate().map_err(RunError::Invalid)?;
    let mut fds = Fds::create(&program.resources)?;
    let mut backend = make()?;
    let mut groups: Vec<Vec<CqeRecord>> = Vec::new();
    let result = (|| {
        for step in &program.steps {
            match step {
                Step::Submit(entries) => backend.submit(entries, &fds)?,
                Step::WritePeer { fd, data } => fds.write_peer(fd, data)?,
                Step::ClosePeer { fd } => fds.close_peer(fd),
                Step::Wait(n) => {
                    let deadline = Instant::now() + PATIENCE;
                    let mut group = Vec::with_capacity(*n);
                    while group.len() < *n {
                        match backend.next(deadline)? {
                            Some(c) => group.push(normalize(program, &mut fds, c)),
                            None => break,
                        }
                    }
                    groups.push(group);
                }
                Step::WaitRing { ring, n } => {
                    let deadline = Instant::now() + PATIENCE;
                    let mut group = Vec::with_capacity(*n);
                    while group.len() < *n {
                        match backend.next_of(ring, deadline)? {
                            Some(c) => group.push(normalize(program, &mut fds, c)),
                            None => break,
                        }
                    }
                    groups.push(group);
                }
                Step::CloseRing { ring } => backend.close_ring(ring),
                Step::EndChild { child } => fds.end_child(child)?,
            }
        }
        let deadline = Instant::now() + program.settle;
        let mut extra = Vec::new();
        while let Some(c) = backend.next(deadline)? {
            extra.push(normalize(program, &mut fds, c));
        }
        // What the second rings got after the last step counts too: as
        // much as was there when the settle time ended.
        for r in &program.resources {
            if let ResourceKind::Ring { .. } = r.kind {
                let ring = RingName(r.name.clone());
                while let Some(c) = backend.next_of(&ring, Instant::now())? {
                    extra.push(normalize(program, &mut fds, c));
                }
            }
        }
        groups.push(extra);
        Ok(())
    })();
    // A descriptor a Close entry closed is no longer ours: closing its
    // number again could close an unrelated descriptor. (A Close of a slot
    // closes no descriptor of ours.)
    for e in program.entries() {
        if let Op::Close {
            fd: FileRef::Fd(fd),
        } = &e.op
        {
            let failed = groups
                .iter()
                .flatten()
                .any(|c| c.user_data == e.user_data && c.res < 0);
            if !failed {
                fds.forget(fd);
            }
        }
    }
    fds.unblock();
    backend.finish();
    drop(fds);
    result?;
    // A completion names its entry only by user_data: the bytes of a read
    // that shares its user_data cannot be told apart, and are left out on
    // every backend alike.
    let mut count: HashMap<u64, usize> = HashMap::new();
    for e in program.entries() {
        *count.entry(e.user_data).or_default() += 1;
    }
    for c in groups.iter_mut().flatten() {
        if count.get(&c.user_data).is_some_and(|&n| n > 1) {
            c.data = None;
        }
    }
    let groups = groups
        .into_iter()
        .map(|g| crate::model::sorted(g, program.order))
        .collect();
    Ok(Completions { groups })
}

/// The `poll(2)` bits a poll's result is compared on: those every
/// platform has, with the same values. Linux adds `POLLRDHUP` (and the
/// `RDNORM`/`WRNORM` duplicates, numbered differently elsewhere).
const PORTABLE_POLL: i32 =
    (libc::POLLIN | libc::POLLPRI | libc::POLLOUT | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL)
        as i32;

/// Takes a completion's new descriptor into the run's descriptors (under
/// the name its entry gives it) and writes its `res` as [`DESCRIPTOR`];
/// keeps a poll's portable bits; names the sender of a received message.
fn normalize(program: &Program, fds: &mut Fds, got: Got) -> CqeRecord {
    let mut c = got.record;
    if c.res >= 0
        && program
            .entries()
            .any(|e| e.user_data == c.user_data && matches!(e.op, Op::PollAdd { .. }))
    {
        c.res &= PORTABLE_POLL;
    }
    if c.res >= 0
        && let Some(e) = program
            .entries()
            .find(|e| e.user_data == c.user_data && e.op.makes_fd())
    {
        fds.adopt(e.op.names_fd().map(|n| n.0.as_str()), c.res);
        c.res = DESCRIPTOR;
    }
    c.from = got.from.and_then(|a| fds.name_of(&a));
    if c.res >= 0
        && let Some(state) = got.child
    {
        c.waited = Some(state.render(fds.child_named(state.pid).as_deref()));
    }
    c
}
