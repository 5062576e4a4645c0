//! Running a domain: the vCPU loop on the bootstrap CPU — load the vCPU's page tables, check
//! and enter its frame, act on why it left (hypercall, exception, user `syscall`), until the
//! domain shuts down or crashes.
//!
//! Scheduling: one domain at a time, vCPU 0 only, on CPU 0, run to completion (no preemption;
//! secondary vCPUs are not brought up yet). Interrupts stay off in the hypervisor; the guest
//! runs with IF set in hardware, as under Xen.
//!
//! Invariants: CR3 holds a domain L4 only while that L4 is validated and held as the vCPU's
//! base (it contains the hypervisor's slots 261/262, so the hypervisor stays mapped); when the
//! loop ends CR3 is back on the boot L4, before anything of the domain can be freed.

use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::pv::regs::{BadFrame, EXIT_EXCEPTION, EXIT_SYSCALL, EXIT_SYSCALL32};
use crate::pv::{self, hypercall, traps};

/// #GP, delivered for a return to a non-canonical address (XSA-7).
const VECTOR_GP: u64 = 13;
/// #UD, delivered for a compatibility-mode `syscall`.
const VECTOR_UD: u64 = 6;

/// Runs vCPU 0 of `dom` until the domain shuts down.
pub fn run(hv: &Hv<'_>, dom: &mut Domain) {
    let v = 0usize;
    let boot_cr3 = boot::arch::boot_pml4_phys();
    {
        let vcpu = &dom.vcpus[v];
        pv::load_segment_bases(vcpu.fs_base, vcpu.gs_base_kernel);
    }
    while dom.shutdown_reason().is_none() {
        let vcpu = &mut dom.vcpus[v];
        let l4 = if vcpu.kernel_mode {
            vcpu.kernel_l4
        } else {
            vcpu.user_l4
        };
        if l4 == 0 {
            dom.crash(v, format_args!("no page tables for the current mode"));
            break;
        }
        if pv::cr3() != l4 << 12 {
            // SAFETY: `l4` is the vCPU's base, validated as an L4 (so it holds the hypervisor
            // slots) and kept alive by the vCPU's type reference until `destroy`.
            unsafe { pv::switch_cr3(l4 << 12) };
        }
        match vcpu.regs.sanitise() {
            Ok(()) => {}
            Err(BadFrame::BadRip) => {
                vcpu.regs.vector = VECTOR_GP;
                vcpu.regs.error = 0;
                traps::exception(hv, dom, v);
                continue;
            }
            Err(BadFrame::Selector) => {
                dom.crash(v, format_args!("return frame with invalid selectors"));
                break;
            }
        }
        match pv::enter(&mut vcpu.regs) {
            EXIT_SYSCALL if dom.vcpus[v].kernel_mode => hypercall::dispatch(hv, dom, v),
            EXIT_SYSCALL => traps::user_syscall(hv, dom, v),
            EXIT_SYSCALL32 => {
                dom.vcpus[v].regs.vector = VECTOR_UD;
                dom.vcpus[v].regs.error = 0;
                traps::exception(hv, dom, v);
            }
            EXIT_EXCEPTION => traps::exception(hv, dom, v),
            other => dom.crash(v, format_args!("unknown exit kind {other}")),
        }
    }
    if dom.console_pending() {
        dom.console_flush();
    }
    // SAFETY: the boot L4 maps the hypervisor and is permanent.
    unsafe { pv::switch_cr3(boot_cr3) };
}
