//! Spec §8.6 (writable page tables) cases 71–75 at the frame-table level: what
//! `FrameTable::emulate_l1_write` stores, refuses and reports, with exact reference counts and a
//! clean audit after each. (The #PF side — which faults reach it, case 76 — is the hypervisor's
//! and is checked by the guest's `ptwr` tests on Argon and Xen.)

mod mm_common;
use hvcore::ptwr::{Emulated, Op, Unhandled};
use mm_common::*;

/// Frame 0 is a pinned L1 of domain 1; 1..=3 are data; 4 is a pinned L2.
fn world() -> World {
    let w = World::new(6);
    w.pin(0, Level::L1).unwrap();
    w.pin(4, Level::L2).unwrap();
    w
}

fn write(w: &World, table: u64, offset: u64, width: u8, op: Op) -> Result<Emulated, Unhandled> {
    w.t()
        .emulate_l1_write(&w.kit.mem, &w.dom, Mfn(table), offset, width, op)
}

/// What the L1 stores for a kernel leaf (US and Xen's guest-kernel bit added).
fn stored(frame: u64, flags: u64) -> u64 {
    pte(frame, flags | PTE_US) | PTE_GUEST_KERNEL
}

#[track_caller]
fn refused(r: Result<Emulated, Unhandled>, want: MmError) {
    assert_eq!(r, Err(Unhandled::Refused(want)));
}

#[test]
fn spec_08_71_valid_store_is_emulated_and_adjusted() {
    let w = world();
    let r = write(&w, 0, 3 * 8, 8, Op::Store(pte(1, PTE_P | PTE_RW)));
    let Ok(Emulated::Stored(u)) = r else {
        panic!("{r:?}")
    };
    assert_eq!((u.index, u.old, u.new), (3, 0, stored(1, PTE_P | PTE_RW)));
    assert!(!u.needs_flush());
    assert_eq!(w.read(0, 3), stored(1, PTE_P | PTE_RW));
    assert_eq!((w.g(1), w.c(1), w.ty(1)), (2, 1, PageType::Writable));
    // Replacing it drops the old references.
    write(&w, 0, 3 * 8, 8, Op::Store(pte(2, PTE_P))).unwrap();
    assert_eq!((w.g(1), w.c(1), w.g(2), w.c(2)), (1, 0, 2, 0));
    write(&w, 0, 3 * 8, 8, Op::Store(0)).unwrap();
    assert_eq!(w.g(2), 1);
    w.clean();
}

#[test]
fn spec_08_72_writable_mapping_of_a_table_is_refused() {
    let w = world();
    write(&w, 0, 0, 8, Op::Store(pte(1, PTE_P))).unwrap();
    let before = w.read(0, 0);
    for table in [0, 4] {
        refused(
            write(&w, 0, 0, 8, Op::Store(pte(table, PTE_P | PTE_RW))),
            MmError::WritableBusy,
        );
    }
    assert_eq!(w.read(0, 0), before);
    assert_eq!((w.g(0), w.c(0), w.g(4), w.c(4)), (2, 1, 2, 1));
    assert_eq!((w.g(1), w.c(1)), (2, 0));
    write(&w, 0, 0, 8, Op::Store(0)).unwrap();
    w.clean();
}

#[test]
fn spec_08_73_misaligned_or_not_an_l1_is_refused() {
    let w = world();
    let leaf = Op::Store(pte(1, PTE_P));
    for (offset, width) in [(4, 8), (1, 8), (2, 4), (8, 2), (4096, 8), (4092, 4 + 4)] {
        assert_eq!(
            write(&w, 0, offset, width, leaf),
            Err(Unhandled::Misaligned),
            "{width} bytes at {offset}"
        );
    }
    // An L2 (even with a valid L2 entry), a data frame, another domain's L1, no frame.
    refused(
        write(&w, 4, 0, 8, Op::Store(pte(0, PTE_P | PTE_RW))),
        MmError::NotValidated,
    );
    refused(write(&w, 1, 0, 8, leaf), MmError::NotValidated);
    refused(write(&w, 99, 0, 8, leaf), MmError::BadMfn);
    let other = TestDomain::new(2);
    let r = w
        .t()
        .emulate_l1_write(&w.kit.mem, &other, Mfn(0), 0, 8, leaf);
    assert_eq!(r, Err(Unhandled::Refused(MmError::WrongOwner)));
    assert_eq!((w.read(0, 0), w.read(4, 0), w.g(1)), (0, 0, 1));
    w.clean();
}

