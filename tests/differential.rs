//! Differential fuzzing: random SQE programs over socket pairs, pipes,
//! timers, links, drains and cancels, each run on kqring (both driving
//! modes) and on Linux's io_uring through the conformance tool. Any
//! difference fails, and the failure prints the program in the tool's
//! text format, ready to be saved as a scenario (`kqring-conformance
//! --show FILE` replays it).
//!
//! CI runs a bounded number of programs (`DEFAULT_CASES`, about 30 s on
//! 2 cores); a longer run:
//!
//! ```sh
//! PROPTEST_CASES=5000 cargo test --release --test differential -- --nocapture
//! ```
//!
//! # Deterministic programs
//!
//! A program is only worth comparing if io_uring answers it the same way
//! every time, so the generator keeps to programs whose outcome does not
//! depend on timing:
//!
//! - A program is a list of rounds. Every entry of a round ends within the
//!   round, so each round ends with a `wait` for exactly as many
//!   completions as it has entries (a short wait would let a completion
//!   slip into the next group, a long one would wait out the tool's
//!   patience).
//! - Each of four channels (two socket pairs, two pipes; read at one end,
//!   written at the other) sees at most one reader (read, receive or
//!   poll) and at most one event (a write by the ring or from outside, or
//!   the writer closed) per round. Two readers of one descriptor are
//!   served in an order io_uring leaves open (the documented difference
//!   `reads-on-one-socket-in-order`), and two events could be seen by
//!   one read or by two.
//! - A reader that may find its channel empty has exactly one way to end:
//!   the round's event on its channel, a cancel (in a batch after its
//!   own), or a short linked timeout on a channel that sees no event. Its
//!   result then does not depend on whether the data was already there.
//! - Cancels target only entries that have surely started: a reader
//!   linked behind another entry is never cancelled.
//! - kqring's polling thread may start a batch after `submit` returns,
//!   so an event from outside can come before or after an entry starts:
//!   a reader's result must not depend on it (a reader ended by a cancel
//!   sees no event; a round with `cancel any all` has no event from
//!   outside; data from outside goes only into a channel known to be
//!   empty, and only a reader of a channel known to be empty goes to the
//!   pool with `IOSQE_ASYNC`).
//! - Timers are short (they fire) or long (a minute: something else ends
//!   them). A short timer never races a cancel: a round with a
//!   `cancel any all` has no short timer, and a timeout is removed or
//!   updated only while it is long.
//! - Drains go on entries outside chains only, and only in a program's
//!   last round. After drains (with chains that broke), Linux 6.18's
//!   io_uring was seen to hold back every later entry of the ring for good
//!   (`read fd=p0.b len=16 flags=link|drain`, `link-timeout ms=20`, `nop
//!   flags=link|drain`, `nop flags=hardlink`, ... then nothing more
//!   completes), to answer a later `timeout-remove` of a pending timeout
//!   with `-ENOENT`, and not to fire a later count timeout; not explained
//!   yet, so not generated (kqring's drained chains are pinned by the
//!   `drain-*link-timeout` scenarios).
//! - A round with drains has no cancels at all: a cancel queued behind a
//!   drain that waits for what the cancel would end never runs.
//! - A count timeout is submitted on its own at the start of a round and
//!   counts at most as many completions as the round surely posts (not
//!   counting timers); never in a round with a `cancel any all`, nor
//!   after a round with drains: there Linux 6.18's io_uring was seen not
//!   to fire a count timeout at all (a drained read that breaks its chain
//!   with a timeout in it, then `timeout ms=60000 count=1` and a `nop`:
//!   the timeout stays pending), which is not explained yet.
//! - A multishot poll is only armed on a channel known to be empty, and
//!   either cancelled without an event (one completion) or sees one write
//!   from outside (one completion with `F_MORE`) and is then removed in a
//!   batch of its own.
//! - No `IOSQE_CQE_SKIP_SUCCESS`: how many completions it leaves depends
//!   on the results, which the generator does not predict. No `Close` of a
//!   descriptor by the ring (kqring cancels what waits on it by design:
//!   `close-with-pending-read`), no entry on a descriptor closed from
//!   outside, no provided buffers.

