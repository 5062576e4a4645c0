//! The `smp` suite, part 1: bringing vCPUs up and down (`VCPUOP_*`), and concurrent page-table
//! updates (spec §8.8): every vCPU batching on its own L1 (a), all vCPUs updating one shared L1
//! (b), and the pin-versus-writable-map race (c, spec case 82's type rule: exactly one side wins
//! each round). Part 2 (`smp_tlb`) checks shootdowns. Every job runs on all vCPUs at once for
//! [`rounds`] rounds (`rounds=N` on the command line; default 16).

use core::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use abi::Errno;
const EEXIST: i64 = abi::errno::Errno::EEXIST.value();
use abi::mmuext::{MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};
use abi::vcpu_op::{VCPUOP_INITIALISE, VCPUOP_UP};

use crate::console::println;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::smp::{self, MAX_VCPUS, barrier};
use crate::traps::probe_read;
use crate::{hypercall, pt};

static ROUNDS: AtomicU32 = AtomicU32::new(16);
/// Entries per batch in (a).
const BATCH: usize = pt::DATA;
/// Slots of the shared L1 each vCPU owns in (b): `1 + id + n * k`.
const SHARED_SLOTS: usize = 4;
/// The shared L1 slot every vCPU writes in (b).
const CONTENDED: usize = 500;

/// Rounds per job.
pub fn rounds() -> u32 {
    // Relaxed: set by vCPU 0 before any job is published.
    ROUNDS.load(Ordering::Relaxed)
}

fn parse_rounds(env: &Env) {
    let n = env.arg_u64(b"rounds").and_then(|n| u32::try_from(n).ok());
    if let Some(n) = n.filter(|&n| n > 0) {
        // Relaxed: see `rounds`.
        ROUNDS.store(n, Ordering::Relaxed);
    }
}

/// `VCPUOP_*` before and after bring-up: `up` of an uninitialised vCPU is `-EINVAL`, ids past
/// the domain are `-ENOENT`, a second `initialise` is `-EEXIST`; vCPU 1 is initialised with a
/// one-frame GDT (`smp_segs::boot_gdt`); then every vCPU runs a job with its own id, and the
/// scratch tree is built.
pub fn vcpus_up(env: &Env) -> Outcome {
    parse_rounds(env);
    let mut n = 1;
    while n < MAX_VCPUS && hypercall::vcpu_is_up(n as u32) >= 0 {
        n += 1;
    }
    ensure_eq!(hypercall::vcpu_is_up(0), 1, "is_up(0)");
    ensure_eq!(
        hypercall::vcpu_is_up(n as u32),
        Errno::ENOENT.ret(),
        "is_up({n})"
    );
    if n > 1 && smp::nr() == 1 {
        ensure_eq!(hypercall::vcpu_is_up(1), 0, "is_up(1) before bring-up");
        // SAFETY: VCPUOP_up takes no argument; vCPU 1 is not initialised, so nothing runs.
        let rc = unsafe { hypercall::vcpu_op(VCPUOP_UP, 1, 0) };
        ensure_eq!(rc, Errno::EINVAL.ret(), "up(1) before initialise");
        refused_contexts(env)?;
    }
    let gdt = if smp::nr() == 1 {
        super::smp_segs::boot_gdt(env)?
    } else {
        None
    };
    let started = smp::start_with(env, gdt)?;
    ensure_eq!(started, n, "vCPUs started");
    for id in 0..n {
        ensure_eq!(
            hypercall::vcpu_is_up(id as u32),
            1,
            "is_up({id}) after bring-up"
        );
    }
    if n > 1 {
        let ctx = abi::VcpuGuestContext::default();
        // SAFETY: vCPU 1 is initialised, so the hypervisor refuses before using the context.
        let rc = unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, 1, &raw const ctx as u64) };
        ensure_eq!(rc, -EEXIST, "second initialise of vCPU 1");
    }
    smp::run_on_all(|id, _| {
        SEEN[id].store(id as u64 + 1, Ordering::Relaxed);
        Ok(())
    })?;
    for (id, s) in SEEN.iter().enumerate().take(n) {
        // Relaxed: published by the job's DONE Release (smp).
        ensure_eq!(
            s.load(Ordering::Relaxed),
            id as u64 + 1,
            "vCPU {id} ran the job"
        );
    }
    println!("guest: info {n} vCPUs up, {} rounds per job", rounds());
    pt::build(env, n)
}

