//! `mod_entry`: the lock-free update of one page-table entry (DESIGN.md §6, spec §2.8–2.9,
//! §7.3).
//!
//! Protocol, for a table of level n that the caller's domain owns:
//! 1. Take a `G` and a validated level-n `C` on the table for the whole update (so it cannot be
//!    de-validated underneath: a de-validation that passed our slot would leak what we install).
//!    `mod_entry` takes and drops these itself; the table must already be validated (it never
//!    validates a table, and an unvalidated frame is plain data to the hypercall layer).
//! 2. Read the old entry. If old and new differ only in fast-path bits, CAS old → new; done.
//! 3. Otherwise take the new entry's references, then CAS old → new (an MMIO leaf may come back
//!    from taking with its memory type forced uncacheable: that value is what is stored).
//! 4. CAS lost (another updater, or the CPU setting A/D): drop what step 3 took, retry from 2
//!    with the value found.
//! 5. CAS won: drop the references of the value actually replaced (`mod_entry_deferred`: an
//!    old L2–L4 target losing its last type reference becomes partial, its de-validation handed
//!    to the caller).
//!
//! New references are always taken before old ones are dropped, so re-pointing an entry at the
//! same frame never lets its counts touch 0. Each retry means another CAS on this entry
//! succeeded, so the loop is lock-free. Orderings are those of `PhysMem::cas_entry` (AcqRel) and
//! the frame table; there are no atomics in this file.
//!
//! `cmpxchg_entry` is the same protocol with an expected value (the emulated `cmpxchg` and
//! sub-word stores of writable page tables, `crate::ptwr`): at step 2, and after every lost CAS,
//! an entry holding anything else ends the update with [`CmpxchgError::Stale`] and the value
//! found, having dropped whatever step 3 took.

use super::flags::{PTE_A, PTE_D, adjust, check_flags, is_fast_path, is_xen_l4_slot, present};
use super::refs::{self, Dropped, Origin};
use crate::domain::DomainCtx;
use crate::frame::{FrameTable, Level, MmError, owned};
use crate::mem::{Mfn, PhysMem};

/// The result of a successful [`FrameTable::mod_entry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an L2-L4 update requires flushing the table owner's dirty CPUs (spec §5.3)"]
pub struct EntryUpdate {
    /// The table written.
    pub table: Mfn,
    /// Its level.
    pub level: Level,
    /// The entry index.
    pub index: usize,
    /// The value replaced.
    pub old: u64,
    /// The value stored (adjusted; with the old A/D bits if they were preserved).
    pub new: u64,
    /// Only fast-path bits changed: no reference counts moved.
    pub fast_path: bool,
    /// The frame whose references the old entry held and that were dropped (its general
    /// count, and its type count for RW leaves and upper-level entries).
    pub released: Option<Mfn>,
    /// Only from [`FrameTable::mod_entry_deferred`]: the old entry held the last type reference
    /// of this L2–L4 table, which is now partial; the caller owns its de-validation (and the
    /// old entry's references) until `FrameTable::devalidate` finishes it.
    pub devalidating: Option<Mfn>,
}

/// Why [`FrameTable::cmpxchg_entry`] stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpxchgError {
    /// The entry held this value, not the one expected.
    Stale(u64),
    /// The new value (or the table) was refused, as by [`FrameTable::mod_entry`].
    Refused(MmError),
}

impl From<MmError> for CmpxchgError {
    fn from(e: MmError) -> Self {
        Self::Refused(e)
    }
}

/// The value an update expects to replace, and how it reports finding another.
struct Expect<E> {
    value: u64,
    stale: fn(u64) -> E,
}

impl EntryUpdate {
    /// An L2–L4 entry was written: the hypervisor must flush the owner's dirty CPUs before the
    /// hypercall returns (spec §5.3, XSA-286). L1 changes are the guest's to flush.
    pub fn needs_flush(&self) -> bool {
        self.level != Level::L1
    }
}

