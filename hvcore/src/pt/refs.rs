//! The references one present entry holds: `take` (Xen's `get_page_from_lNe`, spec §2.4–2.5)
//! and `drop` (`put_page_from_lNe`), exact mirrors of each other.
//!
//! What an entry of a table `t` at level n holds:
//! * L1 → RAM frame `f` (in the frame table): one `G` on `f`; if RW also one writable `C`.
//!   Cache attributes other than WB are refused for special pages; RW + WC marks `f`
//!   non-coherent unless the CPUs self-snoop (XSA-402; the mark is not a reference).
//!   L1 → non-RAM frame (beyond the table, I/O-capable domains only): nothing; the stored
//!   entry is forced uncacheable unless it selects UC, UC- or WC (XSA-154).
//! * L2–L4 → `t` itself (self-map, never RW): nothing.
//! * L2–L4 → `f` typed level n-1 (a child): one `G` + one `C` on `f`.
//! * L2–L4 → `f` typed level n (linear, never RW): one `G` + one `C` on `f`, plus `t`'s linear
//!   counter +1 and `f`'s −1.
//!
//! `drop` decides child versus linear from the target's type, which cannot change while the
//! entry's type reference is held. Callers check flags (`flags::check_flags`) and adjust the
//! entry before `take`. No atomics here beyond the frame table's own.

use super::flags::{
    ALL_ONES_FRAME, CACHE_WC, L1_CACHE_ATTR, PTE_RW, force_mmio_uncacheable, frame_of, present,
};
use crate::domain::DomainCtx;
use crate::frame::{FrameTable, Level, MmError, PageType, owned};
use crate::mem::{Mfn, PhysMem};

/// Where an entry being taken comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Validation of a whole table: leaves may map only the owner's frames (spec §2.6: Xen
    /// passes the table owner as the frame owner, so foreign mappings do not re-validate).
    Validation,
    /// An explicit update: leaves may map frames whose owner the context may map.
    Update,
}

/// Take the references present entry `e` of table `table` (level `level`) needs. Returns the
/// value to store: `e`, except that an MMIO leaf has its memory type forced uncacheable.
#[inline]
pub(crate) fn take<M, C>(
    ft: &FrameTable<'_>,
    mem: &M,
    ctx: &C,
    table: Mfn,
    level: Level,
    e: u64,
    origin: Origin,
) -> Result<u64, MmError>
where
    M: PhysMem + ?Sized,
    C: DomainCtx + ?Sized,
{
    debug_assert!(present(e));
    // L1 first, as a plain branch: the common case, which a `match` on the level would reach
    // through a jump table.
    if level == Level::L1 {
        return take_leaf(ft, mem, ctx, e, origin);
    }
    match level.lower() {
        None => take_leaf(ft, mem, ctx, e, origin),
        Some(lower) => take_upper(ft, mem, ctx, table, level, lower, e).map(|()| e),
    }
}

/// L1 leaf rules (spec §2.4); returns the value to store.
#[inline(always)]
fn take_leaf<M, C>(
    ft: &FrameTable<'_>,
    mem: &M,
    ctx: &C,
    e: u64,
    origin: Origin,
) -> Result<u64, MmError>
where
    M: PhysMem + ?Sized,
    C: DomainCtx + ?Sized,
{
    let frame = frame_of(e);
    if frame == ALL_ONES_FRAME {
        return Err(MmError::AllOnesFrame);
    }
    let target = Mfn(frame);
    if !ft.contains(target) {
        // Not RAM: MMIO, only with I/O capabilities, never cacheable (XSA-154), and no
        // references are taken.
        return if ctx.has_io_caps() {
            Ok(force_mmio_uncacheable(e))
        } else {
            Err(MmError::MmioDenied)
        };
    }
    let dom = ctx.domid();
    let allow = |owner| match origin {
        Origin::Update => ctx.may_map(owner),
        _ => owner == dom,
    };
    // An RW leaf on a frame that is already a validated writable one: both references in one
    // CAS (`frame::pair`); otherwise the two steps below.
    let both = e & PTE_RW != 0 && ft.try_get_page_if_and_writable(target, allow);
    if !both {
        ft.get_page_if(target, allow).map_err(|err| match err {
            MmError::CountOverflow => err,
            _ => MmError::FrameBusy,
        })?;
    }
    if e & PTE_RW != 0
        && !both
        && let Err(err) = ft.get_page_type(mem, ctx, target, PageType::Writable)
    {
        owned(ft.put_page(target));
        return Err(match err {
            MmError::CountOverflow => err,
            _ => MmError::WritableBusy,
        });
    }
    if e & L1_CACHE_ATTR != 0 && ctx.is_special_page(target) {
        // Hypervisor pages shared with guests are mapped write-back only (step 6).
        if e & PTE_RW != 0 {
            owned(ft.put_page_type(mem, target));
        }
        owned(ft.put_page(target));
        return Err(MmError::SpecialPageCacheAttr);
    }
    if e & (L1_CACHE_ATTR | PTE_RW) == CACHE_WC | PTE_RW && !ctx.cpu_self_snoop() {
        // XSA-402: writes through this mapping may bypass the caches (step 7).
        ft.mark_non_coherent(target);
    }
    Ok(e)
}

