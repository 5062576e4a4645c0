//! CPUs: discovery through ACPI, local APIC setup, AP bring-up, per-CPU state, IPIs and time
//! (and `bench`, the boot-time IPI round trip of `argon.bench=ipi`).
//!
//! [`init`] runs once on the BSP after memory set-up: GS base → TSC clock → APIC mode → MADT →
//! IDT vectors → BSP APIC → APs. It never fails: without a MADT, a trampoline or a working AP,
//! Argon runs on the CPUs it has. The APIC mode is chosen once here, before any AP starts, and
//! stored in [`APIC_MODE`]/[`XAPIC_MMIO`] with Relaxed stores that the AP start-up's Release/Acquire
//! hand-off publishes (see `bringup`).

pub mod bench;
mod bringup;
pub mod ipi;
pub mod percpu;
mod selftests;
pub mod time;

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use boot::cmdline::{ApicMode, Options};
use smp::MAX_CPUS;
use smp::apic::{LocalApic, Mode};
use smp::madt::CpuList;

use percpu::online;

const MODE_X2APIC: u8 = 1;
const MODE_XAPIC: u8 = 2;
static APIC_MODE: AtomicU8 = AtomicU8::new(0);
static XAPIC_MMIO: AtomicU64 = AtomicU64::new(0);
/// APs that were tried and left out.
static LEFT_OUT: AtomicU64 = AtomicU64::new(0);
/// The MADT found at boot (direct-map address, length), for `argon.test=dump-madt`.
static MADT: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));

/// How many APs were tried at boot and left out.
fn left_out() -> u64 {
    // Relaxed: written by the BSP during `init`, read later by the BSP.
    LEFT_OUT.load(Ordering::Relaxed)
}

/// The MADT's bytes, if one was found.
fn madt_bytes() -> Option<&'static [u8]> {
    // Relaxed: written by the BSP during `init`, read later by the BSP.
    let (va, len) = (
        MADT.0.load(Ordering::Relaxed),
        MADT.1.load(Ordering::Relaxed),
    );
    // SAFETY: `find_madt` returned these as a valid 'static slice of firmware memory.
    (va != 0).then(|| unsafe { core::slice::from_raw_parts(va as *const u8, len as usize) })
}

/// The current CPU's local APIC, in the mode [`init`] chose.
pub fn lapic() -> LocalApic {
    // Relaxed: written once before any user (see the module comment).
    let mode = match APIC_MODE.load(Ordering::Relaxed) {
        MODE_X2APIC => Mode::X2apic,
        _ => Mode::Xapic {
            mmio: XAPIC_MMIO.load(Ordering::Relaxed),
        },
    };
    // SAFETY: `init` enabled every CPU's APIC in this mode before publishing it, and the xAPIC
    // page is in the permanent direct map.
    unsafe { LocalApic::new(mode) }
}

