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

use crate::ops::Select;
use crate::sys::errno::Errno;

/// Every buffer group of a ring.
#[derive(Default)]
pub(crate) struct BufGroups {
    groups: HashMap<u16, VecDeque<(u16, BytesMut)>>,
}

impl BufGroups {
    /// Adds `bufs` to `group` with ids from `bid`, taking them; its `res`.
    /// On failure the buffers stay with the caller.
    pub(crate) fn provide(&mut self, group: u16, bid: u16, bufs: &mut Vec<BytesMut>) -> i32 {
        if bufs.is_empty() || bufs.len() > 1 << 16 {
            return -libc::E2BIG;
        }
        if usize::from(bid) + bufs.len() > 1 << 16 {
            return -libc::EINVAL;
        }
        if bufs.iter().any(|b| b.capacity() == 0) {
            return -libc::EINVAL;
        }
        let queue = self.groups.entry(group).or_default();
        for (i, mut buf) in std::mem::take(bufs).into_iter().enumerate() {
            buf.clear();
            // `bid + i` fits: checked above.
            queue.push_back((bid.wrapping_add(i as u16), buf));
        }
        0
    }

    /// Removes up to `n` buffers from the front of `group`.
    pub(crate) fn remove(&mut self, group: u16, n: u16) -> Result<Vec<BytesMut>, Errno> {
        if n == 0 {
            return Err(Errno::EINVAL);
        }
        let queue = self.groups.get_mut(&group).ok_or(Errno::ENOENT)?;
        let n = usize::from(n).min(queue.len());
        Ok(queue.drain(..n).map(|(_, b)| b).collect())
    }

    /// Buffers in `group` now (0 for an unknown group).
    #[cfg(test)]
    pub(crate) fn len(&self, group: u16) -> usize {
        self.groups.get(&group).map_or(0, VecDeque::len)
    }

    /// Gives an operation that selects, and holds no buffer, one from its
    /// group: `Err(ENOBUFS)` when the group is empty or unknown.
    pub(crate) fn pick(&mut self, select: Option<&mut Select>) -> Result<(), Errno> {
        let Some(select) = select else {
            return Ok(());
        };
        if select.picked.is_some() {
            return Ok(());
        }
        let picked = self
            .groups
            .get_mut(&select.group)
            .and_then(VecDeque::pop_front)
            .ok_or(Errno::new(libc::ENOBUFS))?;
        select.picked = Some(picked);
        Ok(())
    }

    /// Whether an operation selects a buffer it doesn't hold yet from a
    /// group that is empty: trying it fails at once with -ENOBUFS, ready
    /// or not.
    pub(crate) fn runs_dry(&self, select: Option<&mut Select>) -> bool {
        select.is_some_and(|s| {
            s.picked.is_none() && self.groups.get(&s.group).is_none_or(VecDeque::is_empty)
        })
    }

    /// Puts the buffer an operation holds back at the front of its group:
    /// its attempt found nothing to read, or failed.
    pub(crate) fn unpick(&mut self, select: Option<&mut Select>) {
        let Some(select) = select else {
            return;
        };
        let Some((bid, mut buf)) = select.picked.take() else {
            return;
        };
        buf.clear();
        self.groups
            .entry(select.group)
            .or_default()
            .push_front((bid, buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bufs(n: usize) -> Vec<BytesMut> {
        (0..n).map(|_| BytesMut::with_capacity(8)).collect()
    }

    fn bid(s: &Select) -> Option<u16> {
        s.picked.as_ref().map(|&(bid, _)| bid)
    }

    #[test]
    fn groups_are_fifo_and_recycle_to_the_front() {
        let mut g = BufGroups::default();
        assert_eq!(g.provide(1, 10, &mut bufs(3)), 0);
        let mut sel = Select::new(1);
        g.pick(Some(&mut sel)).unwrap();
        assert_eq!(bid(&sel), Some(10));
        g.unpick(Some(&mut sel));
        assert_eq!(bid(&sel), None);
        assert_eq!(g.len(1), 3);
        g.pick(Some(&mut sel)).unwrap();
        assert_eq!(bid(&sel), Some(10), "the recycled buffer is first again");
        assert_eq!(g.remove(1, 5).map(|v| v.len()), Ok(2));
        assert_eq!(g.remove(1, 5).map(|v| v.len()), Ok(0));
        assert_eq!(g.remove(2, 5), Err(Errno::ENOENT));
        assert_eq!(g.remove(1, 0), Err(Errno::EINVAL));
        assert!(g.runs_dry(Some(&mut Select::new(1))));
        assert!(!g.runs_dry(Some(&mut sel)), "it holds one");
    }

    #[test]
    fn provide_checks_its_arguments_and_keeps_the_buffers_on_failure() {
        let mut g = BufGroups::default();
        assert_eq!(g.provide(1, 0, &mut Vec::new()), -libc::E2BIG);
        let mut two = bufs(2);
        assert_eq!(g.provide(1, u16::MAX, &mut two), -libc::EINVAL);
        assert_eq!(two.len(), 2);
        let mut empty = vec![BytesMut::new()];
        assert_eq!(g.provide(1, 0, &mut empty), -libc::EINVAL);
        assert_eq!(g.len(1), 0);
        let mut one = bufs(1);
        assert_eq!(g.provide(1, u16::MAX, &mut one), 0);
        assert!(one.is_empty(), "the group took it");
    }
}
