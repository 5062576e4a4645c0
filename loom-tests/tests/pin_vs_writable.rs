//! Model (b): pinning a frame as an L1 table races mapping the same frame read-write (spec case
//! 82, the XSA-401 setting): exactly one may win, never both, never neither.
//!
//! What can fail: both outcomes hinge on one CAS of the frame's type at count 0. If the decision
//! "type count is 0, so the type may change" is not re-checked by the CAS that installs it, both
//! sides succeed and the frame is a validated page table with a writable mapping — the audit
//! reports it, and the exclusive-or below fails.
//! Mutant: `type_cas_stale_decision` (the type CAS expects a fresh load, not the decided word).
#![cfg(loom)]

mod common;

use common::{Arc, World, join, model, rw, spawn};
use hvcore::frame::{Level, MmError, PageType};

/// The pinned L1 the mapping is written into.
const T: u64 = 0;
/// The frame both sides want.
const P: u64 = 1;

#[test]
fn pin_vs_writable_exactly_one_wins() {
    model(|| {
        let w = Arc::new(World::new(2, 2));
        assert_eq!(w.pin(T, Level::L1), Ok(()));
        let w1 = w.clone();
        let mapper = spawn(move || w1.update(T, 0, rw(P)));
        let pinned = w.pin(P, Level::L1);
        let mapped = join(mapper);
        assert!(
            pinned.is_ok() != mapped.is_ok(),
            "pin {pinned:?} and writable map {mapped:?}: exactly one must win"
        );
        let s = w.s(P);
        if pinned.is_ok() {
            assert_eq!(mapped, Err(MmError::WritableBusy));
            assert!(
                s.pinned() && s.ty() == PageType::L1 && s.validated(),
                "{s:?}"
            );
            assert_eq!(w.entry(T, 0), 0, "the losing mapping was stored");
            // Pin: G = allocation + pin, C = pin.
            w.assert_counts(P, 2, 1);
        } else {
            assert_eq!(pinned, Err(MmError::TypeMismatch));
            assert!(!s.pinned() && s.ty() == PageType::Writable, "{s:?}");
            assert_eq!(w.entry(T, 0), rw(P));
            // One read-write mapping: G = allocation + mapping, C = mapping.
            w.assert_counts(P, 2, 1);
        }
        w.assert_clean();
    });
}
