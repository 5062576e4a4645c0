//! Page-table entry rules, (de)validation and the lock-free entry update (spec §2, DESIGN.md §6).
//!
//! Submodules: `flags` (bit constants and the pure per-level rules: disallow masks, adjustment,
//! fast-path whitelist, Xen slots), `refs` (the references an entry holds: take / drop, including
//! the linear page-table rule), `validate` (promote / demote of whole tables), `devalidate` (the
//! preemptible de-validation of a partial table) and `update` (`mod_entry`). Everything reads
//! and writes page tables through `PhysMem` and counts through
//! the frame table; no other state.
//!
//! Invariant kept across this module: a present entry of a validated table of level n holds
//! exactly the references `refs::take` took for it, and `refs::drop` gives back exactly those —
//! decided from the entry value and the target's (held, hence stable) type alone.

pub(crate) mod devalidate;
pub mod flags;
pub(crate) mod refs;
mod update;
pub(crate) mod validate;

pub use flags::*;
pub use update::{CmpxchgError, EntryUpdate};
