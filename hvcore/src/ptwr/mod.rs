//! Writable page tables (Xen's `ptwr`, VMASST_TYPE_writable_pagetables, spec §6.6): what a
//! guest kernel's store into an L1 table it maps read-only does once the hypervisor emulates it.
//!
//! `decode` turns the faulting instruction into a [`WriteInsn`]; the hypervisor checks that the
//! write lands in the faulting page; [`FrameTable::emulate_l1_write`] checks that the page's
//! frame is a validated L1 of the domain and applies the write with exactly the validation of
//! `mmu_update` (`mod_entry` / `cmpxchg_entry`, FD = the table's owner); [`retire`] gives the
//! registers the instruction leaves. Rules, as Xen 4.17's `ptwr_emulated_update` (which holds
//! the L1's page lock where this retries a compare-exchange):
//! * the write must be naturally aligned (4 or 8 bytes), so it stays inside one entry;
//! * an 8-byte `mov` replaces the entry; a 4-byte write is merged with the other half of the
//!   entry and the whole validated (a compare-exchange over the value it was merged with, retried
//!   when another update got in first, so the other half is never lost);
//! * `cmpxchg` compares the accumulator with the entry (its half, for 4 bytes) before anything
//!   is validated: a stale value stores nothing, takes no reference and reports the entry
//!   ([`Emulated::Stale`]: ZF clear, the accumulator loaded); an equal one stores through
//!   `cmpxchg_entry`, and if the entry changed meanwhile the compare is made again;
//! * any refusal ([`Unhandled`]) means the hypervisor delivers the original #PF unchanged.
//!
//! No state, no atomics beyond those of the frame table and `PhysMem`.

mod decode;

pub use decode::{Kind, MemOperand, Source, WriteInsn, decode_write};

use decode::width_mask;

use crate::domain::{DomId, DomainCtx, TypeChange};
use crate::frame::{FrameTable, Level, MmError};
use crate::mem::{Mfn, PhysMem};
use crate::pt::{CmpxchgError, EntryUpdate};

/// Bytes in a page-table entry.
const ENTRY_BYTES: u64 = 8;
/// RFLAGS arithmetic flags: CF, PF, AF, ZF, SF, OF.
const ARITH_FLAGS: u64 = 0x8D5;
const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;

/// The write an instruction makes, its operands read from the guest's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Store the value.
    Store(u64),
    /// Store `new` if the memory holds `expected`.
    Cmpxchg { expected: u64, new: u64 },
}

impl WriteInsn {
    /// The write this instruction makes, `gpr(n)` being the value of register `n`; values are
    /// truncated to the operand width.
    pub fn op(&self, gpr: impl Fn(u8) -> u64) -> Op {
        let new = self.source(&gpr);
        match self.kind {
            Kind::Mov => Op::Store(new),
            Kind::Cmpxchg => Op::Cmpxchg {
                expected: gpr(0) & width_mask(self.width),
                new,
            },
        }
    }
}

/// An emulated write that happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emulated {
    /// The entry was written (L1 updates need no flush from the hypervisor, as for
    /// `mmu_update`: [`EntryUpdate::needs_flush`] is false).
    Stored(EntryUpdate),
    /// `cmpxchg` found this value (of the operand width), not the accumulator: nothing stored.
    Stale(u64),
}

/// Why a write is not emulated: the hypervisor delivers the #PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhandled {
    /// Not a naturally aligned 4- or 8-byte write inside the page.
    Misaligned,
    /// The new entry, or the table, was refused as `mod_entry` refuses it.
    Refused(MmError),
}

impl From<MmError> for Unhandled {
    fn from(e: MmError) -> Self {
        Self::Refused(e)
    }
}

/// The table owner's context with FD = the owner, as `mmu_update` on its own tables applies it
/// (`hypercall::leaf`): a leaf may map only the owner's own RAM (Xen's `get_page_from_l1e` with
/// `pg_owner == l1e_owner`), whatever the owner's privilege.
struct FdSelf<'a, C: ?Sized>(&'a C);

