//! The physical frame allocator: one bit per frame over the free RAM left after boot placement.
//!
//! Owns the free/used state of every frame in the ranges it was built from
//! (`memmap::free_ranges`, then `memmap::place` for the frame table and for this bitmap). The
//! bitmap is caller storage (`&mut [u64]`, sized with [`FrameAllocator::bitmap_words`]): the
//! hypervisor places and maps it, tests pass a `Vec`. Nothing here touches physical memory.
//!
//! Invariants: bit `i` of the bitmap is frame `base + i`, set = free; a bit is only ever set for
//! a frame inside `managed` (frames outside it are never handed out and cannot be freed);
//! `free` is the number of set bits; every bitmap word before `hint` is zero. Allocation is
//! lowest-address first. Every method takes `&mut self`: on SMP the caller holds a lock.

use core::fmt;

use crate::memmap::{PAGE_SIZE, Range, RangeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bitmap storage has fewer words than the RAM needs.
    BitmapTooSmall { needed: usize, got: usize },
    /// The frame is not RAM owned by this allocator.
    NotRam { mfn: u64 },
    /// The frame is already free.
    DoubleFree { mfn: u64 },
    /// [`FrameAllocator::reserve`] met a frame that is allocated.
    InUse { mfn: u64 },
    /// A zero count or an alignment that is not a power of two.
    BadRequest { count: u64, align: u64 },
    /// No run of `count` free frames at that alignment.
    OutOfMemory { count: u64, align: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BitmapTooSmall { needed, got } => {
                write!(f, "frame bitmap needs {needed} words, got {got}")
            }
            Self::NotRam { mfn } => write!(f, "frame {mfn:#x} is not allocator RAM"),
            Self::DoubleFree { mfn } => write!(f, "frame {mfn:#x} freed twice"),
            Self::InUse { mfn } => write!(f, "frame {mfn:#x} is in use"),
            Self::BadRequest { count, align } => {
                write!(f, "bad frame request: {count} frames aligned to {align}")
            }
            Self::OutOfMemory { count, align } => {
                write!(f, "no {count} free frames aligned to {align}")
            }
        }
    }
}

/// A bitmap frame allocator over borrowed storage.
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    /// Frame number of bit 0.
    base: u64,
    /// One past the last managed frame.
    end: u64,
    /// Page-aligned byte ranges this allocator owns.
    managed: RangeSet,
    free: u64,
    hint: usize,
}

impl fmt::Debug for FrameAllocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let frames = format_args!("{:#x}..{:#x}", self.base, self.end);
        let managed = self.managed.as_slice();
        f.debug_struct("FrameAllocator")
            .field("frames", &frames)
            .field("free", &self.free)
            .field("managed", &managed)
            .finish_non_exhaustive()
    }
}

/// First and one-past-last frame of `ram` (both 0 when empty).
fn span(ram: &RangeSet) -> (u64, u64) {
    let ranges = ram.as_slice();
    let first = ranges.first().map_or(0, |r| r.start / PAGE_SIZE);
    (first, ranges.last().map_or(0, |r| r.end / PAGE_SIZE))
}

impl<'a> FrameAllocator<'a> {
    /// Bitmap words needed for `ram`. Stays an upper bound when `ram` later shrinks, so size the
    /// bitmap, [`place`](crate::memmap::place) it, then build the allocator from what is left.
    pub fn bitmap_words(ram: &RangeSet) -> usize {
        let (first, end) = span(&ram.aligned_inward());
        usize::try_from((end - first).div_ceil(64)).unwrap_or(usize::MAX)
    }

    /// Owns the whole pages of `ram`, all free.
    pub fn new(ram: &RangeSet, bitmap: &'a mut [u64]) -> Result<Self, Error> {
        let managed = ram.aligned_inward();
        let (base, end) = span(&managed);
        let needed = Self::bitmap_words(&managed);
        let got = bitmap.len();
        let bits = bitmap
            .get_mut(..needed)
            .ok_or(Error::BitmapTooSmall { needed, got })?;
        bits.fill(0);
        let mut this = Self {
            bits,
            base,
            end,
            managed,
            free: 0,
            hint: 0,
        };
        for r in managed.as_slice() {
            let (first, n) = (r.start / PAGE_SIZE, r.len() / PAGE_SIZE);
            this.fill(first, n, true);
            this.free += n;
        }
        Ok(this)
    }

    pub fn free_count(&self) -> u64 {
        self.free
    }

    /// The RAM this allocator owns (free or not).
    pub fn managed(&self) -> &RangeSet {
        &self.managed
    }

    /// Whether `mfn` is owned and free.
    pub fn is_free(&self, mfn: u64) -> bool {
        self.bit(mfn)
    }

