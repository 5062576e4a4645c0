//! Local APIC register numbers and the interrupt command register (ICR) encoding, as pure values.
//!
//! One encoding serves both modes: the 64-bit value is `destination << 32 | low`, which is the
//! x2APIC ICR MSR as written; in xAPIC mode the high half goes to ICR_HIGH with the (8-bit)
//! destination in bits 24–31 ([`Icr::xapic_high`]) and the low half to ICR_LOW. Field layout from
//! the Intel SDM vol. 3 §11.6.1 and §11.12.9.

/// Register offsets in the xAPIC MMIO page; the x2APIC MSR is `0x800 + offset / 16`.
pub mod reg {
    pub const ID: u32 = 0x20;
    pub const TPR: u32 = 0x80;
    pub const EOI: u32 = 0xb0;
    pub const SVR: u32 = 0xf0;
    pub const ESR: u32 = 0x280;
    pub const ICR_LOW: u32 = 0x300;
    pub const ICR_HIGH: u32 = 0x310;
    pub const LVT_TIMER: u32 = 0x320;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3e0;
}

/// The x2APIC MSR of xAPIC register `offset`.
pub const fn x2apic_msr(offset: u32) -> u32 {
    0x800 + (offset >> 4)
}

/// SVR: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT: masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// Timer divide configuration for "divide by 1".
pub const TIMER_DIVIDE_BY_1: u32 = 0b1011;
/// ICR low: delivery status (xAPIC only): 1 while the previous IPI is still being sent.
pub const ICR_SEND_PENDING: u32 = 1 << 12;

/// Who receives an IPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// One CPU by APIC ID (physical destination mode).
    Apic(u32),
    /// Shorthand: the sender only.
    SelfOnly,
    /// Shorthand: every CPU, the sender included.
    All,
    /// Shorthand: every CPU but the sender.
    AllButSelf,
}

/// What is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A normal interrupt on `vector` (must be 16..=255 to be legal; 32.. in practice).
    Fixed(u8),
    /// NMI (the vector field is ignored).
    Nmi,
    /// INIT, level assert.
    Init,
    /// Start-up IPI: the AP starts in real mode at `page << 12`.
    Startup(u8),
}

/// An ICR value: `destination << 32 | low`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icr(pub u64);

const LEVEL_ASSERT: u32 = 1 << 14;
const SHORTHAND_SHIFT: u32 = 18;

impl Icr {
    /// Encodes an IPI.
    pub const fn new(dest: Dest, delivery: Delivery) -> Self {
        let low = match delivery {
            Delivery::Fixed(v) => v as u32 | LEVEL_ASSERT,
            Delivery::Nmi => 0b100 << 8 | LEVEL_ASSERT,
            Delivery::Init => 0b101 << 8 | LEVEL_ASSERT,
            Delivery::Startup(page) => page as u32 | 0b110 << 8 | LEVEL_ASSERT,
        };
        let (shorthand, id) = match dest {
            Dest::Apic(id) => (0u32, id),
            Dest::SelfOnly => (0b01, 0),
            Dest::All => (0b10, 0),
            Dest::AllButSelf => (0b11, 0),
        };
        Icr((id as u64) << 32 | (low | shorthand << SHORTHAND_SHIFT) as u64)
    }

    /// The low 32 bits (ICR_LOW in xAPIC mode).
    pub const fn low(self) -> u32 {
        self.0 as u32
    }

    /// The destination APIC ID.
    pub const fn dest(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// ICR_HIGH in xAPIC mode, or `None` when the destination does not fit xAPIC's 8 bits.
    pub const fn xapic_high(self) -> Option<u32> {
        if self.dest() > 0xff {
            None
        } else {
            Some(self.dest() << 24)
        }
    }
}

/// The APIC ID from the ID register: all 32 bits in x2APIC mode, bits 24–31 in xAPIC mode.
pub const fn apic_id_from_reg(value: u32, x2apic: bool) -> u32 {
    if x2apic { value } else { value >> 24 }
}

/// Ticks of a counter running at `hz` in `ns` nanoseconds, at least 1, saturating at `u32::MAX`
/// (the width of the APIC timer's initial count).
pub fn timer_ticks(ns: u64, hz: u64) -> u32 {
    let ticks = u128::from(ns) * u128::from(hz) / 1_000_000_000;
    u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_and_startup_match_the_mp_spec_values() {
        // The classic values: INIT assert 0x4500, SIPI 0x4600 | page.
        assert_eq!(
            Icr::new(Dest::Apic(3), Delivery::Init),
            Icr(3 << 32 | 0x4500)
        );
        assert_eq!(
            Icr::new(Dest::Apic(3), Delivery::Startup(8)),
            Icr(3 << 32 | 0x4608)
        );
    }

    #[test]
    fn fixed_ipis_and_shorthands() {
        let one = Icr::new(Dest::Apic(300), Delivery::Fixed(0xf0));
        assert_eq!((one.dest(), one.low()), (300, 0x40f0));
        assert_eq!(one.xapic_high(), None, "ID 300 needs x2APIC");
        assert_eq!(
            Icr::new(Dest::Apic(7), Delivery::Fixed(0x40)).xapic_high(),
            Some(7 << 24)
        );
        assert_eq!(
            Icr::new(Dest::AllButSelf, Delivery::Fixed(0xf1)).low(),
            0xc40f1
        );
        assert_eq!(Icr::new(Dest::All, Delivery::Fixed(0xf1)).low(), 0x840f1);
        assert_eq!(
            Icr::new(Dest::SelfOnly, Delivery::Fixed(0xf1)).low(),
            0x440f1
        );
        assert_eq!(Icr::new(Dest::Apic(1), Delivery::Nmi).low(), 0x4400);
    }

    #[test]
    fn msr_numbers() {
        assert_eq!(x2apic_msr(reg::ID), 0x802);
        assert_eq!(x2apic_msr(reg::EOI), 0x80b);
        assert_eq!(x2apic_msr(reg::SVR), 0x80f);
        assert_eq!(x2apic_msr(reg::ICR_LOW), 0x830);
        assert_eq!(x2apic_msr(reg::LVT_TIMER), 0x832);
        assert_eq!(x2apic_msr(reg::TIMER_DIVIDE), 0x83e);
    }

    #[test]
    fn ids_and_timer_ticks() {
        assert_eq!(apic_id_from_reg(0x0300_0000, false), 3);
        assert_eq!(apic_id_from_reg(0x1234, true), 0x1234);
        assert_eq!(timer_ticks(1_000_000, 1_000_000_000), 1_000_000);
        assert_eq!(timer_ticks(0, 1_000_000_000), 1);
        assert_eq!(timer_ticks(u64::MAX, 1_000_000_000), u32::MAX);
    }
}
