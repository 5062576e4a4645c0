//! Exceptions in the test kernel: a virtual IDT for #DE, #UD, #GP and #PF, fault-tolerant
//! probes ([`probe_read`], [`probe_write`], [`probe_write32`], [`probe_cmpxchg`], [`probe_ud`]),
//! the record of the last caught exception ([`last_trap`]) and the entry point of secondary
//! vCPUs.
//!
//! A probe is a one-instruction access at a known address. Every handler looks the pair
//! (vector, faulting RIP) up in `catch_table`: #PF or #GP at a read/write probe, #UD at the
//! `ud2` probe and #GP at the non-canonical `rip` of the `iret` probe are expected, so the
//! handler copies the bounce frame to `guest_trap_record`, counts it and resumes at
//! `probe_fault`, which returns 1 from the probe. A test can so ask "does this access fault
//! now?" (spec §8.7: a flushed translation must fault) and check what the hypervisor bounced
//! (`suites::exceptions`). Any other exception is unexpected: the handler reports vector and
//! RIP and crashes the domain, so a broken test never passes by faulting.
//!
//! Handlers run on the interrupted kernel stack with the hypervisor's bounce frame (`rcx`,
//! `r11`, [error code], `rip`, `cs`, `rflags`, `rsp`, `ss`) and return through the `iret`
//! hypercall (`push $0; jmp hypercall_page + 23 * 32`, whose stub pushes `rcx`, `r11`, `rax`).
//! Apart from the record they are stateless, so every vCPU shares the same table; the record is
//! only meaningful to a test that runs on one vCPU while no other vCPU probes.

use abi::TrapInfo;
use abi::selectors::FLAT_KERNEL_CS64;

use crate::console::println;