use std::cell::Cell;
use std::time::Instant;

use kqring_conformance::{
    CancelTarget, Entry, FdRef, FileRef, Flags, Offset, Op, Order, PollMask, Program, ResourceKind,
    Step, Verdict, check_program,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

/// Programs run by default: about 30 s on 2 cores, in a debug build.
const DEFAULT_CASES: u32 = 150;

/// A channel: its reading end, its writing end, whether it is a socket.
const CHANNELS: [(&str, &str, bool); 4] = [
    ("p0.b", "p0.a", true),
    ("p1.b", "p1.a", true),
    ("q0.r", "q0.w", false),
    ("q1.r", "q1.w", false),
];

/// A timer that must never fire: something else ends it.
const LONG_MS: u64 = 60_000;

/// The raw choices of one unit of a round; [`Builder`] reads them into
/// entries, skipping or bending those the rules above forbid, so that
/// shrinking the choices shrinks the program.
#[derive(Debug, Clone)]
struct RawUnit {
    kind: u8,
    a: u8,
    b: u8,
    c: u8,
    d: u8,
}

#[derive(Debug, Clone)]
struct RawRound {
    /// A round with drains (and no cancel).
    drain: bool,
    /// A round ending with `cancel any all` (when not a drain round).
    cancel_any: bool,
    /// A count timeout at the start, and its count.
    count: Option<u8>,
    units: Vec<RawUnit>,
}

fn raw_unit() -> impl Strategy<Value = RawUnit> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_map(|(kind, a, b, c, d)| RawUnit { kind, a, b, c, d })
}

fn raw_round() -> impl Strategy<Value = RawRound> {
    (
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.2, any::<u8>()),
        prop::collection::vec(raw_unit(), 1..9),
    )
        .prop_map(|(drain, cancel_any, count, units)| RawRound {
            drain,
            cancel_any: cancel_any && !drain,
            count,
            units,
        })
}

fn raw_program() -> impl Strategy<Value = Vec<RawRound>> {
    prop::collection::vec(raw_round(), 1..5)
}

/// What a channel sees in the current round.
///
/// Events from outside come after the round's batches are submitted; the
/// polling-thread ring may not have started those entries yet, which
/// changes nothing as long as each reader has one way to end. A round
/// with a `cancel any all` has no event from outside: a reader that
/// finds the data first would not be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    None,
    /// Data, written by the ring (unconditionally) or from outside.
    Data,
    /// The writer is closed from outside.
    Close,
    /// Nothing may happen: a reader waits for a timer or a cancel, or a
    /// write in a chain may or may not run (`data`: it may leave data).
    Quiet {
        data: bool,
    },
}

/// How a reader that may wait is ended.
enum End {
    /// The channel's event (already chosen, or chosen now).
    Event,
    /// A cancel of it, in the round's second batch.
    Cancel,
    /// A linked timeout that fires.
    ShortLink,
    /// A long linked timeout, and the event or cancel.
    LongLink(Box<End>),
}

struct Builder {
    ud: u64,
    closed: [bool; 4],
    /// Known to hold no data.
    empty: [bool; 4],
    /// A round with drains has been built: no count timeout from then on.
    drained: bool,
    steps: Vec<Step>,
}

/// What one round collects as it is built.
struct Round {
    drain: bool,
    cancel_any: bool,
    /// No timer that fires (a `cancel any all` would race it).
    no_short: bool,
    reader: [bool; 4],
    event: [Event; 4],
    /// An entry works on the writing end: it is not closed this round (the
    /// ring may not have run the entry yet when the outside closes it).
    writer_used: [bool; 4],
    first: Vec<Entry>,
    second: Vec<Entry>,
    outside: Vec<Step>,
    /// Multishot polls that saw their event, removed after the wait.
    multishot: Vec<u64>,
    /// Entries that surely post a completion that a count timeout counts.
    counted: usize,
}

