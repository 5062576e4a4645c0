//! Spec §8.3 cases 29–38 and 40: upper levels, linear page tables, the hypervisor's L4 slots.

mod mm_common;
use mm_common::*;

const EINVAL: i64 = 22;

#[test]
fn spec_08_29_pse_at_l2_and_l3_is_refused() {
    let w = World::new(6);
    w.pin(0, Level::L2).unwrap();
    w.pin(1, Level::L3).unwrap();
    fails(
        w.set(0, Level::L2, 0, pte(2, PTE_P | PTE_PSE)),
        MmError::Superpage,
        EINVAL,
    );
    fails(
        w.set(1, Level::L3, 0, pte(2, PTE_P | PTE_PSE)),
        MmError::Superpage,
        EINVAL,
    );
    w.kit.write(3, 0, pte(2, PTE_P | PTE_PSE));
    fails(w.pin(3, Level::L2), MmError::Superpage, EINVAL);
    assert_eq!((w.g(2), w.c(2)), (1, 0));
    w.clean();
}

#[test]
fn spec_08_30_g_pwt_pcd_at_l2_l3_l4_are_refused() {
    let w = World::new(8);
    let tables = [(0, Level::L2), (1, Level::L3), (2, Level::L4)];
    for (t, level) in tables {
        w.pin(t, level).unwrap();
    }
    for (t, level) in tables {
        for bad in [PTE_G, PTE_PWT, PTE_PCD] {
            fails(
                w.set(t, level, 0, pte(5, PTE_P | bad)),
                MmError::BadFlags,
                EINVAL,
            );
        }
    }
    fails(
        w.set(2, Level::L4, 0, pte(5, PTE_P | PTE_PSE)),
        MmError::BadFlags,
        EINVAL,
    );
    assert_eq!((w.g(5), w.c(5)), (1, 0));
    w.clean();
}

#[test]
fn spec_08_31_hypervisor_l4_slots_are_not_guest_writable() {
    let w = World::new(4);
    w.pin(0, Level::L4).unwrap();
    for slot in XEN_L4_SLOTS {
        fails(
            w.set(0, Level::L4, slot, pte(1, PTE_P)),
            MmError::XenSlot,
            EINVAL,
        );
        fails(w.set(0, Level::L4, slot, 0), MmError::XenSlot, EINVAL);
    }
    w.set(0, Level::L4, 255, pte(1, PTE_P)).unwrap();
    w.set(0, Level::L4, 272, pte(1, PTE_P)).unwrap();
    assert_eq!((w.ty(1), w.c(1)), (PageType::L3, 2));
    assert_eq!(
        w.read(0, 255),
        pte(1, PTE_P | PTE_US | PTE_A),
        "L4 entries get US and A"
    );
    w.clean();
}

#[test]
fn spec_08_32_pinning_an_l4_overwrites_garbage_in_the_xen_slots() {
    let w = World::new(4);
    for slot in XEN_L4_SLOTS {
        w.kit
            .write(0, slot, pte(0xDEAD, PTE_P | PTE_RW | PTE_PCD | PTE_PSE));
    }
    w.pin(0, Level::L4).unwrap();
    for slot in XEN_L4_SLOTS {
        assert_eq!(
            w.read(0, slot),
            test_xen_l4_slot(Mfn(0), slot),
            "slot {slot}"
        );
    }
    assert_eq!(
        frame_of(w.read(0, XEN_L4_SLOT_SELF)),
        0,
        "slot 258 maps the L4 itself"
    );
    assert_eq!(
        (w.g(0), w.c(0)),
        (2, 1),
        "the hypervisor slots hold no references"
    );
    w.clean();
    w.unpin(0).unwrap();
    assert_eq!((w.g(0), w.c(0)), (1, 0));
    w.clean();
}

#[test]
fn spec_08_33_l4_self_map_ro_takes_nothing_rw_is_refused() {
    let w = World::new(4);
    w.pin(0, Level::L4).unwrap();
    let before = w.s(0);
    let tok = w.set_tok(0, Level::L4, 0, pte(0, PTE_P)).unwrap();
    assert_eq!(tok.released, None);
    assert_eq!(w.s(0), before, "no G/C change");
    fails(
        w.set(0, Level::L4, 1, pte(0, PTE_P | PTE_RW)),
        MmError::LinearWritable,
        EINVAL,
    );
    assert_eq!(
        w.t().linear_count(Mfn(0)),
        Ok(0),
        "self-maps are not counted"
    );
    w.set(0, Level::L4, 0, 0).unwrap();
    assert_eq!(w.s(0), before);
    w.clean();
}

