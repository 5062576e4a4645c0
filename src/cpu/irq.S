/* Interrupt entry stubs for the hypervisor's own vectors, IRQ_FIRST..=0xff: 16 bytes apart, each
 * pushes a zero error-code slot and its vector (the frame of src/arch/entry.S's trap stubs) and
 * jumps to irq_common. IRQ_FIRST is set by the including global_asm!.
 *
 * From ring 3 (a PV guest was running) irq_common hands the frame to trap_common, which swaps GS
 * back to this CPU's PerCpu, saves every register into a TrapFrame and calls trap_dispatch; that
 * runs the vector's handler and leaves the guest for the hypervisor's run loop (it never returns
 * here). From ring 0 the hypervisor's GS base is already loaded: irq_common saves the
 * caller-saved registers, builds a frame record linking to the interrupted code (so backtraces
 * cross the interrupt), aligns the stack, calls cpu_irq_dispatch(vector) and returns with iretq.
 * The Rust side sends the EOI. */

.section .text, "ax"
.balign 16
.global cpu_irq_stubs
cpu_irq_stubs:
.set vec, IRQ_FIRST
.rept 256 - IRQ_FIRST
    .balign 16
    pushq $0
    pushq $vec
    jmp irq_common
    .set vec, vec + 1
.endr

irq_common:
    testb $3, 24(%rsp)              /* CS of the interrupted context, above vector and error */
    jnz trap_common
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov 72(%rsp), %rdi              /* the vector, above the nine saved registers */
    pushq 88(%rsp)                  /* the interrupted RIP (above vector and error slot) ... */
    push %rbp                       /* ... and RBP: a frame record for backtraces */
    mov %rsp, %rbp
    and $-16, %rsp
    cld
    call cpu_irq_dispatch
    mov %rbp, %rsp
    pop %rbp
    add $8, %rsp
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp                   /* the vector and the error slot */
    iretq
