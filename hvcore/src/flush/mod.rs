//! TLB coherence: the flush clock, CPU sets, the type-change flush filter and the shootdown
//! protocol (spec §1.7 and §5, DESIGN.md §7).

pub mod clock;

pub use clock::{FlushClock, Stamp, Tick};