impl<C: DomainCtx + ?Sized> DomainCtx for FdSelf<'_, C> {
    fn domid(&self) -> DomId {
        self.0.domid()
    }
    fn is_privileged(&self) -> bool {
        self.0.is_privileged()
    }
    fn has_io_caps(&self) -> bool {
        self.0.has_io_caps()
    }
    fn linear_pt_enabled(&self) -> bool {
        self.0.linear_pt_enabled()
    }
    fn may_map_foreign(&self, _owner: DomId) -> bool {
        false
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        self.0.xen_l4_slot(l4, slot)
    }
    fn flush_retyped(&self, change: TypeChange) {
        self.0.flush_retyped(change);
    }
    fn is_special_page(&self, mfn: Mfn) -> bool {
        self.0.is_special_page(mfn)
    }
    fn cpu_self_snoop(&self) -> bool {
        self.0.cpu_self_snoop()
    }
    fn flush_frame_cache(&self, mfn: Mfn) {
        self.0.flush_frame_cache(mfn);
    }
}

impl FrameTable<'_> {
    /// Emulates a `width`-byte write `op` at byte `offset` of `table`, which must be a validated
    /// L1 owned by `ctx`'s domain (checked here as by `mod_entry`). New leaves may map only that
    /// domain's frames (FD = self), whatever `ctx` allows otherwise.
    pub fn emulate_l1_write<M, C>(
        &self,
        mem: &M,
        ctx: &C,
        table: Mfn,
        offset: u64,
        width: u8,
        op: Op,
    ) -> Result<Emulated, Unhandled>
    where
        M: PhysMem + ?Sized,
        C: DomainCtx + ?Sized,
    {
        let w = u64::from(width);
        let entries = mem.entries_per_frame() as u64;
        if !matches!(width, 4 | 8) || !offset.is_multiple_of(w) || offset >= entries * ENTRY_BYTES {
            return Err(Unhandled::Misaligned);
        }
        if table.index().is_none_or(|i| i >= mem.frames()) {
            return Err(MmError::BadMfn.into());
        }
        // A snapshot, so that a stale `cmpxchg` (which validates nothing) reports only entries
        // of the domain's own L1s; every store checks again while it holds the table.
        let state = self.state(table)?;
        if state.owner() != ctx.domid() {
            return Err(MmError::WrongOwner.into());
        }
        if state.ty() != Level::L1.page_type() || !state.validated() {
            return Err(MmError::NotValidated.into());
        }
        let index = (offset / ENTRY_BYTES) as usize;
        let shift = (offset % ENTRY_BYTES) * 8;
        let mask = width_mask(width) << shift;
        let merge = |cur: u64, v: u64| (cur & !mask) | (v << shift);
        let ctx = &FdSelf(ctx);
        if let (8, Op::Store(v)) = (width, op) {
            let update = self.mod_entry(mem, ctx, table, Level::L1, index, v, false)?;
            return Ok(Emulated::Stored(update));
        }
        let mut cur = mem.read_entry(table, index);
        loop {
            let new = match op {
                Op::Store(v) => merge(cur, v),
                Op::Cmpxchg { expected, new } => {
                    let seen = (cur & mask) >> shift;
                    if seen != expected {
                        return Ok(Emulated::Stale(seen));
                    }
                    merge(cur, new)
                }
            };
            match self.cmpxchg_entry(mem, ctx, table, Level::L1, index, cur, new) {
                Ok(update) => return Ok(Emulated::Stored(update)),
                // Another update got in first: merge with (or compare against) its value.
                Err(CmpxchgError::Stale(seen)) => cur = seen,
                Err(CmpxchgError::Refused(e)) => return Err(e.into()),
            }
        }
    }
}

