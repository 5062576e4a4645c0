//! SMP: ACPI CPU discovery (MADT), the local APIC (x2APIC with an xAPIC fallback), the AP
//! trampoline and INIT-SIPI-SIPI, per-CPU areas and IPI transport. The shootdown *protocol* lives
//! in `hvcore`; this crate only writes the ICR and calls the protocol from the IPI handler.
//!
//! The pure parts ([`madt`], [`icr`], [`tsc`], [`cpuset`]) build and are tested on the host; the
//! machine parts (`acpi`, `apic`, `trampoline`, `pic`, `pit`, `x86`) only for `target_os = "none"`.
//! The hypervisor's glue (IDT vectors, per-CPU GDT/TSS, bring-up order, self-tests) is in
//! `src/cpu/`.
#![cfg_attr(not(test), no_std)]

pub mod cpuset;
pub mod icr;
pub mod madt;
pub mod tsc;

#[cfg(target_os = "none")]
pub mod acpi;
#[cfg(target_os = "none")]
pub mod apic;
#[cfg(target_os = "none")]
pub mod pic;
#[cfg(target_os = "none")]
pub mod pit;
#[cfg(target_os = "none")]
pub mod trampoline;
#[cfg(target_os = "none")]
pub mod x86;

/// The most CPUs Argon runs on (the BSP included); more in the MADT are reported and left out.
pub const MAX_CPUS: usize = 64;

/// Re-exported for the hypervisor's per-CPU areas, so it needs no direct dependency.
pub use crossbeam_utils::CachePadded;

/// A static the code writes through raw pointers under a discipline stated where it is used
/// (single-threaded boot, or one slot per CPU written only by that CPU). It never hands out
/// references itself, so the discipline lives in each `unsafe` use.
#[repr(transparent)]
pub struct BootCell<T>(core::cell::UnsafeCell<T>);

// SAFETY: `BootCell` only hands out raw pointers; every dereference is an `unsafe` block whose
// caller proves exclusive (or read-only) access.
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    pub const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// The contents, for an access whose exclusivity the caller proves.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
