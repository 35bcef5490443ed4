//! Provided buffer groups: `ProvideBuffers`, `RemoveBuffers`, and the
//! buffer selection (`SqeFlags::BUFFER_SELECT`) that `Read`, `Recv` and
//! `RecvMsg` can use.
//!
//! A group is a queue of owned `BytesMut` buffers, each with a buffer id
//! (`bid`). An operation submitted with `BUFFER_SELECT` and a group takes a
//! buffer only at the moment its data is ready — right before the syscall
//! that fills it — so operations waiting for data hold none. Its completion
//! carries `F_BUFFER`, the id ([`Cqe::buffer_id`]) and the filled buffer;
//! give it back with `ProvideBuffers` once done with it.
//!
//! [`Cqe::buffer_id`]: crate::Cqe::buffer_id

use bytes::BytesMut;

use crate::ops::{Op, RingOp};
use crate::sq::Sqe;

/// `IORING_OP_PROVIDE_BUFFERS`: adds `bufs` to group `group`, with ids
/// `bid`, `bid + 1`, …. The buffers are emptied (their length set to 0;
/// their capacity is what a receive may fill). Completes with 0; with
/// `-E2BIG` for no buffer, `-EINVAL` when an id would pass 65535 or a
/// buffer has no capacity — the buffers then come back in the completion.
///
/// Within a group buffers are used in the order they were provided (the
/// oldest first), as Linux ≥ 5.19 does with its legacy provided buffers.
#[derive(Debug)]
pub struct ProvideBuffers {
    pub(crate) group: u16,
    pub(crate) bid: u16,
    /// The buffers, until the group takes them.
    pub(crate) bufs: Vec<BytesMut>,
}

impl ProvideBuffers {
    /// Provides `bufs` to `group`, numbered from `bid`.
    pub fn new(group: u16, bufs: Vec<BytesMut>, bid: u16) -> ProvideBuffers {
        ProvideBuffers { group, bid, bufs }
    }

    /// Provides one buffer with id `bid`: how a buffer taken by a
    /// completion is given back.
    pub fn one(group: u16, buf: BytesMut, bid: u16) -> ProvideBuffers {
        ProvideBuffers::new(group, vec![buf], bid)
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::Provide(self))))
    }
}

/// `IORING_OP_REMOVE_BUFFERS`: removes up to `n` buffers from `group` (the
/// ones that would be used next). Completes with the number removed — the
/// buffers themselves come back in the completion, a `Vec<BytesMut>` — or `-ENOENT` for a group
/// that was never provided, `-EINVAL` for `n == 0`.
#[derive(Debug)]
pub struct RemoveBuffers {
    pub(crate) group: u16,
    pub(crate) n: u16,
    /// The buffers removed, for the completion.
    pub(crate) removed: Option<Vec<BytesMut>>,
}

impl RemoveBuffers {
    /// Removes up to `n` buffers from `group`.
    pub fn new(group: u16, n: u16) -> RemoveBuffers {
        RemoveBuffers {
            group,
            n,
            removed: None,
        }
    }

    /// The entry to push.
    pub fn build(self) -> Sqe {
        Sqe::new(Op::Ring(Box::new(RingOp::Remove(self))))
    }
}
