//! File change events: `Watch` (kqueue's EVFILT_VNODE, multishot; kqueue
//! only).

use crate::cq::Extra;
use crate::ops::{EventOp, Fd, Interest, Op, Shot, operation};
use crate::sq::Sqe;
use crate::sys::errno::Errno;
use crate::sys::{Event, Filter, Flags, note};

/// Posts a completion each time the file or directory `fd` refers to
/// changes in one of the ways `events` asks for (kqueue's EVFILT_VNODE;
/// io_uring has no such opcode): `res` is the change bits
/// (`sys::note::WRITE | EXTEND | ATTRIB | LINK | RENAME | DELETE |
/// REVOKE`, only those asked for), with `F_MORE`.
///
/// Changes that happen while no completion was posted coalesce into one,
/// as kqueue's `EV_CLEAR` does. It goes on until cancelled — an unlink
/// (`DELETE`) does not end it, since the open file lives on and may
/// change again — except on `REVOKE` (access revoked, a forced unmount),
/// which kqueue reports once and which is always reported: that
/// completion has no `F_MORE`. `-EINVAL` for no bit or an unknown one,
/// `-EBADF` for a descriptor that is not open. The descriptor must stay
/// open while it watches: kqueue drops the registration of a closed
/// descriptor (a `Close` through the ring cancels the watch).
///
/// ```
/// use kqring::{Ring, ops, sys::note};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// let mut file = tempfile_for_doc()?;
/// // Inline: `submit` runs the driver's turn that registers the watch.
/// let ring = Ring::builder().inline().build()?;
/// ring.submission().push(ops::Watch::new(file.as_raw_fd(), note::WRITE).build().user_data(1))?;
/// ring.submission().submit()?;
/// file.write_all(b"x")?;
/// let cqe = ring.completion().wait()?;
/// assert_eq!((cqe.result() as u32, cqe.is_more()), (note::WRITE, true));
/// # fn tempfile_for_doc() -> std::io::Result<std::fs::File> {
/// #     let path = std::env::temp_dir().join(format!("kqring-watch-doc-{}", std::process::id()));
/// #     let f = std::fs::File::create(&path)?;
/// #     std::fs::remove_file(&path)?;
/// #     Ok(f)
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub(crate) fd: Fd,
    events: u32,
}

/// Every change a `Watch` can ask for.
const ALL: u32 = note::DELETE
    | note::WRITE
    | note::EXTEND
    | note::ATTRIB
    | note::LINK
    | note::RENAME
    | note::REVOKE;

impl Watch {
    /// Watches `fd` (a descriptor, or a registered file) for `events`.
    pub fn new(fd: impl Into<Fd>, events: u32) -> Watch {
        Watch {
            fd: fd.into(),
            events,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Event(Box::new(self)))
    }
}

operation!(Watch, "Watch", fd, |_op, _out| {});

impl EventOp for Watch {
    fn arm(&mut self) -> Result<Interest, Errno> {
        if self.events == 0 || self.events & !ALL != 0 {
            return Err(Errno::EINVAL);
        }
        let fd = self.fd.number();
        if fd < 0 {
            return Err(Errno::EBADF);
        }
        Ok(Interest {
            ident: fd as usize,
            filter: Filter::VNODE,
            fflags: self.events | note::REVOKE,
            flags: Flags::CLEAR,
        })
    }

    fn on_event(&mut self, ev: &Event) -> Shot {
        let bits = ev.fflags() & (self.events | note::REVOKE);
        // A revoked file's registration is gone (kqueue marks it EV_EOF
        // and one-shot).
        if bits & note::REVOKE != 0 || ev.is_eof() {
            return Shot::Last(bits as i32);
        }
        if bits == 0 {
            return Shot::Pending;
        }
        Shot::More {
            res: bits as i32,
            extra: Extra::None,
        }
    }
}
