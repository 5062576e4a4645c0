//! `shared_info` (x86-64, 3136 bytes as defined; it occupies one page) and the per-vCPU
//! `vcpu_info` inside it (spec §6.5, `xen/include/public/xen.h`, `arch-x86/xen.h`).
//!
//! The page belongs to the hypervisor; its machine address is in `start_info.shared_info` and the
//! guest maps it read-write. Both sides update it concurrently (event bits, upcall masks, time), so
//! live updates go through atomics at the offsets asserted here; the [`Wire`](crate::wire::Wire)
//! encodings serve initialisation and tests. Every `evtchn_upcall_mask` starts at 1.

use crate::wire::abi_struct;

/// vCPUs whose `vcpu_info` lives in `shared_info` (`XEN_LEGACY_MAX_VCPUS`).
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// Event-channel words (`sizeof(xen_ulong_t) * 8`): 64 × 64 = 4096 channels.
pub const EVTCHN_WORDS: usize = 64;

/// `vcpu_time_info.flags`: the TSC is stable across CPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `vcpu_time_info.flags`: the guest was stopped.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

abi_struct! {
    /// `struct vcpu_time_info` (32 bytes). `version` is odd while an update is in progress.
    #[repr(C)]
    pub struct VcpuTimeInfo, size 32 {
        /// Update counter (seqlock style).
        pub version: u32 = 0,
        /// Padding.
        pub pad0: u32 = 4,
        /// TSC at the last update.
        pub tsc_timestamp: u64 = 8,
        /// System time in ns at the last update.
        pub system_time: u64 = 16,
        /// TSC → ns multiplier (32.32 fixed point, after `tsc_shift`).
        pub tsc_to_system_mul: u32 = 24,
        /// TSC shift.
        pub tsc_shift: i8 = 28,
        /// `XEN_PVCLOCK_*`.
        pub flags: u8 = 29,
        /// Padding.
        pub pad1: [u8; 2] = 30,
    }
}

abi_struct! {
    /// `struct vcpu_info` (64 bytes).
    #[repr(C)]
    pub struct VcpuInfo, size 64 {
        /// Set by the hypervisor when an event is pending; cleared by the guest.
        pub evtchn_upcall_pending: u8 = 0,
        /// Guest's virtual interrupt flag, inverted: 1 = events masked.
        pub evtchn_upcall_mask: u8 = 1,
        /// One bit per `evtchn_pending` word with a pending, unmasked channel.
        pub evtchn_pending_sel: u64 = 8,
        /// `arch_vcpu_info.cr2`: faulting address of the last bounced page fault.
        pub arch_cr2: u64 = 16,
        /// `arch_vcpu_info.pad`.
        pub arch_pad: u64 = 24,
        /// Time information.
        pub time: VcpuTimeInfo = 32,
    }
}

abi_struct! {
    /// `struct arch_shared_info` for x86-64 (48 bytes).
    #[repr(C)]
    pub struct ArchSharedInfo, size 48 {
        /// Number of valid P2M entries.
        pub max_pfn: u64 = 0,
        /// Frame of the frame list list of the 3-level P2M tree.
        pub pfn_to_mfn_frame_list_list: u64 = 8,
        /// NMI reason bits.
        pub nmi_reason: u64 = 16,
        /// CR3 of the address space where `p2m_vaddr` is valid (0 = fields unused).
        pub p2m_cr3: u64 = 24,
        /// Virtual address of the linear P2M list.
        pub p2m_vaddr: u64 = 32,
        /// Incremented around P2M mapping changes (odd = in progress).
        pub p2m_generation: u64 = 40,
    }
}

abi_struct! {
    /// `struct shared_info` for x86-64.
    #[repr(C)]
    pub struct SharedInfo, size 3136 {
        /// Per-vCPU event and time state for vCPUs 0..32.
        pub vcpu_info: [VcpuInfo; 32] = 0,
        /// Pending bit per event channel.
        pub evtchn_pending: [u64; 64] = 2048,
        /// Mask bit per event channel.
        pub evtchn_mask: [u64; 64] = 2560,
        /// Wallclock update counter (odd = in progress).
        pub wc_version: u32 = 3072,
        /// Wallclock seconds (low 32 bits).
        pub wc_sec: u32 = 3076,
        /// Wallclock nanoseconds.
        pub wc_nsec: u32 = 3080,
        /// Wallclock seconds (high 32 bits).
        pub wc_sec_hi: u32 = 3084,
        /// Architecture part.
        pub arch: ArchSharedInfo = 3088,
    }
}

/// Byte offset of `vcpu_info[vcpu]` in `shared_info`; `None` past [`XEN_LEGACY_MAX_VCPUS`].
pub const fn vcpu_info_offset(vcpu: usize) -> Option<usize> {
    if vcpu < XEN_LEGACY_MAX_VCPUS {
        Some(vcpu * VcpuInfo::SIZE)
    } else {
        None
    }
}

impl SharedInfo {
    /// The initial page contents: all zero except every upcall mask set (events masked).
    pub fn initial() -> SharedInfo {
        let mut si = SharedInfo::default();
        for v in si.vcpu_info.iter_mut() {
            v.evtchn_upcall_mask = 1;
        }
        si
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Wire;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts() {
        assert_eq!(size_of::<VcpuTimeInfo>(), 32);
        assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
        assert_eq!(size_of::<VcpuInfo>(), 64);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
        assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
        assert_eq!(offset_of!(VcpuInfo, arch_cr2), 16);
        assert_eq!(offset_of!(VcpuInfo, time), 32);
        assert_eq!(size_of::<ArchSharedInfo>(), 48);
        assert_eq!(size_of::<SharedInfo>(), 3136);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
        assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
        assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
        assert_eq!(offset_of!(SharedInfo, arch), 3088);
    }

    #[test]
    fn initial_page_masks_every_vcpu() {
        let mut page = [0xAAu8; 4096];
        SharedInfo::initial().write_to(&mut page).unwrap();
        for vcpu in 0..XEN_LEGACY_MAX_VCPUS {
            let off = vcpu_info_offset(vcpu).unwrap();
            assert_eq!(page[off], 0, "upcall_pending of vCPU {vcpu}");
            assert_eq!(page[off + 1], 1, "upcall_mask of vCPU {vcpu}");
        }
        assert!(page[2048..3136].iter().all(|&b| b == 0));
        assert_eq!(vcpu_info_offset(31), Some(31 * 64));
        assert_eq!(vcpu_info_offset(32), None);
    }
}
