//! The TLB flush clock (spec §1.7).
//!
//! A global counter that ticks before every full local TLB flush. Each CPU records the value it
//! saw after its last full flush; each frame is stamped with the clock when its type count drops
//! to 0. A CPU whose last flush is *after* a frame's stamp cannot hold a stale translation of it.
//!
//! Invariant: every write to the clock is a read-modify-write ([`FlushClock::stamp`],
//! [`FlushClock::tick`], [`FlushClock::finish_wrap`]), so all of them form one release sequence.
//!
//! Orderings:
//! - `stamp` is an `AcqRel` RMW (`fetch_add(0)`). Release: whatever the stamper did before (the
//!   last use of the frame is gone from the page tables) happens-before every later tick, so a CPU
//!   that ticks past the stamp and then flushes cannot refill the old translation. A plain load
//!   would allow the store-buffering outcome. Acquire: pairs with `finish_wrap`, so a filter that
//!   reads a post-wrap stamp also sees every CPU's flush time recorded during the wrap.
//! - `tick` is an `AcqRel` CAS: Acquire pairs with `stamp`'s Release (above); Release makes the
//!   tick visible to later `now`/`stamp`.
//! - `finish_wrap` is an `AcqRel` swap: Release publishes the all-CPU flush of the wrap to every
//!   later `stamp`/`tick`/`now`; Acquire keeps the chain of RMWs unbroken.
//! - `now` is an `Acquire` load, used only by the NEED_FLUSH test (never for stamping).

use crate::sync::{AtomicU32, Ordering};

/// A stamp on the flush clock. 0 is the "clock wrapped, flush everyone" value.
pub type Stamp = u32;

/// The global flush clock. One per hypervisor; borrowed, never a static.
#[derive(Debug)]
pub struct FlushClock {
    clock: AtomicU32,
}

/// What a CPU must do around a full flush: tick first, flush, then record the tick as its last
/// flush time ([`super::CpuFlushTimes::end_full_flush`]). Only [`FlushClock::tick`] makes one.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "record the tick as this CPU's last-flush time after flushing"]
pub struct Tick {
    stamp: Stamp,
    wrapped: bool,
}

impl Tick {
    /// The clock value after the tick; the CPU's new last-flush time.
    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    /// The clock wrapped to 0: every other CPU must flush before the clock restarts.
    pub fn wrapped(&self) -> bool {
        self.wrapped
    }

    /// The tick of a flush while the clock is disabled: records nothing, never wraps.
    pub(super) fn disabled() -> Self {
        Self {
            stamp: 0,
            wrapped: false,
        }
    }
}

/// This CPU's tick wrapped the clock: every other online CPU must be flushed, then the clock
/// restarts at 1. Hand it to [`super::Shootdown::complete_wrap`]; until then every NEED_FLUSH
/// test says "flush". Exactly one exists per wrap (only the tick that produced 0 makes it).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "flush every other CPU with Shootdown::complete_wrap, or the clock stays at 0"]
pub struct WrapPending {
    _private: (),
}

impl WrapPending {
    pub(super) fn new() -> Self {
        Self { _private: () }
    }
}

impl Default for FlushClock {
    fn default() -> Self {
        Self::new()
    }
}

impl FlushClock {
    /// A clock that starts at 1, as Xen's does.
    pub fn new() -> Self {
        Self::starting_at(1)
    }

    /// A clock starting at `value` (tests use this to exercise the wrap).
    pub fn starting_at(value: Stamp) -> Self {
        Self {
            clock: AtomicU32::new(value),
        }
    }

    /// The current clock value, for the NEED_FLUSH test. Not for stamping: use [`Self::stamp`].
    pub fn now(&self) -> Stamp {
        // Acquire: pairs with the Release half of `tick`, `stamp` and `finish_wrap`.
        self.clock.load(Ordering::Acquire)
    }

    /// The value to stamp a frame with when its type count drops to 0 (Xen's
    /// `page_set_tlbflush_timestamp`). Call it after the frame's last use is out of the page
    /// tables, and publish the stamp so that the filter's read of it happens-after this call
    /// (Release store / Acquire load, or inside the frame's type-word CAS).
    pub fn stamp(&self) -> Stamp {
        // AcqRel RMW, not a load: see the module head. Pairs with the AcqRel CAS in `tick` and
        // the AcqRel swap in `finish_wrap`.
        self.clock.fetch_add(0, Ordering::AcqRel)
    }

