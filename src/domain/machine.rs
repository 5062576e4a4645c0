//! The machine as domains see it: [`DirectMem`] (hvcore's `PhysMem` over the direct map), raw
//! access to frames the hypervisor owns ([`frame_bytes`]), [`FrameBox`] (hypervisor structures
//! in frames from the allocator), the machine-to-phys table [`M2p`] with its read-only guest
//! mapping, and [`HvCtx`], the `DomainCtx` that validation runs under.
//!
//! Invariants:
//! - Every frame touched here lies below `DIRECTMAP_SIZE` (the allocator only manages RAM below
//!   4 GiB) and is reached through the direct map, never through identity addresses: a guest L4
//!   may be loaded while this code runs.
//! - Page-table entries are accessed as single-copy-atomic 8-byte words with the orderings
//!   `hvcore::mem` asks for (Acquire load, Release store, AcqRel CAS).
//! - The M2P's frames and tables are never assigned in the frame table, so no guest can map or
//!   type them; guests read the M2P only through L4 slot 256, whose entries have no RW bit.
//! - TLB: a retype is made safe by the filtered shootdown of the owner's dirty CPU mask
//!   (`HvCtx::flush_retyped`, `flush`); CR4.PGE is off, so a CR3 reload drops every entry.

use core::sync::atomic::{AtomicU64, Ordering};

use boot::arch::{boot_pml4_phys, phys_to_virt};
use boot::frame_alloc::FrameAllocator;
use hvcore::domain::{DomId, DomainCtx, TypeChange};
use hvcore::flush::AtomicCpuMask;
use hvcore::frame::PageType;
use hvcore::mem::{Mfn, PhysMem};
use hvcore::pt::{PTE_A, PTE_P, PTE_RW, PTE_US, XEN_L4_SLOT_RO_M2P, XEN_L4_SLOT_SELF, make_pte};

const PAGE: u64 = 4096;
/// The cache line size of every x86-64 CPU (`clflush` granularity).
const CACHE_LINE: usize = 64;

/// The direct-map virtual address of frame `mfn`'s first byte.
fn frame_va(mfn: u64) -> Option<u64> {
    phys_to_virt(mfn.checked_mul(PAGE)?)
}

/// Frame `mfn`'s bytes through the direct map.
///
/// # Safety
///
/// `mfn` must be RAM below 4 GiB that the caller alone writes for the lifetime of the slice
/// (a frame it just allocated, or a hypervisor-owned frame), and nothing may read it through a
/// conflicting Rust reference meanwhile.
pub unsafe fn frame_bytes(mfn: u64) -> Option<&'static mut [u8; 4096]> {
    let va = frame_va(mfn)?;
    // SAFETY: the direct map covers the frame (frame_va checked) and the caller guarantees
    // exclusive access; a frame is page aligned, so the array reference is aligned.
    Some(unsafe { &mut *(va as *mut [u8; 4096]) })
}

/// hvcore's `PhysMem` over the direct map of the first `frames` frames.
#[derive(Debug, Clone, Copy)]
pub struct DirectMem {
    frames: usize,
}

impl DirectMem {
    /// Memory of `frames` frames, all of them inside the direct map.
    pub fn new(frames: u64) -> Self {
        let limit = boot::arch::DIRECTMAP_SIZE / PAGE;
        Self {
            frames: frames.min(limit) as usize,
        }
    }

    #[inline]
    fn entry(&self, mfn: Mfn, index: usize) -> &AtomicU64 {
        assert!(
            mfn.index().is_some_and(|m| m < self.frames) && index < 512,
            "bad entry access"
        );
        let va = frame_va(mfn.0).unwrap_or(0) + index as u64 * 8;
        // SAFETY: the frame is below `frames`, hence inside the direct map (checked in `new`);
        // the address is 8-byte aligned and AtomicU64 has no other validity requirement. All
        // accesses to page-table words are atomic (module head), so there is no data race.
        unsafe { AtomicU64::from_ptr(va as *mut u64) }
    }
}

impl PhysMem for DirectMem {
    #[inline]
    fn frames(&self) -> usize {
        self.frames
    }

    #[inline]
    fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
        // Acquire: the `PhysMem` contract (pairs with Release stores and CASes of entries).
        self.entry(mfn, index).load(Ordering::Acquire)
    }

    #[inline]
    fn write_entry(&self, mfn: Mfn, index: usize, val: u64) {
        // Release: the `PhysMem` contract.
        self.entry(mfn, index).store(val, Ordering::Release)
    }

    #[inline]
    fn cas_entry(&self, mfn: Mfn, index: usize, old: u64, new: u64) -> Result<(), u64> {
        // AcqRel on success (the `PhysMem` contract); Acquire on failure: the value found is
        // the one the caller drops references for next.
        self.entry(mfn, index)
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }
}

/// Types for which all-zero bytes are a valid value (integers, bools, arrays and `repr(C)`
/// structures of them).
///
/// # Safety
///
/// Implement only for types whose every field is itself all-zero-valid.
pub unsafe trait Zeroable {}

