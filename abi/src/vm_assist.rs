//! `HYPERVISOR_vm_assist` (hypercall 21): optional behaviours a PV guest turns on
//! (`VMASST_*` in `xen/include/public/xen.h`, spec §6.1).
//!
//! `long vm_assist(unsigned cmd, unsigned type)`. The enabled set is also a bitmap (bit n = type
//! n) in `vcpu_guest_context.vm_assist`. A 64-bit PV guest may enable exactly the types in
//! [`VMASST_PV64_VALID`]; anything else is `-EINVAL`.

/// Enable an assist.
pub const VMASST_CMD_ENABLE: u32 = 0;
/// Disable an assist.
pub const VMASST_CMD_DISABLE: u32 = 1;

/// 4 GiB segments (32-bit guests).
pub const VMASST_TYPE_4GB_SEGMENTS: u32 = 0;
/// Notify the guest of 4 GiB-segment emulation.
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u32 = 1;
/// Emulate guest writes to its own L1 page tables (spec §6.6).
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u32 = 2;
/// PAE page directories above 4 GiB (32-bit guests).
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u32 = 3;
/// Architectural IOPL semantics.
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u32 = 4;
/// Set a flag in the runstate area while it is being updated.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
/// Strict M2P: L4 slot 256 (the M2P) is absent from user page tables.
pub const VMASST_TYPE_M2P_STRICT: u32 = 32;

/// Bitmap of the assists a 64-bit PV guest may enable.
pub const VMASST_PV64_VALID: u64 = (1 << VMASST_TYPE_4GB_SEGMENTS)
    | (1 << VMASST_TYPE_4GB_SEGMENTS_NOTIFY)
    | (1 << VMASST_TYPE_WRITABLE_PAGETABLES)
    | (1 << VMASST_TYPE_PAE_EXTENDED_CR3)
    | (1 << VMASST_TYPE_ARCHITECTURAL_IOPL)
    | (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG)
    | (1 << VMASST_TYPE_M2P_STRICT);

/// True if a 64-bit PV guest may enable assist `kind`.
pub const fn vmasst_valid_pv64(kind: u32) -> bool {
    kind < 64 && VMASST_PV64_VALID & (1 << kind) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen_h() {
        assert_eq!([VMASST_CMD_ENABLE, VMASST_CMD_DISABLE], [0, 1]);
        assert_eq!(VMASST_TYPE_WRITABLE_PAGETABLES, 2);
        assert_eq!(VMASST_TYPE_RUNSTATE_UPDATE_FLAG, 5);
        assert_eq!(VMASST_TYPE_M2P_STRICT, 32);
    }

    #[test]
    fn pv64_valid_set() {
        let valid: [u32; 7] = [0, 1, 2, 3, 4, 5, 32];
        for kind in 0..100u32 {
            assert_eq!(
                vmasst_valid_pv64(kind),
                valid.contains(&kind),
                "type {kind}"
            );
        }
        assert!(!vmasst_valid_pv64(u32::MAX));
    }
}
