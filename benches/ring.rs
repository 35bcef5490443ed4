//! The ring itself, beside Linux's io_uring in the same run: NOP round
//! trip, NOP throughput in batches of 64, and a pipe ping-pong with a
//! partner thread. Prints kqring/io_uring ratios at the end.
//!
//! `cargo bench --bench ring`

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::Criterion;
use kqring::ops::{Nop, Read, Write};
use kqring::{Mode, Ring};
use kqring_test_support::PipePartner;

const BATCH: u64 = 64;

/// ns per operation, by (workload, system), from the last measurement.
static RESULTS: Mutex<BTreeMap<(&'static str, &'static str), f64>> = Mutex::new(BTreeMap::new());

fn record(workload: &'static str, system: &'static str, ops: u64, elapsed: Duration) -> Duration {
    let ns = elapsed.as_nanos() as f64 / ops.max(1) as f64;
    RESULTS.lock().unwrap().insert((workload, system), ns);
    elapsed
}

fn kqring_rings() -> [(&'static str, Ring); 2] {
    [
        (
            "kqring-poller",
            Ring::builder()
                .sq_idle(Duration::from_secs(3600))
                .build()
                .unwrap(),
        ),
        (
            "kqring-inline",
            Ring::builder().mode(Mode::Inline).build().unwrap(),
        ),
    ]
}

fn nop_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop_round_trip");
    for (name, ring) in kqring_rings() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for i in 0..iters {
                    ring.submission()
                        .push(Nop::new().build().user_data(i))
                        .unwrap();
                    ring.submit_and_wait(1).unwrap();
                    ring.completion().pop().unwrap();
                }
                record("nop_round_trip", name, iters, start.elapsed())
            })
        });
    }
    #[cfg(target_os = "linux")]
    g.bench_function("io_uring", |b| {
        let mut ring = io_uring::IoUring::new(256).unwrap();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let e = io_uring::opcode::Nop::new().build().user_data(i);
                // SAFETY: a NOP references no memory.
                unsafe { ring.submission().push(&e).unwrap() };
                ring.submit_and_wait(1).unwrap();
                ring.completion().next().unwrap();
            }
            record("nop_round_trip", "io_uring", iters, start.elapsed())
        })
    });
    g.finish();
}

/// `iters` batches of `BATCH` NOPs, each submitted and reaped at once.
fn nop_batches(ring: &Ring, workload: &'static str, name: &'static str, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..BATCH {
            ring.submission()
                .push(Nop::new().build().user_data(i))
                .unwrap();
        }
        ring.submit_and_wait(BATCH as usize).unwrap();
        assert_eq!(ring.completion().drain().count() as u64, BATCH);
    }
    record(workload, name, iters * BATCH, start.elapsed())
}

fn nop_batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop_batched_64");
    for (name, ring) in kqring_rings() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| nop_batches(&ring, "nop_batched_64", name, iters))
        });
    }
    #[cfg(target_os = "linux")]
    g.bench_function("io_uring", |b| {
        let mut ring = io_uring::IoUring::new(256).unwrap();
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..BATCH {
                    let e = io_uring::opcode::Nop::new().build().user_data(i);
                    // SAFETY: a NOP references no memory.
                    unsafe { ring.submission().push(&e).unwrap() };
                }
                ring.submit_and_wait(BATCH as usize).unwrap();
                assert_eq!(ring.completion().count() as u64, BATCH);
            }
            record("nop_batched_64", "io_uring", iters * BATCH, start.elapsed())
        })
    });
    g.finish();
}

/// Two pipes and a partner thread that echoes every byte from the first
/// to the second with blocking calls. Returns (ping writer, pong reader);
/// the partner stops once they are closed.
fn echo_partner(nonblocking: bool) -> (OwnedFd, OwnedFd) {
    let p = PipePartner::spawn(nonblocking).unwrap();
    (p.ping, p.pong)
}

