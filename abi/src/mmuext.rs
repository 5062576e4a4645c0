//! `HYPERVISOR_mmuext_op` (hypercall 26): the request record and its command numbers (spec §4.1,
//! §4.2).
//!
//! `long mmuext_op(mmuext_op_t ops[], unsigned count, unsigned *pdone, unsigned foreigndom)`;
//! `count` carries the same continuation flag as `mmu_update`
//! ([`MMU_UPDATE_PREEMPTED`](crate::mmu::MMU_UPDATE_PREEMPTED)) and FD is the low 16 bits of
//! `foreigndom`.
//!
//! `struct mmuext_op` is 24 bytes: `cmd` (u32) at 0, 4 bytes of padding, then two 8-byte unions.
//! `arg1` is an MFN or a linear address; `arg2` is `nr_ents` (u32, its low half), a guest pointer
//! to a vCPU bitmap, or the source MFN. The accessors on [`MmuextOp`] name those readings.

use crate::wire::abi_struct;

/// Pin frame `arg1` as an L1 table (take a type reference, validate, mark pinned).
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// Pin as an L2 table.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// Pin as an L3 table.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// Pin as an L4 table.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// Unpin frame `arg1`.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// Install frame `arg1` as the kernel page-table base.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// Flush this CPU's TLB.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// Invalidate linear address `arg1` on this CPU.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// Flush the TLBs of the vCPUs in the bitmap at guest pointer `arg2`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// Invalidate `arg1` on the vCPUs in the bitmap at `arg2`.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// Flush the TLBs of every CPU the domain may have state on.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// Invalidate `arg1` on every CPU the domain may have state on.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// Write back and invalidate caches.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// Set the LDT: base `arg1` (page aligned), `arg2` entries.
pub const MMUEXT_SET_LDT: u32 = 13;
/// Install frame `arg1` as the user page-table base (0 clears it).
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// Zero frame `arg1`.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// Copy frame `arg2` (source) to frame `arg1`.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// Same as [`MMUEXT_FLUSH_CACHE`].
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// Removed superpage marking; Xen answers `-EOPNOTSUPP`.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// Removed superpage unmarking; Xen answers `-EOPNOTSUPP`.
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// Largest `nr_ents` accepted by [`MMUEXT_SET_LDT`] (a full 64 KiB LDT).
pub const MMUEXT_SET_LDT_MAX_ENTS: u32 = 8192;

abi_struct! {
    /// One `mmuext_op` request (`mmuext_op_t`).
    #[repr(C)]
    pub struct MmuextOp, size 24 {
        /// The command (`MMUEXT_*`).
        pub cmd: u32 = 0,
        /// First argument: an MFN or a linear address, by command.
        pub arg1: u64 = 8,
        /// Second argument: `nr_ents`, a vCPU-bitmap guest pointer, or the source MFN.
        pub arg2: u64 = 16,
    }
}

/// An `mmuext_op` command. Number 14 is unassigned (`-ENOSYS`), as is everything from 21 up.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmuextCmd {
    /// [`MMUEXT_PIN_L1_TABLE`].
    PinL1Table = MMUEXT_PIN_L1_TABLE,
    /// [`MMUEXT_PIN_L2_TABLE`].
    PinL2Table = MMUEXT_PIN_L2_TABLE,
    /// [`MMUEXT_PIN_L3_TABLE`].
    PinL3Table = MMUEXT_PIN_L3_TABLE,
    /// [`MMUEXT_PIN_L4_TABLE`].
    PinL4Table = MMUEXT_PIN_L4_TABLE,
    /// [`MMUEXT_UNPIN_TABLE`].
    UnpinTable = MMUEXT_UNPIN_TABLE,
    /// [`MMUEXT_NEW_BASEPTR`].
    NewBaseptr = MMUEXT_NEW_BASEPTR,
    /// [`MMUEXT_TLB_FLUSH_LOCAL`].
    TlbFlushLocal = MMUEXT_TLB_FLUSH_LOCAL,
    /// [`MMUEXT_INVLPG_LOCAL`].
    InvlpgLocal = MMUEXT_INVLPG_LOCAL,
    /// [`MMUEXT_TLB_FLUSH_MULTI`].
    TlbFlushMulti = MMUEXT_TLB_FLUSH_MULTI,
    /// [`MMUEXT_INVLPG_MULTI`].
    InvlpgMulti = MMUEXT_INVLPG_MULTI,
    /// [`MMUEXT_TLB_FLUSH_ALL`].
    TlbFlushAll = MMUEXT_TLB_FLUSH_ALL,
    /// [`MMUEXT_INVLPG_ALL`].
    InvlpgAll = MMUEXT_INVLPG_ALL,
    /// [`MMUEXT_FLUSH_CACHE`].
    FlushCache = MMUEXT_FLUSH_CACHE,
    /// [`MMUEXT_SET_LDT`].
    SetLdt = MMUEXT_SET_LDT,
    /// [`MMUEXT_NEW_USER_BASEPTR`].
    NewUserBaseptr = MMUEXT_NEW_USER_BASEPTR,
    /// [`MMUEXT_CLEAR_PAGE`].
    ClearPage = MMUEXT_CLEAR_PAGE,
    /// [`MMUEXT_COPY_PAGE`].
    CopyPage = MMUEXT_COPY_PAGE,
    /// [`MMUEXT_FLUSH_CACHE_GLOBAL`].
    FlushCacheGlobal = MMUEXT_FLUSH_CACHE_GLOBAL,
    /// [`MMUEXT_MARK_SUPER`].
    MarkSuper = MMUEXT_MARK_SUPER,
    /// [`MMUEXT_UNMARK_SUPER`].
    UnmarkSuper = MMUEXT_UNMARK_SUPER,
}

