//! Allocation, general references, fail-closed counts, and the audit catching corruption.

mod mm_common;
use hvcore::audit::{AuditScratch, CountField, EntryProblem, StateProblem};
use hvcore::frame::{GENERAL_MAX, Released};
use mm_common::*;

#[test]
fn assign_get_put_release_free() {
    let kit = Kit::new(4);
    let t = kit.table();
    let _ = kit.clock.tick();
    let a = t.assign(Mfn(1), 7).unwrap();
    assert_eq!(a.mfn, Mfn(1));
    fails(t.assign(Mfn(1), 7), MmError::FrameInUse, 16);
    fails(t.assign(Mfn(9), 7), MmError::BadMfn, 22);
    fails(t.get_page(Mfn(0), 7), MmError::NotAllocated, 22);
    fails(t.get_page(Mfn(1), 8), MmError::WrongOwner, 22);
    t.get_page(Mfn(1), 7).unwrap();
    assert_eq!(t.get_page_if(Mfn(1), |o| o == 7), Ok(7));
    assert_eq!(kit.state(1).general(), 3);
    assert_eq!(t.put_page(Mfn(1)), Ok(Released::Held));
    assert_eq!(t.put_page(Mfn(1)), Ok(Released::Held));
    fails(t.put_page(Mfn(1)), MmError::CountUnderflow, 22);
    fails(t.release_allocation(Mfn(1), 8), MmError::WrongOwner, 22);
    let now = kit.clock.now();
    assert_eq!(
        t.release_allocation(Mfn(1), 7),
        Ok(Released::Freed { stamp: now })
    );
    assert_eq!(kit.state(1), FrameState::FREE);
    fails(t.release_allocation(Mfn(1), 7), MmError::NotAllocated, 22);
    let again = t.assign(Mfn(1), 9).unwrap();
    assert_eq!(
        again.stamp, now,
        "the allocator learns the stamp of the previous life"
    );
    kit.assert_clean(&[]);
}

#[test]
fn released_frame_lives_until_its_last_reference_and_takes_no_new_ones() {
    // Spec §8.1 case 16 at this layer: the allocation ref goes, the pin keeps the frame.
    let w = World::new(4);
    w.kit.write(0, 0, pte(1, PTE_P | PTE_RW));
    w.pin(0, Level::L1).unwrap();
    assert_eq!(w.t().release_allocation(Mfn(0), DOM), Ok(Released::Held));
    let s = w.s(0);
    assert_eq!(
        (s.allocated(), s.pinned(), s.general(), s.type_count()),
        (false, true, 1, 1)
    );
    fails(w.t().get_page(Mfn(0), DOM), MmError::NotAllocated, 22);
    fails(
        w.set(0, Level::L1, 1, pte(2, PTE_P)),
        MmError::NotAllocated,
        22,
    );
    w.clean();
    let _ = w.kit.clock.tick();
    let now = w.kit.clock.now();
    assert_eq!(
        w.t().unpin(&w.kit.mem, &w.dom, Mfn(0)),
        Ok(Released::Freed { stamp: now })
    );
    assert_eq!(w.s(0), FrameState::FREE);
    assert_eq!((w.g(1), w.c(1)), (1, 0), "de-validated before it was freed");
    w.clean();
}

#[test]
fn type_references_fail_closed() {
    let w = World::new(4);
    let t = w.t();
    let (mem, dom) = (&w.kit.mem, &w.dom);
    // No general reference of our own: only the allocation's.
    fails(
        t.get_page_type(mem, dom, Mfn(1), PageType::Writable),
        MmError::MissingGeneralRef,
        22,
    );
    fails(
        t.get_page_type(mem, dom, Mfn(1), PageType::None),
        MmError::BadType,
        22,
    );
    fails(t.put_page_type(mem, Mfn(1)), MmError::CountUnderflow, 22);
    w.pin(2, Level::L1).unwrap();
    fails(t.put_page_type(mem, Mfn(2)), MmError::CountUnderflow, 22);
    assert_eq!(
        (w.g(2), w.c(2)),
        (2, 1),
        "the pin's reference cannot be dropped by a put"
    );
    fails(
        t.try_get_validated_type(Mfn(3), PageType::L1),
        MmError::NotValidated,
        22,
    );
    w.clean();
}

#[test]
fn general_count_overflow_fails_closed() {
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    let t = w.t();
    // G is 1 (allocation); take references up to the cap.
    let mut taken = 0u32;
    while t.get_page(Mfn(1), DOM).is_ok() {
        taken += 1;
    }
    assert_eq!(taken, GENERAL_MAX - 1);
    assert_eq!(w.g(1), GENERAL_MAX);
    fails(t.get_page(Mfn(1), DOM), MmError::CountOverflow, 22);
    fails(
        w.set(0, Level::L1, 0, pte(1, PTE_P)),
        MmError::CountOverflow,
        22,
    );
    assert_eq!(w.read(0, 0), 0);
    assert_eq!(w.g(1), GENERAL_MAX, "unchanged by the failures");
    for _ in 0..taken {
        t.put_page(Mfn(1)).unwrap();
    }
    w.set(0, Level::L1, 0, pte(1, PTE_P)).unwrap();
    w.clean();
}

