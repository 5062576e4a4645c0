//! Boot: the multiboot entry (32→64-bit assembly), early page tables, boot information
//! (hypervisor command line, modules, memory map), the physical frame allocator and the early
//! serial console.
//!
//! The parsers are pure functions over bytes and are unit-tested on the host; only the modules
//! under `cfg(target_os = "none")` touch the machine.
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
pub mod arch;

pub mod cmdline;
pub mod frame_alloc;
pub mod memmap;
pub mod multiboot;
