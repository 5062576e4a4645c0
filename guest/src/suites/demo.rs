//! The `demo` workload: every vCPU of the domain (4 with `cargo xtask run`) issues `mmu_update`
//! batches on its own L1 at the same time. Each round maps [`BATCH`] pages and unmaps them
//! again; every 8th round carries one bad request (an all-ones frame), which the hypervisor
//! must reject with `-EINVAL` after exactly the good prefix; every 4th round ends with a flush of
//! every CPU the domain ran on (`MMUEXT_TLB_FLUSH_ALL`, a shootdown). Each vCPU checks its pages
//! read back, and reports its updates, rejections, shootdowns and TSC cycles per update.

use core::sync::atomic::{AtomicU64, Ordering};

use abi::Errno;
use abi::mmuext::MMUEXT_TLB_FLUSH_ALL;

use crate::console::println;
use crate::env::Env;
use crate::harness::{Outcome, ensure, ensure_eq};
use crate::pt;
use crate::smp::{self, MAX_VCPUS};
use crate::traps::probe_read;

/// Requests per batch.
const BATCH: usize = 16;
/// Rounds per vCPU (`rounds=N` on the command line overrides).
const ROUNDS: u64 = 64;

/// Per-vCPU counters, written by their vCPU, read by vCPU 0 after the job.
struct Stats {
    updates: AtomicU64,
    rejected: AtomicU64,
    shootdowns: AtomicU64,
    cycles: AtomicU64,
}

static STATS: [Stats; MAX_VCPUS] = [const {
    Stats {
        updates: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        shootdowns: AtomicU64::new(0),
        cycles: AtomicU64::new(0),
    }
}; MAX_VCPUS];
static ROUNDS_SET: AtomicU64 = AtomicU64::new(ROUNDS);

fn rdtsc() -> u64 {
    // SAFETY: rdtsc reads the time-stamp counter; PV guests may execute it in ring 3.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// One vCPU's share of the demo.
fn job(id: usize, _n: usize) -> Outcome {
    let t = pt::l1(pt::own(id));
    let s = &STATS[id];
    // Relaxed: set by vCPU 0 before the job was published.
    for r in 0..ROUNDS_SET.load(Ordering::Relaxed) as usize {
        let mut reqs: [_; BATCH] = core::array::from_fn(|j| {
            pt::entry(t, j, (pt::data(id, (j + r) % pt::DATA) << 12) | pt::RW)
        });
        let bad = (r % 8 == 7).then_some((r / 8 + id) % BATCH);
        if let Some(k) = bad {
            reqs[k] = pt::entry(t, k, (0xFF_FFFF_FFFF << 12) | pt::RW);
        }
        let t0 = rdtsc();
        let (rc, done) = pt::update(&reqs);
        let cycles = rdtsc().wrapping_sub(t0);
        let mapped = match bad {
            Some(k) => {
                ensure_eq!(
                    (rc, done),
                    (Errno::EINVAL.ret(), k as u32),
                    "vCPU {id} round {r}"
                );
                // Relaxed: statistics (module head).
                s.rejected.fetch_add(1, Ordering::Relaxed);
                k
            }
            None => {
                ensure_eq!((rc, done), (0, BATCH as u32), "vCPU {id} round {r}");
                BATCH
            }
        };
        pt::flush_local()?;
        for j in 0..mapped {
            let want = pt::marker(id, (j + r) % pt::DATA);
            ensure_eq!(
                probe_read(pt::va(pt::own(id), j)),
                Some(want),
                "vCPU {id} page {j}"
            );
        }
        let undo: [_; BATCH] = core::array::from_fn(|j| pt::entry(t, j, 0));
        let t1 = rdtsc();
        let (rc, done) = pt::update(&undo[..mapped]);
        let cycles = cycles + rdtsc().wrapping_sub(t1);
        ensure_eq!((rc, done), (0, mapped as u32), "vCPU {id} round {r} unmap");
        s.updates.fetch_add(2 * mapped as u64, Ordering::Relaxed);
        s.cycles.fetch_add(cycles, Ordering::Relaxed);
        if r % 4 == 3 {
            ensure_eq!(
                pt::ext(MMUEXT_TLB_FLUSH_ALL, 0, 0),
                0,
                "vCPU {id} flush all"
            );
            s.shootdowns.fetch_add(1, Ordering::Relaxed);
        } else {
            pt::flush_local()?;
        }
        ensure!(
            probe_read(pt::va(pt::own(id), 0)).is_none(),
            "vCPU {id}: page 0 still mapped"
        );
    }
    Ok(())
}

/// Every vCPU runs its batches at once; then one line of statistics per vCPU.
pub fn mmu_update_batches(env: &Env) -> Outcome {
    if let Some(n) = env.arg_u64(b"rounds").filter(|&n| n > 0) {
        // Relaxed: published by the job's Release (smp).
        ROUNDS_SET.store(n, Ordering::Relaxed);
    }
    let n = smp::start(env)?;
    pt::build(env, n)?;
    println!(
        "guest: demo: {n} vCPUs, {} rounds of {BATCH}-request batches each",
        ROUNDS_SET.load(Ordering::Relaxed)
    );
    let result = smp::run_on_all(job);
    let mut total = (0, 0, 0);
    for (id, s) in STATS.iter().enumerate().take(n) {
        // Relaxed: published by the job's DONE Release (smp).
        let updates = s.updates.load(Ordering::Relaxed);
        let cycles = s.cycles.load(Ordering::Relaxed);
        let rejected = s.rejected.load(Ordering::Relaxed);
        let shootdowns = s.shootdowns.load(Ordering::Relaxed);
        println!(
            "guest: demo: vCPU {id}: {updates} updates, {rejected} batches rejected, \
             {shootdowns} shootdowns, {} cycles/update",
            cycles.checked_div(updates).unwrap_or(0)
        );
        total = (total.0 + updates, total.1 + rejected, total.2 + shootdowns);
    }
    println!(
        "guest: demo: total {} updates, {} rejected, {} shootdowns",
        total.0, total.1, total.2
    );
    result?;
    smp::stop()?;
    pt::teardown()
}
