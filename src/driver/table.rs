//! The op table: every operation in flight, by a typed key.
//!
//! A key is a slot index and the slot's generation, which grows each time
//! the slot is reused: a key kept by a waiter queue, a timer or a link
//! after its operation completed names nothing, rather than whatever
//! operation took the slot next.

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Instant;

use crate::driver::pool::Claim;
use crate::ops::Op;
use crate::proactor::slot;
use crate::sq::SqeFlags;
use crate::sys::io::FdKind;

/// The name of an operation in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OpKey {
    index: u32,
    generation: u32,
}

#[cfg(test)]
impl OpKey {
    /// A key for tests of the structures that keep keys.
    pub(crate) fn test(index: u32) -> OpKey {
        OpKey {
            index,
            generation: 0,
        }
    }
}

/// Where an operation is.
#[derive(Debug)]
pub(crate) enum State {
    /// In a link chain, waiting for the operation before it.
    Linked,
    /// Started: queued on a descriptor's waiters, or about to complete.
    Started,
    /// A timeout waiting for its time or its count.
    Timer,
    /// On the blocking pool: its operation is with the worker.
    Running {
        /// Lets a cancel withdraw the job no worker started.
        claim: Arc<Claim>,
        /// A cancel (or its linked timeout) found it running: if the
        /// worker hands it back to wait for readiness, it ends there with
        /// -ECANCELED instead (io_uring's worker marks such work
        /// cancelled).
        cancel_asked: bool,
    },
}

/// An operation in flight.
pub(crate) struct Entry {
    pub(crate) user_data: u64,
    pub(crate) flags: SqeFlags,
    /// The operation; `None` while a worker has it.
    pub(crate) op: Option<Op>,
    /// The descriptor it works on, kept here because the operation is
    /// away while it runs on the pool (for a registered file: the
    /// descriptor its slot held, once started).
    pub(crate) fd: Option<RawFd>,
    /// `fd` is a registered file's descriptor, held until completion.
    pub(crate) holds_file: bool,
    pub(crate) span: tracing::Span,
    pub(crate) state: State,
    /// What the descriptor is, once an attempt found out.
    pub(crate) kind: Option<FdKind>,
    /// Where its completions go instead of the CQ (a future's slot).
    pub(crate) notify: Option<Arc<slot::Slot>>,
    /// Its links and timer, boxed: most entries have none, and an idle
    /// connection's entry should stay small.
    links: Option<Box<Links>>,
}

/// An entry's place in link chains and its timer.
#[derive(Debug, Default)]
pub(crate) struct Links {
    /// The next entry of its link chain.
    pub(crate) next: Option<OpKey>,
    /// The LinkTimeout bounding this operation.
    pub(crate) link_timeout: Option<OpKey>,
    /// For a LinkTimeout: the operation it bounds.
    pub(crate) bounds: Option<OpKey>,
    /// When a timeout falls due (heap entries with another time are stale).
    pub(crate) deadline: Option<Instant>,
}

const NO_LINKS: Links = Links {
    next: None,
    link_timeout: None,
    bounds: None,
    deadline: None,
};

impl Entry {
    pub(crate) fn new(user_data: u64, flags: SqeFlags, op: Op, span: tracing::Span) -> Entry {
        Entry {
            user_data,
            flags,
            fd: None,
            op: Some(op),
            holds_file: false,
            span,
            state: State::Started,
            kind: None,
            notify: None,
            links: None,
        }
    }

    /// The operation, unless a worker has it.
    pub(crate) fn op(&self) -> Option<&Op> {
        self.op.as_ref()
    }

    pub(crate) fn links(&self) -> &Links {
        self.links.as_deref().unwrap_or(&NO_LINKS)
    }

    pub(crate) fn links_mut(&mut self) -> &mut Links {
        self.links.get_or_insert_default()
    }

    pub(crate) fn is_running(&self) -> bool {
        matches!(self.state, State::Running { .. })
    }
}

