//! TLB coherence on this machine (DESIGN.md §7, spec §5): hvcore's flush clock and shootdown
//! protocol, wired to the local APIC and the CPU's TLB.
//!
//! - One [`FlushClock`] and one [`FlushState`] (a mailbox and a last-flush time per CPU, the
//!   flush-online mask, counters) for the whole machine, set once by the BSP ([`init`]) and
//!   shared by every CPU. There is no lock on any flush path: each target is reached through
//!   its own mailbox (hvcore `flush::mailbox`).
//! - Transport: [`Apic`] sends [`SHOOTDOWN_VECTOR`]; its handler ([`on_ipi`]) serves this CPU's
//!   mailbox with [`Cpu`], whose full flush is a CR3 reload (CR4.PGE is off, so that drops every
//!   entry) and whose page flush is `invlpg`.
//! - Every CR3 write of the hypervisor goes through [`load_cr3`], which brackets it with the
//!   clock (tick before, record after, interrupts off in between: the bracket must not nest with
//!   the IPI handler's), so a context switch counts as the full flush it is (spec §5.2).
//! - A clock wrap found inside the IPI handler is parked per CPU and completed by the run loop
//!   ([`finish_wraps`]), outside interrupt context, as hvcore asks.
//! - Latency: the time from posting to the last acknowledgement of every shootdown that reached
//!   another CPU, summed and maxed (Relaxed counters, reported at exit, never asserted on).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use hvcore::flush::{
    AtomicCpuMask, CpuFlushTime, CpuFlushTimes, FlushClock, FlushKind, FlushStats, FlushToken, Ipi,
    Mailbox, Shootdown, ShootdownStats, Stamp, Tlb, WrapPending,
};
use smp::MAX_CPUS;
use smp::x86::without_interrupts;

use super::once::Global;
use crate::cpu::ipi::{self, SHOOTDOWN_VECTOR};
use crate::cpu::percpu;

/// The machine's flush clock, which the frame table stamps with.
pub static CLOCK: Global<FlushClock> = Global::new();
static STATE: Global<FlushState> = Global::new();

/// Per-CPU parking place for a clock wrap found by the IPI handler.
struct Parked([UnsafeCell<Option<WrapPending>>; MAX_CPUS]);

// SAFETY: slot `i` is touched only by CPU `i`, with interrupts off (`on_ipi` runs in its
// interrupt handler, `finish_wraps` masks interrupts).
unsafe impl Sync for Parked {}

/// Everything the shootdown protocol shares between CPUs.
pub struct FlushState {
    mailboxes: [Mailbox; MAX_CPUS],
    times: [CpuFlushTime; MAX_CPUS],
    online: AtomicCpuMask,
    stats: ShootdownStats,
    latency_total_ns: AtomicU64,
    latency_count: AtomicU64,
    latency_max_ns: AtomicU64,
    parked: Parked,
}

/// The machine's flush clock, set up by the first call (the BSP's, before any other CPU can
/// ask: the frame table needs it before any domain exists).
pub fn clock() -> &'static FlushClock {
    loop {
        if let Some(c) = CLOCK.get() {
            return c;
        }
        if let Ok(c) = CLOCK.set(FlushClock::new()) {
            return c;
        }
        // Another CPU is setting it: it is READY in a moment.
        core::hint::spin_loop();
    }
}

/// Sets up the shootdown state and marks every online CPU as a target. Once, on the BSP, after
/// every AP is up and before any domain runs.
pub fn init() {
    let state = FlushState {
        mailboxes: core::array::from_fn(|_| Mailbox::new()),
        times: core::array::from_fn(|_| CpuFlushTime::new()),
        online: AtomicCpuMask::for_cpus(MAX_CPUS),
        stats: ShootdownStats::new(),
        latency_total_ns: AtomicU64::new(0),
        latency_count: AtomicU64::new(0),
        latency_max_ns: AtomicU64::new(0),
        parked: Parked(core::array::from_fn(|_| UnsafeCell::new(None))),
    };
    if STATE.set(state).is_err() {
        return;
    }
    if let Some(sd) = shootdown() {
        for cpu in percpu::online().iter() {
            // Every online CPU has the vector installed and serves it from now on.
            let _ = sd.bring_online(cpu);
        }
    }
}

fn shootdown() -> Option<Shootdown<'static>> {
    let s = STATE.get()?;
    let times = CpuFlushTimes::new(clock(), &s.times);
    Shootdown::new(&s.mailboxes, times, &s.online)
        .ok()
        .map(|sd| sd.with_stats(&s.stats))
}

/// The IPI transport.
pub struct Apic;

impl Ipi for Apic {
    fn send(&self, cpu: usize) {
        // An error means the target is not online; `Shootdown` only targets online CPUs, and
        // CPUs never go offline, so there is nothing to recover.
        let _ = ipi::send_ipi(cpu, SHOOTDOWN_VECTOR);
    }
}

/// This CPU's TLB.
pub struct Cpu;

impl Tlb for Cpu {
    fn flush_all(&self) {
        // SAFETY: reloading CR3 with its own value only drops TLB entries.
        unsafe {
            core::arch::asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack));
        }
    }

    fn flush_va(&self, va: u64) {
        crate::pv::invlpg(va);
    }
}

