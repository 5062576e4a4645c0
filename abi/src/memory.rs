//! `HYPERVISOR_memory_op` (hypercall 12): the sub-operations a PV kernel uses and their argument
//! records (`xen/include/public/memory.h`), plus the E820 entry format of the memory maps.
//!
//! `long memory_op(unsigned cmd, void *arg)`. For PV guests "GMFN" and "MFN" are the same thing
//! (PV is not translated). The reservation calls return the number of extents done; the queries
//! `XENMEM_maximum_ram_page`, `current_reservation` and `maximum_reservation` return their answer
//! in `rax` (the latter two take a pointer to a [`DomId`]).
//!
//! `cmd` also carries a continuation's start extent in its high bits ([`MEMOP_EXTENT_SHIFT`]):
//! bits 5..0 are the sub-operation ([`MEMOP_CMD_MASK`]). That split is Xen-internal
//! (`xen/include/xen/hypercall.h`), but a guest sees it in `rdi` after a continuation.

use crate::domid::DomId;
use crate::wire::{ShortBuffer, Wire, abi_struct, check_len};

/// Give the domain more memory: fills `extent_start` with new MFNs.
pub const XENMEM_INCREASE_RESERVATION: u32 = 0;
/// Give memory back: frees the GMFNs in `extent_start`.
pub const XENMEM_DECREASE_RESERVATION: u32 = 1;
/// Highest machine frame in the system (returned in `rax`).
pub const XENMEM_MAXIMUM_RAM_PAGE: u32 = 2;
/// Pages currently allocated to a domain (returned in `rax`).
pub const XENMEM_CURRENT_RESERVATION: u32 = 3;
/// Maximum pages a domain may have (returned in `rax`).
pub const XENMEM_MAXIMUM_RESERVATION: u32 = 4;
/// MFNs of the 2 MiB extents that make up the M2P ([`XenMachphysMfnList`]).
pub const XENMEM_MACHPHYS_MFN_LIST: u32 = 5;
/// Populate GPFNs with memory.
pub const XENMEM_POPULATE_PHYSMAP: u32 = 6;
/// Add a frame to the physmap (translated guests).
pub const XENMEM_ADD_TO_PHYSMAP: u32 = 7;
/// The domain's pseudo-physical memory map ([`XenMemoryMap`] of [`E820Entry`]).
pub const XENMEM_MEMORY_MAP: u32 = 9;
/// The machine memory map (privileged).
pub const XENMEM_MACHINE_MEMORY_MAP: u32 = 10;
/// Exchange extents atomically.
pub const XENMEM_EXCHANGE: u32 = 11;
/// Virtual address range of the M2P (`xen_machphys_mapping`).
pub const XENMEM_MACHPHYS_MAPPING: u32 = 12;
/// Set a domain's memory map (toolstack).
pub const XENMEM_SET_MEMORY_MAP: u32 = 13;
/// Highest GPFN of a domain.
pub const XENMEM_MAXIMUM_GPFN: u32 = 14;
/// Remove a frame from the physmap.
pub const XENMEM_REMOVE_FROM_PHYSMAP: u32 = 15;

/// Bits of `cmd` holding the sub-operation.
pub const MEMOP_CMD_MASK: u32 = (1 << MEMOP_EXTENT_SHIFT) - 1;
/// Shift of the continuation's start extent in `cmd`.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

abi_struct! {
    /// `struct xen_memory_reservation`.
    #[repr(C)]
    pub struct XenMemoryReservation, size 32 {
        /// Guest pointer to the array of extent base frames (in or out, by command).
        pub extent_start: u64 = 0,
        /// Number of extents.
        pub nr_extents: u64 = 8,
        /// Each extent is 2^extent_order pages.
        pub extent_order: u32 = 16,
        /// `XENMEMF_*` flags (address bits, NUMA node).
        pub mem_flags: u32 = 20,
        /// Target domain; unprivileged callers may name only `DOMID_SELF`.
        pub domid: DomId = 24,
    }
}

abi_struct! {
    /// `struct xen_machphys_mfn_list`.
    #[repr(C)]
    pub struct XenMachphysMfnList, size 24 {
        /// Capacity of `extent_start`.
        pub max_extents: u32 = 0,
        /// Guest pointer to the output array.
        pub extent_start: u64 = 8,
        /// Out: entries written.
        pub nr_extents: u32 = 16,
    }
}

