//! `hvcore`: the hardware-free heart of Argon.
//!
//! The lock-free frame table, page-table entry rules, (de)validation, the segment-descriptor
//! check of PV guests (`desc`), the decoding of the privileged instructions the hypervisor
//! emulates (`privop`) and of the page-table stores it emulates (`ptwr`), the semantics of
//! `mmu_update` / `mmuext_op` / `update_va_mapping`, the TLB flush clock and the shootdown
//! protocol. It has no statics, no assembly and no hardware access: machine memory and the TLB
//! are reached only through small traits that the hypervisor implements, and that host tests and
//! loom models implement over plain memory. All atomics come from [`sync`], which switches to
//! loom's under `--cfg loom`.
#![cfg_attr(not(any(test, loom)), no_std)]
#![forbid(unsafe_code)]

pub mod audit;
pub mod desc;
pub mod domain;
pub mod flush;
pub mod frame;
pub mod hypercall;
pub mod mem;
pub mod privop;
pub mod pt;
pub mod ptwr;
pub mod sync;
#[cfg(any(test, loom, feature = "testkit"))]
pub mod testkit;
