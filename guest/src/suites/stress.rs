//! The `mmu-stress` workload (`cargo xtask perf`): every vCPU issues `mmu_update` batches at
//! once in one of three layouts, then vCPU 0 times TLB shootdowns to k other vCPUs that spin in
//! the guest on their own CPUs. It measures; it judges only function (every batch completes,
//! the last mappings read back, the audit is clean), never a time.
//!
//! Command-line words (after the suite name): `mode=disjoint|shared|hot|shootdown|all` (default
//! all), `batch=N` requests per `mmu_update` (default 64, at most [`MAX_BATCH`]), `iters=N`
//! batches per vCPU per repetition (default 1000), `reps=N` repetitions of each layout (default
//! 3), `flushes=N` shootdowns timed per k (default 200, at most [`MAX_FLUSHES`]).
//!
//! Layouts. `disjoint`: each vCPU rewrites `batch` entries of its own L1. `shared`: all vCPUs
//! rewrite entries of one L1, each its own `min(batch, 512 / vCPUs)` entries. In both, iteration
//! k writes entry j with a writable PTE for the vCPU's data frame `(j + k) mod 8`, so after the
//! first batch every update replaces a present entry with one for another frame. `hot`: each vCPU
//! its own L1, but every entry maps the one shared frame in even iterations and is cleared in
//! odd ones, so all vCPUs take and drop references on the same frame.
//!
//! Time is the TSC, read with `rdtsc` in the guest (native on Argon, and on Xen for a PV dom0;
//! under QEMU TCG it is the host's TSC on both). The kernel reports ticks only; `xtask` turns
//! them into seconds with the host's TSC rate and checks that rate against the host's wall clock.
//! Machine-readable lines (parsed by `xtask/src/perf_guest.rs`):
//!
//! ```text
//! guest: stress: config vcpus=N batch=B iters=I reps=R flushes=F tsc_pair=T tsc=NOW
//! guest: stress: null_hypercall samples=S median=M
//! guest: stress: run mode=M vcpus=N rep=r batch=b updates=U wall=W hc=H
//! guest: stress: vcpu mode=M rep=r id=i updates=U hc=H wall=W
//! guest: stress: shootdown vcpus=N k=K flushes=F median=M p10=A p90=B min=C
//! guest: stress: end tsc=NOW
//! ```
//!
//! `wall`: ticks from the first vCPU's start to the last one's end of the repetition; `hc`:
//! ticks spent inside `mmu_update` calls (summed over vCPUs on `run` lines); `k=0` times a
//! flush whose mask names only vCPU 0 itself (the hypercall without a remote target);
//! `null_hypercall`: the round trip of `xen_version(XENVER_version)`, the floor of any
//! hypercall (a batch of B updates pays it once); `tsc`:
//! the TSC when the line was written, which `xtask` sets against the host's arrival times of
//! the two lines to check the TSC's rate.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use abi::MmuUpdate;
use abi::mmuext::MMUEXT_TLB_FLUSH_MULTI;

use crate::console::println;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::pt;
use crate::smp::{self, MAX_VCPUS, barrier_hot};
use crate::traps::probe_read;

/// Largest batch: a secondary's 16 KiB stack holds the request array.
pub const MAX_BATCH: usize = 256;
/// Largest number of timed shootdowns per k (their samples live on vCPU 0's stack).
pub const MAX_FLUSHES: usize = 1000;
/// Untimed shootdowns before each k's timed ones.
const WARMUP: usize = 8;
/// Entries per L1.
const ENTRIES: usize = 512;
/// Null hypercalls timed for the floor.
const NULL_SAMPLES: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disjoint,
    Shared,
    Hot,
}

const MODES: [Mode; 3] = [Mode::Disjoint, Mode::Shared, Mode::Hot];

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Disjoint => "disjoint",
            Mode::Shared => "shared",
            Mode::Hot => "hot",
        }
    }
}

// The configuration and the current job's mode: written by vCPU 0 before `run_on_all`, read by
// the jobs (Relaxed: published by the job's Release bump and Acquire load in `smp`).
static BATCH: AtomicUsize = AtomicUsize::new(64);
static ITERS: AtomicU64 = AtomicU64::new(1000);
static MODE: AtomicUsize = AtomicUsize::new(0);
static FLUSHES: AtomicUsize = AtomicUsize::new(200);

/// One vCPU's figures for the current repetition: written by that vCPU during the job, read by
/// vCPU 0 after it (Relaxed: published by the job's DONE Release/Acquire in `smp`).
struct Slot {
    updates: AtomicU64,
    hc: AtomicU64,
    start: AtomicU64,
    end: AtomicU64,
}

static SLOTS: [Slot; MAX_VCPUS] = [const {
    Slot {
        updates: AtomicU64::new(0),
        hc: AtomicU64::new(0),
        start: AtomicU64::new(0),
        end: AtomicU64::new(0),
    }
}; MAX_VCPUS];

