//! Domain identifiers (`domid_t`, `DOMID_*` in `xen/include/public/xen.h`).
//!
//! A domain id is 16 bits. Ids from [`DOMID_FIRST_RESERVED`] (0x7FF0) up are never real domains:
//! they name the caller, the I/O or Xen pseudo-domains, or mark "none". Real domains are numbered
//! from 0 (the initial domain) below 0x7FF0.

/// A domain id as the ABI carries it.
pub type DomId = u16;

/// First reserved id; every id at or above it is special.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// The calling domain (e.g. `foreigndom` "no foreign domain").
pub const DOMID_SELF: DomId = 0x7FF0;
/// The I/O pseudo-domain: owner of MMIO frames that may be mapped by privileged domains.
pub const DOMID_IO: DomId = 0x7FF1;
/// The Xen pseudo-domain: owner of hypervisor frames shared read-only with guests.
pub const DOMID_XEN: DomId = 0x7FF2;
/// The copy-on-write pseudo-domain (memory sharing).
pub const DOMID_COW: DomId = 0x7FF3;
/// "No domain".
pub const DOMID_INVALID: DomId = 0x7FF4;
/// "Any domain" (e.g. an unbound event-channel peer).
pub const DOMID_ANY: DomId = 0x7FF5;
/// The idle domain.
pub const DOMID_IDLE: DomId = 0x7FFF;
/// Mask of the meaningful bits of a domain id.
pub const DOMID_MASK: DomId = 0x7FFF;

/// True for ids that can name a real domain (below [`DOMID_FIRST_RESERVED`]).
pub const fn is_real_domid(id: DomId) -> bool {
    id < DOMID_FIRST_RESERVED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_xen_h() {
        assert_eq!(
            [
                DOMID_SELF,
                DOMID_IO,
                DOMID_XEN,
                DOMID_COW,
                DOMID_INVALID,
                DOMID_ANY,
                DOMID_IDLE
            ],
            [0x7FF0, 0x7FF1, 0x7FF2, 0x7FF3, 0x7FF4, 0x7FF5, 0x7FFF]
        );
        assert_eq!(DOMID_FIRST_RESERVED, DOMID_SELF);
    }

    #[test]
    fn reserved_ids_are_not_real() {
        assert!(is_real_domid(0));
        assert!(is_real_domid(0x7FEF));
        for id in [
            DOMID_SELF,
            DOMID_IO,
            DOMID_XEN,
            DOMID_COW,
            DOMID_INVALID,
            DOMID_ANY,
        ] {
            assert!(!is_real_domid(id), "{id:#x}");
        }
        assert!(!is_real_domid(DOMID_IDLE));
        assert!(!is_real_domid(u16::MAX));
    }
}
