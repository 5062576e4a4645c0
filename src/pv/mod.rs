//! Running PV guests: the syscall/sysret MSRs of every CPU, entering a vCPU and getting it back
//! ([`enter`]), and the exits from guest mode ([`guest_exit`], called by
//! `arch::trap::trap_dispatch` for exceptions and interrupts taken in ring 3).
//!
//! | module | owns |
//! |---|---|
//! | `entry.S` | `pv_run_guest`, the LSTAR/CSTAR stubs, `pv_exit_to_host` |
//! | `regs` | [`regs::GuestRegs`], exit kinds, the frame checks before every entry |
//! | `guestmem` | the one checked accessor for guest virtual memory |
//! | `hypercall` | the dispatcher, `multicall` |
//! | `ops` | console_io, xen_version, vm_assist, sched_op, memory_op, audit |
//! | `vcpu_op` | `vcpu_op`: initialise, up, down, is_up |
//! | `traps` | trap table, callbacks, bounce frames, `iret`, stack/segment hypercalls |
//! | `emul` | the privileged instructions emulated on #GP (`mov` from CR2/CR3, to CR3) |
//! | `ptwr` | writable page tables: guest stores into its read-only L1s, emulated on #PF |
//! | `fpu` | guest x87/SSE state switching, `fpu_taskswitch`, #NM |
//! | `mmu` | `mmu_update` / `mmuext_op` / `update_va_mapping` |
//! | `desc` | `set_gdt`, `update_descriptor`, the vCPUs' GDT records and their copies in the CPU GDTs |
//! | `selectors` | each vCPU's DS/ES/FS/GS selectors, saved and loaded when it leaves and joins a CPU |
//!
//! Invariants (see also `entry.S`): every CPU that runs guests has called [`cpu_init`]; while
//! the hypervisor runs, GS base is this CPU's `PerCpu` (`cpu::percpu`), whose `guest` area the
//! stubs use at fixed offsets; exceptions and interrupts from ring 3 arrive on the CPU's own
//! entry stack (TSS.rsp0), never on the stack `enter` runs on; `enter` is called with
//! interrupts off, and returns with them off.

pub mod desc;
mod emul;
pub mod fpu;
pub mod guestmem;
pub mod hypercall;
mod mmu;
mod ops;
mod ptwr;
pub mod regs;
pub mod selectors;
pub mod traps;
mod vcpu_op;

use core::mem::offset_of;

use core::sync::atomic::Ordering;

use smp::x86::{rdmsr, wrmsr};

use crate::arch::gdt::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS, HYPERVISOR_CS};
use crate::arch::trap::TrapFrame;
use crate::cpu::percpu::{self, GuestArea, PerCpu};
use regs::{EXIT_SYSCALL, EXIT_SYSCALL32, GuestRegs};

pub use ops::reason_name;

const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_CSTAR: u32 = 0xC000_0083;
const MSR_SFMASK: u32 = 0xC000_0084;
const MSR_FS_BASE: u32 = 0xC000_0100;
const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;
const EFER_SCE: u64 = 1;
/// RFLAGS cleared on syscall entry: TF, IF, DF, AC.
const SFMASK: u64 = (1 << 8) | (1 << 9) | (1 << 10) | (1 << 18);

/// Offset of a `GuestArea` field from the GS base (the `PerCpu`).
const fn gc(field: usize) -> usize {
    offset_of!(PerCpu, guest) + field
}

