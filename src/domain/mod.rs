//! Domains: building PV domains from boot modules and running them.
//!
//! Placeholder until PV guests land: modules are listed by `kmain` but not started.

use boot::arch::qemu::ExitCode;
use boot::cmdline::Options;
use boot::multiboot::BootInfo;

use crate::kmain::exit;
use crate::mem::BootMemory;

/// Builds a domain per boot module, runs them until the last one ends, then exits Argon.
pub fn run_all(info: &BootInfo, _options: &Options, _mem: &mut BootMemory) -> ! {
    if info.modules().len() > 0 {
        warn!("domain building is not implemented yet; modules are listed but not started");
    }
    exit(ExitCode::Success, "success")
}
