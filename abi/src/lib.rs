//! Xen's public PV64 ABI as Rust types, shared by the hypervisor and the guest.
//!
//! Everything here is a fact from Xen's public headers (`xen/include/public/`): hypercall numbers,
//! request structures, flag values, error numbers and ELF note ids. Layouts are pinned by
//! compile-time size and offset asserts. Beside the types, two pure functions of Xen's PV boot
//! ABI that the domain builder needs: [`pv_image::parse`] (a kernel ELF and its Xen notes) and
//! [`BootLayout::compute`] (the initial address space, as Xen's dom0 builder lays it out); both
//! are host-tested in `abi/tests/`. This crate depends on nothing and has no code paths that
//! touch hardware.
//!
//! Structures cross the guest boundary as bytes: each implements [`wire::Wire`], a safe
//! little-endian encoding at the C offsets with padding written as zero, so the hypervisor can
//! copy them to and from guest memory without `unsafe`.
//!
//! | module | contents |
//! |---|---|
//! | [`hypercall`] | hypercall numbers ([`Hypercall`]), Argon's [`ARGON_OP_AUDIT`] |
//! | [`hypercall_page`] | the stubs written into the guest's hypercall page |
//! | [`errno`] | [`Errno`], negated in hypercall returns |
//! | [`mmu`] | `mmu_update`: [`MmuUpdate`], command decode, [`ForeignDom`] |
//! | [`mmuext`] | `mmuext_op`: [`MmuextOp`], [`MmuextCmd`] |
//! | [`uvmf`] | `update_va_mapping` flush flags |
//! | [`domid`] | `DOMID_*` |
//! | [`start_info`] | [`StartInfo`] and `SIF_*` |
//! | [`regs`] | [`CpuUserRegs`], [`TrapInfo`] |
//! | [`vcpu`] | [`VcpuGuestContext`] and `VGCF_*` |
//! | [`frames`] | iret frame, exception/event and failsafe bounce frames |
//! | [`multicall`] | [`MulticallEntry`] |
//! | [`shared_info`] | [`SharedInfo`], [`VcpuInfo`] |
//! | [`selectors`] | flat selectors, reserved GDT entries |
//! | [`layout`] | hypervisor hole, M2P, Xen L4 slots, `XEN_MSR_PAT` |
//! | [`elfnote`] | `XEN_ELFNOTE_*` |
//! | [`pv_image`] | PV kernel ELF64 + Xen notes parser: [`pv_image::parse`] → [`pv_image::Kernel`], [`ElfError`] |
//! | [`boot_layout`] | [`BootLayout`]: the initial virtual layout of a PV domain, [`BootLayoutError`] |
//! | [`console_io`], [`sched`], [`vcpu_op`], [`version`], [`vm_assist`], [`memory`], [`callback`], [`segbase`] | sub-operations of the other hypercalls a PV kernel uses |
#![no_std]
#![forbid(unsafe_code)]

pub mod wire;

pub mod boot_layout;
pub mod callback;
pub mod console_io;
pub mod domid;
pub mod elfnote;
pub mod errno;
pub mod frames;
pub mod hypercall;
pub mod hypercall_page;
pub mod layout;
pub mod memory;
pub mod mmu;
pub mod mmuext;
pub mod multicall;
pub mod pv_image;
pub mod regs;
pub mod sched;
pub mod segbase;
pub mod selectors;
pub mod shared_info;
pub mod start_info;
pub mod uvmf;
pub mod vcpu;
pub mod vcpu_op;
pub mod version;
pub mod vm_assist;

pub use boot_layout::{BootLayout, BootLayoutError};
pub use domid::DomId;
pub use errno::Errno;
pub use hypercall::{ARGON_OP_AUDIT, Hypercall};
pub use mmu::{ForeignDom, MmuCmd, MmuUpdate};
pub use mmuext::{MmuextCmd, MmuextOp};
pub use multicall::MulticallEntry;
pub use pv_image::ElfError;
pub use regs::{CpuUserRegs, TrapInfo};
pub use shared_info::{SharedInfo, VcpuInfo};
pub use start_info::StartInfo;
pub use vcpu::VcpuGuestContext;
pub use wire::{ShortBuffer, Wire};
