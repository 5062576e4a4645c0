//! Host tests of `memmap`.
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
