/* Argon's first instructions: multiboot v1 header (a.out kludge), 32-bit entry, early page tables,
 * long mode, then a jump to the higher half and `kmain(magic, mbi)`.
 *
 * VOFF is set by the including global_asm! (boot-notes §5.4). Every multiboot header field and
 * every address used before paging is physical: sym - VOFF.
 *
 * Early address space (2 MiB pages, 0-4 GiB):
 *   L4[0]   identity 0-4 GiB   (multiboot info, modules, ACPI, LAPIC, AP trampoline)
 *   L4[261] 0xffff82d040000000 -> physical 0-1 GiB (the image, linked at VOFF + 2 MiB)
 *   L4[262] 0xffff830000000000 -> physical 0-4 GiB (the direct map)
 */

.set MB_MAGIC, 0x1BADB002
.set MB_FLAGS, 0x00010003          /* page-align modules, memory info, a.out kludge */
.set PTE_P_RW, 0x003
.set PTE_P_RW_PS, 0x083

.section .text.boot, "ax"
.code32
.balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header - VOFF
    .long __image_start - VOFF
    .long __load_end - VOFF
    .long __bss_end - VOFF
    .long _start32 - VOFF

.global _start32
_start32:
    cli
    cld
    mov %eax, %edi                  /* multiboot magic, kept for kmain */
    mov %ebx, %esi                  /* physical address of the multiboot info */
    mov $(boot_stack_top - VOFF), %esp

    /* Zero the early page tables (7 pages). */
    mov $(boot_pt_start - VOFF), %edx
    mov %edx, %ebx
    mov $(7 * 1024), %ecx
    xor %eax, %eax
1:  mov %eax, (%ebx)
    add $4, %ebx
    loop 1b

    /* L4 entries. */
    mov $(boot_pdpt_low - VOFF + PTE_P_RW), %eax
    mov %eax, (boot_pml4 - VOFF)
    mov %eax, (boot_pml4 - VOFF + 262 * 8)
    mov $(boot_pdpt_high - VOFF + PTE_P_RW), %eax
    mov %eax, (boot_pml4 - VOFF + 261 * 8)

    /* Low PDPT: four PDs; high PDPT: the first PD at the slot of VOFF. */
    mov $(boot_pd - VOFF + PTE_P_RW), %eax
    mov $(boot_pdpt_low - VOFF), %ebx
    mov $4, %ecx
2:  mov %eax, (%ebx)
    add $0x1000, %eax
    add $8, %ebx
    loop 2b
    mov $(boot_pd - VOFF + PTE_P_RW), %eax
    mov %eax, (boot_pdpt_high - VOFF + 0x141 * 8)

    /* 2048 PD entries of 2 MiB pages: physical 0-4 GiB. */
    mov $(boot_pd - VOFF), %ebx
    mov $PTE_P_RW_PS, %eax
    xor %edx, %edx                  /* high half of each entry */
    mov $2048, %ecx
3:  mov %eax, (%ebx)
    mov %edx, 4(%ebx)
    add $0x200000, %eax
    adc $0, %edx
    add $8, %ebx
    loop 3b

    /* PAE, page tables, EFER.LME (+ NXE when the CPU has NX), paging. */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $(boot_pml4 - VOFF), %eax
    mov %eax, %cr3
    mov $0x80000001, %eax
    cpuid
    mov $0x100, %ebp                /* EFER.LME */
    test $(1 << 20), %edx
    jz 4f
    or $0x800, %ebp                 /* EFER.NXE */
4:  mov $0xC0000080, %ecx
    rdmsr
    or %ebp, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax            /* PG | WP | PE */
    mov %eax, %cr0

    lgdt (boot_gdt_ptr32 - VOFF)
    ljmp $0x08, $(start64_low - VOFF)

.code64
start64_low:
    movabs $start64_high, %rax
    jmp *%rax

.section .text, "ax"
start64_high:
    lgdt boot_gdt_ptr64(%rip)
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    lea boot_stack_top(%rip), %rsp
    mov %edi, %edi                  /* zero-extend magic and mbi */
    mov %esi, %esi
    xor %ebp, %ebp
    call kmain
    ud2

.section .rodata, "a"
.balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr32:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt - VOFF
boot_gdt_ptr64:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

.section .bss, "aw", @nobits
.balign 4096
.global boot_pml4
boot_pt_start:
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4 * 4096
.balign 4096
.global boot_stack_bottom
boot_stack_bottom:
    .skip 64 * 1024
.global boot_stack_top
boot_stack_top:
