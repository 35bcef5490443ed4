//! The future of one operation: it pushes its entry on first poll, with
//! its slot as the completion target, and is ready when the driver has
//! filled the slot. Dropped while in flight, it cancels the operation; the
//! operation keeps its buffer until its completion reaches the slot.

use std::borrow::Cow;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::cq::Cqe;
use crate::proactor::Proactor;
use crate::proactor::slot::Slot;
use crate::proactor::timeout::Timeout;
use crate::sq::Sqe;

/// How a completion becomes a future's output.
///
/// kqring's futures use the decoders in this module; [`Proactor::run`]
/// takes any, so an operation the proactor types don't cover can still be
/// awaited with an output of its own.
pub trait Decode: Unpin {
    /// The future's output.
    type Output;

    /// A successful completion's `res` is a new descriptor (an accepted
    /// connection): a completion nobody takes closes it.
    const MAKES_FD: bool = false;

    /// The output for `cqe`.
    fn decode(self, cqe: Cqe) -> Self::Output;
}

/// The completion itself, as the CQ would have carried it.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCqe;

impl Decode for RawCqe {
    type Output = Cqe;
    fn decode(self, cqe: Cqe) -> Cqe {
        cqe
    }
}

/// `io::Result<()>`: `Connect`, `Shutdown`, `Fsync`…
#[derive(Debug, Default, Clone, Copy)]
pub struct Unit;

impl Decode for Unit {
    type Output = io::Result<()>;
    fn decode(self, cqe: Cqe) -> io::Result<()> {
        cqe.io_result().map(drop)
    }
}

/// `(io::Result<usize>, B)`: a read's or write's count and the caller's
/// buffer `B`, back on success, failure and cancellation alike.
pub struct BufResult<B>(PhantomData<fn() -> B>);

impl<B> Default for BufResult<B> {
    fn default() -> Self {
        BufResult(PhantomData)
    }
}

impl<B: 'static> Decode for BufResult<B> {
    type Output = (io::Result<usize>, B);
    fn decode(self, mut cqe: Cqe) -> (io::Result<usize>, B) {
        let buf = take_buf(&mut cqe);
        (cqe.io_result().map(|n| n as usize), buf)
    }
}

/// The buffer an operation was built with, back from its completion.
pub(crate) fn take_buf<B: 'static>(cqe: &mut Cqe) -> B {
    match cqe.take_buf::<B>() {
        Ok(buf) => buf,
        // Every future here builds its operation with a `B` and every
        // path of the driver hands it back (BufResult's invariant): not
        // reachable by input.
        Err(e) => unreachable!("a future's buffer did not come back: {e}"),
    }
}

enum Stage {
    /// Not pushed yet: pushed on first poll.
    Unsent(Sqe),
    /// In flight: its completion comes to the slot.
    Sent(Arc<Slot>),
    /// Finished without reaching the driver (the ring is gone, or it was
    /// cancelled before it was pushed).
    Ready(Cqe),
    Done,
}

/// The future of one operation; its output is `D`'s (a
/// [`BufResult`]'s `(io::Result<usize>, B)`, a [`Unit`]'s `io::Result<()>`…).
///
/// It does nothing until polled: the first poll pushes its entry. Dropped
/// before that, the entry and its buffer are simply dropped. Dropped while
/// in flight, it cancels the operation (an `AsyncCancel` of it) and its
/// buffer is freed when the cancelled operation's completion arrives,
/// never while the driver may still use it. Dropped after the completion
/// arrived but before it was polled, the completion is dropped (a
/// descriptor it made is closed).
///
/// The lifetime is that of the descriptor-owning value it was made from
/// (`'static` for [`Proactor::run`]): the descriptor can't be closed under
/// it.
#[must_use = "futures do nothing unless polled"]
pub struct OpFuture<'a, D: Decode> {
    /// Borrowed from the descriptor-owning value the future was made
    /// from, which outlives it: no reference count to move per operation.
    proactor: Cow<'a, Proactor>,
    stage: Stage,
    decode: Option<D>,
    /// A cancel asked by a timeout: a cancelled result reads `ETIMEDOUT`.
    timed_out: bool,
}

impl<'a, D: Decode> OpFuture<'a, D> {
    /// A future holding its own handle on the ring.
    pub(crate) fn new(proactor: &Proactor, sqe: Sqe, decode: D) -> Self {
        OpFuture::with(Cow::Owned(proactor.clone()), sqe, decode)
    }

    /// A future of a value that owns a descriptor and outlives it.
    pub(crate) fn borrowing(proactor: &'a Proactor, sqe: Sqe, decode: D) -> Self {
        OpFuture::with(Cow::Borrowed(proactor), sqe, decode)
    }

