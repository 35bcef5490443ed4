//! Timing windows, counters, latency samples and CPU time.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::{Result, ensure};

/// When measuring starts and stops. Work runs from creation; what
/// completes before `t0` is warm-up and is not counted. Fixed instants let
/// many threads (one per connection, say) count into the same window, and
/// its clones share the process CPU time read as it opens and closes.
#[derive(Debug, Clone)]
pub struct Window {
    /// Start of the measured interval.
    pub t0: Instant,
    /// End of the measured interval: loops stop starting work here.
    pub end: Instant,
    marks: Arc<CpuMarks>,
}

/// The process's CPU time at the first completion seen at or after each end
/// of a window, with when it was read.
#[derive(Debug, Default)]
struct CpuMarks {
    open: OnceLock<(Instant, CpuTime)>,
    close: OnceLock<(Instant, CpuTime)>,
}

impl Window {
    /// A window starting after a warm-up of a tenth of `measure` (at most
    /// 200 ms) and lasting `measure`.
    pub fn new(measure: Duration) -> Window {
        let warmup = (measure / 10).min(Duration::from_millis(200));
        let t0 = Instant::now() + warmup;
        Window {
            t0,
            end: t0 + measure,
            marks: Arc::default(),
        }
    }

    /// Whether work should stop being started.
    pub fn over(&self, now: Instant) -> bool {
        now >= self.end
    }

    /// Reads the process CPU time the first time `now` reaches `t0`, and
    /// again the first time it reaches `end` (one read each, whichever
    /// thread gets there first).
    fn mark(&self, now: Instant) {
        let read = || CpuTime::now().map(|c| (Instant::now(), c));
        if now >= self.t0
            && self.marks.open.get().is_none()
            && let Some(m) = read()
        {
            let _ = self.marks.open.set(m);
        }
        if now >= self.end
            && self.marks.close.get().is_none()
            && let Some(m) = read()
        {
            let _ = self.marks.close.set(m);
        }
    }

    /// The CPU the process used between the two marks, if both were read.
    pub fn cpu(&self) -> Option<CpuUse> {
        let (t_open, c_open) = *self.marks.open.get()?;
        let (t_close, c_close) = *self.marks.close.get()?;
        Some(CpuUse {
            cpu: c_close.since(c_open),
            wall: t_close.saturating_duration_since(t_open),
        })
    }
}

/// CPU time used by the whole process: every thread, exited ones included.
///
/// It is `getrusage(RUSAGE_SELF)`. On Linux that is the thread group's sum
/// that `/proc/self/stat` reports too, at microsecond rather than tick
/// resolution; it includes io_uring's kernel-side threads (`iou-sqp-*`,
/// `iou-wrk-*`), which are threads of the process since Linux 5.12 (the
/// SQPOLL column checks that its thread is one: see `io_uring.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// Time spent in user mode.
    pub user: Duration,
    /// Time spent in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// The process's CPU time so far, or `None` if the OS would not say.
    pub fn now() -> Option<CpuTime> {
        // SAFETY: getrusage fills the struct or fails; it is plain data.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        let d = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64)
                + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(CpuTime {
            user: d(ru.ru_utime),
            system: d(ru.ru_stime),
        })
    }

    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    /// This time divided by `n`, scaled by `factor`.
    fn per(self, n: u64, factor: f64) -> CpuTime {
        let f = factor / n.max(1) as f64;
        CpuTime {
            user: self.user.mul_f64(f),
            system: self.system.mul_f64(f),
        }
    }
}

/// CPU time the process used over a stretch of wall time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuUse {
    /// CPU time used (all threads, user and system).
    pub cpu: CpuTime,
    /// The wall time it was used over.
    pub wall: Duration,
}

impl CpuUse {
    /// CPUs kept busy on average.
    pub fn cpus(&self) -> f64 {
        self.cpu.total().as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Counts operations (and, if asked, their latencies) inside a [`Window`].
#[derive(Debug, Clone)]
pub struct Recorder {
    window: Window,
    ops: u64,
    samples: Option<Vec<u64>>,
}

impl Recorder {
    /// A recorder that counts only.
    pub fn counting(window: Window) -> Recorder {
        Recorder {
            window,
            ops: 0,
            samples: None,
        }
    }

    /// A recorder that also keeps every latency.
    pub fn sampling(window: Window) -> Recorder {
        Recorder {
            window,
            ops: 0,
            samples: Some(Vec::with_capacity(1 << 16)),
        }
    }

    /// The window.
    pub fn window(&self) -> Window {
        self.window.clone()
    }

    /// `n` operations started at `start` finished at `now`: they count if
    /// they finished inside the window (throughput is completions per
    /// second of the window, whenever they started: with 10,000
    /// connections a round trip is a good part of the window), and their
    /// latency is kept if they also started inside it. Returns whether to
    /// go on.
    pub fn record(&mut self, n: u64, start: Instant, now: Instant) -> bool {
        self.window.mark(now);
        if now >= self.window.t0 && now <= self.window.end {
            self.ops += n;
            if let Some(s) = &mut self.samples
                && start >= self.window.t0
            {
                s.push((now - start).as_nanos() as u64);
            }
        }
        !self.window.over(now)
    }

    /// Adds another recorder's counts (same window).
    pub fn merge(&mut self, other: Recorder) {
        self.ops += other.ops;
        if let (Some(a), Some(b)) = (&mut self.samples, other.samples) {
            a.extend(b);
        }
    }

    /// The measurement over the whole window.
    pub fn finish(self) -> Measurement {
        Measurement {
            ops: self.ops,
            elapsed: self.window.end - self.window.t0,
            latency: self.samples.map(Samples::new),
            cpu: self.window.cpu(),
        }
    }
}

/// What one system did in one workload.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Operations (or round trips, or batches' operations) counted.
    pub ops: u64,
    /// The interval they were counted over.
    pub elapsed: Duration,
    /// Per-operation latencies, when the workload keeps them.
    pub latency: Option<Samples>,
    /// The process's CPU time over the measured window (or, for a
    /// workload without one, over the whole run: then `wall` is `elapsed`).
    pub cpu: Option<CpuUse>,
}

impl Measurement {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }

