//! [`MmError`]: the typed error of the frame table, the PTE rules and `mod_entry`.
//!
//! One enum for both layers because they recurse into each other (validating a table takes
//! references, taking a reference may validate a table). Each variant names one rule; the
//! conversion to a Xen errno happens once, in [`MmError::errno`], and the hypercall dispatcher
//! negates it. Variants that can only arise from a hypervisor bug (underflow, corrupt word) are
//! still errors, never panics: they fail closed.

/// Why a frame-table or page-table operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmError {
    /// The MFN is outside the frame table (or the page-table memory).
    BadMfn,
    /// The frame is free, or its allocation reference is gone: no new references.
    NotAllocated,
    /// The frame is owned by another domain.
    WrongOwner,
    /// `assign` on a frame that is not free.
    FrameInUse,
    /// A count would reach its cap (fail closed; never wraps).
    CountOverflow,
    /// Dropping a reference that is not held (a hypervisor bug; refused rather than wrapped).
    CountUnderflow,
    /// A type reference without a general reference to go with it.
    MissingGeneralRef,
    /// The frame has a non-zero type count of another type.
    TypeMismatch,
    /// The type asked for is not one that can be taken here (`None`, or pinning a non-table).
    BadType,
    /// The packed state word does not decode (reserved type or a count above its cap).
    CorruptState,
    /// Pin of a frame that is already pinned.
    AlreadyPinned,
    /// Unpin of a frame that is not pinned.
    NotPinned,
    /// The table is not a validated page table of the level asked for.
    NotValidated,
    /// Entry index beyond the table.
    BadIndex,
    /// A flag the level does not allow (spec §2.1).
    BadFlags,
    /// PWT/PCD/PAT in an L1 entry of a domain without I/O capabilities.
    CacheAttr,
    /// Cache attributes other than write-back in an L1 entry mapping a special page (a
    /// hypervisor page shared with the guest, such as shared_info).
    SpecialPageCacheAttr,
    /// PSE in an L2/L3 entry: no PV superpages (XSA-148).
    Superpage,
    /// L4 slots 256..=271 belong to the hypervisor.
    XenSlot,
    /// L1 entry whose address field is all ones.
    AllOnesFrame,
    /// L1 entry mapping a non-RAM frame without I/O capabilities.
    MmioDenied,
    /// L1 entry mapping a frame that is free, not ours, or not mappable by us.
    FrameBusy,
    /// RW L1 entry whose target cannot take a writable type (it is a page table, GDT, …).
    WritableBusy,
    /// L2–L4 entry whose target is not a RAM frame of this domain.
    BadChild,
    /// Same-level entry while linear page tables are disabled.
    LinearDisabled,
    /// Same-level entry with RW set.
    LinearWritable,
    /// Same-level entry whose target is not an already validated table of that level.
    LinearTarget,
    /// Same-level entry that would chain: the containing table is itself a linear target, or
    /// the target itself contains linear entries (XSA-240).
    LinearChain,
    /// A table would be the target of more than 32768 linear entries.
    LinearOverflow,
    /// A descriptor frame holds a descriptor a PV guest may not have (`desc::check`).
    BadDescriptor,
    /// The table's de-validation is under way and may last across hypercalls (it is partial):
    /// it cannot be typed, validated or pinned until that finishes.
    Devalidating,
    /// `devalidate` on a frame that is not partial (a hypervisor bug; refused).
    NotPartial,
}

const EPERM: i64 = 1;
const EACCES: i64 = 13;
const EBUSY: i64 = 16;
const EINVAL: i64 = 22;

impl MmError {
    /// The Xen errno (positive) this error is reported as.
    pub const fn errno(self) -> i64 {
        match self {
            MmError::MmioDenied => EPERM,
            MmError::SpecialPageCacheAttr => EACCES,
            MmError::FrameBusy | MmError::WritableBusy | MmError::FrameInUse => EBUSY,
            MmError::BadMfn
            | MmError::NotAllocated
            | MmError::WrongOwner
            | MmError::CountOverflow
            | MmError::CountUnderflow
            | MmError::MissingGeneralRef
            | MmError::TypeMismatch
            | MmError::BadType
            | MmError::CorruptState
            | MmError::AlreadyPinned
            | MmError::NotPinned
            | MmError::NotValidated
            | MmError::BadIndex
            | MmError::BadFlags
            | MmError::CacheAttr
            | MmError::Superpage
            | MmError::XenSlot
            | MmError::AllOnesFrame
            | MmError::BadChild
            | MmError::LinearDisabled
            | MmError::LinearWritable
            | MmError::LinearTarget
            | MmError::LinearChain
            | MmError::LinearOverflow
            | MmError::BadDescriptor
            | MmError::Devalidating
            | MmError::NotPartial => EINVAL,
        }
    }
}

impl core::fmt::Display for MmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?} (errno {})", self.errno())
    }
}
