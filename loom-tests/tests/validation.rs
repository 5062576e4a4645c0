//! Model (e): a validation in progress racing a typed getter of the same table: nobody may use
//! a table before it is validated (spec §1.5, the validate-locked state).
//!
//! What can fail: the first taker of L1 publishes `C = 1` with `V` clear and validates (takes the
//! child references of every present entry); other takers of L1 must wait for `V`, and the
//! Release that sets `V` must carry the validation to them. A getter that returns while `V` is
//! clear, or whose Acquire does not pair with that Release, can see the table's entry without
//! the references validation took for it: a writable mapping of a frame that is not (yet, to
//! this CPU) typed writable. Each getter checks exactly that while it holds its reference.
//! Mutant: `validated_relaxed` (`V` is published Relaxed instead of Release).
#![cfg(loom)]

mod common;

use common::{Arc, World, frame_of, join, model, rw, spawn};
use hvcore::frame::PageType;

/// The table being validated.
const L: u64 = 0;
/// The frame its entry maps read-write.
const F: u64 = 1;

/// Take L as an L1 (validating it or waiting for the validator), check it is usable, drop it.
fn use_table(w: &World) {
    assert_eq!(w.get(L, PageType::L1), Ok(()));
    let table = w.s(L);
    assert!(
        table.ty() == PageType::L1 && table.validated(),
        "got an L1 reference on a table that is not validated: {table:?}"
    );
    let e = w.entry(L, 0);
    let child = w.s(frame_of(e));
    assert!(
        child.ty() == PageType::Writable && child.type_count() >= 1 && child.general() >= 2,
        "validated L1 maps frame {} read-write without its references: {child:?}",
        frame_of(e)
    );
    assert_eq!(w.put(L), Ok(()));
}

#[test]
fn validation_in_progress_races_typed_getter() {
    model(|| {
        // L is untyped and holds one read-write entry for F, written while it was plain data.
        let w = Arc::new(World::new(2, 2));
        w.kit.write(L, 0, rw(F));
        let w1 = w.clone();
        let other = spawn(move || use_table(&w1));
        use_table(&w);
        join(other);
        // Both gone: L de-validated, F's references dropped.
        let s = w.s(L);
        assert!(s.type_count() == 0 && !s.validated(), "{s:?}");
        w.assert_counts(F, 1, 0);
        w.assert_clean();
    });
}
