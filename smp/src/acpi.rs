//! Finding the MADT: the `acpi` crate scans the BIOS areas for the RSDP (EBDA, then
//! 0xE0000–0xFFFFF), follows the RSDT or XSDT and validates each table, all through an
//! [`AcpiHandler`] over the early direct map. The MADT's bytes are then handed to the pure parser
//! in [`crate::madt`]. Bare-metal only.
//!
//! Invariant: the handler never returns a mapping outside the direct map. A physical range the
//! direct map does not cover is "mapped" onto a static zero page, so the crate sees an invalid
//! signature and skips it instead of reading unmapped memory.

use core::ptr::NonNull;

use acpi::{AcpiHandler, AcpiTables, PhysicalMapping, madt::Madt};

const ZERO_LEN: usize = 4096;

#[repr(C, align(4096))]
struct ZeroPage([u8; ZERO_LEN]);

static ZERO_PAGE: ZeroPage = ZeroPage([0; ZERO_LEN]);

/// Maps ACPI tables through the direct map; unmapping is a no-op.
#[derive(Clone, Copy, Debug)]
pub struct DirectMapHandler;

impl AcpiHandler for DirectMapHandler {
    unsafe fn map_physical_region<T>(&self, pa: usize, size: usize) -> PhysicalMapping<Self, T> {
        let end = (pa as u64).checked_add(size as u64);
        let va = end
            .filter(|&end| end > 0 && boot::arch::phys_to_virt(end - 1).is_some())
            .and_then(|_| boot::arch::phys_to_virt(pa as u64));
        let (ptr, len) = match va.and_then(|v| NonNull::new(v as *mut T)) {
            Some(p) => (p, size),
            None => (NonNull::from(&ZERO_PAGE).cast::<T>(), size.min(ZERO_LEN)),
        };
        // SAFETY: `ptr` is either the direct-map alias of `[pa, pa + size)` (checked above), which
        // stays mapped for the hypervisor's life, or the static zero page with `len` clipped to it.
        unsafe { PhysicalMapping::new(pa, ptr, len, len, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Why no MADT was found.
#[derive(Debug)]
pub enum FindError {
    /// The crate's error (no RSDP, a bad RSDT/XSDT, no MADT...).
    Acpi(acpi::AcpiError),
    /// The MADT lies outside the direct map.
    Unmapped,
}

/// The MADT's bytes, header included, and its physical address.
///
/// The slice aliases firmware memory through the direct map; it stays valid as long as that
/// memory is not reused (ACPI tables sit in reserved or ACPI memory, which the frame allocator
/// never hands out).
///
/// # Safety
///
/// Must run on a BIOS-booted machine (the EBDA pointer and the 0xE0000 area are firmware's), with
/// the early direct map in place.
pub unsafe fn find_madt() -> Result<(&'static [u8], u64), FindError> {
    // SAFETY: BIOS platform (caller's contract); the handler only hands out direct-map aliases.
    let found = unsafe { AcpiTables::search_for_rsdp_bios(DirectMapHandler) };
    let tables = found.map_err(FindError::Acpi)?;
    let madt = tables.find_table::<Madt>().map_err(FindError::Acpi)?;
    let len = madt.region_length();
    let pa = madt.physical_start() as u64;
    let va = boot::arch::phys_to_virt(pa).ok_or(FindError::Unmapped)?;
    if core::ptr::eq(
        madt.virtual_start().as_ptr().cast::<u8>(),
        ZERO_PAGE.0.as_ptr(),
    ) {
        return Err(FindError::Unmapped);
    }
    // SAFETY: the crate validated (signature, checksum) `len` bytes at this direct-map address,
    // which the handler checked lies inside the direct map; firmware tables are never written.
    let bytes = unsafe { core::slice::from_raw_parts(va as *const u8, len) };
    Ok((bytes, pa))
}
