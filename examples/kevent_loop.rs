//! A kevent loop on kqring's kevent layer: a periodic timer, a pipe, and a
//! user event triggered from another thread. Prints every event it sees and
//! stops once the timer has expired five times and the other thread's
//! bytes and wake-up have come (or after 100 expirations, should they not).
//!
//! Run with `cargo run --release --example kevent_loop`.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kqring::sys::{self, Change, Event, Filter, Flags, Kqueue, note};

const TIMER: usize = 1;
const WAKE: usize = 2;
const WAKE_TOKEN: u64 = 30;

/// What the other thread writes to the pipe.
pub const MESSAGE: &[u8] = b"hello from the other thread";

/// The value the other thread ORs into the user event's fflags.
pub const WAKE_VALUE: u32 = 0x5;

/// What the loop saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// The bytes read from the pipe.
    pub read: Vec<u8>,
    /// The timer's expirations.
    pub ticks: i64,
    /// The user event's fflags (the value it was triggered with), once
    /// per time it was seen.
    pub user: Vec<u32>,
}

/// Runs the loop until the timer has expired five times and the other
/// thread's bytes and wake-up have come (at most 100 expirations), printing
/// each event on `out`.
pub fn run(out: &mut impl Write) -> std::io::Result<Seen> {
    let kq = Arc::new(Kqueue::new()?);
    let (reader, mut writer) = std::io::pipe()?;
    writeln!(out, "kevent backend: {}", sys::BACKEND)?;

    let changes = [
        Change::timer(TIMER, Flags::ADD, Duration::from_millis(50)).token(10),
        Change::read(reader.as_raw_fd(), Flags::ADD | Flags::CLEAR).token(20),
        Change::user(WAKE, Flags::ADD | Flags::CLEAR, note::FFNOP).token(WAKE_TOKEN),
    ];
    let mut events: Vec<Event> = Vec::with_capacity(16);
    kq.kevent(&changes, &mut events, Some(Duration::ZERO))?;
    for e in events.drain(..) {
        writeln!(out, "change error: {e:?}")?;
    }

    // Another thread writes to the pipe, then wakes the loop through the
    // user event, as a submitter wakes kqring's polling thread. The
    // trigger keeps NOTE_TRIGGER beside the value it ORs in, and the token
    // (a change replaces it), and asks for a receipt: a call that returns
    // receipts returns nothing else, so the event stays queued for the
    // loop rather than coming back to this call.
    let waker = Arc::clone(&kq);
    let helper = thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(MESSAGE)?;
        let trigger = Change::user(
            WAKE,
            Flags::RECEIPT,
            note::TRIGGER | note::FFOR | WAKE_VALUE,
        )
        .token(WAKE_TOKEN);
        let mut receipt = Vec::with_capacity(1);
        waker.kevent(&[trigger], &mut receipt, Some(Duration::ZERO))?;
        match receipt.first() {
            Some(r) if r.data() != 0 => Err(std::io::Error::from_raw_os_error(r.data() as i32)),
            _ => Ok(()),
        }
    });

    let start = Instant::now();
    let mut seen = Seen::default();
    while seen.ticks < 100
        && (seen.ticks < 5 || seen.user.is_empty() || seen.read.len() < MESSAGE.len())
    {
        kq.kevent(&[], &mut events, Some(Duration::from_secs(5)))?;
        for e in events.drain(..) {
            let at = start.elapsed().as_secs_f64() * 1e3;
            match e.filter() {
                Filter::TIMER => seen.ticks += e.data(),
                Filter::READ => {
                    let mut buf = vec![0; e.data() as usize];
                    let n = std::io::Read::read(&mut &reader, &mut buf)?;
                    writeln!(
                        out,
                        "{at:8.2} ms  read {n} bytes: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    )?;
                    seen.read.extend_from_slice(&buf[..n]);
                }
                Filter::USER => {
                    writeln!(out, "{at:8.2} ms  woken by the other thread")?;
                    seen.user.push(e.fflags() & note::FFLAGSMASK);
                }
                _ => {}
            }
            writeln!(out, "{at:8.2} ms  {e:?}")?;
        }
    }
    helper
        .join()
        .map_err(|_| std::io::Error::other("the other thread panicked"))??;
    Ok(seen)
}

fn main() -> std::io::Result<()> {
    run(&mut std::io::stdout().lock()).map(drop)
}
