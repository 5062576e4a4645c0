//! The seams between the hypercall semantics and the hypervisor: [`GuestMem`] (the one checked
//! accessor for guest memory), [`HcEnv`] (what the hypercalls need from the hypervisor) and the
//! pure guest-address checks of spec §3.2 step 4.
//!
//! Contracts the hypervisor's implementation must keep are stated on each method; host tests
//! implement both traits over plain data. Nothing here holds state or uses atomics.

use abi::layout::is_guest_va;

use crate::domain::{DomId, DomainCtx};
use crate::flush::{CpuMask, FlushToken};
use crate::frame::FrameTable;
use crate::mem::{Mfn, PhysMem};

/// A guest access that did not complete (unmapped, not permitted, or not a guest address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The guest virtual address of the access.
    pub va: u64,
}

/// Guest memory of the calling vCPU's current address space, through the hypervisor's checked
/// copy (it turns a page fault into [`Fault`], never into a hypervisor crash).
///
/// Implementations must refuse every range that is not entirely guest-accessible (see
/// [`guest_range_ok`]); the hypercall code checks too, where the spec demands it, but never
/// relies on being the only check. A failed access may have copied part of the range.
pub trait GuestMem {
    /// Copy `buf.len()` bytes from guest address `va`.
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// Copy `buf` to guest address `va`.
    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Fault>;
}

/// The guest-address check of spec §3.2 step 4 (Xen's `__addr_ok`): below 2^47, or at or above
/// `0xFFFF8800_00000000` (outside the hypervisor hole and the non-canonical gap).
pub const fn guest_addr_ok(va: u64) -> bool {
    is_guest_va(va)
}

/// Every byte of `[va, va + len)` passes [`guest_addr_ok`] (an empty range only needs `va` to).
/// The two guest ranges are separated by the gap, so checking both ends suffices.
pub const fn guest_range_ok(va: u64, len: usize) -> bool {
    if len == 0 {
        return guest_addr_ok(va);
    }
    match va.checked_add(len as u64 - 1) {
        Some(last) => {
            guest_addr_ok(va) && guest_addr_ok(last) && (va < 1 << 47) == (last < 1 << 47)
        }
        None => false,
    }
}

/// `va` is canonical for 48-bit virtual addresses (bits 63..47 all equal).
pub const fn is_canonical(va: u64) -> bool {
    (((va << 16) as i64) >> 16) as u64 == va
}

/// Which page-table base of the calling vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Base {
    /// `guest_table`: the kernel-mode base (CR3 while the guest kernel runs).
    Kernel,
    /// `guest_table_user`: the user-mode base (none until the guest sets one).
    User,
}

/// The calling vCPU's LDT as `MMUEXT_SET_LDT` records it (spec §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ldt {
    /// Guest virtual base, page aligned; 0 when `ents` is 0.
    pub base: u64,
    /// Number of descriptors, at most 8192; 0 = no LDT.
    pub ents: u32,
}

/// What the MMU hypercalls need from the hypervisor, for one hypercall of one vCPU.
///
/// Domain queries take `&self`; changes to the calling vCPU and the flush / cache sinks take
/// `&mut self`. "The caller" is the domain of the vCPU making the hypercall.
pub trait HcEnv {
    /// Machine memory holding page tables.
    type Mem: PhysMem + ?Sized;
    /// A domain's context for reference-taking operations.
    type Dom: DomainCtx + ?Sized;
    /// The caller's guest memory.
    type Guest: GuestMem + ?Sized;

    // --- machine -------------------------------------------------------------------------

    /// The frame table.
    fn frames(&self) -> FrameTable<'_>;
    /// Machine memory (entries of page-table and data frames).
    fn mem(&self) -> &Self::Mem;
    /// The caller's guest memory.
    fn guest(&self) -> &Self::Guest;
    /// The physical CPU this hypercall runs on (below [`crate::flush::MAX_CPUS`]).
    fn this_cpu(&self) -> usize;

    // --- domains -------------------------------------------------------------------------

