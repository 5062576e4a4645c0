//! A domain as every CPU running one of its vCPUs sees it ([`Domain`]): fixed facts written by
//! the builder, the domain-wide state hypercalls change (atomics), its dirty CPU mask and its
//! vCPU slots (`vcpu`).
//!
//! Invariants:
//! - `Domain` is all-zero-valid (`Zeroable`): it is created zeroed in frames of its own
//!   (`FrameBox`) and filled by the builder, with no large stack temporaries. Optional frames
//!   are MFNs with 0 for "none" (frame 0 is in the first MiB, never given to a guest).
//! - Fields without interior mutability are written only while the builder or `destroy` holds
//!   the domain exclusively (`&mut`); while vCPUs run it is shared (`&Domain`).
//! - Each vCPU's `kernel_l4`/`user_l4`, when non-zero, holds one general and one L4 type
//!   reference, taken when installed and dropped by `destroy`.
//! - `first_mfn..first_mfn + nr_pages` are exactly the frames allocated to the domain (PFN `n`
//!   is MFN `first_mfn + n` at creation); `shared_info` is assigned to the domain too and carries
//!   one extra, hypervisor-held writable type reference so it can never become a page table.
//! - `dirty` (spec §5.1): a CPU sets its bit (`AtomicCpuMask::set`) before it loads one of the
//!   domain's page tables. Bits are never dropped while the domain lives (spec §5.1's lazy
//!   rule; a CPU that went idle or on to another domain's vCPUs keeps its bit): shootdowns may
//!   then IPI a CPU that holds nothing of the domain any more, which is safe, never the reverse.
//!
//! Orderings: `vm_assist` bits flip with AcqRel RMWs and are read Relaxed (they gate behaviour,
//! publish no data); the first `shut_down` wins a CAS (AcqRel) and is read with Acquire by the
//! CPUs that then stop the domain's vCPUs.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use abi::sched::SHUTDOWN_CRASH;
use abi::shared_info::vcpu_info_offset;
use hvcore::domain::DomId;
use hvcore::flush::AtomicCpuMask;

use super::machine::{HvCtx, XenSlots, Zeroable, shared_u8, shared_u64};
use super::vcpu::{Vcpu, VcpuSlot};

/// vCPUs a domain may have (the `vcpu_info` slots of shared_info).
pub const MAX_VCPUS: usize = 32;

/// One domain.
#[repr(C)]
pub struct Domain {
    pub id: DomId,
    pub privileged: bool,
    pub linear_pt: bool,
    pub first_mfn: u64,
    pub nr_pages: u64,
    /// The shared_info frame (0 until allocated).
    pub shared_info: u64,
    /// `XENFEAT_*` bits the kernel required.
    pub features_required: u32,
    pub nr_vcpus: u32,
    /// The live-table slot it runs in and its generation (`live`), set before it is published.
    pub sched_slot: u32,
    pub sched_gen: u32,
    /// Enabled `VMASST_TYPE_*` bits.
    vm_assist: AtomicU64,
    /// Shutdown reason + 1 once the domain has shut down (0 = running).
    shutdown: AtomicU32,
    /// `SCHEDOP_shutdown_code`'s reason + 1 (0 = none).
    shutdown_code: AtomicU32,
    /// CPUs that may hold translations of the domain's page tables (module head).
    pub dirty: AtomicCpuMask,
    pub vcpus: [VcpuSlot; MAX_VCPUS],
}

// SAFETY: every field is an integer, bool, atomic integer, `AtomicCpuMask` (atomic words and a
// word count; zero words are an empty mask, and the builder sets the count before any use) or
// an array of `VcpuSlot` (atomics and an `UnsafeCell` of integers, bools, `GuestRegs` and
// `TrapInfo`), for all of which all-zero bytes are valid.
unsafe impl Zeroable for Domain {}

impl Domain {
    /// The validation context for this domain's page tables.
    pub fn ctx<'a>(&'a self, slots: &'a XenSlots) -> HvCtx<'a> {
        HvCtx {
            domid: self.id,
            privileged: self.privileged,
            linear_pt: self.linear_pt,
            shared_info: self.shared_info,
            slots,
            dirty: &self.dirty,
        }
    }

    /// The vCPUs that exist (`nr_vcpus` of them).
    pub fn slots(&self) -> &[VcpuSlot] {
        &self.vcpus[..self.nr_vcpus as usize]
    }

    /// The enabled `VMASST_TYPE_*` bits.
    pub fn vm_assist(&self) -> u64 {
        // Relaxed: see the module head.
        self.vm_assist.load(Ordering::Relaxed)
    }

    /// Enables (`on`) or disables assist `kind`.
    pub fn set_vm_assist(&self, kind: u32, on: bool) {
        let bit = 1u64 << kind;
        // AcqRel: see the module head.
        if on {
            self.vm_assist.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.vm_assist.fetch_and(!bit, Ordering::AcqRel);
        }
    }

    /// Why the domain shut down, if it did.
    pub fn shutdown_reason(&self) -> Option<u32> {
        // Acquire: pairs with the AcqRel CAS in `shut_down`.
        self.shutdown.load(Ordering::Acquire).checked_sub(1)
    }

    /// Records a shutdown (the first reason wins; returns whether this call was first) and
    /// makes every CPU look at its vCPUs again.
    pub fn shut_down(&self, reason: u32) -> bool {
        // AcqRel: see the module head.
        let first = self
            .shutdown
            .compare_exchange(
                0,
                reason.saturating_add(1),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        if first {
            super::live::note_shutdown();
            super::sched::kick_all();
        }
        first
    }

    /// `SCHEDOP_shutdown_code`: the reason to report if the domain later crashes.
    pub fn set_shutdown_code(&self, reason: u32) {
        // Relaxed: informational only.
        self.shutdown_code
            .store(reason.saturating_add(1), Ordering::Relaxed);
    }

    /// Kills the domain: prints `argon: dN: crashed: <why>` (at every log level) and a
    /// register dump of vCPU `v`, whose context the caller owns.
    pub fn crash(&self, v: usize, vcpu: &Vcpu, why: core::fmt::Arguments<'_>) {
        let id = self.id;
        crate::console::raw(format_args!(
            "argon: d{id}: crashed: {why}\nd{id} vCPU {v} registers:\n{}\n",
            vcpu.regs
        ));
        self.shut_down(SHUTDOWN_CRASH);
    }

    /// vCPU `v`'s `evtchn_upcall_mask` in shared_info (1 = events masked).
    pub fn upcall_mask(&self, v: usize) -> u8 {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 1);
        // Relaxed: a flag the guest flips itself; nothing else is published with it.
        at.and_then(|o| shared_u8(self.shared_info, o))
            .map_or(1, |m| m.load(Ordering::Relaxed))
    }

    /// Sets vCPU `v`'s upcall mask.
    pub fn set_upcall_mask(&self, v: usize, masked: bool) {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 1);
        if let Some(m) = at.and_then(|o| shared_u8(self.shared_info, o)) {
            // Relaxed: as in `upcall_mask`.
            m.store(u8::from(masked), Ordering::Relaxed);
        }
    }

    /// Records the faulting address of a bounced page fault in vCPU `v`'s `arch.cr2`.
    pub fn set_guest_cr2(&self, v: usize, cr2: u64) {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 16);
        if let Some(w) = at.and_then(|o| shared_u64(self.shared_info, o)) {
            // Relaxed: read by the guest's handler after the bounce, on this same vCPU.
            w.store(cr2, Ordering::Relaxed);
        }
    }
}
