//! `mmu_update`, `mmuext_op`, `update_va_mapping` and `update_va_mapping_otherdomain`
//! (spec §3, §4), and `new_baseptr` for the emulated `mov %reg,%cr3` (`emul`): the hypervisor's
//! side of `hvcore::hypercall`, which owns their semantics.
//!
//! This file only implements [`HcEnv`] for one hypercall of one vCPU ([`Env`]): the frame table
//! and direct-map memory, the checked guest accessor, the calling domain's context and those of
//! the other live domains it names (attached for the length of the call, `domain::live`), the
//! vCPU's page-table bases, deferred de-validation (`old_table`, a mirror in its `VcpuSlot`
//! that `life::destroy` finishes) and LDT record, the M2P, and flushes. Invariants it keeps for
//! `hvcore`:
//! - `set_base` has switched CR3 to the new table before it returns whenever the changed base
//!   is the one in use, so the old table may be de-validated right after; other vCPUs never
//!   hold this vCPU's bases in CR3 (a CPU reloads CR3 whenever it switches vCPUs);
//! - flushes go to `domain::flush` at once: the shootdown of the token's CPUs (the domain's
//!   dirty mask for ALL, the CPUs holding the selected vCPUs for MULTI), local part first;
//! - `dirty_mask` and `vcpu_dirty_cpu` are read with read-modify-writes after the change they
//!   protect (`AtomicCpuMask::snapshot`, `VcpuSlot::dirty_cpu`);
//! - `preempt_pending` is this CPU's time slice being over with other vCPUs waiting, outside a
//!   multicall (where there are no continuations), so long batches continue later. It is asked
//!   before every element, so its common case is one Relaxed load of this CPU's slice flag
//!   (`sched::slice_flag`, looked up once per hypercall); only a set flag asks the scheduler.

use core::cell::OnceCell;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::vm_assist::VMASST_TYPE_M2P_STRICT;
use hvcore::domain::DomId;
use hvcore::flush::{CpuMask, FlushToken};
use hvcore::frame::FrameTable;
use hvcore::hypercall::{self as hc, Base, HcEnv, HcResult, Ldt};
use hvcore::mem::Mfn;

use super::guestmem::GuestMem;
use super::hypercall::Call;
use crate::domain::dom::Domain;
use crate::domain::machine::{DirectMem, HvCtx};
use crate::domain::vcpu::{Vcpu, VcpuStats};
use crate::domain::{Hv, live};

/// The environment of one MMU hypercall.
pub struct Env<'c, 'h> {
    hv: &'c Hv<'h>,
    dom: &'c Domain,
    vcpu: &'c mut Vcpu,
    v: usize,
    nested: bool,
    ctx: HvCtx<'c>,
    guest: GuestMem<'c>,
    /// This CPU's slice flag (`sched::slice_flag`; a hypercall does not migrate).
    slice_over: &'static AtomicBool,
    /// Other live domains this hypercall named (FD, PFD), attached on first use and detached
    /// when it ends (`Drop`), with the id asked for; `None` for no such domain.
    others: [OnceCell<(DomId, Option<Other<'c>>)>; 2],
}

/// Another live domain, attached to this CPU (`domain::live`).
struct Other<'c> {
    slot: usize,
    dom: &'c Domain,
    ctx: HvCtx<'c>,
}

impl<'c, 'h> Env<'c, 'h> {
    fn new(c: &'c mut Call<'_, 'h>) -> Self {
        let hv: &'c Hv<'h> = c.hv;
        let dom: &'c Domain = c.dom;
        let (v, nested) = (c.v, c.nested);
        let vcpu = c.vcpu();
        let l4 = dom.vcpus[v].base(vcpu.kernel_mode);
        let ctx = dom.ctx(&hv.slots);
        Env {
            hv,
            dom,
            v,
            nested,
            guest: GuestMem::new(&hv.ft, &hv.mem, l4, ctx),
            ctx,
            slice_over: crate::domain::sched::slice_flag(),
            vcpu,
            others: [OnceCell::new(), OnceCell::new()],
        }
    }

    /// The live domain `id` other than the caller. A hypercall names at most two (FD and PFD);
    /// a third id is reported as absent.
    fn other(&self, id: DomId) -> Option<&Other<'c>> {
        for cell in &self.others {
            match cell.get() {
                Some((seen, other)) if *seen == id => return other.as_ref(),
                Some(_) => {}
                None => {
                    let me = crate::cpu::percpu::this_index();
                    let own = self.dom.sched_slot as usize;
                    let found = live::attach_id(me, id, own).map(|(slot, dom)| Other {
                        slot,
                        dom,
                        ctx: dom.ctx(&self.hv.slots),
                    });
                    return cell.get_or_init(|| (id, found)).1.as_ref();
                }
            }
        }
        None
    }

    /// The live domain `id`, the caller included.
    fn dom_by_id(&self, id: DomId) -> Option<&'c Domain> {
        if id == self.dom.id {
            Some(self.dom)
        } else {
            self.other(id).map(|o| o.dom)
        }
    }
}

impl Drop for Env<'_, '_> {
    fn drop(&mut self) {
        let me = crate::cpu::percpu::this_index();
        for (_, other) in self.others.iter_mut().filter_map(OnceCell::take) {
            if let Some(o) = other {
                live::detach(me, o.slot);
            }
        }
    }
}

