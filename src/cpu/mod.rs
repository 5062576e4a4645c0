//! CPUs: discovery through ACPI, local APIC setup, AP bring-up, per-CPU state, IPIs and time.
//!
//! Placeholder until SMP bring-up lands: only the bootstrap CPU runs.

use boot::cmdline::Options;

/// Brings every other CPU online. Returns the number of CPUs online.
pub fn init(_options: &Options) -> u32 {
    info!("1 CPUs online (bootstrap CPU only; SMP bring-up not built yet)");
    1
}

/// Self-tests owned by this module (`argon.test=<name>`); `None` if `name` is not one of them.
pub fn selftest(_name: &str) -> Option<Result<(), &'static str>> {
    None
}
