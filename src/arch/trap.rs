//! Exception handling: the saved register frame and the dispatcher the entry stubs call.
//!
//! Every exception in the hypervisor itself is fatal for now: it prints a register dump with the
//! faulting RIP (the harness symbolises `rip:` lines with the image's symbols), a frame-pointer
//! backtrace when the stack allows, and ends the run with the failure code.
//!
//! An exception from ring 3 is a PV guest's (guest kernel and user both run there): it goes to
//! `pv::guest_exit`, which hands it to the vCPU's run loop (bounce to the guest's handler, or
//! kill the domain) and never returns here. An interrupt taken in ring 3 (the hypervisor's own
//! vectors, `cpu::ipi`) arrives here too: its handler runs first, then the vCPU leaves for the
//! run loop the same way, which may reschedule. NMI, #DF and #MC stay fatal wherever they hit:
//! they are machine events, not guest faults.

use core::fmt;

use boot::arch::qemu::{self, ExitCode};

/// Registers as `entry.S` saves them, lowest address first.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "reserved 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "reserved 22",
    "reserved 23",
    "reserved 24",
    "reserved 25",
    "reserved 26",
    "reserved 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "reserved 31",
];

/// The name of exception `vector` ("#PF page fault", …).
pub fn exception_name(vector: u64) -> &'static str {
    NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("unknown vector")
}

fn read_cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effects; we run at CPL 0.
    unsafe { core::arch::asm!("mov {}, cr2", out(reg) value, options(nomem, nostack)) };
    value
}

fn read_cr3() -> u64 {
    let value: u64;
    // SAFETY: reading CR3 has no side effects; we run at CPL 0.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) value, options(nomem, nostack)) };
    value
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rip: {:#018x}   cs: {:#06x}  rflags: {:#010x}",
            self.rip, self.cs, self.rflags
        )?;
        writeln!(
            f,
            "rsp: {:#018x}   ss: {:#06x}  error: {:#x}",
            self.rsp, self.ss, self.error
        )?;
        writeln!(
            f,
            "rax: {:#018x}  rbx: {:#018x}  rcx: {:#018x}",
            self.rax, self.rbx, self.rcx
        )?;
        writeln!(
            f,
            "rdx: {:#018x}  rsi: {:#018x}  rdi: {:#018x}",
            self.rdx, self.rsi, self.rdi
        )?;
        writeln!(
            f,
            "rbp: {:#018x}   r8: {:#018x}   r9: {:#018x}",
            self.rbp, self.r8, self.r9
        )?;
        writeln!(
            f,
            "r10: {:#018x}  r11: {:#018x}  r12: {:#018x}",
            self.r10, self.r11, self.r12
        )?;
        writeln!(
            f,
            "r13: {:#018x}  r14: {:#018x}  r15: {:#018x}",
            self.r13, self.r14, self.r15
        )?;
        write!(f, "cr2: {:#018x}  cr3: {:#018x}", read_cr2(), read_cr3())
    }
}

/// Vectors that are never a guest's to handle: NMI, #DF, #MC.
const MACHINE_VECTORS: [u64; 3] = [2, 8, 18];

/// Called by `trap_common` with the saved frame.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    if frame.cs & 3 == 3 && frame.vector >= 32 {
        crate::cpu::ipi::dispatch(frame.vector);
        crate::pv::guest_exit(frame, 0, crate::pv::regs::EXIT_INTERRUPT);
    }
    if frame.cs & 3 == 3 && !MACHINE_VECTORS.contains(&frame.vector) {
        // CR2 first: nothing after this point may fault before it is read.
        let cr2 = if frame.vector == 14 { read_cr2() } else { 0 };
        crate::pv::guest_exit(frame, cr2, crate::pv::regs::EXIT_EXCEPTION);
    }
    let name = NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("unknown vector");
    crate::console::raw(format_args!(
        "\n*** argon: FATAL EXCEPTION {} (vector {}) in the hypervisor ***\n{}\n",
        name, frame.vector, frame
    ));
    print_backtrace(frame.rbp);
    crate::console::raw(format_args!(
        "*** argon: halting after fatal exception ***\n"
    ));
    qemu::exit(ExitCode::Failure);
}

/// Prints return addresses by walking saved frame pointers, as far as they stay on a known stack.
pub fn print_backtrace(mut rbp: u64) {
    let Some((bottom, top)) = crate::arch::current_stack() else {
        return;
    };
    crate::console::raw(format_args!("backtrace:\n"));
    for _ in 0..16 {
        if !rbp.is_multiple_of(8) || rbp < bottom || rbp + 16 > top {
            break;
        }
        // SAFETY: rbp is 8-byte aligned and [rbp, rbp + 16) lies inside this CPU's mapped stack.
        let next = unsafe { *(rbp as *const u64) };
        // SAFETY: as above.
        let ret = unsafe { *((rbp + 8) as *const u64) };
        if ret == 0 {
            break;
        }
        crate::console::raw(format_args!("  rip: {ret:#018x}\n"));
        rbp = next;
    }
}