impl<'c> HcEnv for Env<'c, '_> {
    type Mem = DirectMem;
    type Dom = HvCtx<'c>;
    type Guest = GuestMem<'c>;

    fn frames(&self) -> FrameTable<'_> {
        self.hv.ft
    }

    fn mem(&self) -> &DirectMem {
        &self.hv.mem
    }

    fn guest(&self) -> &Self::Guest {
        &self.guest
    }

    fn this_cpu(&self) -> usize {
        crate::cpu::percpu::this_index()
    }

    fn caller(&self) -> DomId {
        self.dom.id
    }

    fn domain(&self, id: DomId) -> Option<&Self::Dom> {
        if id == self.dom.id {
            Some(&self.ctx)
        } else {
            self.other(id).map(|o| &o.ctx)
        }
    }

    fn max_vcpus(&self, dom: DomId) -> u32 {
        self.dom_by_id(dom).map_or(0, |d| d.nr_vcpus)
    }

    fn vcpu_dirty_cpu(&self, dom: DomId, vcpu: u32) -> Option<usize> {
        self.dom_by_id(dom)?.slots().get(vcpu as usize)?.dirty_cpu()
    }

    fn dirty_mask(&self, dom: DomId) -> CpuMask {
        self.dom_by_id(dom)
            .map_or_else(CpuMask::new, |d| d.dirty.snapshot())
    }

    fn m2p_strict(&self) -> bool {
        self.dom.vm_assist() & (1 << VMASST_TYPE_M2P_STRICT) != 0
    }

    fn ro_m2p_l4e(&self) -> u64 {
        self.hv.slots.ro_m2p()
    }

    fn base(&self, which: Base) -> Option<Mfn> {
        let slot = &self.dom.vcpus[self.v];
        let mfn = match which {
            Base::Kernel => slot.kernel_l4(),
            Base::User => slot.user_l4(),
        };
        (mfn != 0).then_some(Mfn(mfn))
    }

    fn set_base(&mut self, which: Base, mfn: Option<Mfn>) {
        let slot = &self.dom.vcpus[self.v];
        let new = mfn.map_or(0, |m| m.0);
        let in_use = match which {
            Base::Kernel => {
                slot.set_kernel_l4(new);
                self.vcpu.kernel_mode
            }
            Base::User => {
                slot.set_user_l4(new);
                !self.vcpu.kernel_mode
            }
        };
        if in_use && new != 0 {
            self.guest.set_l4(new);
            // SAFETY: `hvcore` took the base references on `new` (a validated L4, holding the
            // hypervisor's slots) before calling us; it stays loaded only while it is the base.
            unsafe { crate::domain::flush::load_cr3(new << 12) };
        }
    }

    fn old_table(&self) -> Option<Mfn> {
        let mfn = self.dom.vcpus[self.v].old_table();
        (mfn != 0).then_some(Mfn(mfn))
    }

    fn set_old_table(&mut self, mfn: Option<Mfn>) {
        self.dom.vcpus[self.v].set_old_table(mfn.map_or(0, |m| m.0));
    }

    fn ldt(&self) -> Ldt {
        Ldt {
            base: self.vcpu.ldt_base,
            ents: self.vcpu.ldt_ents,
        }
    }

    fn set_ldt(&mut self, ldt: Ldt) -> bool {
        self.vcpu.ldt_base = ldt.base;
        self.vcpu.ldt_ents = ldt.ents;
        false
    }

    fn set_m2p(&self, mfn: Mfn, val: u64) {
        self.hv.m2p.set(mfn.0, val);
    }

    fn flush(&mut self, token: FlushToken) {
        let done = crate::domain::flush::flush_token(token);
        if done.remote_targets > 0 {
            VcpuStats::bump(&self.dom.vcpus[self.v].stats.shootdowns);
        }
    }

    fn flush_cache(&mut self) {
        // No domain has I/O capabilities yet, so hvcore never asks; this CPU's cache is all a
        // caller could have touched through the direct map.
        super::wbinvd();
    }

    fn preempt_pending(&self) -> bool {
        // Relaxed: this CPU's own flag, set by its timer interrupt; `should_preempt` re-reads
        // what it decides on with its own orderings.
        !self.nested
            && self.slice_over.load(Ordering::Relaxed)
            && crate::domain::sched::should_preempt(self.dom)
    }
}

/// `mmu_update(reqs, count, pdone, foreigndom)`.
pub fn mmu_update(c: &mut Call<'_, '_>, reqs: u64, count: u64, pdone: u64, fd: u64) -> HcResult {
    hc::mmu_update(&mut Env::new(c), reqs, count as u32, pdone, fd as u32)
}

/// `mmuext_op(ops, count, pdone, foreigndom)`.
pub fn mmuext_op(c: &mut Call<'_, '_>, ops: u64, count: u64, pdone: u64, fd: u64) -> HcResult {
    hc::mmuext_op(&mut Env::new(c), ops, count as u32, pdone, fd as u32)
}

/// `MMUEXT_NEW_BASEPTR` on `mfn` outside a batch: the emulation of `mov %reg,%cr3`.
pub fn new_baseptr(c: &mut Call<'_, '_>, mfn: Mfn) -> Result<(), hc::HcError> {
    hc::new_baseptr(&mut Env::new(c), mfn)
}

/// `update_va_mapping(va, pte, flags)`.
pub fn update_va_mapping(c: &mut Call<'_, '_>, va: u64, pte: u64, flags: u64) -> HcResult {
    hc::update_va_mapping(&mut Env::new(c), va, pte, flags)
}

/// `update_va_mapping_otherdomain(va, pte, flags, domid)`.
pub fn update_va_mapping_otherdomain(
    c: &mut Call<'_, '_>,
    va: u64,
    pte: u64,
    flags: u64,
    domid: u64,
) -> HcResult {
    hc::update_va_mapping_otherdomain(&mut Env::new(c), va, pte, flags, domid as DomId)
}