    /// Tick the clock before a full local flush (Xen's `pre_flush`).
    ///
    /// While the clock is 0 (a wrap in progress) it does not tick; the caller flushes anyway and
    /// records 0.
    pub fn tick(&self) -> Tick {
        // Acquire: pairs with the Release of earlier ticks/stamps/finish_wrap (this value only
        // seeds the CAS, which re-reads with the same ordering on failure).
        let mut cur = self.clock.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                return Tick {
                    stamp: 0,
                    wrapped: false,
                };
            }
            let next = cur.wrapping_add(1);
            // AcqRel: Acquire pairs with `stamp`'s Release (the stamper's unmap happens-before
            // this CPU's flush and later page walks); Release makes the tick visible to `now`.
            match self
                .clock
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Tick {
                        stamp: next,
                        wrapped: next == 0,
                    };
                }
                Err(seen) => cur = seen,
            }
        }
    }

    /// After every other CPU has flushed following a wrap, restart the clock at 1.
    pub(super) fn finish_wrap(&self, wrap: WrapPending) {
        let WrapPending { _private: () } = wrap;
        // AcqRel swap: Release publishes the all-CPU flush (whose acknowledgements the caller
        // acquired) to later `stamp`/`tick`/`now`; being an RMW keeps the release sequence of
        // earlier stamps unbroken. The clock is 0 here: only the tick that produced 0 made `wrap`,
        // and nothing ticks while the clock is 0.
        let prev = self.clock.swap(1, Ordering::AcqRel);
        debug_assert_eq!(prev, 0, "finish_wrap while the clock was not wrapped");
    }

    /// Xen's `NEED_FLUSH(cpu_stamp, page_stamp)` against the current clock.
    pub fn need_flush(&self, cpu_stamp: Stamp, page_stamp: Stamp) -> bool {
        Self::need_flush_at(self.now(), cpu_stamp, page_stamp)
    }

    /// NEED_FLUSH against a clock value `now` read by the caller: may a CPU whose last full flush
    /// was at `cpu_stamp` still hold a translation used at `page_stamp`?
    pub fn need_flush_at(now: Stamp, cpu_stamp: Stamp, page_stamp: Stamp) -> bool {
        // A page stamp newer than `now` predates a wrap, and every CPU flushed at the wrap.
        #[cfg(not(loom_mutant = "need_flush_strict"))]
        let kept = cpu_stamp <= page_stamp;
        // Mutant (caught by loom-tests flush_filter_*): a flush at the stamp's tick counts as
        // after the last use.
        #[cfg(loom_mutant = "need_flush_strict")]
        let kept = cpu_stamp < page_stamp;
        now == 0 || (kept && page_stamp <= now)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tick_counts_and_wraps_once() {
        let c = FlushClock::starting_at(u32::MAX - 1);
        let t = c.tick();
        assert_eq!((t.stamp(), t.wrapped()), (u32::MAX, false));
        let t = c.tick();
        assert_eq!((t.stamp(), t.wrapped()), (0, true));
        // While wrapped the clock does not move and nobody else becomes the leader.
        let t2 = c.tick();
        assert_eq!((t2.stamp(), t2.wrapped()), (0, false));
        assert_eq!(c.stamp(), 0);
        c.finish_wrap(WrapPending::new());
        assert_eq!(c.now(), 1);
        assert_eq!(c.tick().stamp(), 2);
    }

    #[test]
    fn stamp_does_not_move_the_clock() {
        let c = FlushClock::new();
        assert_eq!(c.stamp(), 1);
        assert_eq!(c.stamp(), 1);
        assert_eq!(c.now(), 1);
    }

    #[test]
    fn need_flush_table() {
        // (now, cpu, page, expected)
        let cases = [
            (0, 5, 5, true),   // wrap in progress: always
            (10, 4, 5, true),  // CPU flushed before the page's last use
            (10, 5, 5, true),  // same tick: the use may follow the flush
            (10, 6, 5, false), // CPU flushed after the stamp
            (3, 1, 9, false),  // stamp predates a wrap: everyone flushed at the wrap
            (10, 0, 0, true),  // stamped during a wrap; CPU recorded 0 then: flush
            (10, 1, 0, false), // stamped during a wrap; CPU ticked after the wrap
        ];
        for (now, cpu, page, want) in cases {
            let got = FlushClock::need_flush_at(now, cpu, page);
            assert_eq!(got, want, "now={now} cpu={cpu} page={page}");
        }
    }
}
