//! `vcpu_guest_context` (x86-64, 5168 bytes, spec §6.5) and its `VGCF_*` flags
//! (`xen/include/public/arch-x86/xen.h`).
//!
//! The guest passes this structure to `VCPUOP_initialise` to start a secondary vCPU; the domain
//! builder fills one for vCPU 0. The hypervisor reads it from guest memory as bytes
//! ([`Wire::read_from`](crate::wire::Wire::read_from)); every offset below is the C header's and is
//! asserted at compile time.
//!
//! Page-table bases travel in `ctrlreg` in CR3 format (`xen_pfn_to_cr3`: MFN << 12): `ctrlreg[3]`
//! is the kernel L4, `ctrlreg[1]` the user L4 (0 = none).

use crate::regs::{CpuUserRegs, TrapInfo};
use crate::wire::abi_struct;

/// The FPU image in `fpu_ctxt` is valid.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// The context is in guest-kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// Entering the failsafe callback masks events.
pub const VGCF_FAILSAFE_DISABLES_EVENTS: u64 = 1 << 3;
/// Entering the syscall callback masks events.
pub const VGCF_SYSCALL_DISABLES_EVENTS: u64 = 1 << 4;
/// The vCPU is online.
pub const VGCF_ONLINE: u64 = 1 << 5;

/// Size of `struct vcpu_guest_context` on x86-64.
pub const VCPU_GUEST_CONTEXT_SIZE: usize = 5168;

abi_struct! {
    /// `struct vcpu_guest_context` for x86-64.
    #[repr(C)]
    pub struct VcpuGuestContext, size 5168 {
        /// FXSAVE image (valid with [`VGCF_I387_VALID`]).
        pub fpu_ctxt: [u8; 512] = 0,
        /// `VGCF_*` flags.
        pub flags: u64 = 512,
        /// General registers, segment selectors, rip/rflags/rsp.
        pub user_regs: CpuUserRegs = 520,
        /// The virtual IDT.
        pub trap_ctxt: [TrapInfo; 256] = 720,
        /// LDT linear address.
        pub ldt_base: u64 = 4816,
        /// LDT entries.
        pub ldt_ents: u64 = 4824,
        /// GDT machine frames.
        pub gdt_frames: [u64; 16] = 4832,
        /// GDT entries.
        pub gdt_ents: u64 = 4960,
        /// Kernel stack segment (the virtual TSS's SS1).
        pub kernel_ss: u64 = 4968,
        /// Kernel stack pointer for user → kernel transitions (the virtual TSS's SP1).
        pub kernel_sp: u64 = 4976,
        /// CR0–CR7; `[3]` kernel L4 and `[1]` user L4, in CR3 format.
        pub ctrlreg: [u64; 8] = 4984,
        /// DR0–DR7.
        pub debugreg: [u64; 8] = 5048,
        /// Event upcall entry point.
        pub event_callback_eip: u64 = 5112,
        /// Failsafe callback entry point.
        pub failsafe_callback_eip: u64 = 5120,
        /// Entry point for `syscall` from guest user mode.
        pub syscall_callback_eip: u64 = 5128,
        /// Bitmap of enabled `VMASST_TYPE_*` assists.
        pub vm_assist: u64 = 5136,
        /// FS base.
        pub fs_base: u64 = 5144,
        /// GS base in guest-kernel mode.
        pub gs_base_kernel: u64 = 5152,
        /// GS base in guest-user mode.
        pub gs_base_user: u64 = 5160,
    }
}

/// A CR3 value for the frame `pfn` (`xen_pfn_to_cr3`).
pub const fn xen_pfn_to_cr3(pfn: u64) -> u64 {
    pfn << 12
}

/// The frame a CR3 value names (`xen_cr3_to_pfn`).
pub const fn xen_cr3_to_pfn(cr3: u64) -> u64 {
    cr3 >> 12
}

impl VcpuGuestContext {
    /// MFN of the kernel L4 (`ctrlreg[3]`).
    pub const fn kernel_l4_mfn(&self) -> u64 {
        xen_cr3_to_pfn(self.ctrlreg[3])
    }

