//! Shootdown statistics: the caller-owned counters ([`ShootdownStats`]) and the per-call results
//! ([`FlushStats`], [`Handled`]).
//!
//! Orderings: every counter is `Relaxed`. They are monotonic event counts read for reporting; no
//! decision and no other memory access depends on them, so they pair with nothing.

use super::clock::WrapPending;
use crate::sync::{AtomicU64, Ordering};

/// Shootdown counters, owned by the caller and shared by all CPUs.
#[derive(Debug)]
pub struct ShootdownStats {
    shootdowns: AtomicU64,
    cpus_targeted: AtomicU64,
    ipis_sent: AtomicU64,
    coalesced: AtomicU64,
    filtered_out: AtomicU64,
    full_flushes: AtomicU64,
    va_flushes: AtomicU64,
    wraps: AtomicU64,
}

/// A reading of [`ShootdownStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShootdownCounts {
    /// Shootdowns that posted to at least one other CPU.
    pub shootdowns: u64,
    /// Requests posted to other CPUs (one per target per shootdown).
    pub cpus_targeted: u64,
    /// IPIs sent.
    pub ipis_sent: u64,
    /// Requests posted to a CPU that needed no IPI (it already had one coming, or was serving).
    pub coalesced: u64,
    /// CPUs removed from a flush by the clock filter.
    pub filtered_out: u64,
    /// Full flushes performed by handlers.
    pub full_flushes: u64,
    /// Single-page flushes performed by handlers.
    pub va_flushes: u64,
    /// Clock wraps completed.
    pub wraps: u64,
}

/// Which counter to bump.
#[derive(Debug, Clone, Copy)]
pub(super) enum Counter {
    Shootdowns,
    CpusTargeted,
    IpisSent,
    Coalesced,
    FilteredOut,
    FullFlushes,
    VaFlushes,
    Wraps,
}

impl Default for ShootdownStats {
    fn default() -> Self {
        Self::new()
    }
}

impl ShootdownStats {
    /// All counters at 0.
    pub fn new() -> Self {
        Self {
            shootdowns: AtomicU64::new(0),
            cpus_targeted: AtomicU64::new(0),
            ipis_sent: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            filtered_out: AtomicU64::new(0),
            full_flushes: AtomicU64::new(0),
            va_flushes: AtomicU64::new(0),
            wraps: AtomicU64::new(0),
        }
    }

    fn counter(&self, c: Counter) -> &AtomicU64 {
        match c {
            Counter::Shootdowns => &self.shootdowns,
            Counter::CpusTargeted => &self.cpus_targeted,
            Counter::IpisSent => &self.ipis_sent,
            Counter::Coalesced => &self.coalesced,
            Counter::FilteredOut => &self.filtered_out,
            Counter::FullFlushes => &self.full_flushes,
            Counter::VaFlushes => &self.va_flushes,
            Counter::Wraps => &self.wraps,
        }
    }

    pub(super) fn add(&self, c: Counter, n: u64) {
        if n != 0 {
            // Relaxed: a statistic; nothing is ordered by it (module head).
            self.counter(c).fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Read every counter (Relaxed loads: each value is exact, the set is not one instant).
    pub fn read(&self) -> ShootdownCounts {
        // Relaxed: statistics only (module head).
        let get = |c| self.counter(c).load(Ordering::Relaxed);
        ShootdownCounts {
            shootdowns: get(Counter::Shootdowns),
            cpus_targeted: get(Counter::CpusTargeted),
            ipis_sent: get(Counter::IpisSent),
            coalesced: get(Counter::Coalesced),
            filtered_out: get(Counter::FilteredOut),
            full_flushes: get(Counter::FullFlushes),
            va_flushes: get(Counter::VaFlushes),
            wraps: get(Counter::Wraps),
        }
    }
}

/// What one [`super::Shootdown::flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushStats {
    /// Other CPUs that received the request (after intersecting with the online CPUs).
    pub remote_targets: usize,
    /// IPIs this call sent (never to itself).
    pub ipis_sent: usize,
    /// The calling CPU was in the mask and flushed itself.
    pub local: bool,
    /// The clock wrapped during the call, and the call flushed every other CPU for it.
    pub wrapped: bool,
}

impl FlushStats {
    pub(super) fn absorb(&mut self, other: FlushStats) {
        self.remote_targets += other.remote_targets;
        self.ipis_sent += other.ipis_sent;
        self.local |= other.local;
        self.wrapped |= other.wrapped;
    }
}

/// What one [`super::Shootdown::handle`] did.
#[derive(Debug)]
#[must_use = "a wrapped clock must be completed with Shootdown::complete_wrap"]
pub struct Handled {
    /// Flushes performed (one per take that found a request).
    pub flushes: usize,
    /// The handler was already active on this CPU (this call interrupted it); the outer call
    /// serves whatever this one was meant to.
    pub nested: bool,
    /// A full flush wrapped the clock: outside the interrupt handler, pass this to
    /// [`super::Shootdown::complete_wrap`].
    pub wrap: Option<WrapPending>,
}
