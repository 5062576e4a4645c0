/* Exception entry stubs. Each stub is 16 bytes: it pushes a dummy error code where the CPU pushes
 * none, then the vector, and jumps to trap_common, which saves the general registers in the
 * order of `TrapFrame` (src/arch/trap.rs) and calls trap_dispatch(frame).
 *
 * From ring 3 (a PV guest) trap_common first executes swapgs, so the hypervisor's GS base is
 * back (see src/pv/entry.S); trap_dispatch then never returns for such a trap (the vCPU leaves
 * through pv_exit_to_host), but the return path swaps back symmetrically all the same.
 * src/cpu/irq.S jumps here too for interrupts taken in ring 3, with the same frame shape. */

.section .text, "ax"
.balign 16
.global trap_stubs
trap_stubs:
.set vec, 0
.rept 32
    .balign 16
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    pushq $vec
    .else
    pushq $0
    pushq $vec
    .endif
    jmp trap_common
    .set vec, vec + 1
.endr

    .global trap_common
trap_common:
    testb $3, 24(%rsp)              /* CS of the interrupted context, above vector and error */
    jz 1f
    swapgs
1:  push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    cld
    call trap_dispatch
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rbp
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rbx
    pop %rax
    add $16, %rsp
    testb $3, 8(%rsp)
    jz 2f
    swapgs
2:  iretq
