//! The #GP probes of the `desc` tests: instructions that may raise #GP (control-register moves,
//! a data-segment load), each at a known address in `global_asm!`, run under the suite's own
//! #GP handler ([`with_gp_probes`]). At a probe's instruction the handler records the error
//! code and RIP, counts the #GP and resumes the probe returning 1; a #GP anywhere else is
//! unexpected and goes to the kernel's `guest_bad_trap`. The kernel's trap table is put back
//! afterwards. The record is only meaningful on the one vCPU the `tests` suite runs on.

use abi::TrapInfo;
use abi::hypercall::Hypercall;
use abi::selectors::FLAT_KERNEL_CS64;

use crate::harness::{Outcome, ensure_eq};
use crate::{hypercall, traps};

core::arch::global_asm!(
    r#"
    .section .text, "ax"

    .global desc_read_cr3
desc_read_cr3:                      /* u64 (u64 *out): 0, or 1 if it raised #GP */
    xor %eax, %eax
desc_read_cr3_insn:
    mov %cr3, %rdx
    mov %rdx, (%rdi)
    ret

    .global desc_read_cr3_r9
desc_read_cr3_r9:                   /* as desc_read_cr3, through %r9 (a REX prefix) */
    xor %eax, %eax
desc_read_cr3_r9_insn:
    mov %cr3, %r9
    mov %r9, (%rdi)
    ret

    .global desc_read_cr2
desc_read_cr2:                      /* u64 (u64 *out) */
    xor %eax, %eax
desc_read_cr2_insn:
    mov %cr2, %rdx
    mov %rdx, (%rdi)
    ret

    .global desc_write_cr3
desc_write_cr3:                     /* u64 (u64 value) */
    xor %eax, %eax
desc_write_cr3_insn:
    mov %rdi, %cr3
    ret

    .global desc_load_ds
desc_load_ds:                       /* u64 (u64 sel): loads it into %ds, then the null selector */
    xor %eax, %eax
desc_load_ds_insn:
    mov %edi, %ds
    xor %edx, %edx
    mov %edx, %ds
    ret

desc_gp_resume:
    mov $1, %eax
    ret

    .global desc_trap_gp
desc_trap_gp:                       /* bounce frame: rcx, r11, error, rip, cs, rflags, rsp, ss */
    pop %rcx
    pop %r11
    push %rax
    push %rdx                       /* 0 rdx, 8 rax, 16 error, 24 rip */
    mov 24(%rsp), %rax
    lea desc_read_cr3_insn(%rip), %rdx
    cmp %rdx, %rax
    je 1f
    lea desc_read_cr3_r9_insn(%rip), %rdx
    cmp %rdx, %rax
    je 1f
    lea desc_read_cr2_insn(%rip), %rdx
    cmp %rdx, %rax
    je 1f
    lea desc_write_cr3_insn(%rip), %rdx
    cmp %rdx, %rax
    je 1f
    lea desc_load_ds_insn(%rip), %rdx
    cmp %rdx, %rax
    je 1f
    pop %rdx                        /* unexpected: the kernel's report */
    pop %rax
    add $8, %rsp
    mov $13, %edi
    mov (%rsp), %rsi
    and $-16, %rsp
    call guest_bad_trap
    ud2
1:  mov %rax, desc_gp_record+8(%rip)
    mov 16(%rsp), %rax
    mov %rax, desc_gp_record+0(%rip)
    incq desc_gp_record+16(%rip)
    lea desc_gp_resume(%rip), %rax
    mov %rax, 24(%rsp)              /* resume at desc_gp_resume */
    pop %rdx
    pop %rax
    add $8, %rsp                    /* the error code */
    push $0
    jmp hypercall_page + 23 * 32

    .section .bss, "aw", @nobits
    .balign 8
    .global desc_gp_record
desc_gp_record:                     /* error, rip, count */
    .skip 24

    .section .text, "ax"
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn desc_read_cr3(out: *mut u64) -> u64;
    fn desc_read_cr3_r9(out: *mut u64) -> u64;
    fn desc_read_cr2(out: *mut u64) -> u64;
    fn desc_write_cr3(value: u64) -> u64;
    fn desc_load_ds(sel: u64) -> u64;
    fn desc_trap_gp();
    /// Labels of the probes' instructions (never called).
    fn desc_write_cr3_insn();
    /// error, rip, count of the #GPs caught at probes (written by `desc_trap_gp` only).
    static desc_gp_record: [u64; 3];
}

