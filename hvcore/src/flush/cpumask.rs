//! CPU sets: the plain value [`CpuMask`] and the shared [`AtomicCpuMask`].
//!
//! A `CpuMask` is a `Copy` bitmap of up to [`MAX_CPUS`] CPUs (`[u64; 4]`, bit `c % 64` of word
//! `c / 64` is CPU `c`). An `AtomicCpuMask` is the same bitmap in `sync::AtomicU64` words, used for
//! per-domain dirty masks (spec §5.1) and the online mask.
//!
//! Orderings (dirty-mask contract, DESIGN.md §7):
//! - [`AtomicCpuMask::set`] is an `AcqRel` `fetch_or`; the CPU sets its bit *before* it loads the
//!   domain's page tables.
//! - [`AtomicCpuMask::snapshot`] reads each word with an `AcqRel` `fetch_or(0)`, *after* the caller
//!   changed the page tables. Both are read-modify-writes of the same word, so one of them comes
//!   first in that word's modification order: either the snapshot sees the bit (the CPU is flushed)
//!   or the set reads from the snapshot's release sequence, so the page-table change happens-before
//!   the CPU's next page walk. A plain load in `snapshot` would allow the store-buffering outcome
//!   where both sides miss each other.
//! - [`AtomicCpuMask::clear`] is a `Release` `fetch_and`, done after the CPU stopped using the
//!   domain's translations (it switched CR3 away); pairs with the `Acquire` half of `snapshot`.
//! - [`AtomicCpuMask::load`] is plain `Acquire` loads: for the online mask and diagnostics, not for
//!   deciding whom to flush.

use crate::sync::{AtomicU64, Ordering};

/// The largest number of CPUs a mask can name.
pub const MAX_CPUS: usize = 256;

const WORDS: usize = MAX_CPUS / 64;
const _: () = assert!(WORDS * 64 == MAX_CPUS);

/// A fixed-size set of CPU indices `0..MAX_CPUS`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuMask {
    bits: [u64; WORDS],
}

impl core::fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[inline]
fn split(cpu: usize) -> (usize, u64) {
    (cpu / 64, 1u64 << (cpu % 64))
}

impl CpuMask {
    /// The empty set.
    pub const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// The set holding only `cpu`.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    pub fn single(cpu: usize) -> Self {
        let mut m = Self::new();
        m.set(cpu);
        m
    }

    /// CPUs `0..n` (`n` is clamped to [`MAX_CPUS`]).
    pub fn first(n: usize) -> Self {
        let n = n.min(MAX_CPUS);
        let mut m = Self::new();
        for (w, word) in m.bits.iter_mut().enumerate() {
            let lo = w * 64;
            if n >= lo + 64 {
                *word = u64::MAX;
            } else if n > lo {
                *word = (1u64 << (n - lo)) - 1;
            }
        }
        m
    }

    /// The raw words, CPU `c` at bit `c % 64` of word `c / 64`.
    pub const fn words(&self) -> [u64; WORDS] {
        self.bits
    }

    /// A mask from raw words (see [`CpuMask::words`]).
    pub const fn from_words(bits: [u64; WORDS]) -> Self {
        Self { bits }
    }

    /// Add `cpu`.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    pub fn set(&mut self, cpu: usize) {
        let (w, b) = split(cpu);
        self.bits[w] |= b;
    }

    /// Remove `cpu`.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    pub fn clear(&mut self, cpu: usize) {
        let (w, b) = split(cpu);
        self.bits[w] &= !b;
    }

    /// Is `cpu` in the set? CPUs at or beyond [`MAX_CPUS`] never are.
    pub fn contains(&self, cpu: usize) -> bool {
        let (w, b) = split(cpu);
        self.bits.get(w).is_some_and(|word| word & b != 0)
    }

    /// `self` with `cpu` added.
    pub fn with(mut self, cpu: usize) -> Self {
        self.set(cpu);
        self
    }

    /// `self` with `cpu` removed.
    pub fn without(mut self, cpu: usize) -> Self {
        self.clear(cpu);
        self
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// CPUs in either set.
    pub fn union(self, other: Self) -> Self {
        self.zip(other, |a, b| a | b)
    }

    /// CPUs in both sets.
    pub fn intersection(self, other: Self) -> Self {
        self.zip(other, |a, b| a & b)
    }

    /// CPUs in `self` but not in `other`.
    pub fn difference(self, other: Self) -> Self {
        self.zip(other, |a, b| a & !b)
    }

    fn zip(mut self, other: Self, f: impl Fn(u64, u64) -> u64) -> Self {
        for (a, b) in self.bits.iter_mut().zip(other.bits) {
            *a = f(*a, b);
        }
        self
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> CpuIter {
        CpuIter {
            bits: self.bits,
            word: 0,
        }
    }
}

impl FromIterator<usize> for CpuMask {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut m = Self::new();
        for cpu in iter {
            m.set(cpu);
        }
        m
    }
}

