//! Xen's public PV64 ABI as Rust types, shared by the hypervisor and the guest.
//!
//! Everything here is a fact from Xen's public headers (`xen/include/public/`): hypercall numbers,
//! request structures, flag values, error numbers and ELF note ids. Layouts are pinned by
//! compile-time size and offset asserts. This crate depends on nothing and has no code paths that
//! touch hardware.
#![no_std]
#![forbid(unsafe_code)]