#[test]
fn audit_reports_references_behind_the_tables_back() {
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    w.pin(1, Level::L2).unwrap();
    w.clean();
    // A present entry written raw into a validated L1: its reference was never taken.
    w.kit.write(0, 5, pte(2, PTE_P));
    let r = w.kit.audit(&[]);
    assert_eq!(r.discrepancies(), 1);
    assert_eq!(
        r.findings().next(),
        Some(&Finding::Count {
            mfn: Mfn(2),
            field: CountField::General,
            expected: 2,
            actual: 1
        })
    );
    // An RW mapping of a page table: reported as such, plus its counts.
    w.kit.write(0, 6, pte(1, PTE_P | PTE_RW));
    let r = w.kit.audit(&[]);
    assert!(r.findings().any(|f| matches!(
        f,
        Finding::WritableMapping {
            mfn: Mfn(1),
            ty: PageType::L2,
            rw_maps: 1
        }
    )));
    assert!(r.findings().any(|f| matches!(
        f,
        Finding::Count {
            mfn: Mfn(1),
            field: CountField::Type,
            expected: 2,
            actual: 1
        }
    )));
    // A bad entry in a validated L2.
    w.kit.write(1, 0, pte(3, PTE_P | PTE_PSE));
    let r = w.kit.audit(&[]);
    assert!(r.findings().any(|f| matches!(
        f,
        Finding::Entry {
            table: Mfn(1),
            index: 0,
            problem: EntryProblem::Flags,
            ..
        }
    )));
    assert!(r.findings().any(|f| matches!(
        f,
        Finding::Entry {
            table: Mfn(1),
            index: 0,
            problem: EntryProblem::ChildType { .. },
            ..
        }
    )));
    // Undo the corruption: clean again.
    for (f, i) in [(0, 5), (0, 6), (1, 0)] {
        w.kit.write(f, i, 0);
    }
    w.clean();
}

#[test]
fn audit_accounts_extra_references_and_checks_their_type() {
    let w = World::new(4);
    let t = w.t();
    t.get_page_and_type(&w.kit.mem, &w.dom, Mfn(0), PageType::L4)
        .unwrap();
    let base = [ExtraRef {
        mfn: Mfn(0),
        ty: Some(PageType::L4),
    }];
    w.kit.assert_clean(&base);
    let r = w.kit.audit(&[]);
    assert_eq!(
        r.discrepancies(),
        2,
        "G and C each one above what tables explain"
    );
    let wrong = [ExtraRef {
        mfn: Mfn(0),
        ty: Some(PageType::L3),
    }];
    let r = w.kit.audit(&wrong);
    assert!(r.findings().any(|f| matches!(
        f,
        Finding::State {
            mfn: Mfn(0),
            problem: StateProblem::ExtraTypeMismatch
        }
    )));
    let mut short = [AuditScratch::default(); 2];
    let r = t.audit(&w.kit.mem, &[], &mut short, |_, _| false);
    assert_eq!(
        r.findings().next(),
        Some(&Finding::ScratchTooSmall { needed: 4 })
    );
    t.put_page_and_type(&w.kit.mem, Mfn(0)).unwrap();
    w.clean();
}

#[test]
fn audit_report_keeps_the_first_findings_and_counts_all() {
    let w = World::new(64);
    w.pin(0, Level::L1).unwrap();
    for i in 0..60 {
        w.kit.write(0, i, pte(1 + i as u64, PTE_P));
    }
    let r = w.kit.audit(&[]);
    assert_eq!(r.discrepancies(), 60);
    assert_eq!(r.findings().count(), hvcore::audit::AuditReport::CAPACITY);
}

#[test]
fn last_writable_drop_stamps_and_the_next_retype_reports_it() {
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    w.set(0, Level::L1, 0, pte(1, PTE_P | PTE_RW)).unwrap();
    for _ in 0..5 {
        let _ = w.kit.clock.tick();
    }
    let now = w.kit.clock.now();
    w.set(0, Level::L1, 0, 0).unwrap();
    assert_eq!(w.t().stamp(Mfn(1)), Ok(now));
    let s = w.s(1);
    assert_eq!(
        (s.ty(), s.type_count(), s.validated()),
        (PageType::Writable, 0, true)
    );
    let _ = w.kit.clock.tick();
    w.pin(1, Level::L1).unwrap();
    let change = w.dom.last_retype().unwrap();
    assert_eq!(
        (change.mfn, change.old_type, change.new_type),
        (Mfn(1), PageType::Writable, PageType::L1)
    );
    assert_eq!((change.stamp, change.owner), (now, DOM));
    w.clean();
}

#[test]
fn validation_refuses_foreign_leaves_that_an_update_may_install() {
    let kit = Kit::new(4);
    kit.assign_range(0..2, DOM);
    kit.assign_range(2..4, 2);
    let mut w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    w.dom.foreign_ok = Some(2);
    w.kit.write(1, 0, pte(2, PTE_P));
    fails(w.pin(1, Level::L1), MmError::FrameBusy, 16);
    w.kit.write(1, 0, 0);
    w.pin(1, Level::L1).unwrap();
    w.set(1, Level::L1, 0, pte(2, PTE_P)).unwrap();
    assert!(w.kit.audit_with(&[], &[(DOM, 2)]).is_clean());
}