impl Builder {
    fn next_ud(&mut self) -> u64 {
        self.ud += 1;
        self.ud
    }

    fn round(&mut self, raw: &RawRound) {
        let mut r = Round {
            drain: raw.drain,
            cancel_any: raw.cancel_any,
            no_short: raw.cancel_any,
            reader: [false; 4],
            event: [Event::None; 4],
            writer_used: [false; 4],
            first: Vec::new(),
            second: Vec::new(),
            outside: Vec::new(),
            multishot: Vec::new(),
            counted: 0,
        };
        for u in &raw.units {
            self.unit(&mut r, u);
        }
        let mut third = Vec::new();
        if r.cancel_any {
            // In a batch of its own: io_uring counts again what a cancel of
            // the same batch has cancelled (the documented difference
            // `cancel-any-counts-a-cancelled-entry`).
            let ud = self.next_ud();
            third.push(
                Entry::new(Op::AsyncCancel {
                    target: CancelTarget::Any,
                    all: true,
                })
                .ud(ud),
            );
        }
        // Of the second batch, the cancels are counted (not the timeout
        // removals and updates).
        r.counted += r
            .second
            .iter()
            .filter(|e| matches!(e.op, Op::AsyncCancel { .. } | Op::PollRemove { .. }))
            .count();
        let count_ud = match raw.count {
            // Not in a drain round: a drained entry would wait for the
            // count timeout, which counts completions held behind it in
            // kqring (io_uring's drain counts completions, not entries).
            Some(c) if !r.drain && !self.drained && !r.cancel_any && r.counted > 0 => {
                let ud = self.next_ud();
                let count = 1 + u32::from(c) % r.counted.min(3) as u32;
                self.steps.push(Step::Submit(vec![
                    Entry::new(Op::Timeout {
                        ms: LONG_MS,
                        count,
                        abs: false,
                    })
                    .ud(ud),
                ]));
                Some(ud)
            }
            _ => None,
        };
        self.drained |= r.drain;
        let n = r.first.len() + r.second.len() + third.len() + usize::from(count_ud.is_some());
        if n == 0 {
            return;
        }
        if !r.first.is_empty() {
            self.steps.push(Step::Submit(r.first));
        }
        if !r.second.is_empty() {
            self.steps.push(Step::Submit(r.second));
        }
        if !third.is_empty() {
            self.steps.push(Step::Submit(third));
        }
        self.steps.extend(r.outside);
        self.steps.push(Step::Wait(n));
        if !r.multishot.is_empty() {
            let mut removes = Vec::new();
            for target in &r.multishot {
                let ud = self.next_ud();
                removes.push(Entry::new(Op::PollRemove { target: *target }).ud(ud));
            }
            let n = removes.len() * 2;
            self.steps.push(Step::Submit(removes));
            self.steps.push(Step::Wait(n));
        }
        for ch in 0..4 {
            match r.event[ch] {
                Event::None | Event::Quiet { data: false } => {}
                Event::Data | Event::Quiet { data: true } => self.empty[ch] = false,
                Event::Close => {
                    self.closed[ch] = true;
                    self.empty[ch] = false;
                }
            }
        }
    }

    /// The round's event on `ch`, if it can still have one: data from
    /// outside.
    fn data_event(&self, r: &mut Round, ch: usize, len: u8) -> bool {
        // Only into an empty channel: a reader started before the write
        // gets the data there, one started after it more (and the
        // polling-thread ring, or the pool, may start it either way).
        if self.closed[ch] || r.event[ch] != Event::None || r.cancel_any || !self.empty[ch] {
            return false;
        }
        r.event[ch] = Event::Data;
        r.outside.push(Step::WritePeer {
            fd: FdRef::new(CHANNELS[ch].1),
            data: payload(len),
        });
        true
    }

