//! Starting the APs, one at a time: INIT, (10 ms unless under a hypervisor or `nodelay`), SIPI,
//! a second SIPI only if the AP has not taken its trampoline ticket within 200 µs, then a wait
//! for it to check in. An AP that misses its deadline is reported and left out, never fatal.
//!
//! Hand-off to an AP: the BSP fills the snapshot below and the AP's index slot, then stores
//! `state = STARTING` with Release; the AP's first act is an Acquire load of `state`, so it sees
//! everything the BSP wrote before. The AP ends start-up with a CAS STARTING → ONLINE (AcqRel);
//! the BSP, on timeout, with a CAS STARTING → ABANDONED, so exactly one of them wins and a late AP
//! parks itself.

use core::sync::atomic::{AtomicU64, Ordering};

use smp::icr::{Delivery, Dest, Icr};
use smp::madt::CpuList;
use smp::trampoline::{SIPI_PAGE, Trampoline};

use super::percpu::{self, ABANDONED, ONLINE, STARTING};

/// How long an AP has from INIT to checking in.
const CHECK_IN_TIMEOUT_NS: u64 = 2_000_000_000;

/// The BSP's control registers, copied by each AP (CR0 also clears the CD/NW bits INIT sets).
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_CR3: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);

/// Why an AP was left out.
#[derive(Clone, Copy, Debug)]
pub enum ApFailure {
    /// Its APIC ID does not fit xAPIC's 8-bit destination.
    IdTooWide,
    /// An IPI could not be sent.
    Send,
    /// It never ran the trampoline.
    NeverStarted,
    /// It ran the trampoline but did not check in.
    NoCheckIn,
}

/// Starts every AP in `order` (index 0, the BSP, is skipped). Returns how many came online.
///
/// # Safety
///
/// Single-threaded boot on the BSP, after the IDT vectors, the clock and the BSP's APIC are set
/// up; the page at the trampoline address is free.
pub unsafe fn start_aps(order: &CpuList, fast: bool) -> usize {
    let (cr0, cr3, cr4) = smp::x86::read_cr0_cr3_cr4();
    // Relaxed: published to each AP by the STARTING Release.
    BSP_CR0.store(cr0, Ordering::Relaxed);
    BSP_CR3.store(cr3, Ordering::Relaxed);
    BSP_CR4.store(cr4, Ordering::Relaxed);
    let (base, stride) = percpu::ap_stack_layout();
    // SAFETY: single-threaded boot, the low page is free (caller's contract); each ticket used
    // below is an AP index whose stack slot exists; ap_entry is in the image.
    let tramp = match unsafe { Trampoline::install(base, stride, ap_entry) } {
        Ok(t) => t,
        Err(e) => {
            error!("cpu: cannot install the AP trampoline ({e:?}); running on the BSP only");
            return 0;
        }
    };
    let mut started = 0;
    for (index, cpu) in order.cpus().iter().enumerate().skip(1) {
        match start_one(&tramp, index, cpu.apic_id, fast) {
            Ok(()) => started += 1,
            Err(why) => warn!(
                "cpu: CPU {index} (APIC ID {}) left out: {why:?}",
                cpu.apic_id
            ),
        }
    }
    started
}

