//! vCPUs: the context a vCPU runs with ([`Vcpu`]) and the shared slot around it ([`VcpuSlot`]):
//! the scheduling state word that says who owns the context, the CPU that may hold its
//! translations (Xen's `dirty_cpu`), its page-table bases and its counters.
//!
//! State word: bits 0–2 the run state, bit 8 `DOWN` (`VCPUOP_down` asked it to stop).
//!
//! | run state | meaning | owner of the context |
//! |---|---|---|
//! | `UNINIT` | never initialised | nobody; `VCPUOP_initialise` may claim it |
//! | `BUSY` | being initialised | the initialising CPU |
//! | `PARKED` | initialised, not runnable (down, or its domain stopped) | nobody |
//! | `QUEUED` | in exactly one run queue | nobody |
//! | `RUNNING` | on a CPU | that CPU |
//! | `BLOCKED` | `SCHEDOP_block`ed until `wake_at` (no run queue holds it) | nobody |
//!
//! Every transition is a CAS of the whole word, so a concurrent `DOWN` flip makes it retry and
//! decide again: a vCPU is never lost between "down" and "up". Only the CAS that moves a vCPU
//! to `QUEUED` obliges its caller to push it into a run queue, so it is in at most one queue.
//!
//! Orderings: a CAS that takes ownership (→ `BUSY`, → `RUNNING`) is Acquire and one that gives it
//! up (`BUSY` →, `RUNNING` →) is Release, so each owner's writes to the context happen-before the
//! next owner's reads; the queue adds its own Release/Acquire on top. The `DOWN` flips are AcqRel
//! RMWs on the same word. `dirty_cpu` is swapped AcqRel by the CPU that loads the vCPU (before
//! its CR3 load) and read with an AcqRel RMW by MULTI flushes (after their page-table change):
//! whichever is first in that word's order synchronises with the other, the same argument as
//! `hvcore::flush::cpumask`. The base, deferred-table and GDT mirrors are written by the
//! context's owner and read by the audit and by `destroy` when the domain is quiescent (Relaxed:
//! nothing else rides on them).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub use super::vcpu_ctx::{Request, Vcpu};

const RUN_MASK: u32 = 0x7;
pub const UNINIT: u32 = 0;
pub const BUSY: u32 = 1;
pub const PARKED: u32 = 2;
pub const QUEUED: u32 = 3;
pub const RUNNING: u32 = 4;
pub const BLOCKED: u32 = 5;
const DOWN: u32 = 1 << 8;

/// Counters of one vCPU (Relaxed: statistics, read for the report at the domain's end).
#[repr(C)]
pub struct VcpuStats {
    pub hypercalls: AtomicU64,
    /// Flushes it asked for that reached another CPU.
    pub shootdowns: AtomicU64,
    /// Times its time slice ended with others waiting.
    pub preemptions: AtomicU64,
    /// Times it started on a CPU other than the one it last ran on.
    pub migrations: AtomicU64,
    /// Batches cut short by a continuation (spec §3.6), to be re-issued by the guest.
    pub continuations: AtomicU64,
    /// The CPU it last ran on, plus one (0 = never ran).
    pub last_cpu: AtomicU32,
}

impl VcpuStats {
    pub fn bump(counter: &AtomicU64) {
        // Relaxed: a statistic (type head).
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A vCPU as its domain holds it (see the module head).
#[repr(C)]
pub struct VcpuSlot {
    state: AtomicU32,
    /// CPU index + 1 of the CPU that may hold its translations; 0 = none.
    dirty_cpu: AtomicU32,
    kernel_l4: AtomicU64,
    user_l4: AtomicU64,
    /// The partial table whose de-validation the vCPU owns (`HcEnv::old_table`); 0 = none.
    old_table: AtomicU64,
    /// While `BLOCKED`: the clock time (ns) it becomes runnable again.
    wake_at: AtomicU64,
    /// Its `set_gdt` frames (`pv::desc`), a mirror like the bases.
    pub gdt: crate::pv::desc::GdtRecord,
    pub stats: VcpuStats,
    ctx: UnsafeCell<Vcpu>,
}

// SAFETY: the context is reached only by its owner, which the state word's CAS transitions
// make unique (module head); everything else is atomic.
unsafe impl Sync for VcpuSlot {}

/// What `up` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Up {
    /// Never initialised: `-EINVAL`.
    NotInitialised,
    /// Now `QUEUED`: the caller must push it and kick a CPU.
    Queued,
    /// Already runnable or running; only `DOWN` was cleared (if it was set).
    Already,
}

impl VcpuSlot {
    fn word(&self) -> u32 {
        // Acquire: pairs with the Release transitions, for callers that then read shared data.
        self.state.load(Ordering::Acquire)
    }

