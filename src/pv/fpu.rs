//! Guest x87/SSE state ([`FpuState`]) and the guest's virtual CR0.TS (`fpu_taskswitch`).
//!
//! Each vCPU owns an FXSAVE image. A CPU loads it when it switches the vCPU in ([`switch_in`])
//! and saves it when the vCPU leaves ([`switch_out`]): eager switching, so no vCPU — of its own
//! domain or another — ever sees another's registers. The hypervisor is built soft-float and
//! never touches x87/SSE state, so between the two the guest's state stays in the registers
//! through every exit. A vCPU that never ran starts from the reset state (`fninit`, MXCSR
//! 0x1F80) unless `VCPUOP_initialise` gave it an image (`VGCF_I387_VALID`).
//!
//! Virtual TS (Xen's `ctrlreg[0]` TS bit): `fpu_taskswitch(1)` sets it and the vCPU then runs
//! with CR0.TS set, so its next x87/SSE instruction raises #NM; the exception clears the virtual
//! TS and CR0.TS and is bounced to the guest ([`device_not_available`]), as under Xen.
//! `fpu_taskswitch(0)` clears it. CR0.TS is always clear while the hypervisor saves or restores.
//!
//! CPU setup ([`cpu_init`]): CR4.OSFXSR and OSXMMEXCPT (SSE usable, SIMD exceptions as #XM),
//! CR0.MP and NE set, EM clear — what a 64-bit PV kernel finds under Xen. XSAVE is not enabled
//! (CR4.OSXSAVE stays clear, so guests see no AVX state to save).

/// CR0.MP, EM, TS, NE.
const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_NE: u64 = 1 << 5;
/// CR4.OSFXSR, OSXMMEXCPT.
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
/// MXCSR at reset: every SIMD exception masked.
const MXCSR_RESET: u32 = 0x1F80;

/// One vCPU's x87/SSE state (all-zero: never run, virtual TS clear).
#[repr(C, align(16))]
pub struct FpuState {
    /// The FXSAVE image (valid when `valid`).
    image: [u8; 512],
    valid: bool,
    /// The guest's virtual CR0.TS.
    ts: bool,
}

impl FpuState {
    /// Back to the reset state; with `image`, that image instead (`VGCF_I387_VALID`).
    pub fn reset(&mut self, image: Option<&[u8; 512]>) {
        self.valid = image.is_some();
        if let Some(i) = image {
            self.image = *i;
            // The reserved MXCSR bits must be zero or FXRSTOR faults: keep the guest's mask
            // bits and flags only (MXCSR is at offset 24; MXCSR_MASK 0xFFFF is architectural).
            let mxcsr = u32::from_le_bytes([i[24], i[25], i[26], i[27]]) & 0xFFFF;
            self.image[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        }
        self.ts = false;
    }
}

fn read_cr0() -> u64 {
    let cr0: u64;
    // SAFETY: reading CR0 at CPL 0 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags))
    };
    cr0
}

fn clts() {
    // SAFETY: clearing CR0.TS only lets x87/SSE instructions run without #NM.
    unsafe { core::arch::asm!("clts", options(nomem, nostack, preserves_flags)) };
}

fn set_ts() {
    // SAFETY: setting CR0.TS only makes the next x87/SSE instruction raise #NM; the hypervisor
    // executes none (soft-float) and clears it before saving or restoring.
    unsafe {
        core::arch::asm!("mov cr0, {}", in(reg) read_cr0() | CR0_TS, options(nomem, nostack));
    }
}

/// Enables x87/SSE for guests on this CPU (module head). Interrupts off.
pub fn cpu_init() {
    let cr4: u64;
    // SAFETY: reading CR4 at CPL 0 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack)) };
    let cr0 = (read_cr0() | CR0_MP | CR0_NE) & !(CR0_EM | CR0_TS);
    // SAFETY: every x86-64 CPU has FXSR and SSE; these bits only enable them and native x87
    // error reporting, which the hypervisor (soft-float) never uses itself.
    unsafe {
        core::arch::asm!(
            "mov cr4, {}", "mov cr0, {}",
            in(reg) cr4 | CR4_OSFXSR | CR4_OSXMMEXCPT, in(reg) cr0,
            options(nomem, nostack)
        );
    }
}

/// Loads `st` into this CPU's registers as its vCPU is switched in, and CR0.TS from its virtual
/// TS.
pub fn switch_in(st: &FpuState) {
    clts();
    if st.valid {
        // SAFETY: `image` is a 16-byte-aligned 512-byte FXSAVE image, written by `fxsave64` or
        // taken from the guest with its MXCSR reserved bits cleared (`reset`); CR0.TS is clear.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) st.image.as_ptr(), options(nostack, readonly))
        };
    } else {
        let mxcsr = MXCSR_RESET;
        // SAFETY: `fninit` and `ldmxcsr` with all exceptions masked give the reset state; SSE
        // is enabled (`cpu_init`) and CR0.TS is clear.
        unsafe {
            core::arch::asm!(
                "fninit", "ldmxcsr [{}]",
                in(reg) &mxcsr,
                options(nostack, readonly)
            );
        }
    }
    if st.ts {
        set_ts();
    }
}

/// Saves this CPU's registers into `st` as its vCPU leaves.
pub fn switch_out(st: &mut FpuState) {
    clts();
    // SAFETY: `image` is 16-byte aligned and 512 bytes, what `fxsave64` writes; CR0.TS is
    // clear, so it cannot fault.
    unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) st.image.as_mut_ptr(), options(nostack)) };
    st.valid = true;
}

/// `fpu_taskswitch(set)` by the vCPU running on this CPU.
pub fn taskswitch(st: &mut FpuState, set: bool) {
    st.ts = set;
    if set {
        set_ts();
    } else {
        clts();
    }
}

/// A #NM from the vCPU running on this CPU: clears CR0.TS; returns whether to bounce it to the
/// guest (its virtual TS was set, now cleared). Without a virtual TS the fault cannot recur, so
/// the instruction is simply retried.
pub fn device_not_available(st: &mut FpuState) -> bool {
    clts();
    core::mem::replace(&mut st.ts, false)
}
