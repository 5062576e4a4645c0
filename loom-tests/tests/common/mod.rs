//! Scaffolding shared by the loom models: the model runner and a fresh frame-table [`World`]
//! (`machine` adds CPUs: mailboxes, IPI flags and one modelled TLB each).
//!
//! Everything is built inside `loom::model(|| ...)`, once per explored execution: loom atomics
//! have no const constructor and hvcore has no statics, so every iteration starts from a fresh
//! table. Threads share it through `loom::sync::Arc`. Set-up done on the model's main thread
//! before any `spawn` is sequential (it happens-before every spawned thread), and the checks
//! after `join` run at quiescence, which is where the audit is meaningful.
#![allow(dead_code)]

pub mod machine;

use hvcore::audit::ExtraRef;
use hvcore::domain::{DomId, DomainCtx};
use hvcore::frame::{FrameState, FrameTable, Level, MmError, PageType};
use hvcore::mem::{Mfn, PhysMem};
use hvcore::testkit::{Kit, TestDomain};

pub use hvcore::pt::{PTE_G, PTE_P, PTE_RW, PTE_US, frame_of};
pub use hvcore::testkit::pte;
pub use loom::sync::Arc;

/// The domain that owns every frame of a model.
pub const DOM: DomId = 1;

/// Loom's preemption bound when `LOOM_MAX_PREEMPTIONS` is not set (the runner sets it to 2).
pub const DEFAULT_PREEMPTIONS: usize = 2;

/// Run `f` under loom, exploring every interleaving within the preemption bound
/// (`LOOM_MAX_PREEMPTIONS`, else [`DEFAULT_PREEMPTIONS`]). Prints the number of executions
/// explored (shown with `--nocapture`).
pub fn model<F>(f: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = runs.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom: {} executions in {:.1}s (preemption bound {:?})",
        runs.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        builder.preemption_bound
    );
}

/// A loom thread.
pub fn spawn<T, F>(f: F) -> loom::thread::JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    loom::thread::spawn(f)
}

/// Join a loom thread, re-raising its panic (a model failure) with the same message.
pub fn join<T>(h: loom::thread::JoinHandle<T>) -> T {
    match h.join() {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    }
}

/// A leaf entry mapping `frame` read-write, already in the form `adjust` stores (so validation
/// has nothing to rewrite).
pub fn rw(frame: u64) -> u64 {
    pte(frame, PTE_P | PTE_RW | PTE_US | PTE_G)
}

/// A leaf entry mapping `frame` read-only, already adjusted.
pub fn ro(frame: u64) -> u64 {
    pte(frame, PTE_P | PTE_US | PTE_G)
}

/// `frames` frames of `entries` entries each, all assigned to [`DOM`], plus its context.
#[derive(Debug)]
pub struct World {
    /// Memory, frame metadata and the flush clock.
    pub kit: Kit,
    /// The owning domain (counts its retype flushes; flushes nothing).
    pub dom: TestDomain,
}

impl World {
    /// A fresh world (call inside the model).
    pub fn new(frames: usize, entries: usize) -> Self {
        let kit = Kit::with_entries(frames, entries);
        kit.assign_range(0..frames as u64, DOM);
        Self {
            kit,
            dom: TestDomain::new(DOM),
        }
    }

    /// The frame table.
    pub fn t(&self) -> FrameTable<'_> {
        self.kit.table()
    }

    /// Frame `f`'s state word, decoded (Acquire).
    pub fn s(&self, f: u64) -> FrameState {
        self.kit.state(f)
    }

    /// Raw entry `index` of frame `f` (Acquire).
    pub fn entry(&self, f: u64, index: usize) -> u64 {
        self.kit.mem.read_entry(Mfn(f), index)
    }

    /// Take a general and a `ty` reference on `f` for [`DOM`].
    pub fn get(&self, f: u64, ty: PageType) -> Result<(), MmError> {
        self.t()
            .get_page_and_type(&self.kit.mem, &self.dom, Mfn(f), ty)
    }

    /// Drop a type reference and its general reference.
    pub fn put(&self, f: u64) -> Result<(), MmError> {
        self.t()
            .put_page_and_type(&self.kit.mem, Mfn(f))
            .map(|_| ())
    }

    /// Pin `f` as a table of `level`.
    pub fn pin(&self, f: u64, level: Level) -> Result<(), MmError> {
        self.t().pin(&self.kit.mem, &self.dom, Mfn(f), level)
    }

    /// Unpin `f`.
    pub fn unpin(&self, f: u64) -> Result<(), MmError> {
        self.t().unpin(&self.kit.mem, &self.dom, Mfn(f)).map(|_| ())
    }

    /// `mod_entry` of L1 table `table`, entry `index`, under [`Self::dom`].
    pub fn update(&self, table: u64, index: usize, val: u64) -> Result<(), MmError> {
        self.update_as(&self.dom, table, index, val)
    }

    /// `mod_entry` of L1 table `table`, entry `index`, under `ctx`. An L1 change needs no
    /// hypervisor flush (the guest flushes; spec §5.3), so the update's token is dropped.
    pub fn update_as<C: DomainCtx>(
        &self,
        ctx: &C,
        table: u64,
        index: usize,
        val: u64,
    ) -> Result<(), MmError> {
        self.t()
            .mod_entry(&self.kit.mem, ctx, Mfn(table), Level::L1, index, val, false)
            .map(|u| debug_assert!(!u.needs_flush()))
    }

    /// Make `f` a validated writable frame with no references left (type count 0, `T` =
    /// writable, `V` set): the history of a frame that was mapped read-write and unmapped.
    pub fn writable_history(&self, f: u64) {
        assert_eq!(self.get(f, PageType::Writable), Ok(()));
        assert_eq!(self.put(f), Ok(()));
    }

    /// Assert frame `f` holds exactly `general` general and `typed` type references.
    pub fn assert_counts(&self, f: u64, general: u32, typed: u32) {
        let s = self.s(f);
        assert_eq!(
            (s.general(), s.type_count()),
            (general, typed),
            "frame {f}: (G, C) wrong: {s:?}"
        );
    }

    /// The audit must be clean: every count equals the references that exist (at quiescence).
    pub fn assert_clean(&self) {
        self.assert_clean_with(&[]);
    }

    /// As [`Self::assert_clean`], with references held outside page tables.
    pub fn assert_clean_with(&self, extra: &[ExtraRef]) {
        self.kit.assert_clean(extra);
    }
}
