//! The operations waiting on one direction of one descriptor.
//!
//! I/O operations queue in submission order and are served head first, so
//! operations on one (fd, direction) complete in the order they were
//! submitted; every poll hears every readiness event.

use std::collections::VecDeque;

use crate::driver::table::OpKey;

/// The I/O operations waiting, head first. Most directions have at most
/// one: it is kept inline, and only a second allocates.
#[derive(Default, Debug)]
enum Queue {
    #[default]
    Empty,
    One(OpKey),
    // Boxed so that the enum stays small: it sits in every descriptor's
    // slot, and a second waiter is rare.
    #[allow(clippy::box_collection)]
    Many(Box<VecDeque<OpKey>>),
}

impl Queue {
    fn front(&self) -> Option<OpKey> {
        match self {
            Queue::Empty => None,
            Queue::One(key) => Some(*key),
            Queue::Many(q) => q.front().copied(),
        }
    }

    fn push(&mut self, key: OpKey) {
        match self {
            Queue::Empty => *self = Queue::One(key),
            Queue::One(first) => *self = Queue::Many(Box::new(VecDeque::from([*first, key]))),
            Queue::Many(q) => q.push_back(key),
        }
    }

    fn remove(&mut self, key: OpKey) -> bool {
        match self {
            Queue::Empty => false,
            Queue::One(only) => {
                let found = *only == key;
                if found {
                    *self = Queue::Empty;
                }
                found
            }
            Queue::Many(q) => {
                let Some(i) = q.iter().position(|&w| w == key) else {
                    return false;
                };
                q.remove(i);
                match q.len() {
                    0 => *self = Queue::Empty,
                    1 => *self = Queue::One(q[0]),
                    _ => {}
                }
                true
            }
        }
    }

    fn take(&mut self) -> Vec<OpKey> {
        match std::mem::take(self) {
            Queue::Empty => Vec::new(),
            Queue::One(key) => vec![key],
            Queue::Many(q) => Vec::from(*q),
        }
    }
}

/// The waiters of one direction of one descriptor.
#[derive(Default, Debug)]
pub(crate) struct Waiters {
    /// I/O operations, served head first so they complete in order.
    io: Queue,
    /// Poll operations. Boxed (one word, not three): rare, and most
    /// descriptors never have one.
    #[allow(clippy::box_collection)]
    polls: Option<Box<Vec<OpKey>>>,
}

impl Waiters {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.io, Queue::Empty) && self.polls.is_none()
    }

    /// The I/O operation served next.
    pub(crate) fn first_io(&self) -> Option<OpKey> {
        self.io.front()
    }

    /// The poll operations.
    pub(crate) fn polls(&self) -> &[OpKey] {
        self.polls.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The I/O operations, head first.
    pub(crate) fn io_keys(&self) -> Vec<OpKey> {
        match &self.io {
            Queue::Empty => Vec::new(),
            Queue::One(key) => vec![*key],
            Queue::Many(q) => q.iter().copied().collect(),
        }
    }

    pub(crate) fn push_io(&mut self, key: OpKey) {
        self.io.push(key);
    }

    pub(crate) fn push_poll(&mut self, key: OpKey) {
        self.polls.get_or_insert_default().push(key);
    }

    /// Takes every waiter, I/O first.
    pub(crate) fn take(&mut self) -> Vec<OpKey> {
        let mut keys = self.io.take();
        if let Some(polls) = self.polls.take() {
            keys.extend(*polls);
        }
        keys
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: OpKey) -> bool {
        if self.io.remove(key) {
            return true;
        }
        let Some(polls) = &mut self.polls else {
            return false;
        };
        let Some(i) = polls.iter().position(|&w| w == key) else {
            return false;
        };
        polls.swap_remove(i);
        if polls.is_empty() {
            self.polls = None;
        }
        true
    }
}
