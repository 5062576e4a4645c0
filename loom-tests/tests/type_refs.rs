//! Model (a): type references on one frame — `get_page_type` / `put_page_type` from two
//! threads, including a type change at type count 0 racing a getter of the frame's current type.
//!
//! What can fail: every transition is a CAS on the frame's one state word; a transition that
//! writes without comparing (or decides on one word and installs over another) loses a
//! concurrent holder's reference, lets two types coexist, or drops a count below the references
//! that exist. Each thread checks, while it holds its reference, that the frame has its type;
//! every put must succeed; at the end the counts must be exact and the audit clean.
//! Mutant: `put_type_blind_store` (the last writable drop stores instead of compare-and-swap).
#![cfg(loom)]

mod common;

use common::{Arc, World, join, model, spawn};
use hvcore::frame::PageType;

const F: u64 = 0;

/// Take `ty` on `F`; if granted, check the frame really is a validated `ty` with our count in
/// it, then drop it. Returns whether the reference was granted.
fn hold_and_drop(w: &World, ty: PageType) -> bool {
    if w.get(F, ty).is_err() {
        return false;
    }
    let s = w.s(F);
    assert!(
        s.ty() == ty && s.validated() && s.type_count() >= 1,
        "holder of {ty:?} sees {s:?}"
    );
    assert_eq!(w.put(F), Ok(()), "dropping a held {ty:?} reference failed");
    true
}

#[test]
fn type_refs_two_writable_holders_count_exactly() {
    model(|| {
        // One fresh, untyped frame: the first taker changes its type (None → writable).
        let w = Arc::new(World::new(1, 2));
        let w1 = w.clone();
        let t = spawn(move || hold_and_drop(&w1, PageType::Writable));
        let mine = hold_and_drop(&w, PageType::Writable);
        let theirs = join(t);
        assert!(
            mine && theirs,
            "a writable reference on a writable frame was refused"
        );
        w.assert_counts(F, 1, 0);
        let s = w.s(F);
        assert!(s.ty() == PageType::Writable && s.validated(), "{s:?}");
        w.assert_clean();
    });
}

#[test]
fn type_refs_retype_at_zero_races_same_type_getter() {
    model(|| {
        // F was mapped read-write and unmapped: type count 0, still a validated writable frame.
        // One thread retypes it as an L1 (a type change at count 0, then validation); the other
        // takes a writable reference, which needs no validation while the type stays.
        let w = Arc::new(World::new(1, 2));
        w.writable_history(F);
        let retypes_before = w.dom.retypes();
        let w1 = w.clone();
        let t = spawn(move || hold_and_drop(&w1, PageType::L1));
        let writable = hold_and_drop(&w, PageType::Writable);
        let l1 = join(t);
        // Neither reference outlives its thread, so both may succeed one after the other, but
        // the frame can only have become an L1 through a reported type change.
        assert!(
            l1 || writable,
            "both takers failed on an unreferenced frame"
        );
        if l1 {
            assert!(
                w.dom.retypes() > retypes_before,
                "retype to L1 not reported"
            );
        }
        w.assert_counts(F, 1, 0);
        w.assert_clean();
    });
}
