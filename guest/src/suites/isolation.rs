//! Isolation between domains: what an unprivileged domain may not do to the frames of the
//! domains running beside it (spec §3.2–3.4, §8.1 cases 12/14, §8.2 cases 17/18, §8.4 case 51).
//!
//! These run first in the `tests` suite of a domain that is not the initial domain (`suites`),
//! so domain 0 is still running: its frames are found through the read-only M2P, whose entries
//! for another domain's frames are valid PFNs that this domain's P2M does not map back. Every
//! attempt must fail with Xen's error number and change nothing: afterwards this domain's own
//! tables still work, and domain 0 — which runs its own suite and audit meanwhile — must pass.

use abi::domid::DOMID_SELF;
use abi::mmu::MmuCmd;
use abi::mmuext::{MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE};
use abi::sched::{SCHEDOP_REMOTE_SHUTDOWN, SHUTDOWN_POWEROFF, SchedRemoteShutdown};
use abi::{Errno, Hypercall, MmuUpdate, MmuextOp};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::console::println;
use crate::env::Env;
use crate::harness::{Fail, Outcome};
use crate::hypercall;
use crate::pt;

const FD_SELF: u32 = DOMID_SELF as u32;
/// Domain 0's id as a foreign-domain argument.
const FD_DOM0: u32 = 0;
/// At most this many foreign frames are tried per test, spread over all that were found.
const SAMPLE: usize = 64;
/// The L1 entry the mapping attempts write (of this vCPU's own scratch L1).
const SLOT: usize = 5;

/// The sampled foreign frames and how many there are (0: not looked for yet).
static FRAMES: [AtomicU64; SAMPLE] = [const { AtomicU64::new(0) }; SAMPLE];
static FOUND: AtomicUsize = AtomicUsize::new(0);

/// Up to [`SAMPLE`] frames owned by other domains (found once, then reused: every test must
/// meet domain 0 alive, and it lingers only while this domain lives).
fn foreign_frames(env: &Env) -> Result<([u64; SAMPLE], usize), Fail> {
    // Relaxed: only vCPU 0 runs these tests, one after another.
    let n = FOUND.load(Ordering::Relaxed);
    if n == 0 {
        let mut out = [0u64; SAMPLE];
        let (n, total) = env.foreign_frames(&mut out);
        if n == 0 {
            return Err(Fail::new(format_args!(
                "no other domain's frames in the M2P: is domain 0 running?"
            )));
        }
        println!("guest: info isolation: {total} frames of other domains, trying {n}");
        for (slot, mfn) in FRAMES.iter().zip(out) {
            slot.store(mfn, Ordering::Relaxed);
        }
        FOUND.store(n, Ordering::Relaxed);
    }
    let frames = core::array::from_fn(|i| FRAMES[i].load(Ordering::Relaxed));
    Ok((frames, FOUND.load(Ordering::Relaxed)))
}

/// This vCPU's own scratch L1 (the scratch tree is built first).
fn scratch_l1(env: &Env) -> Result<u64, Fail> {
    pt::build(env, 1)?;
    Ok(pt::l1(pt::own(0)))
}

/// Runs `attempt` on every sampled foreign frame; each must return `want`.
fn each_foreign(env: &Env, what: &str, want: Errno, attempt: impl Fn(u64) -> i64) -> Outcome {
    let (frames, n) = foreign_frames(env)?;
    for &mfn in &frames[..n] {
        let rc = attempt(mfn);
        if rc != want.ret() {
            return Err(Fail::new(format_args!(
                "{what} of foreign frame {mfn:#x} = {rc}, want {} ({want:?})",
                want.ret()
            )));
        }
    }
    own_tables_work(env)
}

/// This domain's scratch L1 still maps and unmaps its own data frame.
fn own_tables_work(env: &Env) -> Outcome {
    let l1 = scratch_l1(env)?;
    let data = pt::data(0, 0);
    let (rc, _) = pt::update(&[pt::entry(l1, SLOT, (data << 12) | pt::RW)]);
    let (rc2, _) = pt::update(&[pt::entry(l1, SLOT, 0)]);
    if rc != 0 || rc2 != 0 {
        return Err(Fail::new(format_args!(
            "own mapping afterwards = {rc}, unmap = {rc2}"
        )));
    }
    pt::flush_local()
}

/// `mmu_update` of one request with `foreigndom`.
fn update_fd(req: MmuUpdate, foreigndom: u32) -> i64 {
    // SAFETY: every request here targets this domain's scratch L1 or another domain's frame;
    // the hypervisor must refuse the latter, and the former changes only scratch mappings.
    unsafe { hypercall::mmu_update(&[req], None, foreigndom) }
}

/// One `mmuext_op` with `foreigndom`.
fn ext_fd(cmd: u32, arg1: u64, foreigndom: u32) -> i64 {
    let op = MmuextOp { cmd, arg1, arg2: 0 };
    // SAFETY: the commands target another domain's frames, which the hypervisor must refuse;
    // nothing of this kernel changes.
    unsafe { hypercall::mmuext_op(&[op], None, foreigndom) }
}

