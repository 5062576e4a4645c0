//! The kernel's entry glue: assembles `entry.S` (entry point, own stack, hypercall page, Xen ELF
//! notes) and hands over to Rust in [`guest_main`].
//!
//! The notes name the kernel to a Xen-style domain builder: VIRT_BASE 0 and PADDR_OFFSET 0 with the
//! image linked at 0x100000 (`linker.ld`), so virtual = pseudo-physical for the whole initial
//! region; ENTRY `_start`; HYPERCALL_PAGE the page-aligned `hypercall_page`.

use abi::elfnote;

core::arch::global_asm!(
    include_str!("entry.S"),
    ".pushsection .note.Xen, \"a\", @note",
    "note_begin {GUEST_VERSION}",
    concat!(".asciz \"", env!("CARGO_PKG_VERSION"), "\""),
    "note_end",
    ".popsection",
    GUEST_OS = const elfnote::XEN_ELFNOTE_GUEST_OS,
    GUEST_VERSION = const elfnote::XEN_ELFNOTE_GUEST_VERSION,
    XEN_VERSION = const elfnote::XEN_ELFNOTE_XEN_VERSION,
    LOADER = const elfnote::XEN_ELFNOTE_LOADER,
    VIRT_BASE = const elfnote::XEN_ELFNOTE_VIRT_BASE,
    PADDR_OFFSET = const elfnote::XEN_ELFNOTE_PADDR_OFFSET,
    ENTRY = const elfnote::XEN_ELFNOTE_ENTRY,
    HYPERCALL_PAGE = const elfnote::XEN_ELFNOTE_HYPERCALL_PAGE,
    FEATURES = const elfnote::XEN_ELFNOTE_FEATURES,
    PAE_MODE = const elfnote::XEN_ELFNOTE_PAE_MODE,
    options(att_syntax)
);

/// First Rust code. `start_info_va` is the builder's `rsi`, `boot_rsp` its `rsp` (the top of the
/// bootstrap stack page); `_start` has already switched to the kernel's own stack.
#[unsafe(no_mangle)]
extern "C" fn guest_main(start_info_va: u64, boot_rsp: u64) -> ! {
    crate::run(start_info_va, boot_rsp)
}