    /// Chooses how a reader of `ch` ends (`cancellable`: it has surely
    /// started by the second batch); `None` when it cannot be ended.
    fn end(&self, r: &mut Round, ch: usize, pick: u8, len: u8, cancellable: bool) -> Option<End> {
        if self.closed[ch] || matches!(r.event[ch], Event::Data | Event::Close) {
            // It ends as soon as it runs: end of stream, or the data.
            return Some(if pick.is_multiple_of(3) && !r.no_short {
                End::LongLink(Box::new(End::Event))
            } else {
                End::Event
            });
        }
        if r.event[ch] != Event::None {
            return None;
        }
        let can_cancel = cancellable && !r.drain;
        let order: [u8; 5] = match pick % 5 {
            0 => [0, 1, 2, 3, 4],
            1 => [1, 0, 2, 3, 4],
            2 => [2, 3, 0, 1, 4],
            3 => [3, 2, 0, 1, 4],
            _ => [4, 0, 2, 3, 1],
        };
        for o in order {
            match o {
                0 if self.data_event(r, ch, len) => return Some(End::Event),
                1
                    // Into an empty channel too: a poll started before
                    // the close sees the data, one started after it the
                    // hang-up as well.
                    if r.event[ch] == Event::None
                        && !r.writer_used[ch]
                        && !r.cancel_any
                        && self.empty[ch]
                    => {
                        r.event[ch] = Event::Close;
                        r.outside.push(Step::ClosePeer {
                            fd: FdRef::new(CHANNELS[ch].1),
                        });
                        return Some(End::Event);
                    }
                2 if can_cancel => {
                    r.event[ch] = Event::Quiet { data: false };
                    return Some(End::Cancel);
                }
                3 if !r.no_short => {
                    r.event[ch] = Event::Quiet { data: false };
                    return Some(End::ShortLink);
                }
                4 => {
                    if can_cancel && pick & 0x80 != 0 {
                        r.event[ch] = Event::Quiet { data: false };
                        return Some(End::LongLink(Box::new(End::Cancel)));
                    }
                    if self.data_event(r, ch, len) {
                        return Some(End::LongLink(Box::new(End::Event)));
                    }
                }
                _ => {}
            }
        }
        if r.cancel_any {
            // The round's `cancel any all` ends it (a linked member too:
            // it has started, or goes with its chain).
            r.event[ch] = Event::Quiet { data: false };
            return Some(End::Event);
        }
        None
    }

    /// Pushes `entry` (ending as `end` says) to `out`; `link`: it is linked
    /// to what follows (with `hardlink` if the flag says so).
    fn push_reader(
        &mut self,
        r: &mut Round,
        out: &mut Vec<Entry>,
        mut entry: Entry,
        end: End,
        link_flags: Flags,
        d: u8,
    ) {
        let link_ms = |d: u8| 20 + u64::from(d % 40);
        match end {
            End::Event => {
                entry.flags = entry.flags | link_flags;
                out.push(entry);
            }
            End::Cancel => {
                let target = entry.user_data;
                let fd = match &entry.op {
                    Op::Read { fd, .. }
                    | Op::Readv { fd, .. }
                    | Op::Recv { fd, .. }
                    | Op::PollAdd { fd, .. } => fd.clone(),
                    _ => unreachable!("only readers wait"),
                };
                let is_poll = matches!(entry.op, Op::PollAdd { .. });
                entry.flags = entry.flags | link_flags;
                out.push(entry);
                let ud = self.next_ud();
                let op = match d % 3 {
                    0 if is_poll => Op::PollRemove { target },
                    1 => Op::AsyncCancel {
                        target: CancelTarget::Fd(match fd {
                            FileRef::Fd(f) => f,
                            FileRef::Fixed(_) => unreachable!("no file table"),
                        }),
                        all: d & 0x10 != 0,
                    },
                    _ => Op::AsyncCancel {
                        target: CancelTarget::UserData(target),
                        all: d & 0x10 != 0,
                    },
                };
                r.second.push(Entry::new(op).ud(ud));
            }
            End::ShortLink | End::LongLink(_) => {
                let ms = match end {
                    End::ShortLink => link_ms(d),
                    _ => LONG_MS,
                };
                if let End::LongLink(inner) = end
                    && let End::Cancel = *inner
                {
                    // The cancel of the bounded entry.
                    self.push_reader(r, out, entry, End::Cancel, Flags::LINK, d);
                } else {
                    entry.flags = entry.flags | Flags::LINK;
                    out.push(entry);
                }
                let ud = self.next_ud();
                out.push(
                    Entry::new(Op::LinkTimeout {
                        ms,
                        abs: d & 0x20 != 0,
                    })
                    .ud(ud)
                    .flags(link_flags),
                );
            }
        }
    }

