//! The `smp` suite, part 2: TLB shootdowns (spec §5, §8.7) and hostile batches from every vCPU.
//!
//! (d) vCPU A maps page P, every vCPU reads it (its TLB caches the translation), A unmaps it
//! with a flush to all (`UVMF_INVLPG|UVMF_ALL`, `UVMF_TLB_FLUSH|UVMF_ALL`, `UVMF_INVLPG` with a
//! `UVMF_MULTI` bitmap, or `mmu_update` + `MMUEXT_TLB_FLUSH_MULTI` / `INVLPG_MULTI` naming every
//! vCPU), and then every vCPU's next read must fault. (e) A frame every vCPU has just written through a writable mapping is unmapped
//! *without* any guest flush and pinned as an L1: the hypervisor's retype shootdown must leave
//! no vCPU able to write through its stale translation (XSA-401's hazard). (f) Batches that
//! mix good requests with one bad one, from all vCPUs at once: exact error numbers and done
//! counts, the good prefix applied, nothing after it.

use abi::Errno;
use abi::MmuUpdate;
use abi::mmuext::{
    MMUEXT_INVLPG_MULTI, MMUEXT_PIN_L1_TABLE, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE,
};
use abi::uvmf::{UVMF_ALL, UVMF_INVLPG, UVMF_MULTI, UVMF_NONE, UVMF_TLB_FLUSH};

use super::smp::rounds;
use crate::env::Env;
use crate::harness::{Outcome, ensure, ensure_eq};
use crate::smp::{self, barrier, barrier_hot};
use crate::traps::{probe_read, probe_write};
use crate::{hypercall, pt};

/// The shared-L1 slots of (d) and (e).
const P_SLOT: usize = 300;
const F_SLOT: usize = 301;
/// Requests per hostile batch.
const HOSTILE: usize = 8;

/// How A drops the mapping in (d).
#[derive(Clone, Copy)]
enum Unmap {
    Uvmf,
    Multi,
}

fn shootdown(id: usize, n: usize, how: Unmap) -> Outcome {
    let p = pt::data(smp::MAX_VCPUS, 1);
    let s = pt::l1(pt::SHARED);
    let va = pt::va(pt::SHARED, P_SLOT);
    let want = pt::marker(smp::MAX_VCPUS, 1);
    for r in 0..rounds() as usize {
        let a = r % n;
        if id == a {
            // SAFETY: the scratch VA maps only page P, which no kernel code uses.
            let rc = unsafe { hypercall::update_va_mapping(va, (p << 12) | pt::RW, UVMF_NONE) };
            ensure_eq!(rc, 0, "vCPU {id} maps P, round {r}");
        }
        barrier(n)?;
        ensure_eq!(probe_read(va), Some(want), "vCPU {id} reads P, round {r}");
        // From here to the probe every vCPU keeps its TLB (the hot barriers): only the
        // shootdown can remove the translation just cached.
        barrier_hot(n)?;
        if id == a {
            let mask: [u64; 1] = [if n >= 64 { u64::MAX } else { (1 << n) - 1 }];
            let rc = match how {
                Unmap::Uvmf => {
                    let flags = match r % 3 {
                        0 => UVMF_INVLPG | UVMF_ALL,
                        1 => UVMF_TLB_FLUSH | UVMF_ALL,
                        // UVMF_MULTI: the (8-byte aligned) bitmap's address in the flags.
                        _ => UVMF_INVLPG | UVMF_MULTI | mask.as_ptr() as u64,
                    };
                    // SAFETY: as above; the mapping goes away.
                    unsafe { hypercall::update_va_mapping(va, 0, flags) }
                }
                Unmap::Multi => {
                    let (rc, _) = pt::update(&[pt::entry(s, P_SLOT, 0)]);
                    ensure_eq!(rc, 0, "vCPU {id} clears P's entry, round {r}");
                    let (cmd, arg1) = if r % 2 == 0 {
                        (MMUEXT_TLB_FLUSH_MULTI, 0)
                    } else {
                        (MMUEXT_INVLPG_MULTI, va)
                    };
                    pt::ext(cmd, arg1, mask.as_ptr() as u64)
                }
            };
            ensure_eq!(rc, 0, "vCPU {id} unmaps P with a flush to all, round {r}");
        }
        barrier_hot(n)?;
        ensure!(
            probe_read(va).is_none(),
            "vCPU {id} still reads P after vCPU {a}'s shootdown (round {r})"
        );
        barrier(n)?;
    }
    Ok(())
}

/// (d) `update_va_mapping(va, 0, …)` with `UVMF_INVLPG|UVMF_ALL`, `UVMF_TLB_FLUSH|UVMF_ALL`
/// and `UVMF_INVLPG|UVMF_MULTI`.
pub fn shootdown_uvmf(_env: &Env) -> Outcome {
    smp::run_on_all(|id, n| shootdown(id, n, Unmap::Uvmf))
}