impl IntoIterator for CpuMask {
    type Item = usize;
    type IntoIter = CpuIter;
    fn into_iter(self) -> CpuIter {
        self.iter()
    }
}

/// Iterator over a [`CpuMask`], ascending.
#[derive(Debug, Clone)]
pub struct CpuIter {
    bits: [u64; WORDS],
    word: usize,
}

impl Iterator for CpuIter {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        while self.word < WORDS {
            let w = &mut self.bits[self.word];
            if *w != 0 {
                let bit = w.trailing_zeros() as usize;
                *w &= *w - 1;
                return Some(self.word * 64 + bit);
            }
            self.word += 1;
        }
        None
    }
}

/// A CPU set shared between CPUs; see the module head for the orderings.
///
/// Built with a non-const constructor (loom atomics have no `const fn new`); never a static.
#[derive(Debug)]
pub struct AtomicCpuMask {
    words: [AtomicU64; WORDS],
    /// Words that may hold bits (`ceil(cpus / 64)`); `snapshot` reads only these.
    used: usize,
}

impl Default for AtomicCpuMask {
    fn default() -> Self {
        Self::new()
    }
}

impl AtomicCpuMask {
    /// An empty mask able to hold every CPU below [`MAX_CPUS`].
    pub fn new() -> Self {
        Self::for_cpus(MAX_CPUS)
    }

    /// An empty mask for CPUs `0..cpus` (clamped to [`MAX_CPUS`]). Setting a higher CPU panics;
    /// a smaller mask costs fewer atomic operations per snapshot (and fewer loom branches).
    pub fn for_cpus(cpus: usize) -> Self {
        let used = cpus.min(MAX_CPUS).div_ceil(64);
        Self {
            words: core::array::from_fn(|_| AtomicU64::new(0)),
            used,
        }
    }

    fn word(&self, cpu: usize) -> (&AtomicU64, u64) {
        let (w, b) = split(cpu);
        assert!(w < self.used, "CPU {cpu} is beyond this AtomicCpuMask");
        (&self.words[w], b)
    }

    /// Add `cpu`; returns whether it was already present.
    ///
    /// # Panics
    /// If `cpu` is beyond the mask's capacity.
    pub fn set(&self, cpu: usize) -> bool {
        let (word, b) = self.word(cpu);
        // AcqRel: Acquire so that, if a `snapshot` came first in this word's modification order,
        // the page-table changes made before it are visible to this CPU's next page walk; Release
        // so a snapshot that sees the bit also sees what this CPU did before joining. Pairs with
        // the `AcqRel` `fetch_or(0)` in `snapshot`.
        word.fetch_or(b, Ordering::AcqRel) & b != 0
    }

    /// Remove `cpu`; returns whether it was present.
    ///
    /// # Panics
    /// If `cpu` is beyond the mask's capacity.
    pub fn clear(&self, cpu: usize) -> bool {
        let (word, b) = self.word(cpu);
        // Release: the CPU's switch away from the domain's translations happens-before any
        // snapshot that no longer sees the bit; pairs with the Acquire half of `snapshot`.
        word.fetch_and(!b, Ordering::Release) & b != 0
    }

