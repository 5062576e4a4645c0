//! Privileged instructions of the guest kernel, emulated on the #GP they raise in ring 3 (Xen's
//! `pv_emulate_privileged_op`, spec §4.3): `mov %cr2,%reg` (the vCPU's last bounced page-fault
//! address), `mov %cr3,%reg` (the machine address of the kernel base, Xen's `xen_pfn_to_cr3`)
//! and `mov %reg,%cr3` (`MMUEXT_NEW_BASEPTR` on the frame `reg >> 12`).
//!
//! Only a #GP with error code 0 in guest kernel mode is looked at, as in Xen; the instruction is
//! fetched through the checked accessor from the kernel's address space and decoded by
//! `hvcore::privop`. On success the result is in place and `rip` is past the instruction; in
//! every other case (another instruction or control register, an unreadable `rip`, a CR3 write
//! that `new_baseptr` refuses) nothing changed and the caller bounces the #GP to the guest.
//!
//! Not emulated (bounced as #GP, where Xen emulates them): the other control registers (CR0,
//! CR4 reads and writes, CR2 writes), debug registers, I/O and MSR instructions, `cli`/`sti`,
//! and the single-step #DB Xen raises after an emulated instruction with TF set.

use hvcore::mem::Mfn;
use hvcore::privop::decode_mov_cr;

use super::guestmem::GuestMem;
use super::hypercall::Call;
use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::domain::vcpu::Vcpu;

/// Longest instruction decoded: REX, 0F, opcode, ModRM.
const MAX_LEN: usize = 4;

/// The #GP vCPU `v` of `dom` just took (in `vcpu.regs`): emulates it if it is one of the
/// instructions above and returns true, else returns false with nothing changed.
pub fn privileged_op(hv: &Hv<'_>, dom: &Domain, v: usize, vcpu: &mut Vcpu) -> bool {
    if !vcpu.kernel_mode || vcpu.regs.error != 0 {
        return false;
    }
    let rip = vcpu.regs.rip;
    let l4 = dom.vcpus[v].kernel_l4();
    let gm = GuestMem::new(&hv.ft, &hv.mem, l4, dom.ctx(&hv.slots));
    let mut bytes = [0u8; MAX_LEN];
    let mut fetched = 0;
    // Byte by byte, so an instruction that ends just before an unmapped page still decodes.
    while fetched < MAX_LEN {
        let Some(at) = rip.checked_add(fetched as u64) else {
            break;
        };
        if gm.read(at, &mut bytes[fetched..=fetched]).is_err() {
            break;
        }
        fetched += 1;
    }
    let Some(op) = decode_mov_cr(&bytes[..fetched]) else {
        return false;
    };
    match (op.write, op.cr) {
        (false, 2) => *vcpu.regs.gpr_mut(op.gpr) = vcpu.cr2,
        (false, 3) => *vcpu.regs.gpr_mut(op.gpr) = l4 << 12,
        (true, 3) => {
            let mfn = Mfn(*vcpu.regs.gpr_mut(op.gpr) >> 12);
            let mut c = Call::new(hv, dom, v, vcpu);
            if super::mmu::new_baseptr(&mut c, mfn).is_err() {
                return false;
            }
        }
        _ => return false,
    }
    vcpu.regs.rip = rip.wrapping_add(u64::from(op.len));
    true
}