/// L2–L4 rules (spec §2.5): a child of the next lower level, else the linear rule.
fn take_upper<M, C>(
    ft: &FrameTable<'_>,
    mem: &M,
    ctx: &C,
    table: Mfn,
    level: Level,
    lower: Level,
    e: u64,
) -> Result<(), MmError>
where
    M: PhysMem + ?Sized,
    C: DomainCtx + ?Sized,
{
    let target = Mfn(frame_of(e));
    if target == table {
        // Self-map: allowed read-only, takes nothing (and `drop` skips it symmetrically).
        return linear_allowed(ctx, e);
    }
    if !ft.contains(target) {
        return Err(MmError::BadChild);
    }
    ft.get_page(target, ctx.domid()).map_err(|err| match err {
        MmError::CountOverflow => err,
        _ => MmError::BadChild,
    })?;
    let r = match ft.get_page_type(mem, ctx, target, lower.page_type()) {
        Err(MmError::TypeMismatch) => take_linear(ft, mem, ctx, table, level, target, e),
        other => other,
    };
    if r.is_err() {
        owned(ft.put_page(target));
    }
    r
}

/// Entry-level conditions for any same-level entry.
fn linear_allowed<C: DomainCtx + ?Sized>(ctx: &C, e: u64) -> Result<(), MmError> {
    if !ctx.linear_pt_enabled() {
        Err(MmError::LinearDisabled)
    } else if e & PTE_RW != 0 {
        Err(MmError::LinearWritable)
    } else {
        Ok(())
    }
}

/// The linear rule for `table` → `target` (both level `level`), the caller holding a `G` on
/// `target`: take a `C` on an already validated same-level target without waiting, then move
/// both linear counters. On failure nothing beyond the caller's `G` is held.
fn take_linear<M, C>(
    ft: &FrameTable<'_>,
    mem: &M,
    ctx: &C,
    table: Mfn,
    level: Level,
    target: Mfn,
    e: u64,
) -> Result<(), MmError>
where
    M: PhysMem + ?Sized,
    C: DomainCtx + ?Sized,
{
    if ft.state(target)?.ty() != level.page_type() {
        // Higher-level (or other) targets are never allowed.
        return Err(MmError::TypeMismatch);
    }
    linear_allowed(ctx, e)?;
    ft.try_get_validated_type(target, level.page_type())
        .map_err(|err| match err {
            MmError::CountOverflow => err,
            _ => MmError::LinearTarget,
        })?;
    // Undoing the type reference below may be the target's last (its other holders may have
    // gone meanwhile); `put_page_type` then de-validates it like any other last drop.
    if let Err(err) = ft.inc_linear_entries(table) {
        owned(ft.put_page_type(mem, target));
        return Err(err);
    }
    if let Err(err) = ft.inc_linear_uses(target) {
        owned(ft.dec_linear_entries(table));
        owned(ft.put_page_type(mem, target));
        return Err(err);
    }
    Ok(())
}

/// What [`drop_entry`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The entry held nothing.
    Nothing,
    /// The references on this frame are gone.
    Released(Mfn),
    /// The entry held the last type reference of this L2–L4 table, which is now partial: the
    /// entry keeps its general and type reference as the de-validation's owner (`frame::partial`).
    Begun(Mfn),
}

/// Drop the references present-or-not entry `e` of `table` (level `level`) holds; returns the
/// frame whose counts dropped, if any.
pub(crate) fn drop<M: PhysMem + ?Sized>(
    ft: &FrameTable<'_>,
    mem: &M,
    table: Mfn,
    level: Level,
    e: u64,
) -> Option<Mfn> {
    match drop_entry(ft, mem, table, level, e, false) {
        Dropped::Released(target) | Dropped::Begun(target) => Some(target),
        Dropped::Nothing => None,
    }
}

/// [`drop`]; with `defer`, a last type reference on an L2–L4 target begins its partial
/// de-validation instead of de-validating it (the linear counters are adjusted first, so a
/// partial target holds no linear use).
#[inline(always)]
pub(crate) fn drop_entry<M: PhysMem + ?Sized>(
    ft: &FrameTable<'_>,
    mem: &M,
    table: Mfn,
    level: Level,
    e: u64,
    defer: bool,
) -> Dropped {
    if !present(e) {
        return Dropped::Nothing;
    }
    let target = Mfn(frame_of(e));
    if !ft.contains(target) || (level != Level::L1 && target == table) {
        return Dropped::Nothing;
    }
    if level == Level::L1 {
        if e & PTE_RW != 0 {
            owned(ft.put_page_and_type(mem, target));
            return Dropped::Released(target);
        }
    } else {
        // We hold a type reference on `target`, so its type is stable: same level = linear.
        if ft.state(target).is_ok_and(|s| s.ty() == level.page_type()) {
            owned(ft.dec_linear_entries(table));
            owned(ft.dec_linear_uses(target));
        }
        match ft.put_type(mem, target, defer) {
            Ok(true) => return Dropped::Begun(target),
            r => owned(r),
        }
    }
    owned(ft.put_page(target));
    Dropped::Released(target)
}