    /// Is `cpu` present? (Acquire load; diagnostics only, not a flush decision.)
    pub fn contains(&self, cpu: usize) -> bool {
        let (w, b) = split(cpu);
        // Acquire: pairs with the Release half of `set`/`clear`.
        w < self.used && self.words[w].load(Ordering::Acquire) & b != 0
    }

    /// The set of CPUs that may hold translations, for deciding whom to flush. Take it *after*
    /// the page-table change it protects (see the module head for why this is a read-modify-write).
    pub fn snapshot(&self) -> CpuMask {
        let mut bits = [0u64; WORDS];
        for (out, word) in bits.iter_mut().zip(&self.words[..self.used]) {
            // AcqRel RMW: pairs with the AcqRel `fetch_or` in `set` (whichever is first in the
            // word's modification order synchronises with the other) and with `clear`'s Release.
            *out = word.fetch_or(0, Ordering::AcqRel);
        }
        CpuMask::from_words(bits)
    }

    /// Plain loads of the mask (Acquire: pairs with the Release half of `set`/`clear`). Right for
    /// a mask that only grows before its CPUs are used, such as the online mask.
    pub fn load(&self) -> CpuMask {
        let mut bits = [0u64; WORDS];
        for (out, word) in bits.iter_mut().zip(&self.words[..self.used]) {
            *out = word.load(Ordering::Acquire);
        }
        CpuMask::from_words(bits)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_clear_contains_every_cpu() {
        for cpu in 0..MAX_CPUS {
            let mut m = CpuMask::new();
            assert!(!m.contains(cpu));
            m.set(cpu);
            assert!(m.contains(cpu));
            assert_eq!(m.count(), 1);
            assert_eq!(m.iter().collect::<Vec<_>>(), vec![cpu]);
            assert_eq!(m.words()[cpu / 64], 1 << (cpu % 64));
            m.clear(cpu);
            assert!(m.is_empty());
        }
        assert!(!CpuMask::first(MAX_CPUS).contains(MAX_CPUS));
    }

    #[test]
    fn set_algebra() {
        let a: CpuMask = [0, 3, 64, 200, 255].into_iter().collect();
        let b: CpuMask = [3, 4, 200].into_iter().collect();
        assert_eq!(
            a.union(b).iter().collect::<Vec<_>>(),
            [0, 3, 4, 64, 200, 255]
        );
        assert_eq!(a.intersection(b).iter().collect::<Vec<_>>(), [3, 200]);
        assert_eq!(a.difference(b).iter().collect::<Vec<_>>(), [0, 64, 255]);
        assert_eq!(a.count(), 5);
        assert_eq!(a.without(0).with(1).iter().next(), Some(1));
    }

    #[test]
    fn first_n() {
        for n in [0, 1, 63, 64, 65, 128, 200, 256, 300] {
            let m = CpuMask::first(n);
            assert_eq!(m.count(), n.min(MAX_CPUS));
            assert!(m.iter().eq(0..n.min(MAX_CPUS)));
        }
    }

    #[test]
    fn atomic_mask_set_clear_snapshot() {
        let m = AtomicCpuMask::for_cpus(70);
        assert!(!m.set(69));
        assert!(m.set(69));
        assert!(!m.set(2));
        assert_eq!(m.snapshot(), [2, 69].into_iter().collect());
        assert!(m.clear(2));
        assert!(!m.clear(2));
        assert_eq!(m.load(), CpuMask::single(69));
        assert!(m.contains(69) && !m.contains(2) && !m.contains(200));
    }

    #[test]
    #[should_panic(expected = "beyond")]
    fn atomic_mask_rejects_cpu_beyond_capacity() {
        AtomicCpuMask::for_cpus(64).set(64);
    }
}
