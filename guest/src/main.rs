//! The PV test kernel: conformance suites and workloads that boot on Argon and on Xen 4.17.
//!
//! It is a 64-bit Xen PV kernel image for `x86_64-unknown-none` (`linker.ld`, `src/entry.S`): the
//! domain builder enters `_start` with start_info in `rsi`; Rust takes over in [`run`], which picks
//! a suite by the first word of start_info's command line (default `tests`), runs it and shuts
//! the domain down. Every verdict is a console line (`harness`). On the host this crate only
//! builds as a stub so that `cargo test --workspace` works.
//!
//! | module | owns |
//! |---|---|
//! | `entry` | entry asm, own stack, hypercall page, Xen ELF notes |
//! | `hypercall` | calls through the hypercall page and typed wrappers |
//! | `console` | `println!` over `console_io` |
//! | `env` | start_info, P2M/M2P translations |
//! | `harness` | tests, verdict lines, the audit, summary, shutdown |
//! | `traps` | virtual IDT, fault-tolerant probes, secondary vCPU entry |
//! | `smp` | secondary vCPUs: bring-up, jobs on every vCPU, barriers |
//! | `pt` | scratch page tables and frames for the SMP suites |
//! | `suites` | the suites, by name |
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod entry;
#[cfg(target_os = "none")]
mod env;
#[cfg(target_os = "none")]
mod harness;
#[cfg(target_os = "none")]
mod hypercall;
#[cfg(target_os = "none")]
mod pt;
#[cfg(target_os = "none")]
mod smp;
#[cfg(target_os = "none")]
mod suites;
#[cfg(target_os = "none")]
mod traps;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("guest is a PV kernel image; build it with `cargo xtask build`");
}

/// Runs the suite the command line names and shuts down.
#[cfg(target_os = "none")]
fn run(si_va: u64, boot_rsp: u64) -> ! {
    use console::println;

    // SAFETY: `si_va` is the `rsi` the builder handed to `_start`, the start_info address.
    let env = unsafe { env::Env::from_entry(si_va, boot_rsp) };
    let cmdline = core::str::from_utf8(env.si.cmd_line()).unwrap_or("<non-utf-8>");
    println!(
        "guest: Argon-test {} up, cmdline {cmdline:?}",
        env!("CARGO_PKG_VERSION")
    );
    // The first word without `=` names the suite; a hypervisor may append options (`acpi=off`).
    let name = env
        .cmd_words()
        .find(|w| !w.contains(&b'='))
        .unwrap_or(b"tests");
    let rc = traps::install();
    if rc != 0 {
        println!("guest: set_trap_table returned {rc}");
    }
    match suites::by_name(name) {
        Some((name, tests)) => {
            let initial = env.si.flags & abi::start_info::SIF_INITDOMAIN != 0;
            harness::run_suite(name, &[suites::prelude(name, initial), tests], &env)
        }
        None => {
            let shown = core::str::from_utf8(name).unwrap_or("<non-utf-8>");
            println!("guest: unknown suite '{shown}' (known: {})", suites::NAMES);
            harness::finish(0, 1)
        }
    }
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::println!("guest: PANIC {info}");
    harness::finish(0, 1)
}
