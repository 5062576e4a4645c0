//! Model (h): a deferred, preemptible de-validation racing a getter of the table (spec §3.6,
//! case 55; `frame::partial`).
//!
//! What can fail: while a table's de-validation is deferred (partial: `C == 1` owned by the
//! de-validator, `V` clear, `P` set) it is being torn down across several calls, and a getter
//! must neither wait for it (the owner may not run again for a long time) nor obtain a
//! reference to it: it either takes its reference before the last one goes (and then does the
//! de-validation itself when it drops it), or fails with `Devalidating`, or comes after the
//! de-validation finished and validates the table afresh. A getter that takes a partial table
//! holds a "validated" table whose child references are being dropped underneath; the check
//! after the get and the exact counts and audit at the end catch it.
//! Mutant: `partial_taken` (a partial table is taken as if it were validated).
#![cfg(loom)]

mod common;

use common::{Arc, World, join, model, ro, spawn};
use hvcore::frame::{Devalidation, Level, MmError, PageType};
use hvcore::mem::Mfn;
use hvcore::pt::{PTE_P, PTE_RW};
use hvcore::testkit::pte;

/// The pinned L2 table.
const T: u64 = 0;
/// Its L1 child (both entries of T point at it).
const L1: u64 = 1;
/// The data frame the L1 maps.
const D: u64 = 2;

#[test]
fn deferred_devalidation_races_getter() {
    model(|| {
        let w = Arc::new(World::new(3, 2));
        w.kit.write(L1, 0, ro(D));
        for i in 0..2 {
            w.kit.write(T, i, pte(L1, PTE_P | PTE_RW));
        }
        assert_eq!(w.pin(T, Level::L2), Ok(()));
        let w1 = w.clone();
        let getter = spawn(move || {
            let r = w1.get(T, PageType::L2);
            if r.is_ok() {
                // A holder sees a validated table whose entries hold their child.
                let s = w1.s(T);
                assert!(s.validated() && !s.partial(), "{s:?}");
                assert!(w1.s(L1).type_count() >= 1, "child references gone");
                assert_eq!(w1.put(T), Ok(()));
            }
            r
        });
        // The owner: unpin with the de-validation deferred, then continue it, preempted at
        // every opportunity (one entry per call).
        let t = w.t();
        let begun = t.unpin_deferred(&w.kit.mem, &w.dom, Mfn(T));
        if let Ok(Some(mfn)) = begun {
            let mut calls = 0;
            while t.devalidate(&w.kit.mem, mfn, &mut || true) == Ok(Devalidation::Preempted) {
                calls += 1;
            }
            assert_eq!(calls, 1, "two entries, one per call");
        } else {
            assert_eq!(begun, Ok(None), "the getter held the last reference");
        }
        let got = join(getter);
        assert!(
            got == Ok(()) || got == Err(MmError::Devalidating),
            "get: {got:?}"
        );
        let s = w.s(T);
        assert!(s.type_count() == 0 && !s.partial() && !s.pinned(), "{s:?}");
        w.assert_counts(T, 1, 0);
        w.assert_counts(L1, 1, 0);
        w.assert_counts(D, 1, 0);
        w.assert_clean();
    });
}
