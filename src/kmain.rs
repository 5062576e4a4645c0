//! The bootstrap CPU's path from the multiboot entry to running domains.

use boot::arch::qemu::{self, ExitCode};

/// The value a multiboot v1 loader leaves in EAX.
const MULTIBOOT_MAGIC: u32 = 0x2bad_b002;

/// Entered from `boot.S` in long mode on the boot stack, with the loader's magic and the physical
/// address of the multiboot information.
#[unsafe(no_mangle)]
extern "C" fn kmain(magic: u32, mbi: u64) -> ! {
    crate::console::init();
    info!("Argon {} ({})", env!("CARGO_PKG_VERSION"), env!("ARGON_GIT"));
    if magic != MULTIBOOT_MAGIC {
        panic!("not started by a multiboot loader (eax={magic:#x}, expected {MULTIBOOT_MAGIC:#x})");
    }
    // SAFETY: first thing on the BSP, single-threaded, interrupts off.
    unsafe { crate::arch::init_bsp() };
    info!("mbi at {mbi:#x}");
    info!("boot complete");
    qemu::exit(ExitCode::Success)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::console::raw(format_args!("\n*** argon: PANIC: {info} ***\n"));
    let rbp: u64;
    // SAFETY: reading rbp has no side effects.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    crate::arch::trap::print_backtrace(rbp);
    qemu::exit(ExitCode::Failure)
}
