//! Timestamps for the cycle counts: the TSC read between `lfence`s on x86-64 (reference cycles
//! at the TSC's fixed rate, not core clock cycles; `tsc_ghz` measures that rate), and a
//! nanosecond clock elsewhere so the harness still builds on other hosts.

use std::time::{Duration, Instant};

/// The current timestamp, serialised against the code around it (`lfence; rdtsc; lfence`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn now() -> u64 {
    use core::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` is SSE2, part of the x86-64 baseline; it has no memory effects.
    unsafe { _mm_lfence() };
    // SAFETY: `rdtsc` is available on every x86-64 CPU and only reads the time-stamp counter.
    let t = unsafe { _rdtsc() };
    // SAFETY: as above.
    unsafe { _mm_lfence() };
    t
}

/// The current timestamp in nanoseconds since the first call (hosts without a TSC).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub fn now() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The timestamp rate in GHz (ticks per nanosecond), measured against the OS clock over
/// `window`.
pub fn tsc_ghz(window: Duration) -> f64 {
    let (i0, t0) = (Instant::now(), now());
    while i0.elapsed() < window {
        std::hint::spin_loop();
    }
    let (t1, ns) = (now(), i0.elapsed().as_nanos() as f64);
    (t1.wrapping_sub(t0)) as f64 / ns
}

/// The cost of one timing pair itself (median ticks of `now(); now()`), over `samples` pairs.
pub fn overhead(samples: usize) -> f64 {
    let v: Vec<f64> = (0..samples.max(1))
        .map(|_| {
            let t0 = now();
            let t1 = now();
            t1.wrapping_sub(t0) as f64
        })
        .collect();
    crate::stats::median(&v).unwrap_or(0.0)
}

/// The step the timestamp advances by: the greatest common divisor of `samples` deltas
/// between consecutive reads (1 on bare metal; coarser under some hypervisors, which quantises
/// batch-1 figures).
pub fn granularity(samples: usize) -> u64 {
    (0..samples.max(1)).fold(0, |g, _| {
        let t0 = now();
        gcd(g, now().wrapping_sub(t0))
    })
}

/// Greatest common divisor (`gcd(0, x) == x`).
pub fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    #[test]
    fn gcd() {
        assert_eq!(super::gcd(0, 26), 26);
        assert_eq!(super::gcd(52, 78), 26);
        assert_eq!(super::gcd(41, 40), 1);
    }
}
