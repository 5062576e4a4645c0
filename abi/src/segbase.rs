//! `HYPERVISOR_set_segment_base` (hypercall 25, x86-64 only): loading FS/GS bases and the user GS
//! selector, which a ring-3 guest kernel cannot do itself (`SEGBASE_*` in
//! `xen/include/public/arch-x86/xen-x86_64.h`).
//!
//! `long set_segment_base(unsigned which, unsigned long base)`.

/// Set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// Set the GS base used in guest-user mode.
pub const SEGBASE_GS_USER: u32 = 1;
/// Set the GS base used in guest-kernel mode.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// Load the user `%gs` selector given in `base[15:0]`.
pub const SEGBASE_GS_USER_SEL: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen_x86_64_h() {
        assert_eq!(
            [
                SEGBASE_FS,
                SEGBASE_GS_USER,
                SEGBASE_GS_KERNEL,
                SEGBASE_GS_USER_SEL
            ],
            [0, 1, 2, 3]
        );
    }
}
