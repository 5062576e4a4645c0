//! Model (c): two `mod_entry` updates of the same page-table entry (DESIGN.md §6; spec case 84).
//!
//! What can fail: each updater takes the new entry's references, installs it with a CAS against
//! the value it read, and drops the references of the value it actually replaced. If the
//! install does not compare (or drops what it first read rather than what it replaced), one
//! update overwrites the other unseen: the overwritten entry's references leak and the first
//! value's are dropped twice. The exact counts and the audit at the end catch either.
//! Mutant: `entry_blind_write` (the entry is stored instead of compare-and-swapped).
#![cfg(loom)]

mod common;

use common::{Arc, PTE_P, PTE_RW, World, frame_of, join, model, ro, rw, spawn};
use hvcore::frame::Level;

/// The pinned L1 table.
const T: u64 = 0;

#[test]
fn entry_update_two_writers_of_one_entry() {
    model(|| {
        // T[0] maps frame 1 read-write; one thread re-points it read-write at frame 2, the other
        // read-only at frame 3. Both must succeed, in some order.
        let w = Arc::new(World::new(4, 2));
        assert_eq!(w.pin(T, Level::L1), Ok(()));
        assert_eq!(w.update(T, 0, rw(1)), Ok(()));
        let w1 = w.clone();
        let other = spawn(move || w1.update(T, 0, rw(2)));
        let mine = w.update(T, 0, ro(3));
        assert_eq!((mine, join(other)), (Ok(()), Ok(())));

        let e = w.entry(T, 0);
        assert!(
            e == rw(2) || e == ro(3),
            "final entry {e:#x} is neither update"
        );
        for f in 1..=3 {
            let mapped = e & PTE_P != 0 && frame_of(e) == f;
            let writable = mapped && e & PTE_RW != 0;
            w.assert_counts(f, 1 + u32::from(mapped), u32::from(writable));
        }
        w.assert_clean();
    });
}
