//! Provided buffer groups: the driver's store of buffers that operations
//! with `BUFFER_SELECT` take at the moment their data is ready.
//!
//! A group is a FIFO of `(bid, buffer)`: `ProvideBuffers` appends, an
//! operation takes from the front, and a buffer taken for an attempt that
//! found no data (or failed) goes back to the front, so the order of a
//! group is what Linux ≥ 5.19 gives its legacy provided buffers. A group
//! exists from its first `ProvideBuffers` on, even once empty.

use std::collections::{HashMap, VecDeque};

use bytes::BytesMut;

use crate::ops::Op;

/// Every buffer group of a ring.
#[derive(Default)]
pub(crate) struct BufGroups {
    groups: HashMap<u16, VecDeque<(u16, BytesMut)>>,
}

impl BufGroups {
    /// Adds `bufs` to `group` with ids from `bid`. `Err(res)` leaves the
    /// buffers with the caller.
    pub(crate) fn provide(
        &mut self,
        group: u16,
        bid: u16,
        bufs: &mut Option<Vec<BytesMut>>,
    ) -> i32 {
        let Some(list) = bufs.as_ref() else {
            return -libc::EINVAL;
        };
        if list.is_empty() || list.len() > 1 << 16 {
            return -libc::E2BIG;
        }
        if usize::from(bid) + list.len() > 1 << 16 {
            return -libc::EINVAL;
        }
        if list.iter().any(|b| b.capacity() == 0) {
            return -libc::EINVAL;
        }
        let Some(list) = bufs.take() else {
            return -libc::EINVAL;
        };
        let queue = self.groups.entry(group).or_default();
        for (i, mut buf) in list.into_iter().enumerate() {
            buf.clear();
            // `bid + i` fits: checked above.
            queue.push_back((bid.wrapping_add(i as u16), buf));
        }
        0
    }

    /// Removes up to `n` buffers from the front of `group`.
    pub(crate) fn remove(&mut self, group: u16, n: u16) -> Result<Vec<BytesMut>, i32> {
        if n == 0 {
            return Err(-libc::EINVAL);
        }
        let queue = self.groups.get_mut(&group).ok_or(-libc::ENOENT)?;
        let n = usize::from(n).min(queue.len());
        Ok(queue.drain(..n).map(|(_, b)| b).collect())
    }

    /// Buffers in `group` now (0 for an unknown group).
    #[cfg(test)]
    pub(crate) fn len(&self, group: u16) -> usize {
        self.groups.get(&group).map_or(0, VecDeque::len)
    }

    /// Gives an operation that selects, and holds no buffer, one from its
    /// group: `Err(-ENOBUFS)` when the group is empty or unknown.
    pub(crate) fn pick(&mut self, op: &mut Op) -> Result<(), i32> {
        let Some((pick, slot)) = op.pick_mut() else {
            return Ok(());
        };
        if !pick.on || pick.bid.is_some() {
            return Ok(());
        }
        let (bid, buf) = self
            .groups
            .get_mut(&pick.group)
            .and_then(VecDeque::pop_front)
            .ok_or(-libc::ENOBUFS)?;
        pick.bid = Some(bid);
        *slot = Some(buf);
        Ok(())
    }

    /// Whether `op` selects a buffer it doesn't hold yet from a group that
    /// is empty: trying it fails at once with -ENOBUFS, ready or not.
    pub(crate) fn runs_dry(&mut self, op: &mut Op) -> bool {
        let Some((pick, _)) = op.pick_mut() else {
            return false;
        };
        pick.on && pick.bid.is_none() && self.groups.get(&pick.group).is_none_or(VecDeque::is_empty)
    }

    /// Puts the buffer an operation holds back at the front of its group:
    /// its attempt found nothing to read, or failed.
    pub(crate) fn unpick(&mut self, op: &mut Op) {
        let Some((pick, slot)) = op.pick_mut() else {
            return;
        };
        // Only a provided buffer goes back: an own buffer stays put.
        let Some(bid) = pick.bid.take() else {
            return;
        };
        let Some(mut buf) = slot.take() else {
            return;
        };
        buf.clear();
        self.groups
            .entry(pick.group)
            .or_default()
            .push_front((bid, buf));
    }
}

/// The completion flags for the provided buffer `op` holds, if any.
pub(crate) fn held_flags(op: &mut Op) -> u32 {
    use crate::cq::flags;
    match op.pick_mut() {
        Some((pick, _)) => pick.bid.map_or(0, |bid| {
            flags::BUFFER | (u32::from(bid) << flags::BUFFER_SHIFT)
        }),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::{Recv, RemoveBuffers};

    fn bufs(n: usize) -> Option<Vec<BytesMut>> {
        Some((0..n).map(|_| BytesMut::with_capacity(8)).collect())
    }

    #[test]
    fn groups_are_fifo_and_recycle_to_the_front() {
        let mut g = BufGroups::default();
        assert_eq!(g.provide(1, 10, &mut bufs(3)), 0);
        let mut op = crate::ops::Op::Recv(Recv::select(0, 1));
        op.enable_select().unwrap();
        g.pick(&mut op).unwrap();
        assert_eq!(held_flags(&mut op) >> 16, 10);
        g.unpick(&mut op);
        assert_eq!(held_flags(&mut op), 0);
        assert_eq!(g.len(1), 3);
        g.pick(&mut op).unwrap();
        assert_eq!(
            held_flags(&mut op) >> 16,
            10,
            "the recycled buffer is first again"
        );
        assert_eq!(g.remove(1, 5).map(|v| v.len()), Ok(2));
        assert_eq!(g.remove(1, 5).map(|v| v.len()), Ok(0));
        assert_eq!(g.remove(2, 5), Err(-libc::ENOENT));
        assert_eq!(g.remove(1, 0), Err(-libc::EINVAL));
        let _ = RemoveBuffers::new(1, 1);
    }

    #[test]
    fn provide_checks_its_arguments_and_keeps_the_buffers_on_failure() {
        let mut g = BufGroups::default();
        let mut none = Some(Vec::new());
        assert_eq!(g.provide(1, 0, &mut none), -libc::E2BIG);
        let mut two = bufs(2);
        assert_eq!(g.provide(1, u16::MAX, &mut two), -libc::EINVAL);
        assert_eq!(two.map(|v| v.len()), Some(2));
        let mut empty = Some(vec![BytesMut::new()]);
        assert_eq!(g.provide(1, 0, &mut empty), -libc::EINVAL);
        assert_eq!(g.len(1), 0);
        assert_eq!(g.provide(1, u16::MAX, &mut bufs(1)), 0);
    }
}
