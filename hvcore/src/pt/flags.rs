//! PTE bits and the pure per-level rules (spec §2.1–2.3, §2.8–2.9). No atomics, no state.
//!
//! Choices: bit 62 (`_PAGE_GNTTAB` in Xen debug builds) follows release semantics — it is an
//! ordinary AVAIL_HIGH bit a guest may set (spec case 23); NX is always allowed (every x86-64
//! CPU Argon runs on has it).

use super::super::frame::{Level, MmError};

/// Present.
pub const PTE_P: u64 = 1 << 0;
/// Writable.
pub const PTE_RW: u64 = 1 << 1;
/// User.
pub const PTE_US: u64 = 1 << 2;
/// Write-through.
pub const PTE_PWT: u64 = 1 << 3;
/// Cache disable.
pub const PTE_PCD: u64 = 1 << 4;
/// Accessed.
pub const PTE_A: u64 = 1 << 5;
/// Dirty.
pub const PTE_D: u64 = 1 << 6;
/// PAT (L1) / PSE (L2, L3): the same bit.
pub const PTE_PSE: u64 = 1 << 7;
/// PAT in an L1 entry.
pub const PTE_PAT: u64 = PTE_PSE;
/// Global.
pub const PTE_G: u64 = 1 << 8;
/// Software-available bits 9–11.
pub const PTE_AVL: u64 = 0x7 << 9;
/// Address field, bits 12–51.
pub const PTE_ADDR_MASK: u64 = ((1 << 40) - 1) << 12;
/// Xen's `_PAGE_GUEST_KERNEL` (bit 52): marks kernel-only L1 mappings.
pub const PTE_GUEST_KERNEL: u64 = 1 << 52;
/// Software-available high bits 52–62.
pub const PTE_AVAIL_HIGH: u64 = 0x7FF << 52;
/// No-execute.
pub const PTE_NX: u64 = 1 << 63;
/// Every flag bit (everything outside the address field).
pub const PTE_FLAGS_MASK: u64 = !PTE_ADDR_MASK;

/// The frame number with every address bit set: never a mappable frame.
pub const ALL_ONES_FRAME: u64 = PTE_ADDR_MASK >> 12;

/// Flags allowed at every level (Xen's complement of `base_disallow_mask`).
pub const BASE_ALLOWED: u64 =
    PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_AVL | PTE_AVAIL_HIGH | PTE_NX;
/// Flags no present entry may carry at L2–L4: PWT, PCD, PSE, G.
pub const BASE_DISALLOW: u64 = PTE_FLAGS_MASK & !BASE_ALLOWED;
/// L1 cache-attribute bits, allowed only with I/O capabilities.
pub const L1_CACHE_ATTR: u64 = PTE_PWT | PTE_PCD | PTE_PAT;
/// Flags a present L1 entry may never carry: none beyond the cache attributes (G is allowed at
/// L1, and bit 62 follows release semantics).
pub const L1_DISALLOW: u64 = BASE_DISALLOW & !PTE_G & !L1_CACHE_ATTR;

/// Bits whose change alone takes the fast path (no reference changes): NX, AVAIL_HIGH,
/// AVL, G, D, A, US. Never RW, P, PWT/PCD/PAT or the frame (XSA-182, XSA-154).
pub const FASTPATH_BITS: u64 = PTE_NX | PTE_AVAIL_HIGH | PTE_AVL | PTE_G | PTE_D | PTE_A | PTE_US;

/// The hypervisor's L4 slots (virtual 0xFFFF8000_00000000 – 0xFFFF87FF_FFFFFFFF).
pub const XEN_L4_SLOTS: core::ops::RangeInclusive<usize> = 256..=271;
/// L4 slot of the read-only M2P.
pub const XEN_L4_SLOT_RO_M2P: usize = 256;
/// L4 slot of the self-map (Xen's linear page table).
pub const XEN_L4_SLOT_SELF: usize = 258;

const _: () = assert!(BASE_DISALLOW == PTE_PWT | PTE_PCD | PTE_PSE | PTE_G);
const _: () = assert!(L1_DISALLOW == 0);
const _: () = assert!(FASTPATH_BITS & (PTE_RW | PTE_P | L1_CACHE_ATTR | PTE_ADDR_MASK) == 0);
const _: () = assert!(PTE_GUEST_KERNEL & PTE_AVAIL_HIGH != 0);

/// The entry is present.
pub const fn present(e: u64) -> bool {
    e & PTE_P != 0
}

/// The frame number an entry points at.
pub const fn frame_of(e: u64) -> u64 {
    (e & PTE_ADDR_MASK) >> 12
}

/// An entry for `frame` with `flags` (flag bits outside the address field only).
pub const fn make_pte(frame: u64, flags: u64) -> u64 {
    ((frame << 12) & PTE_ADDR_MASK) | (flags & PTE_FLAGS_MASK)
}

/// Slot `index` of an L4 belongs to the hypervisor.
pub fn is_xen_l4_slot(index: usize) -> bool {
    XEN_L4_SLOTS.contains(&index)
}

/// Check a present entry's flags for `level` (spec §2.1). Not-present entries are not checked.
pub const fn check_flags(level: Level, e: u64, io_caps: bool) -> Result<(), MmError> {
    if !present(e) {
        return Ok(());
    }
    match level {
        // L1_DISALLOW is empty (asserted above): only the cache attributes are conditional.
        Level::L1 if e & L1_CACHE_ATTR != 0 && !io_caps => Err(MmError::CacheAttr),
        Level::L1 => Ok(()),
        Level::L2 | Level::L3 if e & PTE_PSE != 0 => Err(MmError::Superpage),
        _ if e & BASE_DISALLOW != 0 => Err(MmError::BadFlags),
        _ => Ok(()),
    }
}

/// Xen's `adjust_guest_l1e` (spec §2.3), for a present L1 entry: a kernel mapping (US clear)
/// becomes US + `_PAGE_GUEST_KERNEL`; a user mapping (bit 52 clear) becomes US + G.
pub const fn adjust_guest_l1e(e: u64) -> u64 {
    if !present(e) {
        return e;
    }
    let e = if e & PTE_US == 0 {
        e | PTE_US | PTE_GUEST_KERNEL
    } else {
        e
    };
    if e & PTE_GUEST_KERNEL == 0 {
        e | PTE_G | PTE_US
    } else {
        e
    }
}

/// Adjust a present entry of `level` before storing it: L1 as above, L2/L3 set US, L4 sets US
/// and A (spec §2.3). Idempotent.
pub const fn adjust(level: Level, e: u64) -> u64 {
    if !present(e) {
        return e;
    }
    match level {
        Level::L1 => adjust_guest_l1e(e),
        Level::L2 | Level::L3 => e | PTE_US,
        Level::L4 => e | PTE_US | PTE_A,
    }
}

/// Replacing present `old` by present `new` changes only fast-path bits: no reference changes.
pub const fn is_fast_path(old: u64, new: u64) -> bool {
    present(old) && present(new) && (old ^ new) & !FASTPATH_BITS == 0
}
