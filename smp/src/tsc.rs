//! TSC frequency and tick↔nanosecond conversion, as pure arithmetic.
//!
//! The frequency comes from CPUID where the CPU states it (leaf 0x15: crystal × ratio; leaf 0x16:
//! base MHz), else from a PIT measurement (see `pit`). [`Scale`] converts ticks to nanoseconds with
//! a 32.32 fixed-point multiplier, exact to within 1 ns per 2^32 ns and free of overflow for any
//! `u64` tick count (the product is taken in 128 bits).

/// The TSC frequency CPUID states, if it does.
///
/// `leaf15` is `(eax, ebx, ecx)` of leaf 0x15 (denominator, numerator, crystal Hz) and `leaf16_eax`
/// the base frequency in MHz from leaf 0x16; pass `None` for a leaf above the CPU's maximum.
/// Leaf 0x15 with a zero crystal is completed from leaf 0x16 as the SDM describes
/// (crystal = base × eax / ebx).
pub fn hz_from_cpuid(leaf15: Option<(u32, u32, u32)>, leaf16_eax: Option<u32>) -> Option<u64> {
    let base_hz = leaf16_eax
        .map(|mhz| u64::from(mhz & 0xffff) * 1_000_000)
        .filter(|&hz| hz > 0);
    match leaf15 {
        Some((den, num, crystal)) if den != 0 && num != 0 => {
            if crystal != 0 {
                Some(u64::from(crystal) * u64::from(num) / u64::from(den))
            } else {
                // TSC = crystal * num / den, and the base frequency is the TSC frequency.
                base_hz
            }
        }
        _ => base_hz,
    }
}

/// Frequency from `ticks` counted over `ns` nanoseconds; `None` if either is zero.
pub fn hz_from_measurement(ticks: u64, ns: u64) -> Option<u64> {
    if ticks == 0 || ns == 0 {
        return None;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(ns)).ok()
}

/// PIT input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;

/// Nanoseconds of `pit_ticks` PIT input clocks.
pub const fn pit_ticks_to_ns(pit_ticks: u64) -> u64 {
    pit_ticks * 1_000_000_000 / PIT_HZ
}

/// Tick-to-nanosecond conversion for a counter of fixed frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    hz: u64,
    /// ns per tick in 32.32 fixed point.
    mult: u128,
}

impl Scale {
    /// A scale for `hz` ticks per second; `None` for 0 Hz.
    pub fn new(hz: u64) -> Option<Self> {
        (hz != 0).then(|| Self {
            hz,
            mult: (1_000_000_000u128 << 32) / u128::from(hz),
        })
    }

    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Nanoseconds in `ticks` ticks (saturating at `u64::MAX`, some 584 years).
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        u64::try_from((u128::from(ticks) * self.mult) >> 32).unwrap_or(u64::MAX)
    }

    /// Ticks in `ns` nanoseconds (saturating).
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        u64::try_from(u128::from(ns) * u128::from(self.hz) / 1_000_000_000).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_leaves() {
        // Skylake client style: 24 MHz crystal, ratio 2 / 200... (eax=2, ebx=200) → 2.4 GHz.
        assert_eq!(
            hz_from_cpuid(Some((2, 200, 24_000_000)), Some(2400)),
            Some(2_400_000_000)
        );
        // Crystal not enumerated: fall back on the base frequency.
        assert_eq!(
            hz_from_cpuid(Some((2, 192, 0)), Some(2300)),
            Some(2_300_000_000)
        );
        // Leaf 0x15 present but zero (not enumerated), 0x16 absent: unknown.
        assert_eq!(hz_from_cpuid(Some((0, 0, 0)), None), None);
        assert_eq!(hz_from_cpuid(None, None), None);
        assert_eq!(hz_from_cpuid(None, Some(0)), None);
        assert_eq!(hz_from_cpuid(None, Some(3000)), Some(3_000_000_000));
    }

    #[test]
    fn measurement() {
        assert_eq!(
            hz_from_measurement(23_000_000, 10_000_000),
            Some(2_300_000_000)
        );
        assert_eq!(hz_from_measurement(0, 10), None);
        assert_eq!(hz_from_measurement(10, 0), None);
        assert_eq!(pit_ticks_to_ns(PIT_HZ), 1_000_000_000);
    }

    #[test]
    fn scale_round_trips() {
        let s = Scale::new(2_300_000_000).unwrap();
        assert_eq!(s.ticks_to_ns(2_300_000_000), 999_999_999); // fixed point truncates by < 1 ns
        assert!(s.ticks_to_ns(23) == 9 || s.ticks_to_ns(23) == 10);
        assert_eq!(s.ns_to_ticks(1_000_000), 2_300_000);
        assert!(s.ticks_to_ns(u64::MAX) >= s.ticks_to_ns(u64::MAX / 2)); // no overflow panic
        let one_ghz = Scale::new(1_000_000_000).unwrap();
        assert_eq!(one_ghz.ticks_to_ns(123_456_789_012), 123_456_789_012);
        assert_eq!(Scale::new(0), None);
    }

    #[test]
    fn scale_is_monotonic() {
        let s = Scale::new(1_234_567_891).unwrap();
        let mut last = 0;
        for t in (0..10_000_000u64).step_by(997) {
            let ns = s.ticks_to_ns(t);
            assert!(ns >= last);
            last = ns;
        }
    }
}