    /// The calling domain's id.
    fn caller(&self) -> DomId;
    /// The live domain with exactly this id, if any. The caller is always found. Reserved ids
    /// (`DOMID_IO`, `DOMID_XEN`) may return the hypervisor's pseudo-domain contexts, if it has
    /// them; `DOMID_SELF` is resolved by this module and never asked for.
    fn domain(&self, id: DomId) -> Option<&Self::Dom>;
    /// XSM's default `XSM_TARGET` rule: may `subject` act on `target`'s memory? The default is
    /// Xen's dummy policy without device-model targets: the same domain, or a privileged
    /// (control) subject. Override to add the device-model relation.
    fn is_privileged_over(&self, subject: DomId, target: DomId) -> bool {
        subject == target || self.domain(subject).is_some_and(|d| d.is_privileged())
    }
    /// Number of vCPUs of `dom` (`max_vcpus`; 0 if it has none or does not exist).
    fn max_vcpus(&self, dom: DomId) -> u32;
    /// The physical CPU currently holding vCPU `vcpu` of `dom`'s state (Xen's `dirty_cpu`),
    /// `None` if it is not loaded anywhere (spec §5.1).
    fn vcpu_dirty_cpu(&self, dom: DomId, vcpu: u32) -> Option<usize>;
    /// A snapshot of `dom`'s dirty CPU mask, taken with `AtomicCpuMask::snapshot` *after* the
    /// change the flush protects (see `flush::cpumask` for why a plain load is not enough).
    fn dirty_mask(&self, dom: DomId) -> CpuMask;
    /// The caller has `VMASST_TYPE_m2p_strict` enabled (spec §2.2).
    fn m2p_strict(&self) -> bool;
    /// The L4 entry mapping the read-only M2P (slot 256) into guest tables.
    fn ro_m2p_l4e(&self) -> u64;

    // --- the calling vCPU ----------------------------------------------------------------

    /// The current page-table base `which`, if set.
    fn base(&self, which: Base) -> Option<Mfn>;
    /// Install `mfn` as base `which` (`None` removes the user base). The new frame holds one
    /// general and one L4 type reference, taken by this module and owned by the vCPU from now
    /// on; the replaced base's references are dropped by this module *after* this returns. So
    /// the implementation must have stopped using the old table before it returns: for the
    /// kernel base it drops the shadow-mapped LDT and reloads CR3 (a local flush) if the vCPU is
    /// in kernel mode. Called with the current value too: then it only reloads.
    fn set_base(&mut self, which: Base, mfn: Option<Mfn>);
    /// The LDT recorded for the vCPU.
    fn ldt(&self) -> Ldt;
    /// Record a new LDT (only called when it changed): drop the shadow-mapped LDT pages and
    /// reload the LDT. Returns `true` if shadow mappings were dropped (this module then asks for
    /// a local TLB flush).
    fn set_ldt(&mut self, ldt: Ldt) -> bool;

    /// The table whose de-validation the vCPU owns and has not finished (Xen's
    /// `old_guest_table`, spec §3.6), if any: a partial frame whose type reference and one
    /// general reference the vCPU holds (see `FrameTable::devalidate`).
    fn old_table(&self) -> Option<Mfn>;
    /// Record (`Some`) or clear (`None`) the vCPU's deferred de-validation. The hypervisor
    /// keeps it with the vCPU (it may resume on another CPU), lists it for the audit as an
    /// extra reference of the frame's type, and finishes it (`FrameTable::devalidate` with a
    /// poll that never stops it) when the vCPU's domain is destroyed.
    fn set_old_table(&mut self, mfn: Option<Mfn>);

    // --- effects -------------------------------------------------------------------------

    /// Set the machine-to-phys entry of `mfn` (the frame is held by the caller of this method).
    fn set_m2p(&self, mfn: Mfn, val: u64);
    /// Perform a flush now (the shootdown layer's `flush_token`; local part first). Tokens are
    /// never empty.
    fn flush(&mut self, token: FlushToken);
    /// Write back and invalidate the caches of every online CPU (`wbinvd` on each).
    fn flush_cache(&mut self);
    /// A softirq or deliverable event is pending: a batch stops before its next element.
    fn preempt_pending(&self) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_address_checks() {
        for (va, ok) in [
            (0, true),
            ((1 << 47) - 1, true),
            (1 << 47, false),
            (0xFFFF_8000_0000_0000, false),
            (0xFFFF_87FF_FFFF_FFFF, false),
            (0xFFFF_8800_0000_0000, true),
            (u64::MAX, true),
        ] {
            assert_eq!(guest_addr_ok(va), ok, "{va:#x}");
        }
        assert!(guest_range_ok((1 << 47) - 16, 16));
        assert!(!guest_range_ok((1 << 47) - 8, 16));
        assert!(!guest_range_ok(u64::MAX, 2));
        assert!(guest_range_ok(u64::MAX, 1));
        assert!(!guest_range_ok(0xFFFF_87FF_FFFF_FFF8, 16));
        assert!(is_canonical(0xFFFF_8000_0000_0000) && is_canonical((1 << 47) - 1));
        assert!(!is_canonical(1 << 47) && !is_canonical(0x0001_0000_0000_0000));
    }
}
