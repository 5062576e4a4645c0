//! Hypercall numbers (`__HYPERVISOR_*` in `xen/include/public/xen.h`) and Argon's own.
//!
//! A 64-bit PV guest kernel puts the number in `rax` and executes `syscall` (spec §6.2). Xen's
//! table has [`NR_HYPERCALLS`] = 64 slots; numbers 0–42 and 48–55 (`arch_0..7`) are Xen's, 11 and
//! 43–47 are unassigned, 56–63 are unused by Xen. Argon takes slot 63, [`ARGON_OP_AUDIT`], for its
//! audit hypercall: inside the table (so the hypercall page has a stub for it) and outside every
//! range Xen assigns. [`Hypercall::from_u64`] decodes a guest's `rax`; anything it does not know
//! must be answered with `-ENOSYS`.

/// Slots in Xen's x86 hypercall table (`NR_hypercalls`); numbers at or above it are never valid.
pub const NR_HYPERCALLS: u64 = 64;

/// Argon's audit hypercall: checks the frame table's invariants for the calling domain. Not a Xen
/// number; a guest that runs on Xen gets `-ENOSYS` for it.
pub const ARGON_OP_AUDIT: u64 = 63;

const _: () = assert!(ARGON_OP_AUDIT < NR_HYPERCALLS);

/// A hypercall number. The names follow Xen's `__HYPERVISOR_<name>`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hypercall {
    /// `set_trap_table`: install the virtual IDT (array of `trap_info`).
    SetTrapTable = 0,
    /// `mmu_update`: batch of checked page-table writes (spec §3).
    MmuUpdate = 1,
    /// `set_gdt`: install GDT frames.
    SetGdt = 2,
    /// `stack_switch`: set the kernel stack for user → kernel transitions.
    StackSwitch = 3,
    /// `set_callbacks`: event, failsafe and syscall entry points (older form of `callback_op`).
    SetCallbacks = 4,
    /// `fpu_taskswitch`: set or clear CR0.TS.
    FpuTaskswitch = 5,
    /// `sched_op_compat`: the pre-3.0.2 scheduler call.
    SchedOpCompat = 6,
    /// `platform_op` (formerly `dom0_op`).
    PlatformOp = 7,
    /// `set_debugreg`.
    SetDebugreg = 8,
    /// `get_debugreg`.
    GetDebugreg = 9,
    /// `update_descriptor`: write one GDT/LDT descriptor.
    UpdateDescriptor = 10,
    /// `memory_op`: reservation and memory-map queries (`XENMEM_*`).
    MemoryOp = 12,
    /// `multicall`: a batch of hypercalls (`multicall_entry`).
    Multicall = 13,
    /// `update_va_mapping`: write the L1 entry mapping one VA, then flush (spec §4.4).
    UpdateVaMapping = 14,
    /// `set_timer_op`: one-shot timer.
    SetTimerOp = 15,
    /// `event_channel_op_compat`: the pre-3.0.2 event-channel call.
    EventChannelOpCompat = 16,
    /// `xen_version` (`XENVER_*`).
    XenVersion = 17,
    /// `console_io` (`CONSOLEIO_*`).
    ConsoleIo = 18,
    /// `physdev_op_compat`: the pre-3.0.2 physical-device call.
    PhysdevOpCompat = 19,
    /// `grant_table_op`.
    GrantTableOp = 20,
    /// `vm_assist` (`VMASST_*`).
    VmAssist = 21,
    /// `update_va_mapping_otherdomain`: `update_va_mapping` with a foreign frame owner.
    UpdateVaMappingOtherdomain = 22,
    /// `iret`: return from a bounced exception or event; x86 only, never returns.
    Iret = 23,
    /// `vcpu_op` (`VCPUOP_*`).
    VcpuOp = 24,
    /// `set_segment_base` (`SEGBASE_*`); x86-64 only.
    SetSegmentBase = 25,
    /// `mmuext_op`: pin, unpin, base pointers, flushes (spec §4).
    MmuextOp = 26,
    /// `xsm_op`.
    XsmOp = 27,
    /// `nmi_op`.
    NmiOp = 28,
    /// `sched_op` (`SCHEDOP_*`).
    SchedOp = 29,
    /// `callback_op` (`CALLBACKOP_*`).
    CallbackOp = 30,
    /// `xenoprof_op` (dropped from Xen 4.22).
    XenoprofOp = 31,
    /// `event_channel_op`.
    EventChannelOp = 32,
    /// `physdev_op`.
    PhysdevOp = 33,
    /// `hvm_op`.
    HvmOp = 34,
    /// `sysctl`.
    Sysctl = 35,
    /// `domctl`.
    Domctl = 36,
    /// `kexec_op`.
    KexecOp = 37,
    /// `tmem_op` (removed from Xen; always `-ENOSYS` there).
    TmemOp = 38,
    /// `argo_op`.
    ArgoOp = 39,
    /// `xenpmu_op`.
    XenpmuOp = 40,
    /// `dm_op`.
    DmOp = 41,
    /// `hypfs_op`.
    HypfsOp = 42,
    /// `arch_0`: architecture-specific (x86: `mca`).
    Arch0 = 48,
    /// `arch_1`: architecture-specific (x86: `paging_domctl_cont`).
    Arch1 = 49,
    /// `arch_2`: architecture-specific.
    Arch2 = 50,
    /// `arch_3`: architecture-specific.
    Arch3 = 51,
    /// `arch_4`: architecture-specific.
    Arch4 = 52,
    /// `arch_5`: architecture-specific.
    Arch5 = 53,
    /// `arch_6`: architecture-specific.
    Arch6 = 54,
    /// `arch_7`: architecture-specific.
    Arch7 = 55,
    /// Argon's audit hypercall ([`ARGON_OP_AUDIT`]); not Xen's.
    ArgonAudit = ARGON_OP_AUDIT,
}