static SEEN: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// Contexts `VCPUOP_initialise` must refuse with `-EINVAL`, leaving vCPU 1 uninitialised: a
/// non-canonical RIP, and a kernel base that is not an L4 (a data page the kernel maps
/// writable, which cannot become a page table).
fn refused_contexts(env: &Env) -> Outcome {
    let data = env
        .mfn_of(env.si_va)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for start_info")))?;
    let l4 = env
        .kernel_l4_mfn()
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for the L4")))?;
    let mut bad_rip = abi::VcpuGuestContext::default();
    bad_rip.user_regs.rip = 0x0000_8000_0000_0000;
    bad_rip.ctrlreg[3] = abi::vcpu::xen_pfn_to_cr3(l4);
    let mut bad_l4 = abi::VcpuGuestContext::default();
    bad_l4.ctrlreg[3] = abi::vcpu::xen_pfn_to_cr3(data);
    for (ctx, what) in [
        (&bad_rip, "non-canonical rip"),
        (&bad_l4, "data page as L4"),
    ] {
        // SAFETY: the hypervisor must refuse the context, so vCPU 1 does not start.
        let rc = unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, 1, ctx as *const _ as u64) };
        ensure_eq!(rc, Errno::EINVAL.ret(), "initialise(1) with a {what}");
    }
    ensure_eq!(
        hypercall::vcpu_is_up(1),
        0,
        "is_up(1) after refused contexts"
    );
    Ok(())
}

/// (a) Each vCPU remaps its own L1 with full batches, reads every page back through the new
/// mappings, unmaps, and checks the VA faults again.
pub fn own_batches(_env: &Env) -> Outcome {
    smp::run_on_all(|id, _| {
        let t = pt::l1(pt::own(id));
        for r in 0..rounds() as usize {
            let reqs: [_; BATCH] = core::array::from_fn(|j| {
                pt::entry(t, j, (pt::data(id, (j + r) % pt::DATA) << 12) | pt::RW)
            });
            let (rc, done) = pt::update(&reqs);
            ensure_eq!(
                (rc, done),
                (0, BATCH as u32),
                "map batch of vCPU {id} round {r}"
            );
            pt::flush_local()?;
            for j in 0..BATCH {
                let want = pt::marker(id, (j + r) % pt::DATA);
                ensure_eq!(
                    probe_read(pt::va(pt::own(id), j)),
                    Some(want),
                    "vCPU {id} page {j}"
                );
            }
            let reqs: [_; BATCH] = core::array::from_fn(|j| pt::entry(t, j, 0));
            let (rc, done) = pt::update(&reqs);
            ensure_eq!(
                (rc, done),
                (0, BATCH as u32),
                "unmap batch of vCPU {id} round {r}"
            );
            pt::flush_local()?;
            ensure!(
                probe_read(pt::va(pt::own(id), 0)).is_none(),
                "unmapped VA still reads"
            );
        }
        Ok(())
    })
}

/// Entries of a long batch: a whole L1.
const LONG: usize = 512;

/// (a') Each vCPU fills and empties its whole L1 with one 512-request batch each way, at once
/// with the others: long enough for a time slice to end inside it when vCPUs outnumber CPUs,
/// so Argon continues the batch (spec §3.6) and the final `*pdone` must still be exact.
pub fn long_batches(_env: &Env) -> Outcome {
    smp::run_on_all(|id, _| {
        let t = pt::l1(pt::own(id));
        for r in 0..(rounds() as usize).div_ceil(16) {
            let mut reqs = [pt::entry(t, 0, 0); LONG];
            for (j, req) in reqs.iter_mut().enumerate() {
                *req = pt::entry(t, j, (pt::data(id, (j + r) % pt::DATA) << 12) | pt::RW);
            }
            ensure_eq!(
                pt::update(&reqs),
                (0, LONG as u32),
                "vCPU {id} long map {r}"
            );
            pt::flush_local()?;
            for j in [0, 1, 255, 511] {
                let want = pt::marker(id, (j + r) % pt::DATA);
                ensure_eq!(
                    probe_read(pt::va(pt::own(id), j)),
                    Some(want),
                    "vCPU {id} page {j}"
                );
            }
            for (j, req) in reqs.iter_mut().enumerate() {
                *req = pt::entry(t, j, 0);
            }
            ensure_eq!(
                pt::update(&reqs),
                (0, LONG as u32),
                "vCPU {id} long unmap {r}"
            );
            pt::flush_local()?;
        }
        Ok(())
    })
}