fn pipe_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_ping_pong");
    for (name, ring) in kqring_rings() {
        // kqring tries the syscall first, so it wants non-blocking pipes.
        let (ping, pong) = echo_partner(true);
        let mut buf = Some(BytesMut::with_capacity(1));
        let byte = Bytes::from_static(b"x");
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut rbuf = buf.take().unwrap();
                    rbuf.clear();
                    let sq = ring.submission();
                    sq.push(
                        Write::new(ping.as_raw_fd(), byte.clone())
                            .build()
                            .user_data(1),
                    )
                    .unwrap();
                    sq.push(Read::new(pong.as_raw_fd(), rbuf).build().user_data(2))
                        .unwrap();
                    ring.submit_and_wait(2).unwrap();
                    for mut cqe in ring.completion().wait_nr(2).unwrap() {
                        assert_eq!(cqe.result(), 1);
                        if let Ok(b) = cqe.take_buf::<BytesMut>() {
                            buf = Some(b);
                        }
                    }
                }
                record("pipe_ping_pong", name, iters, start.elapsed())
            })
        });
    }
    #[cfg(target_os = "linux")]
    {
        // io_uring returns EAGAIN on O_NONBLOCK files instead of polling,
        // so it gets blocking pipes.
        let (ping, pong) = echo_partner(false);
        let mut ring = io_uring::IoUring::new(256).unwrap();
        let mut rbuf = [0u8; 1];
        let byte = [b'x'];
        g.bench_function("io_uring", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let w = io_uring::opcode::Write::new(
                        io_uring::types::Fd(ping.as_raw_fd()),
                        byte.as_ptr(),
                        1,
                    )
                    .offset(u64::MAX)
                    .build()
                    .user_data(1);
                    let r = io_uring::opcode::Read::new(
                        io_uring::types::Fd(pong.as_raw_fd()),
                        rbuf.as_mut_ptr(),
                        1,
                    )
                    .offset(u64::MAX)
                    .build()
                    .user_data(2);
                    // SAFETY: both buffers outlive the wait for both
                    // completions below.
                    unsafe {
                        ring.submission().push(&w).unwrap();
                        ring.submission().push(&r).unwrap();
                    }
                    ring.submit_and_wait(2).unwrap();
                    let mut got = 0;
                    while got < 2 {
                        for cqe in ring.completion() {
                            assert_eq!(cqe.result(), 1);
                            got += 1;
                        }
                        if got < 2 {
                            ring.submit_and_wait(1).unwrap();
                        }
                    }
                }
                record("pipe_ping_pong", "io_uring", iters, start.elapsed())
            })
        });
    }
    g.finish();
}

/// A subscriber that enables every span and does nothing with it: what
/// the driver's spans cost when something listens, without the cost of a
/// real formatter or exporter.
struct Listening(std::sync::atomic::AtomicU64);

impl tracing::Subscriber for Listening {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::span::Id::from_u64(id + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The per-operation span with nobody listening (the default), and with a
/// listening subscriber: the same batched NOP workload on an inline ring,
/// whose driver runs on this thread and so sees the scoped subscriber.
fn span_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("span_cost");
    let run = |name, ring: &Ring, iters| nop_batches(ring, "span_cost", name, iters);
    let ring = Ring::builder().mode(Mode::Inline).build().unwrap();
    g.bench_function("no-subscriber", |b| {
        b.iter_custom(|iters| run("no-subscriber", &ring, iters))
    });
    // The span's whole life as the driver lives it (made, entered,
    // result recorded, dropped), alone and with nobody listening: the
    // absolute cost per operation of the instrumentation left in.
    g.bench_function("span-alone", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let span = tracing::trace_span!(
                    "op",
                    op = "nop",
                    user_data = i,
                    fd = -1,
                    res = tracing::field::Empty
                );
                let entered = span.clone().entered();
                span.record("res", 0);
                drop(entered);
                std::hint::black_box(span);
            }
            record("span_cost", "span-alone", iters, start.elapsed())
        })
    });
    let listening = std::sync::Arc::new(Listening(std::sync::atomic::AtomicU64::new(0)));
    g.bench_function("listening", |b| {
        b.iter_custom(|iters| {
            tracing::subscriber::with_default(listening.clone(), || run("listening", &ring, iters))
        })
    });
    g.finish();
}

fn print_ratios() {
    let results = RESULTS.lock().unwrap();
    println!(
        "\n{:<18} {:>14} {:>12} {:>18}",
        "workload", "system", "ns/op", "ratio to baseline"
    );
    for ((workload, system), ns) in results.iter() {
        let base = results
            .get(&(workload, "io_uring"))
            .or_else(|| results.get(&(workload, "no-subscriber")));
        let ratio = base.map_or("-".to_string(), |b| format!("{:.2}x", ns / b));
        println!("{workload:<18} {system:>14} {ns:>12.1} {ratio:>18}");
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    nop_round_trip(&mut c);
    nop_batched(&mut c);
    pipe_ping_pong(&mut c);
    span_cost(&mut c);
    c.final_summary();
    print_ratios();
}
