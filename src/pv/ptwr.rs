//! Writable page tables (VMASST_TYPE_writable_pagetables, spec §6.6): a guest kernel's store
//! into an L1 table it maps read-only, emulated on the #PF it raises instead of bounced.
//!
//! Looked at, as by Xen's `fixup_page_fault` / `pv_ro_page_fault`: a #PF in guest kernel mode
//! whose error code says a write to a present page (no reserved bit, no instruction fetch),
//! with the assist enabled for the domain — or in the hardware domain (domain 0, the privileged
//! one), whatever the assist: Xen 4.17 sends the hardware domain's write faults on present
//! pages to `pv_ro_page_fault` for its read-only MMIO emulation, which emulates L1 writes for
//! every other frame, so there the assist changes nothing (checked against Xen by the guest's
//! `ptwr` tests; spec §6.6 does not say so). The L1 entry that maps cr2 in the kernel's tables
//! (the checked accessor's walk) must be present and read-only. The instruction at rip is
//! fetched through the checked accessor and decoded by `hvcore::ptwr`; the address it writes
//! must lie in the faulting page. `hvcore` then checks that the page's frame is a validated L1
//! of the domain and applies the write with `mmu_update`'s validation (`mod_entry`, FD = the
//! domain). On success `rip` is past the instruction, a `cmpxchg` has its accumulator and flags,
//! and the guest resumes: L1 changes need no flush from the hypervisor (the guest flushes, as
//! after `mmu_update` of an L1). In every other case nothing changed and the caller bounces the
//! original #PF.
//!
//! Not emulated (bounced as #PF, where Xen emulates them): other writing instructions (1- and
//! 2-byte stores, `xchg`, `or`/`and` and other read-modify-writes, string stores), segment
//! overrides, the single-step #DB Xen raises after an emulated instruction with TF set, and
//! the hardware domain's writes to read-only MMIO / MMCFG pages (no such pages here).

use abi::vm_assist::VMASST_TYPE_WRITABLE_PAGETABLES;
use hvcore::mem::Mfn;
use hvcore::pt::{PTE_P, PTE_RW, frame_of};
use hvcore::ptwr::{self, decode_write};

use super::guestmem::GuestMem;
use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::domain::vcpu::Vcpu;

/// #PF error code bits: the page was present, the access a write, a reserved bit was set, the
/// access an instruction fetch.
const PFEC_PRESENT: u64 = 1 << 0;
const PFEC_WRITE: u64 = 1 << 1;
const PFEC_RSVD: u64 = 1 << 3;
const PFEC_FETCH: u64 = 1 << 4;
/// Longest instruction decoded: REX, `C7`, ModRM, SIB, disp32, imm32.
const MAX_LEN: usize = 12;
const PAGE: u64 = 4096;

/// The bytes of the instruction at `rip`, as many of [`MAX_LEN`] as can be read.
fn fetch(gm: &GuestMem<'_>, rip: u64, bytes: &mut [u8; MAX_LEN]) -> usize {
    // Up to the end of rip's page in one read, then the rest from the next page if it is
    // mapped: an instruction that ends just before an unmapped page still decodes.
    let first = ((PAGE - rip % PAGE) as usize).min(MAX_LEN);
    if gm.read(rip, &mut bytes[..first]).is_err() {
        return 0;
    }
    let rest = rip.wrapping_add(first as u64);
    if first < MAX_LEN && gm.read(rest, &mut bytes[first..]).is_ok() {
        return MAX_LEN;
    }
    first
}

/// The #PF vCPU `v` of `dom` just took (in `vcpu.regs`): emulates it if it is a write into one
/// of the domain's L1 tables that the assist covers (module head) and returns true, else
/// returns false with nothing changed.
pub fn page_fault(hv: &Hv<'_>, dom: &Domain, v: usize, vcpu: &mut Vcpu) -> bool {
    let r = vcpu.regs;
    let write = PFEC_PRESENT | PFEC_WRITE;
    let assist = dom.vm_assist() & (1 << VMASST_TYPE_WRITABLE_PAGETABLES) != 0;
    if !vcpu.kernel_mode
        || r.error & (write | PFEC_RSVD | PFEC_FETCH) != write
        || !(assist || dom.privileged)
    {
        return false;
    }
    let gm = GuestMem::new(
        &hv.ft,
        &hv.mem,
        dom.vcpus[v].kernel_l4(),
        dom.ctx(&hv.slots),
    );
    let table = match gm.l1e(r.cr2) {
        Ok(pte) if pte & (PTE_P | PTE_RW) == PTE_P => Mfn(frame_of(pte)),
        _ => return false,
    };
    let mut bytes = [0u8; MAX_LEN];
    let fetched = fetch(&gm, r.rip, &mut bytes);
    let Some(insn) = decode_write(&bytes[..fetched]) else {
        return false;
    };
    let next = r.rip.wrapping_add(u64::from(insn.len));
    let at = insn.dst.address(|n| r.gpr(n), next);
    if at / PAGE != r.cr2 / PAGE {
        return false;
    }
    let op = insn.op(|n| r.gpr(n));
    let ctx = dom.ctx(&hv.slots);
    let Ok(done) = hv
        .ft
        .emulate_l1_write(&hv.mem, &ctx, table, at % PAGE, insn.width, op)
    else {
        return false;
    };
    let (rax, rflags) = ptwr::retire(&insn, &done, r.rax, r.rflags);
    let regs = &mut vcpu.regs;
    regs.rax = rax;
    regs.rflags = rflags;
    regs.rip = next;
    true
}