    fn with(proactor: Cow<'a, Proactor>, sqe: Sqe, decode: D) -> Self {
        OpFuture {
            proactor,
            stage: Stage::Unsent(sqe),
            decode: Some(decode),
            timed_out: false,
        }
    }

    pub(crate) fn proactor(&self) -> &Proactor {
        &self.proactor
    }

    /// The same future, failed with `ETIMEDOUT` (`io::ErrorKind::TimedOut`)
    /// if it has not completed within `after`: the operation is cancelled
    /// then, and its buffer still comes back with the error.
    pub fn timeout(self, after: Duration) -> Timeout<'a, D> {
        Timeout::new(self, after)
    }

    /// Cancels the operation and keeps waiting for its completion, which
    /// reads `ETIMEDOUT` if it was cancelled.
    pub(crate) fn cancel_timed_out(&mut self) {
        self.timed_out = true;
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Unsent(sqe) => {
                let (_, cqe) = sqe.into_cqe(-libc::ECANCELED);
                self.stage = Stage::Ready(cqe);
            }
            Stage::Sent(slot) => {
                if slot.cancel() {
                    self.proactor.cancel(Arc::clone(&slot));
                }
                self.stage = Stage::Sent(slot);
            }
            other => self.stage = other,
        }
    }

    fn finish(&mut self, mut cqe: Cqe) -> D::Output {
        if self.timed_out && cqe.res == -libc::ECANCELED {
            cqe.res = -libc::ETIMEDOUT;
        }
        if let Stage::Sent(slot) = std::mem::replace(&mut self.stage, Stage::Done) {
            Slot::recycle(slot);
        }
        match self.decode.take() {
            Some(decode) => decode.decode(cqe),
            None => unreachable!("an OpFuture finishes once"),
        }
    }

    /// The first poll: pushes the entry with a slot that already holds
    /// the task's waker, so nothing is left to look at until it wakes.
    fn send(&mut self, cx: &mut Context<'_>) -> Poll<D::Output> {
        let slot = Slot::shared_waking(D::MAKES_FD, Some(cx.waker()));
        // The entry out and its slot in, in one move of the stage.
        let sent = Stage::Sent(Arc::clone(&slot));
        let Stage::Unsent(mut sqe) = std::mem::replace(&mut self.stage, sent) else {
            unreachable!("only an unsent future is sent")
        };
        sqe.notify = Some(slot);
        match self.proactor.sq.push(sqe) {
            Ok(()) => {
                self.proactor.sq.shared.publish();
                Poll::Pending
            }
            Err(e) if e.is_closed() => {
                self.stage = Stage::Done;
                let (_, cqe) = e.into_inner().into_cqe(-libc::ESHUTDOWN);
                Poll::Ready(self.finish(cqe))
            }
            Err(e) => {
                // The SQ is full: try again on the next poll, which comes
                // after the executor has run others (and an inline ring's
                // block_on has turned it).
                let mut sqe = e.into_inner();
                sqe.notify = None;
                self.stage = Stage::Unsent(sqe);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<D: Decode> Future for OpFuture<'_, D> {
    type Output = D::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<D::Output> {
        let this = self.get_mut();
        if let Stage::Unsent(_) = this.stage {
            return this.send(cx);
        }
        // In flight, the slot stays in the future: dropped while it waits
        // (or unwinding from a waker's clone), the future still cancels.
        if let Stage::Sent(slot) = &this.stage {
            return match slot.poll_take(cx) {
                Poll::Ready(Some(cqe)) => Poll::Ready(this.finish(cqe)),
                Poll::Ready(None) => unreachable!("a single-shot slot ends with its completion"),
                Poll::Pending => Poll::Pending,
            };
        }
        match std::mem::replace(&mut this.stage, Stage::Done) {
            Stage::Ready(cqe) => Poll::Ready(this.finish(cqe)),
            _ => panic!("OpFuture polled after it completed"),
        }
    }
}

impl<D: Decode> Drop for OpFuture<'_, D> {
    fn drop(&mut self) {
        if let Stage::Sent(slot) = &self.stage
            && slot.abandon()
        {
            self.proactor.cancel(Arc::clone(slot));
        }
    }
}

impl<D: Decode> std::fmt::Debug for OpFuture<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::Unsent(_) => "unsent",
            Stage::Sent(_) => "in flight",
            Stage::Ready(_) | Stage::Done => "done",
        };
        f.debug_struct("OpFuture").field("stage", &stage).finish()
    }
}