impl FrameTable<'_> {
    /// Write `new` into entry `index` of `table`, a validated level-`level` table owned by
    /// `ctx`'s domain. With `preserve_ad` the A/D bits of the replaced value are kept
    /// (`MMU_PT_UPDATE_PRESERVE_AD`).
    #[allow(clippy::too_many_arguments)]
    pub fn mod_entry<M, C>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        level: Level,
        index: usize,
        new: u64,
        preserve_ad: bool,
    ) -> Result<EntryUpdate, MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.mod_entry_with(mem, ctx, table, level, index, new, preserve_ad, false, None)
    }

    /// [`Self::mod_entry`] (without preserving A/D) only if the entry holds `expected`: else
    /// [`CmpxchgError::Stale`] with the value it holds, and nothing changed.
    #[allow(clippy::too_many_arguments)]
    pub fn cmpxchg_entry<M, C>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        level: Level,
        index: usize,
        expected: u64,
        new: u64,
    ) -> Result<EntryUpdate, CmpxchgError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        let expect = Expect {
            value: expected,
            stale: CmpxchgError::Stale,
        };
        self.mod_entry_with(
            mem,
            ctx,
            table,
            level,
            index,
            new,
            false,
            false,
            Some(expect),
        )
    }

    /// [`Self::mod_entry`], except that an old L2–L4 entry holding its target's last type
    /// reference does not de-validate the target but makes it partial and hands it to the
    /// caller in [`EntryUpdate::devalidating`] (spec §3.6, the deferred put).
    #[allow(clippy::too_many_arguments)]
    pub fn mod_entry_deferred<M, C>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        level: Level,
        index: usize,
        new: u64,
        preserve_ad: bool,
    ) -> Result<EntryUpdate, MmError>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        self.mod_entry_with(mem, ctx, table, level, index, new, preserve_ad, true, None)
    }

    /// [`Self::mod_entry`], deferring the old target's de-validation if `defer`, and only over
    /// the value `expect`ed if one is.
    #[allow(clippy::too_many_arguments)]
    fn mod_entry_with<M, C, E>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        level: Level,
        index: usize,
        new: u64,
        preserve_ad: bool,
        defer: bool,
        expect: Option<Expect<E>>,
    ) -> Result<EntryUpdate, E>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
        E: From<MmError>,
    {
        if table.index().is_none_or(|i| i >= mem.frames()) {
            return Err(MmError::BadMfn.into());
        }
        if index >= mem.entries_per_frame() {
            return Err(MmError::BadIndex.into());
        }
        if level == Level::L4 && is_xen_l4_slot(index) {
            return Err(MmError::XenSlot.into());
        }
        check_flags(level, new, ctx.has_io_caps())?;
        let new = adjust(level, new);

        // Step 1, both references in one CAS (`frame::pair`).
        self.hold_validated(table, ctx.domid(), level.page_type())?;
        let r = self.mod_entry_held(
            mem,
            ctx,
            table,
            level,
            index,
            new,
            preserve_ad,
            defer,
            expect,
        );
        // This may be the table's last type reference (it was unpinned meanwhile): the put
        // then de-validates it like any other last drop.
        owned(self.put_page_and_type(mem, table));
        r
    }

    /// Steps 2–5, with the table held.
    #[allow(clippy::too_many_arguments)]
    fn mod_entry_held<M, C, E>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        level: Level,
        index: usize,
        new: u64,
        preserve_ad: bool,
        defer: bool,
        expect: Option<Expect<E>>,
    ) -> Result<EntryUpdate, E>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
        E: From<MmError>,
    {
        let mut old = mem.read_entry(table, index);
        loop {
            if let Some(e) = expect.as_ref().filter(|e| e.value != old) {
                return Err((e.stale)(old));
            }
            let val = if preserve_ad {
                new | (old & (PTE_A | PTE_D))
            } else {
                new
            };
            let done = |val, fast_path, dropped| {
                let (released, devalidating) = match dropped {
                    Dropped::Nothing => (None, None),
                    Dropped::Released(mfn) => (Some(mfn), None),
                    Dropped::Begun(mfn) => (None, Some(mfn)),
                };
                EntryUpdate {
                    table,
                    level,
                    index,
                    old,
                    new: val,
                    fast_path,
                    released,
                    devalidating,
                }
            };
            if is_fast_path(old, val) {
                match mem.cas_entry(table, index, old, val) {
                    Ok(()) => return Ok(done(val, true, Dropped::Nothing)),
                    Err(seen) => {
                        old = seen;
                        continue;
                    }
                }
            }
            // `take` may force an MMIO leaf uncacheable: store what it returns.
            let val = if present(val) {
                refs::take(self, mem, ctx, table, level, val, Origin::Update)?
            } else {
                val
            };
            #[cfg(not(loom_mutant = "entry_blind_write"))]
            let r = mem.cas_entry(table, index, old, val);
            // Mutant (caught by loom-tests entry_update_*): the entry is stored, not CASed.
            #[cfg(loom_mutant = "entry_blind_write")]
            let r = {
                mem.write_entry(table, index, val);
                Ok::<(), u64>(())
            };
            match r {
                Ok(()) => {
                    let dropped = refs::drop_entry(self, mem, table, level, old, defer);
                    return Ok(done(val, false, dropped));
                }
                Err(seen) => {
                    refs::drop(self, mem, table, level, val);
                    old = seen;
                }
            }
        }
    }
}
