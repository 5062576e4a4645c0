//! The `crash` suite: a secondary vCPU takes a page fault with no handler while the others are
//! busy in page-table hypercalls. Argon must kill the domain — every vCPU stops at its next
//! exit — and carry on: audit, destroy, exit with the domain's crash as the verdict. (vCPU 0
//! alone faults itself when the domain has one vCPU.) Its one test cannot pass: reaching the
//! end means the fault was not fatal.

use abi::Hypercall;

use crate::env::Env;
use crate::harness::{Fail, Outcome};
use crate::{hypercall, pt, smp};

/// An address outside every mapping of this kernel.
const UNMAPPED: u64 = 0x4000_0000;

/// The last vCPU clears its virtual IDT and reads an unmapped address.
pub fn secondary_fault_kills_domain(env: &Env) -> Outcome {
    let n = smp::start(env)?;
    pt::build(env, n)?;
    smp::run_on_all(|id, n| {
        if id + 1 == n {
            // SAFETY: a null table clears this vCPU's virtual IDT; the read below must then
            // kill the domain (it never returns).
            unsafe { hypercall::hypercall5(Hypercall::SetTrapTable.nr(), 0, 0, 0, 0, 0) };
            // SAFETY: deliberately faulting: nothing maps UNMAPPED.
            let v = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
            return Err(Fail::new(format_args!(
                "read {v:#x} at an unmapped address"
            )));
        }
        let t = pt::l1(pt::own(id));
        loop {
            let reqs: [_; pt::DATA] =
                core::array::from_fn(|j| pt::entry(t, j, (pt::data(id, j) << 12) | pt::RW));
            pt::update(&reqs);
            let undo: [_; pt::DATA] = core::array::from_fn(|j| pt::entry(t, j, 0));
            pt::update(&undo);
        }
    })?;
    Err(Fail::new(format_args!(
        "the domain survived a fault with no handler"
    )))
}
