//! The frame-table audit: recompute every count from the page tables that really exist and
//! report every discrepancy (DESIGN.md §9 tier 1; the invariants of spec §1.4).
//!
//! Expected counts of a frame `f`:
//! * `G` = allocation reference + one per present entry mapping `f` in a validated table
//!   (self-maps and non-RAM excepted) + pin + extras;
//! * `C` = one per RW leaf mapping `f` + one per L2–L4 entry pointing at `f` (child or linear)
//!   + pin + typed extras;
//! * linear counter = + same-level entries `f` contains − same-level entries targeting `f`.
//!
//! A partial table (`frame::partial`) counts like a validated one for its entries below the
//! cursor, and an entry whose target is partial holds that target's `G` and `C` but no linear
//! use; the table whose de-validation a vCPU owns is one of the caller's extra references.
//!
//! It also reports frames both typed as non-writable and RW-mapped, mappings across owners that
//! the caller's policy does not permit, entries of validated tables that break the level rules,
//! and state words that break an invariant on their own. It reads a snapshot of each word once
//! (Acquire) and is meaningful only at quiescence (no update in flight); it never writes.

mod report;

pub use report::{
    AuditReport, AuditScratch, CountField, EntryProblem, ExtraRef, Finding, StateProblem,
};

use crate::domain::DomId;
use crate::frame::{FrameState, FrameTable, Level, PageType};
use crate::mem::{Mfn, PhysMem};
use crate::pt::{PTE_RW, check_flags, frame_of, is_xen_l4_slot, present};

impl FrameTable<'_> {
    /// Audit the table against `mem`. `extra` lists references held outside page tables;
    /// `scratch` needs one slot per frame; `may_map_foreign(mapper, owner)` says which
    /// cross-owner L1 mappings are legitimate.
    pub fn audit<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        extra: &[ExtraRef],
        scratch: &mut [AuditScratch],
        may_map_foreign: impl Fn(DomId, DomId) -> bool,
    ) -> AuditReport {
        let mut report = AuditReport::default();
        self.audit_each(mem, extra, scratch, may_map_foreign, |f| report.push(f));
        report
    }

    /// As [`Self::audit`], handing every finding to `sink`; returns how many there were.
    pub fn audit_each<M: PhysMem + ?Sized>(
        &self,
        mem: &M,
        extra: &[ExtraRef],
        scratch: &mut [AuditScratch],
        may_map_foreign: impl Fn(DomId, DomId) -> bool,
        mut sink: impl FnMut(Finding),
    ) -> usize {
        let mut total = 0;
        let mut emit = |f| {
            total += 1;
            sink(f);
        };
        let n = self.len();
        let Some(scratch) = scratch.get_mut(..n) else {
            emit(Finding::ScratchTooSmall { needed: n });
            return total;
        };
        self.audit_states(scratch, &mut emit);
        for x in extra {
            let Some(slot) = x.mfn.index().and_then(|i| scratch.get_mut(i)) else {
                continue;
            };
            slot.general += 1;
            if let Some(ty) = x.ty {
                slot.typed += 1;
                if snapshot(slot).is_some_and(|s| s.ty() != ty) {
                    emit(Finding::State {
                        mfn: x.mfn,
                        problem: StateProblem::ExtraTypeMismatch,
                    });
                }
            }
        }
        for t in 0..n.min(mem.frames()) {
            let Some(s) = snapshot(&scratch[t]) else {
                continue;
            };
            let t = Mfn(t as u64);
            // A partial table's entries below its cursor still hold their references.
            let upto = if s.partial() {
                self.cursor(t)
            } else if s.type_count() > 0 && s.validated() {
                mem.entries_per_frame()
            } else {
                0
            };
            if let Some(level) = s.ty().level().filter(|_| upto > 0) {
                let table = Table {
                    mfn: t,
                    state: s,
                    level,
                    upto,
                };
                audit_table(mem, scratch, table, &may_map_foreign, &mut emit);
            }
        }
        for (i, slot) in scratch.iter().enumerate() {
            let Some(s) = snapshot(slot) else { continue };
            let mfn = Mfn(i as u64);
            let linear = self.linear_count(mfn).unwrap_or(0);
            let counts = [
                (CountField::General, slot.general as i64, s.general() as i64),
                (CountField::Type, slot.typed as i64, s.type_count() as i64),
                (CountField::Linear, slot.linear, linear as i64),
            ];
            for (field, expected, actual) in counts {
                if expected != actual {
                    emit(Finding::Count {
                        mfn,
                        field,
                        expected,
                        actual,
                    });
                }
            }
            if slot.rw_maps > 0 && s.ty() != PageType::Writable {
                emit(Finding::WritableMapping {
                    mfn,
                    ty: s.ty(),
                    rw_maps: slot.rw_maps,
                });
            }
        }
        total
    }

    /// Snapshot every word, check each on its own, count allocation and pin references.
    fn audit_states(&self, scratch: &mut [AuditScratch], emit: &mut impl FnMut(Finding)) {
        for (i, slot) in scratch.iter_mut().enumerate() {
            let mfn = Mfn(i as u64);
            *slot = AuditScratch::default();
            let Ok(info) = self.info(mfn) else { continue };
            // Acquire: see the transitions that produced this word (audit runs at quiescence).
            slot.word = info.state.load(crate::sync::Ordering::Acquire);
            let Some(s) = FrameState::decode(slot.word) else {
                emit(Finding::State {
                    mfn,
                    problem: StateProblem::Corrupt,
                });
                continue;
            };
            let mut problem = |p| emit(Finding::State { mfn, problem: p });
            let linear = self.linear_count(mfn).unwrap_or(0);
            if s.general() == 0 && (slot.word != 0 || linear != 0 || self.cursor(mfn) != 0) {
                problem(StateProblem::FreeNotClean);
            }
            let partial_ok = s.type_count() == 1
                && !s.validated()
                && !s.pinned()
                && s.ty().level().is_some_and(|l| l != Level::L1);
            if (s.partial() && !partial_ok) || (!s.partial() && self.cursor(mfn) != 0) {
                problem(StateProblem::BadPartial);
            }
            if s.general() < s.type_count() + s.allocated() as u32 {
                problem(StateProblem::GeneralBelowTyped);
            }
            if s.pinned() && (s.ty().level().is_none() || s.type_count() == 0) {
                problem(StateProblem::BadPin);
            }
            if s.type_count() > 0 && s.ty().level().is_some() && !s.validated() && !s.partial() {
                problem(StateProblem::UnvalidatedTable);
            }
            if s.type_count() > 0 && s.ty() == PageType::None {
                problem(StateProblem::UntypedReference);
            }
            slot.general += s.allocated() as u64 + s.pinned() as u64;
            slot.typed += s.pinned() as u64;
        }
    }
}

