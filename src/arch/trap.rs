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

/// The registers every dump prints, in print order.
pub struct DumpRegs {
    /// rip, cs, rflags, rsp, ss, error code.
    pub control: [u64; 6],
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, r8..r15.
    pub gprs: [u64; 15],
}

/// Writes the register lines shared by hypervisor and guest dumps (the caller adds its last line).
pub fn write_registers(f: &mut fmt::Formatter<'_>, r: &DumpRegs) -> fmt::Result {
    let [rip, cs, rflags, rsp, ss, error] = r.control;
    writeln!(
        f,
        "rip: {rip:#018x}   cs: {cs:#06x}  rflags: {rflags:#010x}"
    )?;
    writeln!(f, "rsp: {rsp:#018x}   ss: {ss:#06x}  error: {error:#x}")?;
    const NAMES: [&str; 15] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", " r8", " r9", "r10", "r11", "r12", "r13",
        "r14", "r15",
    ];
    for (names, values) in NAMES.chunks(3).zip(r.gprs.chunks(3)) {
        for (i, (n, v)) in names.iter().zip(values).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            write!(f, "{sep}{n}: {v:#018x}")?;
        }
        writeln!(f)?;
    }
    Ok(())
}

impl fmt::Display for TrapFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let regs = DumpRegs {
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
        write_registers(f, &regs)?;
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
    let name = exception_name(frame.vector);
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
