//! `HYPERVISOR_xen_version` (hypercall 17): sub-operations, their buffers, and the feature bits
//! reported by `XENVER_get_features` (`xen/include/public/version.h`, `features.h`).
//!
//! `long xen_version(int cmd, void *arg)`. `XENVER_version` returns `major << 16 | minor` in `rax`;
//! `XENVER_pagesize` returns the page size; the string sub-operations fill fixed-size buffers
//! whose sizes are the `*_LEN` constants here.

use crate::wire::abi_struct;

/// Returns `major << 16 | minor`.
pub const XENVER_VERSION: u32 = 0;
/// Fills a 16-byte extraversion string (e.g. `".0"`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Fills a [`XenCompileInfo`].
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Fills a 1024-byte capabilities string (e.g. `"xen-3.0-x86_64 "`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// Fills a 64-byte changeset string.
pub const XENVER_CHANGESET: u32 = 4;
/// Fills a [`XenPlatformParameters`].
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// Fills a [`XenFeatureInfo`].
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the page size.
pub const XENVER_PAGESIZE: u32 = 7;
/// Fills the 16-byte domain handle (UUID).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Fills a 1024-byte hypervisor command line.
pub const XENVER_COMMANDLINE: u32 = 9;
/// Returns the build id (variable-size buffer).
pub const XENVER_BUILD_ID: u32 = 10;
/// Extraversion, variable-size buffer form.
pub const XENVER_EXTRAVERSION2: u32 = 11;
/// Capabilities, variable-size buffer form.
pub const XENVER_CAPABILITIES2: u32 = 12;
/// Changeset, variable-size buffer form.
pub const XENVER_CHANGESET2: u32 = 13;
/// Command line, variable-size buffer form.
pub const XENVER_COMMANDLINE2: u32 = 14;

/// Size of `xen_extraversion_t`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// Size of `xen_capabilities_info_t`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// Size of `xen_changeset_info_t`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// Size of `xen_domain_handle_t`.
pub const XEN_DOMAIN_HANDLE_LEN: usize = 16;
/// Size of `xen_commandline_t`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// The `XENVER_version` return value for `major.minor`.
pub const fn xenver_version(major: u16, minor: u16) -> u32 {
    (major as u32) << 16 | minor as u32
}

abi_struct! {
    /// `struct xen_compile_info`: NUL-padded strings.
    #[repr(C)]
    pub struct XenCompileInfo, size 144 {
        /// Compiler.
        pub compiler: [u8; 64] = 0,
        /// Built by.
        pub compile_by: [u8; 16] = 64,
        /// Build domain.
        pub compile_domain: [u8; 32] = 80,
        /// Build date.
        pub compile_date: [u8; 32] = 112,
    }
}

abi_struct! {
    /// `struct xen_platform_parameters`.
    #[repr(C)]
    pub struct XenPlatformParameters, size 8 {
        /// Lowest virtual address the hypervisor occupies.
        pub virt_start: u64 = 0,
    }
}

abi_struct! {
    /// `struct xen_feature_info`.
    #[repr(C)]
    pub struct XenFeatureInfo, size 8 {
        /// In: which 32-bit submap (only 0 exists, [`XENFEAT_NR_SUBMAPS`] = 1).
        pub submap_idx: u32 = 0,
        /// Out: the submap; bit n set = feature `XENFEAT_*` n is present.
        pub submap: u32 = 4,
    }
}

/// Guest may write its page tables directly (writable-pagetable emulation).
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Guest may write its descriptor tables directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Guest physical addresses are translated by the hypervisor (not PV).
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Guest kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// PAE page directories may live above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// `MMU_PT_UPDATE_PRESERVE_AD` is supported.
pub const XENFEAT_MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
/// Highmem assist (32-bit).
pub const XENFEAT_HIGHMEM_ASSIST: u32 = 6;
/// Grant mappings may use the PTE's available bits.
pub const XENFEAT_GNTTAB_MAP_AVAIL_BITS: u32 = 7;
/// HVM callback vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// HVM safe pvclock.
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
/// HVM PIRQs.
pub const XENFEAT_HVM_PIRQS: u32 = 10;
/// The domain is the hardware domain.
pub const XENFEAT_DOM0: u32 = 11;
/// Grant mappings are identity mapped.
pub const XENFEAT_GRANT_MAP_IDENTITY: u32 = 12;
/// `XENMEM_get_vnumainfo` is supported.
pub const XENFEAT_MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
/// Arm SMCCC is supported.
pub const XENFEAT_ARM_SMCCC_SUPPORTED: u32 = 14;
/// The Linux RSDP may be placed anywhere.
pub const XENFEAT_LINUX_RSDP_UNRESTRICTED: u32 = 15;
/// Guest memory is not direct mapped (Arm).
pub const XENFEAT_NOT_DIRECT_MAPPED: u32 = 16;
/// Guest memory is direct mapped (Arm).
pub const XENFEAT_DIRECT_MAPPED: u32 = 17;
/// Runstate area can be registered by physical address.
pub const XENFEAT_RUNSTATE_PHYS_AREA: u32 = 18;
/// vCPU time area can be registered by physical address.
pub const XENFEAT_VCPU_TIME_PHYS_AREA: u32 = 19;
/// Device-model MSI-X writes are all forwarded.
pub const XENFEAT_DM_MSIX_ALL_WRITES: u32 = 20;
/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn numbers_match_version_h() {
        assert_eq!(
            [XENVER_VERSION, XENVER_EXTRAVERSION, XENVER_COMPILE_INFO],
            [0, 1, 2]
        );
        assert_eq!(
            [
                XENVER_CAPABILITIES,
                XENVER_CHANGESET,
                XENVER_PLATFORM_PARAMETERS
            ],
            [3, 4, 5]
        );
        assert_eq!(
            [XENVER_GET_FEATURES, XENVER_PAGESIZE, XENVER_GUEST_HANDLE],
            [6, 7, 8]
        );
        assert_eq!(
            [XENVER_COMMANDLINE, XENVER_BUILD_ID, XENVER_COMMANDLINE2],
            [9, 10, 14]
        );
        assert_eq!(XENFEAT_MMU_PT_UPDATE_PRESERVE_AD, 5);
        assert_eq!(XENFEAT_DOM0, 11);
    }

    #[test]
    fn layouts_and_version_value() {
        assert_eq!(size_of::<XenCompileInfo>(), 144);
        assert_eq!(size_of::<XenPlatformParameters>(), 8);
        assert_eq!(size_of::<XenFeatureInfo>(), 8);
        assert_eq!(xenver_version(4, 17), 0x0004_0011);
    }
}
