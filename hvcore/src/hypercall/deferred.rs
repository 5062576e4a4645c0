//! The vCPU's deferred de-validation (Xen's `old_guest_table`; spec §3.2 step 1, §3.6, §4.3).
//!
//! When a request drops the last type reference of an L2–L4 table (an L2–L4 entry update, a
//! base-pointer switch, an unpin), the frame table makes the table partial instead of
//! de-validating it (`frame::partial`), and [`defer`] hands it to the vCPU's slot
//! ([`HcEnv::old_table`]) and continues it at once, as far as preemption allows. What is left
//! is finished by [`finish`] at the start of the vCPU's next `mmu_update` / `mmuext_op`
//! (spec §3.2 step 1; the batch loop stops before its next element while the slot is taken),
//! so one hypercall never de-validates more than one entry's worth (512 leaf drops) after a
//! preemption became pending. Without preemption (a multicall) everything finishes inline.

use super::env::HcEnv;
use crate::frame::{Devalidation, owned};
use crate::mem::Mfn;

/// Spec §3.2 step 1: continue the vCPU's deferred de-validation, if any. `false`: preemption
/// stopped it and it is still pending.
pub(crate) fn finish<E: HcEnv + ?Sized>(env: &mut E) -> bool {
    let Some(mfn) = env.old_table() else {
        return true;
    };
    let r = env
        .frames()
        .devalidate(env.mem(), mfn, &mut || env.preempt_pending());
    if r == Ok(Devalidation::Preempted) {
        return false;
    }
    // An error means the slot named a frame that is not partial: a hypervisor bug, reported
    // by debug builds and the audit; the slot is cleared either way.
    owned(r);
    env.set_old_table(None);
    true
}

/// A request began the partial de-validation of `mfn`: hand it to the vCPU and continue it now.
/// Batches never get here with the slot taken (they finish it first and stop after a
/// deferral); the base-pointer switch of an emulated `mov %cr3` may, and then finishes the
/// pending one without preemption first.
pub(crate) fn defer<E: HcEnv + ?Sized>(env: &mut E, mfn: Mfn) {
    if let Some(old) = env.old_table() {
        owned(env.frames().devalidate(env.mem(), old, &mut || false));
    }
    env.set_old_table(Some(mfn));
    // Whatever preemption leaves is the next batch's to finish (step 1).
    finish(env);
}