    /// A reader of `ch` (read, readv, receive or poll for input).
    fn reader_op(ch: usize, u: &RawUnit) -> Op {
        let fd = FileRef::fd(CHANNELS[ch].0);
        let len = 1 + u32::from(u.c % 16);
        match u.b % 5 {
            0 | 1 => Op::Read {
                fd,
                len,
                off: Offset::At(0),
            },
            2 => Op::Readv {
                fd,
                lens: vec![1 + len / 2, 1 + u32::from(u.d % 4)],
                off: Offset::At(0),
            },
            3 => Op::Recv {
                fd,
                len,
                waitall: false,
                peek: false,
            },
            _ => Op::PollAdd {
                fd,
                events: PollMask(libc::POLLIN as u32),
                multi: false,
            },
        }
    }

    /// A writer of `ch`: a send only on a socket (on a pipe it fails
    /// `-ENOTSOCK`, and the channel's reader would see no event).
    fn writer_op(ch: usize, u: &RawUnit) -> Op {
        let fd = FileRef::fd(CHANNELS[ch].1);
        if u.b & 1 == 0 || !CHANNELS[ch].2 {
            Op::Write {
                fd,
                data: payload(u.c),
                off: Offset::At(0),
            }
        } else {
            Op::Send {
                fd,
                data: payload(u.c),
            }
        }
    }

    fn drain_flag(r: &Round, d: u8) -> Flags {
        if r.drain && d.is_multiple_of(3) {
            Flags::DRAIN
        } else {
            Flags::NONE
        }
    }

