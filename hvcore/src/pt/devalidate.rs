//! The preemptible de-validation of a partial L2–L4 table (spec §1.5 `devalidate_page` with
//! PTF_preemptible, §3.6, XSA-290), run by `FrameTable::devalidate` for the owner of the
//! de-validation (see `frame::partial`).
//!
//! Entries are dropped from the cursor down, one per step, last entry first (as `demote` and
//! Xen's `free_lN_table` do), the cursor following each step. The budget's `poll` is asked
//! before every entry that holds references once one such entry was dropped in this call, so
//! each call makes progress and the work between two polls is bounded by one entry: its target
//! is an L1 de-validated at once (at most 512 leaf drops), a table that still has other holders
//! (one count), or an L2–L4 table whose last reference this was — that one becomes partial
//! itself, owned by the entry (`refs::drop_entry` with `defer`), and is continued here first,
//! depth first, before the cursor moves past the entry. The depth is bounded (levels descend,
//! and a linear target contains no linear entries).
//!
//! A partial child is recognised by its own `P`: a partial frame has exactly one type
//! reference, so a present entry of the table under the cursor that targets a partial frame
//! (other than the table itself) holds that reference. No atomics here beyond the frame
//! table's own.

use super::flags::{frame_of, present};
use super::refs::{self, Dropped};
use super::validate::skipped;
use crate::frame::{FrameTable, Level};
use crate::mem::{Mfn, PhysMem};

/// The preemption poll of one `devalidate` call.
pub(crate) struct Budget<'p> {
    poll: &'p mut dyn FnMut() -> bool,
    /// An entry holding references was dropped in this call.
    progressed: bool,
}

impl<'p> Budget<'p> {
    pub(crate) fn new(poll: &'p mut dyn FnMut() -> bool) -> Self {
        Self {
            poll,
            progressed: false,
        }
    }

    /// Stop before the next entry holding references: only after progress, and if `poll` says
    /// so.
    fn stop(&mut self) -> bool {
        self.progressed && (self.poll)()
    }
}

/// The de-validation stopped for preemption; the table is still partial.
pub(crate) struct Preempted;

/// Drop the references of partial table `t` (level `level`) from its cursor down to entry 0.
pub(crate) fn run<M: PhysMem + ?Sized>(
    ft: &FrameTable<'_>,
    mem: &M,
    t: Mfn,
    level: Level,
    budget: &mut Budget<'_>,
) -> Result<(), Preempted> {
    loop {
        let Some(i) = ft.cursor(t).checked_sub(1) else {
            return Ok(());
        };
        let e = if skipped(level, i) {
            0
        } else {
            mem.read_entry(t, i)
        };
        if let Some((child, child_level)) = partial_child(ft, t, e) {
            run(ft, mem, child, child_level, budget)?;
            ft.finish_partial(child);
            ft.set_cursor(t, i);
            continue;
        }
        if present(e) {
            if budget.stop() {
                return Err(Preempted);
            }
            budget.progressed = true;
        }
        // A begun child is continued by the next turn, with the cursor still on its entry.
        if !matches!(
            refs::drop_entry(ft, mem, t, level, e, true),
            Dropped::Begun(_)
        ) {
            ft.set_cursor(t, i);
        }
    }
}

/// The partial frame (and its level) that entry `e` of partial table `t` owns, if any.
fn partial_child(ft: &FrameTable<'_>, t: Mfn, e: u64) -> Option<(Mfn, Level)> {
    if !present(e) {
        return None;
    }
    let x = Mfn(frame_of(e));
    let s = ft.state(x).ok().filter(|s| x != t && s.partial())?;
    s.ty().level().map(|level| (x, level))
}