    /// MFN of the user L4 (`ctrlreg[1]`), `None` when there is none.
    pub const fn user_l4_mfn(&self) -> Option<u64> {
        match xen_cr3_to_pfn(self.ctrlreg[1]) {
            0 => None,
            mfn => Some(mfn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use core::mem::{offset_of, size_of};

    #[test]
    fn flags_match_xen_h() {
        assert_eq!(
            [
                VGCF_I387_VALID,
                VGCF_IN_KERNEL,
                VGCF_FAILSAFE_DISABLES_EVENTS,
                VGCF_SYSCALL_DISABLES_EVENTS,
                VGCF_ONLINE
            ],
            [1, 4, 8, 16, 32]
        );
    }

    #[test]
    fn size_and_offsets() {
        assert_eq!(size_of::<VcpuGuestContext>(), VCPU_GUEST_CONTEXT_SIZE);
        assert_eq!(offset_of!(VcpuGuestContext, fpu_ctxt), 0);
        assert_eq!(offset_of!(VcpuGuestContext, flags), 512);
        assert_eq!(offset_of!(VcpuGuestContext, user_regs), 520);
        assert_eq!(offset_of!(VcpuGuestContext, trap_ctxt), 720);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_base), 4816);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_ents), 4824);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_frames), 4832);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_ents), 4960);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_ss), 4968);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_sp), 4976);
        assert_eq!(offset_of!(VcpuGuestContext, ctrlreg), 4984);
        assert_eq!(offset_of!(VcpuGuestContext, debugreg), 5048);
        assert_eq!(offset_of!(VcpuGuestContext, event_callback_eip), 5112);
        assert_eq!(offset_of!(VcpuGuestContext, failsafe_callback_eip), 5120);
        assert_eq!(offset_of!(VcpuGuestContext, syscall_callback_eip), 5128);
        assert_eq!(offset_of!(VcpuGuestContext, vm_assist), 5136);
        assert_eq!(offset_of!(VcpuGuestContext, fs_base), 5144);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_kernel), 5152);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_user), 5160);
    }

    #[test]
    fn nested_fields_encode_at_absolute_offsets() {
        let mut ctx = VcpuGuestContext {
            flags: VGCF_IN_KERNEL | VGCF_ONLINE,
            ..Default::default()
        };
        ctx.user_regs.rsi = 0x4_0000;
        ctx.user_regs.cs = 0xE033;
        ctx.trap_ctxt[255] = TrapInfo {
            vector: 0xFF,
            flags: 4,
            cs: 0xE033,
            address: 0xABCD,
        };
        ctx.ctrlreg[3] = xen_pfn_to_cr3(0x1234);
        ctx.gs_base_user = 0x5555;

        let mut b = [0u8; VCPU_GUEST_CONTEXT_SIZE];
        ctx.write_to(&mut b).unwrap();
        assert_eq!(b[512], 0x24);
        assert_eq!(
            &b[520 + 104..520 + 112],
            &0x4_0000u64.to_le_bytes(),
            "user_regs.rsi"
        );
        assert_eq!(&b[520 + 136..520 + 138], &[0x33, 0xE0], "user_regs.cs");
        let last_trap = 720 + 255 * 16;
        assert_eq!(&b[last_trap..last_trap + 4], &[0xFF, 4, 0x33, 0xE0]);
        assert_eq!(&b[last_trap + 8..last_trap + 16], &0xABCDu64.to_le_bytes());
        assert_eq!(
            &b[4984 + 24..4984 + 32],
            &(0x1234u64 << 12).to_le_bytes(),
            "ctrlreg[3]"
        );
        assert_eq!(&b[5160..5168], &0x5555u64.to_le_bytes());
        assert_eq!(VcpuGuestContext::read_from(&b).unwrap(), ctx);
    }

    #[test]
    fn page_table_bases() {
        let mut ctx = VcpuGuestContext::default();
        assert_eq!(ctx.user_l4_mfn(), None);
        ctx.ctrlreg[3] = xen_pfn_to_cr3(0x42);
        ctx.ctrlreg[1] = xen_pfn_to_cr3(0x43);
        assert_eq!(ctx.kernel_l4_mfn(), 0x42);
        assert_eq!(ctx.user_l4_mfn(), Some(0x43));
        assert_eq!(xen_cr3_to_pfn(xen_pfn_to_cr3(0xF_FFFF)), 0xF_FFFF);
    }
}
