//! The batch loop shared by `mmu_update` and `mmuext_op` (spec §3.2 steps 2–3, §3.5, §3.6).
//!
//! * [`prologue`]: first the vCPU's deferred de-validation (step 1, `deferred::finish`; if
//!   preemption stops it, the call is continued with its original arguments); then
//!   `count == 0x80000000 && ops == NULL` returns `foreigndom` (the internal "final return
//!   value" call, which a guest may also make); otherwise bit 31 of `count` is the continuation
//!   flag: strip it and pre-load the done count from `*pdone`.
//! * [`run`]: apply elements strictly in order; stop at the first failure; before every element
//!   after the first of this invocation, stop if a deferred de-validation is pending or
//!   preemption is. The loop is bounded by the guest's `count` (< 2^31) and every element
//!   address is computed with checked arithmetic.
//! * [`finish`]: write `*pdone = done + processed` (if `pdone` is not NULL; a failed write is
//!   ignored, as in Xen) and turn the outcome into an [`HcResult`], building the continuation
//!   `(ops + processed, (count - processed) | PREEMPTED, pdone, foreigndom)` when preempted. A
//!   batch that ended (complete or failed) with a deferred de-validation pending is continued
//!   as `(NULL, PREEMPTED, NULL, rc)`: the re-entry finishes it, then returns `rc` (§3.6).

use abi::mmu::{MMU_UPDATE_PREEMPTED, split_count};
use abi::wire::Wire;

use super::decode::{elem_addr, read_elem, read_u32, write_u32};
use super::deferred;
use super::env::HcEnv;
use super::error::HcError;
use super::{Continuation, HcResult};

/// The four arguments of a batch hypercall, as the guest passed them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchArgs {
    pub ops: u64,
    pub count: u32,
    pub pdone: u64,
    pub foreigndom: u32,
}

/// What the prologue decided.
pub(crate) enum Prologue {
    /// The deferred de-validation was preempted: continue with the original arguments.
    Again(Continuation),
    /// Return this value at once.
    Final(i64),
    /// Process `count` elements; `done` were done by earlier invocations.
    Run { count: u32, done: u32 },
}

/// Spec §3.2 steps 1 to 3.
pub(crate) fn prologue<E: HcEnv + ?Sized>(env: &mut E, args: &BatchArgs) -> Prologue {
    if !deferred::finish(env) {
        return Prologue::Again(Continuation {
            ops: args.ops,
            count: args.count,
            pdone: args.pdone,
            foreigndom: args.foreigndom,
        });
    }
    if args.count == MMU_UPDATE_PREEMPTED && args.ops == 0 {
        // Xen returns `(int)foreigndom`: the 32-bit value, sign-extended.
        return Prologue::Final(i64::from(args.foreigndom as i32));
    }
    let (count, continued) = split_count(args.count);
    let mut done = 0;
    if continued && args.pdone != 0 {
        // An unreadable *pdone leaves the count at 0, as in Xen (the copy's result is ignored).
        done = read_u32(env.guest(), args.pdone).unwrap_or(0);
    }
    Prologue::Run { count, done }
}

/// How the loop ended.
pub(crate) enum End {
    /// Every element applied.
    Complete,
    /// The element at index `processed` failed.
    Failed(HcError),
    /// Preemption was pending before the element at index `processed`.
    Preempted,
}

/// Elements applied by this invocation and how the loop ended.
pub(crate) struct Progress {
    pub processed: u32,
    pub end: End,
}

/// Apply `op` to elements `0..count` of type `T` at guest address `ops`.
pub(crate) fn run<E, T, F>(env: &mut E, ops: u64, count: u32, mut op: F) -> Progress
where
    E: HcEnv + ?Sized,
    T: Wire,
    F: FnMut(&mut E, T) -> Result<(), HcError>,
{
    for i in 0..count {
        if i > 0 && (env.old_table().is_some() || env.preempt_pending()) {
            return Progress {
                processed: i,
                end: End::Preempted,
            };
        }
        let item = elem_addr(ops, i, T::SIZE)
            .ok_or(HcError::Fault)
            .and_then(|va| read_elem::<T, _>(env.guest(), va));
        if let Err(e) = item.and_then(|item| op(env, item)) {
            return Progress {
                processed: i,
                end: End::Failed(e),
            };
        }
    }
    Progress {
        processed: count,
        end: End::Complete,
    }
}

/// Write `*pdone = done` if `pdone` is not NULL; a fault is ignored.
pub(crate) fn write_done<E: HcEnv + ?Sized>(env: &E, pdone: u64, done: u32) {
    if pdone != 0 {
        // Xen ignores a failed copy to *pdone: the return value is what the guest relies on.
        let _ = write_u32(env.guest(), pdone, done);
    }
}

/// Report the loop's outcome (spec §3.5, §3.6). `count` is the stripped count of this
/// invocation, `done` the pre-loaded count and `size` the element size.
pub(crate) fn finish<E: HcEnv + ?Sized>(
    env: &E,
    args: &BatchArgs,
    count: u32,
    done: u32,
    size: usize,
    progress: Progress,
) -> HcResult {
    // `unsigned int` arithmetic of the ABI: a guest-chosen pre-load may wrap, as in Xen.
    write_done(env, args.pdone, done.wrapping_add(progress.processed));
    let ended = match progress.end {
        End::Complete => Ok(0),
        End::Failed(e) => Err(e),
        End::Preempted => {
            // `processed` ≥ 1 elements at `ops` were read, so the address of the next one is
            // at most one element past memory that exists; overflow still fails closed.
            return match elem_addr(args.ops, progress.processed, size) {
                Some(ops) => HcResult::Continue(Continuation {
                    ops,
                    count: (count - progress.processed) | MMU_UPDATE_PREEMPTED,
                    pdone: args.pdone,
                    foreigndom: args.foreigndom,
                }),
                None => HcResult::Done(Err(HcError::Fault)),
            };
        }
    };
    if env.old_table().is_none() {
        return HcResult::Done(ended);
    }
    // Spec §3.6: a deferred de-validation is pending; the re-entry finishes it (step 1) and
    // then returns `(int)rc` (step 2), carried in the 32-bit `foreigndom` argument.
    let rc = ended.unwrap_or_else(|e| e.errno().ret());
    HcResult::Continue(Continuation {
        ops: 0,
        count: MMU_UPDATE_PREEMPTED,
        pdone: 0,
        foreigndom: rc as i32 as u32,
    })
}
