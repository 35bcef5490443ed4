//! Timing windows, counters and latency samples.

use std::time::{Duration, Instant};

use crate::{Result, ensure};

/// When measuring starts and stops. Work runs from creation; what
/// completes before `t0` is warm-up and is not counted. Fixed instants let
/// many threads (one per connection, say) count into the same window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Start of the measured interval.
    pub t0: Instant,
    /// End of the measured interval: loops stop starting work here.
    pub end: Instant,
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
        }
    }

    /// Whether work should stop being started.
    pub fn over(&self, now: Instant) -> bool {
        now >= self.end
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
        self.window
    }

    /// `n` operations started at `start` finished at `now`; they count if
    /// they lie wholly inside the window. Returns whether to go on.
    pub fn record(&mut self, n: u64, start: Instant, now: Instant) -> bool {
        if start >= self.window.t0 && now <= self.window.end {
            self.ops += n;
            if let Some(s) = &mut self.samples {
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
        let mut r = Recorder::sampling(w);
        assert!(r.record(1, w.t0 - Duration::from_millis(1), w.t0));
        assert!(r.record(1, w.t0, w.t0 + Duration::from_micros(5)));
        assert!(!r.record(
            1,
            w.end - Duration::from_micros(1),
            w.end + Duration::from_micros(1)
        ));
        let m = r.finish();
        assert_eq!(m.ops, 1);
        assert_eq!(m.latency.unwrap().quantile(0.5), Some(5_000));
        assert_eq!(m.elapsed, Duration::from_millis(100));
    }
}
