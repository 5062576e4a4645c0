//! The physical memory map: from the firmware's e820-style regions to page-aligned free RAM, and
//! boot-time placement of large structures (frame table, allocator bitmap) inside it.
//!
//! Flow at boot: [`normalise`] the multiboot map into usable RAM → [`max_frame`] sizes the frame
//! table → [`free_ranges`] removes what is taken (image, modules, MBI, the low 1 MiB) →
//! [`place`] carves the frame table and the allocator bitmap out of the free ranges → the rest
//! goes to `frame_alloc`.
//!
//! Invariants of a [`RangeSet`]: at most [`MAX_RANGES`] ranges, sorted, non-empty, disjoint and
//! not touching (touching ranges are merged); every operation that would break the capacity
//! fails with [`Error::TooManyRanges`] and leaves the set unchanged. The sets produced here are
//! page-aligned. Addresses are physical; all arithmetic is checked.

use core::fmt;

pub const PAGE_SIZE: u64 = 4096;
/// Capacity of a [`RangeSet`].
pub const MAX_RANGES: usize = 64;
/// Xen keeps the first MiB (BIOS data, EBDA, ROMs, the AP trampoline) out of the heap.
pub const LOW_MEMORY_END: u64 = 0x10_0000;
/// The early page tables identity-map 0–4 GiB; [`place`] stays below this.
pub const EARLY_MAP_LIMIT: u64 = 1 << 32;

/// A firmware memory type (ACPI/e820 numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Other(u32),
}

impl RegionKind {
    pub const fn from_e820(kind: u32) -> Self {
        match kind {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

/// One firmware memory-map entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub len: u64,
    pub kind: RegionKind,
}

/// A half-open physical range `[start, end)`; empty when `start >= end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// `None` when `base + len` overflows.
    pub fn from_base_len(base: u64, len: u64) -> Option<Self> {
        Some(Self::new(base, base.checked_add(len)?))
    }

    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// The smallest page-aligned range covering `self`.
    pub fn align_outward(&self) -> Self {
        let end = self
            .end
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX);
        Self::new(self.start & !(PAGE_SIZE - 1), end)
    }

    /// The largest page-aligned range inside `self` (empty if none).
    pub fn align_inward(&self) -> Self {
        let start = self
            .start
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX);
        Self::new(start, self.end & !(PAGE_SIZE - 1))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A firmware region whose `base + len` overflows.
    RegionOverflow { base: u64, len: u64 },
    /// The result needs more than [`MAX_RANGES`] ranges.
    TooManyRanges,
    /// [`place`] got a zero size or an alignment that is not a power of two.
    BadRequest { size: u64, align: u64 },
    /// No free range below the limit holds `size` bytes at `align`.
    NoFit { size: u64, align: u64 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RegionOverflow { base, len } => {
                write!(f, "memory map entry {base:#x}+{len:#x} overflows")
            }
            Self::TooManyRanges => write!(f, "memory map needs more than {MAX_RANGES} ranges"),
            Self::BadRequest { size, align } => {
                write!(f, "bad placement request: size {size:#x}, align {align:#x}")
            }
            Self::NoFit { size, align } => {
                write!(
                    f,
                    "no free memory for {size:#x} bytes aligned to {align:#x}"
                )
            }
        }
    }
}

/// A sorted set of disjoint, non-touching ranges with fixed capacity.
#[derive(Clone, Copy, Debug)]
pub struct RangeSet {
    ranges: [Range; MAX_RANGES],
    len: usize,
}

impl PartialEq for RangeSet {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for RangeSet {}

impl Default for RangeSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeSet {
    pub const fn new() -> Self {
        Self {
            ranges: [Range::new(0, 0); MAX_RANGES],
            len: 0,
        }
    }

    pub fn as_slice(&self) -> &[Range] {
        self.ranges.get(..self.len).unwrap_or_default()
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.as_slice().iter().map(Range::len).sum()
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.as_slice()
            .iter()
            .any(|r| r.start <= addr && addr < r.end)
    }

    /// Appends `r`, which must sort after (and not touch) every range already held.
    fn push(&mut self, r: Range) -> Result<(), Error> {
        let slot = self.ranges.get_mut(self.len).ok_or(Error::TooManyRanges)?;
        *slot = r;
        self.len += 1;
        Ok(())
    }