#[test]
fn spec_08_34_xsa_182_adding_rw_to_a_self_map_is_not_a_fast_path() {
    let w = World::new(4);
    w.pin(0, Level::L4).unwrap();
    w.set(0, Level::L4, 7, pte(0, PTE_P)).unwrap();
    let ro = w.read(0, 7);
    fails(
        w.set(0, Level::L4, 7, ro | PTE_RW),
        MmError::LinearWritable,
        EINVAL,
    );
    assert_eq!(w.read(0, 7), ro, "entry stays read-only");
    w.clean();
}

#[test]
fn spec_08_35_xsa_148_adding_pse_to_an_l2_entry_is_refused() {
    let w = World::new(4);
    w.pin(0, Level::L2).unwrap();
    w.set(0, Level::L2, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    let good = w.read(0, 0);
    fails(
        w.set(0, Level::L2, 0, good | PTE_PSE),
        MmError::Superpage,
        EINVAL,
    );
    assert_eq!(w.read(0, 0), good);
    assert_eq!((w.ty(1), w.c(1)), (PageType::L1, 1));
    w.clean();
}

#[test]
fn spec_08_36_xsa_240_linear_chains_are_refused() {
    // A, B, C, D: pinned empty L2s.
    let (a, b, c, d) = (0, 1, 2, 3);
    let w = World::new(5);
    for t in [a, b, c, d] {
        w.pin(t, Level::L2).unwrap();
    }
    w.set(a, Level::L2, 0, pte(b, PTE_P)).unwrap();
    assert_eq!(w.t().linear_count(Mfn(a)), Ok(1));
    assert_eq!(w.t().linear_count(Mfn(b)), Ok(-1));
    fails(
        w.set(c, Level::L2, 0, pte(a, PTE_P)),
        MmError::LinearChain,
        EINVAL,
    );
    fails(
        w.set(b, Level::L2, 0, pte(d, PTE_P)),
        MmError::LinearChain,
        EINVAL,
    );
    fails(
        w.set(a, Level::L2, 1, pte(b, PTE_P | PTE_RW)),
        MmError::LinearWritable,
        EINVAL,
    );
    // Self-maps are exempt from the counters.
    w.set(b, Level::L2, 1, pte(b, PTE_P)).unwrap();
    w.set(a, Level::L2, 2, pte(a, PTE_P)).unwrap();
    w.clean();
    // Removing the linear entry lifts the restriction.
    w.set(a, Level::L2, 0, 0).unwrap();
    w.set(c, Level::L2, 0, pte(a, PTE_P)).unwrap();
    w.set(b, Level::L2, 0, pte(d, PTE_P)).unwrap();
    w.clean();
    // Linear entries are refused when the domain has them disabled, self-maps included.
    let mut off = TestDomain::new(DOM);
    off.linear_pt = false;
    let t = w.t();
    fails(
        t.mod_entry(&w.kit.mem, &off, Mfn(c), Level::L2, 9, pte(d, PTE_P), false),
        MmError::LinearDisabled,
        EINVAL,
    );
    fails(
        t.mod_entry(&w.kit.mem, &off, Mfn(c), Level::L2, 9, pte(c, PTE_P), false),
        MmError::LinearDisabled,
        EINVAL,
    );
}

#[test]
fn spec_08_37_linear_entry_to_another_domains_l2_is_refused() {
    let kit = Kit::new(4);
    kit.assign_range(0..2, DOM);
    kit.assign_range(2..4, 2);
    let w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    let other = TestDomain::new(2);
    w.pin(0, Level::L2).unwrap();
    w.pin_as(&other, 2, Level::L2).unwrap();
    fails(
        w.set(0, Level::L2, 0, pte(2, PTE_P)),
        MmError::BadChild,
        EINVAL,
    );
    assert_eq!((w.g(2), w.c(2)), (2, 1));
    w.clean();
}

#[test]
fn spec_08_38_unvalidated_former_l2_is_retyped_as_l1() {
    let w = World::new(8);
    // Frame 1: once an L2, now C = 0, contents valid as an L1.
    w.kit.write(1, 0, pte(5, PTE_P));
    w.pin(1, Level::L2).unwrap();
    w.unpin(1).unwrap();
    assert_eq!((w.ty(1), w.c(1)), (PageType::L2, 0));
    // Frame 2: once an L2, now with contents that are invalid as an L1.
    w.pin(2, Level::L2).unwrap();
    w.unpin(2).unwrap();
    w.data_write(2, 0, pte(5, PTE_P | PTE_PCD)).unwrap();
    w.pin(0, Level::L2).unwrap();
    w.set(0, Level::L2, 0, pte(1, PTE_P)).unwrap();
    assert_eq!(
        (w.ty(1), w.c(1), w.s(1).validated()),
        (PageType::L1, 1, true)
    );
    assert_eq!(
        w.t().linear_count(Mfn(0)),
        Ok(0),
        "a child, not a linear entry"
    );
    fails(
        w.set(0, Level::L2, 1, pte(2, PTE_P)),
        MmError::CacheAttr,
        EINVAL,
    );
    assert_eq!((w.ty(2), w.c(2), w.g(2)), (PageType::None, 0, 1));
    w.clean();
}

#[test]
fn spec_08_40_higher_level_targets_are_never_allowed() {
    let w = World::new(6);
    w.pin(0, Level::L4).unwrap();
    w.pin(1, Level::L3).unwrap();
    w.pin(2, Level::L2).unwrap();
    fails(
        w.set(1, Level::L3, 0, pte(0, PTE_P)),
        MmError::TypeMismatch,
        EINVAL,
    );
    fails(
        w.set(2, Level::L2, 0, pte(1, PTE_P)),
        MmError::TypeMismatch,
        EINVAL,
    );
    fails(
        w.set(2, Level::L2, 0, pte(0, PTE_P)),
        MmError::TypeMismatch,
        EINVAL,
    );
    assert_eq!((w.g(0), w.c(0), w.g(1), w.c(1)), (2, 1, 2, 1));
    w.clean();
}

#[test]
fn four_level_tree_builds_and_tears_down_to_nothing() {
    // L4 0 -> L3 1 -> L2 2 -> L1 3 -> data 4 (RW) and 5 (RO); L2 2 also maps L1 3 twice.
    let w = World::new(8);
    w.kit.write(3, 0, pte(4, PTE_P | PTE_RW));
    w.kit.write(3, 1, pte(5, PTE_P));
    w.kit.write(2, 0, pte(3, PTE_P | PTE_RW));
    w.kit.write(2, 1, pte(3, PTE_P));
    w.kit.write(1, 0, pte(2, PTE_P));
    w.kit.write(0, 0, pte(1, PTE_P));
    w.pin(0, Level::L4).unwrap();
    let expect = [
        (0, PageType::L4, 1),
        (1, PageType::L3, 1),
        (2, PageType::L2, 1),
        (3, PageType::L1, 2),
    ];
    for (f, ty, c) in expect {
        assert_eq!(
            (w.ty(f), w.c(f), w.s(f).validated()),
            (ty, c, true),
            "frame {f}"
        );
    }
    assert_eq!((w.ty(4), w.c(4), w.g(5)), (PageType::Writable, 1, 2));
    assert_eq!(w.dom.retypes(), 5, "each frame retyped once");
    w.clean();
    let tok = w.set_tok(1, Level::L3, 0, 0).unwrap();
    assert!(tok.needs_flush());
    for f in 2..6 {
        assert_eq!((w.g(f), w.c(f)), (1, 0), "frame {f} released recursively");
    }
    w.unpin(0).unwrap();
    for f in 0..8 {
        assert_eq!((w.g(f), w.c(f)), (1, 0), "frame {f}");
    }
    w.clean();
}

#[test]
fn repointing_an_entry_at_the_same_table_never_devalidates_it() {
    // New references are taken before old ones are dropped: toggling RW on the only L2 entry
    // pointing at L1 1 must not let its type count touch 0 (which would stamp it).
    let w = World::new(4);
    w.kit.write(1, 0, pte(2, PTE_P | PTE_RW));
    w.kit.write(0, 0, pte(1, PTE_P));
    w.pin(0, Level::L2).unwrap();
    let _ = w.kit.clock.tick();
    let stamp = w.t().stamp(Mfn(1)).unwrap();
    let tok = w.set_tok(0, Level::L2, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    assert!(!tok.fast_path);
    assert_eq!(tok.released, Some(Mfn(1)));
    assert_eq!(w.t().stamp(Mfn(1)), Ok(stamp), "never de-validated");
    assert_eq!((w.c(1), w.c(2)), (1, 1));
    w.clean();
}

#[test]
fn spec_08_39_linear_pt_disabled_refuses_every_same_level_entry() {
    let mut w = World::new(4);
    w.dom.linear_pt = false;
    w.pin(0, Level::L4).unwrap();
    let before = w.s(0);
    // A read-only self-map, accepted when linear page tables are on (case 33), is refused.
    let err = w.set(0, Level::L4, 0, pte(0, PTE_P)).unwrap_err();
    assert_eq!(err.errno(), EINVAL, "self-map with linear-pt off: {err:?}");
    assert_eq!(w.s(0), before, "a refused entry changes no count");
    assert_eq!(w.read(0, 0), 0, "the entry stays empty");
    w.clean();
}
