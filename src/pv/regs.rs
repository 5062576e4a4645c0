//! A vCPU's saved user-visible state ([`GuestRegs`]) as the entry stubs in `entry.S` store and
//! load it, the exit kinds they report, and the checks every return to a guest passes.
//!
//! Invariants: `entry.S` addresses fields only through the `offset_of!` constants passed to its
//! `global_asm!`, so the layout here is the single source of truth. [`GuestRegs::sanitise`] runs
//! before every entry: after it, `cs`/`ss` are flat ring-3 selectors, `rflags` has IF set and no
//! IOPL/NT/RF/VM, and `rip` is canonical (below 4 GiB for 32-bit code) — so neither `iretq` nor
//! `sysretq` can fault in ring 0 (XSA-7 class) whatever the guest put in its iret frame or trap
//! table.

use core::fmt;

use hvcore::hypercall::is_canonical;

use crate::arch::gdt::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS};

/// The guest executed `syscall` in 64-bit mode.
pub const EXIT_SYSCALL: u64 = 1;
/// The guest executed `syscall` in compatibility mode (CSTAR).
pub const EXIT_SYSCALL32: u64 = 2;
/// The guest took an exception; `vector`, `error` and `cr2` say which.
pub const EXIT_EXCEPTION: u64 = 3;
/// An interrupt arrived while the guest ran (its handler already ran); nothing for the guest.
pub const EXIT_INTERRUPT: u64 = 4;

/// RFLAGS bits a guest may set: CF PF AF ZF SF TF DF OF AC ID.
const GUEST_FLAGS: u64 = 0x0024_0DD5;
const RFLAGS_IF: u64 = 1 << 9;
const RFLAGS_FIXED: u64 = 1 << 1;
/// RFLAGS.TF.
pub const RFLAGS_TF: u64 = 1 << 8;

/// General registers and the return frame of a vCPU, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    /// Exception vector of the last exit (meaningful for [`EXIT_EXCEPTION`]).
    pub vector: u64,
    /// Its error code (0 when the exception has none).
    pub error: u64,
    /// CR2 at a page fault.
    pub cr2: u64,
}

/// Why a frame cannot be returned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadFrame {
    /// `rip` is not canonical (or, for 32-bit code, above 4 GiB).
    BadRip,
    /// `cs` or `ss` is not a flat ring-3 selector.
    Selector,
}

impl GuestRegs {
    /// The state a PV kernel starts in (pv-boot-abi.md): flat kernel selectors, IF set.
    pub fn at_entry(rip: u64, rsp: u64, rsi: u64) -> Self {
        Self {
            rip,
            rsp,
            rsi,
            cs: u64::from(FLAT_RING3_CS64),
            ss: u64::from(FLAT_RING3_DS),
            rflags: RFLAGS_IF | RFLAGS_FIXED,
            ..Self::default()
        }
    }

    /// Forces the frame into a shape `iretq`/`sysretq` to ring 3 always accepts, or says why it
    /// cannot be (the caller then delivers a fault to the guest or crashes it).
    pub fn sanitise(&mut self) -> Result<(), BadFrame> {
        self.cs |= 3;
        self.ss |= 3;
        self.rflags = (self.rflags & GUEST_FLAGS) | RFLAGS_IF | RFLAGS_FIXED;
        let cs_ok = self.cs == u64::from(FLAT_RING3_CS64) || self.cs == u64::from(FLAT_RING3_CS32);
        if !cs_ok || self.ss != u64::from(FLAT_RING3_DS) {
            return Err(BadFrame::Selector);
        }
        // iretq checks RIP against the code segment before it leaves ring 0: a 32-bit segment's
        // limit is 4 GiB, a 64-bit one needs a canonical address.
        let compat = self.cs == u64::from(FLAT_RING3_CS32);
        if !is_canonical(self.rip) || (compat && self.rip > u64::from(u32::MAX)) {
            return Err(BadFrame::BadRip);
        }
        Ok(())
    }

    /// After [`Self::sanitise`]: `sysretq` restores exactly this frame (64-bit code, and rcx/r11
    /// already equal to rip/rflags as after the `syscall` that left the guest).
    pub fn sysret_ok(&self) -> bool {
        self.cs == u64::from(FLAT_RING3_CS64) && self.rcx == self.rip && self.r11 == self.rflags
    }

    /// Hypercall arguments (rdi, rsi, rdx, r10, r8).
    pub fn args(&self) -> [u64; 5] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8]
    }

    /// General register `n` (its low 4 bits) in encoding order: rax, rcx, rdx, rbx, rsp, rbp,
    /// rsi, rdi, r8–r15 (what the emulated instructions name).
    pub fn gpr_mut(&mut self, n: u8) -> &mut u64 {
        match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }

    /// General register `n`, as [`Self::gpr_mut`].
    pub fn gpr(&self, n: u8) -> u64 {
        let mut copy = *self;
        *copy.gpr_mut(n)
    }
}

impl fmt::Display for GuestRegs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regs = crate::arch::trap::DumpRegs {
            control: [
                self.rip,
                self.cs,
                self.rflags,
                self.rsp,
                self.ss,
                self.error,
            ],
            gprs: [
                self.rax, self.rbx, self.rcx, self.rdx, self.rsi, self.rdi, self.rbp, self.r8,
                self.r9, self.r10, self.r11, self.r12, self.r13, self.r14, self.r15,
            ],
        };
        crate::arch::trap::write_registers(f, &regs)?;
        write!(f, "cr2: {:#018x}  vector: {}", self.cr2, self.vector)
    }
}