/// (d) `mmu_update` + `MMUEXT_TLB_FLUSH_MULTI` (and `INVLPG_MULTI`) over every vCPU.
pub fn shootdown_flush_multi(_env: &Env) -> Outcome {
    smp::run_on_all(|id, n| shootdown(id, n, Unmap::Multi))
}

/// (e) No vCPU writes through a stale writable translation of a frame that became an L1.
pub fn stale_writable_retyped(_env: &Env) -> Outcome {
    smp::run_on_all(|id, n| {
        let f = pt::scratch(1);
        let s = pt::l1(pt::SHARED);
        let va = pt::va(pt::SHARED, F_SLOT) + 8 * id as u64;
        // What a stale write would plant in the new L1: a writable mapping of the kernel's L4.
        let evil = (pt::kernel_l4() << 12) | pt::RW;
        for r in 0..rounds() as usize {
            let a = r % n;
            if id == a {
                let (rc, _) = pt::update(&[pt::entry(s, F_SLOT, (f << 12) | pt::RW)]);
                ensure_eq!(rc, 0, "vCPU {id} maps F writable, round {r}");
            }
            barrier(n)?;
            // SAFETY: word `id` of frame F, mapped writable just above; 0 keeps F a valid L1.
            let wrote = unsafe { probe_write(va, 0) };
            ensure!(wrote, "vCPU {id} cannot write F, round {r}");
            // Every vCPU keeps its TLB until its probe below (hot barriers, as in `shootdown`).
            barrier_hot(n)?;
            if id == a {
                let (rc, _) = pt::update(&[pt::entry(s, F_SLOT, 0)]);
                ensure_eq!(rc, 0, "vCPU {id} unmaps F without a flush, round {r}");
                ensure_eq!(
                    pt::ext(MMUEXT_PIN_L1_TABLE, f, 0),
                    0,
                    "pin F as L1, round {r}"
                );
            }
            barrier_hot(n)?;
            // SAFETY: F is a pinned L1 now: this store must fault; if a stale translation let
            // it through, the test fails below (and the audit would see the damage).
            let wrote = unsafe { probe_write(va, evil) };
            ensure!(
                !wrote,
                "vCPU {id} wrote into L1 F through a stale mapping (round {r})"
            );
            barrier(n)?;
            if id == a {
                ensure_eq!(pt::ext(MMUEXT_UNPIN_TABLE, f, 0), 0, "unpin F, round {r}");
            }
            barrier(n)?;
        }
        Ok(())
    })
}

/// (f) From every vCPU at once: batches of [`HOSTILE`] requests on its own L1 with one bad
/// request at index k — an unknown command (`-ENOSYS`), an all-ones frame (`-EINVAL`) or a
/// writable mapping of a page table (`-EBUSY`): rc and `*pdone = k` exact, requests before k
/// applied, none after.
pub fn hostile_batches(_env: &Env) -> Outcome {
    smp::run_on_all(|id, _| {
        let t = pt::l1(pt::own(id));
        for r in 0..rounds() as usize {
            let k = (r + id) % HOSTILE;
            let kind = (r / HOSTILE + id) % 3;
            let mut reqs: [MmuUpdate; HOSTILE] = core::array::from_fn(|j| {
                pt::entry(t, j, (pt::data(id, j % pt::DATA) << 12) | pt::RW)
            });
            let (bad, want) = match kind {
                0 => (
                    MmuUpdate {
                        ptr: reqs[k].ptr | 5,
                        val: 0,
                    },
                    Errno::ENOSYS,
                ),
                1 => (
                    pt::entry(t, k, (0xFF_FFFF_FFFF << 12) | pt::RW),
                    Errno::EINVAL,
                ),
                _ => (pt::entry(t, k, (t << 12) | pt::RW), Errno::EBUSY),
            };
            reqs[k] = bad;
            let (rc, done) = pt::update(&reqs);
            ensure_eq!(
                (rc, done),
                (want.ret(), k as u32),
                "vCPU {id} round {r} kind {kind}"
            );
            pt::flush_local()?;
            for j in 0..HOSTILE {
                let got = probe_read(pt::va(pt::own(id), j));
                let want = (j < k).then(|| pt::marker(id, j % pt::DATA));
                ensure_eq!(got, want, "vCPU {id} round {r} page {j} (bad at {k})");
            }
            let undo: [MmuUpdate; HOSTILE] = core::array::from_fn(|j| pt::entry(t, j, 0));
            let (rc, done) = pt::update(&undo[..k]);
            ensure_eq!((rc, done), (0, k as u32), "vCPU {id} round {r} undo");
            pt::flush_local()?;
        }
        Ok(())
    })
}

/// The secondaries take themselves down (`is_up` then 0), and the scratch tree goes away.
pub fn vcpus_down(_env: &Env) -> Outcome {
    smp::stop()?;
    for id in 1..smp::nr() {
        ensure_eq!(
            hypercall::vcpu_is_up(id as u32),
            0,
            "is_up({id}) after down"
        );
    }
    ensure_eq!(hypercall::vcpu_is_up(0), 1, "is_up(0)");
    pt::teardown()
}
