//! The audit's vocabulary: what the caller tells it ([`ExtraRef`], [`AuditScratch`]) and what it
//! finds ([`Finding`], [`AuditReport`]). Plain values; `no_std` without allocation (the report
//! keeps the first [`AuditReport::CAPACITY`] findings and counts all of them).

use crate::domain::DomId;
use crate::frame::{Level, PageType};
use crate::mem::Mfn;

/// A reference held outside page tables (a vCPU's kernel or user base pointer, a GDT frame, a
/// hypercall in flight at quiescence): one `G`, plus one `C` of type `ty` if given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraRef {
    /// The frame.
    pub mfn: Mfn,
    /// The type reference held with it, if any.
    pub ty: Option<PageType>,
}

/// Per-frame expected counts, recomputed by the audit. The caller provides one per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditScratch {
    pub(crate) word: u64,
    pub(crate) general: u64,
    pub(crate) typed: u64,
    pub(crate) linear: i64,
    pub(crate) rw_maps: u64,
}

/// Which count disagrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountField {
    /// General count `G`.
    General,
    /// Type count `C`.
    Type,
    /// Linear page-table counter.
    Linear,
}

/// Something wrong with one entry of a validated table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProblem {
    /// An L2–L4 entry points outside the frame table.
    NonRamChild,
    /// The entry points at a free frame.
    FreeTarget,
    /// An L2–L4 entry's target is neither a validated table one level down nor (linear) a
    /// validated table of the same level.
    ChildType {
        /// The target's type.
        found: PageType,
    },
    /// A same-level (linear or self-map) entry with RW set.
    WritableLinear,
    /// The entry's flags are not allowed at this level.
    Flags,
}

/// Something wrong with one frame's state word on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateProblem {
    /// The word does not decode.
    Corrupt,
    /// `G == 0` but the word is not the free word (or the linear counter is not 0).
    FreeNotClean,
    /// `G < C + allocated`.
    GeneralBelowTyped,
    /// Pinned without a page-table type or without a type reference.
    BadPin,
    /// A page table with a type reference but not validated (not quiescent).
    UnvalidatedTable,
    /// A type reference of type `None`.
    UntypedReference,
    /// An extra reference's type differs from the frame's.
    ExtraTypeMismatch,
    /// Partial without `C == 1`, with `V` or pinned set, or not an L2–L4 table; or a
    /// de-validation cursor on a frame that is not partial.
    BadPartial,
}

/// One discrepancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// A count differs from the references that really exist.
    Count {
        /// The frame.
        mfn: Mfn,
        /// Which count.
        field: CountField,
        /// Recomputed from page tables, pins, allocations and extras.
        expected: i64,
        /// In the frame table.
        actual: i64,
    },
    /// A frame typed as something other than writable (page table, descriptor) is mapped RW by
    /// `rw_maps` present entries of validated L1 tables.
    WritableMapping {
        /// The frame.
        mfn: Mfn,
        /// Its type.
        ty: PageType,
        /// Number of RW mappings found.
        rw_maps: u64,
    },
    /// A table maps a frame of another owner without a permitting context.
    ForeignMapping {
        /// The table.
        table: Mfn,
        /// The entry.
        index: usize,
        /// The frame mapped.
        target: Mfn,
        /// The table's owner.
        table_owner: DomId,
        /// The frame's owner.
        target_owner: DomId,
    },
    /// A bad entry in a validated table.
    Entry {
        /// The table.
        table: Mfn,
        /// Its level.
        level: Level,
        /// The entry.
        index: usize,
        /// What is wrong.
        problem: EntryProblem,
    },
    /// A frame's state word breaks an invariant on its own.
    State {
        /// The frame.
        mfn: Mfn,
        /// What is wrong.
        problem: StateProblem,
    },
    /// The scratch slice is shorter than the frame table; nothing was checked.
    ScratchTooSmall {
        /// Frames in the table.
        needed: usize,
    },
}

/// The findings of one audit: the first [`AuditReport::CAPACITY`] in order, and the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditReport {
    first: [Option<Finding>; AuditReport::CAPACITY],
    total: usize,
}

impl Default for AuditReport {
    fn default() -> Self {
        Self {
            first: [None; Self::CAPACITY],
            total: 0,
        }
    }
}

impl AuditReport {
    /// Findings kept in full.
    pub const CAPACITY: usize = 32;

    /// Record one finding.
    pub fn push(&mut self, f: Finding) {
        if let Some(slot) = self.first.get_mut(self.total) {
            *slot = Some(f);
        }
        self.total += 1;
    }

    /// Number of findings (all of them, including those not kept).
    pub fn discrepancies(&self) -> usize {
        self.total
    }

    /// Nothing found.
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }

    /// The findings kept (the first [`Self::CAPACITY`]).
    pub fn findings(&self) -> impl Iterator<Item = &Finding> + '_ {
        self.first.iter().flatten()
    }
}
