//! Spec §8.1 cases 1–11: the type system and pinning, at the frame-table layer.

mod mm_common;
use mm_common::*;

const EINVAL: i64 = 22;
const EBUSY: i64 = 16;

#[test]
fn spec_08_01_pin_l1_of_rw_mapped_frame_fails() {
    let w = World::new(4);
    w.kit.write(0, 0, pte(1, PTE_P | PTE_RW));
    w.pin(0, Level::L1).unwrap();
    let before = w.s(1);
    assert_eq!(
        (before.ty(), before.type_count(), before.general()),
        (PageType::Writable, 1, 2)
    );
    fails(w.pin(1, Level::L1), MmError::TypeMismatch, EINVAL);
    assert_eq!(w.s(1), before, "type and counts unchanged");
    w.clean();
}

#[test]
fn spec_08_02_pin_l1_mapping_itself_rw_fails_busy() {
    let w = World::new(4);
    w.kit.write(0, 3, pte(2, PTE_P)); // a good entry before the bad one
    w.kit.write(0, 7, pte(0, PTE_P | PTE_RW));
    fails(w.pin(0, Level::L1), MmError::WritableBusy, EBUSY);
    let s = w.s(0);
    assert_eq!(
        (s.type_count(), s.general(), s.validated()),
        (0, 1, false),
        "untyped afterwards"
    );
    assert_eq!(
        w.g(2),
        1,
        "reference of the entry before the bad one given back"
    );
    w.clean();
}

#[test]
fn spec_08_03_pin_l1_mapping_itself_ro_succeeds() {
    let w = World::new(4);
    w.kit.write(0, 7, pte(0, PTE_P));
    w.pin(0, Level::L1).unwrap();
    let s = w.s(0);
    assert_eq!(
        (s.ty(), s.type_count(), s.general(), s.validated()),
        (PageType::L1, 1, 3, true)
    );
    assert!(s.pinned());
    // Stored adjusted (a kernel mapping: US and _PAGE_GUEST_KERNEL).
    assert_eq!(w.read(0, 7), pte(0, PTE_P | PTE_US | PTE_GUEST_KERNEL));
    w.clean();
}

#[test]
fn spec_08_04_second_pin_fails_and_changes_nothing() {
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    let once = w.s(0);
    assert_eq!((once.general(), once.type_count()), (2, 1));
    fails(w.pin(0, Level::L1), MmError::AlreadyPinned, EINVAL);
    assert_eq!(w.s(0), once, "C and G stay one above the unpinned values");
    fails(w.pin(0, Level::L2), MmError::TypeMismatch, EINVAL);
    assert_eq!(w.s(0), once);
    w.clean();
}

#[test]
fn spec_08_05_unpin_of_unpinned_frame_fails() {
    let w = World::new(4);
    fails(w.unpin(0), MmError::NotPinned, EINVAL);
    w.pin(0, Level::L1).unwrap();
    w.unpin(0).unwrap();
    fails(w.unpin(0), MmError::NotPinned, EINVAL);
    assert_eq!(w.s(0).general(), 1);
    w.clean();
}

#[test]
fn spec_08_06_pin_l1_with_pcd_entry_fails_without_leaks() {
    let w = World::new(8);
    for i in 0..5 {
        w.kit.write(0, i, pte(1 + i as u64, PTE_P | PTE_RW));
    }
    w.kit.write(0, 5, pte(6, PTE_P | PTE_PCD));
    fails(w.pin(0, Level::L1), MmError::CacheAttr, EINVAL);
    for f in 1..=6 {
        assert_eq!(
            (w.g(f), w.c(f)),
            (1, 0),
            "frame {f}: every reference released"
        );
    }
    assert_eq!(w.c(0), 0);
    w.clean();
    // With I/O capabilities the same table is fine.
    let mut io = TestDomain::new(DOM);
    io.io_caps = true;
    w.pin_as(&io, 0, Level::L1).unwrap();
    w.clean();
}

#[test]
fn spec_08_07_rw_mapping_of_pinned_l2_fails_ro_succeeds() {
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    w.pin(1, Level::L2).unwrap();
    fails(
        w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW)),
        MmError::WritableBusy,
        EBUSY,
    );
    assert_eq!(w.read(0, 0), 0);
    w.set(0, Level::L1, 0, pte(1, PTE_P)).unwrap();
    assert_eq!((w.g(1), w.c(1)), (3, 1));
    w.clean();
}

