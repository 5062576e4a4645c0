//! `HYPERVISOR_mmu_update` (hypercall 1): the request record, its command decode, the
//! continuation flag on the count, and the `foreigndom` encoding (spec §3.1).
//!
//! `long mmu_update(const mmu_update_t reqs[], unsigned count, unsigned *pdone,
//! unsigned foreigndom)`; registers rdi, rsi, rdx, r10.
//!
//! Command decode: the public header documents `ptr[1:0]` as the command, but Xen decodes
//! `ptr & 7` ([`MMU_CMD_MASK`], the entry size minus one) and clears those three bits, so the entry
//! address is always 8-byte aligned and commands 4..7 are rejected (`-ENOSYS`). [`MmuUpdate::decode`]
//! does the same.
//!
//! `foreigndom` packs two domain ids ([`ForeignDom`]):
//!
//! | bits  | field |
//! |-------|-------|
//! | 15..0 | FD, the owner of the frames that new entries map ([`DOMID_SELF`](crate::domid::DOMID_SELF) = the caller) |
//! | 31..16| PFD + 1, the owner of the page tables (0 = the caller) |

use crate::domid::DomId;
use crate::wire::abi_struct;

/// `ptr & 7 == 0`: checked `*ptr = val`; `ptr` is the machine address of the entry.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `ptr & 7 == 1`: `M2P[ptr >> 12] = val`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `ptr & 7 == 2`: as normal, but the entry's current Accessed/Dirty bits are ORed into `val`.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `ptr & 7 == 3`: as normal, `val` never translated through FD's p2m.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;
/// Bits of `ptr` that carry the command.
pub const MMU_CMD_MASK: u64 = 7;

/// Bit 31 of `count`: the call is a continuation; `*pdone` holds the requests already done.
pub const MMU_UPDATE_PREEMPTED: u32 = 0x8000_0000;

abi_struct! {
    /// One `mmu_update` request (`mmu_update_t`).
    #[repr(C)]
    pub struct MmuUpdate, size 16 {
        /// Command in bits 2..0; the rest is the machine address of the entry (page-table
        /// commands) or of the frame (machphys).
        pub ptr: u64 = 0,
        /// The new entry, or the new M2P value for machphys.
        pub val: u64 = 8,
    }
}

/// The command of an `mmu_update` request (`ptr & 7`).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmuCmd {
    /// [`MMU_NORMAL_PT_UPDATE`].
    NormalPtUpdate = MMU_NORMAL_PT_UPDATE,
    /// [`MMU_MACHPHYS_UPDATE`].
    MachphysUpdate = MMU_MACHPHYS_UPDATE,
    /// [`MMU_PT_UPDATE_PRESERVE_AD`].
    PtUpdatePreserveAd = MMU_PT_UPDATE_PRESERVE_AD,
    /// [`MMU_PT_UPDATE_NO_TRANSLATE`].
    PtUpdateNoTranslate = MMU_PT_UPDATE_NO_TRANSLATE,
}

impl MmuCmd {
    /// The command in the low three bits of `ptr`; `None` for 4..7.
    pub const fn from_ptr(ptr: u64) -> Option<MmuCmd> {
        match ptr & MMU_CMD_MASK {
            MMU_NORMAL_PT_UPDATE => Some(MmuCmd::NormalPtUpdate),
            MMU_MACHPHYS_UPDATE => Some(MmuCmd::MachphysUpdate),
            MMU_PT_UPDATE_PRESERVE_AD => Some(MmuCmd::PtUpdatePreserveAd),
            MMU_PT_UPDATE_NO_TRANSLATE => Some(MmuCmd::PtUpdateNoTranslate),
            _ => None,
        }
    }
}

/// `ptr & 7` named a command that does not exist (4..7); Xen answers `-ENOSYS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownMmuCmd {
    /// The low three bits of `ptr`.
    pub bits: u64,
}

/// A decoded `mmu_update` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuRequest {
    /// What to do.
    pub cmd: MmuCmd,
    /// `ptr` with the command bits cleared: 8-byte aligned machine address.
    pub addr: u64,
    /// The value to store.
    pub val: u64,
}

impl MmuUpdate {
    /// A request for `cmd` on the machine address `addr` (its low three bits are replaced).
    pub const fn new(cmd: MmuCmd, addr: u64, val: u64) -> MmuUpdate {
        MmuUpdate {
            ptr: (addr & !MMU_CMD_MASK) | cmd as u64,
            val,
        }
    }

    /// Splits `ptr` into command and address the way Xen does (`ptr & 7`, then clear those bits).
    pub const fn decode(&self) -> Result<MmuRequest, UnknownMmuCmd> {
        match MmuCmd::from_ptr(self.ptr) {
            Some(cmd) => Ok(MmuRequest {
                cmd,
                addr: self.ptr & !MMU_CMD_MASK,
                val: self.val,
            }),
            None => Err(UnknownMmuCmd {
                bits: self.ptr & MMU_CMD_MASK,
            }),
        }
    }
}

/// Splits an `mmu_update`/`mmuext_op` `count` into the request count and the continuation flag
/// ([`MMU_UPDATE_PREEMPTED`]). A guest may set the flag itself.
pub const fn split_count(count: u32) -> (u32, bool) {
    (
        count & !MMU_UPDATE_PREEMPTED,
        count & MMU_UPDATE_PREEMPTED != 0,
    )
}

