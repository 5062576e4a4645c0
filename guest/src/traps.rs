//! Exceptions in the test kernel: a virtual IDT for #DE, #UD, #GP and #PF, fault-tolerant
//! probes ([`probe_read`], [`probe_write`]) and the entry point of secondary vCPUs.
//!
//! A probe is a one-instruction access at a known address; the #PF handler recognises its RIP
//! and resumes at `probe_fault`, which returns 1 from the probe, so a test can ask "does this
//! access fault now?" (spec §8.7: a flushed translation must fault). Any other exception is
//! unexpected: the handler reports vector and RIP and crashes the domain, so a broken test
//! never passes by faulting.
//!
//! Handlers run on the interrupted kernel stack with the hypervisor's bounce frame (`rcx`,
//! `r11`, [error code], `rip`, `cs`, `rflags`, `rsp`, `ss`) and return through the `iret`
//! hypercall (`push $0; jmp hypercall_page + 23 * 32`, whose stub pushes `rcx`, `r11`, `rax`).
//! They are stateless, so every vCPU shares the same table.

use abi::TrapInfo;
use abi::selectors::FLAT_KERNEL_CS64;

use crate::console::println;

core::arch::global_asm!(
    r#"
    .section .text, "ax"

    .global guest_probe_read
guest_probe_read:                   /* u64 (u64 va, u64 *out): 0, or 1 if the load faulted */
    xor %eax, %eax
probe_read_insn:
    mov (%rdi), %rdx
    mov %rdx, (%rsi)
    ret

    .global guest_probe_write
guest_probe_write:                  /* u64 (u64 va, u64 value): 0, or 1 if the store faulted */
    xor %eax, %eax
probe_write_insn:
    mov %rsi, (%rdi)
    ret

probe_fault:
    mov $1, %eax
    ret

    .global guest_trap_pf
guest_trap_pf:
    pop %rcx
    pop %r11
    add $8, %rsp                    /* the error code */
    push %rax
    push %rdx
    lea probe_read_insn(%rip), %rdx
    cmp %rdx, 16(%rsp)
    je 1f
    lea probe_write_insn(%rip), %rdx
    cmp %rdx, 16(%rsp)
    jne 2f
1:  lea probe_fault(%rip), %rdx
    mov %rdx, 16(%rsp)              /* resume at probe_fault */
    pop %rdx
    pop %rax
    push $0
    jmp hypercall_page + 23 * 32
2:  pop %rdx
    pop %rax
    mov $14, %edi
    jmp trap_unexpected

    .global guest_trap_gp
guest_trap_gp:
    pop %rcx
    pop %r11
    add $8, %rsp
    mov $13, %edi
    jmp trap_unexpected

    .global guest_trap_ud
guest_trap_ud:
    pop %rcx
    pop %r11
    mov $6, %edi
    jmp trap_unexpected

    .global guest_trap_de
guest_trap_de:
    pop %rcx
    pop %r11
    mov $0, %edi
    jmp trap_unexpected

trap_unexpected:                    /* %rdi = vector, (%rsp) = rip */
    mov (%rsp), %rsi
    and $-16, %rsp
    call guest_bad_trap
    ud2

    .global guest_secondary_entry
guest_secondary_entry:              /* %rdi = vCPU id, %rsp = its stack (from its context) */
    xor %ebp, %ebp
    call guest_secondary_main
    ud2
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn guest_probe_read(va: u64, out: *mut u64) -> u64;
    fn guest_probe_write(va: u64, value: u64) -> u64;
    fn guest_trap_pf();
    fn guest_trap_gp();
    fn guest_trap_ud();
    fn guest_trap_de();
    /// Where secondary vCPUs start (`smp`).
    pub fn guest_secondary_entry();
}

/// Reads the u64 at `va`; `None` if the access faults.
pub fn probe_read(va: u64) -> Option<u64> {
    let mut out = 0u64;
    // SAFETY: the probe reads 8 bytes at `va` with a plain load; a fault is caught by the #PF
    // handler and reported as 1, so no access happens that the kernel has to survive.
    let faulted = unsafe { guest_probe_read(va, &mut out) };
    (faulted == 0).then_some(out)
}

/// Writes `value` at `va`; false if the access faults.
///
/// # Safety
///
/// If the store does not fault it lands at `va`: the caller must own that memory (or expect
/// the fault that makes the store impossible).
pub unsafe fn probe_write(va: u64, value: u64) -> bool {
    // SAFETY: the caller vouches for the store; a fault is caught as in `probe_read`.
    unsafe { guest_probe_write(va, value) == 0 }
}

/// The virtual IDT every vCPU uses (for `set_trap_table` and `vcpu_guest_context.trap_ctxt`).
pub fn table() -> [TrapInfo; 4] {
    let entry = |vector: u8, handler: unsafe extern "C" fn()| TrapInfo {
        vector,
        flags: 0,
        cs: FLAT_KERNEL_CS64,
        address: handler as usize as u64,
    };
    [
        entry(0, guest_trap_de),
        entry(6, guest_trap_ud),
        entry(13, guest_trap_gp),
        entry(14, guest_trap_pf),
    ]
}

/// Installs [`table`] on the calling vCPU; the hypercall's result.
pub fn install() -> i64 {
    let t = table();
    let mut list = [TrapInfo::default(); 5];
    list[..4].copy_from_slice(&t);
    // SAFETY: a terminated array of trap_info; the handlers are this module's stubs.
    unsafe {
        crate::hypercall::hypercall5(
            abi::Hypercall::SetTrapTable.nr(),
            list.as_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    }
}

/// An exception no test expected: say where, and crash the domain.
#[unsafe(no_mangle)]
extern "C" fn guest_bad_trap(vector: u64, rip: u64) -> ! {
    println!("guest: PANIC unexpected exception {vector} at rip {rip:#x}");
    let rc = crate::hypercall::shutdown(abi::sched::SHUTDOWN_CRASH);
    println!("guest: shutdown returned {rc}");
    loop {
        core::hint::spin_loop();
    }
}
