//! The machine-facing part of boot: the assembly entry, the early serial port and the QEMU exit
//! device. Only built for the bare-metal target.

pub mod qemu;
pub mod serial;

/// Where the image is linked: virtual = physical + `VOFF` for everything in the image.
pub const VOFF: u64 = 0xffff_82d0_4000_0000;
/// Base of the direct map of physical 0–4 GiB that the early page tables set up (L4 slot 262).
pub const DIRECTMAP_BASE: u64 = 0xffff_8300_0000_0000;
/// How much physical memory the early direct map covers.
pub const DIRECTMAP_SIZE: u64 = 4 << 30;

core::arch::global_asm!(
    ".set VOFF, {voff}",
    include_str!("boot.S"),
    voff = const VOFF,
    options(att_syntax)
);

unsafe extern "C" {
    static boot_pml4: u8;
    static __image_start: u8;
    static __image_end: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// Physical address range `[start, end)` of the loaded image, bss included.
pub fn image_phys_range() -> (u64, u64) {
    let start = (&raw const __image_start) as u64 - VOFF;
    let end = (&raw const __image_end) as u64 - VOFF;
    (start, end)
}

/// Physical address of the boot L4 (the BSP's page tables until the hypervisor builds its own).
pub fn boot_pml4_phys() -> u64 {
    (&raw const boot_pml4) as u64 - VOFF
}

/// Virtual range `[bottom, top)` of the boot stack.
pub fn boot_stack() -> (u64, u64) {
    (
        (&raw const boot_stack_bottom) as u64,
        (&raw const boot_stack_top) as u64,
    )
}

/// Virtual address of physical `paddr` in the direct map, or `None` beyond its 4 GiB.
pub fn phys_to_virt(paddr: u64) -> Option<u64> {
    (paddr < DIRECTMAP_SIZE).then_some(DIRECTMAP_BASE + paddr)
}
