//! PTE bits and the pure per-level rules (spec §2.1–2.3, §2.8–2.9), and the memory types L1
//! cache attributes select under Xen's PV PAT (spec §6.1, for §2.4's MMIO rule). No atomics,
//! no state.
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

/// Xen's PAT MSR value for PV guests (`XEN_MSR_PAT`, an ABI: guests pick memory types by it).
pub const XEN_PV_PAT: u64 = 0x0000_0501_0007_0406;

/// An x86 memory type, with its architectural encoding (a PAT MSR byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MemType {
    /// Uncacheable.
    Uc = 0,
    /// Write-combining.
    Wc = 1,
    /// Write-through.
    Wt = 4,
    /// Write-protected.
    Wp = 5,
    /// Write-back.
    Wb = 6,
    /// Uncacheable, overridable by MTRRs ("UC-").
    UcMinus = 7,
}

/// The memory type of each PAT index under [`XEN_PV_PAT`]: WB, WT, UC-, UC, WC, WP, UC, UC.
pub const XEN_PV_PAT_TYPES: [MemType; 8] = [
    MemType::Wb,
    MemType::Wt,
    MemType::UcMinus,
    MemType::Uc,
    MemType::Wc,
    MemType::Wp,
    MemType::Uc,
    MemType::Uc,
];

/// L1 cache attributes selecting UC under [`XEN_PV_PAT`] (PAT index 3).
pub const CACHE_UC: u64 = PTE_PCD | PTE_PWT;
/// L1 cache attributes selecting WC under [`XEN_PV_PAT`] (PAT index 4).
pub const CACHE_WC: u64 = PTE_PAT;

const fn pat_table_matches_msr() -> bool {
    let mut i = 0;
    while i < 8 {
        if XEN_PV_PAT_TYPES[i] as u64 != (XEN_PV_PAT >> (8 * i)) & 0xFF {
            return false;
        }
        i += 1;
    }
    true
}

const _: () = assert!(pat_table_matches_msr());
const _: () = assert!(matches!(mem_type(CACHE_UC), MemType::Uc));
const _: () = assert!(matches!(mem_type(CACHE_WC), MemType::Wc));

/// The PAT index an L1 entry selects: PAT << 2 | PCD << 1 | PWT.
pub const fn pat_index(e: u64) -> usize {
    ((e & PTE_PAT != 0) as usize) << 2
        | ((e & PTE_PCD != 0) as usize) << 1
        | (e & PTE_PWT != 0) as usize
}

/// The memory type an L1 entry selects under [`XEN_PV_PAT`].
pub const fn mem_type(e: u64) -> MemType {
    XEN_PV_PAT_TYPES[pat_index(e)]
}

/// XSA-154: a present L1 entry mapping MMIO may not be cacheable. Unless its memory type is
/// UC, UC- or WC, its cache attributes are replaced by [`CACHE_UC`] (Xen's "flip").
pub const fn force_mmio_uncacheable(e: u64) -> u64 {
    match mem_type(e) {
        MemType::Uc | MemType::UcMinus | MemType::Wc => e,
        MemType::Wb | MemType::Wt | MemType::Wp => (e & !L1_CACHE_ATTR) | CACHE_UC,
    }
}

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
