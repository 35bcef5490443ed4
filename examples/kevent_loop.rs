//! A kevent loop on kqring's kevent layer: a periodic timer, a pipe, and a
//! user event triggered from another thread. Prints every event it sees and
//! stops after the timer's fifth expiration.
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

fn main() -> std::io::Result<()> {
    let kq = Arc::new(Kqueue::new()?);
    let (reader, mut writer) = std::io::pipe()?;
    println!("kevent backend: {}", sys::BACKEND);

    let changes = [
        Change::timer(TIMER, Flags::ADD, Duration::from_millis(50)).token(10),
        Change::read(reader.as_raw_fd(), Flags::ADD | Flags::CLEAR).token(20),
        Change::user(WAKE, Flags::ADD | Flags::CLEAR, note::FFNOP).token(30),
    ];
    let mut events: Vec<Event> = Vec::with_capacity(16);
    kq.kevent(&changes, &mut events, Some(Duration::ZERO))?;
    for e in events.drain(..) {
        println!("change error: {e:?}");
    }

    // Another thread writes to the pipe, then wakes the loop through the
    // user event, as a submitter wakes kqring's polling thread.
    let waker = Arc::clone(&kq);
    let helper = thread::spawn(move || -> std::io::Result<()> {
        writer.write_all(b"hello from the other thread")?;
        // NOTE_TRIGGER along with the flags to OR in (fflags replaces all
        // of them); EV_RECEIPT so that this call returns the change's
        // receipt alone rather than collect the event it triggers.
        let trigger = Change::trigger(WAKE)
            .with_flags(Flags::RECEIPT)
            .fflags(note::TRIGGER | note::FFOR | 0x5)
            .token(30);
        let mut receipt = Vec::with_capacity(1);
        waker.kevent(&[trigger], &mut receipt, Some(Duration::ZERO))?;
        if let Some(err) = receipt.iter().find_map(Event::error) {
            return Err(err);
        }
        Ok(())
    });

    let start = Instant::now();
    let mut ticks = 0;
    while ticks < 5 {
        kq.kevent(&[], &mut events, Some(Duration::from_secs(5)))?;
        for e in events.drain(..) {
            let at = start.elapsed().as_secs_f64() * 1e3;
            match e.filter() {
                Filter::TIMER => ticks += e.data(),
                Filter::USER => println!("{at:8.2} ms  woken, fflags {:#x}", e.fflags()),
                Filter::READ => {
                    let mut buf = vec![0; e.data() as usize];
                    let n = std::io::Read::read(&mut &reader, &mut buf)?;
                    println!(
                        "{at:8.2} ms  read {n} bytes: {:?}",
                        String::from_utf8_lossy(&buf[..n])
                    );
                }
                _ => {}
            }
            println!("{at:8.2} ms  {e:?}");
        }
    }
    helper.join().expect("helper thread panicked")?;
    Ok(())
}