    /// One free frame, lowest first.
    pub fn alloc(&mut self) -> Option<u64> {
        let found = self
            .bits
            .iter_mut()
            .enumerate()
            .skip(self.hint)
            .find(|(_, w)| **w != 0);
        let Some((w, word)) = found else {
            self.hint = self.bits.len();
            return None;
        };
        let b = word.trailing_zeros();
        *word &= !(1 << b);
        self.hint = w;
        self.free -= 1;
        Some(self.base + w as u64 * 64 + u64::from(b))
    }

    /// `count` contiguous free frames starting at a multiple of `align` (in frames; a power of
    /// two), lowest first. A linear scan: meant for boot and rare large allocations.
    pub fn alloc_contig(&mut self, count: u64, align: u64) -> Result<u64, Error> {
        if count == 0 || !align.is_power_of_two() {
            return Err(Error::BadRequest { count, align });
        }
        let oom = Error::OutOfMemory { count, align };
        if count > self.free {
            return Err(oom);
        }
        let from = self.base + self.hint as u64 * 64;
        let mut start = from.checked_next_multiple_of(align).ok_or(oom)?;
        while let Some(stop) = start.checked_add(count).filter(|&s| s <= self.end) {
            match (start..stop).find(|&mfn| !self.bit(mfn)) {
                Some(used) => {
                    start = (used + 1).checked_next_multiple_of(align).ok_or(oom)?;
                }
                None => {
                    self.fill(start, count, false);
                    self.free -= count;
                    return Ok(start);
                }
            }
        }
        Err(oom)
    }

    /// Gives back one frame.
    pub fn free(&mut self, mfn: u64) -> Result<(), Error> {
        self.free_contig(mfn, 1)
    }

    /// Gives back `count` frames from `mfn`; checks them all before changing anything.
    pub fn free_contig(&mut self, mfn: u64, count: u64) -> Result<(), Error> {
        let stop = mfn
            .checked_add(count)
            .ok_or(Error::NotRam { mfn: u64::MAX })?;
        for m in mfn..stop {
            if !self.owns(m) {
                return Err(Error::NotRam { mfn: m });
            }
            if self.bit(m) {
                return Err(Error::DoubleFree { mfn: m });
            }
        }
        self.fill(mfn, count, true);
        self.free += count;
        let word = usize::try_from((mfn.saturating_sub(self.base)) / 64).unwrap_or(usize::MAX);
        self.hint = self.hint.min(word);
        Ok(())
    }

    /// Takes the owned frames that `range` (bytes, widened to whole pages) touches out of the
    /// free pool and returns how many; frames that are not RAM are skipped. Fails with
    /// [`Error::InUse`], changing nothing, when one of them is allocated already.
    pub fn reserve(&mut self, range: Range) -> Result<u64, Error> {
        let r = range.align_outward();
        let managed = self.managed;
        let runs = managed.as_slice().iter().filter_map(|m| {
            let (lo, hi) = (
                m.start.max(r.start) / PAGE_SIZE,
                m.end.min(r.end) / PAGE_SIZE,
            );
            (lo < hi).then_some((lo, hi))
        });
        if let Some(mfn) = runs
            .clone()
            .flat_map(|(lo, hi)| lo..hi)
            .find(|&m| !self.bit(m))
        {
            return Err(Error::InUse { mfn });
        }
        let mut taken = 0;
        for (lo, hi) in runs {
            self.fill(lo, hi - lo, false);
            taken += hi - lo;
        }
        self.free -= taken;
        Ok(taken)
    }

    fn owns(&self, mfn: u64) -> bool {
        mfn.checked_mul(PAGE_SIZE)
            .is_some_and(|a| self.managed.contains(a))
    }

    /// Word index and mask of `mfn`'s bit; `None` outside the bitmap.
    fn locate(&self, mfn: u64) -> Option<(usize, u64)> {
        let i = mfn.checked_sub(self.base).filter(|_| mfn < self.end)?;
        Some((usize::try_from(i / 64).ok()?, 1 << (i % 64)))
    }

    fn bit(&self, mfn: u64) -> bool {
        self.locate(mfn)
            .and_then(|(w, m)| self.bits.get(w).map(|w| w & m != 0))
            == Some(true)
    }

    /// Sets (`free`) or clears the bits of frames `first..first + n`, a word at a time. Callers
    /// pass frames inside the bitmap; anything outside it is ignored.
    fn fill(&mut self, first: u64, n: u64, free: bool) {
        let (mut mfn, stop) = (first, first.saturating_add(n).min(self.end));
        while mfn < stop {
            let Some((w, low)) = self.locate(mfn) else {
                return;
            };
            let bits = (64 - low.trailing_zeros() as u64).min(stop - mfn);
            let mask = if bits == 64 {
                !0
            } else {
                ((1 << bits) - 1) * low
            };
            if let Some(word) = self.bits.get_mut(w) {
                *word = if free { *word | mask } else { *word & !mask };
            }
            mfn += bits;
        }
    }
}

#[cfg(test)]
#[path = "frame_alloc_tests.rs"]
mod tests;
