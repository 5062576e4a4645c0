//! The local APIC of the current CPU, in x2APIC mode (MSRs 0x800+) or xAPIC mode (MMIO page).
//!
//! Hand-written rather than the `x2apic` crate: the crate (0.5) drags in `x86_64` 0.15,
//! `raw-cpuid` 10 (a second copy beside the workspace's 11) and `bitflags` 1, and its xAPIC path
//! wants its own mapping of the register page; the dozen registers used here are ~40 lines over
//! [`crate::icr`], whose encodings are host-tested (boot-notes §3).
//!
//! Invariants: every CPU runs its APIC in the same mode, chosen once by the BSP before any AP
//! starts; a [`LocalApic`] value is only made by [`LocalApic::new`], whose caller vouches for
//! that mode and for the MMIO mapping. xAPIC MMIO goes through the direct map with the address in
//! a register (boot-notes pitfall 5). The page is write-back in the page tables; real firmware
//! sets it UC through the MTRRs, which wins, and under QEMU the type does not matter.

use crate::icr::{self, Delivery, Dest, Icr, reg};
use crate::x86::{MSR_APIC_BASE, rdmsr, without_interrupts, wrmsr};

const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_EXTD: u64 = 1 << 10;

/// Which register interface the APICs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    X2apic,
    /// Registers at this virtual address (the direct-map alias of the APIC base).
    Xapic {
        mmio: u64,
    },
}

/// Why an IPI was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The destination APIC ID does not fit xAPIC's 8-bit destination field.
    IdTooWide(u32),
    /// The previous IPI never left the xAPIC (delivery status stuck).
    Stuck,
}

/// The current CPU's local APIC.
#[derive(Clone, Copy, Debug)]
pub struct LocalApic {
    mode: Mode,
}

