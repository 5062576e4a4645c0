//! Hypercalls through the hypercall page, and typed wrappers for the ones the suites use.
//!
//! A 64-bit PV kernel calls `hypercall_page + 32 * nr` with the arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`; the result comes back in `rax` (spec §6.2). The stub saves `rcx`/`r11` around its
//! `syscall`; the argument registers may come back changed (a debug Xen poisons them), so every
//! call declares them clobbered, and `rcx`/`r11` too in case a hypervisor's stub differs.
//!
//! Results are the raw `rax`: `>= 0` success (or a count), `-errno` on failure.

use core::arch::asm;
use core::ptr;

use abi::hypercall::Hypercall;
use abi::hypercall_page::{HYPERCALL_PAGE_SIZE, HYPERCALL_STUB_SIZE, HYPERCALL_STUBS};
use abi::{MmuUpdate, MmuextOp};

unsafe extern "C" {
    /// The page named by XEN_ELFNOTE_HYPERCALL_PAGE (`entry.S`); the hypervisor fills it before
    /// the first instruction runs and nothing in the kernel writes it.
    static hypercall_page: [u8; HYPERCALL_PAGE_SIZE];
}

/// The hypercall page as the kernel sees it.
pub fn page() -> &'static [u8; HYPERCALL_PAGE_SIZE] {
    // SAFETY: `hypercall_page` is a 4 KiB, page-aligned object in the image, written only by the
    // hypervisor before entry; after that it is read-only for everyone, so a shared reference for
    // the kernel's lifetime is sound.
    unsafe { &hypercall_page }
}

/// Raw hypercall `nr` with five arguments.
///
/// # Safety
///
/// The arguments must be valid for hypercall `nr`: every guest pointer among them must point to
/// memory of the size the hypercall reads or writes, and whatever the hypercall changes (page
/// tables, memory reached through machine addresses, the domain's state) must not break what the
/// rest of the kernel relies on.
pub unsafe fn hypercall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    assert!(nr < HYPERCALL_STUBS as u64, "hypercall {nr} has no stub");
    let stub = page()
        .as_ptr()
        .wrapping_add(nr as usize * HYPERCALL_STUB_SIZE);
    let ret: i64;
    // SAFETY: `stub` is the hypervisor's stub for `nr` inside the hypercall page; it returns with
    // `ret` after restoring `rcx`/`r11`. The stack is ours (no red zone on this target). The caller
    // vouches for the arguments; memory may change, which the default `asm!` options allow.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            lateout("rax") ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// `console_io(CONSOLEIO_write, len, buf)`: writes `bytes` to the hypervisor console.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the hypervisor only reads `bytes.len()` bytes from `bytes`.
    unsafe {
        hypercall5(
            Hypercall::ConsoleIo.nr(),
            u64::from(abi::console_io::CONSOLEIO_WRITE),
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    }
}

/// `sched_op(SCHEDOP_shutdown, &{reason})`. Returns only if the hypervisor refused.
pub fn shutdown(reason: u32) -> i64 {
    let arg = abi::sched::SchedShutdown { reason };
    // SAFETY: `arg` is a live `struct sched_shutdown` the hypervisor only reads.
    unsafe {
        hypercall5(
            Hypercall::SchedOp.nr(),
            u64::from(abi::sched::SCHEDOP_SHUTDOWN),
            ptr::from_ref(&arg) as u64,
            0,
            0,
            0,
        )
    }
}

/// `xen_version(XENVER_version, NULL)`: `major << 16 | minor`.
pub fn xen_version() -> i64 {
    // SAFETY: XENVER_version takes no buffer.
    unsafe {
        hypercall5(
            Hypercall::XenVersion.nr(),
            u64::from(abi::version::XENVER_VERSION),
            0,
            0,
            0,
            0,
        )
    }
}

/// `vm_assist(cmd, type)`.
pub fn vm_assist(cmd: u32, kind: u32) -> i64 {
    // SAFETY: vm_assist takes no pointers; enabling or disabling an assist changes how the
    // hypervisor treats later faults and tables, never memory the kernel owns.
    unsafe {
        hypercall5(
            Hypercall::VmAssist.nr(),
            u64::from(cmd),
            u64::from(kind),
            0,
            0,
            0,
        )
    }
}

/// `mmu_update(reqs, reqs.len(), pdone, foreigndom)`.
///
/// # Safety
///
/// Every request must leave the kernel's page tables and memory in a state the kernel still runs
/// in: a raw write through a machine address must land in memory nothing else relies on, and a
/// page-table write must not unmap or alias anything in use.
pub unsafe fn mmu_update(reqs: &[MmuUpdate], pdone: Option<&mut u32>, foreigndom: u32) -> i64 {
    let pdone = pdone.map_or(0, |p| ptr::from_mut(p) as u64);
    // SAFETY: `reqs` is a live array of `reqs.len()` `mmu_update_t` (repr(C), 16 bytes) and
    // `pdone` is null or a live u32; the caller vouches for the effects of the requests.
    unsafe {
        hypercall5(
            Hypercall::MmuUpdate.nr(),
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            pdone,
            u64::from(foreigndom),
            0,
        )
    }
}