impl Hypercall {
    /// Every hypercall number this enum knows, ascending.
    pub const ALL: [Hypercall; 51] = [
        Hypercall::SetTrapTable,
        Hypercall::MmuUpdate,
        Hypercall::SetGdt,
        Hypercall::StackSwitch,
        Hypercall::SetCallbacks,
        Hypercall::FpuTaskswitch,
        Hypercall::SchedOpCompat,
        Hypercall::PlatformOp,
        Hypercall::SetDebugreg,
        Hypercall::GetDebugreg,
        Hypercall::UpdateDescriptor,
        Hypercall::MemoryOp,
        Hypercall::Multicall,
        Hypercall::UpdateVaMapping,
        Hypercall::SetTimerOp,
        Hypercall::EventChannelOpCompat,
        Hypercall::XenVersion,
        Hypercall::ConsoleIo,
        Hypercall::PhysdevOpCompat,
        Hypercall::GrantTableOp,
        Hypercall::VmAssist,
        Hypercall::UpdateVaMappingOtherdomain,
        Hypercall::Iret,
        Hypercall::VcpuOp,
        Hypercall::SetSegmentBase,
        Hypercall::MmuextOp,
        Hypercall::XsmOp,
        Hypercall::NmiOp,
        Hypercall::SchedOp,
        Hypercall::CallbackOp,
        Hypercall::XenoprofOp,
        Hypercall::EventChannelOp,
        Hypercall::PhysdevOp,
        Hypercall::HvmOp,
        Hypercall::Sysctl,
        Hypercall::Domctl,
        Hypercall::KexecOp,
        Hypercall::TmemOp,
        Hypercall::ArgoOp,
        Hypercall::XenpmuOp,
        Hypercall::DmOp,
        Hypercall::HypfsOp,
        Hypercall::Arch0,
        Hypercall::Arch1,
        Hypercall::Arch2,
        Hypercall::Arch3,
        Hypercall::Arch4,
        Hypercall::Arch5,
        Hypercall::Arch6,
        Hypercall::Arch7,
        Hypercall::ArgonAudit,
    ];

    /// The number the guest puts in `rax`.
    pub const fn nr(self) -> u64 {
        self as u64
    }

    /// Decodes a guest's `rax`; `None` for numbers this enum does not name (answer `-ENOSYS`).
    pub const fn from_u64(nr: u64) -> Option<Hypercall> {
        let mut i = 0;
        while i < Hypercall::ALL.len() {
            if Hypercall::ALL[i] as u64 == nr {
                return Some(Hypercall::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// True for Xen's own numbers, false for Argon's.
    pub const fn is_xen(self) -> bool {
        !matches!(self, Hypercall::ArgonAudit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen_h() {
        let expected: [(Hypercall, u64); 12] = [
            (Hypercall::SetTrapTable, 0),
            (Hypercall::MmuUpdate, 1),
            (Hypercall::MemoryOp, 12),
            (Hypercall::Multicall, 13),
            (Hypercall::UpdateVaMapping, 14),
            (Hypercall::UpdateVaMappingOtherdomain, 22),
            (Hypercall::Iret, 23),
            (Hypercall::VcpuOp, 24),
            (Hypercall::MmuextOp, 26),
            (Hypercall::SchedOp, 29),
            (Hypercall::CallbackOp, 30),
            (Hypercall::Arch7, 55),
        ];
        for (h, nr) in expected {
            assert_eq!(h.nr(), nr, "{h:?}");
        }
    }

    #[test]
    fn decode_round_trips_and_rejects_gaps() {
        for nr in 0..200u64 {
            match Hypercall::from_u64(nr) {
                Some(h) => assert_eq!(h.nr(), nr),
                None => assert!(
                    nr == 11 || (43..=47).contains(&nr) || (56..=62).contains(&nr) || nr >= 64,
                    "{nr} should decode"
                ),
            }
        }
        assert_eq!(Hypercall::from_u64(u64::MAX), None);
    }

    #[test]
    fn all_is_strictly_ascending() {
        for pair in Hypercall::ALL.windows(2) {
            assert!(pair[0].nr() < pair[1].nr(), "{pair:?}");
        }
    }

    #[test]
    fn argon_audit_is_outside_xen_ranges() {
        let audit = Hypercall::ArgonAudit.nr();
        assert_eq!(audit, ARGON_OP_AUDIT);
        assert!(
            audit < NR_HYPERCALLS,
            "inside the table: the hypercall page has its stub"
        );
        assert!(!(0..=42).contains(&audit) && !(48..=55).contains(&audit));
        assert_eq!(
            Hypercall::from_u64(ARGON_OP_AUDIT),
            Some(Hypercall::ArgonAudit)
        );
        assert!(!Hypercall::ArgonAudit.is_xen());
        assert_eq!(Hypercall::ALL.iter().filter(|h| !h.is_xen()).count(), 1);
    }
}