core::arch::global_asm!(
    include_str!("entry.S"),
    R_RAX = const offset_of!(GuestRegs, rax),
    R_RBX = const offset_of!(GuestRegs, rbx),
    R_RCX = const offset_of!(GuestRegs, rcx),
    R_RDX = const offset_of!(GuestRegs, rdx),
    R_RSI = const offset_of!(GuestRegs, rsi),
    R_RDI = const offset_of!(GuestRegs, rdi),
    R_RBP = const offset_of!(GuestRegs, rbp),
    R_R8 = const offset_of!(GuestRegs, r8),
    R_R9 = const offset_of!(GuestRegs, r9),
    R_R10 = const offset_of!(GuestRegs, r10),
    R_R11 = const offset_of!(GuestRegs, r11),
    R_R12 = const offset_of!(GuestRegs, r12),
    R_R13 = const offset_of!(GuestRegs, r13),
    R_R14 = const offset_of!(GuestRegs, r14),
    R_R15 = const offset_of!(GuestRegs, r15),
    R_RIP = const offset_of!(GuestRegs, rip),
    R_CS = const offset_of!(GuestRegs, cs),
    R_RFLAGS = const offset_of!(GuestRegs, rflags),
    R_RSP = const offset_of!(GuestRegs, rsp),
    R_SS = const offset_of!(GuestRegs, ss),
    GC_HOST_RSP = const gc(offset_of!(GuestArea, host_rsp)),
    GC_REGS = const gc(offset_of!(GuestArea, regs)),
    GC_SCRATCH = const gc(offset_of!(GuestArea, scratch)),
    GC_SYSRET = const gc(offset_of!(GuestArea, sysret)),
    CS64 = const FLAT_RING3_CS64,
    CS32 = const FLAT_RING3_CS32,
    SS = const FLAT_RING3_DS,
    EXIT_SYSCALL = const EXIT_SYSCALL,
    EXIT_SYSCALL32 = const EXIT_SYSCALL32,
    options(att_syntax)
);

unsafe extern "C" {
    fn pv_run_guest() -> u64;
    fn pv_exit_to_host(kind: u64) -> !;
    static pv_syscall64: u8;
    static pv_syscall32: u8;
}

/// Prepares the current CPU to run guests: syscall MSRs and EFER.SCE; on the BSP also TSS.rsp0
/// (the APs' is set with their TSS, `cpu::percpu::load_ap_tables`).
///
/// # Safety
///
/// Call once per CPU, on that CPU, with interrupts off, after its GS base and TSS are set.
pub unsafe fn cpu_init() {
    let star = (u64::from(FLAT_RING3_CS32) << 48) | (u64::from(HYPERVISOR_CS) << 32);
    for (msr, value) in [
        (MSR_STAR, star),
        (MSR_LSTAR, (&raw const pv_syscall64) as u64),
        (MSR_CSTAR, (&raw const pv_syscall32) as u64),
        (MSR_SFMASK, SFMASK),
        (MSR_KERNEL_GS_BASE, 0),
    ] {
        // SAFETY: these MSRs exist on every x86-64 CPU; the values are our selectors (a valid
        // STAR pair for this GDT), our stubs' addresses, the flag mask, and a canonical base.
        unsafe { wrmsr(msr, value) };
    }
    fpu::cpu_init();
    // SAFETY: reading EFER has no side effects.
    let efer = unsafe { rdmsr(smp::x86::MSR_EFER) };
    // SAFETY: EFER.SCE only enables syscall/sysret, whose MSRs were just set.
    unsafe { wrmsr(smp::x86::MSR_EFER, efer | EFER_SCE) };
    if percpu::this_index() == 0 {
        // SAFETY: on the BSP with interrupts off (the caller's contract); slot 0's entry stack
        // is the BSP's alone.
        unsafe { crate::arch::set_bsp_rsp0(percpu::entry_stack_top(0)) };
    }
}

/// Loads the segment bases of the vCPU about to run: FS, and the guest GS base (which lives in
/// KERNEL_GS_BASE while the hypervisor runs).
pub fn load_segment_bases(fs: u64, gs: u64) {
    for (msr, value) in [(MSR_FS_BASE, fs), (MSR_KERNEL_GS_BASE, gs)] {
        if !hvcore::hypercall::is_canonical(value) {
            continue;
        }
        // SAFETY: a canonical base (checked) in an MSR every x86-64 CPU has; the hypervisor
        // uses neither FS nor KERNEL_GS_BASE while it runs.
        unsafe { wrmsr(msr, value) };
    }
}