/// The last #GP caught at a probe: error code, RIP, and how many were caught so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gp {
    pub error: u64,
    pub rip: u64,
    pub count: u64,
}

/// The record of the #GPs caught at probes.
pub fn last_gp() -> Gp {
    let base = (&raw const desc_gp_record).cast::<u64>();
    // SAFETY: three words of .bss written only by `desc_trap_gp` on this vCPU before the probe
    // resumes; volatile loads in bounds.
    let w = |i: usize| unsafe { core::ptr::read_volatile(base.wrapping_add(i)) };
    Gp {
        error: w(0),
        rip: w(1),
        count: w(2),
    }
}

/// Runs `f` with the probes' #GP handler installed, then puts the kernel's table back.
pub fn with_gp_probes(f: impl FnOnce() -> Outcome) -> Outcome {
    let mut list = [TrapInfo::default(); 2];
    list[0] = TrapInfo {
        vector: 13,
        flags: 0,
        cs: FLAT_KERNEL_CS64,
        address: desc_trap_gp as *const () as u64,
    };
    // SAFETY: a terminated trap_info array; the handler is this module's stub, which only
    // resumes at its own probes and reports anything else.
    let rc = unsafe {
        hypercall::hypercall5(
            Hypercall::SetTrapTable.nr(),
            list.as_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    };
    ensure_eq!(rc, 0, "installing the probe #GP handler");
    let out = f();
    ensure_eq!(traps::install(), 0, "restoring the kernel's trap table");
    out
}

/// A control-register read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrRead {
    /// `mov %cr3,%rdx`.
    Cr3,
    /// `mov %cr3,%r9` (with a REX prefix).
    Cr3R9,
    /// `mov %cr2,%rdx`.
    Cr2,
}

/// Executes the read: the value, or the #GP's error code.
pub fn read_cr(which: CrRead) -> Result<u64, u64> {
    let probe: unsafe extern "C" fn(*mut u64) -> u64 = match which {
        CrRead::Cr3 => desc_read_cr3,
        CrRead::Cr3R9 => desc_read_cr3_r9,
        CrRead::Cr2 => desc_read_cr2,
    };
    let mut out = 0u64;
    // SAFETY: the probe executes one control-register read into `out`, a live u64; a #GP is
    // caught by `desc_trap_gp`, which resumes it returning 1.
    match unsafe { probe(&mut out) } {
        0 => Ok(out),
        _ => Err(last_gp().error),
    }
}

/// Executes `mov %rdi,%cr3` with `value`; `Err(error code)` if it raised #GP.
///
/// # Safety
///
/// If the write is carried out, `value` becomes the kernel's page-table base: it must map the
/// kernel as the current one does (the current base does).
pub unsafe fn write_cr3(value: u64) -> Result<(), u64> {
    // SAFETY: the caller vouches for the new base; a #GP is caught as in `read_cr`.
    match unsafe { desc_write_cr3(value) } {
        0 => Ok(()),
        _ => Err(last_gp().error),
    }
}

/// The address of the `mov %rdi,%cr3` in [`write_cr3`].
pub fn write_cr3_rip() -> u64 {
    desc_write_cr3_insn as *const () as u64
}

/// Loads `sel` into %ds (then the null selector); `Err(error code)` if the load raised #GP.
pub fn load_ds(sel: u16) -> Result<(), u64> {
    // SAFETY: loading a data selector changes only %ds, which the probe sets to the null
    // selector (the 64-bit kernel data selector) right after; a #GP is caught as above.
    match unsafe { desc_load_ds(u64::from(sel)) } {
        0 => Ok(()),
        _ => Err(last_gp().error),
    }
}
