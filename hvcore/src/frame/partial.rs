//! Partial de-validation (spec §1.5 "Partial", §3.6 "deferred put"; Xen's `PGT_partial` on the
//! de-validation side and `old_guest_table`): a table whose de-validation may be preempted and
//! resumed, possibly in a later hypercall, so that dropping a large subtree never drops 512×512
//! entries in one go.
//!
//! Life of a partial table:
//! * Begun by a deferring put of the last type reference of an L2–L4 table
//!   ([`FrameTable::put_page_and_type_deferred`], or an entry of a partial parent being
//!   dropped): one CAS (Acquire, as for any last drop of a table) takes the word from `C = 1, V`
//!   to `C = 1, P`, then the cursor is set to the number of entries.
//! * Owned: the type reference and one general reference belong to whoever owns the
//!   de-validation — the vCPU's deferred slot (`HcEnv::old_table`) for the table a hypercall
//!   dropped, or the entry of a partial parent that points at it. Nobody else can hold a type
//!   reference: takers of `T` fail with [`MmError::Devalidating`] (they must not wait: the owner
//!   may not run for a long time), takers of another type with `TypeMismatch`, and
//!   `try_get_validated_type` (hence `mod_entry`) with `NotValidated`.
//! * Cursor `n` (kept beside the linear counter, see `linear`): entries `[0, n)` still hold
//!   their references; the target of entry `n − 1` may itself be partial, owned by that entry
//!   (a partial frame has exactly one type reference, so `pt::devalidate` recognises it by its
//!   `P`).
//! * Continued by [`FrameTable::devalidate`] (`pt::devalidate` drops entries from the cursor
//!   down, polling for preemption between entries) and finished at cursor 0: stamped, `C = 0`
//!   with `P` clear published with Release (as any last drop), then the owner's general
//!   reference dropped.
//!
//! The cursor is written Relaxed by the owner only. A vCPU that resumes the work on another CPU
//! reads it after the scheduler's hand-over, which orders it; the audit reads it at quiescence.

use super::{FrameTable, MmError, PARTIAL_BIT, owned};
use crate::mem::{Mfn, PhysMem};
use crate::pt::devalidate::{self, Budget};

/// How far [`FrameTable::devalidate`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a preempted de-validation stays the caller's"]
pub enum Devalidation {
    /// Every entry's references are gone; the frame has `C = 0` and the caller's general
    /// reference was dropped.
    Finished,
    /// Preemption was pending: the frame is still partial and still the caller's.
    Preempted,
}

impl FrameTable<'_> {
    /// [`Self::put_page_and_type`], except that the last type reference of an L2–L4 table makes
    /// it partial instead of de-validating it: returns `Some(mfn)`, and the caller now owns the
    /// de-validation (the type reference and the general reference it was dropping) until
    /// [`Self::devalidate`] finishes it.
    pub fn put_page_and_type_deferred<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        mfn: Mfn,
    ) -> Result<Option<Mfn>, MmError> {
        if self.put_type(mem, mfn, true)? {
            return Ok(Some(mfn));
        }
        self.put_page(mfn)?;
        Ok(None)
    }

    /// Continue the de-validation of partial `mfn`, which the caller owns. `poll` is asked
    /// before each entry that holds references, once one such entry was dropped by this call
    /// (so every call makes progress, and the work between two polls is one entry: at most an
    /// L1 child's 512 leaf drops); `true` stops it.
    pub fn devalidate<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        mfn: Mfn,
        poll: &mut dyn FnMut() -> bool,
    ) -> Result<Devalidation, MmError> {
        let s = self.state(mfn)?;
        let level = s
            .ty()
            .level()
            .filter(|_| s.partial())
            .ok_or(MmError::NotPartial)?;
        if devalidate::run(self, mem, mfn, level, &mut Budget::new(poll)).is_err() {
            return Ok(Devalidation::Preempted);
        }
        self.finish_partial(mfn);
        Ok(Devalidation::Finished)
    }

    /// Partial `mfn` has no entry holding references left: publish `C = 0` (clearing `P` and the
    /// cursor) and drop its owner's general reference.
    pub(crate) fn finish_partial(&self, mfn: Mfn) {
        let Ok(info) = self.info(mfn) else { return };
        self.set_cursor(mfn, 0);
        self.table_untyped(info, PARTIAL_BIT);
        owned(self.put_page(mfn));
    }
}