/// The guest's current GS base (kept in KERNEL_GS_BASE while the hypervisor runs).
pub fn guest_gs_base() -> u64 {
    // SAFETY: reading an MSR that exists on every x86-64 CPU.
    unsafe { rdmsr(MSR_KERNEL_GS_BASE) }
}

/// The guest's current FS base: what `set_segment_base` or switching in loaded, unless the
/// guest has since loaded an FS selector, which takes the base from its descriptor.
pub fn guest_fs_base() -> u64 {
    // SAFETY: reading an MSR that exists on every x86-64 CPU.
    unsafe { rdmsr(MSR_FS_BASE) }
}

/// Runs the vCPU whose registers are `regs` until it leaves; returns the exit kind
/// (`regs::EXIT_*`) with `regs` updated.
///
/// The caller must have called [`cpu_init`] on this CPU, sanitised `regs`
/// (`GuestRegs::sanitise`), loaded the vCPU's page tables into CR3 and kept interrupts off.
pub fn enter(regs: &mut GuestRegs) -> u64 {
    let area = &percpu::this_cpu().guest;
    let sysret = u64::from(regs.sysret_ok());
    // Relaxed: this CPU's own area, read by its own stubs below (module head).
    area.regs
        .store(regs as *mut GuestRegs as u64, Ordering::Relaxed);
    area.sysret.store(sysret, Ordering::Relaxed);
    // SAFETY: the area names a live, sanitised GuestRegs (derived from `regs`, which is not used
    // while the call runs), CR3 holds the vCPU's tables and interrupts are off (the caller's
    // part); the stubs restore every callee-saved register before returning here.
    let kind = unsafe { pv_run_guest() };
    // Relaxed: as above; the guest has left.
    area.regs.store(0, Ordering::Relaxed);
    kind
}

/// An exception or interrupt from guest mode (CPL 3): stores the frame into the running
/// vCPU's registers and returns to the hypervisor's `enter` with exit `kind`.
pub fn guest_exit(frame: &TrapFrame, cr2: u64, kind: u64) -> ! {
    let area = &percpu::this_cpu().guest;
    // Relaxed: this CPU's own area, written by `enter` on this CPU.
    let regs = area.regs.load(Ordering::Relaxed) as *mut GuestRegs;
    if regs.is_null() {
        crate::kmain::exit(
            boot::arch::qemu::ExitCode::Failure,
            "failure (ring-3 trap, no vCPU)",
        );
    }
    // SAFETY: CPL 3 was interrupted, so a vCPU is running on this CPU and `regs` points at its
    // live GuestRegs (set by `enter`); nothing else references it until `enter` returns.
    unsafe {
        *regs = GuestRegs {
            rax: frame.rax,
            rbx: frame.rbx,
            rcx: frame.rcx,
            rdx: frame.rdx,
            rsi: frame.rsi,
            rdi: frame.rdi,
            rbp: frame.rbp,
            r8: frame.r8,
            r9: frame.r9,
            r10: frame.r10,
            r11: frame.r11,
            r12: frame.r12,
            r13: frame.r13,
            r14: frame.r14,
            r15: frame.r15,
            rip: frame.rip,
            cs: frame.cs,
            rflags: frame.rflags,
            rsp: frame.rsp,
            ss: frame.ss,
            vector: frame.vector,
            error: frame.error,
            cr2,
        }
    };
    // SAFETY: `enter` is suspended in pv_run_guest on this CPU (a vCPU was running), so the
    // saved host stack in the area is live; this exception's stack is abandoned.
    unsafe { pv_exit_to_host(kind) }
}

/// The current CR3.
pub fn cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects; we run at CPL 0.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

/// Drops this CPU's translation of the page holding `va`.
pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry has no other effect.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack)) };
}

/// Writes back and invalidates this CPU's caches.
pub fn wbinvd() {
    // SAFETY: a cache flush has no effect on memory contents.
    unsafe { core::arch::asm!("wbinvd", options(nostack)) };
}
