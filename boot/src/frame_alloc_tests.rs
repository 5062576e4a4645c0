//! Host tests of `frame_alloc`.
use super::*;
use std::collections::BTreeSet;

/// Frames 0x100..0x104 and 0x180..0x1c5 (crosses words, ends mid-word).
fn ram() -> RangeSet {
    let mut s = RangeSet::new();
    s.insert(Range::new(0x10_0000, 0x10_4000)).unwrap();
    s.insert(Range::new(0x18_0000, 0x1c_5000)).unwrap();
    s
}

fn all_frames() -> BTreeSet<u64> {
    (0x100..0x104).chain(0x180..0x1c5).collect()
}

#[test]
fn exhaust_free_and_realloc() {
    let mut bitmap = vec![!0u64; FrameAllocator::bitmap_words(&ram())];
    assert_eq!(bitmap.len(), 4); // frames 0x100..0x1c5
    let mut fa = FrameAllocator::new(&ram(), &mut bitmap).unwrap();
    assert_eq!(fa.free_count(), 4 + 0x45);
    let got: Vec<u64> = std::iter::from_fn(|| fa.alloc()).collect();
    assert_eq!(got, all_frames().into_iter().collect::<Vec<_>>()); // lowest first, once each
    assert_eq!((fa.free_count(), fa.alloc()), (0, None));
    fa.free(0x1c4).unwrap();
    fa.free(0x102).unwrap();
    assert_eq!(
        (fa.free_count(), fa.alloc(), fa.alloc(), fa.alloc()),
        (2, Some(0x102), Some(0x1c4), None)
    );
}

#[test]
fn bad_frees_are_errors() {
    let mut bitmap = vec![0u64; 4];
    let mut fa = FrameAllocator::new(&ram(), &mut bitmap).unwrap();
    assert_eq!(fa.free(0x100), Err(Error::DoubleFree { mfn: 0x100 }));
    let mfn = fa.alloc().unwrap();
    fa.free(mfn).unwrap();
    assert_eq!(fa.free(mfn), Err(Error::DoubleFree { mfn }));
    for mfn in [0, 0xff, 0x104, 0x17f, 0x1c5, 0x10_0000, u64::MAX] {
        assert_eq!(fa.free(mfn), Err(Error::NotRam { mfn }), "{mfn:#x}");
    }
    let count = fa.free_count();
    assert_eq!(fa.alloc_contig(3, 1), Ok(0x100));
    assert_eq!(
        fa.free_contig(0x101, 3),
        Err(Error::DoubleFree { mfn: 0x103 })
    );
    assert_eq!(fa.alloc(), Some(0x103));
    assert_eq!(fa.free_contig(0x101, 4), Err(Error::NotRam { mfn: 0x104 }));
    fa.free(0x103).unwrap();
    assert_eq!(fa.free_contig(0x100, 3), Ok(()));
    assert_eq!(
        fa.free_contig(0x100, 1),
        Err(Error::DoubleFree { mfn: 0x100 })
    );
    assert_eq!(
        fa.free_contig(u64::MAX, 2),
        Err(Error::NotRam { mfn: u64::MAX })
    );
    assert_eq!(fa.free_count(), count);
}