#[test]
fn spec_08_74_half_writes_merge_and_validate_the_whole() {
    let w = world();
    write(&w, 0, 5 * 8, 8, Op::Store(pte(1, PTE_P))).unwrap();
    // The low half names frame 2 read-write: merged with the high half (bit 52), validated.
    let low = pte(2, PTE_P | PTE_RW | PTE_US) & 0xFFFF_FFFF;
    let Ok(Emulated::Stored(u)) = write(&w, 0, 5 * 8, 4, Op::Store(low)) else {
        panic!("low half refused")
    };
    assert_eq!(u.new, stored(2, PTE_P | PTE_RW));
    assert_eq!((w.g(1), w.g(2), w.c(2)), (1, 2, 1));
    // The high half alone: NX set, the low half kept.
    let high = (PTE_NX | PTE_GUEST_KERNEL) >> 32;
    write(&w, 0, 5 * 8 + 4, 4, Op::Store(high)).unwrap();
    assert_eq!(w.read(0, 5), stored(2, PTE_P | PTE_RW) | PTE_NX);
    // A low half that makes the whole a writable mapping of the L1 itself is refused.
    let bad = pte(0, PTE_P | PTE_RW) & 0xFFFF_FFFF;
    refused(
        write(&w, 0, 5 * 8, 4, Op::Store(bad)),
        MmError::WritableBusy,
    );
    assert_eq!(w.read(0, 5), stored(2, PTE_P | PTE_RW) | PTE_NX);
    write(&w, 0, 5 * 8, 8, Op::Store(0)).unwrap();
    w.clean();
}

#[test]
fn spec_08_75_cmpxchg_stale_value_stores_nothing() {
    let w = world();
    write(&w, 0, 7 * 8, 8, Op::Store(pte(1, PTE_P))).unwrap();
    let cur = w.read(0, 7);
    // Stale: reported, nothing validated (an invalid new value too), no references taken.
    for new in [pte(2, PTE_P | PTE_RW), pte(0, PTE_P | PTE_RW)] {
        let op = Op::Cmpxchg {
            expected: pte(1, PTE_P),
            new,
        };
        assert_eq!(write(&w, 0, 7 * 8, 8, op), Ok(Emulated::Stale(cur)));
    }
    assert_eq!(w.read(0, 7), cur);
    assert_eq!((w.g(1), w.g(2), w.c(2), w.c(0)), (2, 1, 0, 1));
    // Matching: stored as by mmu_update, or refused as by it.
    let op = |new| Op::Cmpxchg { expected: cur, new };
    refused(
        write(&w, 0, 7 * 8, 8, op(pte(0, PTE_P | PTE_RW))),
        MmError::WritableBusy,
    );
    let Ok(Emulated::Stored(u)) = write(&w, 0, 7 * 8, 8, op(pte(2, PTE_P | PTE_RW))) else {
        panic!("matching cmpxchg refused")
    };
    assert_eq!((u.old, u.new), (cur, stored(2, PTE_P | PTE_RW)));
    assert_eq!((w.g(1), w.g(2), w.c(2)), (1, 2, 1));
    // 4 bytes: the low half compared and exchanged, the high half kept.
    let low = u.new & 0xFFFF_FFFF;
    let half = Op::Cmpxchg {
        expected: low ^ 0x1000,
        new: 0,
    };
    assert_eq!(write(&w, 0, 7 * 8, 4, half), Ok(Emulated::Stale(low)));
    let half = Op::Cmpxchg {
        expected: low,
        new: 0,
    };
    assert!(matches!(
        write(&w, 0, 7 * 8, 4, half),
        Ok(Emulated::Stored(_))
    ));
    assert_eq!(w.read(0, 7), PTE_GUEST_KERNEL);
    assert_eq!((w.g(2), w.c(2)), (1, 0));
    w.clean();
}

/// FD = self: a leaf may map only the domain's own frames, even for a context that may map
/// another domain's (a privileged one), as `mmu_update` with FD = DOMID_SELF.
#[test]
fn ptwr_maps_only_own_frames() {
    let kit = Kit::new(4);
    kit.assign_range(0..2, DOM);
    kit.assign_range(2..4, 2);
    let mut w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    w.dom.foreign_ok = Some(2);
    w.pin(0, Level::L1).unwrap();
    refused(
        write(&w, 0, 0, 8, Op::Store(pte(2, PTE_P))),
        MmError::FrameBusy,
    );
    assert_eq!((w.read(0, 0), w.g(2)), (0, 1));
    write(&w, 0, 0, 8, Op::Store(pte(1, PTE_P))).unwrap();
    write(&w, 0, 0, 8, Op::Store(0)).unwrap();
    w.clean();
}
