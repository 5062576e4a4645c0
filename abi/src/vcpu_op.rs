//! `HYPERVISOR_vcpu_op` (hypercall 24): commands and argument records
//! (`xen/include/public/vcpu.h`).
//!
//! `long vcpu_op(int cmd, unsigned vcpuid, void *extra_args)`. A secondary vCPU is started with
//! `VCPUOP_initialise` (argument: a [`VcpuGuestContext`](crate::vcpu::VcpuGuestContext)) followed
//! by `VCPUOP_up`; each vCPU can be initialised once.

use crate::wire::abi_struct;

/// Set a vCPU's initial context (`vcpu_guest_context`); once per vCPU.
pub const VCPUOP_INITIALISE: u32 = 0;
/// Make an initialised vCPU runnable.
pub const VCPUOP_UP: u32 = 1;
/// Make a vCPU non-runnable.
pub const VCPUOP_DOWN: u32 = 2;
/// Returns 1 if the vCPU is up.
pub const VCPUOP_IS_UP: u32 = 3;
/// Read a [`VcpuRunstateInfo`].
pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
/// Register guest memory the hypervisor keeps a [`VcpuRunstateInfo`] in (virtual address).
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
/// Start the periodic timer ([`VcpuSetPeriodicTimer`]).
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
/// Stop the periodic timer.
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
/// Arm the single-shot timer ([`VcpuSetSingleshotTimer`]).
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
/// Disarm the single-shot timer.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
/// Move the vCPU's `vcpu_info` into a guest page ([`VcpuRegisterVcpuInfo`]); once per vCPU.
pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
/// Send an NMI to the vCPU.
pub const VCPUOP_SEND_NMI: u32 = 11;
/// Read the physical CPU id under a pinned vCPU.
pub const VCPUOP_GET_PHYSID: u32 = 12;
/// Register a secondary copy of the vCPU time info (virtual address).
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;
/// Register the runstate area by guest-physical address.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u32 = 14;
/// Register the vCPU time area by guest-physical address.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u32 = 15;

/// [`VcpuSetSingleshotTimer::flags`]: the timeout must be in the future.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;

/// Runstate: running on a physical CPU.
pub const RUNSTATE_RUNNING: i32 = 0;
/// Runstate: runnable, not running.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// Runstate: blocked (idle).
pub const RUNSTATE_BLOCKED: i32 = 2;
/// Runstate: neither runnable nor blocked (offline, paused).
pub const RUNSTATE_OFFLINE: i32 = 3;

abi_struct! {
    /// `struct vcpu_register_vcpu_info`.
    #[repr(C)]
    pub struct VcpuRegisterVcpuInfo, size 16 {
        /// Guest frame that will hold the `vcpu_info`.
        pub mfn: u64 = 0,
        /// Offset in that frame; the 64-byte `vcpu_info` must not cross the page end.
        pub offset: u32 = 8,
        /// Unused.
        pub rsvd: u32 = 12,
    }
}

abi_struct! {
    /// `struct vcpu_set_periodic_timer`.
    #[repr(C)]
    pub struct VcpuSetPeriodicTimer, size 8 {
        /// Period in nanoseconds.
        pub period_ns: u64 = 0,
    }
}

abi_struct! {
    /// `struct vcpu_set_singleshot_timer`.
    #[repr(C)]
    pub struct VcpuSetSingleshotTimer, size 16 {
        /// Absolute system time of expiry, ns.
        pub timeout_abs_ns: u64 = 0,
        /// `VCPU_SSHOTTMR_*`.
        pub flags: u32 = 8,
    }
}

abi_struct! {
    /// `struct vcpu_runstate_info`.
    #[repr(C)]
    pub struct VcpuRunstateInfo, size 48 {
        /// Current `RUNSTATE_*`.
        pub state: i32 = 0,
        /// System time the current state was entered, ns.
        pub state_entry_time: u64 = 8,
        /// Time spent in each `RUNSTATE_*`, ns.
        pub time: [u64; 4] = 16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn numbers_match_vcpu_h() {
        assert_eq!(
            [VCPUOP_INITIALISE, VCPUOP_UP, VCPUOP_DOWN, VCPUOP_IS_UP],
            [0, 1, 2, 3]
        );
        assert_eq!(VCPUOP_GET_RUNSTATE_INFO, 4);
        assert_eq!(VCPUOP_SET_PERIODIC_TIMER, 6);
        assert_eq!(VCPUOP_STOP_SINGLESHOT_TIMER, 9);
        assert_eq!(VCPUOP_REGISTER_VCPU_INFO, 10);
        assert_eq!(VCPUOP_SEND_NMI, 11);
        assert_eq!(VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA, 15);
    }

    #[test]
    fn layouts() {
        assert_eq!(size_of::<VcpuRegisterVcpuInfo>(), 16);
        assert_eq!(core::mem::offset_of!(VcpuRegisterVcpuInfo, offset), 8);
        assert_eq!(size_of::<VcpuSetPeriodicTimer>(), 8);
        assert_eq!(size_of::<VcpuSetSingleshotTimer>(), 16);
        assert_eq!(size_of::<VcpuRunstateInfo>(), 48);
        assert_eq!(core::mem::offset_of!(VcpuRunstateInfo, time), 16);
    }
}
