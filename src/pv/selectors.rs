//! A vCPU's data-segment selectors — DS, ES, FS, GS — saved when it leaves its CPU ([`save`])
//! and loaded when it is switched in ([`load`]), so that a selector one vCPU loaded never stays
//! live while another vCPU, of its domain or of another, runs on that CPU (Xen's
//! `save_segments` / `load_segments`). `VCPUOP_initialise` sets them from the context's
//! `user_regs`; a new domain's vCPU 0 starts with all four null.
//!
//! Loading happens at CPL 0, after the CPU's copy of the vCPU's GDT is brought up to date
//! (`desc::load_gdt`). Each selector is first checked against that copy
//! (`hvcore::desc::data_selector_loads`: would the guest itself, at CPL 3, load it?). One that
//! would not — its descriptor changed or went away since the guest loaded it, it names an LDT
//! (none is loaded), or `VCPUOP_initialise` named a bad one — is replaced by the null selector
//! 0, in the register and in the record, so the hypervisor never faults on a guest's selector.
//! Xen too loads the null selector there, and then also bounces the vCPU to its failsafe
//! callback with the old selectors on its stack; Argon does not: the guest just finds the null
//! selector (a documented difference, and not one a guest tests: Xen's failsafe frame needs a
//! failsafe callback, which Argon's guests do not register).
//!
//! Bases: loading FS or GS rewrites that segment's base from the descriptor. The FS base is the
//! guest's, and the caller loads it afterwards (`pv::load_segment_bases`); the GS base is, while
//! the hypervisor runs, IA32_GS_BASE = this CPU's `PerCpu` (`cpu::percpu`), which [`load`]
//! writes back in the same `asm!` block as the GS load. An NMI between the two would find a bad
//! GS base; Argon sends none. A null FS or GS selector that is already live is not reloaded.
//!
//! Invariant: call both on the CPU the vCPU runs on, with interrupts off. Between them nothing
//! in the hypervisor loads DS/ES/FS/GS (64-bit mode does not use DS/ES, the hypervisor uses no
//! FS, and entries from ring 3 leave all four alone), so the guest's selectors stay live while
//! the hypervisor handles its exits and are still the guest's at [`save`].

use smp::x86::{MSR_GS_BASE, rdmsr};

use crate::arch::gdt;

/// DS, ES, FS, GS of a vCPU that is not on a CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataSelectors {
    pub ds: u16,
    pub es: u16,
    pub fs: u16,
    pub gs: u16,
}

/// The selectors live on this CPU: the running vCPU's, when it leaves.
pub fn save() -> DataSelectors {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment registers has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {ds:x}, ds",
            "mov {es:x}, es",
            "mov {fs:x}, fs",
            "mov {gs:x}, gs",
            ds = out(reg) ds,
            es = out(reg) es,
            fs = out(reg) fs,
            gs = out(reg) gs,
            options(nomem, nostack, preserves_flags),
        );
    }
    DataSelectors { ds, es, fs, gs }
}

/// Would the guest load `sel` with this CPU's GDT as it is now?
fn loadable(sel: u16) -> bool {
    let desc = gdt::entry(usize::from(sel >> 3)).unwrap_or(0);
    hvcore::desc::data_selector_loads(sel, desc)
}

/// Loads the selectors of the vCPU about to run here; one that would not load becomes null,
/// in `want` too (module head). The FS base is left clobbered: load the bases next.
pub fn load(want: &mut DataSelectors) {
    for sel in [&mut want.ds, &mut want.es, &mut want.fs, &mut want.gs] {
        if !loadable(*sel) {
            *sel = 0;
        }
    }
    let live = save();
    let reload = |want: u16, live: u16| want != live || want >> 3 != 0;
    // SAFETY: both selectors passed `data_selector_loads` against this CPU's GDT, so neither
    // load faults at CPL 0; 64-bit mode addresses nothing through DS or ES.
    unsafe {
        core::arch::asm!(
            "mov ds, {ds:x}",
            "mov es, {es:x}",
            ds = in(reg) want.ds,
            es = in(reg) want.es,
            options(nomem, nostack, preserves_flags),
        );
    }
    if reload(want.fs, live.fs) {
        // SAFETY: as above; the hypervisor does not use FS, whose base the caller restores.
        unsafe {
            core::arch::asm!(
                "mov fs, {0:x}",
                in(reg) want.fs,
                options(nomem, nostack, preserves_flags)
            );
        }
    }
    if reload(want.gs, live.gs) {
        // SAFETY: reading IA32_GS_BASE, an MSR every x86-64 CPU has.
        let percpu = unsafe { rdmsr(MSR_GS_BASE) };
        // SAFETY: the selector passed the check above, so the load does not fault; it clobbers
        // the GS base, which the `wrmsr` right after puts back to this CPU's `PerCpu` before
        // anything reads through GS (interrupts are off: the caller's part).
        unsafe {
            core::arch::asm!(
                "mov gs, {sel:x}",
                "wrmsr",
                sel = in(reg) want.gs,
                in("ecx") MSR_GS_BASE,
                in("eax") percpu as u32,
                in("edx") (percpu >> 32) as u32,
                options(nostack, preserves_flags),
            );
        }
    }
}
