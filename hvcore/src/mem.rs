//! Machine memory that holds page tables, as the core sees it.
//!
//! Owns: the [`Mfn`] newtype, the [`PhysMem`] trait (8-byte entry granularity) and, for host tests
//! and loom models, [`HostMem`] over plain atomics.
//!
//! Orderings (every implementation must give at least these):
//! * [`PhysMem::cas_entry`] is `AcqRel`. Release: the references an updater took for the new
//!   entry happen-before any thread that reads that entry and later drops those references.
//!   Acquire: the updater that replaces an entry sees the references taken for the value it
//!   replaces before it drops them (so a put can never be ordered before its get).
//! * [`PhysMem::read_entry`] is `Acquire` and [`PhysMem::write_entry`] is `Release`, pairing with
//!   each other and with `cas_entry` in the same way.
//!
//! Callers pass only `mfn < frames()` and `index < entries_per_frame()`; the core checks both
//! before touching memory, and an implementation may treat anything else as a hypervisor bug.

#[cfg(any(test, loom, feature = "testkit"))]
mod host;

#[cfg(any(test, loom, feature = "testkit"))]
pub use host::HostMem;

/// Entries in one x86-64 page-table page.
pub const ENTRIES_PER_TABLE: usize = 512;

/// A machine frame number (machine address >> 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mfn(pub u64);

impl Mfn {
    /// The frame as a slice index, if it fits in `usize`.
    pub fn index(self) -> Option<usize> {
        usize::try_from(self.0).ok()
    }
}

/// Machine memory holding page tables, at 8-byte entry granularity.
///
/// The hypervisor implements it over its direct map; host tests and loom models use
/// [`HostMem`]. All accesses are single-copy atomic 8-byte accesses (hardware sets A/D bits
/// concurrently with software).
pub trait PhysMem {
    /// Number of frames this memory holds.
    fn frames(&self) -> usize;

    /// Entries per frame: 512 on hardware. Loom models use fewer so that validating a table
    /// stays a handful of atomic steps; the core iterates over `0..entries_per_frame()`.
    fn entries_per_frame(&self) -> usize {
        ENTRIES_PER_TABLE
    }

    /// Read entry `index` of frame `mfn` (Acquire).
    fn read_entry(&self, mfn: Mfn, index: usize) -> u64;

    /// Store `val` into entry `index` of frame `mfn` (Release).
    fn write_entry(&self, mfn: Mfn, index: usize, val: u64);

    /// Replace entry `index` of `mfn` with `new` if it still holds `old` (AcqRel); on failure
    /// return the value found.
    fn cas_entry(&self, mfn: Mfn, index: usize, old: u64, new: u64) -> Result<(), u64>;

    /// Zero every entry of `mfn`.
    fn zero_page(&self, mfn: Mfn) {
        for i in 0..self.entries_per_frame() {
            self.write_entry(mfn, i, 0);
        }
    }

    /// Copy every entry of `src` into `dst`.
    fn copy_page(&self, dst: Mfn, src: Mfn) {
        for i in 0..self.entries_per_frame() {
            self.write_entry(dst, i, self.read_entry(src, i));
        }
    }
}
