//! Running PV guests: the per-CPU guest entry area, the syscall/sysret MSRs, entering a vCPU
//! and getting it back ([`enter`]), and the exception path from guest mode
//! ([`guest_exception`], called by `arch::trap::trap_dispatch`).
//!
//! | module | owns |
//! |---|---|
//! | `entry.S` | `pv_run_guest`, the LSTAR/CSTAR stubs, `pv_exit_to_host` |
//! | `regs` | [`regs::GuestRegs`], exit kinds, the frame checks before every entry |
//! | `guestmem` | the one checked accessor for guest virtual memory |
//! | `hypercall` | the dispatcher, `multicall` |
//! | `ops` | console_io, xen_version, vm_assist, sched_op, memory_op, vcpu_op, audit |
//! | `traps` | trap table, callbacks, bounce frames, `iret`, stack/segment hypercalls |
//! | `mmu` | `mmu_update` / `mmuext_op` / `update_va_mapping` |
//!
//! Invariants (see also `entry.S`): guests run on the bootstrap CPU only (CPU 0), which
//! [`cpu_init`] prepares; while the hypervisor runs there, GS base is [`GuestCpu`] 0, whose first
//! word is CPU 0's `PerCpu` address, so `cpu::percpu::this_cpu()` keeps working; exceptions from
//! ring 3 arrive on the dedicated entry stack (TSS.rsp0), never on the stack `enter` runs on.

pub mod guestmem;
pub mod hypercall;
mod mmu;
mod ops;
pub mod regs;
pub mod traps;

use core::mem::offset_of;

use smp::BootCell;
use smp::x86::{rdmsr, wrmsr};

use crate::arch::gdt::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS, HYPERVISOR_CS};
use crate::arch::trap::TrapFrame;
use regs::{EXIT_EXCEPTION, EXIT_SYSCALL, EXIT_SYSCALL32, GuestRegs};

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

/// What the entry stubs reach through GS while the hypervisor runs.
#[repr(C)]
pub struct GuestCpu {
    /// This CPU's `PerCpu` address (`gs:[0]`, read by `this_cpu`).
    percpu_self: u64,
    /// The hypervisor's stack pointer inside `pv_run_guest`.
    host_rsp: u64,
    /// The running vCPU's `GuestRegs`.
    regs: u64,
    /// One scratch word for the stubs.
    scratch: u64,
    /// Non-zero: return with sysretq.
    sysret: u64,
}

const ENTRY_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(4096))]
struct EntryStack([u8; ENTRY_STACK_SIZE]);

/// CPU 0's area (guests run on CPU 0 only).
static AREA: BootCell<GuestCpu> = BootCell::new(GuestCpu {
    percpu_self: 0,
    host_rsp: 0,
    regs: 0,
    scratch: 0,
    sysret: 0,
});
/// CPU 0's stack for exceptions from ring 3 (TSS.rsp0).
static ENTRY_STACK: BootCell<EntryStack> = BootCell::new(EntryStack([0; ENTRY_STACK_SIZE]));

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
    GC_HOST_RSP = const offset_of!(GuestCpu, host_rsp),
    GC_REGS = const offset_of!(GuestCpu, regs),
    GC_SCRATCH = const offset_of!(GuestCpu, scratch),
    GC_SYSRET = const offset_of!(GuestCpu, sysret),
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

/// Prepares the current CPU to run guests: syscall MSRs, TSS.rsp0, the GS layout of `entry.S`.
///
/// # Safety
///
/// Call once, on CPU 0 (the BSP), with interrupts off, after `cpu::init` set its GS base.
pub unsafe fn cpu_init() -> Result<(), &'static str> {
    if crate::cpu::percpu::this_index() != 0 {
        return Err("guests run on the bootstrap CPU only");
    }
    let percpu = crate::cpu::percpu::this_cpu() as *const _ as u64;
    let area = AREA.get();
    let stack_top = ENTRY_STACK.get() as u64 + ENTRY_STACK_SIZE as u64;
    let star = (u64::from(FLAT_RING3_CS32) << 48) | (u64::from(HYPERVISOR_CS) << 32);
    // SAFETY: single-threaded on CPU 0 (the caller's contract): no stub uses the area yet.
    unsafe { (*area).percpu_self = percpu };
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
    // SAFETY: reading EFER has no side effects.
    let efer = unsafe { rdmsr(smp::x86::MSR_EFER) };
    // SAFETY: EFER.SCE only enables syscall/sysret, whose MSRs were just set.
    unsafe { wrmsr(smp::x86::MSR_EFER, efer | EFER_SCE) };
    // SAFETY: on the BSP with interrupts off; the entry stack is ours alone.
    unsafe { crate::arch::set_bsp_rsp0(stack_top) };
    // SAFETY: from here on GS base is the area, whose first word is this CPU's PerCpu address,
    // so `this_cpu()` (the only GS-relative reader outside entry.S) keeps working.
    unsafe { wrmsr(smp::x86::MSR_GS_BASE, area as u64) };
    Ok(())
}

/// Loads the segment bases of the vCPU about to run: FS, and the guest GS base (which lives in
/// KERNEL_GS_BASE while the hypervisor runs).
pub fn load_segment_bases(fs: u64, gs: u64) {
    for (msr, value) in [(MSR_FS_BASE, fs), (MSR_KERNEL_GS_BASE, gs)] {
        if !regs::canonical(value) {
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

/// Runs the vCPU whose registers are `regs` until it leaves; returns the exit kind
/// (`regs::EXIT_*`) with `regs` updated.
///
/// The caller must have called [`cpu_init`], sanitised `regs` (`GuestRegs::sanitise`), loaded
/// the vCPU's page tables into CR3 and kept interrupts off.
pub fn enter(regs: &mut GuestRegs) -> u64 {
    let area = AREA.get();
    let sysret = u64::from(regs.sysret_ok());
    let regs = regs as *mut GuestRegs as u64;
    // SAFETY: the area is CPU 0's and only this CPU's stubs use it, inside the call below.
    unsafe { (*area).regs = regs };
    // SAFETY: as above.
    unsafe { (*area).sysret = sysret };
    // SAFETY: the area names a live, sanitised GuestRegs (derived from `regs`, which is not used
    // while the call runs), CR3 holds the vCPU's tables and interrupts are off (the caller's
    // part); the stubs restore every callee-saved register before returning here.
    let kind = unsafe { pv_run_guest() };
    // SAFETY: as for the first write; the guest has left.
    unsafe { (*area).regs = 0 };
    kind
}

/// An exception from guest mode (CPL 3): stores the frame into the running vCPU's registers and
/// returns to the hypervisor's `enter` with [`EXIT_EXCEPTION`].
pub fn guest_exception(frame: &TrapFrame, cr2: u64) -> ! {
    let area = AREA.get();
    // SAFETY: reading CPU 0's area on CPU 0; only `enter` writes it, and it is suspended.
    let regs = unsafe { (*area).regs } as *mut GuestRegs;
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
    unsafe { pv_exit_to_host(EXIT_EXCEPTION) }
}

/// Loads CR3.
///
/// # Safety
///
/// `value` must address an L4 that maps the hypervisor (slots 261/262 as in the boot L4) and
/// stays valid while it is loaded.
pub unsafe fn switch_cr3(value: u64) {
    // SAFETY: the caller guarantees the new tables keep the hypervisor mapped.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) value, options(nostack)) };
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
