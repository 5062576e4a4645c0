/* Entry point, stack, hypercall page and Xen ELF notes of the PV test kernel (AT&T syntax).
 *
 * Assembled through global_asm! in entry.rs, which supplies the note type numbers as const
 * operands (the names in braces below; a literal brace would have to be doubled) and appends the
 * GUEST_VERSION note. At entry (pv-boot-abi.md): %rsi = start_info VA, %rsp = top of the boot
 * stack page, CS/SS flat, data selectors 0, events masked. */

    .section .text.entry, "ax"
    .global _start
    .type _start, @function
_start:
    mov     %rsi, %rdi                  /* arg 0: start_info VA */
    mov     %rsp, %rsi                  /* arg 1: the builder's boot stack top */
    lea     guest_stack_top(%rip), %rsp /* our own 64 KiB stack, 16-byte aligned */
    xor     %ebp, %ebp
    call    guest_main
1:  ud2
    jmp     1b
    .size _start, . - _start

    /* Filled by the hypervisor (128 stubs of 32 bytes); zero here so that a page the builder
     * never filled is visible as such. */
    .section .hypercall_page, "ax"
    .balign 4096
    .global hypercall_page
hypercall_page:
    .fill 4096, 1, 0
    .size hypercall_page, 4096

    .section .bss.guest_stack, "aw", @nobits
    .balign 16
guest_stack:
    .skip 65536
guest_stack_top:

/* One Xen ELF note: namesz 4 ("Xen\0"), descsz from the labels 1: and 2:, type \type. The
 * descriptor goes between note_begin and note_end. */
    .macro note_begin type
    .balign 4
    .long 4, 2f - 1f, \type
    .asciz "Xen"
    .balign 4
1:
    .endm
    .macro note_end
2:  .balign 4
    .endm

    .section .note.Xen, "a", @note
    note_begin {GUEST_OS}
    .asciz "Argon-test"
    note_end
    note_begin {XEN_VERSION}
    .asciz "xen-3.0"
    note_end
    note_begin {LOADER}
    .asciz "generic"
    note_end
    note_begin {VIRT_BASE}
    .quad 0
    note_end
    note_begin {PADDR_OFFSET}
    .quad 0
    note_end
    note_begin {ENTRY}
    .quad _start
    note_end
    note_begin {HYPERCALL_PAGE}
    .quad hypercall_page
    note_end
    note_begin {FEATURES}
    .asciz "!writable_page_tables|pae_pgdir_above_4gb"
    note_end
    note_begin {PAE_MODE}
    .asciz "yes"
    note_end