/// Secondaries spinning for the shootdown job, and the word that releases them.
static SPINNING: AtomicUsize = AtomicUsize::new(0);
static SPIN_STOP: AtomicBool = AtomicBool::new(false);

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter; a PV kernel may execute it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The value of `name=WORD` on the command line.
fn arg_word<'a>(env: &'a Env, name: &[u8]) -> Option<&'a [u8]> {
    env.cmd_words()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix(b"="))
}

/// Where vCPU `id` of `n` writes: (L2 index of its L1, first entry, entries per batch).
fn layout(mode: Mode, id: usize, n: usize) -> (usize, usize, usize) {
    // Relaxed: see the statics' comment.
    let b = BATCH.load(Ordering::Relaxed);
    match mode {
        Mode::Disjoint | Mode::Hot => (pt::own(id), 0, b),
        Mode::Shared => {
            let b = b.min(ENTRIES / n);
            (pt::SHARED, id * b, b)
        }
    }
}

/// The PTE iteration `k` writes into entry `j`, and what a read through it returns after.
fn pte(mode: Mode, id: usize, k: u64, j: usize) -> (u64, Option<u64>) {
    let slot = (j + k as usize) % pt::DATA;
    match mode {
        Mode::Disjoint | Mode::Shared => (
            (pt::data(id, slot) << 12) | pt::RW,
            Some(pt::marker(id, slot)),
        ),
        Mode::Hot if k.is_multiple_of(2) => (
            (pt::data(MAX_VCPUS, 0) << 12) | pt::RW,
            Some(pt::marker(MAX_VCPUS, 0)),
        ),
        Mode::Hot => (0, None),
    }
}

/// One repetition of the current layout on vCPU `id`: timed batches, then an untimed check
/// that the last batch's mappings read back and an unmap of everything it wrote.
fn updates_job(id: usize, n: usize) -> Outcome {
    // Relaxed: see the statics' comment.
    let mode = MODES[MODE.load(Ordering::Relaxed)];
    let iters = ITERS.load(Ordering::Relaxed);
    let (l2, base, b) = layout(mode, id, n);
    let t = pt::l1(l2);
    let mut reqs = [MmuUpdate::default(); MAX_BATCH];
    // Hot barrier: the vCPUs leave it at nearly the same time, so `wall` covers them all.
    barrier_hot(n)?;
    let (start, mut hc) = (rdtsc(), 0);
    for k in 0..iters {
        for (j, r) in reqs[..b].iter_mut().enumerate() {
            *r = pt::entry(t, base + j, pte(mode, id, k, j).0);
        }
        let t0 = rdtsc();
        let (rc, done) = pt::update(&reqs[..b]);
        hc += rdtsc().wrapping_sub(t0);
        ensure_eq!(
            (rc, done),
            (0, b as u32),
            "vCPU {id} {} batch {k}",
            mode.name()
        );
    }
    let end = rdtsc();
    let s = &SLOTS[id];
    // Relaxed: see `Slot`.
    s.updates.store(iters * b as u64, Ordering::Relaxed);
    s.hc.store(hc, Ordering::Relaxed);
    s.start.store(start, Ordering::Relaxed);
    s.end.store(end, Ordering::Relaxed);
    pt::flush_local()?;
    for j in 0..b {
        let want = pte(mode, id, iters - 1, j).1;
        let got = probe_read(pt::va(l2, base + j));
        ensure_eq!(got, want, "vCPU {id} {} entry {}", mode.name(), base + j);
    }
    for (j, r) in reqs[..b].iter_mut().enumerate() {
        *r = pt::entry(t, base + j, 0);
    }
    ensure_eq!(pt::update(&reqs[..b]), (0, b as u32), "vCPU {id} unmap");
    pt::flush_local()
}

/// Runs `reps` repetitions of `mode` on every vCPU and prints their figures.
fn run_mode(mode: Mode, n: usize, reps: u64) -> Outcome {
    let b = layout(mode, 0, n).2;
    for rep in 0..reps {
        // Relaxed: published by the job's Release (see the statics' comment).
        MODE.store(mode as usize, Ordering::Relaxed);
        smp::run_on_all(updates_job)?;
        let (mut updates, mut hc, mut first, mut last) = (0, 0, u64::MAX, 0);
        for (id, s) in SLOTS.iter().enumerate().take(n) {
            // Relaxed: see `Slot`.
            let (u, h) = (
                s.updates.load(Ordering::Relaxed),
                s.hc.load(Ordering::Relaxed),
            );
            let (t0, t1) = (
                s.start.load(Ordering::Relaxed),
                s.end.load(Ordering::Relaxed),
            );
            println!(
                "guest: stress: vcpu mode={} rep={rep} id={id} updates={u} hc={h} wall={}",
                mode.name(),
                t1.wrapping_sub(t0)
            );
            (updates, hc) = (updates + u, hc + h);
            (first, last) = (first.min(t0), last.max(t1));
        }
        println!(
            "guest: stress: run mode={} vcpus={n} rep={rep} batch={b} updates={updates} \
             wall={} hc={hc}",
            mode.name(),
            last.wrapping_sub(first)
        );
    }
    Ok(())
}

