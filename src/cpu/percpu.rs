//! Per-CPU state: one cache-padded [`PerCpu`] per CPU index, reached through the GS base, and
//! each AP's GDT, TSS and stacks.
//!
//! Invariants:
//! - CPU index 0 is the BSP; APs get indices in MADT order. An index is never reused, even for
//!   an AP that failed to start, so its stack and GDT slot are never shared.
//! - While in the hypervisor, IA32_GS_BASE holds `&PERCPU[index]`, whose first word holds that
//!   same address ([`this_cpu`] reads `gs:[0]`). Loading a null GS selector clears the base on
//!   Intel, so anything that reloads GS (`Gdt::load`) must be followed by [`set_gs_base`].
//! - `state` moves ABSENT → STARTING (BSP, Release) → ONLINE (the AP, AcqRel CAS) or ABANDONED
//!   (the BSP on timeout, AcqRel CAS). The CAS makes a late AP and a timed-out BSP agree.
//! - Stacks: each AP slot is `[guard page][stack][3 IST stacks][guest entry stack]`. The guard
//!   page is only reserved: the early page tables map the image with 2 MiB pages, so it cannot be
//!   unmapped yet; see [`guard_pages`] for the hook that will unmap them once 4 KiB mappings
//!   exist. Slot 0 belongs to the BSP, which keeps the boot stack and uses only the slot's guest
//!   entry stack.
//! - [`PerCpu::guest`] is the area `pv/entry.S` reaches at fixed GS offsets; only its own CPU
//!   (its Rust code and its entry stubs, with interrupts off) touches it.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use smp::CachePadded;
use smp::cpuset::CpuSet;
use smp::{BootCell, MAX_CPUS};

use crate::arch::gdt::{Gdt, Tss};

use super::ipi::Mailbox;

pub const ABSENT: u8 = 0;
pub const STARTING: u8 = 1;
pub const ONLINE: u8 = 2;
pub const ABANDONED: u8 = 3;

/// One CPU's state. Fields other CPUs write are atomics; the rest is written before the CPU runs.
#[repr(C)]
pub struct PerCpu {
    /// The address of this struct: `gs:[0]`.
    self_addr: AtomicU64,
    pub index: AtomicU32,
    pub apic_id: AtomicU32,
    pub state: AtomicU8,
    /// Cross-CPU calls (run in the IPI handler) and posted work (run by the idle loop).
    pub call: Mailbox,
    pub work: Mailbox,
    /// Interrupts this CPU has taken on its own vectors (statistics).
    pub interrupts: AtomicU64,
    /// One-shot timer expiries seen.
    pub timer_fired: AtomicU64,
    /// What the PV entry stubs reach through GS (`pv/entry.S`).
    pub guest: GuestArea,
}

/// The words `pv/entry.S` saves and loads at `gs:` offsets while a vCPU runs on this CPU. Atomics
/// only for `Sync`: the stubs access them as plain memory, and only this CPU does, with
/// interrupts off (Relaxed everywhere on the Rust side).
#[repr(C)]
pub struct GuestArea {
    /// The hypervisor's stack pointer inside `pv_run_guest`.
    pub host_rsp: AtomicU64,
    /// The running vCPU's `GuestRegs` (0 = no vCPU on this CPU).
    pub regs: AtomicU64,
    /// One scratch word for the stubs.
    pub scratch: AtomicU64,
    /// Non-zero: return to the guest with sysretq.
    pub sysret: AtomicU64,
}

impl GuestArea {
    const fn new() -> Self {
        Self {
            host_rsp: AtomicU64::new(0),
            regs: AtomicU64::new(0),
            scratch: AtomicU64::new(0),
            sysret: AtomicU64::new(0),
        }
    }
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_addr: AtomicU64::new(0),
            index: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            state: AtomicU8::new(ABSENT),
            call: Mailbox::new(),
            work: Mailbox::new(),
            interrupts: AtomicU64::new(0),
            timer_fired: AtomicU64::new(0),
            guest: GuestArea::new(),
        }
    }
}

/// Padded so that one CPU's hot words never share a line with another's.
static PERCPU: [CachePadded<PerCpu>; MAX_CPUS] =
    [const { CachePadded::new(PerCpu::new()) }; MAX_CPUS];

/// Which CPUs are online. Bits are set with Release by the CPU itself once its IDT, APIC and GS
/// base are up; readers use Acquire.
static ONLINE_SET: AtomicU64 = AtomicU64::new(0);

/// The state of CPU `index`, if the index is in range.
pub fn cpu(index: usize) -> Option<&'static PerCpu> {
    PERCPU.get(index).map(|p| &**p)
}

/// The current CPU's state. Before the GS base is set (early BSP boot) this is CPU 0's.
pub fn this_cpu() -> &'static PerCpu {
    let addr: u64;
    // SAFETY: reads one word at GS base + 0; GS base is either 0 (early boot: the identity-mapped
    // low page, a harmless read) or the address of a PerCpu, whose first word is its address.
    unsafe {
        core::arch::asm!("mov {}, gs:[0]", out(reg) addr, options(nostack, readonly, preserves_flags))
    };
    let base = PERCPU.as_ptr() as u64;
    let stride = core::mem::size_of::<CachePadded<PerCpu>>() as u64;
    let index = addr.wrapping_sub(base) / stride;
    match PERCPU.get(index as usize) {
        Some(p) if &**p as *const PerCpu as u64 == addr => p,
        _ => &PERCPU[0],
    }
}

/// The current CPU's index.
pub fn this_index() -> usize {
    // Relaxed: written by this CPU before it set its GS base.
    this_cpu().index.load(Ordering::Relaxed) as usize
}

