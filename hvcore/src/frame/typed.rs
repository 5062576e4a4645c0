//! Type references: `get_page_type`, `put_page_type` and the validation state machine (spec §1.5).
//!
//! State machine (`C` type count, `T` type, `V` validated):
//! * `C == 0`: free to retype. Taking `want` publishes `C = 1`; if `T == want` and `V` is set
//!   (a writable or descriptor frame whose type was never lost) the reference is usable at once,
//!   otherwise `V` is cleared and this taker becomes the frame's validator (tables:
//!   `pt::validate::promote`; descriptor frames: `desc::validate_frame`, which checks and
//!   rewrites every descriptor; writable frames need nothing).
//! * `C ≥ 1, V` clear: exactly one holder is validating (after a `C` 0 → 1), de-validating (its
//!   `C` 1 → 0), or finishing a type change. Takers of the same type spin until the word
//!   changes; takers of another type fail at once. Nobody else can hold a reference here, so the
//!   holder alone moves the word on.
//! * `C ≥ 1, V` set: takers of `T` increment, takers of another type fail with `TypeMismatch`.
//! * `C == 1, P` set (partial, see `partial`): a de-validation that may last across hypercalls;
//!   takers of `T` fail with `Devalidating` instead of waiting, other types with `TypeMismatch`.
//!
//! XSA-401: every safety action of a type change happens after the new type is published: the
//! CAS to `C = 1, V` clear comes first, then [`DomainCtx::flush_retyped`], then validation, then
//! `V` is set. A type change is reported only when `T` actually changes, with the *old* type
//! (XSA-408). XSA-402: the CAS that publishes any type but writable also clears the frame's
//! non-coherent flag (set by `mark_non_coherent` while a writable WC mapping exists); if it was
//! set, the frame's cache lines are flushed ([`DomainCtx::flush_frame_cache`]) after the retype
//! flush and before validation. Validation runs to completion (not preemptible in this version): a
//! failed validation releases every child reference it took and leaves the frame untyped
//! (`C = 0, T = None`). De-validation runs to completion too, except where the hypercall layer
//! asks for it deferred (`put_type` with `defer`): an L2–L4 table then becomes partial.
//!
//! Deadlock freedom: a validator of level n takes only level n-1 types, writable types (L1) or
//! already validated same-level types without waiting (linear entries), so the waits-for graph
//! descends strictly in level. De-validation only drops references and never waits.
//!
//! Orderings: a taker's successful CAS is Acquire (pairs with the Release that set `V` or
//! published `C == 0`); setting `V` is Release (publishes the validated and adjusted entries);
//! a non-last drop is Release (the holder's entry updates happen-before de-validation reads
//! them); the last drop starts with an Acquire (a fence for writable types, the `V`-clearing
//! CAS for tables) and publishes `C == 0` with Release after writing the stamp Relaxed. Spin and
//! seed loads are Relaxed: a successful Acquire CAS always follows. The non-coherent flag is set
//! with a Relaxed `fetch_or`: it publishes no data, and RMWs of the word never lose it.

use super::{
    FrameInfo, FrameTable, Level, MmError, NON_COHERENT_BIT, PageType, TYPE_COUNT_ONE,
    VALIDATED_BIT, decode,
};
use crate::domain::{DomainCtx, TypeChange};
use crate::mem::{Mfn, PhysMem};
use crate::pt;
use crate::sync::{Ordering, fence, spin_loop};

