//! The physical floors the results are compared with, measured on this machine in the same
//! run: the cost of one uncontended CAS (ticks), the rate at which `n` threads can complete
//! RMWs on one shared word (each completion moves the cache line: one transfer per op), and the
//! machine's own parallel ceiling (`n` threads on private words: does it really run `n` at once?).
//!
//! Orderings: AcqRel CAS / fetch_add, as the frame table's count CASes (Acquire or Release;
//! on x86 every locked RMW costs the same). The words are private to this module.

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tsc;

/// Ticks per uncontended `compare_exchange` on a private word (median of 31 runs of `n`).
pub fn uncontended_cas_ticks(n: u64) -> f64 {
    let word = AtomicU64::new(0);
    let w = black_box(&word);
    let runs: Vec<f64> = (0..31)
        .map(|_| {
            let t0 = tsc::now();
            for _ in 0..n {
                let cur = w.load(Ordering::Relaxed);
                // AcqRel: as a count CAS; the word is private, the result is discarded.
                let _ = black_box(w.compare_exchange(
                    cur,
                    cur + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ));
            }
            tsc::now().wrapping_sub(t0) as f64 / n as f64
        })
        .collect();
    crate::stats::median(&runs).unwrap_or(0.0)
}

/// Completed RMWs per second, all threads together, when `threads` threads `fetch_add` for
/// `window`: on one shared word (`shared`: every op moves the line) or each on its own
/// cache-padded word (the machine's parallel ceiling: n cores give n× the one-thread rate).
pub fn rmw_rate(threads: usize, shared: bool, window: Duration) -> f64 {
    let words: Vec<Padded> = (0..threads).map(|_| Padded(AtomicU64::new(0))).collect();
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let secs = std::thread::scope(|s| {
        for t in 0..threads {
            let word = &words[if shared { 0 } else { t }].0;
            let (stop, barrier) = (&stop, &barrier);
            s.spawn(move || {
                barrier.wait();
                // Relaxed: a stop flag publishing no data.
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        // AcqRel: as a count RMW.
                        word.fetch_add(1, Ordering::AcqRel);
                    }
                }
            });
        }
        barrier.wait();
        let t0 = Instant::now();
        std::thread::sleep(window);
        // Relaxed: see above; the counts are read after the scope joins every thread.
        stop.store(true, Ordering::Relaxed);
        t0.elapsed().as_secs_f64()
    });
    // Every thread is joined: these loads see every increment.
    let total: u64 = words.iter().map(|w| w.0.load(Ordering::Relaxed)).sum();
    total as f64 / secs.max(1e-9)
}

/// A word on its own cache line.
#[repr(align(64))]
struct Padded(AtomicU64);

/// The floors of one run.
#[derive(Debug, Clone)]
pub struct Floors {
    /// Timestamp rate (GHz): ticks per nanosecond.
    pub tsc_ghz: f64,
    /// Cost of one timing pair (ticks), included in batch-1 figures.
    pub timer_ticks: f64,
    /// Smallest step the timestamp advances by (ticks).
    pub tsc_step: u64,
    /// One uncontended CAS (ticks).
    pub cas_ticks: f64,
    /// `(threads, completed RMWs per second on one shared word)`, threads 1..=N.
    pub contended: Vec<(usize, f64)>,
    /// `(threads, completed RMWs per second, each thread on its own word)`, threads 1..=N,
    /// at the start of the run.
    pub private: Vec<(usize, f64)>,
    /// The same at the end of the run ([`Floors::recheck`]); empty until then.
    pub private_end: Vec<(usize, f64)>,
    /// `/proc/loadavg` at the start and the end of the run (other work on the machine).
    pub loadavg: [Option<String>; 2],
}

fn loadavg() -> Option<String> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn private_rates(max_threads: usize, window: Duration) -> Vec<(usize, f64)> {
    (1..=max_threads)
        .map(|n| (n, rmw_rate(n, false, window)))
        .collect()
}

/// Scaling efficiency at `threads` from a list of `(threads, rate)`.
fn efficiency_in(rates: &[(usize, f64)], threads: usize) -> Option<f64> {
    let at = |t| rates.iter().find(|(n, _)| *n == t).map(|(_, r)| *r);
    crate::stats::efficiency(at(threads)?, threads, at(1)?)
}

impl Floors {
    /// Measure everything with `window` per contended point.
    pub fn measure(max_threads: usize, window: Duration) -> Floors {
        Floors {
            tsc_ghz: tsc::tsc_ghz(Duration::from_millis(50)),
            timer_ticks: tsc::overhead(10_000),
            tsc_step: tsc::granularity(10_000),
            cas_ticks: uncontended_cas_ticks(100_000),
            contended: (1..=max_threads)
                .map(|n| (n, rmw_rate(n, true, window)))
                .collect(),
            private: private_rates(max_threads, window),
            private_end: Vec::new(),
            loadavg: [loadavg(), None],
        }
    }

    /// Measure the parallel ceiling and the load again, at the end of the run.
    pub fn recheck(&mut self, max_threads: usize, window: Duration) {
        self.private_end = private_rates(max_threads, window);
        self.loadavg[1] = loadavg();
    }

    /// Completed RMWs per second on one shared line with `threads` threads, if measured.
    pub fn shared_rate(&self, threads: usize) -> Option<f64> {
        self.contended
            .iter()
            .find(|(n, _)| *n == threads)
            .map(|(_, r)| *r)
    }

    /// The machine's own scaling efficiency at `threads`: private-word RMW rate over
    /// `threads ×` the one-thread rate (1.0 = the threads really run at once); the worse of the
    /// start and end measurements.
    pub fn parallel_efficiency(&self, threads: usize) -> Option<f64> {
        let start = efficiency_in(&self.private, threads);
        let end = efficiency_in(&self.private_end, threads);
        match (start, end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Scaling efficiency at `threads` measured at the start and at the end of the run.
    pub fn parallel_efficiency_at(&self, threads: usize) -> [Option<f64>; 2] {
        [
            efficiency_in(&self.private, threads),
            efficiency_in(&self.private_end, threads),
        ]
    }
}
