//! Time: a sleep on the ring's timers, and a timeout for any operation's
//! future that cancels the operation and still hands its buffer back.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cq::Cqe;
use crate::ops;
use crate::proactor::Proactor;
use crate::proactor::op::{Decode, OpFuture};

/// A `Timeout` operation's end: `-ETIME` is its time passing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Elapsed;

impl Decode for Elapsed {
    type Output = io::Result<()>;
    fn decode(self, cqe: Cqe) -> io::Result<()> {
        match cqe.result() {
            r if r == -crate::sys::ETIME || r >= 0 => Ok(()),
            r => Err(io::Error::from_raw_os_error(-r)),
        }
    }
}

/// The future of [`Proactor::sleep`]: ready with `Ok(())` once the time has
/// passed on the ring's timers.
pub type Sleep = OpFuture<'static, Elapsed>;

impl Proactor {
    /// A future ready `after` from its first poll, timed by the ring (a
    /// `Timeout` operation); dropped early, the timer is cancelled.
    pub fn sleep(&self, after: Duration) -> Sleep {
        OpFuture::new(self, ops::Timeout::new(after).build(), Elapsed)
    }
}

/// The future of [`OpFuture::timeout`]: the operation's own output, or, if
/// its time passed first, the operation cancelled and its output read as
/// `ETIMEDOUT` (`io::ErrorKind::TimedOut`), buffer included.
#[must_use = "futures do nothing unless polled"]
pub struct Timeout<'a, D: Decode> {
    op: OpFuture<'a, D>,
    /// `None` once it fired.
    timer: Option<Sleep>,
}

impl<'a, D: Decode> Timeout<'a, D> {
    pub(crate) fn new(op: OpFuture<'a, D>, after: Duration) -> Self {
        let timer = op.proactor().sleep(after);
        Timeout {
            op,
            timer: Some(timer),
        }
    }
}

impl<D: Decode> Future for Timeout<'_, D> {
    type Output = D::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<D::Output> {
        let this = self.get_mut();
        // The operation first: it is pushed before its timer.
        if let Poll::Ready(out) = Pin::new(&mut this.op).poll(cx) {
            return Poll::Ready(out);
        }
        if let Some(timer) = &mut this.timer
            && Pin::new(timer).poll(cx).is_ready()
        {
            this.timer = None;
            this.op.cancel_timed_out();
            return Pin::new(&mut this.op).poll(cx);
        }
        Poll::Pending
    }
}

impl<D: Decode> std::fmt::Debug for Timeout<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("op", &self.op)
            .field("fired", &self.timer.is_none())
            .finish()
    }
}
