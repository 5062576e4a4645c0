//! ELF note types a PV kernel uses to describe itself to the domain builder
//! (`XEN_ELFNOTE_*` in `xen/include/public/elfnote.h`).
//!
//! The notes live in a `PT_NOTE` segment (or `SHT_NOTE` section) with owner name
//! [`XEN_ELFNOTE_NAME`] (`"Xen"`, NUL terminated). Each type's descriptor is either a native-size
//! integer (entry point, hypercall page, virt base, …) or a NUL-terminated string (guest OS,
//! loader, features, PAE mode). This module names the types; [`crate::pv_image`] parses them.

/// Owner name of Xen notes, with its terminating NUL (`namesz` = 4).
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen\0";

/// Legacy `__xen_guest` style info string (NUL-terminated).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// Virtual entry point (integer).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// Virtual address of the hypercall page the hypervisor fills (integer).
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// Virtual address at which the kernel expects pseudo-physical 0 (integer).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// Offset subtracted from ELF physical addresses (integer; legacy).
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// Xen version the kernel was built for (string, `"xen-3.0"`).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// Guest OS name (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// Guest OS version (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// Loader type (string, `"generic"`).
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// PAE support (string: `"yes"`, `"no"`, `"yes[extended-cr3]"`, `"bimodal"`).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// Features the kernel requires or supports (string, `|`-separated).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// Load the symbol table after the image (string, `"yes"`).
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// Lowest address the hypervisor may occupy (integer; 32-bit PAE guests).
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// Mask and value identifying valid L1 MFNs (integers).
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// The kernel supports a suspend-cancel return (integer).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// Virtual address at which the initial P2M list should be mapped (integer).
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// The kernel can take `mod_start` as a PFN (integer).
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// Bitmap of supported features (integer, 32 bits).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// 32-bit physical entry point for PVH boot (integer).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Physical relocation range for PVH boot.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;
/// Highest defined note type.
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_RELOC;

/// The C name of a note type, e.g. `"HYPERCALL_PAGE"`; `None` above [`XEN_ELFNOTE_MAX`].
pub const fn elfnote_name(note_type: u32) -> Option<&'static str> {
    Some(match note_type {
        XEN_ELFNOTE_INFO => "INFO",
        XEN_ELFNOTE_ENTRY => "ENTRY",
        XEN_ELFNOTE_HYPERCALL_PAGE => "HYPERCALL_PAGE",
        XEN_ELFNOTE_VIRT_BASE => "VIRT_BASE",
        XEN_ELFNOTE_PADDR_OFFSET => "PADDR_OFFSET",
        XEN_ELFNOTE_XEN_VERSION => "XEN_VERSION",
        XEN_ELFNOTE_GUEST_OS => "GUEST_OS",
        XEN_ELFNOTE_GUEST_VERSION => "GUEST_VERSION",
        XEN_ELFNOTE_LOADER => "LOADER",
        XEN_ELFNOTE_PAE_MODE => "PAE_MODE",
        XEN_ELFNOTE_FEATURES => "FEATURES",
        XEN_ELFNOTE_BSD_SYMTAB => "BSD_SYMTAB",
        XEN_ELFNOTE_HV_START_LOW => "HV_START_LOW",
        XEN_ELFNOTE_L1_MFN_VALID => "L1_MFN_VALID",
        XEN_ELFNOTE_SUSPEND_CANCEL => "SUSPEND_CANCEL",
        XEN_ELFNOTE_INIT_P2M => "INIT_P2M",
        XEN_ELFNOTE_MOD_START_PFN => "MOD_START_PFN",
        XEN_ELFNOTE_SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        XEN_ELFNOTE_PHYS32_ENTRY => "PHYS32_ENTRY",
        XEN_ELFNOTE_PHYS32_RELOC => "PHYS32_RELOC",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_elfnote_h() {
        let ids = [
            XEN_ELFNOTE_INFO,
            XEN_ELFNOTE_ENTRY,
            XEN_ELFNOTE_HYPERCALL_PAGE,
            XEN_ELFNOTE_VIRT_BASE,
            XEN_ELFNOTE_PADDR_OFFSET,
            XEN_ELFNOTE_XEN_VERSION,
            XEN_ELFNOTE_GUEST_OS,
            XEN_ELFNOTE_GUEST_VERSION,
            XEN_ELFNOTE_LOADER,
            XEN_ELFNOTE_PAE_MODE,
            XEN_ELFNOTE_FEATURES,
            XEN_ELFNOTE_BSD_SYMTAB,
            XEN_ELFNOTE_HV_START_LOW,
            XEN_ELFNOTE_L1_MFN_VALID,
            XEN_ELFNOTE_SUSPEND_CANCEL,
            XEN_ELFNOTE_INIT_P2M,
            XEN_ELFNOTE_MOD_START_PFN,
            XEN_ELFNOTE_SUPPORTED_FEATURES,
            XEN_ELFNOTE_PHYS32_ENTRY,
            XEN_ELFNOTE_PHYS32_RELOC,
        ];
        for (expected, id) in ids.into_iter().enumerate() {
            assert_eq!(id as usize, expected);
        }
    }

    #[test]
    fn names() {
        assert_eq!(elfnote_name(2), Some("HYPERCALL_PAGE"));
        assert_eq!(elfnote_name(18), Some("PHYS32_ENTRY"));
        assert!((0..=XEN_ELFNOTE_MAX).all(|t| elfnote_name(t).is_some()));
        assert_eq!(elfnote_name(XEN_ELFNOTE_MAX + 1), None);
        assert_eq!(XEN_ELFNOTE_NAME.len(), 4);
    }
}
