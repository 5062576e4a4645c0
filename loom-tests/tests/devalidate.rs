//! Model (d): an entry update racing the unpin that de-validates its table (spec §7.3 (a)).
//!
//! What can fail: `mod_entry` holds a type reference on the table for the whole update, so the
//! table's last reference — the unpin's or the updater's own — is dropped only after the update,
//! and the de-validation that follows must see the entry as updated. That needs the
//! de-validator's "last reference" CAS to acquire the other holder's release; without it
//! de-validation may read the entry as it was before the update, dropping the old target's
//! references a second time and leaking the new target's. The exact counts and the audit at
//! the end catch it.
//! Mutant: `devalidate_relaxed` (the V-clearing CAS of the last table reference is Relaxed).
#![cfg(loom)]

mod common;

use common::{Arc, World, join, model, rw, spawn};
use hvcore::frame::{Level, MmError};

/// The pinned L1 table.
const T: u64 = 0;

#[test]
fn devalidate_races_entry_update() {
    model(|| {
        // T[0] maps frame 1 read-write; one thread re-points it at frame 2 while the other
        // unpins T (its only other reference), so whoever drops last de-validates T.
        let w = Arc::new(World::new(3, 2));
        assert_eq!(w.pin(T, Level::L1), Ok(()));
        assert_eq!(w.update(T, 0, rw(1)), Ok(()));
        let w1 = w.clone();
        let updater = spawn(move || w1.update(T, 0, rw(2)));
        assert_eq!(w.unpin(T), Ok(()));
        let updated = join(updater);
        assert!(
            updated == Ok(()) || updated == Err(MmError::NotValidated),
            "update: {updated:?}"
        );
        // T is no longer a page table, so nothing it contains holds a reference any more.
        let s = w.s(T);
        assert!(s.type_count() == 0 && !s.pinned(), "{s:?}");
        w.assert_counts(T, 1, 0);
        w.assert_counts(1, 1, 0);
        w.assert_counts(2, 1, 0);
        w.assert_clean();
    });
}