#[test]
fn spec_08_08_unpin_referenced_l1_then_clear_l2_entry_devalidates() {
    let w = World::new(6);
    w.kit.write(0, 0, pte(2, PTE_P | PTE_RW));
    w.kit.write(0, 1, pte(3, PTE_P));
    w.kit.write(1, 0, pte(0, PTE_P));
    w.pin(0, Level::L1).unwrap();
    w.pin(1, Level::L2).unwrap();
    assert_eq!(w.c(0), 2);
    w.unpin(0).unwrap();
    let s = w.s(0);
    assert_eq!(
        (s.type_count(), s.validated(), s.pinned()),
        (1, true, false)
    );
    assert_eq!((w.g(2), w.c(2), w.g(3)), (2, 1, 2));
    for _ in 0..3 {
        let _ = w.kit.clock.tick();
    }
    let now = w.kit.clock.now();
    let tok = w.set_tok(1, Level::L2, 0, 0).unwrap();
    assert!(tok.needs_flush(), "an L2 change must be flushed");
    assert_eq!(tok.released, Some(Mfn(0)));
    let s = w.s(0);
    assert_eq!(
        (s.type_count(), s.validated(), s.ty(), s.general()),
        (0, false, PageType::L1, 1)
    );
    assert_eq!(
        (w.g(2), w.c(2), w.g(3)),
        (1, 0, 1),
        "all child references dropped"
    );
    assert_eq!(w.t().stamp(Mfn(0)), Ok(now), "stamped at C 1 -> 0");
    w.clean();
}

#[test]
fn spec_08_09_map_former_l1_rw_retypes_and_reports_the_change() {
    let w = World::new(6);
    w.kit.write(1, 0, pte(0, PTE_P));
    w.pin(1, Level::L2).unwrap();
    let _ = w.kit.clock.tick();
    w.set(1, Level::L2, 0, 0).unwrap();
    let stamp = w.t().stamp(Mfn(0)).unwrap();
    assert_eq!(w.s(0).ty(), PageType::L1);
    let before = w.dom.retypes();
    w.pin(2, Level::L1).unwrap();
    w.set(2, Level::L1, 0, pte(0, PTE_P | PTE_RW)).unwrap();
    assert_eq!(
        w.dom.retypes(),
        before + 2,
        "frame 2 (none -> L1) and frame 0 (L1 -> writable)"
    );
    let change = w.dom.last_retype().unwrap();
    assert_eq!(change.mfn, Mfn(0));
    assert_eq!(
        (change.old_type, change.new_type),
        (PageType::L1, PageType::Writable)
    );
    assert_eq!(change.stamp, stamp);
    assert!(change.old_was_page_table());
    assert_eq!((w.ty(0), w.c(0)), (PageType::Writable, 1));
    // Same type again at C 0 -> 1: no change to report.
    w.set(2, Level::L1, 0, 0).unwrap();
    w.set(2, Level::L1, 0, pte(0, PTE_P | PTE_RW)).unwrap();
    assert_eq!(w.dom.retypes(), before + 2);
    w.clean();
}

#[test]
fn spec_08_10_unused_l4_referenced_as_l3_validates_only_as_l3() {
    let w = World::new(6);
    w.pin(0, Level::L4).unwrap();
    w.unpin(0).unwrap();
    assert_eq!((w.ty(0), w.c(0)), (PageType::L4, 0));
    w.pin(1, Level::L4).unwrap();
    // The old L4's Xen slots are ordinary (invalid) entries at L3.
    fails(
        w.set(1, Level::L4, 0, pte(0, PTE_P)),
        MmError::BadChild,
        EINVAL,
    );
    assert_eq!((w.c(0), w.g(0), w.ty(0)), (0, 1, PageType::None));
    for slot in XEN_L4_SLOTS {
        w.data_write(0, slot, 0).unwrap();
    }
    w.set(1, Level::L4, 0, pte(0, PTE_P)).unwrap();
    assert_eq!((w.ty(0), w.c(0)), (PageType::L3, 1));
    w.clean();
}

#[test]
fn spec_08_11_linear_use_count_overflows_at_32769() {
    // Frame 0: the target L2; 1..=64: L2s whose 512 entries all point at it; 65: one more.
    let w = World::new(67);
    w.pin(0, Level::L2).unwrap();
    for t in 1..=64u64 {
        for i in 0..512 {
            w.kit.write(t, i, pte(0, PTE_P));
        }
        w.pin(t, Level::L2).unwrap();
    }
    assert_eq!(w.t().linear_count(Mfn(0)), Ok(-32768));
    assert_eq!(w.t().linear_count(Mfn(1)), Ok(512));
    assert_eq!((w.g(0), w.c(0)), (2 + 32768, 1 + 32768));
    w.pin(65, Level::L2).unwrap();
    fails(
        w.set(65, Level::L2, 0, pte(0, PTE_P)),
        MmError::LinearOverflow,
        EINVAL,
    );
    w.kit.write(66, 0, pte(0, PTE_P));
    fails(w.pin(66, Level::L2), MmError::LinearOverflow, EINVAL);
    w.clean();
    // Dropping one use makes room for exactly one.
    w.set(1, Level::L2, 0, 0).unwrap();
    w.set(65, Level::L2, 0, pte(0, PTE_P)).unwrap();
    fails(
        w.set(65, Level::L2, 1, pte(0, PTE_P)),
        MmError::LinearOverflow,
        EINVAL,
    );
    w.clean();
    // Tearing everything down returns every counter to zero.
    for t in 1..=65 {
        w.unpin(t).unwrap();
    }
    w.unpin(0).unwrap();
    for f in 0..67 {
        assert_eq!(
            (w.g(f), w.c(f), w.t().linear_count(Mfn(f))),
            (1, 0, Ok(0)),
            "frame {f}"
        );
    }
    w.clean();
}
