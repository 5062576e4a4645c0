//! TSC calibration against PIT channel 2 (ports 0x42/0x43, gate on port 0x61), for CPUs whose
//! CPUID does not state the TSC frequency. Bare-metal only; runs once on the BSP.
//!
//! The PIT counts down from 0xffff at 1.193182 MHz. Each endpoint of the measurement is a pair
//! (latched PIT count, TSC) where the TSC is read just before and just after the latch; of a few
//! tries the narrowest pair wins. So a vCPU that is descheduled between an I/O and an `rdtsc`
//! (common under TCG on a loaded host) cannot skew the result: only the pairs' widths count,
//! not what happens between the endpoints.

use crate::tsc::{hz_from_measurement, pit_ticks_to_ns};
use crate::x86::{inb, outb, rdtsc};

/// One endpoint: the PIT count and the TSC in the middle of reading it, with the pair's width.
fn sample() -> (u16, u64, u64) {
    let mut best = (0u16, 0u64, u64::MAX);
    for _ in 0..5 {
        let t0 = rdtsc();
        // SAFETY: the caller of `calibrate_tsc` owns the PIT; 0x80 latches channel 2's count.
        unsafe { outb(0x43, 0x80) };
        // SAFETY: as above: the latched count, low byte then high byte.
        let lo = unsafe { inb(0x42) };
        // SAFETY: as above.
        let hi = unsafe { inb(0x42) };
        let t1 = rdtsc();
        let width = t1.wrapping_sub(t0);
        if width < best.2 {
            best = (u16::from_le_bytes([lo, hi]), t0 + width / 2, width);
        }
    }
    best
}

/// Counts the TSC over at least `ms` milliseconds of PIT time and returns the TSC frequency,
/// or `None` when the PIT does not count (no PIT, or 30 s of TSC passed).
///
/// # Safety
///
/// The caller owns the PIT and port 0x61 (single-threaded boot). `ms` is capped at 40 (the
/// 16-bit count lasts 55 ms; a poll gap longer than that would misread a wrapped count).
pub unsafe fn calibrate_tsc(ms: u64) -> Option<u64> {
    let span = (crate::tsc::PIT_HZ * ms.min(40) / 1000) as u16;
    // SAFETY: the caller owns port 0x61: gate channel 2 on, speaker off.
    let port61 = unsafe { inb(0x61) };
    // SAFETY: as above.
    unsafe { outb(0x61, (port61 & !0x02) | 0x01) };
    // SAFETY: the caller owns the PIT: channel 2, lobyte/hibyte, mode 0, binary, count 0xffff
    // (the second byte starts the count).
    unsafe { outb(0x43, 0xb0) };
    // SAFETY: as above.
    unsafe { outb(0x42, 0xff) };
    // SAFETY: as above.
    unsafe { outb(0x42, 0xff) };
    let (c0, t0, _) = sample();
    loop {
        let (c1, t1, _) = sample();
        let elapsed = c0.wrapping_sub(c1);
        if elapsed >= span {
            return hz_from_measurement(t1.wrapping_sub(t0), pit_ticks_to_ns(u64::from(elapsed)));
        }
        // Bounded: at 10 GHz, 30 s is 3e11 ticks.
        if t1.wrapping_sub(t0) > 300_000_000_000 {
            return None;
        }
    }
}
