//! Validation (`promote`, Xen's `promote_lN_table`, spec §2.6) and de-validation (`demote`).
//!
//! Both run while the caller holds the frame's only type reference with `V` clear (the
//! validate-locked state of `frame::typed`), so no other writer can touch the table: its entries
//! are written only by `mod_entry` under a validated type reference, and nobody can hold a writable
//! mapping of a frame whose type count is non-zero. Not preemptible in this version: `promote`
//! either succeeds or releases every reference it took (no partial state), `demote` always drops
//! all of them. L4 tables skip slots 256..=271, and a validated L4 gets the domain's hypervisor
//! entries written there (they hold no references, so `demote` skips them too). Not-present entries
//! are not checked (no L1TF shadowing: a documented limitation). The preemptible form of `demote`
//! is `devalidate`.

use super::flags::{XEN_L4_SLOTS, adjust, check_flags, is_xen_l4_slot, present};
use super::refs::{self, Origin};
use crate::domain::DomainCtx;
use crate::frame::{FrameTable, Level, MmError};
use crate::mem::{Mfn, PhysMem};

/// Entry `index` of a table at `level` is the hypervisor's, not the guest's.
pub(crate) fn skipped(level: Level, index: usize) -> bool {
    level == Level::L4 && is_xen_l4_slot(index)
}

/// Validate `mfn` as a table of `level`: take every present entry's references, adjusting
/// entries in place (and forcing MMIO leaves uncacheable). On failure every reference taken so
/// far is dropped again.
pub(crate) fn promote<M, C>(
    ft: &FrameTable<'_>,
    mem: &M,
    ctx: &C,
    mfn: Mfn,
    level: Level,
) -> Result<(), MmError>
where
    M: PhysMem + ?Sized,
    C: DomainCtx + ?Sized,
{
    let entries = mem.entries_per_frame();
    for i in 0..entries {
        if skipped(level, i) {
            continue;
        }
        let e = mem.read_entry(mfn, i);
        if !present(e) {
            continue;
        }
        let adjusted = adjust(level, e);
        let r = check_flags(level, e, ctx.has_io_caps())
            .and_then(|()| refs::take(ft, mem, ctx, mfn, level, adjusted, Origin::Validation));
        let stored = match r {
            Ok(stored) => stored,
            Err(err) => {
                unwind(ft, mem, mfn, level, i);
                return Err(err);
            }
        };
        if stored != e {
            mem.write_entry(mfn, i, stored);
        }
    }
    if level == Level::L4 {
        for slot in XEN_L4_SLOTS.filter(|&s| s < entries) {
            mem.write_entry(mfn, slot, ctx.xen_l4_slot(mfn, slot));
        }
    }
    Ok(())
}

/// Drop the references of entries `0..upto` (a failed `promote`).
fn unwind<M: PhysMem + ?Sized>(ft: &FrameTable<'_>, mem: &M, mfn: Mfn, level: Level, upto: usize) {
    for i in (0..upto).rev() {
        if !skipped(level, i) {
            refs::drop(ft, mem, mfn, level, mem.read_entry(mfn, i));
        }
    }
}

/// De-validate `mfn` (a table of `level` whose last type reference is going): drop every
/// present entry's references, last entry first.
pub(crate) fn demote<M: PhysMem + ?Sized>(ft: &FrameTable<'_>, mem: &M, mfn: Mfn, level: Level) {
    unwind(ft, mem, mfn, level, mem.entries_per_frame());
}
