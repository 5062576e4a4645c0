//! Throughput runs: `threads` threads update for a fixed wall-clock window in one [`Mode`] with
//! one [`Design`]; updates/s is the total count over the window. Each run builds a fresh world,
//! warms every thread up, releases all threads at one barrier, and audits the frame table after
//! the threads are joined (a benchmark that corrupts counts must not report a number). Each
//! repetition also records how much CPU other processes took meanwhile (`quiet`); medians use
//! the undisturbed repetitions.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::quiet::{DISTURBED, watched};
use crate::world::{Design, Mode, Variant, World};

/// Updates between two looks at the stop flag.
const CHUNK: u64 = 64;
/// Warm-up updates per thread before the barrier.
const WARMUP: u64 = 2048;

/// Updates per second of one run.
pub fn run_once(
    mode: Mode,
    variant: Variant,
    design: Design,
    threads: usize,
    window: Duration,
) -> Result<f64, String> {
    let world = World::new(mode, variant, threads).map_err(|e| format!("setup: {e:?}"))?;
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let (secs, counts) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (world, stop, barrier) = (&world, &stop, &barrier);
                s.spawn(move || {
                    let mut k = world.first_update(t);
                    let warm = world.run(design, t, &mut k, WARMUP);
                    barrier.wait();
                    warm?;
                    let mut n = 0u64;
                    // Relaxed: a stop flag publishing no data (counts travel through join).
                    while !stop.load(Ordering::Relaxed) {
                        world.run(design, t, &mut k, CHUNK)?;
                        n += CHUNK;
                    }
                    Ok::<u64, hvcore::frame::MmError>(n)
                })
            })
            .collect();
        barrier.wait();
        let t0 = Instant::now();
        std::thread::sleep(window);
        // Relaxed: see above.
        stop.store(true, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let counts: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (secs, counts)
    });
    let mut total = 0u64;
    for c in counts {
        match c {
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => return Err(format!("update failed: {e:?}")),
            Err(_) => return Err("an update thread panicked".into()),
        }
    }
    world.audit_clean()?;
    Ok(total as f64 / secs)
}

/// One point of the scaling table: every repetition's updates/s and how much CPU other
/// processes used during it.
#[derive(Debug, Clone)]
pub struct Point {
    /// Layout.
    pub mode: Mode,
    /// Entry variant.
    pub variant: Variant,
    /// Design.
    pub design: Design,
    /// Threads.
    pub threads: usize,
    /// Updates/s of each repetition.
    pub reps: Vec<f64>,
    /// CPUs' worth of other processes' time during each repetition (`None`: unknown).
    pub others: Vec<Option<f64>>,
}

impl Point {
    /// Repetitions that ran undisturbed (or whose disturbance is unknown).
    fn clean(&self) -> Vec<f64> {
        let ok = |o: &Option<f64>| o.is_none_or(|o| o <= DISTURBED);
        self.reps
            .iter()
            .zip(&self.others)
            .filter(|(_, o)| ok(o))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Number of undisturbed repetitions.
    pub fn clean_reps(&self) -> usize {
        self.clean().len()
    }

    /// Every repetition was disturbed by other work on the machine.
    pub fn disturbed(&self) -> bool {
        self.clean_reps() == 0
    }

    /// Median updates/s over the undisturbed repetitions (over all if none was).
    pub fn median(&self) -> f64 {
        let clean = self.clean();
        let v = if clean.is_empty() { &self.reps } else { &clean };
        crate::stats::median(v).unwrap_or(0.0)
    }

    /// The most CPU other processes used during one repetition.
    pub fn others_max(&self) -> Option<f64> {
        self.others.iter().flatten().copied().reduce(f64::max)
    }
}

/// Extra rounds run for points none of whose repetitions was undisturbed.
const EXTRA_ROUNDS: usize = 3;

/// Every point for `threads` in `1..=max_threads`, repetitions interleaved across designs so
/// that drift (frequency, neighbours) hits all three designs alike; a point that other work
/// disturbed in every repetition gets up to [`EXTRA_ROUNDS`] more.
pub fn run_all(max_threads: usize, reps: usize, window: Duration) -> Result<Vec<Point>, String> {
    let mut points = Vec::new();
    for mode in Mode::ALL {
        for variant in Variant::ALL {
            for threads in 1..=max_threads {
                let first = points.len();
                for design in Design::ALL {
                    let (reps, others) = (Vec::new(), Vec::new());
                    points.push(Point {
                        mode,
                        variant,
                        design,
                        threads,
                        reps,
                        others,
                    });
                }
                for round in 0..reps.max(1) + EXTRA_ROUNDS {
                    let extra = round >= reps.max(1);
                    if extra && !points[first..].iter().any(Point::disturbed) {
                        break;
                    }
                    for (i, design) in Design::ALL.into_iter().enumerate() {
                        if extra && !points[first + i].disturbed() {
                            continue;
                        }
                        let (r, others) =
                            watched(|| run_once(mode, variant, design, threads, window));
                        let r = r.map_err(|e| {
                            let (m, v, d) = (mode.name(), variant.name(), design.name());
                            format!("{m} {v} {d} x{threads}: {e}")
                        })?;
                        points[first + i].reps.push(r);
                        points[first + i].others.push(others);
                    }
                }
                eprintln!(
                    "perf: {:<12} {} x{threads}: {}",
                    mode.name(),
                    variant.name(),
                    points[first..]
                        .iter()
                        .map(|p| {
                            let mark = if p.disturbed() { " (disturbed)" } else { "" };
                            format!("{} {:.2}M/s{mark}", p.design.name(), p.median() / 1e6)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(points)
}

/// The point for (mode, variant, design, threads), if measured.
pub fn find(
    points: &[Point],
    mode: Mode,
    variant: Variant,
    design: Design,
    threads: usize,
) -> Option<&Point> {
    points.iter().find(|p| {
        p.mode == mode && p.variant == variant && p.design == design && p.threads == threads
    })
}