#[test]
fn contiguous_with_alignment() {
    let mut bitmap = vec![0u64; 4];
    let mut fa = FrameAllocator::new(&ram(), &mut bitmap).unwrap();
    assert_eq!(fa.alloc_contig(5, 1), Ok(0x180)); // 0x100..0x104 too short; no run over the hole
    assert_eq!(fa.alloc_contig(4, 1), Ok(0x100));
    assert_eq!(fa.alloc_contig(16, 16), Ok(0x190));
    assert_eq!(fa.alloc_contig(1, 64), Ok(0x1c0));
    assert_eq!(fa.alloc(), Some(0x185));
    // Free now: 0x186..0x190, 0x1a0..0x1c0, 0x1c1..0x1c5.
    let oom = |count, align| Err(Error::OutOfMemory { count, align });
    assert_eq!(fa.alloc_contig(33, 1), oom(33, 1));
    assert_eq!(fa.alloc_contig(4, 8), Ok(0x188));
    assert_eq!(fa.alloc_contig(32, 32), Ok(0x1a0));
    assert_eq!(fa.alloc_contig(4, 8), oom(4, 8));
    assert_eq!(fa.alloc_contig(4, 1), Ok(0x18c));
    assert_eq!(
        fa.alloc_contig(0, 1),
        Err(Error::BadRequest { count: 0, align: 1 })
    );
    assert_eq!(
        fa.alloc_contig(1, 3),
        Err(Error::BadRequest { count: 1, align: 3 })
    );
    assert_eq!(
        (fa.alloc_contig(4, 1), fa.alloc_contig(2, 2)),
        (Ok(0x1c1), Ok(0x186))
    );
    assert_eq!((fa.free_count(), fa.alloc_contig(1, 1)), (0, oom(1, 1)));
}

#[test]
fn reserve_takes_only_free_ram() {
    let mut bitmap = vec![0u64; 4];
    let mut fa = FrameAllocator::new(&ram(), &mut bitmap).unwrap();
    // Bytes 0x103_800..0x181_001 widen to frames 0x103..0x182; frames 0x104..0x180 are not RAM.
    assert_eq!(fa.reserve(Range::new(0x10_3800, 0x18_1001)), Ok(3));
    assert!(!fa.is_free(0x103) && !fa.is_free(0x181) && fa.is_free(0x182));
    assert_eq!(
        fa.reserve(Range::new(0x18_0000, 0x18_3000)),
        Err(Error::InUse { mfn: 0x180 })
    );
    assert!(fa.is_free(0x182)); // nothing changed
    assert_eq!(fa.reserve(Range::new(0x200_0000, 0x300_0000)), Ok(0));
    assert_eq!(fa.free_count(), 0x49 - 3);
    fa.free(0x181).unwrap();
    assert_eq!(fa.alloc(), Some(0x100));
}

#[test]
fn construction() {
    let mut small = vec![0u64; 3];
    let err = FrameAllocator::new(&ram(), &mut small).unwrap_err();
    assert_eq!(err, Error::BitmapTooSmall { needed: 4, got: 3 });
    let mut empty: [u64; 0] = [];
    let mut fa = FrameAllocator::new(&RangeSet::new(), &mut empty).unwrap();
    assert_eq!((fa.free_count(), fa.alloc()), (0, None));
    assert_eq!(
        fa.alloc_contig(1, 1),
        Err(Error::OutOfMemory { count: 1, align: 1 })
    );
    // Partial pages are not RAM.
    let mut ragged = RangeSet::new();
    ragged.insert(Range::new(0x1800, 0x4800)).unwrap();
    let mut bitmap = [!0u64; 1];
    let mut fa = FrameAllocator::new(&ragged, &mut bitmap).unwrap();
    assert_eq!(fa.managed().as_slice(), [Range::new(0x2000, 0x4000)]);
    assert_eq!(
        (fa.alloc(), fa.alloc(), fa.alloc()),
        (Some(2), Some(3), None)
    );
    assert_eq!(bitmap, [0]);
}

/// Random alloc/free against a set model.
#[test]
fn matches_a_model() {
    let mut bitmap = vec![0u64; 4];
    let mut fa = FrameAllocator::new(&ram(), &mut bitmap).unwrap();
    let (mut used, mut seed) = (BTreeSet::new(), 0x2545_f491_4f6c_dd1d_u64);
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        if seed % 3 == 0 && !used.is_empty() {
            let mfn = *used.iter().nth((seed >> 8) as usize % used.len()).unwrap();
            fa.free(mfn).unwrap();
            used.remove(&mfn);
        } else if let Some(mfn) = fa.alloc() {
            let lowest = all_frames().difference(&used).next().copied();
            assert_eq!(Some(mfn), lowest);
            used.insert(mfn);
        } else {
            assert_eq!(used, all_frames());
        }
        assert_eq!(fa.free_count(), 0x49 - used.len() as u64);
    }
}
