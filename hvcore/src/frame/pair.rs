//! A general and a type reference taken or dropped together: [`FrameTable::get_page_and_type`],
//! [`FrameTable::put_page_and_type`], `hold_validated` (`mod_entry`'s hold on the table it
//! writes) and `get_page_if_and_writable` (an RW leaf's references on its target).
//!
//! Each is the general step and the type step one after the other, as `general` and `typed`
//! define them, except that when the state word needs nothing more of the pair than two count
//! changes — no validation, no type change, not the last type or general reference — both move
//! in one CAS. That CAS is a linearisation the two-step path also has (the second step running
//! right after the first, on the word the first left), so nothing can observe a difference; on
//! any other word the fast path gives up before changing anything and the two steps run as
//! before, with their errors. Half the read-modify-writes on `mod_entry`'s path go this way.
//!
//! Orderings: a pair taken is Acquire (both of its steps are: it pairs with the Release that set
//! `V`, published `C == 0` or assigned the frame); a pair dropped is Release (both non-last drops
//! are: the holder's uses happen-before the last holder's de-validation or free). Seed loads and
//! failure orderings are Relaxed: the value only seeds the next attempt.

use super::{FrameState, FrameTable, MmError, PageType, Released, decode, owned};
use crate::domain::{DomId, DomainCtx};
use crate::mem::{Mfn, PhysMem};
use crate::sync::Ordering;

impl FrameTable<'_> {
    /// `get_page(mfn, ctx.domid())` then `get_page_type`; on failure nothing is held.
    pub fn get_page_and_type<M, C>(
        &self,
        mem: &M,
        ctx: &C,
        mfn: Mfn,
        want: PageType,
    ) -> Result<(), MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.get_page(mfn, ctx.domid())?;
        if let Err(e) = self.get_page_type(mem, ctx, mfn, want) {
            owned(self.put_page(mfn));
            return Err(e);
        }
        Ok(())
    }

    /// Drop a type reference and its general reference (`put_page_type`, then `put_page`).
    #[inline]
    pub fn put_page_and_type<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        mfn: Mfn,
    ) -> Result<Released, MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        // Fast path: a type reference of a validated frame that is not its last (`C ≥ 2`, so
        // `G ≥ 2` and the general reference is not the last either).
        while let Ok(s) = decode(cur)
            && s.type_count() >= 2
            && s.validated()
            && let Ok(next) = s.dec_type().and_then(FrameState::dec_general)
        {
            // Release: the two non-last drops' ordering (module head). Relaxed on failure.
            match info.state.compare_exchange_weak(
                cur,
                next.encode(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Released::Held),
                Err(seen) => cur = seen,
            }
        }
        self.put_page_type(mem, mfn)?;
        self.put_page(mfn)
    }

    /// `mod_entry`'s hold on the table it writes: `get_page(mfn, dom)` (its errors as they
    /// are), then a type reference only if `mfn` is already a validated `want` (no waiting, no
    /// validation; any refusal but `CountOverflow` is `NotValidated`). One CAS for both.
    #[inline]
    pub(crate) fn hold_validated(
        &self,
        mfn: Mfn,
        dom: DomId,
        want: PageType,
    ) -> Result<(), MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = decode(cur)?;
            if !s.allocated() || s.general() == 0 {
                return Err(MmError::NotAllocated);
            }
            if s.owner() != dom {
                return Err(MmError::WrongOwner);
            }
            let held = s.inc_general()?;
            if s.type_count() == 0 || !s.validated() || s.ty() != want {
                return Err(MmError::NotValidated);
            }
            let next = held.inc_type().map_err(|e| match e {
                MmError::CountOverflow => e,
                _ => MmError::NotValidated,
            })?;
            // Acquire: the ordering of both takes (module head). Relaxed on failure.
            match info.state.compare_exchange_weak(
                cur,
                next.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// The fast path of `get_page_if(mfn, allow)` followed by `get_page_type(.., Writable)`:
    /// takes both in one CAS if `mfn` is already a validated writable frame whose owner
    /// `allow`s it, and returns `true`; otherwise takes nothing and returns `false`, and the
    /// caller takes the two steps (which report why they fail).
    #[inline]
    pub(crate) fn try_get_page_if_and_writable(
        &self,
        mfn: Mfn,
        allow: impl Fn(DomId) -> bool,
    ) -> bool {
        let Ok(info) = self.info(mfn) else {
            return false;
        };
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        // A validated writable frame with any type count: `get_page_type` would only count the
        // reference (`C == 0` with `T` writable and `V` kept is the "type never lost" case).
        while let Ok(s) = decode(cur)
            && s.allocated()
            && s.general() > 0
            && s.ty() == PageType::Writable
            && s.validated()
            && allow(s.owner())
            && let Ok(next) = s.inc_general().and_then(FrameState::inc_type)
        {
            // Acquire: the ordering of both takes (module head). Relaxed on failure.
            match info.state.compare_exchange_weak(
                cur,
                next.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
        false
    }
}
