/* AP start-up trampoline (boot-notes §3). Assembled into .rodata, copied to AP_TRAMP (0x8000) by
 * trampoline.rs and entered there by a SIPI with vector AP_TRAMP >> 12, so CS = AP_TRAMP >> 4 and
 * IP = 0. All its code is in this one section so that label differences are assemble-time
 * constants: physical addresses are AP_TRAMP + (label - ap_tramp_start), and the 64-bit part is
 * RIP-relative.
 *
 * The first thing an AP does is swap the ticket with 0 (lock xchg): a non-zero ticket is its CPU
 * index, chosen by the BSP for the CPU it is starting; a zero ticket means no one waits for this
 * CPU (a late or spurious start), and it halts before touching any stack. The stack comes from the
 * ticket (stack_base + ticket * stride), so a CPU the BSP gave up on never uses another's stack.
 *
 * ap_tramp_data is filled by the BSP (layout: struct Data in trampoline.rs). */

.section .rodata.ap_tramp, "a"
.balign 16
.global ap_tramp_start
.global ap_tramp_data
.global ap_tramp_end
.code16
ap_tramp_start:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    lock xchgl %ebx, (tr_ticket - ap_tramp_start)
    test %ebx, %ebx
    jz 1f
    lgdtl (tr_gdtr - ap_tramp_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(AP_TRAMP + tr_code32 - ap_tramp_start)
1:  hlt
    jmp 1b

.code32
tr_code32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov (AP_TRAMP + tr_cr3 - ap_tramp_start), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER: LME, plus NXE/SCE as on the BSP */
    rdmsr
    or (AP_TRAMP + tr_efer - ap_tramp_start), %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax            /* PG | WP | PE */
    mov %eax, %cr0
    ljmp $0x18, $(AP_TRAMP + tr_code64 - ap_tramp_start)

.code64
tr_code64:
    mov %ebx, %edi                  /* the ticket (CPU index), zero-extended: first argument */
    mov %rdi, %rax
    imul tr_stride(%rip), %rax
    add tr_stack_base(%rip), %rax
    mov %rax, %rsp                  /* page aligned, so 16-byte aligned before the call */
    xor %ebp, %ebp
    mov tr_entry(%rip), %rax
    call *%rax                      /* ap_entry(ticket); never returns */
2:  cli
    hlt
    jmp 2b

.balign 8
tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tr_gdtr:
    .word 4 * 8 - 1
    .long AP_TRAMP + tr_gdt - ap_tramp_start

.balign 8
ap_tramp_data:
tr_cr3:        .quad 0
tr_efer:       .quad 0
tr_stack_base: .quad 0
tr_stride:     .quad 0
tr_entry:      .quad 0
tr_ticket:     .quad 0
ap_tramp_end:
