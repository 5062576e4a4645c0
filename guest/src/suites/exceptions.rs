//! Exceptions bounced to the kernel's handlers, and the hypercall entry path's own errors (spec
//! §6.2; §8.9 case 97): a #PF (error code, `rip`, and the faulting address in `vcpu_info`'s
//! `arch.cr2`), a #GP from a non-canonical access and from `iret` to a non-canonical `rip`
//! (XSA-7), a #UD, each resumed by the handler so the kernel carries on; a multicall; bad buffer
//! pointers (`-EFAULT`) and an unknown hypercall (`-ENOSYS`).
//!
//! Each exception comes from a probe of `crate::traps`, whose handler copies the bounce frame
//! into the record that [`last_trap`] reads; every test checks that exactly one exception was
//! caught, and which. A fault with no handler at all kills the domain, so it stays a separate
//! kernel (`xtask/src/tests_guest.rs`, `fault-guest`).

use abi::Errno;
use abi::console_io::CONSOLEIO_WRITE;
use abi::hypercall::Hypercall;
use abi::layout::MACH2PHYS_VIRT_START;
use abi::multicall::MulticallEntry;
use abi::selectors::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS};

use super::Page;
use super::ops::{Alias, LEAF_RW};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::hypercall::hypercall5;
use crate::traps::{
    NONCANONICAL_RIP, Probe, TrapRecord, last_trap, probe_iret_noncanonical, probe_read, probe_ud,
    probe_write,
};

/// shared_info, mapped while a test reads `vcpu_info[0].arch.cr2`.
static SHARED: Page = Page::new();
/// Unmapped: outside the builder's initial region (it ends a few MiB up).
const UNMAPPED: u64 = 0x4000_0000;
/// A VA in L4 slot 258, Xen's linear page table: present, supervisor-only.
const XEN_LINEAR: u64 = 0xFFFF_8100_0000_0000;
/// `vcpu_info[0].arch.cr2` in shared_info, in words.
const CR2_WORD: usize = 2;
/// #PF error code bits.
pub(super) const PF_PRESENT: u64 = 1;
pub(super) const PF_WRITE: u64 = 2;

/// The faulting address the hypervisor stored for vCPU 0's last #PF.
pub(super) fn guest_cr2(env: &Env) -> Result<u64, Fail> {
    let alias = Alias::new(env, &SHARED)?;
    let rc = alias.map((env.si.shared_info & !0xFFF) | LEAF_RW);
    ensure_eq!(rc, 0, "mapping shared_info");
    let cr2 = alias.read(CR2_WORD);
    alias.restore()?;
    Ok(cr2)
}

/// Runs `probe` (true if it faulted) and checks that it caught exactly one exception, of
/// `vector` at `rip` with error code `error`, bounced from kernel mode onto this stack.
pub(super) fn one_trap(
    probe: impl FnOnce() -> bool,
    vector: u64,
    rip: u64,
    error: u64,
) -> Result<TrapRecord, Fail> {
    let before = last_trap().count;
    let marker = 0u64;
    let here = (&raw const marker) as u64;
    ensure!(probe(), "no exception was raised");
    let r = last_trap();
    ensure_eq!(r.count, before + 1, "exceptions caught");
    ensure_eq!(r.vector, vector, "vector");
    ensure_eq!(r.rip, rip, "rip in the bounce frame");
    ensure_eq!(r.error, error, "error code");
    // Kernel mode: the flat kernel selectors, RPL cleared in CS (spec §6.2).
    ensure_eq!(
        r.cs & 0xFFFF,
        u64::from(FLAT_KERNEL_CS64 & !3),
        "cs in the bounce frame"
    );
    ensure_eq!(
        r.ss & 0xFFFF,
        u64::from(FLAT_KERNEL_SS),
        "ss in the bounce frame"
    );
    ensure!(
        r.rsp < here && here - r.rsp < 4096,
        "rsp {:#x} in the bounce frame is not just below this frame ({here:#x})",
        r.rsp
    );
    Ok(r)
}

/// A read of an unmapped address: #PF, error 0 (kernel-mode read of a not-present page), `rip`
/// the load, cr2 the address.
pub fn pf_unmapped_read_bounced(env: &Env) -> Outcome {
    one_trap(|| probe_read(UNMAPPED).is_none(), 14, Probe::Read.rip(), 0)?;
    ensure_eq!(guest_cr2(env)?, UNMAPPED, "vcpu_info arch.cr2");
    Ok(())
}

/// A write into the read-only M2P (L4 slot 256): #PF, error P|W (case 97).
pub fn pf_m2p_write_bounced(env: &Env) -> Outcome {
    let at = MACH2PHYS_VIRT_START + 8;
    // SAFETY: the M2P is mapped read-only, so the store faults and lands nowhere.
    let faulted = || unsafe { !probe_write(at, 0) };
    one_trap(faulted, 14, Probe::Write.rip(), PF_PRESENT | PF_WRITE)?;
    ensure_eq!(guest_cr2(env)?, at, "vcpu_info arch.cr2");
    Ok(())
}

/// A read in L4 slot 258 (Xen's supervisor-only linear page table): #PF, error P (case 97).
pub fn pf_xen_slot_read_bounced(env: &Env) -> Outcome {
    one_trap(
        || probe_read(XEN_LINEAR).is_none(),
        14,
        Probe::Read.rip(),
        PF_PRESENT,
    )?;
    ensure_eq!(guest_cr2(env)?, XEN_LINEAR, "vcpu_info arch.cr2");
    Ok(())
}

/// A load from a non-canonical address: #GP(0) at the load; cr2 is left alone.
pub fn gp_noncanonical_load_bounced(env: &Env) -> Outcome {
    probe_read(UNMAPPED);
    one_trap(|| probe_read(1 << 63).is_none(), 13, Probe::Read.rip(), 0)?;
    ensure_eq!(guest_cr2(env)?, UNMAPPED, "vcpu_info arch.cr2 after a #GP");
    Ok(())
}

/// `iret` to a non-canonical `rip`: #GP(0) bounced with that `rip` (XSA-7).
pub fn gp_iret_noncanonical_bounced(_env: &Env) -> Outcome {
    one_trap(probe_iret_noncanonical, 13, NONCANONICAL_RIP, 0)?;
    Ok(())
}

/// `ud2`: #UD, no error code, `rip` the instruction.
pub fn ud_bounced(_env: &Env) -> Outcome {
    one_trap(probe_ud, 6, Probe::Ud.rip(), 0)?;
    Ok(())
}

/// Raw hypercall `nr`.
fn raw(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: callers pass console writes, multicalls of console writes, or unknown numbers;
    // the hypervisor reads (never writes) the buffers, except a multicall's result words.
    unsafe { hypercall5(nr, a1, a2, a3, 0, 0) }
}

/// A multicall of two console writes: 0, and each entry's result 0.
pub fn multicall_two_entries(_env: &Env) -> Outcome {
    const MSGS: [&str; 2] = [
        "guest: info multicall entry 1\n",
        "guest: info multicall entry 2\n",
    ];
    let call = |m: &str| MulticallEntry {
        op: Hypercall::ConsoleIo.nr(),
        result: 99,
        args: [
            u64::from(CONSOLEIO_WRITE),
            m.len() as u64,
            m.as_ptr() as u64,
            0,
            0,
            0,
        ],
    };
    let mut calls = [call(MSGS[0]), call(MSGS[1])];
    let rc = raw(Hypercall::Multicall.nr(), calls.as_mut_ptr() as u64, 2, 0);
    ensure_eq!(rc, 0, "multicall rc");
    let result = |i: usize| {
        // SAFETY: `calls` is live; the hypervisor wrote the results during the call.
        unsafe { core::ptr::read_volatile(&raw const calls[i].result) }
    };
    let results = [result(0), result(1)];
    ensure_eq!(results, [0, 0], "entry results");
    Ok(())
}

/// Buffers the hypervisor cannot read: the hypervisor hole, an unmapped page (`-EFAULT`).
pub fn bad_buffer_pointers_efault(_env: &Env) -> Outcome {
    let efault = Errno::EFAULT.ret();
    let console = Hypercall::ConsoleIo.nr();
    let write = u64::from(CONSOLEIO_WRITE);
    ensure_eq!(
        raw(console, write, 8, MACH2PHYS_VIRT_START),
        efault,
        "console_io from the hole"
    );
    ensure_eq!(
        raw(console, write, 8, UNMAPPED),
        efault,
        "console_io from an unmapped page"
    );
    let multicall = Hypercall::Multicall.nr();
    ensure_eq!(
        raw(multicall, UNMAPPED, 1, 0),
        efault,
        "multicall list unmapped"
    );
    Ok(())
}

/// Hypercall 50 (`arch_2`, unused on x86) → `-ENOSYS`.
pub fn unknown_hypercall_enosys(_env: &Env) -> Outcome {
    ensure_eq!(raw(50, 0, 0, 0), Errno::ENOSYS.ret(), "hypercall 50");
    Ok(())
}