/// Flushes what `token` names (local part included) and returns once every target has; the
/// shootdown's latency is recorded if it reached another CPU.
pub fn flush_token(token: FlushToken) -> FlushStats {
    let me = percpu::this_index();
    let Some(sd) = shootdown() else {
        // Before `init` only the BSP runs: a local flush covers everything.
        let (targets, kind) = token.into_parts();
        if targets.contains(me) {
            local(kind);
        }
        return FlushStats::default();
    };
    let t0 = smp::x86::rdtsc();
    let stats = sd.flush_token(me, token, &Apic, &Cpu);
    if stats.remote_targets > 0
        && let Some(s) = STATE.get()
    {
        let ns = crate::cpu::time::tsc_delta_ns(t0, smp::x86::rdtsc());
        // Relaxed: statistics (module head).
        s.latency_total_ns.fetch_add(ns, Ordering::Relaxed);
        s.latency_count.fetch_add(1, Ordering::Relaxed);
        s.latency_max_ns.fetch_max(ns, Ordering::Relaxed);
    }
    stats
}

fn local(kind: FlushKind) {
    match kind {
        FlushKind::Full => local_flush(),
        FlushKind::Va(va) => crate::pv::invlpg(va),
    }
}

/// A frame of the domain whose dirty mask is `dirty` changed type (hvcore's `flush_retyped`):
/// flush, fully, every CPU of the mask that has not flushed since `stamp`.
pub fn retyped(dirty: &AtomicCpuMask, stamp: Stamp) -> FlushStats {
    // The snapshot is taken after the type change was published (hvcore's contract).
    let mask = dirty.snapshot();
    let targets = match shootdown() {
        Some(sd) => sd.filter(mask, stamp),
        None => mask,
    };
    if targets.is_empty() {
        return FlushStats::default();
    }
    flush_token(FlushToken::new(targets, FlushKind::Full))
}

/// The shootdown vector's handler (interrupts off).
pub fn on_ipi() {
    let me = percpu::this_index();
    let Some(sd) = shootdown() else { return };
    let handled = sd.handle(me, &Cpu);
    if let (Some(wrap), Some(s)) = (handled.wrap, STATE.get()) {
        // SAFETY: slot `me` is this CPU's, and interrupts are off in this handler (`Parked`).
        unsafe { *s.parked.0[me].get() = Some(wrap) };
    }
}

/// Completes a clock wrap the IPI handler parked on this CPU, if any. Call with interrupts on
/// or off, never from an interrupt handler.
pub fn finish_wraps() {
    let me = percpu::this_index();
    let (Some(s), Some(sd)) = (STATE.get(), shootdown()) else {
        return;
    };
    // SAFETY: slot `me` is this CPU's, read with interrupts off (`Parked`).
    let wrap = without_interrupts(|| unsafe { (*s.parked.0[me].get()).take() });
    if let Some(wrap) = wrap {
        let _ = sd.complete_wrap(me, wrap, &Apic, &Cpu);
    }
}

/// Loads CR3 as a full local flush on the clock (see the module head).
///
/// # Safety
///
/// `value` must address an L4 that maps the hypervisor (slots 261/262 as in the boot L4) and
/// stays valid while it is loaded.
pub unsafe fn load_cr3(value: u64) {
    let me = percpu::this_index();
    let times = STATE.get().map(|s| CpuFlushTimes::new(clock(), &s.times));
    let wrap = without_interrupts(|| {
        let tick = times.map(|t| t.begin_full_flush());
        // SAFETY: the caller guarantees the new tables keep the hypervisor mapped.
        unsafe { core::arch::asm!("mov cr3, {}", in(reg) value, options(nostack)) };
        times
            .zip(tick)
            .and_then(|(t, tick)| t.end_full_flush(me, tick))
    });
    if let (Some(wrap), Some(sd)) = (wrap, shootdown()) {
        let _ = sd.complete_wrap(me, wrap, &Apic, &Cpu);
    }
}

/// A full flush of this CPU's TLB, recorded on the clock.
pub fn local_flush() {
    // SAFETY: the current CR3 maps the hypervisor (it is running) and stays valid.
    unsafe { load_cr3(crate::pv::cr3()) };
}

/// Prints the shootdown statistics (at exit).
pub fn report() {
    let Some(s) = STATE.get() else { return };
    let c = s.stats.read();
    // Relaxed: statistics, read once everything is quiet.
    let n = s.latency_count.load(Ordering::Relaxed);
    let total = s.latency_total_ns.load(Ordering::Relaxed);
    let max = s.latency_max_ns.load(Ordering::Relaxed);
    let mean = total.checked_div(n).unwrap_or(0);
    info!(
        "flush: {} shootdowns sent, {} CPUs targeted, {} IPIs ({} coalesced), {} flushes \
         avoided by the filter; mailboxes served {} full and {} single-page flushes; {} clock \
         wraps",
        c.shootdowns,
        c.cpus_targeted,
        c.ipis_sent,
        c.coalesced,
        c.filtered_out,
        c.full_flushes,
        c.va_flushes,
        c.wraps
    );
    info!(
        "flush: shootdown latency mean {}.{:03} us, max {}.{:03} us over {n} shootdowns \
         (TCG emulator time)",
        mean / 1000,
        mean % 1000,
        max / 1000,
        max % 1000
    );
}
