//! Running one vCPU on this CPU until it leaves ([`run_vcpu`]): switch it in (dirty mask, its
//! `dirty_cpu`, CR3, its GDT copy, then its DS/ES/FS/GS selectors (`pv::selectors`), then its
//! segment bases, x87/SSE state, a fresh time slice), then loop — check its frame, bring the
//! CPU's copy of its GDT up to date (`pv::desc::load_gdt`) and enter it,
//! act on why it left (hypercall, exception, user `syscall`, interrupt) — until it yields,
//! blocks, is preempted, goes down, or its domain stops; then save its x87/SSE state,
//! selectors and live FS/GS bases.
//!
//! Interrupts: off while the frame is checked and entered (the guest runs with IF set in
//! hardware, as under Xen), on while an exit is handled, so a CPU in a hypercall takes
//! shootdown IPIs (hvcore's `flush_retyped` contract: other CPUs may be waiting for a frame
//! whose validator is shooting at them).
//!
//! Invariants: CR3 holds a domain L4 only while that L4 is validated and held as the running
//! vCPU's base (it contains the hypervisor's slots 261/262, so the hypervisor stays mapped);
//! switching in reloads CR3 (a full flush on the clock), so a vCPU never meets translations
//! another vCPU or an earlier visit left on this CPU — except when the same vCPU resumes on the
//! CPU it just left, with nothing loaded in between and its `dirty_cpu` still this CPU: then the
//! TLB holds only its own translations, kept coherent by every shootdown since (this CPU stayed
//! in the dirty mask and was its `dirty_cpu`), and it keeps them, as if it had not stopped. This
//! CPU's dirty bit is set before the first load.

use crate::cpu::ipi::{interrupts_off, interrupts_on};
use crate::domain::dom::Domain;
use crate::domain::vcpu::{Request, Vcpu, VcpuSlot, VcpuStats};
use crate::domain::{Hv, cr3, sched};
use crate::pv::regs::{BadFrame, EXIT_EXCEPTION, EXIT_INTERRUPT, EXIT_SYSCALL, EXIT_SYSCALL32};
use crate::pv::{self, hypercall, traps};

/// #GP, delivered for a return to a non-canonical address (XSA-7).
const VECTOR_GP: u64 = 13;
/// #UD, delivered for a compatibility-mode `syscall`.
const VECTOR_UD: u64 = 6;

/// Why a vCPU left its CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// `SCHEDOP_yield`.
    Yield,
    /// `SCHEDOP_block`.
    Block,
    /// Its time slice ended with others waiting.
    Preempt,
    /// `VCPUOP_down`.
    Down,
    /// Its domain shut down or crashed.
    Stopped,
}

/// Runs vCPU `v` of `dom`, which this CPU (`me`) has just claimed (`RUNNING`), until it
/// leaves. Interrupts are off on entry and on return.
pub fn run_vcpu(hv: &Hv<'_>, dom: &Domain, v: usize, me: usize) -> Leave {
    let slot = &dom.vcpus[v];
    // SAFETY: `claim_run` made this CPU the context's owner until `release`, which the caller
    // does after this returns; no other reference to it is created here.
    let vcpu = unsafe { slot.ctx() };
    dom.dirty.set(me);
    let (prev_dirty, migrated) = slot.set_dirty_cpu(me);
    if migrated {
        VcpuStats::bump(&slot.stats.migrations);
    }
    let loaded = cr3::loaded(me, dom);
    let fresh = !(loaded == Some(v) && prev_dirty == Some(me));
    if let Some(other) = prev_dirty.filter(|&c| c != me) {
        // Another CPU may still have this vCPU's tables in CR3: drop ours (so that CPU never
        // waits for us), then wait for it to switch (`sched`, CR3 hand-over).
        cr3::unload(me, dom);
        cr3::wait_unloaded(other, dom, v);
    }
    let prev = cr3::loaded(me, dom).filter(|&p| p != v);
    let gs = if vcpu.kernel_mode {
        vcpu.gs_base_kernel
    } else {
        vcpu.gs_base_user
    };
    // Its GDT before its selectors, and the bases after them (loading FS/GS clobbers them).
    pv::desc::load_gdt(hv, slot);
    pv::selectors::load(&mut vcpu.selectors);
    pv::load_segment_bases(vcpu.fs_base, gs);
    pv::fpu::switch_in(&vcpu.fpu);
    sched::start_slice();
    let leave = run_loop(hv, dom, v, slot, vcpu, prev, fresh);
    pv::fpu::switch_out(&mut vcpu.fpu);
    vcpu.selectors = pv::selectors::save();
    vcpu.fs_base = pv::guest_fs_base();
    let live = pv::guest_gs_base();
    if vcpu.kernel_mode {
        vcpu.gs_base_kernel = live;
    } else {
        vcpu.gs_base_user = live;
    }
    if dom.shutdown_reason().is_some() {
        vcpu.console_flush(dom.id);
    }
    leave
}

