//! The x86-64 PV virtual-address layout every guest shares with the hypervisor, the read-only
//! machine-to-phys table, and the host PAT that is part of the ABI
//! (`xen/include/public/arch-x86/xen-x86_64.h`, spec §6.1, DESIGN §4).
//!
//! | range | owner |
//! |---|---|
//! | `0` .. `0x0000_7FFF_FFFF_FFFF` (L4 slots 0–255) | guest |
//! | `0xFFFF_8000_0000_0000` .. `0xFFFF_87FF_FFFF_FFFF` (L4 slots 256–271) | hypervisor; the M2P is its first 256 GiB |
//! | `0xFFFF_8800_0000_0000` .. top (L4 slots 272–511) | guest |
//!
//! The M2P holds one u64 per machine frame (its PFN); an entry with bit 63 set is not valid.

use core::ops::RangeInclusive;

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;
/// Page size in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// Start of the hypervisor's hole in every guest address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the hypervisor's hole.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// Start of the read-only machine-to-phys table as guests see it.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// End (exclusive) of the machine-to-phys table.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// Entries the M2P window can hold (8 bytes each): 2^35.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// First L4 slot owned by the hypervisor.
pub const XEN_L4_SLOT_FIRST: usize = 256;
/// Last L4 slot owned by the hypervisor.
pub const XEN_L4_SLOT_LAST: usize = 271;
/// The L4 slots owned by the hypervisor in every guest L4; the guest may never map there.
pub const XEN_L4_SLOTS: RangeInclusive<usize> = XEN_L4_SLOT_FIRST..=XEN_L4_SLOT_LAST;
/// The L4 slot that maps the read-only M2P into guest tables.
pub const M2P_L4_SLOT: usize = 256;

/// Lowest non-canonical address: guest addresses below it are in the lower half.
pub const LOWER_HALF_END: u64 = 1 << 47;

/// The L4 slot (0–511) that translates `va`.
pub const fn l4_slot(va: u64) -> usize {
    ((va >> 39) & 0x1FF) as usize
}

/// True if `va` is an address a PV guest may use: canonical and outside the hypervisor hole.
pub const fn is_guest_va(va: u64) -> bool {
    va < LOWER_HALF_END || va >= HYPERVISOR_VIRT_END
}

const _: () = assert!(l4_slot(HYPERVISOR_VIRT_START) == XEN_L4_SLOT_FIRST);
const _: () = assert!(l4_slot(HYPERVISOR_VIRT_END - 1) == XEN_L4_SLOT_LAST);
const _: () = assert!(l4_slot(MACH2PHYS_VIRT_START) == M2P_L4_SLOT);
const _: () = assert!(l4_slot(MACH2PHYS_VIRT_END - 1) == M2P_L4_SLOT);

/// M2P value of a frame that belongs to no guest PFN.
pub const INVALID_M2P_ENTRY: u64 = !0;
/// M2P value of a frame shared between domains.
pub const SHARED_M2P_ENTRY: u64 = !0 - 1;

/// True if an M2P entry names a PFN (bit 63 clear).
pub const fn m2p_entry_valid(entry: u64) -> bool {
    entry >> 63 == 0
}

/// x86 memory type: uncacheable.
pub const X86_MT_UC: u8 = 0;
/// x86 memory type: write-combining.
pub const X86_MT_WC: u8 = 1;
/// x86 memory type: write-through.
pub const X86_MT_WT: u8 = 4;
/// x86 memory type: write-protected.
pub const X86_MT_WP: u8 = 5;
/// x86 memory type: write-back.
pub const X86_MT_WB: u8 = 6;
/// x86 memory type: uncached-minus (UC-).
pub const X86_MT_UCM: u8 = 7;

/// The host `IA32_PAT` value, an ABI with PV guests: PAT0 WB, PAT1 WT, PAT2 UC-, PAT3 UC, PAT4 WC,
/// PAT5 WP, PAT6 UC, PAT7 UC. A PTE selects entry `PAT << 2 | PCD << 1 | PWT`.
pub const XEN_MSR_PAT: u64 = 0x0000_0501_0007_0406;

/// The memory type [`XEN_MSR_PAT`] gives PAT entry `index` (0–7; higher bits ignored).
pub const fn xen_pat_type(index: u8) -> u8 {
    (XEN_MSR_PAT >> ((index & 7) * 8)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypervisor_hole_is_slots_256_to_271() {
        assert_eq!(HYPERVISOR_VIRT_START, 0xFFFF_8000_0000_0000);
        assert_eq!(HYPERVISOR_VIRT_END, 0xFFFF_8800_0000_0000);
        assert_eq!(l4_slot(HYPERVISOR_VIRT_START), 256);
        assert_eq!(l4_slot(HYPERVISOR_VIRT_END - 1), 271);
        assert_eq!(l4_slot(HYPERVISOR_VIRT_END), 272);
        assert_eq!(XEN_L4_SLOTS.count(), 16);
    }

    #[test]
    fn m2p_window() {
        assert_eq!(MACH2PHYS_NR_ENTRIES, 1 << 35);
        assert!(m2p_entry_valid(0x1234));
        assert!(!m2p_entry_valid(INVALID_M2P_ENTRY));
        assert!(!m2p_entry_valid(SHARED_M2P_ENTRY));
        assert!(!m2p_entry_valid(1 << 63));
    }

    #[test]
    fn guest_addresses() {
        assert!(is_guest_va(0));
        assert!(is_guest_va(LOWER_HALF_END - 1));
        assert!(!is_guest_va(LOWER_HALF_END), "non-canonical");
        assert!(!is_guest_va(0xFFFF_7FFF_FFFF_FFFF), "non-canonical");
        assert!(!is_guest_va(HYPERVISOR_VIRT_START));
        assert!(!is_guest_va(HYPERVISOR_VIRT_END - 1));
        assert!(is_guest_va(HYPERVISOR_VIRT_END));
        assert!(is_guest_va(u64::MAX));
    }

    #[test]
    fn pat_entries() {
        let expected = [
            X86_MT_WB, X86_MT_WT, X86_MT_UCM, X86_MT_UC, X86_MT_WC, X86_MT_WP, X86_MT_UC, X86_MT_UC,
        ];
        for (i, mt) in expected.into_iter().enumerate() {
            assert_eq!(xen_pat_type(i as u8), mt, "PAT{i}");
        }
        let rebuilt = expected
            .iter()
            .enumerate()
            .fold(0u64, |acc, (i, &mt)| acc | (mt as u64) << (8 * i));
        assert_eq!(rebuilt, XEN_MSR_PAT);
    }
}
