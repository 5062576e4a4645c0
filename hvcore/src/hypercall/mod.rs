//! The MMU hypercalls as plain, hardware-free code (spec §3, §4; DESIGN.md §6–7):
//! `mmu_update`, `mmuext_op`, `update_va_mapping` and `update_va_mapping_otherdomain`.
//!
//! Owns: the guest-visible semantics of those hypercalls — argument decoding, the batch loop
//! with its done count and continuations, the per-request rules, the references held by a
//! vCPU's page-table bases, and which flushes each request needs. It owns no state: the
//! hypervisor lends everything through [`HcEnv`] (domains, the calling vCPU, flush and M2P
//! sinks) and [`GuestMem`] (the one checked accessor for guest memory). Reference counting and
//! entry updates are the frame table's and `pt`'s; this module only calls them.
//!
//! | file            | owns                                                              |
//! |-----------------|-------------------------------------------------------------------|
//! | `env.rs`        | [`GuestMem`], [`HcEnv`], [`Base`], [`Ldt`], guest-address checks  |
//! | `error.rs`      | [`HcError`], [`Invalid`] and the one conversion to `Errno`        |
//! | `decode.rs`     | domain arguments (FD, PFD, XSM), guest element reads, vCPU bitmaps |
//! | `batch.rs`      | the batch loop: continuation encoding, preemption, `*pdone`        |
//! | `deferred.rs`   | the vCPU's deferred de-validation (`old_guest_table`, spec §3.6)   |
//! | `leaf.rs`       | L1 entry updates on behalf of FD (Xen's `pg_owner` rules)          |
//! | `mmu_update.rs` | `mmu_update` (spec §3)                                            |
//! | `mmuext.rs`     | `mmuext_op` entry and command dispatch (spec §4.1–4.2)             |
//! | `tables.rs`     | pin / unpin, base pointers, clear / copy page (spec §4.2–4.3)      |
//! | `tlb.rs`        | flush tokens of the TLB commands, SET_LDT, cache flush            |
//! | `uvm.rs`        | `update_va_mapping` and the page-table walk it needs (spec §4.4)   |
//!
//! Flushes leave this module only as [`FlushToken`](crate::flush::FlushToken)s handed to
//! [`HcEnv::flush`]; they are `#[must_use]`, so a computed but forgotten flush is a compiler
//! warning. There are no atomics in this module (the frame table and the environment own them).
//!
//! Continuations (spec §3.6) come from the batch loop and from the deferred de-validation of a
//! dropped L2–L4 table (`deferred`, spec case 55). Not done here, by design of the core:
//! validation is not preemptible (a failed validation unwinds at once, and a table whose last
//! reference is `mod_entry`'s own transient hold is de-validated at once); there are no HVM or
//! translated domains, no XPTI root-table resync and no log-dirty marking.

mod batch;
mod decode;
mod deferred;
mod env;
mod error;
mod leaf;
mod mmu_update;
mod mmuext;
mod tables;
mod tlb;
mod uvm;

pub use decode::pg_owner;
pub use env::{Base, Fault, GuestMem, HcEnv, Ldt, guest_addr_ok, guest_range_ok, is_canonical};
pub use error::{HcError, Invalid};
pub use mmu_update::mmu_update;
pub use mmuext::mmuext_op;
pub use tables::new_baseptr;
pub use uvm::{update_va_mapping, update_va_mapping_otherdomain};

/// How a hypercall ended, for the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the dispatcher must put the result in rax or create the continuation"]
pub enum HcResult {
    /// Finished. `Ok(v)` goes into `rax` as is (0, or `foreigndom` for the internal
    /// "final return value" call of spec §3.2 step 2); `Err(e)` goes in as `e.errno().ret()`.
    Done(Result<i64, HcError>),
    /// Preempted (spec §3.6): rewrite the argument registers with [`Continuation::args`], set
    /// `rax` back to the hypercall number and rewind `rip` over the `syscall`, so the guest
    /// re-executes the call when it next runs.
    Continue(Continuation),
}

impl HcResult {
    /// The value for `rax`, or `None` for a continuation.
    pub fn ret(&self) -> Option<i64> {
        match self {
            HcResult::Done(Ok(v)) => Some(*v),
            HcResult::Done(Err(e)) => Some(e.errno().ret()),
            HcResult::Continue(_) => None,
        }
    }

    /// The error, if the call finished with one.
    pub fn err(&self) -> Option<HcError> {
        match self {
            HcResult::Done(Err(e)) => Some(*e),
            _ => None,
        }
    }
}

/// The arguments a preempted `mmu_update` / `mmuext_op` is re-entered with (same hypercall):
/// `ops` advanced to the first unprocessed element, `count` the remaining elements with
/// [`abi::mmu::MMU_UPDATE_PREEMPTED`] set, `pdone` and `foreigndom` unchanged. `*pdone` already
/// holds the work done so far, and the flag makes the next call add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    /// Guest address of the first unprocessed element (rdi).
    pub ops: u64,
    /// Remaining element count, with the preempted flag (rsi).
    pub count: u32,
    /// The `pdone` guest pointer, unchanged (rdx).
    pub pdone: u64,
    /// `foreigndom`, unchanged (r10).
    pub foreigndom: u32,
}

impl Continuation {
    /// The argument registers rdi, rsi, rdx, r10 in that order.
    pub fn args(&self) -> [u64; 4] {
        [
            self.ops,
            u64::from(self.count),
            self.pdone,
            u64::from(self.foreigndom),
        ]
    }
}