/// Case 17: an L1 entry mapping another domain's frame, read-only or writable, with FD =
/// DOMID_SELF → -EBUSY.
pub fn map_foreign_frame_ebusy(env: &Env) -> Outcome {
    let l1 = scratch_l1(env)?;
    each_foreign(env, "RO mapping", Errno::EBUSY, |mfn| {
        update_fd(pt::entry(l1, SLOT, (mfn << 12) | 0x25), FD_SELF)
    })?;
    each_foreign(env, "RW mapping", Errno::EBUSY, |mfn| {
        update_fd(pt::entry(l1, SLOT, (mfn << 12) | pt::RW), FD_SELF)
    })
}

/// Case 18: the same with FD = domain 0 by an unprivileged caller → -EPERM (XSM, before any
/// work).
pub fn map_with_fd_dom0_eperm(env: &Env) -> Outcome {
    let l1 = scratch_l1(env)?;
    each_foreign(env, "FD=0 mapping", Errno::EPERM, |mfn| {
        update_fd(pt::entry(l1, SLOT, (mfn << 12) | 0x25), FD_DOM0)
    })
}

/// Spec §3.3: an entry update whose `ptr` lies in another domain's frame → -EINVAL (the frame
/// is not the page-table owner's), and with the owner as PFD → -EPERM.
pub fn update_in_foreign_frame_einval(env: &Env) -> Outcome {
    each_foreign(env, "entry write", Errno::EINVAL, |mfn| {
        update_fd(pt::entry(mfn, 0, 0), FD_SELF)
    })?;
    let pfd_dom0 = (FD_DOM0 + 1) << 16 | FD_SELF;
    each_foreign(env, "PFD=0 entry write", Errno::EPERM, |mfn| {
        update_fd(pt::entry(mfn, 0, 0), pfd_dom0)
    })
}

/// Case 51: MMU_MACHPHYS_UPDATE on a frame not owned by FD → -EINVAL.
pub fn machphys_foreign_einval(env: &Env) -> Outcome {
    each_foreign(env, "MACHPHYS_UPDATE", Errno::EINVAL, |mfn| {
        update_fd(
            MmuUpdate::new(MmuCmd::MachphysUpdate, mfn << 12, 0),
            FD_SELF,
        )
    })
}

/// Cases 14 and 12: pinning another domain's frame with FD = DOMID_SELF → -EINVAL; with FD =
/// its owner by an unprivileged caller → -EPERM.
pub fn pin_foreign_refused(env: &Env) -> Outcome {
    each_foreign(env, "PIN_L1", Errno::EINVAL, |mfn| {
        ext_fd(MMUEXT_PIN_L1_TABLE, mfn, FD_SELF)
    })?;
    each_foreign(env, "PIN_L1 with FD=0", Errno::EPERM, |mfn| {
        ext_fd(MMUEXT_PIN_L1_TABLE, mfn, FD_DOM0)
    })
}

/// Spec §4.3: NEW_BASEPTR to another domain's frame → -EINVAL (not this domain's page).
pub fn baseptr_foreign_einval(env: &Env) -> Outcome {
    each_foreign(env, "NEW_BASEPTR", Errno::EINVAL, |mfn| {
        ext_fd(MMUEXT_NEW_BASEPTR, mfn, FD_SELF)
    })
}

/// `update_va_mapping` of a scratch VA to another domain's frame → -EBUSY (case 17's rule
/// through the other entry point).
pub fn update_va_mapping_foreign_ebusy(env: &Env) -> Outcome {
    scratch_l1(env)?;
    let va = pt::va(pt::own(0), SLOT);
    each_foreign(env, "update_va_mapping", Errno::EBUSY, |mfn| {
        // SAFETY: `va` is a scratch-tree address nothing else uses; the hypervisor must refuse
        // the foreign frame, leaving the entry empty.
        unsafe { hypercall::update_va_mapping(va, (mfn << 12) | 0x25, 0) }
    })
}

/// An unprivileged domain may not shut domain 0 down (`SCHEDOP_remote_shutdown` → -EPERM), nor
/// ask for Argon's audit (-EPERM).
pub fn remote_shutdown_and_audit_eperm(_env: &Env) -> Outcome {
    let arg = SchedRemoteShutdown {
        domain_id: 0,
        reason: SHUTDOWN_POWEROFF,
    };
    // SAFETY: the hypervisor only reads the 8-byte record, and must refuse the request.
    let rc = unsafe {
        hypercall::hypercall5(
            Hypercall::SchedOp.nr(),
            u64::from(SCHEDOP_REMOTE_SHUTDOWN),
            &arg as *const SchedRemoteShutdown as u64,
            0,
            0,
            0,
        )
    };
    let audit = hypercall::argon_audit();
    if rc != Errno::EPERM.ret() || audit != Errno::EPERM.ret() {
        return Err(Fail::new(format_args!(
            "remote_shutdown(d0) = {rc}, audit = {audit}; want -1 for both"
        )));
    }
    Ok(())
}
