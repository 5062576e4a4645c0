//! The per-domain context every reference-taking operation runs under.
//!
//! Owns: [`DomId`], the [`DomainCtx`] trait and [`TypeChange`], the report of a type change that
//! the flush layer turns into a filtered shootdown. The trait is also the validator's seam to
//! the machine's caches: special pages, self-snoop and the per-frame cache flush (XSA-154,
//! XSA-402). No state lives here; the hypervisor's domain structure implements the trait, host
//! tests and loom models use `testkit::TestDomain`.
//!
//! Ordering contract of [`DomainCtx::flush_retyped`] (XSA-401): it is called *after* the new
//! type has been published (type count 1, not validated: every other taker waits or fails) and
//! *before* the frame is validated or used with its new type. It must return only once every CPU
//! that may hold a stale translation of the frame has flushed. The caller spins on nothing while
//! inside it, but other CPUs may be spinning on this frame's validation, so the shootdown must be
//! one they acknowledge while spinning (interrupts enabled, or the mailbox served in the spin).

use crate::flush::Stamp;
use crate::frame::PageType;
use crate::mem::Mfn;

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// The frame `mfn` just changed type at type count 0 → 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeChange {
    /// The frame.
    pub mfn: Mfn,
    /// Its owner: the domain whose dirty CPU mask may hold stale translations of it.
    pub owner: DomId,
    /// The type it had before (what its stale translations were for; XSA-408).
    pub old_type: PageType,
    /// The type it has now.
    pub new_type: PageType,
    /// Flush-clock stamp of its last use under `old_type`: CPUs that flushed after it are clean.
    pub stamp: Stamp,
}

impl TypeChange {
    /// The old type was a page table (Xen flushes with `FLUSH_NO_ASSIST` then).
    pub fn old_was_page_table(&self) -> bool {
        self.old_type.level().is_some()
    }
}

/// What validation and entry updates need to know about the domain they act for (the owner of
/// the page tables being validated or written).
pub trait DomainCtx {
    /// The domain's id; page tables and their children must be owned by it.
    fn domid(&self) -> DomId;

    /// A privileged (control) domain.
    fn is_privileged(&self) -> bool;

    /// May map non-RAM (MMIO) frames and use PWT/PCD/PAT in L1 entries.
    fn has_io_caps(&self) -> bool;

    /// Same-level ("linear") page-table entries are allowed (Xen's `pv-linear-pt`, default on).
    fn linear_pt_enabled(&self) -> bool;

    /// May this domain's L1 entries map RAM frames owned by `owner` (≠ `domid()`)? The
    /// default is Xen's control-domain rule: only a privileged domain may.
    fn may_map_foreign(&self, owner: DomId) -> bool {
        let _ = owner;
        self.is_privileged()
    }

    /// May an L1 entry written by an update (not found by validation) map a RAM frame owned by
    /// `owner`? The default: this domain's frames, and others by [`Self::may_map_foreign`]. A
    /// context that writes on behalf of another domain (Xen's FD ≠ PFD) overrides it; the
    /// frame table asks it inside the compare-and-swap that takes the reference.
    fn may_map(&self, owner: DomId) -> bool {
        owner == self.domid() || self.may_map_foreign(owner)
    }

    /// The hypervisor's value for L4 slot `slot` (256..=271) of the L4 table `l4`: slot 256 is
    /// the read-only M2P, slot 258 a self-map of `l4`. Installed when `l4` is validated.
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64;

    /// Flush every CPU that may hold a stale translation of a retyped frame; see the ordering
    /// contract in this module's head.
    fn flush_retyped(&self, change: TypeChange);

    /// `mfn` is a special page (a hypervisor page shared with guests, such as shared_info):
    /// L1 entries may map it only write-back (spec §2.4 step 6). The default: none is.
    fn is_special_page(&self, mfn: Mfn) -> bool {
        let _ = mfn;
        false
    }

    /// The CPUs snoop their own caches when a line is accessed with conflicting memory types
    /// (Xen's `XEN_SELFSNOOP`). Without that, a writable WC mapping marks its frame
    /// non-coherent (XSA-402). The default assumes they do not: a mark costs one frame flush.
    fn cpu_self_snoop(&self) -> bool {
        false
    }

    /// Write back and invalidate every cache line of frame `mfn` in the whole coherence domain
    /// (`clflush` of each line, then a fence), before returning. Called for a frame marked
    /// non-coherent that is about to take a type other than writable, after
    /// [`Self::flush_retyped`] and before validation reads it (XSA-402).
    fn flush_frame_cache(&self, mfn: Mfn);
}