/// Brings every other CPU online. Returns the number of CPUs online.
pub fn init(options: &Options) -> u32 {
    let t0 = smp::x86::rdtsc();
    // SAFETY: on the BSP, interrupts off, before anything enables them; nothing else programs
    // the 8259s (Argon never uses them).
    unsafe { smp::pic::disable() };
    let facts = smp::x86::cpu_facts();
    // SAFETY: first use of per-CPU state, on the BSP; nothing relies on the old GS base.
    unsafe { percpu::set_gs_base(0, u32::from(facts.initial_apic_id)) };
    // SAFETY: once, on the BSP, single-threaded.
    let (tsc_hz, source) = unsafe { time::init_clock(facts.tsc_hz, t0) };
    info!(
        "cpu: TSC {}.{:03} MHz ({source:?})",
        tsc_hz / 1_000_000,
        tsc_hz / 1000 % 1000
    );

    let x2apic = choose_mode(options, facts.x2apic);
    let mmio = boot::arch::phys_to_virt(smp::apic::xapic_phys_base()).unwrap_or(0);
    if !x2apic && mmio == 0 {
        // No register page to reach: no APIC, no IPIs, no timer; the BSP alone.
        error!("cpu: xAPIC registers outside the direct map; running on the BSP only");
        percpu::mark_online(0);
        info!("1 CPUs online (xapic) in 0.0 ms");
        return 1;
    }
    // Relaxed: published to APs by the start-up hand-off (module comment).
    XAPIC_MMIO.store(mmio, Ordering::Relaxed);
    APIC_MODE.store(
        if x2apic { MODE_X2APIC } else { MODE_XAPIC },
        Ordering::Relaxed,
    );
    // SAFETY: single-threaded boot; the vectors' stubs are ours.
    unsafe { ipi::install_vectors() };
    // SAFETY: on the BSP with interrupts off; x2APIC only when CPUID offers it (choose_mode).
    unsafe { lapic().enable(ipi::SPURIOUS_VECTOR) };
    let bsp_id = lapic().id();
    // SAFETY: the BSP owns slot 0.
    unsafe { percpu::set_gs_base(0, bsp_id) };
    // Release: publishes the BSP's slot to later readers of the online set.
    if let Some(c) = percpu::cpu(0) {
        c.state.store(percpu::ONLINE, Ordering::Release);
    }
    percpu::mark_online(0);
    let apic_hz = time::calibrate_apic_timer();
    debug!("cpu: APIC timer {} kHz", apic_hz / 1000);

    let max = options.max_cpus.map_or(MAX_CPUS, |n| n as usize);
    let mut order = discover(bsp_id, max);
    if options.test.is_some_and(|t| t.as_str() == "ap-timeout") {
        // A CPU that does not exist: its start must time out, be reported, and change nothing.
        order.push(smp::madt::Cpu {
            apic_id: selftests::PHANTOM_APIC_ID,
            acpi_uid: u32::MAX,
        });
    }
    let fast = facts.hypervisor || options.nodelay;
    let t_aps = smp::x86::rdtsc();
    // SAFETY: single-threaded boot on the BSP, after vectors, clock and BSP APIC; the
    // trampoline page (0x8000) lies in the low 1 MiB, which the frame allocator never hands
    // out (boot::memmap::LOW_MEMORY_END).
    let started = unsafe { bringup::start_aps(&order, fast) };
    let left_out = order.len().saturating_sub(1 + started);
    // Relaxed: read later on this CPU only (the ap-timeout self-test).
    LEFT_OUT.store(left_out as u64, Ordering::Relaxed);
    let us = time::tsc_delta_ns(t_aps, smp::x86::rdtsc()) / 1000;
    debug!(
        "cpu: {started} APs started, {left_out} left out, in {us} us (INIT delay {})",
        if fast { "skipped" } else { "10 ms" }
    );
    let n = online().len() as u32;
    let us = time::tsc_delta_ns(t0, smp::x86::rdtsc()) / 1000;
    let mode = if x2apic { "x2apic" } else { "xapic" };
    info!(
        "{n} CPUs online ({mode}) in {}.{} ms",
        us / 1000,
        us % 1000 / 100
    );
    n
}

/// x2APIC when CPUID offers it and `apic=` does not say otherwise; stays in x2APIC when firmware
/// already switched to it (leaving needs a full APIC disable).
fn choose_mode(options: &Options, cpu_has_x2apic: bool) -> bool {
    match options.apic {
        ApicMode::Xapic if smp::apic::in_x2apic_mode() => {
            warn!("cpu: apic=xapic ignored: firmware left the APIC in x2APIC mode");
            true
        }
        ApicMode::Xapic => false,
        ApicMode::X2apic if !cpu_has_x2apic => {
            warn!("cpu: apic=x2apic ignored: the CPU has no x2APIC");
            false
        }
        _ => cpu_has_x2apic,
    }
}

/// The CPUs to start, BSP first. Without a usable MADT, the BSP alone.
fn discover(bsp_id: u32, max: usize) -> CpuList {
    let mut bsp_only = CpuList::new();
    bsp_only.push(smp::madt::Cpu {
        apic_id: bsp_id,
        acpi_uid: 0,
    });
    // SAFETY: a BIOS boot with the early direct map (multiboot loaders run on BIOS firmware).
    let (bytes, pa) = match unsafe { smp::acpi::find_madt() } {
        Ok(found) => found,
        Err(e) => {
            warn!("cpu: no MADT ({e:?}); running on the BSP only");
            return bsp_only;
        }
    };
    // Relaxed: read later on this CPU only (the dump-madt self-test).
    MADT.0.store(bytes.as_ptr() as u64, Ordering::Relaxed);
    MADT.1.store(bytes.len() as u64, Ordering::Relaxed);
    let list = match smp::madt::cpus_from_madt(bytes) {
        Ok(l) => l,
        Err(e) => {
            warn!("cpu: MADT at {pa:#x} rejected: {e}; running on the BSP only");
            return bsp_only;
        }
    };
    let order = list.boot_order(bsp_id, max);
    info!(
        "cpu: MADT at {pa:#x}: {} CPUs enabled, {} online-capable, {} disabled, {} duplicate, {} left out",
        list.len(),
        list.online_capable,
        list.unusable,
        list.duplicates,
        order.dropped,
    );
    order
}

/// Self-tests owned by this module (`argon.test=<name>`); `None` if `name` is not one of them.
pub fn selftest(name: &str) -> Option<Result<(), &'static str>> {
    selftests::run(name)
}
