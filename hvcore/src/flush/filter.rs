//! Per-CPU last-flush times, the type-change flush filter and the local full-flush bracket
//! (spec §1.7).
//!
//! Each CPU owns one [`CpuFlushTime`] slot (cache-line padded: it is written on every full flush
//! and CR3 switch of its CPU, and only read by others). [`CpuFlushTimes`] is a `Copy` view over
//! the caller's slots and the clock.
//!
//! Orderings:
//! - `end_full_flush` stores the CPU's time with `Release` after the flush; the filter loads it
//!   with `Acquire`. A CPU filtered out has therefore finished its flush before the filter returns.
//! - The filter reads the clock (`now`, Acquire) once, *before* the CPU times, and the caller must
//!   have read `page_stamp` so that it happens-after [`FlushClock::stamp`]. Then a post-wrap clock
//!   value also makes every time recorded during the wrap visible (`finish_wrap`'s Release), so a
//!   stale pre-wrap time can never hide a CPU.
//!
//! Precondition of the bracket: `begin_full_flush` … `end_full_flush` of one CPU must not
//! interleave with another bracket of the same CPU (call it with interrupts disabled, as Xen does;
//! [`super::Shootdown::handle`] guards its own). Otherwise an older time could overwrite a newer one
//! across a wrap.

use super::clock::{FlushClock, Stamp, Tick, WrapPending};
use super::cpumask::CpuMask;
use crate::sync::{AtomicU32, Ordering};

/// One CPU's last full-flush time, alone on its cache line. Starts at 0 ("never flushed").
#[derive(Debug)]
#[repr(align(64))]
pub struct CpuFlushTime {
    time: AtomicU32,
}

#[cfg(not(loom))]
const _: () = assert!(core::mem::size_of::<CpuFlushTime>() == 64);

impl Default for CpuFlushTime {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuFlushTime {
    /// A slot for a CPU that has not flushed yet (time 0: every filter keeps it).
    pub fn new() -> Self {
        Self {
            time: AtomicU32::new(0),
        }
    }
}

/// The per-CPU flush times of all CPUs, with the clock they are measured on.
#[derive(Debug, Clone, Copy)]
pub struct CpuFlushTimes<'a> {
    clock: &'a FlushClock,
    slots: &'a [CpuFlushTime],
    clock_enabled: bool,
}

impl<'a> CpuFlushTimes<'a> {
    /// A view over `slots` (one per CPU, index = CPU) with the clock enabled.
    pub fn new(clock: &'a FlushClock, slots: &'a [CpuFlushTime]) -> Self {
        Self {
            clock,
            slots,
            clock_enabled: true,
        }
    }

    /// A view with the clock disabled (Xen's `tlb_clk_enabled = false`, e.g. when the flush is
    /// assisted by an underlying hypervisor): nothing ticks or records, and the filter removes no
    /// CPU. Choose once, before any CPU uses the view; do not mix enabled and disabled views.
    pub fn with_clock_disabled(clock: &'a FlushClock, slots: &'a [CpuFlushTime]) -> Self {
        Self {
            clock,
            slots,
            clock_enabled: false,
        }
    }

    /// The clock these times are measured on.
    pub fn clock(&self) -> &'a FlushClock {
        self.clock
    }

    /// Is the clock enabled?
    pub fn clock_enabled(&self) -> bool {
        self.clock_enabled
    }

    /// Number of CPU slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Are there no slots?
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// CPU `cpu`'s last full-flush time (0 if it has none, or flushed during a wrap).
    ///
    /// # Panics
    /// If `cpu` has no slot.
    pub fn last_flush(&self, cpu: usize) -> Stamp {
        // Acquire: pairs with the Release store in `end_full_flush`.
        self.slots[cpu].time.load(Ordering::Acquire)
    }

    /// May `cpu` still hold a translation last used at `page_stamp`? (Xen's NEED_FLUSH.)
    pub fn need_flush(&self, cpu: usize, page_stamp: Stamp) -> bool {
        if !self.clock_enabled || cpu >= self.slots.len() {
            return true;
        }
        let now = self.clock.now();
        FlushClock::need_flush_at(now, self.last_flush(cpu), page_stamp)
    }

    /// Xen's `tlbflush_filter`: `mask` without the CPUs that did a full flush after
    /// `page_stamp`. CPUs without a slot are kept; with the clock disabled nothing is removed.
    pub fn filter(&self, mask: CpuMask, page_stamp: Stamp) -> CpuMask {
        if !self.clock_enabled {
            return mask;
        }
        // Read the clock once, before the CPU times (see the module head).
        let now = self.clock.now();
        let mut out = mask;
        for cpu in mask.iter().filter(|&c| c < self.slots.len()) {
            if !FlushClock::need_flush_at(now, self.last_flush(cpu), page_stamp) {
                out.clear(cpu);
            }
        }
        out
    }

    /// Start a full local flush: tick the clock (Xen's `pre_flush`). Flush, then pass the tick to
    /// [`Self::end_full_flush`].
    pub fn begin_full_flush(&self) -> Tick {
        if self.clock_enabled {
            self.clock.tick()
        } else {
            Tick::disabled()
        }
    }

    /// Finish a full local flush of `cpu`: record the tick as its last flush time (Xen's
    /// `post_flush`). If the tick wrapped the clock, every other CPU must now be flushed: the
    /// returned token says so.
    ///
    /// # Panics
    /// If `cpu` has no slot.
    #[must_use = "a wrapped clock needs Shootdown::complete_wrap"]
    pub fn end_full_flush(&self, cpu: usize, tick: Tick) -> Option<WrapPending> {
        if !self.clock_enabled {
            return None;
        }
        // Release: this CPU's flush happens-before any filter that reads the new time; pairs with
        // the Acquire load in `last_flush`/`filter`.
        self.slots[cpu].time.store(tick.stamp(), Ordering::Release);
        tick.wrapped().then(WrapPending::new)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn slots(n: usize) -> Vec<CpuFlushTime> {
        (0..n).map(|_| CpuFlushTime::new()).collect()
    }

    #[test]
    fn bracket_records_tick() {
        let clock = FlushClock::new();
        let s = slots(2);
        let t = CpuFlushTimes::new(&clock, &s);
        let tick = t.begin_full_flush();
        assert_eq!(tick.stamp(), 2);
        assert!(t.end_full_flush(1, tick).is_none());
        assert_eq!((t.last_flush(0), t.last_flush(1)), (0, 2));
    }

    #[test]
    fn filter_removes_cpus_that_flushed_after_the_stamp() {
        let clock = FlushClock::new();
        let s = slots(3);
        let t = CpuFlushTimes::new(&clock, &s);
        let before = t.begin_full_flush();
        assert!(t.end_full_flush(0, before).is_none()); // CPU 0 flushed at 2
        let page = clock.stamp(); // page last used at 2
        let after = t.begin_full_flush();
        assert!(t.end_full_flush(1, after).is_none()); // CPU 1 flushed at 3
        let all = CpuMask::first(3).with(7); // CPU 7 has no slot: kept
        assert_eq!(t.filter(all, page), [0, 2, 7].into_iter().collect());
        assert!(t.need_flush(0, page) && !t.need_flush(1, page) && t.need_flush(2, page));
        let off = CpuFlushTimes::with_clock_disabled(&clock, &s);
        assert_eq!(off.filter(all, page), all);
        assert!(off.end_full_flush(1, off.begin_full_flush()).is_none());
        assert_eq!(
            (clock.now(), t.last_flush(1)),
            (3, 3),
            "disabled view neither ticks nor records"
        );
    }
}