/// `mmuext_op(ops, ops.len(), pdone, foreigndom)`.
///
/// # Safety
///
/// As for [`mmu_update`]: the operations (pins, base-pointer switches, page copies, …) must not
/// break the kernel's own address space or memory.
pub unsafe fn mmuext_op(ops: &[MmuextOp], pdone: Option<&mut u32>, foreigndom: u32) -> i64 {
    let pdone = pdone.map_or(0, |p| ptr::from_mut(p) as u64);
    // SAFETY: `ops` is a live array of `ops.len()` `struct mmuext_op` (repr(C), 24 bytes) and
    // `pdone` is null or a live u32; the caller vouches for the effects of the operations.
    unsafe {
        hypercall5(
            Hypercall::MmuextOp.nr(),
            ops.as_ptr() as u64,
            ops.len() as u64,
            pdone,
            u64::from(foreigndom),
            0,
        )
    }
}

/// `update_va_mapping(va, pte, flags)`: sets the L1 entry that maps `va`.
///
/// # Safety
///
/// `va` must be a page the kernel can lose or alias: nothing may rely on what it mapped before,
/// and any reference into it must be treated as changed afterwards.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
    // SAFETY: no guest pointers beyond the optional vCPU bitmap in `flags`, which the caller
    // passes only as UVMF_LOCAL/UVMF_ALL here; the caller vouches for the mapping change.
    unsafe { hypercall5(Hypercall::UpdateVaMapping.nr(), va, pte, flags, 0, 0) }
}

/// `vcpu_op(cmd, vcpuid, arg)`.
///
/// # Safety
///
/// `arg` must be null or point to the argument record `cmd` reads (a `vcpu_guest_context` for
/// `VCPUOP_initialise`, whose register state must start a vCPU the kernel is prepared to run).
pub unsafe fn vcpu_op(cmd: u32, vcpuid: u32, arg: u64) -> i64 {
    // SAFETY: the caller vouches for `arg` and for what the vCPU will run.
    unsafe {
        hypercall5(
            Hypercall::VcpuOp.nr(),
            u64::from(cmd),
            u64::from(vcpuid),
            arg,
            0,
            0,
        )
    }
}

/// `vcpu_op(VCPUOP_is_up, vcpuid, NULL)`: 1, 0, or `-ENOENT` past the domain's vCPUs.
pub fn vcpu_is_up(vcpuid: u32) -> i64 {
    // SAFETY: VCPUOP_is_up takes no argument record.
    unsafe { vcpu_op(abi::vcpu_op::VCPUOP_IS_UP, vcpuid, 0) }
}

/// `sched_op(SCHEDOP_yield, NULL)`.
pub fn sched_yield() -> i64 {
    // SAFETY: SCHEDOP_yield takes no argument and changes nothing the kernel relies on.
    unsafe {
        hypercall5(
            Hypercall::SchedOp.nr(),
            u64::from(abi::sched::SCHEDOP_YIELD),
            0,
            0,
            0,
            0,
        )
    }
}

/// `sched_op(SCHEDOP_block, NULL)`: unmasks event delivery and blocks until an event (on
/// Argon, which has no event sources yet: until the next scheduling decision).
pub fn sched_block() -> i64 {
    // SAFETY: SCHEDOP_block takes no argument; the kernel binds no event channel, so unmasking
    // events delivers nothing.
    unsafe {
        hypercall5(
            Hypercall::SchedOp.nr(),
            u64::from(abi::sched::SCHEDOP_BLOCK),
            0,
            0,
            0,
            0,
        )
    }
}

/// Argon's audit hypercall: the number of frame-table discrepancies, or `-ENOSYS` elsewhere.
pub fn argon_audit() -> i64 {
    // SAFETY: the audit only reads the hypervisor's frame table.
    unsafe { hypercall5(abi::ARGON_OP_AUDIT, 0, 0, 0, 0, 0) }
}

/// Whether the hypervisor is Argon (`XENVER_extraversion` ends in `-argon`): for the few checks
/// whose behaviour is Argon's own (an event-less `SCHEDOP_block` only returns there).
pub fn is_argon() -> bool {
    let mut extra = [0u8; 16];
    // SAFETY: XENVER_extraversion writes at most 16 bytes into `extra`.
    let rc = unsafe {
        hypercall5(
            Hypercall::XenVersion.nr(),
            u64::from(abi::version::XENVER_EXTRAVERSION),
            extra.as_mut_ptr() as u64,
            0,
            0,
            0,
        )
    };
    let end = extra.iter().position(|&b| b == 0).unwrap_or(extra.len());
    rc == 0 && extra[..end].ends_with(b"-argon")
}
