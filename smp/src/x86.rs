//! The few privileged instructions the SMP code needs: MSRs, the TSC, port I/O, control
//! registers and CPUID facts. Bare-metal only.

/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1b;
/// IA32_EFER.
pub const MSR_EFER: u32 = 0xc000_0080;
/// IA32_GS_BASE: the per-CPU area pointer while in the hypervisor.
pub const MSR_GS_BASE: u32 = 0xc000_0101;

/// Reads an MSR.
///
/// # Safety
///
/// `msr` must exist on this CPU (reading a missing MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; rdmsr touches no memory.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Writes an MSR.
///
/// # Safety
///
/// `msr` must exist and `value` must be valid for it, and the write must not break an invariant
/// other code relies on (for example the GS base or the APIC mode).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid and wanted.
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter (CR4.TSD is clear in ring 0 anyway).
    unsafe {
        core::arch::asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Reads an I/O port.
///
/// # Safety
///
/// The port must belong to a device the caller owns; reads can have device side effects.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller owns the device; no memory is touched.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes an I/O port.
///
/// # Safety
///
/// The port must belong to a device the caller owns.
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller owns the device; no memory is touched.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// CR0, CR3 and CR4 as read on this CPU.
pub fn read_cr0_cr3_cr4() -> (u64, u64, u64) {
    let (cr0, cr3, cr4): (u64, u64, u64);
    // SAFETY: reading control registers has no side effects in ring 0.
    unsafe {
        core::arch::asm!("mov {}, cr0", "mov {}, cr3", "mov {}, cr4", out(reg) cr0, out(reg) cr3, out(reg) cr4, options(nomem, nostack, preserves_flags))
    };
    (cr0, cr3, cr4)
}

/// Whether interrupts are enabled (RFLAGS.IF).
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: pushfq/pop only reads RFLAGS through the stack.
    unsafe {
        core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags))
    };
    flags & (1 << 9) != 0
}

/// Runs `f` with interrupts disabled, restoring the previous state afterwards.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    // SAFETY: cli only masks maskable interrupts on this CPU; restored below.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    let r = f();
    if was {
        // SAFETY: interrupts were enabled on entry, so enabling them again is the caller's state.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
    r
}

/// CPUID facts the SMP code acts on.
#[derive(Clone, Copy, Debug)]
pub struct CpuFacts {
    pub x2apic: bool,
    /// CPUID.1:ECX[31]: running under a hypervisor (QEMU sets it under TCG and KVM).
    pub hypervisor: bool,
    /// This CPU's initial APIC ID (CPUID.1:EBX[31:24]).
    pub initial_apic_id: u8,
    /// The TSC frequency CPUID states (leaves 0x15/0x16), if any.
    pub tsc_hz: Option<u64>,
}

/// Reads the CPUID facts of the current CPU.
pub fn cpu_facts() -> CpuFacts {
    let id = raw_cpuid::CpuId::new();
    let fi = id.get_feature_info();
    let leaf15 = id
        .get_tsc_info()
        .map(|t| (t.denominator(), t.numerator(), t.nominal_frequency()));
    let leaf16 = id
        .get_processor_frequency_info()
        .map(|f| u32::from(f.processor_base_frequency()));
    CpuFacts {
        x2apic: fi.as_ref().is_some_and(|f| f.has_x2apic()),
        hypervisor: fi.as_ref().is_some_and(|f| f.has_hypervisor()),
        initial_apic_id: fi.as_ref().map_or(0, |f| f.initial_local_apic_id()),
        tsc_hz: crate::tsc::hz_from_cpuid(leaf15, leaf16),
    }
}
