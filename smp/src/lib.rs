//! SMP: ACPI CPU discovery (MADT), the local APIC (x2APIC with an xAPIC fallback), the AP
//! trampoline and INIT-SIPI-SIPI, per-CPU areas and IPI transport. The shootdown *protocol* lives
//! in `hvcore`; this crate only writes the ICR and calls the protocol from the IPI handler.
#![cfg_attr(not(test), no_std)]
