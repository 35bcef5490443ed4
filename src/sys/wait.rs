//! What every backend's `kevent` does around the call it makes: room for
//! one result per change, and the deadline a timeout sets.

use std::time::{Duration, Instant};

use super::{Change, Event};

/// Grows `events` so that its spare capacity holds one result per change
/// (and at least one event).
pub(crate) fn make_room(changes: &[Change], events: &mut Vec<Event>) {
    events.reserve(changes.len().max(1));
}

/// When a `kevent` call's wait ends. A zero timeout (the driver's busy
/// turns) and none at all read no clock: on a VM a read costs as much as
/// a small operation, and a zero-timeout call would make three.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// No timeout: wait until something happens.
    Forever,
    /// A zero timeout: look, don't wait.
    Now,
    /// A timeout from the call's start.
    At(Instant),
}

impl Deadline {
    /// `timeout` from now. No timeout, or one too far away to represent,
    /// waits forever.
    pub(crate) fn after(timeout: Option<Duration>) -> Deadline {
        match timeout {
            None => Deadline::Forever,
            Some(t) if t.is_zero() => Deadline::Now,
            Some(t) => Instant::now()
                .checked_add(t)
                .map_or(Deadline::Forever, Deadline::At),
        }
    }

    /// The time left, zero once it has passed; `None`: forever.
    pub(crate) fn left(self) -> Option<Duration> {
        match self {
            Deadline::Forever => None,
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
        }
    }

    /// Whether it has passed.
    #[cfg_attr(not(kq_compat), allow(dead_code))]
    pub(crate) fn passed(self) -> bool {
        match self {
            Deadline::Forever => false,
            Deadline::Now => true,
            Deadline::At(deadline) => Instant::now() >= deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        assert_eq!(Deadline::after(None).left(), None);
        assert_eq!(Deadline::after(Some(Duration::MAX)).left(), None);
        assert!(!Deadline::after(None).passed());
        let now = Deadline::after(Some(Duration::ZERO));
        assert_eq!(now.left(), Some(Duration::ZERO));
        assert!(now.passed());
        let later = Deadline::after(Some(Duration::from_secs(60)));
        assert!(later.left().unwrap() > Duration::from_secs(59) && !later.passed());
    }
}
