//! Where events wait and where they go: the queue of registrations whose
//! state holds an event, and the caller's event list.

use std::collections::VecDeque;

use super::Key;
use crate::sys::Event;

/// The spare capacity of the caller's event vector: events are pushed
/// without ever growing it past the capacity it had when the call began.
pub(super) struct Out<'a> {
    events: &'a mut Vec<Event>,
    start: usize,
    limit: usize,
}

impl<'a> Out<'a> {
    pub(super) fn new(events: &'a mut Vec<Event>) -> Out<'a> {
        let start = events.len();
        let limit = events.capacity();
        Out {
            events,
            start,
            limit,
        }
    }

    pub(super) fn room(&self) -> usize {
        self.limit.saturating_sub(self.events.len())
    }

    pub(super) fn push(&mut self, event: Event) {
        if self.room() > 0 {
            self.events.push(event);
        }
    }

    pub(super) fn count(&self) -> usize {
        self.events.len() - self.start
    }
}

/// Keys of registrations whose state says they have an event to deliver
/// (a triggered user event, vnode changes, a ready regular file). A key is
/// in the queue exactly when its registration's `queued` flag is set.
#[derive(Debug, Default)]
pub(super) struct Pending {
    keys: VecDeque<Key>,
}

impl Pending {
    pub(super) fn push(&mut self, key: Key) {
        self.keys.push_back(key);
    }

    pub(super) fn pop(&mut self) -> Option<Key> {
        self.keys.pop_front()
    }

    pub(super) fn remove(&mut self, key: Key) {
        self.keys.retain(|k| *k != key);
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