    fn unit(&mut self, r: &mut Round, u: &RawUnit) {
        let ch = usize::from(u.a % 4);
        // An entry on the pool may still be queued when a `cancel any
        // all` comes (io_uring cancels it or not, by timing).
        let async_flag = if u.d & 0x40 != 0 && !r.cancel_any {
            Flags::ASYNC
        } else {
            Flags::NONE
        };
        match u.kind % 11 {
            0 => {
                let ud = self.next_ud();
                let flags = Self::drain_flag(r, u.d) | async_flag;
                r.first.push(Entry::new(Op::Nop {}).ud(ud).flags(flags));
                r.counted += 1;
            }
            1 | 2 => {
                // A reader on its own.
                if r.reader[ch] {
                    return;
                }
                let Some(end) = self.end(r, ch, u.kind / 11, u.c, true) else {
                    return;
                };
                r.reader[ch] = true;
                let ud = self.next_ud();
                // An entry on the pool may still be on its way there when
                // a cancel comes: -EALREADY or 0 by timing. No ASYNC for
                // what is cancelled.
                let cancelled = r.cancel_any
                    || matches!(&end, End::Cancel)
                    || matches!(&end, End::LongLink(e) if matches!(**e, End::Cancel));
                // On the pool, a read of a channel that may hold data can
                // run before or after the round's write.
                let async_flag = if cancelled || !self.empty[ch] {
                    Flags::NONE
                } else {
                    async_flag
                };
                // No drain on a link head (see the module's comment).
                let drain = match end {
                    End::Event | End::Cancel => Self::drain_flag(r, u.d),
                    End::ShortLink | End::LongLink(_) => Flags::NONE,
                };
                let entry = Entry::new(Self::reader_op(ch, u))
                    .ud(ud)
                    .flags(drain | async_flag);
                let mut out = std::mem::take(&mut r.first);
                self.push_reader(r, &mut out, entry, end, Flags::NONE, u.d);
                r.first = out;
                r.counted += 1;
            }
            3 => {
                // A write by the ring: the channel's event.
                if self.closed[ch] || r.event[ch] != Event::None {
                    return;
                }
                r.event[ch] = Event::Data;
                let ud = self.next_ud();
                // On the pool, a write into a channel that may hold data
                // can come before or after a read of it.
                let async_flag = if self.empty[ch] {
                    async_flag
                } else {
                    Flags::NONE
                };
                let flags = Self::drain_flag(r, u.d) | async_flag;
                r.first
                    .push(Entry::new(Self::writer_op(ch, u)).ud(ud).flags(flags));
                r.counted += 1;
            }
            4 | 5 => self.chain(r, u),
            6 => {
                // A timer that fires.
                if r.no_short {
                    return self.long_timeout(r, u);
                }
                let ud = self.next_ud();
                r.first.push(
                    Entry::new(Op::Timeout {
                        ms: 1 + u64::from(u.c % 30),
                        count: 0,
                        abs: u.b & 1 != 0,
                    })
                    .ud(ud)
                    .flags(Self::drain_flag(r, u.d)),
                );
            }
            7 => self.long_timeout(r, u),
            8 => {
                // A multishot poll on an empty channel (never before a
                // drain: it ends only after the round's wait).
                if r.drain
                    || r.reader[ch]
                    || !self.empty[ch]
                    || self.closed[ch]
                    || r.event[ch] != Event::None
                {
                    return;
                }
                r.reader[ch] = true;
                let ud = self.next_ud();
                let poll = Entry::new(Op::PollAdd {
                    fd: FileRef::fd(CHANNELS[ch].0),
                    events: PollMask(libc::POLLIN as u32),
                    multi: true,
                })
                .ud(ud);
                // A `cancel any all` would end it before its event.
                if u.b & 1 == 0 && !r.cancel_any && self.data_event(r, ch, u.c) {
                    r.first.push(poll);
                    r.multishot.push(ud);
                } else {
                    r.event[ch] = Event::Quiet { data: false };
                    let mut out = std::mem::take(&mut r.first);
                    if r.cancel_any {
                        out.push(poll);
                    } else {
                        self.push_reader(r, &mut out, poll, End::Cancel, Flags::NONE, u.d);
                    }
                    r.first = out;
                }
            }
            9 => {
                // A cancel that finds nothing: an unknown user_data, or an
                // entry that has completed.
                if r.drain {
                    return;
                }
                let done =
                    |e: &&Entry| matches!(e.op, Op::Nop {}) && !e.flags.contains(Flags::ASYNC);
                let target = match r.first.iter().find(done) {
                    Some(nop) if u.b & 1 == 0 => nop.user_data,
                    _ => 1_000_000 + u64::from(u.c),
                };
                let ud = self.next_ud();
                r.second.push(
                    Entry::new(Op::AsyncCancel {
                        target: CancelTarget::UserData(target),
                        all: u.d & 1 != 0,
                    })
                    .ud(ud),
                );
            }
            _ => {
                // A poll that is ready: output on a writer, or a bad
                // descriptor read or write.
                let ud = self.next_ud();
                let op = if u.b.is_multiple_of(3) {
                    if u.b & 4 == 0 {
                        Op::Read {
                            fd: FileRef::fd("x"),
                            len: 4,
                            off: Offset::At(0),
                        }
                    } else {
                        Op::Write {
                            fd: FileRef::fd("x"),
                            data: payload(u.c),
                            off: Offset::At(0),
                        }
                    }
                } else if !self.closed[ch] && r.event[ch] != Event::Close {
                    r.writer_used[ch] = true;
                    Op::PollAdd {
                        fd: FileRef::fd(CHANNELS[ch].1),
                        events: PollMask(libc::POLLOUT as u32),
                        multi: false,
                    }
                } else {
                    Op::Nop {}
                };
                r.first
                    .push(Entry::new(op).ud(ud).flags(Self::drain_flag(r, u.d)));
                r.counted += 1;
            }
        }
    }

