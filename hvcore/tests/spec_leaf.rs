//! Spec §8.2 (leaf validation) cases 17, 22, 24, 25, 28 and §8.3 cases 42–43 (L1 fast path and
//! PRESERVE_AD), plus the L1 not-present path and I/O frames.

mod mm_common;
use mm_common::*;

const EPERM: i64 = 1;
const EBUSY: i64 = 16;
const EINVAL: i64 = 22;

/// Frame 0 is a pinned L1 of domain 1; frames 1.. are data.
fn world(n: usize) -> World {
    let w = World::new(n);
    w.pin(0, Level::L1).unwrap();
    w
}

#[test]
fn spec_08_17_l1_entry_to_another_domains_frame_fails_busy() {
    let kit = Kit::new(4);
    kit.assign_range(0..2, DOM);
    kit.assign_range(2..4, 2);
    let mut w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    w.pin(0, Level::L1).unwrap();
    fails(
        w.set(0, Level::L1, 0, pte(2, PTE_P)),
        MmError::FrameBusy,
        EBUSY,
    );
    fails(
        w.set(0, Level::L1, 0, pte(2, PTE_P | PTE_RW)),
        MmError::FrameBusy,
        EBUSY,
    );
    assert_eq!(w.g(2), 1);
    // A context that may map domain 2 (a privileged mapper) can; the audit flags the mapping
    // unless the policy permits it.
    w.dom.foreign_ok = Some(2);
    w.set(0, Level::L1, 0, pte(2, PTE_P | PTE_RW)).unwrap();
    assert_eq!((w.g(2), w.c(2), w.ty(2)), (2, 1, PageType::Writable));
    let report = w.kit.audit(&[]);
    assert_eq!(report.discrepancies(), 1);
    assert!(matches!(
        report.findings().next(),
        Some(Finding::ForeignMapping {
            table: Mfn(0),
            index: 0,
            target: Mfn(2),
            ..
        })
    ));
    assert!(w.kit.audit_with(&[], &[(DOM, 2)]).is_clean());
}

#[test]
fn spec_08_22_all_ones_non_ram_and_free_frames() {
    let w = World::with_free(8, 6..8);
    w.pin(0, Level::L1).unwrap();
    fails(
        w.set(0, Level::L1, 0, pte(ALL_ONES_FRAME, PTE_P)),
        MmError::AllOnesFrame,
        EINVAL,
    );
    fails(
        w.set(0, Level::L1, 0, pte(0x1000, PTE_P)),
        MmError::MmioDenied,
        EPERM,
    );
    fails(
        w.set(0, Level::L1, 0, pte(8, PTE_P)),
        MmError::MmioDenied,
        EPERM,
    );
    fails(
        w.set(0, Level::L1, 0, pte(6, PTE_P)),
        MmError::FrameBusy,
        EBUSY,
    );
    fails(
        w.set(0, Level::L1, 0, pte(7, PTE_P | PTE_RW)),
        MmError::FrameBusy,
        EBUSY,
    );
    assert_eq!(w.s(6), FrameState::FREE);
    // With I/O capabilities MMIO maps, takes no references, and cache attributes are allowed.
    let mut io = TestDomain::new(DOM);
    io.io_caps = true;
    let t = w.t();
    let tok = t.mod_entry(
        &w.kit.mem,
        &io,
        Mfn(0),
        Level::L1,
        1,
        pte(0x1000, PTE_P | PTE_PCD),
        false,
    );
    assert!(tok.is_ok());
    fails(
        t.mod_entry(
            &w.kit.mem,
            &io,
            Mfn(0),
            Level::L1,
            2,
            pte(ALL_ONES_FRAME, PTE_P),
            false,
        ),
        MmError::AllOnesFrame,
        EINVAL,
    );
    w.clean();
    let tok = t
        .mod_entry(&w.kit.mem, &io, Mfn(0), Level::L1, 1, 0, false)
        .unwrap();
    assert_eq!(tok.released, None, "an MMIO entry held nothing");
}

#[test]
fn spec_08_24_kernel_global_accepted_user_global_kept() {
    let w = world(4);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_G)).unwrap();
    assert_eq!(
        w.read(0, 0),
        pte(1, PTE_P | PTE_G | PTE_US | PTE_GUEST_KERNEL)
    );
    w.set(0, Level::L1, 1, pte(1, PTE_P | PTE_US | PTE_G))
        .unwrap();
    assert_eq!(w.read(0, 1), pte(1, PTE_P | PTE_US | PTE_G));
    w.clean();
}

#[test]
fn spec_08_25_us_clear_reads_back_kernel_us_set_reads_back_global() {
    let w = world(4);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    assert_eq!(
        w.read(0, 0),
        pte(1, PTE_P | PTE_RW | PTE_US | PTE_GUEST_KERNEL)
    );
    w.set(0, Level::L1, 1, pte(2, PTE_P | PTE_US)).unwrap();
    assert_eq!(w.read(0, 1), pte(2, PTE_P | PTE_US | PTE_G));
    // Validation adjusts the same way.
    w.kit.write(3, 0, pte(1, PTE_P));
    w.kit.write(3, 1, pte(2, PTE_P | PTE_US));
    w.pin(3, Level::L1).unwrap();
    assert_eq!(w.read(3, 0), pte(1, PTE_P | PTE_US | PTE_GUEST_KERNEL));
    assert_eq!(w.read(3, 1), pte(2, PTE_P | PTE_US | PTE_G));
    w.clean();
}