core::arch::global_asm!(
    r#"
    .section .text, "ax"

    .global guest_probe_read
    .global guest_probe_read_insn
guest_probe_read:                   /* u64 (u64 va, u64 *out): 0, or 1 if the load faulted */
    xor %eax, %eax
probe_read_insn:
guest_probe_read_insn:
    mov (%rdi), %rdx
    mov %rdx, (%rsi)
    ret

    .global guest_probe_write
    .global guest_probe_write_insn
guest_probe_write:                  /* u64 (u64 va, u64 value): 0, or 1 if the store faulted */
    xor %eax, %eax
probe_write_insn:
guest_probe_write_insn:
    mov %rsi, (%rdi)
    ret

    .global guest_probe_write32
    .global guest_probe_write32_insn
guest_probe_write32:                /* u64 (u64 va, u32 value): 0, or 1 if the store faulted */
    xor %eax, %eax
probe_write32_insn:
guest_probe_write32_insn:
    mov %esi, (%rdi)
    ret

    .global guest_probe_cmpxchg
    .global guest_probe_cmpxchg_insn
guest_probe_cmpxchg:                /* u64 (u64 va, u64 expected, u64 new, u64 *rax): 1 if it
                                     * faulted, else 2 if ZF was set or 0, with rax in *rax */
    mov %rsi, %rax
probe_cmpxchg_insn:
guest_probe_cmpxchg_insn:
    lock cmpxchg %rdx, (%rdi)
    mov %rax, (%rcx)
    setz %al
    movzbl %al, %eax
    shl $1, %eax
    ret

probe_fault:
    mov $1, %eax
    ret

    .global guest_probe_ud
    .global guest_probe_ud_insn
guest_probe_ud:                     /* u64 (void): 1 once ud2 raised #UD (0 would mean it did not) */
    xor %eax, %eax
probe_ud_insn:
guest_probe_ud_insn:
    ud2
    ret

    .global guest_probe_iret
guest_probe_iret:                   /* u64 (void): 1 once iret to a non-canonical rip raised #GP */
    xor %eax, %eax
    mov %rsp, %rdx                  /* resumed with this rsp: `ret` returns to the caller */
    push $0xe02b                    /* ss */
    push %rdx                       /* rsp */
    pushfq
    push $0xe030                    /* cs, RPL 0: back to kernel mode (RPL 3 means user mode) */
    movabs $0x0000800000000000, %rdx
    push %rdx                       /* rip: the first non-canonical address */
    push $0                         /* flags */
    jmp hypercall_page + 23 * 32

/* Per-vector entries: restore rcx/r11 from the bounce frame, make the frame
 * [vector, error, rip, cs, rflags, rsp, ss] (error 0 for vectors without one), go to trap_catch. */
    .global guest_trap_pf
guest_trap_pf:
    pop %rcx
    pop %r11
    push $14
    jmp trap_catch

    .global guest_trap_gp
guest_trap_gp:
    pop %rcx
    pop %r11
    push $13
    jmp trap_catch

    .global guest_trap_ud
guest_trap_ud:
    pop %rcx
    pop %r11
    push $0
    push $6
    jmp trap_catch

    .global guest_trap_de
guest_trap_de:
    pop %rcx
    pop %r11
    push $0
    push $0
    jmp trap_catch

/* If (vector, rip) is in catch_table: copy the frame to guest_trap_record, count it, resume at
 * the entry's landing through the iret hypercall. Otherwise the exception is unexpected. */
trap_catch:
    push %rax
    push %rdx                       /* 16(%rsp) vector, 24 error, 32 rip, …, 64 ss */
    lea catch_table(%rip), %rdx
1:  cmpq $0, 8(%rdx)
    je 3f
    mov 16(%rsp), %rax
    cmp (%rdx), %rax
    jne 2f
    mov 32(%rsp), %rax
    cmp 8(%rdx), %rax
    je 4f
2:  add $24, %rdx
    jmp 1b
3:  pop %rdx                        /* unexpected: %rdi = vector, (%rsp) = rip */
    pop %rax
    pop %rdi
    add $8, %rsp
    jmp trap_unexpected
4:  mov 16(%rdx), %rdx              /* the landing */
    mov 16(%rsp), %rax
    mov %rax, guest_trap_record+0(%rip)
    mov 24(%rsp), %rax
    mov %rax, guest_trap_record+8(%rip)
    mov 32(%rsp), %rax
    mov %rax, guest_trap_record+16(%rip)
    mov 40(%rsp), %rax
    mov %rax, guest_trap_record+24(%rip)
    mov 48(%rsp), %rax
    mov %rax, guest_trap_record+32(%rip)
    mov 56(%rsp), %rax
    mov %rax, guest_trap_record+40(%rip)
    mov 64(%rsp), %rax
    mov %rax, guest_trap_record+48(%rip)
    incq guest_trap_record+56(%rip)
    mov %rdx, 32(%rsp)              /* resume at the landing */
    pop %rdx
    pop %rax
    add $16, %rsp                   /* vector, error */
    push $0
    jmp hypercall_page + 23 * 32

    .section .rodata, "a"
    .balign 8
catch_table:                        /* (vector, faulting rip, landing), then a zero entry */
    .quad 14, probe_read_insn, probe_fault
    .quad 13, probe_read_insn, probe_fault
    .quad 14, probe_write_insn, probe_fault
    .quad 13, probe_write_insn, probe_fault
    .quad 14, probe_write32_insn, probe_fault
    .quad 14, probe_cmpxchg_insn, probe_fault
    .quad 6, probe_ud_insn, probe_fault
    .quad 13, 0x0000800000000000, probe_fault
    .quad 0, 0, 0

    .section .bss, "aw", @nobits
    .balign 8
    .global guest_trap_record
guest_trap_record:                  /* vector, error, rip, cs, rflags, rsp, ss, count */
    .skip 64

    .section .text, "ax"
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
    fn guest_probe_write32(va: u64, value: u32) -> u64;
    fn guest_probe_cmpxchg(va: u64, expected: u64, new: u64, rax: *mut u64) -> u64;
    fn guest_probe_ud() -> u64;
    fn guest_probe_iret() -> u64;
    /// The faulting instructions of the probes (labels, never called).
    fn guest_probe_read_insn();
    fn guest_probe_write_insn();
    fn guest_probe_write32_insn();
    fn guest_probe_cmpxchg_insn();
    fn guest_probe_ud_insn();
    /// vector, error, rip, cs, rflags, rsp, ss, count (written by `trap_catch` only).
    static guest_trap_record: [u64; 8];
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

/// Writes the 4 bytes `value` at `va` (`mov %esi,(%rdi)`); false if the access faults.
///
/// # Safety
///
/// As for [`probe_write`].
pub unsafe fn probe_write32(va: u64, value: u32) -> bool {
    // SAFETY: the caller vouches for the store; a fault is caught as in `probe_read`.
    unsafe { guest_probe_write32(va, value) == 0 }
}

/// `lock cmpxchg` of `new` over `expected` at `va` (8 bytes): `None` if it faults, else
/// whether ZF was set (the exchange happened) and rax afterwards (what memory held).
///
/// # Safety
///
/// As for [`probe_write`]: the exchange may store `new` at `va`.
pub unsafe fn probe_cmpxchg(va: u64, expected: u64, new: u64) -> Option<(bool, u64)> {
    let mut rax = 0u64;
    // SAFETY: the caller vouches for the store; a fault is caught as in `probe_read` (and
    // leaves `rax` unwritten).
    match unsafe { guest_probe_cmpxchg(va, expected, new, &mut rax) } {
        1 => None,
        zf => Some((zf == 2, rax)),
    }
}

/// Executes `ud2`; true if the resulting #UD was bounced to the handler and the probe resumed.
pub fn probe_ud() -> bool {
    // SAFETY: `ud2` raises #UD, which the handler catches at this probe's RIP and turns into
    // a return of 1; nothing else happens.
    unsafe { guest_probe_ud() == 1 }
}

/// `HYPERVISOR_iret` to kernel mode at the first non-canonical address (0x0000_8000_0000_0000)
/// on the current stack; true if that raised a #GP bounced with that `rip` (XSA-7: the
/// hypervisor must never `iretq` there itself), after which the probe returns.
pub fn probe_iret_noncanonical() -> bool {
    // SAFETY: the iret frame names the kernel's flat selectors, the current rflags and rsp and
    // a non-canonical rip; the #GP it raises is caught at that rip and resumes at the probe's
    // landing with this rsp, which returns to the caller.
    unsafe { guest_probe_iret() == 1 }
}

/// The `rip` [`probe_iret_noncanonical`] returns to.
pub const NONCANONICAL_RIP: u64 = 0x0000_8000_0000_0000;

/// Which probe instruction faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Read,
    Write,
    Write32,
    Cmpxchg,
    Ud,
}

