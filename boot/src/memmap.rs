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
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn region(start: u64, end: u64, kind: u32) -> Region {
        Region {
            base: start,
            len: end - start,
            kind: RegionKind::from_e820(kind),
        }
    }

    fn set(ranges: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::new();
        ranges
            .iter()
            .for_each(|&(a, b)| s.insert(Range::new(a, b)).unwrap());
        s
    }

    fn pairs(s: &RangeSet) -> Vec<(u64, u64)> {
        s.as_slice().iter().map(|r| (r.start, r.end)).collect()
    }

    /// QEMU's map with 128 MiB (boot-notes §2).
    fn qemu_map() -> [Region; 6] {
        [
            region(0, 0x9fc00, 1),
            region(0x9fc00, 0xa0000, 2),
            region(0xf0000, 0x100000, 2),
            region(0x100000, 0x7fe0000, 1),
            region(0x7fe0000, 0x8000000, 2),
            region(0xfffc0000, 0x1_0000_0000, 2),
        ]
    }

    #[test]
    fn qemu_map_normalises_to_page_aligned_ram() {
        let ram = normalise(&qemu_map()).unwrap();
        assert_eq!(pairs(&ram), [(0, 0x9f000), (0x100000, 0x7fe0000)]);
        assert_eq!(max_frame(&ram), 0x7fe0);
        let mut reversed = qemu_map();
        reversed.reverse();
        assert_eq!(normalise(&reversed).unwrap(), ram);
    }

    #[test]
    fn usable_ranges_merge_and_reserved_wins() {
        let map = [
            region(0x100000, 0x200000, 1),
            region(0x200000, 0x300000, 1), // touching: merged
            region(0x280000, 0x400800, 1), // overlapping, ragged end
            region(0x300100, 0x300200, 2), // reserved inside usable: both pages lost
            region(0x500000, 0x600000, 3), // ACPI reclaimable is not RAM here
            region(0x500000, 0x580000, 1), // usable overlapping ACPI: ACPI wins
            region(0x800000, 0x800000, 1), // empty
        ];
        let ram = normalise(&map).unwrap();
        assert_eq!(pairs(&ram), [(0x100000, 0x300000), (0x301000, 0x400000)]);
        assert_eq!(ram.total(), 0x2ff000);
        assert!(ram.contains(0x2fffff) && !ram.contains(0x300000) && !ram.contains(0x400000));
        assert_eq!(normalise(&[]).unwrap(), RangeSet::new());
        assert_eq!(max_frame(&RangeSet::new()), 0);
    }

    #[test]
    fn overflow_and_capacity_are_errors() {
        let over = Region {
            base: u64::MAX - 10,
            len: 11,
            kind: RegionKind::Reserved,
        };
        let err = Err(Error::RegionOverflow {
            base: u64::MAX - 10,
            len: 11,
        });
        assert_eq!(normalise(&[region(0, 0x1000, 1), over]), err);
        let many: Vec<_> = (0..=MAX_RANGES as u64)
            .map(|i| region(i * 0x2000, i * 0x2000 + 0x1000, 1))
            .collect();
        assert_eq!(
            normalise(&many[..MAX_RANGES]).unwrap().as_slice().len(),
            MAX_RANGES
        );
        assert_eq!(normalise(&many), Err(Error::TooManyRanges));
        // A split that does not fit leaves the set as it was.
        let mut full = normalise(&many[..MAX_RANGES]).unwrap();
        let before = full;
        assert_eq!(
            full.remove(Range::new(0x400, 0x800)),
            Err(Error::TooManyRanges)
        );
        assert_eq!(full, before);
    }

    #[test]
    fn insert_and_remove() {
        let mut s = set(&[(10, 20), (30, 40), (50, 60)]);
        s.insert(Range::new(20, 30)).unwrap();
        assert_eq!(pairs(&s), [(10, 40), (50, 60)]);
        s.insert(Range::new(0, 5)).unwrap();
        s.insert(Range::new(70, 80)).unwrap();
        s.insert(Range::new(45, 48)).unwrap();
        assert_eq!(pairs(&s), [(0, 5), (10, 40), (45, 48), (50, 60), (70, 80)]);
        s.insert(Range::new(3, 75)).unwrap();
        assert_eq!(pairs(&s), [(0, 80)]);
        s.remove(Range::new(10, 20)).unwrap();
        s.remove(Range::new(70, 90)).unwrap();
        s.remove(Range::new(0, 1)).unwrap();
        assert_eq!(pairs(&s), [(1, 10), (20, 70)]);
        s.remove(Range::new(50, 40)).unwrap(); // inverted: empty, no effect
        s.insert(Range::new(90, 85)).unwrap();
        assert_eq!(pairs(&s), [(1, 10), (20, 70)]);
        s.remove(Range::new(0, 100)).unwrap();
        assert!(s.as_slice().is_empty());
    }

    #[test]
    fn free_ranges_subtract_holes_and_low_memory() {
        let ram = normalise(&qemu_map()).unwrap();
        let image = Range::new(0x200000, 0x32f000);
        let (mod_a, mod_b) = (
            Range::new(0x330000, 0x330011),
            Range::new(0x331000, 0x331011),
        );
        let holes = [image, mod_a, mod_b, Range::new(0x9500, 0x9574)];
        let free = free_ranges(&ram, &holes, LOW_MEMORY_END).unwrap();
        assert_eq!(
            pairs(&free),
            [
                (0x100000, 0x200000),
                (0x32f000, 0x330000),
                (0x332000, 0x7fe0000)
            ]
        );
        let free = free_ranges(&ram, &holes, 0).unwrap();
        assert_eq!(pairs(&free)[..2], [(0, 0x9000), (0xa000, 0x9f000)]);
        let free = free_ranges(&ram, &[Range::new(0x7fdf001, u64::MAX)], 0x100001).unwrap();
        assert_eq!(pairs(&free), [(0x101000, 0x7fdf000)]);
    }

    #[test]
    fn place_prefers_the_highest_fit_below_4_gib() {
        // RAM below and above 4 GiB, as QEMU gives with large -m.
        let mut free = set(&[(MIB, 0xbffe_0000), (0x1_0000_0000, 0x2_4000_0000)]);
        let a = place(&mut free, 3 * MIB + 1, 2 * MIB).unwrap();
        assert_eq!(a, 0xbfc0_0000); // 3 MiB + 1 rounds up to 3 MiB + 4 KiB
        assert_eq!(
            pairs(&free)[..2],
            [(MIB, 0xbfc0_0000), (0xbff0_1000, 0xbffe_0000)]
        );
        let b = place(&mut free, 0x1000, 1).unwrap();
        assert_eq!(b, 0xbffd_f000);
        let c = place_below(&mut free, 0x10_0000, 0x1000, u64::MAX).unwrap();
        assert_eq!(c, 0x2_3ff0_0000);
        assert_eq!(
            free.total(),
            0xbffe_0000 - MIB + 0x1_4000_0000 - 0x30_1000 - 0x1000 - 0x10_0000
        );
    }

    #[test]
    fn place_errors() {
        let bad = |size, align| Err(Error::BadRequest { size, align });
        let no_fit = |size, align| Err(Error::NoFit { size, align });
        let mut free = set(&[(MIB, 2 * MIB), (3 * MIB, 4 * MIB)]);
        let before = free;
        assert_eq!(place(&mut free, 0, 1), bad(0, 1));
        assert_eq!(place(&mut free, 1, 3), bad(1, 3));
        assert_eq!(place(&mut free, u64::MAX, 1), bad(u64::MAX, 1));
        assert_eq!(place(&mut free, MIB + 1, 1), no_fit(MIB + 0x1000, 0x1000));
        assert_eq!(place(&mut free, MIB, 4 * MIB), no_fit(MIB, 4 * MIB));
        assert_eq!(free, before);
        assert_eq!(place_below(&mut free, MIB, 1, 4 * MIB - 1), Ok(MIB));
        assert_eq!(free, set(&[(3 * MIB, 4 * MIB)]));
        assert_eq!(place(&mut free, MIB, MIB), Ok(3 * MIB));
        assert_eq!(place(&mut free, 1, 1), no_fit(0x1000, 0x1000));
    }
}