impl LocalApic {
    /// A handle for `mode`.
    ///
    /// # Safety
    ///
    /// `mode` must be the mode [`LocalApic::enable`] put this CPU's APIC in, and for xAPIC
    /// `mmio` must map the APIC register page for as long as the handle is used.
    pub const unsafe fn new(mode: Mode) -> Self {
        Self { mode }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Switches this CPU's APIC into `self`'s mode and software-enables it with `spurious` as the
    /// spurious vector and a task priority of 0.
    ///
    /// # Safety
    ///
    /// Runs on the CPU being set up, with interrupts disabled. For x2APIC the CPU must support
    /// it; for xAPIC the APIC must not already be in x2APIC mode (leaving it needs a disable).
    pub unsafe fn enable(&self, spurious: u8) {
        // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU.
        let base = unsafe { rdmsr(MSR_APIC_BASE) };
        // SAFETY: enabling the APIC (in xAPIC mode first: the SDM forbids going from disabled
        // straight to x2APIC) keeps the base address bits; the caller owns this CPU's APIC.
        unsafe { wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE) };
        if self.mode == Mode::X2apic {
            // SAFETY: the CPU supports x2APIC (caller's contract); xAPIC → x2APIC is legal.
            unsafe { wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_EXTD) };
        }
        self.write(reg::TPR, 0);
        self.write(reg::SVR, icr::SVR_ENABLE | u32::from(spurious));
        self.write(reg::LVT_TIMER, icr::LVT_MASKED);
    }

    fn read(&self, offset: u32) -> u32 {
        match self.mode {
            // SAFETY: the APIC is in x2APIC mode (constructor contract), so its MSRs exist;
            // reading these registers has no side effect.
            Mode::X2apic => unsafe { rdmsr(icr::x2apic_msr(offset)) as u32 },
            // SAFETY: `mmio` maps the register page (constructor contract); the offset is one of
            // the aligned registers in `icr::reg`.
            Mode::Xapic { mmio } => unsafe {
                ((mmio + u64::from(offset)) as *const u32).read_volatile()
            },
        }
    }

    fn write(&self, offset: u32, value: u32) {
        match self.mode {
            // SAFETY: as in `read`; every write this module makes is to a register of this
            // CPU's APIC with a value the SDM defines.
            Mode::X2apic => unsafe { wrmsr(icr::x2apic_msr(offset), u64::from(value)) },
            // SAFETY: as in `read`.
            Mode::Xapic { mmio } => unsafe {
                ((mmio + u64::from(offset)) as *mut u32).write_volatile(value)
            },
        }
    }

    /// This CPU's APIC ID.
    pub fn id(&self) -> u32 {
        icr::apic_id_from_reg(self.read(reg::ID), self.mode == Mode::X2apic)
    }

    /// Signals the end of the interrupt being serviced.
    pub fn eoi(&self) {
        self.write(reg::EOI, 0);
    }

    /// Sends a fixed interrupt on `vector` to `dest`.
    pub fn send_fixed(&self, dest: Dest, vector: u8) -> Result<(), SendError> {
        // SAFETY: a fixed interrupt only runs the receiver's handler for `vector`.
        unsafe { self.send(Icr::new(dest, Delivery::Fixed(vector))) }
    }

    /// Writes the ICR. Stores made before the call are visible to the receiver's handler.
    ///
    /// # Safety
    ///
    /// INIT, SIPI and NMI reset or interrupt another CPU unconditionally: the caller must own
    /// the target's start-up (or its NMI handling).
    pub unsafe fn send(&self, icr: Icr) -> Result<(), SendError> {
        match self.mode {
            Mode::X2apic => {
                // SAFETY: fences have no side effects. The x2APIC ICR write is not serializing,
                // so mfence+lfence first orders earlier stores before the IPI (as Linux's
                // weak_wrmsr_fence); that is what pairs a mailbox store with the receiver.
                unsafe { core::arch::asm!("mfence", "lfence", options(nostack, preserves_flags)) };
                // SAFETY: the ICR MSR takes the whole value in one write; the caller vouched for
                // the delivery mode.
                unsafe { wrmsr(icr::x2apic_msr(reg::ICR_LOW), icr.0) };
                Ok(())
            }
            Mode::Xapic { .. } => {
                let high = icr.xapic_high().ok_or(SendError::IdTooWide(icr.dest()))?;
                // The high/low pair must not be split by an interrupt handler that sends too.
                without_interrupts(|| {
                    let mut spins = 0u32;
                    while self.read(reg::ICR_LOW) & icr::ICR_SEND_PENDING != 0 {
                        spins += 1;
                        if spins > 10_000_000 {
                            return Err(SendError::Stuck);
                        }
                        core::hint::spin_loop();
                    }
                    // MMIO is uncached, so these stores are ordered after earlier ones.
                    self.write(reg::ICR_HIGH, high);
                    self.write(reg::ICR_LOW, icr.low());
                    Ok(())
                })
            }
        }
    }

    /// Arms the timer: one shot on `vector` after `ticks` timer ticks (divide by 1).
    pub fn timer_oneshot(&self, vector: u8, ticks: u32) {
        self.write(reg::TIMER_DIVIDE, icr::TIMER_DIVIDE_BY_1);
        self.write(reg::LVT_TIMER, u32::from(vector));
        self.write(reg::TIMER_INITIAL, ticks);
    }

    /// Starts the timer masked from `u32::MAX`, for calibration.
    pub fn timer_start_masked(&self) {
        self.write(reg::TIMER_DIVIDE, icr::TIMER_DIVIDE_BY_1);
        self.write(reg::LVT_TIMER, icr::LVT_MASKED);
        self.write(reg::TIMER_INITIAL, u32::MAX);
    }

    /// The timer's current count.
    pub fn timer_current(&self) -> u32 {
        self.read(reg::TIMER_CURRENT)
    }

    /// Stops the timer (an initial count of 0) and masks it.
    pub fn timer_stop(&self) {
        self.write(reg::TIMER_INITIAL, 0);
        self.write(reg::LVT_TIMER, icr::LVT_MASKED);
    }
}

/// Whether this CPU's APIC is already in x2APIC mode (firmware may have switched it).
pub fn in_x2apic_mode() -> bool {
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; reading it has no side effect.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    base & (APIC_BASE_ENABLE | APIC_BASE_EXTD) == APIC_BASE_ENABLE | APIC_BASE_EXTD
}

/// Physical base of the xAPIC register page from IA32_APIC_BASE.
pub fn xapic_phys_base() -> u64 {
    // SAFETY: as in `in_x2apic_mode`.
    let base = unsafe { rdmsr(MSR_APIC_BASE) };
    base & 0x000f_ffff_ffff_f000
}
