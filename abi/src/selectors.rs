//! Flat segment selectors of the 64-bit PV ABI and the GDT entries Xen reserves for them
//! (`xen/include/public/arch-x86/xen-x86_64.h`, `arch-x86/xen.h`; spec §6.1).
//!
//! Guest kernel and guest user both run at CPL 3, so the "kernel" and "user" flat selectors are the
//! same ring-3 descriptors: 32-bit code 0xE023, data/stack 0xE02B and 64-bit code 0xE033 are GDT
//! entries 7172, 7173 and 7174 (the header's comments number them 260–262, counting from 256 at
//! the reserved area's start); the 64-bit data selector is the null selector. They live in the GDT
//! pages the guest may not supply, from [`FIRST_RESERVED_GDT_ENTRY`] (7168) up.

/// 32-bit ring-3 code (GDT entry 7172).
pub const FLAT_RING3_CS32: u16 = 0xE023;
/// 64-bit ring-3 code (GDT entry 7174).
pub const FLAT_RING3_CS64: u16 = 0xE033;
/// 32-bit ring-3 data (GDT entry 7173).
pub const FLAT_RING3_DS32: u16 = 0xE02B;
/// 64-bit ring-3 data: the null selector.
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// 32-bit ring-3 stack (GDT entry 7173).
pub const FLAT_RING3_SS32: u16 = 0xE02B;
/// 64-bit ring-3 stack (GDT entry 7173).
pub const FLAT_RING3_SS64: u16 = 0xE02B;

/// Guest-kernel 64-bit data.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// Guest-kernel 32-bit data.
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// Guest-kernel data.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// Guest-kernel 64-bit code.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// Guest-kernel 32-bit code.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// Guest-kernel code: `cs` at entry.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// Guest-kernel 64-bit stack.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// Guest-kernel 32-bit stack.
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// Guest-kernel stack: `ss` at entry.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

/// Guest-user 64-bit data.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// Guest-user 32-bit data.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// Guest-user data.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// Guest-user 64-bit code.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// Guest-user 32-bit code.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// Guest-user code.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// Guest-user 64-bit stack.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// Guest-user 32-bit stack.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// Guest-user stack.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

/// First GDT page (of 16) reserved for the hypervisor.
pub const FIRST_RESERVED_GDT_PAGE: usize = 14;
/// First reserved GDT byte.
pub const FIRST_RESERVED_GDT_BYTE: usize = FIRST_RESERVED_GDT_PAGE * 4096;
/// First reserved GDT entry (8-byte descriptors).
pub const FIRST_RESERVED_GDT_ENTRY: usize = FIRST_RESERVED_GDT_BYTE / 8;

/// Requested-privilege-level bits of a selector.
pub const SELECTOR_RPL_MASK: u16 = 3;

/// The GDT index a selector names (bits 15..3).
pub const fn selector_index(sel: u16) -> usize {
    (sel >> 3) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_xen_x86_64_h() {
        assert_eq!(FLAT_RING3_CS64, 0xE033);
        assert_eq!(FLAT_RING3_CS32, 0xE023);
        assert_eq!(
            [FLAT_RING3_DS32, FLAT_RING3_SS32, FLAT_RING3_SS64],
            [0xE02B; 3]
        );
        assert_eq!(FLAT_RING3_DS64, 0);
        assert_eq!((FLAT_KERNEL_CS, FLAT_KERNEL_SS), (0xE033, 0xE02B));
        assert_eq!(
            (FLAT_USER_CS, FLAT_USER_SS, FLAT_USER_CS32),
            (0xE033, 0xE02B, 0xE023)
        );
        assert_eq!(FIRST_RESERVED_GDT_PAGE, 14);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
    }

    #[test]
    fn flat_selectors_are_ring3_and_in_the_reserved_area() {
        for (sel, entry) in [
            (FLAT_RING3_CS32, 7172),
            (FLAT_RING3_DS32, 7173),
            (FLAT_RING3_CS64, 7174),
        ] {
            assert_eq!(sel & SELECTOR_RPL_MASK, 3, "{sel:#x}");
            assert_eq!(sel & 4, 0, "GDT, not LDT: {sel:#x}");
            assert_eq!(selector_index(sel), entry);
            assert!(entry >= FIRST_RESERVED_GDT_ENTRY);
        }
    }
}
