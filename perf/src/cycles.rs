//! Single-thread cycles per update for a batch size: timestamps around `batch` updates
//! (mirroring one `mmu_update` batch between hypercall entry and exit), many batches, and the
//! distribution of (ticks / batch). Disjoint layout, one thread, so nothing is contended. A row
//! measured while other processes took CPU time is measured again (see `quiet`).

use crate::quiet::{DISTURBED, watched};
use crate::stats::Summary;
use crate::tsc;
use crate::world::{Design, Mode, Variant, World};

/// Batch sizes reported.
pub const BATCHES: [u64; 4] = [1, 8, 64, 512];

/// One row of `host_cycles.csv`.
#[derive(Debug, Clone)]
pub struct CycleRow {
    /// Design measured.
    pub design: Design,
    /// Entry variant.
    pub variant: Variant,
    /// Updates between two timestamps.
    pub batch: u64,
    /// Ticks per update over the batches (timer overhead included, amortised over the batch).
    pub per_update: Summary,
    /// CPUs' worth of other processes' time while it ran (`None`: unknown).
    pub others: Option<f64>,
}

impl CycleRow {
    /// Other work on the machine took CPU time while this row was measured.
    pub fn disturbed(&self) -> bool {
        self.others.is_some_and(|o| o > DISTURBED)
    }
}

/// Measure as [`measure_once`], again (up to 3 more times) while other work disturbs it; keeps
/// the least disturbed attempt.
pub fn measure(
    design: Design,
    variant: Variant,
    batch: u64,
    updates: u64,
) -> Result<CycleRow, String> {
    let mut best = measure_once(design, variant, batch, updates)?;
    for _ in 0..3 {
        if !best.disturbed() {
            break;
        }
        let again = measure_once(design, variant, batch, updates)?;
        if again.others < best.others {
            best = again;
        }
    }
    Ok(best)
}

/// Measure `design`/`variant` at `batch`, timing at least `updates` updates (and 200 batches).
pub fn measure_once(
    design: Design,
    variant: Variant,
    batch: u64,
    updates: u64,
) -> Result<CycleRow, String> {
    let world = World::new(Mode::Disjoint, variant, 1).map_err(|e| format!("setup: {e:?}"))?;
    let mut k = world.first_update(0);
    let err = |e| format!("{} {} update failed: {e:?}", design.name(), variant.name());
    world.run(design, 0, &mut k, 4096).map_err(err)?;
    let batches = (updates / batch).max(200);
    let (samples, others) = watched(|| {
        let mut samples = Vec::with_capacity(batches as usize);
        for _ in 0..batches {
            let t0 = tsc::now();
            world.run(design, 0, &mut k, batch).map_err(err)?;
            let t1 = tsc::now();
            samples.push(t1.wrapping_sub(t0) as f64 / batch as f64);
        }
        Ok::<_, String>(samples)
    });
    let samples = samples?;
    world.audit_clean()?;
    Ok(CycleRow {
        design,
        variant,
        batch,
        per_update: Summary::of(&samples).ok_or("no samples")?,
        others,
    })
}
