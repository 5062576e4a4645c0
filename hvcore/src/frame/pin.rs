//! Pinning (spec §1.5 "pinned"): one guest-owned, non-nestable type + general reference that
//! keeps a page table validated while nothing else uses it.
//!
//! The pinned flag lives in the state word, so "set the flag" and "the type reference it owns"
//! can never disagree for an observer that decodes one word. Pin takes its references first and
//! sets the flag second; unpin clears the flag first and drops the references second. Between the
//! two steps the references are anonymous, which is harmless: a concurrent second pin sees the
//! flag state of the single word and either wins or gives its own references back. The flag
//! publishes no data, so its CASes are Relaxed (the references were taken with Acquire).

use super::{FrameTable, Level, MmError, Released, decode, owned};
use crate::domain::DomainCtx;
use crate::mem::{Mfn, PhysMem};
use crate::sync::Ordering;

impl FrameTable<'_> {
    /// Pin `mfn` as a table of `level` (validating it if needed). A second pin fails with
    /// [`MmError::AlreadyPinned`] and changes nothing.
    pub fn pin<M, C>(&self, mem: &M, ctx: &C, mfn: Mfn, level: Level) -> Result<(), MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.get_page_and_type(mem, ctx, mfn, level.page_type())?;
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = match decode(cur) {
                Ok(s) if !s.pinned() => s,
                other => {
                    owned(self.put_page_and_type(mem, mfn));
                    return Err(other.err().unwrap_or(MmError::AlreadyPinned));
                }
            };
            // Relaxed: see the module head. Relaxed on failure: seed only.
            match info.state.compare_exchange_weak(
                cur,
                s.with_pinned(true).encode(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Unpin `mfn`, which `ctx`'s domain owns, dropping the pin's references (which may
    /// de-validate the table and free the frame). Unpin of an unpinned frame fails with
    /// [`MmError::NotPinned`].
    pub fn unpin<M, C>(&self, mem: &M, ctx: &C, mfn: Mfn) -> Result<Released, MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.clear_pin(ctx, mfn)?;
        self.put_page_and_type(mem, mfn)
    }

    /// [`Self::unpin`], with the references dropped by `put_page_and_type_deferred`: returns
    /// the table whose de-validation the caller now owns, if the pin was its last reference.
    pub fn unpin_deferred<M, C>(&self, mem: &M, ctx: &C, mfn: Mfn) -> Result<Option<Mfn>, MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.clear_pin(ctx, mfn)?;
        self.put_page_and_type_deferred(mem, mfn)
    }

    /// Clear the pinned flag of `mfn`, which `ctx`'s domain owns; the pin's references are the
    /// caller's to drop.
    fn clear_pin<C: DomainCtx + ?Sized>(&self, ctx: &C, mfn: Mfn) -> Result<(), MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = decode(cur)?;
            if s.general() == 0 {
                return Err(MmError::NotAllocated);
            }
            if s.owner() != ctx.domid() {
                return Err(MmError::WrongOwner);
            }
            if !s.pinned() {
                return Err(MmError::NotPinned);
            }
            // Relaxed: see the module head; the drops below carry the ordering.
            match info.state.compare_exchange_weak(
                cur,
                s.with_pinned(false).encode(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }
}