/// (b) All vCPUs update disjoint entries of one shared L1 at once, and all write one
/// contended entry; every mapping reads back, and the frame table stays consistent (audit).
pub fn shared_l1(_env: &Env) -> Outcome {
    smp::run_on_all(|id, n| {
        let s = pt::l1(pt::SHARED);
        let slot = |k: usize| 1 + id + n * k;
        for r in 0..rounds() as usize {
            let reqs: [_; SHARED_SLOTS] = core::array::from_fn(|k| {
                pt::entry(
                    s,
                    slot(k),
                    (pt::data(id, (k + r) % pt::DATA) << 12) | pt::RW,
                )
            });
            let (rc, done) = pt::update(&reqs);
            ensure_eq!(
                (rc, done),
                (0, SHARED_SLOTS as u32),
                "vCPU {id} shared map round {r}"
            );
            let contended = pt::entry(s, CONTENDED, (pt::data(id, r % pt::DATA) << 12) | pt::RW);
            ensure_eq!(
                pt::update(&[contended]).0,
                0,
                "vCPU {id} contended write round {r}"
            );
            pt::flush_local()?;
            for k in 0..SHARED_SLOTS {
                let want = pt::marker(id, (k + r) % pt::DATA);
                ensure_eq!(
                    probe_read(pt::va(pt::SHARED, slot(k))),
                    Some(want),
                    "slot {}",
                    slot(k)
                );
            }
            barrier(n)?;
            let reqs: [_; SHARED_SLOTS] = core::array::from_fn(|k| pt::entry(s, slot(k), 0));
            let (rc, done) = pt::update(&reqs);
            ensure_eq!(
                (rc, done),
                (0, SHARED_SLOTS as u32),
                "vCPU {id} shared unmap round {r}"
            );
            if id == 0 {
                ensure_eq!(
                    pt::update(&[pt::entry(s, CONTENDED, 0)]).0,
                    0,
                    "clear contended"
                );
            }
            barrier(n)?;
        }
        pt::flush_local()
    })
}

static PIN_RC: [AtomicI64; MAX_VCPUS] = [const { AtomicI64::new(1) }; MAX_VCPUS];
static PIN_WINS: AtomicU32 = AtomicU32::new(0);
static MAP_WINS: AtomicU32 = AtomicU32::new(0);

/// (c) Even vCPUs pin frame X as an L1 while odd ones map it writable, all at once: each round
/// exactly one side wins (one pin, or writable maps and no pin); losers see `-EINVAL` (pin)
/// or `-EBUSY` (map); winners undo and the next round starts clean.
pub fn pin_vs_map(_env: &Env) -> Outcome {
    PIN_WINS.store(0, Ordering::Relaxed);
    MAP_WINS.store(0, Ordering::Relaxed);
    smp::run_on_all(|id, n| {
        let x = pt::scratch(0);
        let own = pt::l1(pt::own(id));
        let pinner = id % 2 == 0;
        for r in 0..rounds() as usize {
            barrier(n)?;
            let rc = if pinner {
                pt::ext(MMUEXT_PIN_L1_TABLE, x, 0)
            } else {
                pt::update(&[pt::entry(own, 0, (x << 12) | pt::RW)]).0
            };
            // Relaxed: read by vCPU 0 after the barrier (Release/Acquire).
            PIN_RC[id].store(rc, Ordering::Relaxed);
            barrier(n)?;
            if id == 0 {
                judge(n, r)?;
            }
            barrier(n)?;
            if rc == 0 && pinner {
                ensure_eq!(pt::ext(MMUEXT_UNPIN_TABLE, x, 0), 0, "unpin by vCPU {id}");
            } else if rc == 0 {
                ensure_eq!(
                    pt::update(&[pt::entry(own, 0, 0)]).0,
                    0,
                    "unmap by vCPU {id}"
                );
            }
        }
        barrier(n)
    })?;
    println!(
        "guest: info pin_vs_map: pin won {} rounds, writable maps won {}",
        PIN_WINS.load(Ordering::Relaxed),
        MAP_WINS.load(Ordering::Relaxed)
    );
    Ok(())
}

/// vCPU 0's verdict on one round of (c).
fn judge(n: usize, r: usize) -> Outcome {
    let (mut pins, mut maps) = (0, 0);
    for (id, slot) in PIN_RC.iter().enumerate().take(n) {
        // Relaxed: written before the barrier vCPU 0 just passed.
        let rc = slot.load(Ordering::Relaxed);
        let pinner = id % 2 == 0;
        let loss = if pinner { Errno::EINVAL } else { Errno::EBUSY };
        ensure!(rc == 0 || rc == loss.ret(), "round {r}: vCPU {id} got {rc}");
        if rc == 0 && pinner {
            pins += 1;
        } else if rc == 0 {
            maps += 1;
        }
    }
    ensure!(
        (pins == 1 && maps == 0) || (pins == 0 && maps >= 1),
        "round {r}: {pins} pins and {maps} writable maps succeeded"
    );
    let wins = if pins == 1 { &PIN_WINS } else { &MAP_WINS };
    wins.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