impl FrameTable<'_> {
    /// Take a type reference of type `want` on `mfn`; the caller already holds a general
    /// reference. Validates an L1–L4 table or a descriptor frame (`desc::validate_frame`) on its
    /// first typed reference (other takers wait), calling `ctx.flush_retyped` first if the type
    /// changed. `ctx` is the domain whose page
    /// tables are being validated (the owner of `mfn` for L1–L4).
    pub fn get_page_type<M, C>(
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
        if want == PageType::None {
            return Err(MmError::BadType);
        }
        let validates = want.level().is_some() || want == PageType::SegDesc;
        if validates && mfn.index().is_none_or(|i| i >= mem.frames()) {
            return Err(MmError::BadMfn);
        }
        let info = self.info(mfn)?;
        // Mutant (caught by loom-tests shootdown_xsa401_*): XSA-401, the retype flush issued
        // before the new type is published.
        #[cfg(loom_mutant = "flush_before_publish")]
        if let Ok(s) = decode(info.state.load(Ordering::Acquire))
            && s.type_count() == 0
            && s.ty() != want
        {
            let stamp = info.stamp.load(Ordering::Relaxed);
            let (owner, old_type, new_type) = (s.owner(), s.ty(), want);
            ctx.flush_retyped(TypeChange {
                mfn,
                owner,
                old_type,
                new_type,
                stamp,
            });
        }
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        let (prev, next) = loop {
            let s = decode(cur)?;
            let next = if s.type_count() == 0 {
                if s.ty() == want && s.validated() {
                    s.inc_type()?
                } else {
                    // Any type but writable clears the non-coherent flag (we flush below).
                    s.inc_type()?
                        .with_type(want)
                        .with_validated(false)
                        .with_non_coherent(s.non_coherent() && want == PageType::Writable)
                }
            } else if s.ty() != want {
                return Err(MmError::TypeMismatch);
            } else if s.partial() {
                // A de-validation that may last across hypercalls: never wait for it.
                #[cfg(not(loom_mutant = "partial_taken"))]
                return Err(MmError::Devalidating);
                // Mutant (caught by loom-tests deferred_*): a partial table is taken as if it
                // were validated.
                #[cfg(loom_mutant = "partial_taken")]
                {
                    s.inc_type()?
                }
            } else if !s.validated() {
                // Another holder is (de)validating: wait for the word to change.
                spin_loop();
                // Relaxed: re-seeds the CAS.
                cur = info.state.load(Ordering::Relaxed);
                continue;
            } else {
                s.inc_type()?
            };
            #[cfg(not(loom_mutant = "type_cas_stale_decision"))]
            let expected = cur;
            // Mutant (caught by loom-tests pin_vs_writable_*): the CAS expects a fresh load, so
            // the decision made on `cur` is not re-checked.
            #[cfg(loom_mutant = "type_cas_stale_decision")]
            let expected = info.state.load(Ordering::Relaxed);
            // Acquire: pairs with the Release that set V or published C == 0 (and the stamp).
            // Relaxed on failure: the value only seeds the next attempt.
            match info.state.compare_exchange_weak(
                expected,
                next.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (s, next),
                Err(seen) => cur = seen,
            }
        };
        if next.validated() {
            return Ok(());
        }
        // We hold C = 1 with V clear: the frame is ours to finish.
        #[cfg(not(loom_mutant = "flush_before_publish"))]
        if prev.ty() != want {
            let change = TypeChange {
                mfn,
                owner: next.owner(),
                old_type: prev.ty(),
                new_type: want,
                // Relaxed: written before the Release that published C == 0, which our Acquire
                // CAS read from (or from a later RMW of its release sequence).
                stamp: info.stamp.load(Ordering::Relaxed),
            };
            ctx.flush_retyped(change);
        }
        // XSA-402: the flag was cleared by our CAS; flush after the retype flush (no stale
        // writable mapping is left to dirty the lines again) and before validation reads them.
        if prev.non_coherent() && !next.non_coherent() {
            ctx.flush_frame_cache(mfn);
        }
        if let Some(level) = want.level()
            && let Err(e) = pt::validate::promote(self, mem, ctx, mfn, level)
        {
            self.abort_type(mfn);
            return Err(e);
        }
        if want == PageType::SegDesc
            && let Err(e) = crate::desc::validate_frame(mem, mfn)
        {
            self.abort_type(mfn);
            return Err(e);
        }
        // Release: publishes the validation (adjusted entries, child references, Xen slots) to
        // takers whose Acquire CAS sees V. Only we can change C or V here, so a plain OR is
        // exact.
        #[cfg(not(loom_mutant = "validated_relaxed"))]
        let publish = Ordering::Release;
        // Mutant (caught by loom-tests validation_*): V published without Release.
        #[cfg(loom_mutant = "validated_relaxed")]
        let publish = Ordering::Relaxed;
        info.state.fetch_or(VALIDATED_BIT, publish);
        Ok(())
    }

    /// Take a type reference only if `mfn` is already a validated `want` (no waiting, no
    /// validation): same-level linear targets and `mod_entry`'s hold on the table it writes.
    /// The caller holds a general reference.
    pub fn try_get_validated_type(&self, mfn: Mfn, want: PageType) -> Result<(), MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = decode(cur)?;
            if s.type_count() == 0 || !s.validated() {
                return Err(MmError::NotValidated);
            }
            if s.ty() != want {
                return Err(MmError::TypeMismatch);
            }
            let next = s.inc_type()?;
            // Acquire: pairs with the Release that set V. Relaxed on failure: seed only.
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

    /// Mark `mfn` non-coherent (XSA-402): a writable mapping of it with a memory type the CPUs
    /// do not snoop was created. The caller holds a writable type reference, so the flag is set
    /// while `T` is writable; the next taker of another type clears it and flushes the frame's
    /// cache lines ([`DomainCtx::flush_frame_cache`]) before validating.
    pub(crate) fn mark_non_coherent(&self, mfn: Mfn) {
        let Ok(info) = self.info(mfn) else { return };
        // Relaxed: the flag publishes no data and pairs with nothing. It travels in the state
        // word's modification order: every later RMW of the word reads a value that has it,
        // including the CAS that publishes another type after our writable reference is gone.
        info.state.fetch_or(NON_COHERENT_BIT, Ordering::Relaxed);
    }

    /// Undo a `C = 1` we published but could not validate: the frame becomes untyped.
    fn abort_type(&self, mfn: Mfn) {
        let Ok(info) = self.info(mfn) else { return };
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let Ok(s) = decode(cur) else { return };
            debug_assert!(s.type_count() == 1 && !s.validated());
            let next = s.with_type_count(0).with_type(PageType::None);
            // Release: our unwinding (child references dropped) happens-before the next taker.
            match info.state.compare_exchange_weak(
                cur,
                next.encode(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Drop a type reference the caller holds. The last reference of an L1–L4 table
    /// de-validates it (every child reference dropped), then stamps it and publishes `C = 0`;
    /// for other types the frame is stamped and `V` kept.
    pub fn put_page_type<M: PhysMem + ?Sized>(&self, mem: &M, mfn: Mfn) -> Result<(), MmError> {
        self.put_type(mem, mfn, false).map(|_| ())
    }

    /// [`Self::put_page_type`]; with `defer`, the last reference of an L2–L4 table makes it
    /// partial instead of de-validating it (returns `true`): the caller then owns the
    /// de-validation and finishes it with `devalidate` (see `partial`).
    pub(crate) fn put_type<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        mfn: Mfn,
        defer: bool,
    ) -> Result<bool, MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = decode(cur)?;
            // C ≥ 1 with V clear belongs to a validator; nobody else holds a reference then.
            if s.type_count() == 0 || !s.validated() || (s.type_count() == 1 && s.pinned()) {
                return Err(MmError::CountUnderflow);
            }
            if s.type_count() > 1 {
                let next = s.dec_type()?;
                // Release: our uses (entry updates on a table) happen-before the last holder's
                // de-validation. Relaxed on failure: seed only.
                match info.state.compare_exchange_weak(
                    cur,
                    next.encode(),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(false),
                    Err(seen) => cur = seen,
                }
                continue;
            }
            if let Some(level) = s.ty().level() {
                // Last reference to a table: clear V keeping C = 1, so takers wait while we
                // de-validate (or, setting P, fail while the de-validation is deferred).
                // Acquire: every other holder's Release drop happens-before our reads of the
                // entries and of the clock. Relaxed on failure: seed only.
                let begin = defer && level != Level::L1;
                let next = s.with_validated(false).with_partial(begin);
                #[cfg(not(loom_mutant = "devalidate_relaxed"))]
                let last = Ordering::Acquire;
                // Mutant (caught by loom-tests devalidate_*): the last drop does not acquire the
                // other holders' entry updates before de-validating.
                #[cfg(loom_mutant = "devalidate_relaxed")]
                let last = Ordering::Relaxed;
                if let Err(seen) =
                    info.state
                        .compare_exchange_weak(cur, next.encode(), last, Ordering::Relaxed)
                {
                    cur = seen;
                    continue;
                }
                if begin {
                    self.set_cursor(mfn, mem.entries_per_frame());
                    return Ok(true);
                }
                pt::validate::demote(self, mem, mfn, level);
                self.table_untyped(info, 0);
                return Ok(false);
            }
            // Last reference to a writable / descriptor frame. Acquire fence: makes the load
            // that saw C == 1 an Acquire, so the other holders' drops (and the entry updates that
            // removed their mappings) happen-before the clock read and the stamp is no older
            // than their last use. Only the holder of the last reference writes the stamp, so a
            // retry after a failed CAS just overwrites our own earlier store.
            fence(Ordering::Acquire);
            // `stamp`, an RMW of the clock (Release), not a load: the unmaps that removed the
            // last mappings are sequenced before it, so a CPU whose flush ticks after the stamp
            // also sees them (see `FlushClock::stamp`; a load allows the store-buffering
            // outcome that model `flush_filter` exhibits).
            #[cfg(not(loom_mutant = "stamp_plain_load"))]
            let stamp = self.clock.stamp();
            // Mutant (caught by loom-tests flush_filter_*): stamped with a plain load.
            #[cfg(loom_mutant = "stamp_plain_load")]
            let stamp = self.clock.now();
            // Relaxed: published by the Release CAS below.
            info.stamp.store(stamp, Ordering::Relaxed);
            // Release: publishes the stamp. Relaxed on failure: seed only.
            #[cfg(not(loom_mutant = "put_type_blind_store"))]
            let r = info.state.compare_exchange(
                cur,
                s.with_type_count(0).encode(),
                Ordering::Release,
                Ordering::Relaxed,
            );
            // Mutant (caught by loom-tests type_refs_*): a blind store instead of the CAS.
            #[cfg(loom_mutant = "put_type_blind_store")]
            let r = {
                info.state
                    .store(s.with_type_count(0).encode(), Ordering::Release);
                Ok::<u64, u64>(cur)
            };
            match r {
                Ok(_) => return Ok(false),
                Err(seen) => cur = seen,
            }
        }
    }

    /// The end of a table's de-validation by the holder of its last type reference (`C == 1`,
    /// `V` clear): stamp it and publish `C = 0`, clearing `also` (`P` for a partial one).
    pub(crate) fn table_untyped(&self, info: &FrameInfo, also: u64) {
        // `stamp`, an RMW of the clock, not a load: see `FlushClock::stamp`.
        #[cfg(not(loom_mutant = "stamp_plain_load"))]
        let stamp = self.clock.stamp();
        // Mutant (caught by loom-tests flush_filter_*): stamped with a plain load.
        #[cfg(loom_mutant = "stamp_plain_load")]
        let stamp = self.clock.now();
        // Relaxed: published by the Release below.
        info.stamp.store(stamp, Ordering::Relaxed);
        // Release: publishes the stamp and the de-validation; pairs with the next taker's
        // Acquire CAS. Only G can move meanwhile, and `also` is set, so nothing borrows.
        let before = info
            .state
            .fetch_sub(TYPE_COUNT_ONE | also, Ordering::Release);
        debug_assert!(decode(before).is_ok_and(|b| b.type_count() == 1 && before & also == also));
    }
}
