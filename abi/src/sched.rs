//! `HYPERVISOR_sched_op` (hypercall 29): commands, shutdown reasons and argument records
//! (`xen/include/public/sched.h`).
//!
//! `long sched_op(int cmd, void *arg)`. `SCHEDOP_yield` and `SCHEDOP_block` take no argument;
//! `SCHEDOP_shutdown` and `SCHEDOP_shutdown_code` take a [`SchedShutdown`], `SCHEDOP_poll` a
//! [`SchedPoll`], `SCHEDOP_remote_shutdown` a [`SchedRemoteShutdown`].

use crate::domid::DomId;
use crate::wire::abi_struct;

/// Give up the CPU.
pub const SCHEDOP_YIELD: u32 = 0;
/// Block until an event arrives (atomically re-enables event delivery first).
pub const SCHEDOP_BLOCK: u32 = 1;
/// Stop every vCPU of the domain with a [`SchedShutdown`] reason.
pub const SCHEDOP_SHUTDOWN: u32 = 2;
/// Block until one of a set of event channels is pending, or a timeout.
pub const SCHEDOP_POLL: u32 = 3;
/// Shut another domain down (privileged).
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
/// Record the shutdown code to report if the domain later crashes.
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
/// Arm or disarm a domain watchdog.
pub const SCHEDOP_WATCHDOG: u32 = 6;
/// Temporarily pin a vCPU to a physical CPU (hardware domain).
pub const SCHEDOP_PIN_OVERRIDE: u32 = 7;

/// Shutdown reason: exited normally; clean up and kill.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// Shutdown reason: clean up, kill, restart.
pub const SHUTDOWN_REBOOT: u32 = 1;
/// Shutdown reason: clean up, save suspend state, kill.
pub const SHUTDOWN_SUSPEND: u32 = 2;
/// Shutdown reason: the guest crashed.
pub const SHUTDOWN_CRASH: u32 = 3;
/// Shutdown reason: the watchdog expired.
pub const SHUTDOWN_WATCHDOG: u32 = 4;
/// Shutdown reason: soft reset (keep memory, restart).
pub const SHUTDOWN_SOFT_RESET: u32 = 5;
/// Largest valid shutdown reason.
pub const SHUTDOWN_MAX: u32 = SHUTDOWN_SOFT_RESET;

abi_struct! {
    /// `struct sched_shutdown`.
    #[repr(C)]
    pub struct SchedShutdown, size 4 {
        /// A `SHUTDOWN_*` reason.
        pub reason: u32 = 0,
    }
}

abi_struct! {
    /// `struct sched_poll`.
    #[repr(C)]
    pub struct SchedPoll, size 24 {
        /// Guest pointer to an array of event-channel ports (u32 each).
        pub ports: u64 = 0,
        /// Number of ports.
        pub nr_ports: u32 = 8,
        /// Absolute system-time timeout in ns; 0 = none.
        pub timeout: u64 = 16,
    }
}

abi_struct! {
    /// `struct sched_remote_shutdown`.
    #[repr(C)]
    pub struct SchedRemoteShutdown, size 8 {
        /// The domain to shut down.
        pub domain_id: DomId = 0,
        /// A `SHUTDOWN_*` reason.
        pub reason: u32 = 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn numbers_match_sched_h() {
        assert_eq!(
            [
                SCHEDOP_YIELD,
                SCHEDOP_BLOCK,
                SCHEDOP_SHUTDOWN,
                SCHEDOP_POLL,
                SCHEDOP_REMOTE_SHUTDOWN,
                SCHEDOP_SHUTDOWN_CODE,
                SCHEDOP_WATCHDOG,
                SCHEDOP_PIN_OVERRIDE
            ],
            [0, 1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            [
                SHUTDOWN_POWEROFF,
                SHUTDOWN_REBOOT,
                SHUTDOWN_SUSPEND,
                SHUTDOWN_CRASH,
                SHUTDOWN_WATCHDOG,
                SHUTDOWN_SOFT_RESET
            ],
            [0, 1, 2, 3, 4, 5]
        );
        assert_eq!(SHUTDOWN_MAX, 5);
    }

    #[test]
    fn layouts() {
        assert_eq!(size_of::<SchedShutdown>(), 4);
        assert_eq!(size_of::<SchedPoll>(), 24);
        assert_eq!(offset_of!(SchedPoll, nr_ports), 8);
        assert_eq!(offset_of!(SchedPoll, timeout), 16);
        assert_eq!(size_of::<SchedRemoteShutdown>(), 8);
        assert_eq!(offset_of!(SchedRemoteShutdown, reason), 4);
    }
}