/// Bits of `foreigndom` holding FD.
pub const FOREIGNDOM_FD_MASK: u32 = 0xFFFF;
/// Shift of the PFD + 1 field in `foreigndom`.
pub const FOREIGNDOM_PFD_SHIFT: u32 = 16;

/// The two domains named by `foreigndom`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignDom {
    /// FD: owner of the frames new entries map (`DOMID_SELF` for the caller).
    pub fd: DomId,
    /// PFD: owner of the page tables being written; `None` means the caller.
    pub pfd: Option<DomId>,
}

impl ForeignDom {
    /// Decodes the 32-bit `foreigndom` argument.
    pub const fn decode(raw: u32) -> ForeignDom {
        let fd = (raw & FOREIGNDOM_FD_MASK) as DomId;
        let pfd = match (raw >> FOREIGNDOM_PFD_SHIFT) as DomId {
            0 => None,
            plus_one => Some(plus_one - 1),
        };
        ForeignDom { fd, pfd }
    }

    /// Encodes `self` as the `foreigndom` argument; `None` if `pfd` is `0xFFFF`, whose `+ 1`
    /// does not fit the 16-bit field.
    pub const fn encode(self) -> Option<u32> {
        let pfd_field = match self.pfd {
            None => 0,
            Some(pfd) if pfd < DomId::MAX => pfd as u32 + 1,
            Some(_) => return None,
        };
        Some((pfd_field << FOREIGNDOM_PFD_SHIFT) | self.fd as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domid::DOMID_SELF;
    use crate::wire::Wire;

    #[test]
    fn request_layout() {
        assert_eq!(core::mem::size_of::<MmuUpdate>(), 16);
        assert_eq!(core::mem::offset_of!(MmuUpdate, ptr), 0);
        assert_eq!(core::mem::offset_of!(MmuUpdate, val), 8);
        let mut bytes = [0u8; 16];
        MmuUpdate {
            ptr: 0x1122,
            val: 0x3344,
        }
        .write_to(&mut bytes)
        .unwrap();
        assert_eq!(&bytes[..2], &[0x22, 0x11]);
        assert_eq!(&bytes[8..10], &[0x44, 0x33]);
    }

    #[test]
    fn command_decode_uses_three_low_bits() {
        let base = 0x0012_3456_7000u64;
        for low in 0..8u64 {
            let req = MmuUpdate {
                ptr: base | 0x08 | low,
                val: 0xABC,
            };
            match (low, req.decode()) {
                (0, Ok(r)) => assert_eq!(r.cmd, MmuCmd::NormalPtUpdate),
                (1, Ok(r)) => assert_eq!(r.cmd, MmuCmd::MachphysUpdate),
                (2, Ok(r)) => assert_eq!(r.cmd, MmuCmd::PtUpdatePreserveAd),
                (3, Ok(r)) => assert_eq!(r.cmd, MmuCmd::PtUpdateNoTranslate),
                (4..=7, Err(e)) => assert_eq!(e, UnknownMmuCmd { bits: low }),
                (low, other) => panic!("ptr low bits {low}: {other:?}"),
            }
            if let Ok(r) = req.decode() {
                assert_eq!(r.addr, base | 0x08, "command bits cleared, bit 3 kept");
                assert_eq!(r.val, 0xABC);
            }
        }
    }

    #[test]
    fn new_then_decode_round_trips() {
        for cmd in [
            MmuCmd::NormalPtUpdate,
            MmuCmd::MachphysUpdate,
            MmuCmd::PtUpdatePreserveAd,
            MmuCmd::PtUpdateNoTranslate,
        ] {
            let req = MmuUpdate::new(cmd, 0xdead_beef_0007, 5);
            assert_eq!(
                req.decode(),
                Ok(MmuRequest {
                    cmd,
                    addr: 0xdead_beef_0000,
                    val: 5
                })
            );
        }
    }

    #[test]
    fn count_continuation_flag() {
        assert_eq!(split_count(5), (5, false));
        assert_eq!(split_count(0x8000_0005), (5, true));
        assert_eq!(split_count(MMU_UPDATE_PREEMPTED), (0, true));
        assert_eq!(split_count(0x7FFF_FFFF), (0x7FFF_FFFF, false));
    }

    #[test]
    fn foreigndom_decode() {
        assert_eq!(ForeignDom::decode(0), ForeignDom { fd: 0, pfd: None });
        assert_eq!(
            ForeignDom::decode(0x7FF0),
            ForeignDom {
                fd: DOMID_SELF,
                pfd: None
            }
        );
        assert_eq!(
            ForeignDom::decode(0x0001_0007),
            ForeignDom {
                fd: 7,
                pfd: Some(0)
            }
        );
        assert_eq!(
            ForeignDom::decode(0x0004_7FF0),
            ForeignDom {
                fd: DOMID_SELF,
                pfd: Some(3)
            }
        );
        assert_eq!(
            ForeignDom::decode(0xFFFF_FFFF),
            ForeignDom {
                fd: 0xFFFF,
                pfd: Some(0xFFFE)
            }
        );
    }

    #[test]
    fn foreigndom_round_trips() {
        for raw in [
            0u32,
            1,
            0x7FF0,
            0x0001_0000,
            0x0002_0003,
            0x7FF1_7FF2,
            0xFFFF_FFFF,
        ] {
            assert_eq!(ForeignDom::decode(raw).encode(), Some(raw), "{raw:#x}");
        }
        assert_eq!(
            ForeignDom {
                fd: 0,
                pfd: Some(0xFFFF)
            }
            .encode(),
            None
        );
    }
}