    /// Adds `add`, merging it with every range it overlaps or touches.
    pub fn insert(&mut self, mut add: Range) -> Result<(), Error> {
        if add.is_empty() {
            return Ok(());
        }
        let (mut out, mut placed) = (Self::new(), false);
        for &r in self.as_slice() {
            if r.end < add.start {
                out.push(r)?;
            } else if r.start > add.end {
                if !placed {
                    out.push(add)?;
                    placed = true;
                }
                out.push(r)?;
            } else {
                add = Range::new(add.start.min(r.start), add.end.max(r.end));
            }
        }
        if !placed {
            out.push(add)?;
        }
        *self = out;
        Ok(())
    }

    /// Removes `cut`, splitting a range that contains it.
    pub fn remove(&mut self, cut: Range) -> Result<(), Error> {
        if cut.is_empty() {
            return Ok(());
        }
        let mut out = Self::new();
        for &r in self.as_slice() {
            if r.end <= cut.start || r.start >= cut.end {
                out.push(r)?;
                continue;
            }
            if r.start < cut.start {
                out.push(Range::new(r.start, cut.start))?;
            }
            if r.end > cut.end {
                out.push(Range::new(cut.end, r.end))?;
            }
        }
        *self = out;
        Ok(())
    }

    /// The set shrunk to whole pages: ranges with none are dropped.
    pub fn aligned_inward(&self) -> Self {
        let mut out = Self::new();
        for r in self.as_slice().iter().map(Range::align_inward) {
            if !r.is_empty() {
                // Never more ranges than `self`, so this cannot run out of room.
                let _ = out.push(r);
            }
        }
        out
    }
}

/// Usable RAM from a firmware map: the union of usable regions, minus every other region
/// (reserved wins on overlap), shrunk to whole pages. Input order does not matter.
pub fn normalise(regions: &[Region]) -> Result<RangeSet, Error> {
    let range = |r: &Region| {
        Range::from_base_len(r.base, r.len).ok_or(Error::RegionOverflow {
            base: r.base,
            len: r.len,
        })
    };
    let mut ram = RangeSet::new();
    for r in regions.iter().filter(|r| r.kind == RegionKind::Usable) {
        ram.insert(range(r)?)?;
    }
    for r in regions.iter().filter(|r| r.kind != RegionKind::Usable) {
        ram.remove(range(r)?)?;
    }
    Ok(ram.aligned_inward())
}

/// Highest RAM frame number + 1: the number of entries a frame table indexed by MFN needs.
pub fn max_frame(ram: &RangeSet) -> u64 {
    ram.as_slice().last().map_or(0, |r| r.end / PAGE_SIZE)
}

/// Free RAM: `ram` minus everything below `low_end` (pass [`LOW_MEMORY_END`] to keep Xen's rule,
/// 0 to keep low memory) and minus each hole, widened to whole pages.
pub fn free_ranges(ram: &RangeSet, holes: &[Range], low_end: u64) -> Result<RangeSet, Error> {
    let mut free = *ram;
    free.remove(Range::new(0, low_end).align_outward())?;
    for hole in holes {
        free.remove(hole.align_outward())?;
    }
    Ok(free)
}

/// [`place_below`] under [`EARLY_MAP_LIMIT`], so the structure is reachable through the early
/// identity map before the direct map exists.
pub fn place(free: &mut RangeSet, size: u64, align: u64) -> Result<u64, Error> {
    place_below(free, size, align, EARLY_MAP_LIMIT)
}

/// Takes `size` bytes (rounded up to whole pages) at an `align`-aligned address (at least page
/// aligned) out of `free`, as high as possible with the end at or below `limit`, and returns the
/// start. High placement keeps low memory for what needs it (DMA, the guests' low frames).
pub fn place_below(free: &mut RangeSet, size: u64, align: u64, limit: u64) -> Result<u64, Error> {
    let bad = Error::BadRequest { size, align };
    if size == 0 || !align.is_power_of_two() {
        return Err(bad);
    }
    let align = align.max(PAGE_SIZE);
    let size = size.checked_next_multiple_of(PAGE_SIZE).ok_or(bad)?;
    let fit = free.as_slice().iter().rev().find_map(|r| {
        let start = r.end.min(limit).checked_sub(size)? & !(align - 1);
        (start >= r.start).then_some(start)
    });
    let start = fit.ok_or(Error::NoFit { size, align })?;
    // `start + size <= min(end, limit)`, so no overflow.
    free.remove(Range::new(start, start + size))?;
    Ok(start)
}

#[cfg(test)]
#[path = "memmap_tests.rs"]
mod tests;