/// The accumulator and RFLAGS the instruction leaves, from `rax` and `rflags` before it: a
/// `mov` changes neither; `cmpxchg` sets the arithmetic flags of `accumulator - memory` (ZF
/// set on success) and on failure loads the accumulator with what it found (a 4-byte one
/// zero-extends into rax, as the CPU does).
pub fn retire(insn: &WriteInsn, done: &Emulated, rax: u64, rflags: u64) -> (u64, u64) {
    if insn.kind != Kind::Cmpxchg {
        return (rax, rflags);
    }
    let acc = rax & width_mask(insn.width);
    let (rax, seen) = match *done {
        Emulated::Stored(_) => (rax, acc),
        Emulated::Stale(seen) => (seen, seen),
    };
    let flags = cmp_flags(insn.width, acc, seen);
    (rax, (rflags & !ARITH_FLAGS) | flags)
}

/// The arithmetic flags of the `width`-byte subtraction `a - b` (`cmp`).
fn cmp_flags(width: u8, a: u64, b: u64) -> u64 {
    let mask = width_mask(width);
    let sign = 1u64 << (u32::from(width) * 8 - 1);
    let (a, b) = (a & mask, b & mask);
    let r = a.wrapping_sub(b) & mask;
    let bit = |cond: bool, flag: u64| if cond { flag } else { 0 };
    bit(a < b, CF)
        | bit((r as u8).count_ones().is_multiple_of(2), PF)
        | bit((a ^ b ^ r) & 0x10 != 0, AF)
        | bit(r == 0, ZF)
        | bit(r & sign != 0, SF)
        | bit((a ^ b) & (a ^ r) & sign != 0, OF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmpxchg(width: u8) -> WriteInsn {
        decode_write(if width == 8 {
            &[0xF0, 0x48, 0x0F, 0xB1, 0x17]
        } else {
            &[0xF0, 0x0F, 0xB1, 0x17]
        })
        .unwrap()
    }

    #[test]
    fn cmp_flags_match_the_cpu() {
        // Values checked against `cmp` on x86-64.
        assert_eq!(cmp_flags(8, 5, 5), ZF | PF);
        assert_eq!(cmp_flags(8, 1, 2), CF | SF | AF | PF);
        assert_eq!(cmp_flags(8, 2, 1), 0);
        assert_eq!(cmp_flags(8, 1 << 63, 1), OF | AF | PF);
        assert_eq!(cmp_flags(4, 0x1_0000_0001, 2), CF | SF | AF | PF);
        assert_eq!(cmp_flags(4, 0x8000_0000, 1), OF | AF | PF);
    }

    #[test]
    fn retire_sets_the_accumulator_and_flags() {
        let stored = Emulated::Stored(EntryUpdate {
            table: Mfn(0),
            level: Level::L1,
            index: 0,
            old: 0,
            new: 0,
            fast_path: true,
            released: None,
            devalidating: None,
        });
        let tf_cf = 0x100 | CF;
        assert_eq!(retire(&cmpxchg(8), &stored, 7, tf_cf), (7, 0x100 | ZF | PF));
        assert_eq!(
            retire(&cmpxchg(8), &Emulated::Stale(9), 7, tf_cf),
            (9, 0x100 | CF | SF | AF)
        );
        // 4 bytes: the upper half of rax is ignored, and cleared by a failure.
        assert_eq!(
            retire(&cmpxchg(4), &stored, 0xFFFF_0000_0000_0007, 0),
            (0xFFFF_0000_0000_0007, ZF | PF)
        );
        assert_eq!(
            retire(&cmpxchg(4), &Emulated::Stale(9), 0xFFFF_0000_0000_0007, 0).0,
            9
        );
        let mov = decode_write(&[0x48, 0x89, 0x37]).unwrap();
        assert_eq!(retire(&mov, &stored, 7, tf_cf), (7, tf_cf));
    }

    #[test]
    fn ops_read_the_registers() {
        let regs = |n: u8| 0x1111_2222_0000_0000 | u64::from(n);
        assert_eq!(
            cmpxchg(8).op(regs),
            Op::Cmpxchg {
                expected: 0x1111_2222_0000_0000,
                new: 0x1111_2222_0000_0002
            }
        );
        assert_eq!(
            cmpxchg(4).op(regs),
            Op::Cmpxchg {
                expected: 0,
                new: 2
            }
        );
        let mov = decode_write(&[0x89, 0x37]).unwrap();
        assert_eq!(mov.op(regs), Op::Store(6));
    }
}
