//! Multishot operations as `Stream`s (the `futures-core` trait): one
//! item per completion, with `F_MORE`, until the last.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;

use crate::cq::Cqe;
use crate::proactor::Proactor;
use crate::proactor::slot::Slot;
use crate::sq::Sqe;

/// How each completion of a multishot operation becomes an item.
pub trait DecodeShot: Unpin {
    /// The stream's item.
    type Item;

    /// A successful completion's `res` is a new descriptor.
    const MAKES_FD: bool = false;

    /// The item for one completion; `None` for a terminal one that is not
    /// an item (a receive's end of stream).
    fn decode(&mut self, cqe: Cqe) -> Option<Self::Item>;
}

enum Stage {
    Unsent(Sqe),
    Sent(Arc<Slot>),
    /// Its last item was given, or the ring is gone.
    Ended,
}

/// A multishot operation's completions as a [`Stream`].
///
/// Its first poll pushes the operation; each completion the driver posts
/// for it is an item, in order, and the stream ends after the last (the
/// one without `F_MORE`). Dropping it cancels the operation; completions
/// not yet taken are dropped (accepted connections closed).
///
/// Completions that arrive while the stream is not polled wait in it
/// (none is dropped, as none is from the CQ).
#[must_use = "streams do nothing unless polled"]
pub struct ShotStream<'a, D: DecodeShot> {
    proactor: Proactor,
    stage: Stage,
    decode: D,
    _owner: PhantomData<&'a ()>,
}

impl<D: DecodeShot> ShotStream<'_, D> {
    pub(crate) fn new(proactor: &Proactor, sqe: Sqe, decode: D) -> Self {
        let slot = Slot::shared(D::MAKES_FD);
        ShotStream {
            proactor: proactor.clone(),
            stage: Stage::Unsent(sqe.notify(slot)),
            decode,
            _owner: PhantomData,
        }
    }
}

impl<D: DecodeShot> Stream for ShotStream<'_, D> {
    type Item = D::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<D::Item>> {
        let this = self.get_mut();
        loop {
            match &this.stage {
                Stage::Ended => return Poll::Ready(None),
                Stage::Unsent(_) => {
                    let Stage::Unsent(sqe) = std::mem::replace(&mut this.stage, Stage::Ended)
                    else {
                        unreachable!()
                    };
                    let Some(slot) = sqe.notify.clone() else {
                        unreachable!("a stream's entry has its slot")
                    };
                    match this.proactor.sq.push(sqe) {
                        Ok(()) => {
                            this.proactor.sq.shared.publish();
                            this.stage = Stage::Sent(slot);
                        }
                        Err(e) if e.is_closed() => {
                            let (_, cqe) = e.into_inner().into_cqe(-libc::ESHUTDOWN);
                            return Poll::Ready(this.decode.decode(cqe));
                        }
                        Err(e) => {
                            this.stage = Stage::Unsent(e.into_inner());
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                }
                Stage::Sent(slot) => {
                    return match slot.poll_take(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(None) => {
                            this.stage = Stage::Ended;
                            Poll::Ready(None)
                        }
                        Poll::Ready(Some(cqe)) => {
                            let last = !cqe.is_more();
                            match this.decode.decode(cqe) {
                                Some(item) => Poll::Ready(Some(item)),
                                None if last => {
                                    this.stage = Stage::Ended;
                                    Poll::Ready(None)
                                }
                                // A completion that is no item: look again.
                                None => continue,
                            }
                        }
                    };
                }
            }
        }
    }
}

impl<D: DecodeShot> futures_core::FusedStream for ShotStream<'_, D> {
    fn is_terminated(&self) -> bool {
        matches!(self.stage, Stage::Ended)
    }
}

impl<D: DecodeShot> Drop for ShotStream<'_, D> {
    fn drop(&mut self) {
        if let Stage::Sent(slot) = &self.stage
            && slot.abandon()
        {
            self.proactor.cancel(Arc::clone(slot));
        }
    }
}

impl<D: DecodeShot> std::fmt::Debug for ShotStream<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::Unsent(_) => "unsent",
            Stage::Sent(_) => "in flight",
            Stage::Ended => "ended",
        };
        f.debug_struct("ShotStream").field("stage", &stage).finish()
    }
}

/// A multishot receive's shots: each a provided buffer with its data.
#[derive(Debug, Default)]
pub struct Received;

impl DecodeShot for Received {
    type Item = std::io::Result<BytesMut>;

    fn decode(&mut self, mut cqe: Cqe) -> Option<Self::Item> {
        match cqe.io_result() {
            // The end of the stream: no item.
            Ok(0) if !cqe.is_more() => None,
            Ok(_) => Some(Ok(cqe.take_buf::<BytesMut>().unwrap_or_default())),
            Err(e) => Some(Err(e)),
        }
    }
}

/// The stream of [`TcpStream::recv_multishot`](crate::proactor::TcpStream::recv_multishot)
/// and its kin.
pub type RecvStream<'a> = ShotStream<'a, Received>;

impl crate::proactor::socket::Owned {
    pub(crate) fn recv_multishot(&self, group: u16) -> RecvStream<'_> {
        let sqe = crate::ops::Recv::select(self.target(), group)
            .multishot(true)
            .build();
        ShotStream::new(self.proactor(), sqe, Received)
    }
}
