//! `vcpu_op` on a domain's own vCPU 0, in the conformance suite (it runs with one vCPU on Xen
//! too): `is_up`, ids past the domain (`-ENOENT`), a second `initialise` (`-EEXIST`), an
//! unreadable context (`-EFAULT`, checked before anything else) and unknown commands
//! (`-ENOSYS`).

use abi::Errno;
const EEXIST: i64 = abi::errno::Errno::EEXIST.value();
use abi::vcpu_op::VCPUOP_INITIALISE;

use crate::env::Env;
use crate::harness::{Outcome, ensure_eq};
use crate::hypercall;

/// `VCPUOP_*` error paths that need no second vCPU.
pub fn vcpu_op_errors(_env: &Env) -> Outcome {
    ensure_eq!(hypercall::vcpu_is_up(0), 1, "is_up(0)");
    let mut n = 1u32;
    while n < 64 && hypercall::vcpu_is_up(n) >= 0 {
        n += 1;
    }
    ensure_eq!(hypercall::vcpu_is_up(n), Errno::ENOENT.ret(), "is_up({n})");
    ensure_eq!(
        hypercall::vcpu_is_up(u32::MAX),
        Errno::ENOENT.ret(),
        "is_up(u32::MAX)"
    );
    let ctx = abi::VcpuGuestContext::default();
    // SAFETY: vCPU 0 is running, hence initialised: the hypervisor refuses without using it.
    let rc = unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, 0, &raw const ctx as u64) };
    ensure_eq!(rc, -EEXIST, "initialise(0)");
    // SAFETY: the context pointer is unmapped, so the copy fails before anything changes.
    let rc = unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, 0, 0x4000_0000) };
    ensure_eq!(
        rc,
        Errno::EFAULT.ret(),
        "initialise(0) from an unmapped context"
    );
    // SAFETY: an unknown command changes nothing.
    let rc = unsafe { hypercall::vcpu_op(99, 0, 0) };
    ensure_eq!(rc, Errno::ENOSYS.ret(), "vcpu_op command 99");
    Ok(())
}
