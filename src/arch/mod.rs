//! The thin machine layer of the hypervisor: descriptor tables, trap entry, stacks.
//!
//! Everything here runs on the bootstrap CPU during single-threaded boot; per-AP tables arrive
//! with SMP bring-up.

pub mod gdt;
pub mod idt;
pub mod trap;

core::arch::global_asm!(include_str!("entry.S"), options(att_syntax));

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(4096))]
struct IstStacks([[u8; IST_STACK_SIZE]; 3]);

static mut BSP_TSS: gdt::Tss = gdt::Tss::new();
static mut BSP_GDT: gdt::Gdt = gdt::Gdt::new();
static mut IDT: idt::Idt = idt::Idt::new();
static mut BSP_IST: IstStacks = IstStacks([[0; IST_STACK_SIZE]; 3]);

/// Loads the BSP's GDT, TSS (with IST stacks) and the IDT.
///
/// # Safety
///
/// Call exactly once, on the bootstrap CPU, before any other CPU runs and before interrupts are
/// enabled.
pub unsafe fn init_bsp() {
    // SAFETY: single-threaded boot (the caller's contract), so these statics have no other users;
    // they are permanent, as `load` requires.
    unsafe {
        let ist = &raw mut BSP_IST;
        let tss = &mut *(&raw mut BSP_TSS);
        for (slot, ist_index) in [gdt::IST_DOUBLE_FAULT, gdt::IST_NMI, gdt::IST_MACHINE_CHECK]
            .into_iter()
            .enumerate()
        {
            let top = (&raw mut (*ist).0[slot]) as u64 + IST_STACK_SIZE as u64;
            tss.ist[usize::from(ist_index) - 1] = top;
        }
        let gdt = &mut *(&raw mut BSP_GDT);
        gdt.init(&*(&raw const BSP_TSS));
        gdt.load();
        let idt = &mut *(&raw mut IDT);
        idt.init();
        idt.load();
    }
}

/// The stack the current code runs on, as `[bottom, top)`, when it is a known stack.
pub fn current_stack() -> Option<(u64, u64)> {
    let rsp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    let (bottom, top) = boot::arch::boot_stack();
    (bottom..top).contains(&rsp).then_some((bottom, top))
}

/// Installs an interrupt entry stub for `vector` in the shared IDT.
///
/// # Safety
///
/// `handler` must be the address of an interrupt entry that saves what it clobbers and returns
/// with `iretq`. Call only during single-threaded boot, before other CPUs load the IDT, or with
/// interrupts disabled everywhere the vector could arrive.
pub unsafe fn set_interrupt_gate(vector: u8, handler: u64) {
    // SAFETY: the caller guarantees no CPU is concurrently reading the gate being written.
    unsafe { (*(&raw mut IDT)).set_interrupt(vector, handler) };
}

/// Loads the shared IDT on the current CPU (used by application processors).
///
/// # Safety
///
/// The IDT must already be initialised by [`init_bsp`], and this CPU's GDT and TSS loaded.
pub unsafe fn load_idt() {
    // SAFETY: IDT is initialised and permanent (caller's contract).
    unsafe { (*(&raw const IDT)).load() };
}

/// Sets the BSP's ring-0 stack for entries from ring 3 (TSS.rsp0), used by exceptions taken
/// while a guest runs.
///
/// # Safety
///
/// Call on the BSP with interrupts off; `top` must be the top of a 16-byte aligned stack that
/// nothing else uses.
pub unsafe fn set_bsp_rsp0(top: u64) {
    // SAFETY: the BSP's TSS is only written on the BSP (the caller's contract); the CPU reads
    // rsp0 only on a privilege change, which cannot happen while interrupts are off here.
    unsafe { (*(&raw mut BSP_TSS)).rsp0 = top };
}