    /// Mean nanoseconds per operation.
    pub fn mean_ns(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }

    /// CPU time (user, system) per operation: the CPUs busy over the
    /// window times its length, over the operations counted in it.
    pub fn cpu_per_op(&self) -> Option<CpuTime> {
        let u = self.cpu?;
        let factor = self.elapsed.as_secs_f64() / u.wall.as_secs_f64().max(1e-9);
        (self.ops > 0).then(|| u.cpu.per(self.ops, factor))
    }
}

/// Latency samples in nanoseconds, sorted.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted: Vec<u64>,
}

impl Samples {
    /// Sorts `ns`.
    pub fn new(mut ns: Vec<u64>) -> Samples {
        ns.sort_unstable();
        Samples { sorted: ns }
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `q`-quantile (0.0..=1.0), nearest rank; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        Some(self.sorted[rank.clamp(1, n) - 1])
    }

    /// The mean, in nanoseconds.
    pub fn mean(&self) -> Option<f64> {
        (!self.sorted.is_empty())
            .then(|| self.sorted.iter().map(|&v| v as f64).sum::<f64>() / self.sorted.len() as f64)
    }

    /// The largest sample.
    pub fn max(&self) -> Option<u64> {
        self.sorted.last().copied()
    }
}

/// How late a timer due at `due` was when seen at `now`, in ns. A timer
/// that fires early is a bug, not a fast result.
pub fn lateness_ns(due: Instant, now: Instant) -> Result<u64> {
    ensure!(
        now + Duration::from_micros(1) >= due,
        "a timer fired {:?} early",
        due - now
    );
    Ok(now.saturating_duration_since(due).as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_op_scales_to_the_window() {
        let m = Measurement {
            ops: 1000,
            elapsed: Duration::from_secs(1),
            latency: None,
            cpu: Some(CpuUse {
                cpu: CpuTime {
                    user: Duration::from_millis(300),
                    system: Duration::from_millis(900),
                },
                wall: Duration::from_millis(1200),
            }),
        };
        let per = m.cpu_per_op().unwrap();
        assert_eq!(per.user, Duration::from_micros(250));
        assert_eq!(per.system, Duration::from_micros(750));
        assert!((m.cpu.unwrap().cpus() - 1.0).abs() < 1e-9);
        let later = CpuTime::now().unwrap();
        assert_eq!(later.since(later).total(), Duration::ZERO);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let s = Samples::new((1..=100).rev().collect());
        assert_eq!(s.quantile(0.5), Some(50));
        assert_eq!(s.quantile(0.99), Some(99));
        assert_eq!(s.quantile(1.0), Some(100));
        assert_eq!(s.quantile(0.0), Some(1));
        assert_eq!(s.max(), Some(100));
        assert_eq!(Samples::default().quantile(0.5), None);
    }

    #[test]
    fn only_the_window_counts() {
        let w = Window::new(Duration::from_millis(100));
        let mut r = Recorder::sampling(w.clone());
        assert!(r.record(1, w.t0 - Duration::from_millis(1), w.t0));
        assert!(r.record(1, w.t0, w.t0 + Duration::from_micros(5)));
        assert!(!r.record(
            1,
            w.end - Duration::from_micros(1),
            w.end + Duration::from_micros(1)
        ));
        assert!(r.record(
            1,
            w.t0 - Duration::from_millis(2),
            w.t0 - Duration::from_millis(1)
        ));
        let m = r.finish();
        assert!(m.cpu.is_some(), "both ends of the window were marked");
        // Finished inside: counted; started before it: no latency sample.
        assert_eq!(m.ops, 2);
        assert_eq!(m.latency.as_ref().unwrap().len(), 1);
        assert_eq!(m.latency.unwrap().quantile(0.5), Some(5_000));
        assert_eq!(m.elapsed, Duration::from_millis(100));
    }
}
