//! The `smp` suite's scheduling checks: vCPUs that spin without ever yielding still all run
//! (time slices preempt them when there are more vCPUs than CPUs), `VCPUOP_down` / `up` of
//! another, running vCPU, and `SCHEDOP_block` returning (on Argon, which has no event sources:
//! under Xen a dom0 with no bound event channel would block for good, so it is skipped there).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use abi::vcpu_op::{VCPUOP_DOWN, VCPUOP_UP};

use crate::console::println;
use crate::env::Env;
use crate::harness::{Outcome, ensure_eq};
use crate::hypercall;
use crate::smp::{self, wait};

static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// Every vCPU announces itself, then spins — without a hypercall — until all have: with more
/// vCPUs than CPUs this only ends if the hypervisor preempts the spinners.
pub fn preemption_without_yield(_env: &Env) -> Outcome {
    // Relaxed: published by the job's Release (smp).
    ARRIVED.store(0, Ordering::Relaxed);
    smp::run_on_all(|_, n| {
        // AcqRel/Acquire: one RMW chain; the spin only needs to see the count reach n.
        ARRIVED.fetch_add(1, Ordering::AcqRel);
        while ARRIVED.load(Ordering::Acquire) < n {
            core::hint::spin_loop();
        }
        Ok(())
    })
}

/// vCPU 0 takes vCPU 1 down while it spins in a job, checks `is_up`, brings it back, and
/// waits until it runs again (its counter moves).
pub fn remote_down_up(_env: &Env) -> Outcome {
    if smp::nr() < 2 {
        println!("guest: info remote_down_up needs 2 vCPUs; skipped");
        return Ok(());
    }
    // Relaxed: published by the job's Release (smp).
    STOP.store(false, Ordering::Relaxed);
    TICKS.store(0, Ordering::Relaxed);
    smp::run_on_all(|id, _| {
        match id {
            0 => {
                // Acquire: vCPU 1 has started ticking.
                wait(|| TICKS.load(Ordering::Acquire) > 0);
                // SAFETY: VCPUOP_down takes no argument; vCPU 1 stops where it is.
                let rc = unsafe { hypercall::vcpu_op(VCPUOP_DOWN, 1, 0) };
                ensure_eq!(rc, 0, "down(1)");
                ensure_eq!(hypercall::vcpu_is_up(1), 0, "is_up(1) after down");
                // SAFETY: VCPUOP_up takes no argument; vCPU 1 resumes where it stopped.
                let rc = unsafe { hypercall::vcpu_op(VCPUOP_UP, 1, 0) };
                ensure_eq!(rc, 0, "up(1)");
                ensure_eq!(hypercall::vcpu_is_up(1), 1, "is_up(1) after up");
                // Acquire: a tick after the up is visible.
                let seen = TICKS.load(Ordering::Acquire);
                wait(|| TICKS.load(Ordering::Acquire) > seen + 1000);
                // Release: ends vCPU 1's loop.
                STOP.store(true, Ordering::Release);
            }
            1 => {
                // Acquire: pairs with vCPU 0's Release.
                while !STOP.load(Ordering::Acquire) {
                    // Release: vCPU 0 waits on it.
                    TICKS.fetch_add(1, Ordering::Release);
                    core::hint::spin_loop();
                }
            }
            _ => {}
        }
        Ok(())
    })
}

/// `SCHEDOP_block` returns on every vCPU (Argon: a wake-up at the next scheduling decision).
pub fn sched_block(_env: &Env) -> Outcome {
    if !hypercall::is_argon() {
        println!("guest: info sched_block: an event-less block only returns on Argon; skipped");
        return Ok(());
    }
    smp::run_on_all(|id, _| {
        for i in 0..4 {
            ensure_eq!(hypercall::sched_block(), 0, "block {i} on vCPU {id}");
        }
        Ok(())
    })
}