impl MmuextCmd {
    /// Every command, ascending.
    pub const ALL: [MmuextCmd; 20] = [
        MmuextCmd::PinL1Table,
        MmuextCmd::PinL2Table,
        MmuextCmd::PinL3Table,
        MmuextCmd::PinL4Table,
        MmuextCmd::UnpinTable,
        MmuextCmd::NewBaseptr,
        MmuextCmd::TlbFlushLocal,
        MmuextCmd::InvlpgLocal,
        MmuextCmd::TlbFlushMulti,
        MmuextCmd::InvlpgMulti,
        MmuextCmd::TlbFlushAll,
        MmuextCmd::InvlpgAll,
        MmuextCmd::FlushCache,
        MmuextCmd::SetLdt,
        MmuextCmd::NewUserBaseptr,
        MmuextCmd::ClearPage,
        MmuextCmd::CopyPage,
        MmuextCmd::FlushCacheGlobal,
        MmuextCmd::MarkSuper,
        MmuextCmd::UnmarkSuper,
    ];

    /// Decodes a command number; `None` for 14 and for 21 and up (answer `-ENOSYS`).
    pub const fn from_u32(cmd: u32) -> Option<MmuextCmd> {
        let mut i = 0;
        while i < MmuextCmd::ALL.len() {
            if MmuextCmd::ALL[i] as u32 == cmd {
                return Some(MmuextCmd::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The page-table level a PIN command types its frame as (1–4); `None` for other commands.
    pub const fn pin_level(self) -> Option<u8> {
        match self {
            MmuextCmd::PinL1Table => Some(1),
            MmuextCmd::PinL2Table => Some(2),
            MmuextCmd::PinL3Table => Some(3),
            MmuextCmd::PinL4Table => Some(4),
            _ => None,
        }
    }
}

impl MmuextOp {
    /// A request for `cmd` with its two arguments.
    pub const fn new(cmd: MmuextCmd, arg1: u64, arg2: u64) -> MmuextOp {
        MmuextOp {
            cmd: cmd as u32,
            arg1,
            arg2,
        }
    }

    /// The decoded command; `None` if `cmd` is not a known command.
    pub const fn command(&self) -> Option<MmuextCmd> {
        MmuextCmd::from_u32(self.cmd)
    }

    /// `arg1` read as an MFN.
    pub const fn mfn(&self) -> u64 {
        self.arg1
    }

    /// `arg1` read as a linear address.
    pub const fn linear_addr(&self) -> u64 {
        self.arg1
    }

    /// `arg2` read as `nr_ents` (the union's `unsigned int` member: the low 32 bits).
    pub const fn nr_ents(&self) -> u32 {
        self.arg2 as u32
    }

    /// `arg2` read as the guest pointer to a vCPU bitmap.
    pub const fn vcpumask(&self) -> u64 {
        self.arg2
    }

    /// `arg2` read as the source MFN of [`MMUEXT_COPY_PAGE`].
    pub const fn src_mfn(&self) -> u64 {
        self.arg2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;

    #[test]
    fn layout_is_24_bytes_with_padding_after_cmd() {
        assert_eq!(core::mem::size_of::<MmuextOp>(), 24);
        assert_eq!(core::mem::offset_of!(MmuextOp, cmd), 0);
        assert_eq!(core::mem::offset_of!(MmuextOp, arg1), 8);
        assert_eq!(core::mem::offset_of!(MmuextOp, arg2), 16);
        let mut bytes = [0xFFu8; 24];
        MmuextOp::new(MmuextCmd::SetLdt, 0x1000, 0xFFFF_FFFF_0000_0010)
            .write_to(&mut bytes)
            .unwrap();
        assert_eq!(
            &bytes[..8],
            &[13, 0, 0, 0, 0, 0, 0, 0],
            "cmd then zeroed padding"
        );
        let op = MmuextOp::read_from(&bytes).unwrap();
        assert_eq!(op.nr_ents(), 0x10, "nr_ents is the low half of arg2");
        assert_eq!(op.linear_addr(), 0x1000);
    }

    #[test]
    fn command_numbers_match_xen_h() {
        let expected: [(MmuextCmd, u32); 6] = [
            (MmuextCmd::PinL1Table, 0),
            (MmuextCmd::UnpinTable, 4),
            (MmuextCmd::SetLdt, 13),
            (MmuextCmd::NewUserBaseptr, 15),
            (MmuextCmd::FlushCacheGlobal, 18),
            (MmuextCmd::UnmarkSuper, 20),
        ];
        for (cmd, nr) in expected {
            assert_eq!(cmd as u32, nr, "{cmd:?}");
        }
    }

    #[test]
    fn decode_covers_0_to_20_except_14() {
        for nr in 0..64u32 {
            let decoded = MmuextCmd::from_u32(nr);
            if nr <= 20 && nr != 14 {
                assert_eq!(decoded.map(|c| c as u32), Some(nr));
            } else {
                assert_eq!(decoded, None, "{nr}");
            }
        }
        assert_eq!(MmuextCmd::from_u32(u32::MAX), None);
    }

    #[test]
    fn pin_levels() {
        assert_eq!(MmuextCmd::PinL1Table.pin_level(), Some(1));
        assert_eq!(MmuextCmd::PinL4Table.pin_level(), Some(4));
        assert_eq!(MmuextCmd::UnpinTable.pin_level(), None);
    }
}
