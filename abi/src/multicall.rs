//! `HYPERVISOR_multicall` (hypercall 13): `multicall_entry`, 64 bytes (spec §6.2).
//!
//! `long multicall(multicall_entry_t call_list[], unsigned long nr_calls)`. Each entry names a
//! hypercall and its arguments; the hypervisor stores that call's return value in `result`. The
//! public header declares six arguments, Xen passes five (`args[5]` is unused). Only a vCPU still in
//! kernel mode continues the batch: an `iret` or a drop to user mode ends it (XSA-213).

use crate::wire::abi_struct;

/// Arguments Xen actually passes from a multicall entry (`args[0..5]`).
pub const MULTICALL_ARGS_USED: usize = 5;

abi_struct! {
    /// `struct multicall_entry`.
    #[repr(C)]
    pub struct MulticallEntry, size 64 {
        /// Hypercall number.
        pub op: u64 = 0,
        /// Return value, written by the hypervisor.
        pub result: u64 = 8,
        /// Arguments; only the first [`MULTICALL_ARGS_USED`] are passed.
        pub args: [u64; 6] = 16,
    }
}

/// Byte offset of `result` in an entry: where the hypervisor writes each call's return value.
pub const MULTICALL_RESULT_OFFSET: usize = 8;

const _: () = assert!(core::mem::offset_of!(MulticallEntry, result) == MULTICALL_RESULT_OFFSET);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<MulticallEntry>(), 64);
        assert_eq!(offset_of!(MulticallEntry, op), 0);
        assert_eq!(offset_of!(MulticallEntry, result), 8);
        assert_eq!(offset_of!(MulticallEntry, args), 16);
    }

    #[test]
    fn encoding() {
        let e = MulticallEntry {
            op: 14,
            result: 0,
            args: [1, 2, 3, 4, 5, 6],
        };
        let mut b = [0u8; 64];
        e.write_to(&mut b).unwrap();
        assert_eq!(b[0], 14);
        assert_eq!(b[16], 1);
        assert_eq!(b[56], 6);
        assert_eq!(MulticallEntry::read_from(&b).unwrap(), e);
    }
}