/// A `T` living in whole frames taken from the frame allocator, created zeroed in place (no
/// large stack temporaries). Give it back with [`FrameBox::free`].
pub struct FrameBox<T: Zeroable> {
    ptr: *mut T,
    mfn: u64,
    frames: u64,
}

impl<T: Zeroable> FrameBox<T> {
    /// A zeroed `T` in fresh frames, or `None` when memory is short.
    pub fn new_zeroed(alloc: &mut FrameAllocator<'_>) -> Option<Self> {
        const { assert!(core::mem::align_of::<T>() <= 4096) };
        let frames = (core::mem::size_of::<T>() as u64).div_ceil(PAGE).max(1);
        let mfn = alloc.alloc_contig(frames, 1).ok()?;
        let va = match frame_va(mfn).filter(|_| frame_va(mfn + frames - 1).is_some()) {
            Some(va) => va,
            None => {
                let _ = alloc.free_contig(mfn, frames);
                return None;
            }
        };
        let ptr = va as *mut T;
        // SAFETY: the frames were just allocated to us and are direct-mapped (checked), page
        // aligned (enough for T), and all-zero bytes are a valid T (`Zeroable`).
        unsafe { core::ptr::write_bytes(ptr.cast::<u8>(), 0, (frames * PAGE) as usize) };
        Some(Self { ptr, mfn, frames })
    }

    /// Returns the frames to the allocator.
    pub fn free(self, alloc: &mut FrameAllocator<'_>) {
        if let Err(e) = alloc.free_contig(self.mfn, self.frames) {
            error!(
                "freeing hypervisor frames {:#x}+{}: {e}",
                self.mfn, self.frames
            );
        }
    }
}

impl<T: Zeroable> core::ops::Deref for FrameBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is a valid, initialised T owned by this box (see `new_zeroed`).
        unsafe { &*self.ptr }
    }
}

impl<T: Zeroable> core::ops::DerefMut for FrameBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { &mut *self.ptr }
    }
}

/// Values of L4 slots 256..=271 shared by every guest L4 (258, the self-map, is per table).
#[derive(Debug, Clone, Copy)]
pub struct XenSlots([u64; 16]);

impl XenSlots {
    /// The L4 entry of the read-only M2P (slot 256).
    pub fn ro_m2p(&self) -> u64 {
        self.0[XEN_L4_SLOT_RO_M2P - 256]
    }
}

/// The machine-to-phys table: one u64 per machine frame, hypervisor-written through the direct
/// map, guest-readable at `MACH2PHYS_VIRT_START` through read-only tables.
#[derive(Debug)]
pub struct M2p {
    base: u64,
    entries: u64,
    mem: DirectMem,
}

/// Upper-level entry for the hypervisor's own guest-visible tables: present, user, accessed,
/// never writable.
const RO_USER: u64 = PTE_P | PTE_US | PTE_A;

impl M2p {
    /// Allocates the table for `frames` machine frames (all entries invalid) and its read-only
    /// mapping; returns it with the L4 slot values every guest L4 receives.
    pub fn init(
        alloc: &mut FrameAllocator<'_>,
        frames: u64,
    ) -> Result<(M2p, XenSlots), &'static str> {
        let pages = (frames * 8).div_ceil(PAGE).max(1);
        let nr_l1 = pages.div_ceil(512);
        if nr_l1 > 512 {
            return Err("machine too large for a one-L2 M2P mapping");
        }
        let base = alloc
            .alloc_contig(pages + nr_l1 + 2, 1)
            .map_err(|_| "no memory for the M2P")?;
        let (l3, l2, l1) = (base + pages, base + pages + 1, base + pages + 2);
        for mfn in base..base + pages + nr_l1 + 2 {
            // SAFETY: just allocated to the hypervisor, below 4 GiB (the allocator's range).
            let page = unsafe { frame_bytes(mfn) }.ok_or("M2P outside the direct map")?;
            page.fill(if mfn < base + pages { 0xFF } else { 0 });
        }
        let mem = DirectMem::new(base + pages + nr_l1 + 2);
        mem.write_entry(Mfn(l3), 0, make_pte(l2, RO_USER));
        for i in 0..nr_l1 {
            mem.write_entry(Mfn(l2), i as usize, make_pte(l1 + i, RO_USER));
        }
        for p in 0..pages {
            mem.write_entry(
                Mfn(l1 + p / 512),
                (p % 512) as usize,
                make_pte(base + p, RO_USER),
            );
        }
        let mut slots = [0u64; 16];
        slots[XEN_L4_SLOT_RO_M2P - 256] = make_pte(l3, RO_USER);
        let boot = DirectMem::new(boot::arch::DIRECTMAP_SIZE / PAGE);
        let boot_l4 = Mfn(boot_pml4_phys() / PAGE);
        // The hypervisor's image (261) and direct map (262), supervisor-only as in the boot L4.
        for slot in [261usize, 262] {
            slots[slot - 256] = boot.read_entry(boot_l4, slot);
        }
        Ok((
            M2p {
                base,
                entries: frames,
                mem: boot,
            },
            XenSlots(slots),
        ))
    }

    /// Records `mfn → pfn` (or [`abi::layout::INVALID_M2P_ENTRY`]).
    pub fn set(&self, mfn: u64, pfn: u64) {
        if mfn >= self.entries {
            return;
        }
        self.mem
            .write_entry(Mfn(self.base + mfn / 512), (mfn % 512) as usize, pfn);
    }
}