/// The shootdown job: the secondaries spin in the guest (no hypercall) until vCPU 0 has timed
/// `flushes` `MMUEXT_TLB_FLUSH_MULTI`s for each k.
fn shootdown_job(id: usize, n: usize) -> Outcome {
    if id != 0 {
        // Release: pairs with vCPU 0's Acquire wait.
        SPINNING.fetch_add(1, Ordering::Release);
        // Acquire: pairs with vCPU 0's Release.
        while !SPIN_STOP.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        return Ok(());
    }
    // Acquire: pairs with each secondary's Release increment.
    smp::wait(|| SPINNING.load(Ordering::Acquire) == n - 1);
    // Relaxed: see the statics' comment.
    let result = time_shootdowns(n, FLUSHES.load(Ordering::Relaxed));
    // Release: pairs with the secondaries' Acquire loads; they leave their spin.
    SPIN_STOP.store(true, Ordering::Release);
    result
}

fn time_shootdowns(n: usize, flushes: usize) -> Outcome {
    let mut samples = [0u64; MAX_FLUSHES];
    for k in 0..n.min(64) {
        // k = 0: vCPU 0 alone; else vCPUs 1..=k (8-byte aligned bitmap, as the ABI wants).
        let mask: [u64; 1] = [if k == 0 { 1 } else { ((1u64 << k) - 1) << 1 }];
        for i in 0..WARMUP + flushes {
            let t0 = rdtsc();
            let rc = pt::ext(MMUEXT_TLB_FLUSH_MULTI, 0, mask.as_ptr() as u64);
            let dt = rdtsc().wrapping_sub(t0);
            ensure_eq!(rc, 0, "TLB_FLUSH_MULTI k={k}");
            if i >= WARMUP {
                samples[i - WARMUP] = dt;
            }
        }
        let s = &mut samples[..flushes];
        s.sort_unstable();
        let at = |q: usize| s[(s.len() - 1) * q / 100];
        println!(
            "guest: stress: shootdown vcpus={n} k={k} flushes={flushes} median={} p10={} \
             p90={} min={}",
            at(50),
            at(10),
            at(90),
            s[0]
        );
    }
    Ok(())
}

/// The cheapest of a few back-to-back `rdtsc` pairs: the resolution of every figure here.
fn tsc_pair() -> u64 {
    (0..64)
        .map(|_| {
            let t0 = rdtsc();
            rdtsc().wrapping_sub(t0)
        })
        .min()
        .unwrap_or(0)
}

/// Median ticks of a hypercall that does nothing (`xen_version`), over [`NULL_SAMPLES`] calls.
fn null_hypercall() -> u64 {
    let mut s = [0u64; NULL_SAMPLES];
    for t in s.iter_mut() {
        let t0 = rdtsc();
        crate::hypercall::xen_version();
        *t = rdtsc().wrapping_sub(t0);
    }
    s.sort_unstable();
    s[NULL_SAMPLES / 2]
}

/// The whole workload, as one test: the selected layouts, then the shootdown timings.
pub fn mmu_stress(env: &Env) -> Outcome {
    let mode = arg_word(env, b"mode").unwrap_or(b"all");
    let known = [
        b"all" as &[u8],
        b"disjoint",
        b"shared",
        b"hot",
        b"shootdown",
    ];
    ensure!(
        known.contains(&mode),
        "unknown mode (known: all, disjoint, shared, hot, shootdown)"
    );
    let batch = env.arg_u64(b"batch").unwrap_or(64) as usize;
    ensure!(
        (1..=MAX_BATCH).contains(&batch),
        "batch must be 1..={MAX_BATCH}"
    );
    let iters = env.arg_u64(b"iters").unwrap_or(1000).max(1);
    let reps = env.arg_u64(b"reps").unwrap_or(3).max(1);
    let flushes = env.arg_u64(b"flushes").unwrap_or(200) as usize;
    ensure!(
        (1..=MAX_FLUSHES).contains(&flushes),
        "flushes must be 1..={MAX_FLUSHES}"
    );
    // Relaxed: published to the jobs by `run_on_all`'s Release.
    BATCH.store(batch, Ordering::Relaxed);
    ITERS.store(iters, Ordering::Relaxed);
    FLUSHES.store(flushes, Ordering::Relaxed);
    let n = smp::start(env)?;
    pt::build(env, n)?;
    println!(
        "guest: stress: config vcpus={n} batch={batch} iters={iters} reps={reps} \
         flushes={flushes} tsc_pair={} tsc={}",
        tsc_pair(),
        rdtsc()
    );
    println!(
        "guest: stress: null_hypercall samples={NULL_SAMPLES} median={}",
        null_hypercall()
    );
    for m in MODES {
        if mode == b"all" || mode == m.name().as_bytes() {
            run_mode(m, n, reps)?;
        }
    }
    if mode == b"all" || mode == b"shootdown" {
        // Relaxed: published by `run_on_all`'s Release.
        SPINNING.store(0, Ordering::Relaxed);
        SPIN_STOP.store(false, Ordering::Relaxed);
        smp::run_on_all(shootdown_job)
            .map_err(|f| Fail::new(format_args!("shootdown: {}", f.as_str())))?;
    }
    println!("guest: stress: end tsc={}", rdtsc());
    smp::stop()?;
    pt::teardown()
}
