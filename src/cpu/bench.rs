//! `argon.bench=ipi`: the bare IPI round trip, measured once at boot (after the CPUs are up,
//! before any domain runs) and printed as one line, to set beside the guest's shootdown latency
//! in `cargo xtask perf`. A measurement, never a test: nothing here judges a time.
//!
//! The BSP pings the other online CPUs in turn with [`BENCH_VECTOR`]: it stores a new sequence
//! number in the target's `SEQ` slot (Release) and sends the IPI; the target's handler
//! ([`on_ipi`]) loads it (Acquire: pairs with that Release) and stores it into its `ACK` slot
//! (Release: pairs with the BSP's Acquire wait). One sample is the TSC ticks from just before the
//! store to the BSP seeing the acknowledgement. Two target states: halted in the idle loop
//! (`sti; hlt`), and spinning with interrupts on (posted work that spins until the BSP lowers
//! `SPIN`) — the state of a CPU whose guest vCPU spins while another vCPU shoots it down. A ping
//! not acknowledged within a second ends that state's measurement with a warning.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use smp::MAX_CPUS;
use smp::cpuset::CpuSet;

use super::ipi::{self, BENCH_VECTOR};
use super::{percpu, time};

/// Round trips timed per state, spread over the targets in turn.
const SAMPLES: usize = 512;
/// Untimed round trips before each state's timed ones.
const WARMUP: usize = 16;
const PING_TIMEOUT_NS: u64 = 1_000_000_000;

static SEQ: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static ACK: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Raised while the targets should spin; SPINNERS counts those spinning.
static SPIN: AtomicBool = AtomicBool::new(false);
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// Runs the measurement `name` (`argon.bench=`); an unknown name is a warning.
pub fn run(name: &str) {
    match name {
        "ipi" => ipi_round_trip(),
        _ => warn!("unknown bench '{name}' (known: ipi)"),
    }
}

/// The [`BENCH_VECTOR`] handler: acknowledges the latest ping.
pub fn on_ipi() {
    let me = percpu::this_index();
    // Acquire: pairs with the BSP's Release store of the sequence number.
    let seq = SEQ[me].load(Ordering::Acquire);
    // Release: pairs with the BSP's Acquire wait for the acknowledgement.
    ACK[me].store(seq, Ordering::Release);
}

/// Posted work: spins with interrupts on (posted work runs so) until the BSP lowers SPIN.
fn spin(_: u64) -> u64 {
    // Release: pairs with the BSP's Acquire wait for every spinner.
    SPINNERS.fetch_add(1, Ordering::Release);
    // Acquire: pairs with the BSP's Release store that ends the spin.
    while SPIN.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    // Release: as the increment.
    SPINNERS.fetch_sub(1, Ordering::Release);
    0
}

/// Spins until `cond` or a second has passed; whether `cond` held.
fn wait(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = time::now_ns().saturating_add(PING_TIMEOUT_NS);
    while !cond() {
        if time::now_ns() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Times [`SAMPLES`] round trips to `targets` in turn: `[median, p10, p90]` in TSC ticks.
fn sample(targets: CpuSet) -> Option<[u64; 3]> {
    let mut list = [0usize; MAX_CPUS];
    let n = targets.len();
    for (slot, cpu) in list.iter_mut().zip(targets.iter()) {
        *slot = cpu;
    }
    let mut ticks = [0u64; SAMPLES];
    for i in 0..WARMUP + SAMPLES {
        let t = list[i % n];
        // Relaxed: only this CPU writes SEQ.
        let seq = SEQ[t].load(Ordering::Relaxed) + 1;
        let t0 = smp::x86::rdtsc();
        // Release: pairs with the handler's Acquire load.
        SEQ[t].store(seq, Ordering::Release);
        if let Err(e) = ipi::send_ipi(t, BENCH_VECTOR) {
            warn!("bench ipi: sending to CPU {t} failed: {e:?}");
            return None;
        }
        // Acquire: pairs with the handler's Release store.
        if !wait(|| ACK[t].load(Ordering::Acquire) == seq) {
            warn!("bench ipi: CPU {t} did not acknowledge within 1 s");
            return None;
        }
        let dt = smp::x86::rdtsc().wrapping_sub(t0);
        if let Some(slot) = i.checked_sub(WARMUP) {
            ticks[slot] = dt;
        }
    }
    ticks.sort_unstable();
    let at = |q: usize| ticks[(SAMPLES - 1) * q / 100];
    Some([at(50), at(10), at(90)])
}

fn show(r: Option<[u64; 3]>) -> (u64, u64, u64, u64) {
    let [m, p10, p90] = r.unwrap_or([0; 3]);
    (m, p10, p90, time::tsc_delta_ns(0, m))
}

fn ipi_round_trip() {
    let targets = percpu::online().without(percpu::this_index());
    let n = targets.len();
    if n == 0 {
        info!("bench ipi: no other CPU online, nothing to measure");
        return;
    }
    let halted = sample(targets);
    // Release: pairs with the spinners' Acquire loads (`post_work`'s hand-off also orders this
    // store before they start).
    SPIN.store(true, Ordering::Release);
    for cpu in targets.iter() {
        if ipi::post_work(cpu, spin, 0).is_err() {
            warn!("bench ipi: posting the spin to CPU {cpu} failed");
        }
    }
    // Acquire: pairs with each spinner's Release increment.
    let spinning = wait(|| SPINNERS.load(Ordering::Acquire) == n)
        .then(|| sample(targets))
        .flatten();
    // Release: pairs with the spinners' Acquire loads.
    SPIN.store(false, Ordering::Release);
    // Acquire: pairs with each spinner's Release decrement (they are back in the idle loop).
    if !wait(|| SPINNERS.load(Ordering::Acquire) == 0) {
        warn!("bench ipi: a spinning CPU did not stop");
    }
    let (h, h10, h90, hns) = show(halted);
    let (s, s10, s90, sns) = show(spinning);
    info!(
        "bench ipi: targets={n} samples={SAMPLES} halted_median={h} halted_p10={h10} \
         halted_p90={h90} spinning_median={s} spinning_p10={s10} spinning_p90={s90} \
         (TSC ticks; medians {hns} ns halted, {sns} ns spinning)"
    );
}
