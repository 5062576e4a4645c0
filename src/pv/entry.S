/* PV guest entry and exit (AT&T syntax). Assembled by src/pv/mod.rs, whose global_asm! supplies
 * every NAME in braces: field offsets of GuestRegs (R_*) and of the guest area of the per-CPU
 * PerCpu (GC_*, counted from the GS base), the flat selectors and the exit kinds.
 *
 * Model: the hypervisor calls pv_run_guest(), which saves its callee-saved registers and stack
 * pointer in this CPU's guest area, loads the vCPU's registers from the GuestRegs that gs:GC_REGS
 * points at, and enters the guest with iretq (or sysretq when GC_SYSRET says the frame allows).
 * When the guest leaves (syscall, or an exception that trap_dispatch routes to
 * pv_exit_to_host), its registers are stored back into that GuestRegs and pv_run_guest
 * "returns" the exit kind on the hypervisor stack it was called on.
 *
 * Invariants:
 * - While the hypervisor runs, GS base = this CPU's PerCpu (gs:[0] holds its own address) and
 *   KERNEL_GS_BASE = the guest's GS base.
 *   Entry and exit each do exactly one swapgs, so the guest's GS base survives untouched.
 * - Interrupts are off from the syscall (SFMASK clears IF) or trap gate until the guest is
 *   resumed; the guest's RFLAGS (IF set) are restored by iretq/sysretq.
 * - The Rust side sanitises the frame before every entry (GuestRegs::sanitise): flat ring-3
 *   selectors and a canonical RIP, so iretq/sysretq never fault in ring 0 (XSA-7). */

    .macro pv_load_gprs             /* %rax = GuestRegs; all but rax, rcx, r11, rsp */
    mov {R_RBX}(%rax), %rbx
    mov {R_RDX}(%rax), %rdx
    mov {R_RSI}(%rax), %rsi
    mov {R_RDI}(%rax), %rdi
    mov {R_RBP}(%rax), %rbp
    mov {R_R8}(%rax), %r8
    mov {R_R9}(%rax), %r9
    mov {R_R10}(%rax), %r10
    mov {R_R12}(%rax), %r12
    mov {R_R13}(%rax), %r13
    mov {R_R14}(%rax), %r14
    mov {R_R15}(%rax), %r15
    .endm

    .macro pv_save_gprs             /* %rax = GuestRegs; the guest's rax is in gs:GC_SCRATCH */
    mov %rbx, {R_RBX}(%rax)
    mov %rcx, {R_RCX}(%rax)
    mov %rdx, {R_RDX}(%rax)
    mov %rsi, {R_RSI}(%rax)
    mov %rdi, {R_RDI}(%rax)
    mov %rbp, {R_RBP}(%rax)
    mov %r8, {R_R8}(%rax)
    mov %r9, {R_R9}(%rax)
    mov %r10, {R_R10}(%rax)
    mov %r11, {R_R11}(%rax)
    mov %r12, {R_R12}(%rax)
    mov %r13, {R_R13}(%rax)
    mov %r14, {R_R14}(%rax)
    mov %r15, {R_R15}(%rax)
    mov %gs:{GC_SCRATCH}, %rbx
    mov %rbx, {R_RAX}(%rax)
    .endm

    .section .text, "ax"

/* u64 pv_run_guest(void) */
    .global pv_run_guest
    .type pv_run_guest, @function
pv_run_guest:
    push %rbp
    mov %rsp, %rbp
    push %rbx
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %gs:{GC_HOST_RSP}
    mov %gs:{GC_REGS}, %rax
    cmpq $0, %gs:{GC_SYSRET}
    jne 1f
    pushq {R_SS}(%rax)
    pushq {R_RSP}(%rax)
    pushq {R_RFLAGS}(%rax)
    pushq {R_CS}(%rax)
    pushq {R_RIP}(%rax)
    pv_load_gprs
    mov {R_RCX}(%rax), %rcx
    mov {R_R11}(%rax), %r11
    mov {R_RAX}(%rax), %rax
    swapgs
    iretq
1:  pv_load_gprs
    mov {R_RIP}(%rax), %rcx
    mov {R_RFLAGS}(%rax), %r11
    mov {R_RSP}(%rax), %rsp
    mov {R_RAX}(%rax), %rax
    swapgs
    sysretq
    .size pv_run_guest, . - pv_run_guest

/* LSTAR: syscall from 64-bit guest code. */
    .global pv_syscall64
    .type pv_syscall64, @function
pv_syscall64:
    swapgs
    mov %rax, %gs:{GC_SCRATCH}
    mov %gs:{GC_REGS}, %rax
    pv_save_gprs
    mov %rcx, {R_RIP}(%rax)
    mov %r11, {R_RFLAGS}(%rax)
    mov %rsp, {R_RSP}(%rax)
    movq ${CS64}, {R_CS}(%rax)
    movq ${SS}, {R_SS}(%rax)
    mov ${EXIT_SYSCALL}, %eax
    jmp pv_exit_common
    .size pv_syscall64, . - pv_syscall64

/* CSTAR: syscall from compatibility-mode guest code (reported, never a hypercall). */
    .global pv_syscall32
    .type pv_syscall32, @function
pv_syscall32:
    swapgs
    mov %rax, %gs:{GC_SCRATCH}
    mov %gs:{GC_REGS}, %rax
    pv_save_gprs
    mov %rcx, {R_RIP}(%rax)
    mov %r11, {R_RFLAGS}(%rax)
    mov %rsp, {R_RSP}(%rax)
    movq ${CS32}, {R_CS}(%rax)
    movq ${SS}, {R_SS}(%rax)
    mov ${EXIT_SYSCALL32}, %eax
    jmp pv_exit_common
    .size pv_syscall32, . - pv_syscall32

/* noreturn pv_exit_to_host(u64 kind): the exception path, after trap_dispatch stored the
 * guest's frame; abandons the entry stack and returns `kind` from pv_run_guest. */
    .global pv_exit_to_host
    .type pv_exit_to_host, @function
pv_exit_to_host:
    mov %rdi, %rax
pv_exit_common:
    mov %gs:{GC_HOST_RSP}, %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbx
    pop %rbp
    ret
    .size pv_exit_to_host, . - pv_exit_to_host
