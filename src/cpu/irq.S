/* Interrupt entry stubs for the hypervisor's own vectors, IRQ_FIRST..=0xff: 16 bytes apart, each
 * pushes its vector and jumps to irq_common, which saves the caller-saved registers, builds a
 * frame record linking to the interrupted code (so backtraces cross the interrupt), aligns the
 * stack, calls cpu_irq_dispatch(vector) and returns with iretq. The Rust side sends the EOI.
 * IRQ_FIRST is set by the including global_asm!. */

.section .text, "ax"
.balign 16
.global cpu_irq_stubs
cpu_irq_stubs:
.set vec, IRQ_FIRST
.rept 256 - IRQ_FIRST
    .balign 16
    pushq $vec
    jmp irq_common
    .set vec, vec + 1
.endr

irq_common:
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
    pushq 80(%rsp)                  /* the interrupted RIP ... */
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
    add $8, %rsp                    /* the vector */
    iretq
