//! The TLB flush clock (spec §1.7).
//!
//! A global counter that ticks before every full local TLB flush. Each CPU records the value it
//! saw after its last full flush; each frame is stamped with the clock when its type count drops
//! to 0. A CPU whose last flush is *after* a frame's stamp cannot hold a stale translation of it.
//!
//! Orderings: the tick is `AcqRel` so that a CPU's flush happens-after every stamp taken at an
//! earlier clock value (pairs with the `Acquire` load in [`FlushClock::now`] used for stamping);
//! recording a CPU's flush time is `Release` and pairs with the `Acquire` load in the filter.

use crate::sync::{AtomicU32, Ordering};

/// A stamp on the flush clock. 0 is the "clock wrapped, flush everyone" value.
pub type Stamp = u32;

/// The global flush clock. One per hypervisor; borrowed, never a static.
#[derive(Debug)]
pub struct FlushClock {
    clock: AtomicU32,
}

/// What a CPU must do around a full flush: tick first, flush, then record the returned stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "record the stamp as this CPU's last-flush time after flushing"]
pub struct Tick {
    /// The clock value after the tick; the CPU's new last-flush time.
    pub stamp: Stamp,
    /// The clock wrapped: every other CPU must flush, then call [`FlushClock::finish_wrap`].
    pub wrapped: bool,
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
        Self { clock: AtomicU32::new(value) }
    }

    /// The current clock value, for stamping a frame.
    ///
    /// Acquire: pairs with the `AcqRel` tick, so a stamp is never older than a flush that a CPU
    /// has already recorded.
    pub fn now(&self) -> Stamp {
        self.clock.load(Ordering::Acquire)
    }

    /// Tick the clock before a full local flush (Xen's `pre_flush`).
    ///
    /// While the clock is 0 (a wrap in progress) it does not tick; the caller flushes anyway.
    pub fn tick(&self) -> Tick {
        // AcqRel: the increment must be ordered after earlier stamps (Acquire) and be visible to
        // anyone who later reads the clock to stamp a frame (Release). Pairs with `now`.
        let mut cur = self.clock.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                return Tick { stamp: 0, wrapped: false };
            }
            let next = cur.wrapping_add(1);
            match self.clock.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Tick { stamp: next, wrapped: next == 0 },
                Err(seen) => cur = seen,
            }
        }
    }

    /// After every other CPU has flushed following a wrap, restart the clock at 1.
    pub fn finish_wrap(&self) {
        // Release: publishes the restart after the all-CPU flush; pairs with `now`/`tick`.
        self.clock.store(1, Ordering::Release);
    }

    /// Xen's `NEED_FLUSH(cpu_stamp, page_stamp)`: may a CPU whose last full flush was at
    /// `cpu_stamp` still hold a translation used at `page_stamp`?
    pub fn need_flush(&self, cpu_stamp: Stamp, page_stamp: Stamp) -> bool {
        let now = self.now();
        // A page stamp newer than `now` predates a wrap, and every CPU flushed at the wrap.
        now == 0 || (cpu_stamp <= page_stamp && page_stamp <= now)
    }
}
