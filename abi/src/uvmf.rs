//! `update_va_mapping` flush flags (`UVMF_*` in `xen/include/public/xen.h`, spec §4.4).
//!
//! `flags & 3` ([`UVMF_FLUSHTYPE_MASK`]) selects the flush; `flags & !3` selects where:
//!
//! | `flags & 3` | flush | | `flags & !3` | target |
//! |---|---|---|---|---|
//! | 0 | none | | 0 (`UVMF_LOCAL`, `UVMF_MULTI` with a null pointer) | this CPU |
//! | 1 | whole TLB | | 4 (`UVMF_ALL`) | every CPU in the domain's dirty mask |
//! | 2 | one VA | | anything else | guest pointer to a vCPU bitmap |
//! | 3 | none (Xen treats it as 0) | | | |
//!
//! With no flush the target is never read, so a bad bitmap pointer is only an error (`-EFAULT`)
//! when a flush was asked for.

/// No flush.
pub const UVMF_NONE: u64 = 0;
/// Flush the whole TLB on the target set.
pub const UVMF_TLB_FLUSH: u64 = 1;
/// Invalidate only the updated VA on the target set.
pub const UVMF_INVLPG: u64 = 2;
/// Bits holding the flush type.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// Target the vCPUs in a bitmap whose guest pointer is ORed into the flags.
pub const UVMF_MULTI: u64 = 0;
/// Target this CPU only.
pub const UVMF_LOCAL: u64 = 0;
/// Target every CPU the domain may have TLB state on.
pub const UVMF_ALL: u64 = 4;

/// What to flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvmfFlush {
    /// Nothing (flush type 0, and the undefined type 3).
    None,
    /// The whole TLB.
    TlbFlush,
    /// The one VA that was updated.
    Invlpg,
}

/// Where to flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UvmfTarget {
    /// This CPU.
    Local,
    /// The domain's dirty CPU mask.
    All,
    /// The vCPUs whose bits are set in the bitmap at this guest address.
    Multi(u64),
}

/// Decoded `update_va_mapping` flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UvmfFlags {
    /// The flush type.
    pub flush: UvmfFlush,
    /// The target set; meaningless when `flush` is [`UvmfFlush::None`].
    pub target: UvmfTarget,
}

impl UvmfFlags {
    /// Decodes the `flags` argument.
    pub const fn decode(flags: u64) -> UvmfFlags {
        let flush = match flags & UVMF_FLUSHTYPE_MASK {
            UVMF_TLB_FLUSH => UvmfFlush::TlbFlush,
            UVMF_INVLPG => UvmfFlush::Invlpg,
            _ => UvmfFlush::None,
        };
        let target = match flags & !UVMF_FLUSHTYPE_MASK {
            UVMF_LOCAL => UvmfTarget::Local,
            UVMF_ALL => UvmfTarget::All,
            bitmap => UvmfTarget::Multi(bitmap),
        };
        UvmfFlags { flush, target }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_xen_h() {
        assert_eq!(
            [UVMF_NONE, UVMF_TLB_FLUSH, UVMF_INVLPG, UVMF_FLUSHTYPE_MASK],
            [0, 1, 2, 3]
        );
        assert_eq!([UVMF_MULTI, UVMF_LOCAL, UVMF_ALL], [0, 0, 4]);
    }

    #[test]
    fn decode_flush_types_and_targets() {
        let d = UvmfFlags::decode;
        assert_eq!(
            d(0),
            UvmfFlags {
                flush: UvmfFlush::None,
                target: UvmfTarget::Local
            }
        );
        assert_eq!(d(3).flush, UvmfFlush::None);
        assert_eq!(d(UVMF_TLB_FLUSH | UVMF_ALL).flush, UvmfFlush::TlbFlush);
        assert_eq!(d(UVMF_TLB_FLUSH | UVMF_ALL).target, UvmfTarget::All);
        assert_eq!(d(UVMF_INVLPG | UVMF_LOCAL).target, UvmfTarget::Local);
        assert_eq!(
            d(UVMF_INVLPG | UVMF_MULTI | 0x7000_1230),
            UvmfFlags {
                flush: UvmfFlush::Invlpg,
                target: UvmfTarget::Multi(0x7000_1230)
            }
        );
        assert_eq!(d(UVMF_TLB_FLUSH | 0x1004).target, UvmfTarget::Multi(0x1004));
    }
}
