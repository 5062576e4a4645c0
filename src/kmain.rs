//! The bootstrap CPU's path from the multiboot entry to running domains, and the one way out
//! ([`exit`]).
//!
//! Order: console → descriptor tables → boot information (command line, modules, memory map) →
//! frame table and allocator → CPUs → self-test or domains → exit.

use boot::arch::qemu::{self, ExitCode};
use boot::cmdline::{self, LogLevel, Options};
use boot::multiboot::{self, BootInfo};

use crate::console::{self, Level};
use crate::mem::{BootMemory, DirectMap};

/// Entered from `boot.S` in long mode on the boot stack, with the loader's magic and the physical
/// address of the multiboot information.
#[unsafe(no_mangle)]
extern "C" fn kmain(magic: u32, mbi: u64) -> ! {
    console::init();
    // SAFETY: first thing on the BSP, single-threaded, interrupts off.
    unsafe { crate::arch::init_bsp() };
    info!(
        "Argon {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("ARGON_GIT")
    );

    // The MBI is parsed into this CPU's boot stack frame, which lives as long as kmain (forever).
    let mut info = BootInfo::EMPTY;
    if let Err(e) = multiboot::parse_into(&mut info, magic, mbi, &DirectMap) {
        error!("cannot read the boot information: {e}");
        exit(ExitCode::Failure, "no usable boot information");
    }
    let (options, warnings) = cmdline::parse(info.cmdline());
    console::set_level(match options.loglvl {
        LogLevel::None | LogLevel::Error => Level::Error,
        LogLevel::Warning => Level::Warning,
        LogLevel::Info => Level::Info,
        LogLevel::Debug | LogLevel::All => Level::Debug,
    });
    info!(
        "command line: '{}'",
        cmdline::split_path(info.cmdline()).1.trim()
    );
    for w in warnings.iter() {
        warn!("{w}");
    }
    if warnings.dropped() > 0 {
        warn!(
            "{} more command-line warnings not shown",
            warnings.dropped()
        );
    }
    debug!("multiboot info at {mbi:#x}, flags {:#x}", info.flags());

    let mut mem = match BootMemory::init(&info) {
        Ok(m) => m,
        Err(e) => {
            error!("{e}");
            exit(ExitCode::Failure, "memory setup failed");
        }
    };
    list_modules(&info);
    crate::cpu::init(&options);
    info!("boot complete");
    if let Some(bench) = options.bench.as_ref() {
        crate::cpu::bench::run(bench.as_str());
    }

    if let Some(test) = options.test.as_ref() {
        let name = test.as_str();
        info!("running self-test '{name}'");
        match crate::selftest::run(name, &mut mem) {
            Ok(()) => exit(ExitCode::Success, "success"),
            Err(why) => {
                error!("self-test '{name}' failed: {why}");
                exit(ExitCode::Failure, "failure (self-test)");
            }
        }
    }
    run_domains(&info, &options, &mut mem);
}

fn list_modules(info: &BootInfo) {
    if info.modules().len() == 0 {
        info!("no boot modules: no domains to build");
    }
    for (i, m) in info.modules().enumerate() {
        let (mc, warnings) = cmdline::parse_module(m.cmdline);
        info!(
            "module {i}: {} at {:#x}-{:#x} ({} KiB), command line '{}'",
            mc.path,
            m.start,
            m.end,
            (m.end - m.start).div_ceil(1024),
            cmdline::split_path(m.cmdline).1.trim()
        );
        let mut args = [0u8; 256];
        let args = match mc.write_guest_args(&mut args) {
            Ok(n) => core::str::from_utf8(&args[..n]).unwrap_or("<not UTF-8>"),
            Err(_) => "<too long to show>",
        };
        info!(
            "module {i}: vcpus={} mem={} KiB args '{args}'",
            mc.vcpus.unwrap_or(1),
            mc.mem.map_or(0, |b| b >> 10)
        );
        for w in warnings.iter() {
            warn!("module {i}: {w}");
        }
    }
}

/// Builds and runs the domains from the boot modules; returns only through [`exit`].
fn run_domains(info: &BootInfo, options: &Options, mem: &mut BootMemory) -> ! {
    crate::domain::run_all(info, options, mem)
}

/// The one way Argon ends: logs the final marker `argon: exit: <reason>` and leaves QEMU.
pub fn exit(code: ExitCode, reason: &str) -> ! {
    info!("exit: {reason}");
    qemu::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::raw(format_args!("\n*** argon: PANIC: {info} ***\n"));
    let rbp: u64;
    // SAFETY: reading rbp has no side effects.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    crate::arch::trap::print_backtrace(rbp);
    console::raw(format_args!("argon: exit: failure (panic)\n"));
    qemu::exit(ExitCode::Failure)
}
