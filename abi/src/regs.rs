//! `cpu_user_regs` (x86-64, 200 bytes) and `trap_info` (16 bytes), the building blocks of
//! `vcpu_guest_context` (`xen/include/public/arch-x86/xen-x86_64.h`, `arch-x86/xen.h`).
//!
//! `cpu_user_regs` keeps Xen's register order (r15 first), which is the order of its exception
//! frame, not the hardware's. `error_code` and `entry_vector` are Xen-private. `saved_upcall_mask`
//! sits in the padding after `cs`; `rflags.IF` of a guest context is `!saved_upcall_mask`. The
//! `_padN` fields are the header's explicit padding (each 16-bit selector fills an 8-byte slot);
//! they are ignored on input and should be left 0.
//!
//! `trap_info` is one entry of the virtual IDT (`set_trap_table`, `trap_ctxt`). Its `flags` byte
//! carries the DPL in bits 1..0 ([`TI_DPL_MASK`]) and "mask events on entry" in bit 2
//! ([`TI_CLEAR_EVENTS`]). A table passed to `set_trap_table` ends at the first entry whose
//! `address` is 0.

use crate::wire::abi_struct;

abi_struct! {
    /// `struct cpu_user_regs` (named `guest_user_regs` inside Xen).
    #[repr(C)]
    pub struct CpuUserRegs, size 200 {
        /// r15.
        pub r15: u64 = 0,
        /// r14.
        pub r14: u64 = 8,
        /// r13.
        pub r13: u64 = 16,
        /// r12.
        pub r12: u64 = 24,
        /// rbp.
        pub rbp: u64 = 32,
        /// rbx.
        pub rbx: u64 = 40,
        /// r11.
        pub r11: u64 = 48,
        /// r10.
        pub r10: u64 = 56,
        /// r9.
        pub r9: u64 = 64,
        /// r8.
        pub r8: u64 = 72,
        /// rax.
        pub rax: u64 = 80,
        /// rcx.
        pub rcx: u64 = 88,
        /// rdx.
        pub rdx: u64 = 96,
        /// rsi.
        pub rsi: u64 = 104,
        /// rdi.
        pub rdi: u64 = 112,
        /// Xen-private: exception error code.
        pub error_code: u32 = 120,
        /// Xen-private: vector of the entry.
        pub entry_vector: u32 = 124,
        /// rip.
        pub rip: u64 = 128,
        /// cs.
        pub cs: u16 = 136,
        /// Padding.
        pub _pad0: u16 = 138,
        /// The event-upcall mask saved with this context.
        pub saved_upcall_mask: u8 = 140,
        /// Padding.
        pub _pad1: [u8; 3] = 141,
        /// rflags.
        pub rflags: u64 = 144,
        /// rsp.
        pub rsp: u64 = 152,
        /// ss.
        pub ss: u16 = 160,
        /// Padding.
        pub _pad2: [u16; 3] = 162,
        /// es.
        pub es: u16 = 168,
        /// Padding.
        pub _pad3: [u16; 3] = 170,
        /// ds.
        pub ds: u16 = 176,
        /// Padding.
        pub _pad4: [u16; 3] = 178,
        /// fs.
        pub fs: u16 = 184,
        /// Padding.
        pub _pad5: [u16; 3] = 186,
        /// gs.
        pub gs: u16 = 192,
        /// Padding.
        pub _pad6: [u16; 3] = 194,
    }
}

/// Bits of `trap_info.flags` holding the DPL a software `int` needs to reach the handler.
pub const TI_DPL_MASK: u8 = 3;
/// Bit of `trap_info.flags`: mask event delivery when the handler is entered (an interrupt gate).
pub const TI_CLEAR_EVENTS: u8 = 1 << 2;

abi_struct! {
    /// `struct trap_info`: one virtual IDT entry.
    #[repr(C)]
    pub struct TrapInfo, size 16 {
        /// Exception vector.
        pub vector: u8 = 0,
        /// DPL in bits 1..0, [`TI_CLEAR_EVENTS`] in bit 2.
        pub flags: u8 = 1,
        /// Code selector of the handler.
        pub cs: u16 = 2,
        /// Handler address; 0 ends a `set_trap_table` list.
        pub address: u64 = 8,
    }
}