/// Points IA32_GS_BASE at CPU `index`'s state and records its identity.
///
/// # Safety
///
/// Runs on CPU `index` itself, which owns that slot; nothing may rely on the previous GS base.
pub unsafe fn set_gs_base(index: usize, apic_id: u32) {
    let p = &PERCPU[index];
    let addr = &**p as *const PerCpu as u64;
    // Relaxed: read only by this CPU (through GS) and by others after the online Release.
    p.self_addr.store(addr, Ordering::Relaxed);
    p.index.store(index as u32, Ordering::Relaxed);
    p.apic_id.store(apic_id, Ordering::Relaxed);
    // SAFETY: IA32_GS_BASE exists on x86-64; the caller owns this CPU's GS base.
    unsafe { smp::x86::wrmsr(smp::x86::MSR_GS_BASE, addr) };
}

/// Marks the current CPU online (after its IDT, APIC and GS base are ready).
pub fn mark_online(index: usize) {
    // Release: pairs with the Acquire in `online()`; senders of IPIs see a CPU ready for them.
    ONLINE_SET.fetch_or(1 << index, Ordering::Release);
}

/// The online CPUs.
pub fn online() -> CpuSet {
    // Acquire: pairs with the Release in `mark_online`.
    CpuSet(ONLINE_SET.load(Ordering::Acquire))
}

const GUARD: usize = 4096;
const STACK_SIZE: usize = 64 * 1024;
const IST_SIZE: usize = 8 * 1024;
const ENTRY_SIZE: usize = 16 * 1024;

/// One AP's stacks: a guard page, the main stack (hypercalls and validation run on it), the
/// #DF, NMI and #MC stacks, and the stack exceptions and interrupts from a guest arrive on
/// (TSS.rsp0).
#[repr(C, align(4096))]
pub struct CpuStacks {
    guard: [u8; GUARD],
    stack: [u8; STACK_SIZE],
    ist: [[u8; IST_SIZE]; 3],
    entry: [u8; ENTRY_SIZE],
}

/// Slot `i` belongs to AP `i`; slot 0 (the BSP's, which keeps the boot stack) stays unused so
/// that the trampoline's `base + index * stride` needs no offset.
static STACKS: BootCell<[CpuStacks; MAX_CPUS]> = BootCell::new(
    [const {
        CpuStacks {
            guard: [0; GUARD],
            stack: [0; STACK_SIZE],
            ist: [[0; IST_SIZE]; 3],
            entry: [0; ENTRY_SIZE],
        }
    }; MAX_CPUS],
);
static TSS: [BootCell<Tss>; MAX_CPUS] = [const { BootCell::new(Tss::new()) }; MAX_CPUS];
/// AP GDTs (64 KiB each, in .bss); slot 0 unused like the stacks.
static GDT: [BootCell<Gdt>; MAX_CPUS] = [const { BootCell::new(Gdt::new()) }; MAX_CPUS];

/// `(stack_base, stride)` for the trampoline: AP `i` starts with `rsp = stack_base + i * stride`.
pub fn ap_stack_layout() -> (u64, u64) {
    let base = STACKS.get() as u64;
    (
        base + (GUARD + STACK_SIZE) as u64,
        core::mem::size_of::<CpuStacks>() as u64,
    )
}

/// Top of CPU `index`'s guest entry stack (its TSS.rsp0): ring-3 exceptions and interrupts
/// arrive there. Slot 0's is the BSP's.
pub fn entry_stack_top(index: usize) -> u64 {
    let stride = core::mem::size_of::<CpuStacks>();
    let off = index * stride + core::mem::offset_of!(CpuStacks, entry) + ENTRY_SIZE;
    STACKS.get() as u64 + off as u64
}

/// Virtual addresses of the reserved guard pages below each AP stack, for the memory code to
/// unmap once it maps the image with 4 KiB pages.
#[expect(
    dead_code,
    reason = "hook for the memory code, which cannot unmap 4 KiB pages yet"
)]
pub fn guard_pages() -> impl Iterator<Item = u64> {
    let (base, stride) = (
        STACKS.get() as u64,
        core::mem::size_of::<CpuStacks>() as u64,
    );
    (1..MAX_CPUS as u64).map(move |i| base + i * stride)
}

/// Fills AP `index`'s TSS (IST stacks) and GDT and loads them.
///
/// # Safety
///
/// Runs once on AP `index` itself (1..MAX_CPUS), which owns slot `index`; the shared IDT is
/// loaded afterwards by the caller.
pub unsafe fn load_ap_tables(index: usize) {
    use crate::arch::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI};
    let stride = core::mem::size_of::<CpuStacks>();
    let ist_base =
        (STACKS.get() as u64) + (index * stride + core::mem::offset_of!(CpuStacks, ist)) as u64;
    // SAFETY: slot `index` is this AP's alone (caller's contract), so no other reference to its
    // TSS exists while this one is used.
    let tss = unsafe { &mut *TSS[index].get() };
    for (slot, ist) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
        .into_iter()
        .enumerate()
    {
        tss.ist[usize::from(ist) - 1] = ist_base + ((slot + 1) * IST_SIZE) as u64;
    }
    tss.rsp0 = entry_stack_top(index);
    // SAFETY: as above for the GDT slot.
    let gdt = unsafe { &mut *GDT[index].get() };
    // SAFETY: the TSS is complete and is never written again: a shared 'static borrow is sound.
    gdt.init(unsafe { &*TSS[index].get() });
    // SAFETY: the GDT was just initialised and lives forever in its static slot; its TSS
    // descriptor is fresh (not busy on any CPU).
    unsafe { gdt.load() };
}