    /// A timeout that must not fire, ended in the second batch (removed,
    /// cancelled, or updated to a short time), or by the round's `cancel
    /// any all`.
    fn long_timeout(&mut self, r: &mut Round, u: &RawUnit) {
        if r.drain {
            return;
        }
        let ud = self.next_ud();
        r.first.push(
            Entry::new(Op::Timeout {
                ms: LONG_MS,
                count: 0,
                abs: u.b & 1 != 0,
            })
            .ud(ud),
        );
        if r.cancel_any && u.c.is_multiple_of(2) {
            return;
        }
        let op = match u.c % 3 {
            0 if !r.no_short => Op::TimeoutUpdate {
                target: ud,
                ms: 1 + u64::from(u.d % 20),
                abs: u.d & 1 != 0,
            },
            1 => Op::AsyncCancel {
                target: CancelTarget::UserData(ud),
                all: false,
            },
            _ => Op::TimeoutRemove { target: ud },
        };
        let ud = self.next_ud();
        r.second.push(Entry::new(op).ud(ud));
    }

    /// A chain of two to four entries, linked or hard-linked.
    fn chain(&mut self, r: &mut Round, u: &RawUnit) {
        let len = 2 + usize::from(u.b % 3);
        let mut out = Vec::new();
        let mut seed = u32::from(u.c) << 8 | u32::from(u.d);
        for i in 0..len {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let pick = (seed >> 16) as u8;
            let last = i + 1 == len;
            let link = if last {
                Flags::NONE
            } else if pick & 0x80 != 0 {
                Flags::HARDLINK
            } else {
                Flags::LINK
            };
            let head = i == 0;
            let ch = usize::from((pick >> 2) % 4);
            // No drain on a link head (see the module's comment).
            let first_flags = Flags::NONE;
            let ud = self.next_ud();
            match pick % 6 {
                0 => out.push(Entry::new(Op::Nop {}).ud(ud).flags(link | first_flags)),
                1 => {
                    // A write: the channel's event if it surely runs, else
                    // the channel stays quiet.
                    if self.closed[ch] || r.event[ch] != Event::None || (!head && r.reader[ch]) {
                        out.push(Entry::new(Op::Nop {}).ud(ud).flags(link | first_flags));
                        continue;
                    }
                    if head {
                        r.event[ch] = Event::Data;
                    } else {
                        r.event[ch] = Event::Quiet { data: true };
                        r.reader[ch] = true;
                    }
                    let raw = RawUnit {
                        kind: 0,
                        a: 0,
                        b: pick >> 3,
                        c: pick,
                        d: 0,
                    };
                    out.push(
                        Entry::new(Self::writer_op(ch, &raw))
                            .ud(ud)
                            .flags(link | first_flags),
                    );
                }
                2 | 3 => {
                    // A reader: only the head can be cancelled.
                    let end = if r.reader[ch] {
                        None
                    } else {
                        self.end(r, ch, pick, pick >> 1, head)
                    };
                    let Some(end) = end else {
                        out.push(Entry::new(Op::Nop {}).ud(ud).flags(link | first_flags));
                        continue;
                    };
                    r.reader[ch] = true;
                    let raw = RawUnit {
                        kind: 0,
                        a: 0,
                        b: pick >> 1,
                        c: pick >> 2,
                        d: pick,
                    };
                    let entry = Entry::new(Self::reader_op(ch, &raw))
                        .ud(ud)
                        .flags(first_flags);
                    self.push_reader(r, &mut out, entry, end, link, pick);
                }
                4 if !r.no_short => out.push(
                    Entry::new(Op::Timeout {
                        ms: 1 + u64::from(pick % 10),
                        count: 0,
                        abs: false,
                    })
                    .ud(ud)
                    .flags(link | first_flags),
                ),
                _ => out.push(
                    Entry::new(Op::Read {
                        fd: FileRef::fd("x"),
                        len: 2,
                        off: Offset::At(0),
                    })
                    .ud(ud)
                    .flags(link | first_flags),
                ),
            }
        }
        r.first.extend(out);
    }
}