impl Probe {
    /// The address of the probe's faulting instruction.
    pub fn rip(self) -> u64 {
        let f: unsafe extern "C" fn() = match self {
            Probe::Read => guest_probe_read_insn,
            Probe::Write => guest_probe_write_insn,
            Probe::Write32 => guest_probe_write32_insn,
            Probe::Cmpxchg => guest_probe_cmpxchg_insn,
            Probe::Ud => guest_probe_ud_insn,
        };
        f as usize as u64
    }
}

/// The bounce frame of the last caught exception, as the handler found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrapRecord {
    pub vector: u64,
    /// 0 for vectors without an error code.
    pub error: u64,
    pub rip: u64,
    /// The CS slot: the selector in bits 15..0, the saved upcall mask in bits 39..32.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
    /// Exceptions caught since boot.
    pub count: u64,
}

/// The record of the last caught exception.
pub fn last_trap() -> TrapRecord {
    let base = (&raw const guest_trap_record).cast::<u64>();
    // SAFETY: `guest_trap_record` is 8 words of .bss written only by `trap_catch` (on the
    // vCPU that trapped, before it resumes); volatile loads of words in bounds.
    let w = |i: usize| unsafe { core::ptr::read_volatile(base.wrapping_add(i)) };
    TrapRecord {
        vector: w(0),
        error: w(1),
        rip: w(2),
        cs: w(3),
        rflags: w(4),
        rsp: w(5),
        ss: w(6),
        count: w(7),
    }
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