impl TrapInfo {
    /// The DPL (0–3).
    pub const fn dpl(&self) -> u8 {
        self.flags & TI_DPL_MASK
    }

    /// True if entering the handler masks event delivery.
    pub const fn clears_events(&self) -> bool {
        self.flags & TI_CLEAR_EVENTS != 0
    }

    /// True for the entry that ends a `set_trap_table` list.
    pub const fn is_terminator(&self) -> bool {
        self.address == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use core::mem::{offset_of, size_of};

    #[test]
    fn cpu_user_regs_layout() {
        assert_eq!(size_of::<CpuUserRegs>(), 200);
        assert_eq!(offset_of!(CpuUserRegs, r15), 0);
        assert_eq!(offset_of!(CpuUserRegs, rbp), 32);
        assert_eq!(offset_of!(CpuUserRegs, rbx), 40);
        assert_eq!(offset_of!(CpuUserRegs, r11), 48);
        assert_eq!(offset_of!(CpuUserRegs, rax), 80);
        assert_eq!(offset_of!(CpuUserRegs, rcx), 88);
        assert_eq!(offset_of!(CpuUserRegs, rdx), 96);
        assert_eq!(offset_of!(CpuUserRegs, rsi), 104);
        assert_eq!(offset_of!(CpuUserRegs, rdi), 112);
        assert_eq!(offset_of!(CpuUserRegs, error_code), 120);
        assert_eq!(offset_of!(CpuUserRegs, entry_vector), 124);
        assert_eq!(offset_of!(CpuUserRegs, rip), 128);
        assert_eq!(offset_of!(CpuUserRegs, cs), 136);
        assert_eq!(offset_of!(CpuUserRegs, saved_upcall_mask), 140);
        assert_eq!(offset_of!(CpuUserRegs, rflags), 144);
        assert_eq!(offset_of!(CpuUserRegs, rsp), 152);
        assert_eq!(offset_of!(CpuUserRegs, ss), 160);
        assert_eq!(offset_of!(CpuUserRegs, es), 168);
        assert_eq!(offset_of!(CpuUserRegs, ds), 176);
        assert_eq!(offset_of!(CpuUserRegs, fs), 184);
        assert_eq!(offset_of!(CpuUserRegs, gs), 192);
    }

    #[test]
    fn cpu_user_regs_bytes() {
        let regs = CpuUserRegs {
            rip: 0xFFFF_FFFF_8000_1000,
            cs: 0xE033,
            saved_upcall_mask: 1,
            ss: 0xE02B,
            gs: 0x1234,
            ..CpuUserRegs::default()
        };
        let mut b = [0xAAu8; 200];
        regs.write_to(&mut b).unwrap();
        assert_eq!(&b[128..136], &0xFFFF_FFFF_8000_1000u64.to_le_bytes());
        assert_eq!(&b[136..144], &[0x33, 0xE0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&b[160..168], &[0x2B, 0xE0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[192..200], &[0x34, 0x12, 0, 0, 0, 0, 0, 0]);
        assert_eq!(CpuUserRegs::read_from(&b).unwrap(), regs);
    }

    #[test]
    fn trap_info_layout_and_flags() {
        assert_eq!(size_of::<TrapInfo>(), 16);
        assert_eq!(offset_of!(TrapInfo, vector), 0);
        assert_eq!(offset_of!(TrapInfo, flags), 1);
        assert_eq!(offset_of!(TrapInfo, cs), 2);
        assert_eq!(offset_of!(TrapInfo, address), 8);

        let ti = TrapInfo {
            vector: 14,
            flags: 3 | TI_CLEAR_EVENTS,
            cs: 0xE033,
            address: 0x1000,
        };
        let mut b = [0u8; 16];
        ti.write_to(&mut b).unwrap();
        assert_eq!(&b[..8], &[14, 7, 0x33, 0xE0, 0, 0, 0, 0]);
        assert_eq!(ti.dpl(), 3);
        assert!(ti.clears_events());
        assert!(!ti.is_terminator());
        let gate = TrapInfo { flags: 0, ..ti };
        assert_eq!(gate.dpl(), 0);
        assert!(!gate.clears_events());
        assert!(TrapInfo::default().is_terminator());
    }
}
