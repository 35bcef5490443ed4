//! The two ways of driving a ring: a turn on the caller's thread, and
//! the polling thread's loop.

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{self, Ordering};
use std::time::{Duration, Instant};

use crate::driver::Driver;
use crate::ring::Shared;

/// One turn that may block: announces the park first so that producers
/// and workers know to wake the driver, then re-checks for work that
/// raced with the announcement (a Dekker-style handshake with `wake`).
pub(super) fn drive_once(
    shared: &Shared,
    driver: &mut Driver,
    timeout: Option<Duration>,
    ready: &dyn Fn() -> bool,
) -> io::Result<bool> {
    if driver.turn(Some(Duration::ZERO))? || ready() {
        return Ok(true);
    }
    shared.parked.store(true, Ordering::SeqCst);
    atomic::fence(Ordering::SeqCst);
    if ready() || driver.has_ready_work() || shared.shutdown.load(Ordering::SeqCst) {
        shared.parked.store(false, Ordering::SeqCst);
        return Ok(false);
    }
    shared.stats.parks.fetch_add(1, Ordering::Relaxed);
    let work = driver.turn(timeout);
    shared.parked.store(false, Ordering::SeqCst);
    work
}

/// One turn of an inline ring for a caller waiting for `want` completions:
/// announces the park, as `drive_once` does, then turns once, waiting in
/// its `kevent` call unless the completions are there or work is ready —
/// one call per wait, where a zero-timeout turn before the blocking one
/// would make two.
pub(super) fn drive_inline(
    shared: &Shared,
    driver: &mut Driver,
    timeout: Option<Duration>,
    want: usize,
) -> io::Result<bool> {
    shared.parked.store(true, Ordering::SeqCst);
    atomic::fence(Ordering::SeqCst);
    if shared.shutdown.load(Ordering::SeqCst) {
        shared.parked.store(false, Ordering::SeqCst);
        return Ok(false);
    }
    // The turn counts the park when it waits.
    let work = driver.wait_turn(timeout, want);
    shared.parked.store(false, Ordering::SeqCst);
    work
}

/// The polling thread: serves until the ring closes, `kevent` fails or
/// the driver panics (a bug), then ends everything in flight
/// `-ECANCELED` and closes the queues, so that no caller waits for a
/// thread that is gone.
pub(super) fn poll_loop(shared: Arc<Shared>, mut driver: Driver, idle: Duration) {
    let served = panic::catch_unwind(AssertUnwindSafe(|| serve(&shared, &mut driver, idle)));
    if served.is_err() {
        tracing::error!("kqring driver: the polling thread panicked; what was in flight ends");
    }
    close_sq(&shared);
    if panic::catch_unwind(AssertUnwindSafe(|| driver.shutdown())).is_err() {
        tracing::error!("kqring driver: its shutdown panicked; the queues close");
        shared.cq.close();
    }
}

/// Turns while there is work, spins for `idle` after the last of it, then
/// parks in `kevent` until woken. Each turn reads the clock, whether it
/// did work or not: that spaces the turns, so that a producer's burst is
/// taken in fewer, fuller turns (without the reads of a busy turn,
/// batched NOPs fell by a third).
fn serve(shared: &Shared, driver: &mut Driver, idle: Duration) {
    let mut last_work = Instant::now();
    let mut spinning = true;
    while !shared.shutdown.load(Ordering::Acquire) {
        let result = if spinning {
            match driver.turn(Some(Duration::ZERO)) {
                Ok(true) => {
                    last_work = Instant::now();
                    continue;
                }
                Ok(false) => {
                    spinning = last_work.elapsed() < idle;
                    if driver.has_pool_jobs() {
                        // What comes next is a worker's: its CPU, where
                        // threads outnumber CPUs, rather than a spin.
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                    continue;
                }
                Err(e) => Err(e),
            }
        } else {
            drive_once(shared, driver, None, &|| false)
        };
        match result {
            Ok(true) => {
                last_work = Instant::now();
                spinning = true;
            }
            Ok(false) => {}
            Err(e) => {
                // kevent itself failed (not one operation): nothing the
                // driver can serve any more. Report and stop; the drop
                // path still cancels everything.
                tracing::error!(error = %e, "kqring driver: kevent failed");
                break;
            }
        }
    }
}

/// Refuses submissions from now on.
pub(super) fn close_sq(shared: &Shared) {
    *shared.sq_open.write().unwrap_or_else(|e| e.into_inner()) = false;
}