    fn cas(&self, old: u32, new: u32, success: Ordering) -> Result<(), u32> {
        self.state
            .compare_exchange(old, new, success, Ordering::Acquire)
            .map(|_| ())
    }

    /// The run state (`UNINIT` … `RUNNING`).
    pub fn run_state(&self) -> u32 {
        self.word() & RUN_MASK
    }

    /// Initialised and not down (`VCPUOP_is_up`).
    pub fn is_up(&self) -> bool {
        let w = self.word();
        !matches!(w & RUN_MASK, UNINIT | BUSY) && w & DOWN == 0
    }

    /// Has `VCPUOP_down` asked it to stop?
    pub fn down_requested(&self) -> bool {
        self.word() & DOWN != 0
    }

    /// The context, for its owner.
    ///
    /// # Safety
    ///
    /// The caller must own the context (it moved the state to `BUSY` or `RUNNING`, or has the
    /// domain to itself) and must not create a second live reference to it.
    #[expect(
        clippy::mut_from_ref,
        reason = "ownership is the state word's, see the module head"
    )]
    pub unsafe fn ctx(&self) -> &mut Vcpu {
        // SAFETY: the caller owns the context exclusively (this function's contract).
        unsafe { &mut *self.ctx.get() }
    }

    /// The context, with the domain held exclusively (building, destroying).
    pub fn ctx_mut(&mut self) -> &mut Vcpu {
        self.ctx.get_mut()
    }

    /// Builder: vCPU 0 starts `QUEUED` (the caller pushes it when the domain starts).
    pub fn set_initial_queued(&mut self) {
        *self.state.get_mut() = QUEUED;
    }

    /// `VCPUOP_initialise`: claim an `UNINIT` vCPU (→ `BUSY`); false if it was initialised.
    pub fn claim_init(&self) -> bool {
        let w = self.word();
        // Acquire: take ownership of the context (module head).
        w & RUN_MASK == UNINIT
            && self
                .cas(w, (w & !RUN_MASK) | BUSY, Ordering::Acquire)
                .is_ok()
    }

    /// End of `VCPUOP_initialise`: `BUSY` → `PARKED` and down (it waits for `VCPUOP_up`), or
    /// back to `UNINIT` if the context was refused.
    pub fn finish_init(&self, ok: bool) {
        let new = if ok { PARKED | DOWN } else { UNINIT };
        // Release: publishes the context to its next owner (module head). Only the claimant
        // moves a BUSY word, apart from DOWN flips, which `new` overrides on purpose.
        self.state.store(new, Ordering::Release);
    }

    /// `VCPUOP_up`: clear `DOWN`; a `PARKED` vCPU becomes `QUEUED`.
    pub fn up(&self) -> Up {
        let mut w = self.word();
        loop {
            let (new, queued) = match w & RUN_MASK {
                UNINIT | BUSY => return Up::NotInitialised,
                PARKED => (QUEUED, true),
                _ => (w & !DOWN, false),
            };
            // AcqRel: the DOWN flip is an RMW of the shared word (module head).
            match self.cas(w, new, Ordering::AcqRel) {
                Ok(()) => return if queued { Up::Queued } else { Up::Already },
                Err(seen) => w = seen,
            }
        }
    }

    /// `VCPUOP_down`: set `DOWN`; returns the CPU running it (to kick), if any.
    pub fn down(&self) -> Option<usize> {
        // AcqRel: as in `up`.
        let w = self.state.fetch_or(DOWN, Ordering::AcqRel);
        (w & RUN_MASK == RUNNING)
            .then(|| self.dirty_cpu())
            .flatten()
    }

    /// The scheduler dequeued this vCPU: `QUEUED` → `RUNNING` (true), or → `PARKED` if it is
    /// down or `stopped` (its domain is shutting down). A stale entry (not `QUEUED`) is false.
    pub fn claim_run(&self, stopped: bool) -> bool {
        let mut w = self.word();
        loop {
            if w & RUN_MASK != QUEUED {
                return false;
            }
            let run = w & DOWN == 0 && !stopped;
            let new = (w & !RUN_MASK) | if run { RUNNING } else { PARKED };
            // AcqRel: the Acquire half moves ownership of the context to this CPU (module head);
            // the Release half keeps the RMW chain of DOWN flips intact.
            match self.cas(w, new, Ordering::AcqRel) {
                Ok(()) => return run,
                Err(seen) => w = seen,
            }
        }
    }

    /// The running vCPU leaves its CPU: → `QUEUED` (true: the caller must push it) if `requeue`
    /// and not down, else → `PARKED`.
    pub fn release(&self, requeue: bool) -> bool {
        let mut w = self.word();
        loop {
            debug_assert_eq!(w & RUN_MASK, RUNNING);
            let queue = requeue && w & DOWN == 0;
            let new = (w & !RUN_MASK) | if queue { QUEUED } else { PARKED };
            // Release: publishes the context to its next owner (module head).
            match self.cas(w, new, Ordering::Release) {
                Ok(()) => return queue,
                Err(seen) => w = seen,
            }
        }
    }

    /// The running vCPU blocks until `wake_at` ns: → `BLOCKED` (true), or → `PARKED` if it is
    /// down (false).
    pub fn block(&self, wake_at: u64) -> bool {
        // Relaxed: published by the Release CAS below.
        self.wake_at.store(wake_at, Ordering::Relaxed);
        let mut w = self.word();
        loop {
            debug_assert_eq!(w & RUN_MASK, RUNNING);
            let blocked = w & DOWN == 0;
            let new = (w & !RUN_MASK) | if blocked { BLOCKED } else { PARKED };
            // Release: publishes the context (module head) and `wake_at`.
            match self.cas(w, new, Ordering::Release) {
                Ok(()) => return blocked,
                Err(seen) => w = seen,
            }
        }
    }

    /// A `BLOCKED` vCPU whose time has come (`now` ≥ `wake_at`) becomes `QUEUED`: true, and the
    /// caller must push it (a DOWN set meanwhile is kept; the scheduler then parks it).
    pub fn wake(&self, now: u64) -> bool {
        let w = self.word();
        // Relaxed: ordered after the Acquire load of the word above (`word`).
        if w & RUN_MASK != BLOCKED || now < self.wake_at.load(Ordering::Relaxed) {
            return false;
        }
        // AcqRel: the DOWN bit rides along; only one waker wins.
        self.cas(w, (w & !RUN_MASK) | QUEUED, Ordering::AcqRel)
            .is_ok()
    }

    /// The CPU that may hold this vCPU's translations (Xen's `dirty_cpu`), for MULTI flushes.
    pub fn dirty_cpu(&self) -> Option<usize> {
        // AcqRel RMW: pairs with the swap in `set_dirty_cpu` (module head).
        let v = self.dirty_cpu.fetch_add(0, Ordering::AcqRel);
        v.checked_sub(1).map(|c| c as usize)
    }

    /// This CPU is about to run the vCPU. Returns the previous `dirty_cpu` (the CPU that still
    /// held its translations, if any) and whether it last ran on another CPU (a migration).
    pub fn set_dirty_cpu(&self, cpu: usize) -> (Option<usize>, bool) {
        // AcqRel: pairs with the RMW in `dirty_cpu` (module head).
        let prev = self.dirty_cpu.swap(cpu as u32 + 1, Ordering::AcqRel);
        // Relaxed: a statistic.
        let last = self.stats.last_cpu.swap(cpu as u32 + 1, Ordering::Relaxed);
        let migrated = last != 0 && last != cpu as u32 + 1;
        (prev.checked_sub(1).map(|c| c as usize), migrated)
    }

    /// CPU `cpu` switched its CR3 away from this vCPU's tables: it no longer holds them (unless
    /// another CPU has taken the vCPU meanwhile, which then owns the word).
    pub fn clear_dirty_cpu(&self, cpu: usize) {
        // Release: the CR3 switch happens-before a reader that no longer sees this CPU.
        let _ = self.dirty_cpu.compare_exchange(
            cpu as u32 + 1,
            0,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// The base in use in guest kernel (`kernel_mode`) or user mode (L4 MFN, 0 = none).
    pub fn base(&self, kernel_mode: bool) -> u64 {
        if kernel_mode {
            self.kernel_l4()
        } else {
            self.user_l4()
        }
    }

    /// The kernel page-table base (L4 MFN, 0 = none).
    pub fn kernel_l4(&self) -> u64 {
        // Relaxed: see the module head.
        self.kernel_l4.load(Ordering::Relaxed)
    }

    /// The user page-table base (L4 MFN, 0 = none).
    pub fn user_l4(&self) -> u64 {
        // Relaxed: see the module head.
        self.user_l4.load(Ordering::Relaxed)
    }

    /// Records the kernel base (by the context's owner, which holds the references).
    pub fn set_kernel_l4(&self, mfn: u64) {
        // Relaxed: see the module head.
        self.kernel_l4.store(mfn, Ordering::Relaxed);
    }

    /// Records the user base (by the context's owner, which holds the references).
    pub fn set_user_l4(&self, mfn: u64) {
        // Relaxed: see the module head.
        self.user_l4.store(mfn, Ordering::Relaxed);
    }

    /// The table whose deferred de-validation the vCPU owns (MFN, 0 = none).
    pub fn old_table(&self) -> u64 {
        // Relaxed: a mirror like the bases (module head).
        self.old_table.load(Ordering::Relaxed)
    }

    /// Records the deferred de-validation (by the context's owner, which holds its references).
    pub fn set_old_table(&self, mfn: u64) {
        // Relaxed: a mirror like the bases (module head).
        self.old_table.store(mfn, Ordering::Relaxed);
    }
}