/// `len % 8 + 1` bytes, different for each length.
fn payload(len: u8) -> Vec<u8> {
    let n = usize::from(len % 8) + 1;
    (0..n)
        .map(|i| b'a' + ((usize::from(len) + i) % 26) as u8)
        .collect()
}

/// The program the raw choices describe.
fn program(name: &str, raw: &[RawRound]) -> Program {
    let mut p = Program::new(name)
        .order(Order::ByUserData)
        .resource("p0", ResourceKind::SocketPair { blocking: false })
        .resource("p1", ResourceKind::SocketPair { blocking: false })
        .resource("q0", ResourceKind::Pipe { blocking: false })
        .resource("q1", ResourceKind::Pipe { blocking: false })
        .resource("x", ResourceKind::BadFd);
    let mut b = Builder {
        ud: 0,
        closed: [false; 4],
        empty: [true; 4],
        drained: false,
        steps: Vec::new(),
    };
    for (i, round) in raw.iter().enumerate() {
        // Drains only in the last round (see the module's comment).
        let mut round = round.clone();
        round.drain &= i + 1 == raw.len();
        round.cancel_any &= !round.drain;
        b.round(&round);
    }
    p.steps = b.steps;
    p
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

#[test]
fn kqring_answers_random_programs_as_io_uring_does() {
    let cases = cases();
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        // A failing program is shrunk for at most two minutes.
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let ran = Cell::new(0usize);
    let entries = Cell::new(0usize);
    let io_uring_skipped = Cell::new(0usize);
    let result = runner.run(&raw_program(), |raw| {
        ran.set(ran.get() + 1);
        let p = program(&format!("fuzz-{}", ran.get()), &raw);
        entries.set(entries.get() + p.entries().count());
        let outcome = check_program(&p, false);
        match outcome.verdict {
            Verdict::Identical => Ok(()),
            Verdict::Unchecked => {
                io_uring_skipped.set(io_uring_skipped.get() + 1);
                Ok(())
            }
            ref v => {
                // Run once more: a program whose answer changes from run
                // to run is the generator's fault, said as such.
                let again = check_program(&p, false).verdict;
                let flaky = if again == *v {
                    String::new()
                } else {
                    format!(
                        "\n(a second run gave: {}: the outcome depends on timing)",
                        again.label()
                    )
                };
                Err(TestCaseError::fail(format!(
                    "{}{flaky}\n{}\nthe program, as a scenario:\n{p}",
                    v.label(),
                    outcome.report(true)
                )))
            }
        }
    });
    kqring_test_support::report(&format!(
        "differential: {} programs ({} entries) run on kqring (both modes) and io_uring in \
         {:.1} s, io_uring skipped on {}",
        ran.get(),
        entries.get(),
        started.elapsed().as_secs_f64(),
        io_uring_skipped.get()
    ));
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The generator keeps to its rules: every program is valid, waits for
/// what its rounds post, and names no descriptor it has closed.
#[test]
fn generated_programs_are_valid() {
    let mut runner = TestRunner::new(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&raw_program(), |raw| {
            let p = program("t", &raw);
            p.validate().map_err(TestCaseError::fail)?;
            let text = p.to_string();
            let again =
                Program::parse("t", &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&again, &p);
            let mut closed: Vec<&str> = Vec::new();
            for step in &p.steps {
                match step {
                    Step::ClosePeer { fd } => closed.push(&fd.0),
                    Step::Submit(entries) => {
                        for e in entries {
                            for fd in e.op.fd_refs() {
                                prop_assert!(!closed.contains(&fd.0.as_str()), "{text}");
                            }
                            prop_assert!(!e.flags.contains(Flags::SKIP_SUCCESS));
                        }
                    }
                    _ => {}
                }
            }
            Ok(())
        })
        .unwrap();
}