fn start_one(tramp: &Trampoline, index: usize, apic_id: u32, fast: bool) -> Result<(), ApFailure> {
    let slot = percpu::cpu(index).ok_or(ApFailure::NeverStarted)?;
    let apic = super::lapic();
    let init = Icr::new(Dest::Apic(apic_id), Delivery::Init);
    let sipi = Icr::new(Dest::Apic(apic_id), Delivery::Startup(SIPI_PAGE));
    if init.xapic_high().is_none() && !matches!(apic.mode(), smp::apic::Mode::X2apic) {
        return Err(ApFailure::IdTooWide);
    }
    // Relaxed: published by the Release below.
    slot.apic_id.store(apic_id, Ordering::Relaxed);
    // Release: pairs with the AP's Acquire load in `ap_entry` (publishes the snapshot).
    slot.state.store(STARTING, Ordering::Release);
    tramp.arm(index as u32);
    let deadline = super::time::now_ns() + CHECK_IN_TIMEOUT_NS;
    // SAFETY: this CPU is being started by us alone; INIT/SIPI reach only `apic_id`.
    unsafe { apic.send(init) }.map_err(|_| ApFailure::Send)?;
    if !fast {
        super::time::delay_ns(10_000_000);
    }
    for attempt in 0..2 {
        // SAFETY: as above.
        unsafe { apic.send(sipi) }.map_err(|_| ApFailure::Send)?;
        let wait_until = super::time::now_ns() + 200_000;
        while !tramp.taken() && super::time::now_ns() < wait_until {
            core::hint::spin_loop();
        }
        if tramp.taken() || attempt == 1 {
            break;
        }
    }
    // Acquire: pairs with the AP's ONLINE CAS (its set-up is visible once it is online).
    while slot.state.load(Ordering::Acquire) == STARTING && super::time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    let never_started = tramp.disarm();
    // AcqRel: decides between the AP's check-in and our giving up.
    match slot
        .state
        .compare_exchange(STARTING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
    {
        Err(ONLINE) => Ok(()),
        _ if never_started => Err(ApFailure::NeverStarted),
        _ => Err(ApFailure::NoCheckIn),
    }
}

/// Where each AP arrives from the trampoline, on its own stack, with `index` its ticket.
extern "C" fn ap_entry(index: u64) -> ! {
    let index = index as usize;
    let slot = match percpu::cpu(index).filter(|_| index != 0) {
        // Acquire: pairs with the BSP's STARTING Release.
        Some(s) if s.state.load(Ordering::Acquire) == STARTING => s,
        _ => park(),
    };
    // SAFETY: this AP owns slot `index` (its ticket), and runs this once.
    unsafe { percpu::load_ap_tables(index) };
    // SAFETY: the BSP initialised the shared IDT before the STARTING Release; GDT and TSS are
    // loaded just above.
    unsafe { crate::arch::load_idt() };
    // Relaxed: ordered by the STARTING Acquire above.
    let (cr0, cr3, cr4) = (
        BSP_CR0.load(Ordering::Relaxed),
        BSP_CR3.load(Ordering::Relaxed),
        BSP_CR4.load(Ordering::Relaxed),
    );
    // SAFETY: the BSP's CR0/CR4 are valid for this CPU (same model; this also clears the CD/NW
    // bits INIT left), and its CR3 maps the image and this stack as the trampoline's tables did.
    unsafe {
        core::arch::asm!("mov cr4, {}", "mov cr3, {}", "mov cr0, {}", in(reg) cr4, in(reg) cr3, in(reg) cr0, options(nostack))
    };
    // SAFETY: on this AP with interrupts off, in the mode the BSP chose and checked CPUID for
    // (every CPU of a machine has the same features).
    unsafe { super::lapic().enable(super::ipi::SPURIOUS_VECTOR) };
    // SAFETY: this AP owns slot `index`; nothing relied on the old GS base.
    unsafe { percpu::set_gs_base(index, super::lapic().id()) };
    // SAFETY: once on this AP, interrupts off, GS base and TSS (with rsp0) loaded above.
    unsafe { crate::pv::cpu_init() };
    // AcqRel: pairs with the BSP's Acquire wait and its ABANDONED CAS.
    if slot
        .state
        .compare_exchange(STARTING, ONLINE, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        park();
    }
    percpu::mark_online(index);
    super::ipi::idle_loop()
}

/// Stops this CPU for good (an AP the BSP gave up on, or a stray start).
fn park() -> ! {
    loop {
        // SAFETY: with interrupts masked, hlt stops this CPU until an NMI or INIT.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
