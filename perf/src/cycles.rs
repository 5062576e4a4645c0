//! Single-thread cycles per update for a batch size: timestamps around `batch` updates
//! (mirroring one `mmu_update` batch between hypercall entry and exit), many batches, and the
//! distribution of (ticks / batch). Disjoint layout, one thread, so nothing is contended.

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
}

/// Measure `design`/`variant` at `batch`, timing at least `updates` updates (and 200 batches).
pub fn measure(
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
    let mut samples = Vec::with_capacity(batches as usize);
    for _ in 0..batches {
        let t0 = tsc::now();
        world.run(design, 0, &mut k, batch).map_err(err)?;
        let t1 = tsc::now();
        samples.push(t1.wrapping_sub(t0) as f64 / batch as f64);
    }
    world.audit_clean()?;
    Ok(CycleRow {
        design,
        variant,
        batch,
        per_update: Summary::of(&samples).ok_or("no samples")?,
    })
}