/// The context validation and entry updates run under, for one domain.
#[derive(Debug, Clone, Copy)]
pub struct HvCtx<'a> {
    pub domid: DomId,
    pub privileged: bool,
    pub linear_pt: bool,
    /// The domain's shared_info frame (0: none), its only special page.
    pub shared_info: u64,
    pub slots: &'a XenSlots,
    /// The domain's dirty CPU mask: whom a retype of its frames must flush.
    pub dirty: &'a AtomicCpuMask,
}

impl DomainCtx for HvCtx<'_> {
    fn domid(&self) -> DomId {
        self.domid
    }

    fn is_privileged(&self) -> bool {
        self.privileged
    }

    fn has_io_caps(&self) -> bool {
        // No device access for guests yet: MMIO mappings are refused for every domain.
        false
    }

    fn linear_pt_enabled(&self) -> bool {
        self.linear_pt
    }

    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        if slot == XEN_L4_SLOT_SELF {
            // Xen's linear page table: supervisor-only, so a guest read of it faults.
            return make_pte(l4.0, PTE_P | PTE_RW | PTE_A);
        }
        slot.checked_sub(256)
            .and_then(|i| self.slots.0.get(i))
            .copied()
            .unwrap_or(0)
    }

    fn flush_retyped(&self, change: TypeChange) {
        // A frame that never had a type since allocation was never mapped writable nor used as
        // a page table, so no translation of it can be stale (read-only mappings are harmless).
        if change.old_type != PageType::None {
            super::flush::retyped(self.dirty, change.stamp);
        }
    }

    fn is_special_page(&self, mfn: Mfn) -> bool {
        self.shared_info != 0 && mfn.0 == self.shared_info
    }

    fn flush_frame_cache(&self, mfn: Mfn) {
        // Unreachable while `has_io_caps` is false (no WC mappings), but kept exact.
        let Some(va) = frame_va(mfn.0) else {
            return;
        };
        for line in (0..PAGE).step_by(CACHE_LINE) {
            // SAFETY: `va + line` lies inside a direct-mapped frame (`frame_va` checked it);
            // clflush writes the line back and invalidates it, changing no memory contents.
            unsafe { core::arch::asm!("clflush [{}]", in(reg) va + line, options(nostack)) };
        }
        // SAFETY: a fence has no preconditions; it orders the flushes before later accesses.
        unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
    }
}

/// A byte of hypervisor-owned frame `mfn` (shared_info) as an atomic the guest updates too.
pub fn shared_u8(mfn: u64, offset: u64) -> Option<&'static core::sync::atomic::AtomicU8> {
    let va = frame_va(mfn)?
        .checked_add(offset)
        .filter(|_| offset < PAGE)?;
    // SAFETY: inside a direct-mapped frame; AtomicU8 has no alignment or validity requirement;
    // the guest shares the byte, so only atomic accesses are made to it.
    Some(unsafe { core::sync::atomic::AtomicU8::from_ptr(va as *mut u8) })
}

/// An aligned u64 of hypervisor-owned frame `mfn` (shared_info), as an atomic.
pub fn shared_u64(mfn: u64, offset: u64) -> Option<&'static AtomicU64> {
    let va = frame_va(mfn)?
        .checked_add(offset)
        .filter(|_| offset < PAGE && offset.is_multiple_of(8))?;
    // SAFETY: inside a direct-mapped frame and 8-byte aligned (checked); accessed atomically.
    Some(unsafe { AtomicU64::from_ptr(va as *mut u64) })
}

/// A permanent slice of `len` default values in frames taken from the allocator (never freed:
/// for structures sized once at boot, such as the audit's scratch space).
pub fn scratch_slice<T: Default>(
    alloc: &mut FrameAllocator<'_>,
    len: u64,
) -> Option<&'static mut [T]> {
    const { assert!(core::mem::align_of::<T>() <= 4096) };
    let frames = len
        .checked_mul(core::mem::size_of::<T>() as u64)?
        .div_ceil(PAGE)
        .max(1);
    let mfn = alloc.alloc_contig(frames, 1).ok()?;
    let (Some(va), Some(_)) = (frame_va(mfn), frame_va(mfn + frames - 1)) else {
        let _ = alloc.free_contig(mfn, frames);
        return None;
    };
    let ptr = va as *mut T;
    let len = usize::try_from(len).ok()?;
    for i in 0..len {
        let slot = ptr.wrapping_add(i);
        // SAFETY: `i < len` elements fit in the frames just allocated to us (sized above), which
        // are direct-mapped and page aligned; each slot is written once before any read.
        unsafe { slot.write(T::default()) };
    }
    // SAFETY: all `len` elements were initialised above; the frames belong to this slice alone
    // for the rest of the run.
    Some(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}