fn run_loop(
    hv: &Hv<'_>,
    dom: &Domain,
    v: usize,
    slot: &VcpuSlot,
    vcpu: &mut Vcpu,
    mut prev: Option<usize>,
    mut fresh: bool,
) -> Leave {
    loop {
        if dom.shutdown_reason().is_some() {
            return Leave::Stopped;
        }
        if slot.down_requested() {
            return Leave::Down;
        }
        match core::mem::take(&mut vcpu.request) {
            Request::Yield => return Leave::Yield,
            Request::Block => return Leave::Block,
            Request::None => {}
        }
        if sched::should_preempt(dom) {
            VcpuStats::bump(&slot.stats.preemptions);
            return Leave::Preempt;
        }
        let l4 = slot.base(vcpu.kernel_mode);
        if l4 == 0 {
            dom.crash(v, vcpu, format_args!("no page tables for the current mode"));
            return Leave::Stopped;
        }
        if fresh || pv::cr3() != l4 << 12 {
            // SAFETY: `l4` is the vCPU's base, validated as an L4 (so it holds the hypervisor
            // slots) and kept alive by the vCPU's type reference until `destroy`.
            unsafe { crate::domain::flush::load_cr3(l4 << 12) };
            fresh = false;
            let me = crate::cpu::percpu::this_index();
            cr3::set_loaded(me, dom, Some(v));
            if let Some(p) = prev.take() {
                dom.vcpus[p].clear_dirty_cpu(me);
            }
        }
        match vcpu.regs.sanitise() {
            Ok(()) => {}
            Err(BadFrame::BadRip) => {
                vcpu.regs.vector = VECTOR_GP;
                vcpu.regs.error = 0;
                interrupts_on();
                traps::exception(hv, dom, v, vcpu);
                interrupts_off();
                continue;
            }
            Err(BadFrame::Selector) => {
                dom.crash(v, vcpu, format_args!("return frame with invalid selectors"));
                return Leave::Stopped;
            }
        }
        pv::desc::load_gdt(hv, slot);
        let kind = pv::enter(&mut vcpu.regs);
        interrupts_on();
        match kind {
            EXIT_SYSCALL if vcpu.kernel_mode => {
                VcpuStats::bump(&slot.stats.hypercalls);
                hypercall::dispatch(hv, dom, v, vcpu);
            }
            EXIT_SYSCALL => traps::user_syscall(hv, dom, v, vcpu),
            EXIT_SYSCALL32 => {
                vcpu.regs.vector = VECTOR_UD;
                vcpu.regs.error = 0;
                traps::exception(hv, dom, v, vcpu);
            }
            EXIT_EXCEPTION => traps::exception(hv, dom, v, vcpu),
            EXIT_INTERRUPT => {}
            other => dom.crash(v, vcpu, format_args!("unknown exit kind {other}")),
        }
        interrupts_off();
    }
}
