//! `HYPERVISOR_callback_op` (hypercall 30): registering the guest's entry points
//! (`xen/include/public/callback.h`).
//!
//! `long callback_op(int cmd, const void *arg)`: [`CALLBACKOP_REGISTER`] takes a
//! [`CallbackRegister`], [`CALLBACKOP_UNREGISTER`] a [`CallbackUnregister`]. On x86-64 a callback
//! address is a plain 64-bit virtual address (`xen_callback_t`).

use crate::wire::abi_struct;

/// Register a callback.
pub const CALLBACKOP_REGISTER: u32 = 0;
/// Unregister a callback (`-EINVAL` for types that cannot be unregistered).
pub const CALLBACKOP_UNREGISTER: u32 = 1;

/// Event upcall.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Failsafe: a segment reload or `iret` failed on the way back to the guest.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// `syscall` from 64-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Old number of the sysenter callback (interface versions before 0x00030207).
pub const CALLBACKTYPE_SYSENTER_DEPRECATED: u16 = 3;
/// NMI.
pub const CALLBACKTYPE_NMI: u16 = 4;
/// `sysenter` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSENTER: u16 = 5;
/// `syscall` from 32-bit guest user mode.
pub const CALLBACKTYPE_SYSCALL32: u16 = 7;

/// [`CallbackRegister::flags`]: mask events on entry (ignored for event and NMI callbacks, which
/// always mask).
pub const CALLBACKF_MASK_EVENTS: u16 = 1 << 0;

abi_struct! {
    /// `struct callback_register`.
    #[repr(C)]
    pub struct CallbackRegister, size 16 {
        /// `CALLBACKTYPE_*` (Xen's field name is `type`).
        pub kind: u16 = 0,
        /// `CALLBACKF_*`.
        pub flags: u16 = 2,
        /// Entry point.
        pub address: u64 = 8,
    }
}

abi_struct! {
    /// `struct callback_unregister`.
    #[repr(C)]
    pub struct CallbackUnregister, size 4 {
        /// `CALLBACKTYPE_*` (Xen's field name is `type`).
        pub kind: u16 = 0,
        /// Unused.
        pub unused: u16 = 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;

    #[test]
    fn numbers_match_callback_h() {
        assert_eq!([CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER], [0, 1]);
        assert_eq!(
            [
                CALLBACKTYPE_EVENT,
                CALLBACKTYPE_FAILSAFE,
                CALLBACKTYPE_SYSCALL
            ],
            [0, 1, 2]
        );
        assert_eq!(
            [
                CALLBACKTYPE_NMI,
                CALLBACKTYPE_SYSENTER,
                CALLBACKTYPE_SYSCALL32
            ],
            [4, 5, 7]
        );
        assert_eq!(CALLBACKF_MASK_EVENTS, 1);
    }

    #[test]
    fn register_layout() {
        assert_eq!(core::mem::size_of::<CallbackRegister>(), 16);
        assert_eq!(core::mem::offset_of!(CallbackRegister, address), 8);
        let mut b = [0u8; 16];
        CallbackRegister {
            kind: CALLBACKTYPE_SYSCALL,
            flags: CALLBACKF_MASK_EVENTS,
            address: 0xFFFF_FFFF_8100_0000,
        }
        .write_to(&mut b)
        .unwrap();
        assert_eq!(&b[..8], &[2, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..], &0xFFFF_FFFF_8100_0000u64.to_le_bytes());
        assert_eq!(core::mem::size_of::<CallbackUnregister>(), 4);
    }
}
