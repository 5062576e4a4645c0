//! Time: the TSC frequency (CPUID 0x15/0x16, else PIT channel 2), a monotonic clock in
//! nanoseconds since the TSC was calibrated, and a one-shot local APIC timer per CPU.
//!
//! The clock assumes a TSC that runs at one rate and in step on every CPU (true under QEMU and on
//! CPUs with an invariant TSC, which every x86-64 server since ~2008 has). Its parameters are
//! written once by the BSP before any AP starts and before anyone reads the clock; the Relaxed
//! loads are ordered after those stores by the AP start-up (the `state` Release/Acquire pair in
//! `bringup`) or, on the BSP, by program order.

use core::sync::atomic::{AtomicU64, Ordering};

use smp::icr::timer_ticks;
use smp::tsc::Scale;

use super::ipi::TIMER_VECTOR;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_BASE: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug)]
pub enum TscSource {
    Cpuid,
    Pit,
    /// Neither worked: a guess, so times are only roughly right.
    Assumed,
}

/// Calibrates the TSC and starts the clock at 0. Returns the TSC rate and its source.
///
/// # Safety
///
/// Once, on the BSP, during single-threaded boot (it programs the PIT).
pub unsafe fn init_clock(cpuid_hz: Option<u64>, base_tsc: u64) -> (u64, TscSource) {
    let (hz, src) = match cpuid_hz {
        Some(hz) => (hz, TscSource::Cpuid),
        // SAFETY: single-threaded boot owns the PIT (caller's contract); 10 ms fits 16 bits.
        None => match unsafe { smp::pit::calibrate_tsc(10) } {
            Some(hz) => (hz, TscSource::Pit),
            None => (2_000_000_000, TscSource::Assumed),
        },
    };
    // Relaxed: see the module comment (published by AP start-up or program order).
    TSC_HZ.store(hz, Ordering::Relaxed);
    TSC_BASE.store(base_tsc, Ordering::Relaxed);
    (hz, src)
}

fn scale() -> Option<Scale> {
    // Relaxed: see the module comment.
    Scale::new(TSC_HZ.load(Ordering::Relaxed))
}

/// Nanoseconds since the clock started (0 before calibration).
pub fn now_ns() -> u64 {
    // Relaxed: see the module comment.
    let base = TSC_BASE.load(Ordering::Relaxed);
    scale().map_or(0, |s| s.ticks_to_ns(smp::x86::rdtsc().saturating_sub(base)))
}

/// Nanoseconds between two TSC readings.
pub fn tsc_delta_ns(from: u64, to: u64) -> u64 {
    scale().map_or(0, |s| s.ticks_to_ns(to.saturating_sub(from)))
}

/// Busy-waits `ns` nanoseconds.
pub fn delay_ns(ns: u64) {
    let end = now_ns().saturating_add(ns);
    while now_ns() < end {
        core::hint::spin_loop();
    }
}

/// One (timer count, TSC) pair: the narrowest of a few, with the TSC read around the count, so
/// a descheduled vCPU cannot skew it.
fn timer_sample(apic: &smp::apic::LocalApic) -> (u32, u64) {
    let mut best = (0, 0, u64::MAX);
    for _ in 0..5 {
        let t0 = smp::x86::rdtsc();
        let count = apic.timer_current();
        let width = smp::x86::rdtsc().wrapping_sub(t0);
        if width < best.2 {
            best = (count, t0 + width / 2, width);
        }
    }
    (best.0, best.1)
}

/// Measures the APIC timer's rate against the TSC over 2 ms (on the BSP; every CPU's timer runs
/// from the same clock). Returns it.
pub fn calibrate_apic_timer() -> u64 {
    let apic = super::lapic();
    apic.timer_start_masked();
    let (c0, t0) = timer_sample(&apic);
    delay_ns(2_000_000);
    let (c1, t1) = timer_sample(&apic);
    apic.timer_stop();
    let hz = smp::tsc::hz_from_measurement(u64::from(c0.saturating_sub(c1)), tsc_delta_ns(t0, t1))
        .unwrap_or(1_000_000_000);
    // Relaxed: written before the APs start (see the module comment).
    APIC_TIMER_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// Arms this CPU's one-shot timer to fire [`TIMER_VECTOR`] in `delta_ns` (replacing any armed
/// shot). Delays beyond the counter's range are cut to its maximum (seconds at GHz rates).
pub fn arm_oneshot(delta_ns: u64) {
    // Relaxed: see the module comment.
    let hz = APIC_TIMER_HZ.load(Ordering::Relaxed);
    super::lapic().timer_oneshot(TIMER_VECTOR, timer_ticks(delta_ns, hz));
}

/// Disarms this CPU's timer.
pub fn cancel_oneshot() {
    super::lapic().timer_stop();
}

/// The timer interrupt: counts the expiry and tells the scheduler (a time slice may be over).
pub fn on_timer() {
    // Relaxed: read by the same CPU, or by a test after a Release/Acquire hand-off.
    super::percpu::this_cpu()
        .timer_fired
        .fetch_add(1, Ordering::Relaxed);
    crate::domain::sched::on_timer();
}
