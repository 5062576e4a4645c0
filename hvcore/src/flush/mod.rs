//! TLB coherence (spec §1.7 and §5, DESIGN.md §7): the flush clock, CPU sets, the type-change
//! flush filter, flush tokens and the shootdown protocol.
//!
//! | file           | owns                                                        |
//! |----------------|-------------------------------------------------------------|
//! | `clock.rs`     | the global flush clock, stamps, ticks, the wrap token       |
//! | `cpumask.rs`   | `CpuMask` (value) and `AtomicCpuMask` (dirty / online masks) |
//! | `filter.rs`    | per-CPU last-flush times, NEED_FLUSH filter, flush bracket  |
//! | `token.rs`     | `FlushKind` and the `#[must_use]` `FlushToken`              |
//! | `mailbox.rs`   | one CPU's mailbox: post, coalesce, serve, acknowledge       |
//! | `shootdown.rs` | the protocol: issue → dispatch → wait; `Ipi` and `Tlb` seams |
//! | `stats.rs`     | caller-owned counters and per-call results                  |
//!
//! Each file states the orderings that hold in it. No state here is global: everything lives in
//! structures the caller builds with non-const constructors and lends to a [`Shootdown`] view.

pub mod clock;
pub mod cpumask;
pub mod filter;
mod mailbox;
pub mod shootdown;
pub mod stats;
pub mod token;

pub use clock::{FlushClock, Stamp, Tick, WrapPending};
pub use cpumask::{AtomicCpuMask, CpuIter, CpuMask, MAX_CPUS};
pub use filter::{CpuFlushTime, CpuFlushTimes};
pub use mailbox::Mailbox;
pub use shootdown::{Ipi, Shootdown, Tlb};
pub use stats::{FlushStats, Handled, ShootdownCounts, ShootdownStats};
pub use token::{FlushKind, FlushToken, PAGE_SIZE};

/// Errors of the flush layer's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushError {
    /// More CPUs than a [`CpuMask`] can name.
    TooManyCpus {
        /// The number asked for.
        cpus: usize,
    },
    /// The mailboxes and the flush times do not cover the same CPUs.
    LengthMismatch {
        /// Number of mailboxes.
        mailboxes: usize,
        /// Number of flush-time slots.
        times: usize,
    },
    /// The CPU has no mailbox.
    NoSuchCpu {
        /// The CPU index.
        cpu: usize,
    },
}