enum Slot {
    Vacant { next_free: u32, generation: u32 },
    Occupied { generation: u32, entry: Entry },
}

/// Every operation in flight.
pub(crate) struct Table {
    slots: Vec<Slot>,
    /// The first vacant slot, `u32::MAX` when none.
    free: u32,
    len: usize,
}

const NONE_FREE: u32 = u32::MAX;

impl Table {
    pub(crate) fn with_capacity(n: usize) -> Table {
        Table {
            slots: Vec::with_capacity(n),
            free: NONE_FREE,
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn insert(&mut self, entry: Entry) -> OpKey {
        self.len += 1;
        if let Some(Slot::Vacant {
            next_free,
            generation,
        }) = self.slots.get(self.free as usize)
        {
            let (index, next_free, generation) = (self.free, *next_free, *generation);
            self.free = next_free;
            self.slots[index as usize] = Slot::Occupied { generation, entry };
            return OpKey { index, generation };
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot::Occupied {
            generation: 0,
            entry,
        });
        OpKey {
            index,
            generation: 0,
        }
    }

    pub(crate) fn get(&self, key: OpKey) -> Option<&Entry> {
        match self.slots.get(key.index as usize) {
            Some(Slot::Occupied { generation, entry }) if *generation == key.generation => {
                Some(entry)
            }
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: OpKey) -> Option<&mut Entry> {
        match self.slots.get_mut(key.index as usize) {
            Some(Slot::Occupied { generation, entry }) if *generation == key.generation => {
                Some(entry)
            }
            _ => None,
        }
    }

    /// Whether `key` names an operation still in flight.
    pub(crate) fn contains(&self, key: OpKey) -> bool {
        self.get(key).is_some()
    }

    /// Takes the entry out; its key names nothing from now on.
    pub(crate) fn remove(&mut self, key: OpKey) -> Option<Entry> {
        let slot = self.slots.get_mut(key.index as usize)?;
        match slot {
            Slot::Occupied { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        let vacant = Slot::Vacant {
            next_free: self.free,
            generation: key.generation.wrapping_add(1),
        };
        let Slot::Occupied { entry, .. } = std::mem::replace(slot, vacant) else {
            return None;
        };
        self.free = key.index;
        self.len -= 1;
        Some(entry)
    }

    /// Every operation in flight, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (OpKey, &Entry)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied { generation, entry } => Some((
                OpKey {
                    index: i as u32,
                    generation: *generation,
                },
                entry,
            )),
            Slot::Vacant { .. } => None,
        })
    }

    /// The bytes one slot takes.
    #[cfg(test)]
    pub(crate) fn slot_bytes() -> usize {
        std::mem::size_of::<Slot>()
    }

    /// Some operation in flight, if any.
    pub(crate) fn first(&self) -> Option<OpKey> {
        self.iter().next().map(|(key, _)| key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Nop;

    fn entry(user_data: u64) -> Entry {
        let sqe = Nop::new().build();
        Entry::new(user_data, SqeFlags::NONE, sqe.op, tracing::Span::none())
    }

    #[test]
    fn a_stale_key_names_nothing_once_its_slot_is_reused() {
        let mut t = Table::with_capacity(2);
        let a = t.insert(entry(1));
        let b = t.insert(entry(2));
        assert_eq!(t.remove(a).map(|e| e.user_data), Some(1));
        assert!(!t.contains(a) && t.remove(a).is_none());
        let c = t.insert(entry(3));
        assert_eq!(c.index, a.index, "the slot is reused");
        assert!(t.get(a).is_none(), "under a new generation");
        assert_eq!(t.get(c).map(|e| e.user_data), Some(3));
        let order: Vec<u64> = t.iter().map(|(_, e)| e.user_data).collect();
        assert_eq!(order, [3, 2]);
        assert_eq!(t.first(), Some(c));
        t.remove(b);
        t.remove(c);
        assert!(t.is_empty() && t.first().is_none());
    }
}