abi_struct! {
    /// `struct xen_memory_map`.
    #[repr(C)]
    pub struct XenMemoryMap, size 16 {
        /// In: capacity of `buffer` in entries; out: entries written.
        pub nr_entries: u32 = 0,
        /// Guest pointer to an array of [`E820Entry`].
        pub buffer: u64 = 8,
    }
}

/// E820 type: usable RAM.
pub const E820_RAM: u32 = 1;
/// E820 type: reserved.
pub const E820_RESERVED: u32 = 2;
/// E820 type: ACPI tables, reclaimable.
pub const E820_ACPI: u32 = 3;
/// E820 type: ACPI non-volatile storage.
pub const E820_NVS: u32 = 4;
/// E820 type: unusable.
pub const E820_UNUSABLE: u32 = 5;

/// One memory-map entry in the BIOS INT 15h/E820 format: 20 bytes, packed (addr @0, size @8,
/// type @16). Not `repr(C)`: it only exists as bytes in guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub kind: u32,
}

/// Size of an encoded [`E820Entry`].
pub const E820_ENTRY_SIZE: usize = 20;

impl Wire for E820Entry {
    const SIZE: usize = E820_ENTRY_SIZE;

    fn read_from(bytes: &[u8]) -> Result<Self, ShortBuffer> {
        check_len(E820_ENTRY_SIZE, bytes.len())?;
        let word = |off: usize| {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&bytes[off..off + 8]);
            u64::from_le_bytes(raw)
        };
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&bytes[16..20]);
        Ok(E820Entry {
            addr: word(0),
            size: word(8),
            kind: u32::from_le_bytes(kind),
        })
    }

    fn write_to(&self, out: &mut [u8]) -> Result<(), ShortBuffer> {
        check_len(E820_ENTRY_SIZE, out.len())?;
        out[0..8].copy_from_slice(&self.addr.to_le_bytes());
        out[8..16].copy_from_slice(&self.size.to_le_bytes());
        out[16..20].copy_from_slice(&self.kind.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn numbers_match_memory_h() {
        assert_eq!(
            [
                XENMEM_INCREASE_RESERVATION,
                XENMEM_DECREASE_RESERVATION,
                XENMEM_MAXIMUM_RAM_PAGE
            ],
            [0, 1, 2]
        );
        assert_eq!(
            [XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_RESERVATION],
            [3, 4]
        );
        assert_eq!([XENMEM_MACHPHYS_MFN_LIST, XENMEM_POPULATE_PHYSMAP], [5, 6]);
        assert_eq!(
            [
                XENMEM_MEMORY_MAP,
                XENMEM_MACHINE_MEMORY_MAP,
                XENMEM_EXCHANGE
            ],
            [9, 10, 11]
        );
        assert_eq!(MEMOP_CMD_MASK, 0x3F);
    }

    #[test]
    fn layouts() {
        assert_eq!(size_of::<XenMemoryReservation>(), 32);
        assert_eq!(offset_of!(XenMemoryReservation, extent_order), 16);
        assert_eq!(offset_of!(XenMemoryReservation, mem_flags), 20);
        assert_eq!(offset_of!(XenMemoryReservation, domid), 24);
        assert_eq!(size_of::<XenMachphysMfnList>(), 24);
        assert_eq!(offset_of!(XenMachphysMfnList, nr_extents), 16);
        assert_eq!(size_of::<XenMemoryMap>(), 16);
        assert_eq!(offset_of!(XenMemoryMap, buffer), 8);
    }

    #[test]
    fn e820_entry_is_20_packed_bytes() {
        let e = E820Entry {
            addr: 0x10_0000,
            size: 0x3F0_0000,
            kind: E820_RAM,
        };
        let mut b = [0xFFu8; 24];
        e.write_to(&mut b).unwrap();
        assert_eq!(&b[..8], &0x10_0000u64.to_le_bytes());
        assert_eq!(&b[8..16], &0x3F0_0000u64.to_le_bytes());
        assert_eq!(&b[16..20], &[1, 0, 0, 0]);
        assert_eq!(&b[20..], &[0xFF; 4], "next entry untouched");
        assert_eq!(E820Entry::read_from(&b).unwrap(), e);
        assert!(E820Entry::read_from(&b[..19]).is_err());
    }
}