#[test]
fn spec_08_28_rw_mapping_of_descriptor_frame_fails_busy() {
    let w = world(4);
    let t = w.t();
    t.get_page_and_type(&w.kit.mem, &w.dom, Mfn(2), PageType::SegDesc)
        .unwrap();
    assert!(w.s(2).validated(), "descriptor frames are usable at once");
    fails(
        w.set(0, Level::L1, 0, pte(2, PTE_P | PTE_RW)),
        MmError::WritableBusy,
        EBUSY,
    );
    w.set(0, Level::L1, 0, pte(2, PTE_P)).unwrap();
    let gdt = [ExtraRef {
        mfn: Mfn(2),
        ty: Some(PageType::SegDesc),
    }];
    w.kit.assert_clean(&gdt);
    assert!(
        !w.kit.audit(&[]).is_clean(),
        "the GDT reference is accounted for only as an extra"
    );
}

#[test]
fn spec_08_42_fast_path_bits_move_no_counts_rw_clear_drops_the_type() {
    let w = world(4);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW | PTE_US))
        .unwrap();
    let before = w.s(1);
    assert_eq!((before.general(), before.type_count()), (2, 1));
    for flags in [
        PTE_A,
        PTE_D,
        PTE_NX,
        PTE_AVL,
        1 << 55,
        PTE_A | PTE_D | PTE_NX,
    ] {
        let tok = w
            .set_tok(0, Level::L1, 0, pte(1, PTE_P | PTE_RW | PTE_US | flags))
            .unwrap();
        assert!(tok.fast_path, "flags {flags:#x}");
        assert!(!tok.needs_flush());
        assert_eq!(w.s(1), before);
    }
    // US cleared: the adjusted value differs only in US-derived whitelisted bits.
    let tok = w.set_tok(0, Level::L1, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    assert!(tok.fast_path);
    assert_eq!(w.s(1), before);
    // RW 1 -> 0: not a fast path; the writable type count drops, G stays.
    let tok = w.set_tok(0, Level::L1, 0, pte(1, PTE_P)).unwrap();
    assert!(!tok.fast_path);
    assert_eq!(tok.released, Some(Mfn(1)));
    assert_eq!((w.g(1), w.c(1)), (2, 0));
    // RW 0 -> 1 and the frame: never fast paths.
    assert!(
        !w.set_tok(0, Level::L1, 0, pte(1, PTE_P | PTE_RW))
            .unwrap()
            .fast_path
    );
    assert!(
        !w.set_tok(0, Level::L1, 0, pte(2, PTE_P | PTE_RW))
            .unwrap()
            .fast_path
    );
    assert_eq!((w.g(1), w.c(1), w.g(2), w.c(2)), (1, 0, 2, 1));
    // Cache attributes are not fast-path bits either (they need I/O capabilities).
    fails(
        w.set(0, Level::L1, 0, pte(2, PTE_P | PTE_RW | PTE_PCD)),
        MmError::CacheAttr,
        EINVAL,
    );
    w.clean();
}

#[test]
fn spec_08_43_preserve_ad_keeps_hardware_bits() {
    let w = world(4);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW | PTE_US))
        .unwrap();
    w.kit.mem.hw_set_bits(Mfn(0), 0, PTE_A | PTE_D);
    let t = w.t();
    let tok = t
        .mod_entry(
            &w.kit.mem,
            &w.dom,
            Mfn(0),
            Level::L1,
            0,
            pte(1, PTE_P | PTE_US),
            true,
        )
        .unwrap();
    assert_eq!(tok.new & (PTE_A | PTE_D), PTE_A | PTE_D);
    assert_eq!(w.read(0, 0), pte(1, PTE_P | PTE_US | PTE_G | PTE_A | PTE_D));
    // Without PRESERVE_AD the new value is stored as given (adjusted).
    w.kit.mem.hw_set_bits(Mfn(0), 0, PTE_A | PTE_D);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_US)).unwrap();
    assert_eq!(w.read(0, 0), pte(1, PTE_P | PTE_US | PTE_G));
    w.clean();
}

#[test]
fn l1_not_present_path_drops_old_references_and_stores_raw() {
    let w = world(4);
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    // Any bit pattern may be written not-present (no flag checks, no adjustment).
    let raw = pte(ALL_ONES_FRAME, PTE_PCD | PTE_PSE | PTE_RW);
    let tok = w.set_tok(0, Level::L1, 0, raw).unwrap();
    assert_eq!(
        (tok.old & PTE_P, tok.new, tok.released),
        (PTE_P, raw, Some(Mfn(1)))
    );
    assert_eq!(w.read(0, 0), raw);
    assert_eq!((w.g(1), w.c(1)), (1, 0));
    w.clean();
}

#[test]
fn mod_entry_requires_a_validated_table_of_that_level_owned_by_the_domain() {
    let kit = Kit::new(4);
    kit.assign_range(0..3, DOM);
    kit.assign_range(3..4, 2);
    let w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    fails(
        w.set(0, Level::L1, 0, pte(1, PTE_P)),
        MmError::NotValidated,
        EINVAL,
    );
    w.pin(0, Level::L1).unwrap();
    fails(
        w.set(0, Level::L2, 0, pte(1, PTE_P)),
        MmError::NotValidated,
        EINVAL,
    );
    fails(
        w.set(0, Level::L1, 512, pte(1, PTE_P)),
        MmError::BadIndex,
        EINVAL,
    );
    fails(
        w.set(3, Level::L1, 0, pte(1, PTE_P)),
        MmError::WrongOwner,
        EINVAL,
    );
    fails(
        w.set(9, Level::L1, 0, pte(1, PTE_P)),
        MmError::BadMfn,
        EINVAL,
    );
    assert_eq!(
        (w.g(0), w.c(0)),
        (2, 1),
        "the table's temporary references were given back"
    );
    w.clean();
}
