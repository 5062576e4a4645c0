//! [`HostMem`]: machine memory for host tests and loom models, one `sync::AtomicU64` per entry.
//!
//! Built with non-`const` `AtomicU64::new` so that under loom every entry is a model-checked
//! atomic created inside the model. Orderings are exactly those the [`PhysMem`] contract names:
//! loads Acquire, stores Release, compare-and-swap AcqRel (see `mem.rs`). Out-of-range accesses
//! panic: this type never runs in the hypervisor, and a panic there is a bug in the core.

extern crate alloc;

use alloc::vec::Vec;

use super::{ENTRIES_PER_TABLE, Mfn, PhysMem};
use crate::sync::{AtomicU64, Ordering};

/// Page-table memory over a vector of atomics (`entries` per frame).
#[derive(Debug)]
pub struct HostMem {
    words: Vec<AtomicU64>,
    entries: usize,
    cas_failures: AtomicU64,
}

impl HostMem {
    /// `frames` zeroed frames of 512 entries.
    pub fn new(frames: usize) -> Self {
        Self::with_entries(frames, ENTRIES_PER_TABLE)
    }

    /// `frames` zeroed frames of `entries` entries each (loom models use small tables).
    pub fn with_entries(frames: usize, entries: usize) -> Self {
        let entries = entries.clamp(1, ENTRIES_PER_TABLE);
        let words = (0..frames * entries).map(|_| AtomicU64::new(0)).collect();
        Self {
            words,
            entries,
            cas_failures: AtomicU64::new(0),
        }
    }

    fn slot(&self, mfn: Mfn, index: usize) -> &AtomicU64 {
        assert!(
            index < self.entries,
            "HostMem: entry index {index} out of range"
        );
        let frame = mfn.index().unwrap_or(usize::MAX);
        assert!(frame < self.frames(), "HostMem: frame {mfn:?} out of range");
        &self.words[frame * self.entries + index]
    }

    /// How many `cas_entry` calls failed so far (tests use it to see retry paths exercised).
    pub fn cas_failures(&self) -> u64 {
        // Relaxed: a statistic, read after the threads that counted were joined.
        self.cas_failures.load(Ordering::Relaxed)
    }

    /// Set bits in an entry the way the CPU sets A/D bits: an atomic OR, not a software update.
    pub fn hw_set_bits(&self, mfn: Mfn, index: usize, bits: u64) {
        // AcqRel: the hardware walker's locked OR; orders like any other entry update.
        self.slot(mfn, index).fetch_or(bits, Ordering::AcqRel);
    }
}

impl PhysMem for HostMem {
    fn frames(&self) -> usize {
        self.words.len() / self.entries
    }

    fn entries_per_frame(&self) -> usize {
        self.entries
    }

    fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
        // Acquire: pairs with the Release half of `write_entry` / `cas_entry`.
        self.slot(mfn, index).load(Ordering::Acquire)
    }

    fn write_entry(&self, mfn: Mfn, index: usize, val: u64) {
        // Release: pairs with the Acquire in `read_entry` / `cas_entry`.
        self.slot(mfn, index).store(val, Ordering::Release);
    }

    fn cas_entry(&self, mfn: Mfn, index: usize, old: u64, new: u64) -> Result<(), u64> {
        // AcqRel on success (see the PhysMem contract); Acquire on failure so that the value
        // returned can be acted on like a `read_entry`.
        let r =
            self.slot(mfn, index)
                .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire);
        if r.is_err() {
            // Relaxed: a statistic.
            self.cas_failures.fetch_add(1, Ordering::Relaxed);
        }
        r.map(|_| ())
    }
}