fn snapshot(slot: &AuditScratch) -> Option<FrameState> {
    FrameState::decode(slot.word)
}

/// A table whose entries hold references: validated (all entries) or partial (below its
/// cursor).
struct Table {
    mfn: Mfn,
    state: FrameState,
    level: Level,
    upto: usize,
}

/// Count the references the entries `[0, upto)` of table `t` hold, checking each entry. The
/// last such entry of a partial table may target a partial frame; it then owns that target's
/// de-validation: it holds `G` and `C` but no
/// linear use (dropped when the de-validation began).
fn audit_table<M: PhysMem + ?Sized>(
    mem: &M,
    scratch: &mut [AuditScratch],
    table: Table,
    may_map_foreign: &impl Fn(DomId, DomId) -> bool,
    emit: &mut impl FnMut(Finding),
) {
    let Table {
        mfn: t,
        state: ts,
        level,
        upto,
    } = table;
    let ti = t.0 as usize;
    for index in 0..upto.min(mem.entries_per_frame()) {
        if level == Level::L4 && is_xen_l4_slot(index) {
            continue;
        }
        let e = mem.read_entry(t, index);
        if !present(e) {
            continue;
        }
        let mut bad = |problem| {
            emit(Finding::Entry {
                table: t,
                level,
                index,
                problem,
            })
        };
        // I/O capabilities are not known here: cache attributes are given the benefit of doubt.
        if check_flags(level, e, true).is_err() {
            bad(EntryProblem::Flags);
        }
        let x = frame_of(e);
        let Some(xs) = usize::try_from(x)
            .ok()
            .and_then(|i| scratch.get(i))
            .and_then(snapshot)
        else {
            if level != Level::L1 {
                bad(EntryProblem::NonRamChild);
            }
            continue;
        };
        let xi = x as usize;
        let writable = e & PTE_RW != 0;
        if level != Level::L1 && xi == ti {
            if writable {
                bad(EntryProblem::WritableLinear);
            }
            continue;
        }
        if xs.general() == 0 {
            bad(EntryProblem::FreeTarget);
        }
        scratch[xi].general += 1;
        if let Some(lower) = level.lower() {
            scratch[xi].typed += 1;
            let validated = xs.validated() && xs.type_count() > 0;
            let same = xs.ty() == level.page_type();
            // Only the entry under a partial table's cursor may own a partial target.
            let owner = ts.partial() && index + 1 == upto;
            if owner && xs.partial() && (same || xs.ty() == lower.page_type()) {
                // Owned partial target (see above).
            } else if validated && same {
                scratch[ti].linear += 1;
                scratch[xi].linear -= 1;
                if writable {
                    bad(EntryProblem::WritableLinear);
                }
            } else if !(validated && xs.ty() == lower.page_type()) {
                bad(EntryProblem::ChildType { found: xs.ty() });
            }
        } else if writable {
            scratch[xi].typed += 1;
            scratch[xi].rw_maps += 1;
        }
        if xs.owner() != ts.owner() && !may_map_foreign(ts.owner(), xs.owner()) {
            emit(Finding::ForeignMapping {
                table: t,
                index,
                target: Mfn(x),
                table_owner: ts.owner(),
                target_owner: xs.owner(),
            });
        }
    }
}
