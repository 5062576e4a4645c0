//! A modelled SMP machine around a [`World`]: per CPU a shootdown mailbox, a flush-time slot, an
//! "interrupt pending" flag and a modelled TLB, plus the owning domain's dirty mask.
//!
//! The TLB caches one virtual page, [`VA`], as `(frame, writable)`. It is private to its CPU's
//! thread (fills and flushes both run there: a remote flush is an IPI whose handler runs on the
//! target), so it is a plain std atomic, not a loom scheduling point. A fill walks the page table
//! with the `PhysMem` Acquire load, so loom may hand it any entry value the memory model allows —
//! that is what makes a missing ordering show up as a stale translation. The walk and the fill
//! are one step with respect to the CPU's own flushes, as an interrupt cannot split a hardware
//! page walk.
//!
//! IPIs: [`Cpu::send`] sets the target's flag (Release); the target takes it at its poll points
//! (Acquire) and runs `Shootdown::handle`. A CPU inside `Shootdown::flush` does not poll
//! (interrupts off): it progresses only by serving its own mailbox, as the protocol promises.
//! [`Cpu`] is also the domain context, so a retype's `flush_retyped` runs on the retyping CPU.

use std::sync::atomic::{AtomicU64 as StdU64, Ordering::Relaxed as StdRelaxed};

use hvcore::domain::{DomId, DomainCtx, TypeChange};
use hvcore::flush::{
    AtomicCpuMask, CpuFlushTime, CpuFlushTimes, CpuMask, FlushKind, Ipi, Mailbox, Shootdown, Tlb,
};
use hvcore::mem::{Mfn, PhysMem};
use hvcore::testkit::test_xen_l4_slot;
use loom::sync::atomic::{AtomicBool, Ordering};

use super::{DOM, PTE_RW, World, frame_of};
use hvcore::pt::present;

/// The one virtual page the modelled TLBs cache.
pub const VA: u64 = 0x40_0000;

const CACHED: u64 = 1 << 63;

/// One CPU's TLB for [`VA`].
#[derive(Debug, Default)]
pub struct ModelTlb {
    /// 0 = nothing cached, else `CACHED | frame << 1 | writable`.
    slot: StdU64,
    flushes: StdU64,
}

impl ModelTlb {
    /// The cached translation of [`VA`].
    pub fn lookup(&self) -> Option<(u64, bool)> {
        let v = self.slot.load(StdRelaxed);
        (v & CACHED != 0).then_some(((v & !CACHED) >> 1, v & 1 != 0))
    }

    /// Translate [`VA`] like a CPU: the cached entry, or a walk of entry `index` of L1 `table`
    /// whose result is cached.
    pub fn walk(&self, w: &World, table: u64, index: usize) -> Option<(u64, bool)> {
        if let Some(hit) = self.lookup() {
            return Some(hit);
        }
        let e = w.kit.mem.read_entry(Mfn(table), index);
        if !present(e) {
            return None;
        }
        let t = (frame_of(e), e & PTE_RW != 0);
        self.slot
            .store(CACHED | t.0 << 1 | u64::from(t.1), StdRelaxed);
        Some(t)
    }

    /// Flushes performed (any kind that covered [`VA`]).
    pub fn flushes(&self) -> u64 {
        self.flushes.load(StdRelaxed)
    }

    fn clear(&self) {
        self.slot.store(0, StdRelaxed);
        self.flushes.fetch_add(1, StdRelaxed);
    }
}

impl Tlb for ModelTlb {
    fn flush_all(&self) {
        self.clear();
    }
    fn flush_va(&self, va: u64) {
        if va == VA {
            self.clear();
        }
    }
}

/// The machine.
#[derive(Debug)]
pub struct Machine {
    /// Frames, page tables and the flush clock (shared with the flush times).
    pub w: World,
    /// One mailbox per CPU.
    pub mailboxes: Vec<Mailbox>,
    /// One last-flush time per CPU.
    pub slots: Vec<CpuFlushTime>,
    /// Online CPUs (all of them).
    pub online: AtomicCpuMask,
    /// The domain's dirty mask: CPUs that may cache its translations.
    pub dirty: AtomicCpuMask,
    /// Interrupt pending, per CPU.
    pub irq: Vec<AtomicBool>,
    /// Modelled TLBs.
    pub tlbs: Vec<ModelTlb>,
    /// Per CPU: its part of the model is over (it only serves interrupts now).
    pub finished: Vec<AtomicBool>,
    /// `flush_retyped` shoots down the filtered CPUs (else it only records them).
    shoot_on_retype: bool,
    /// Last filtered retype target set (word 0), and how many retypes were reported.
    retype_targets: StdU64,
    retypes: StdU64,
}

impl Machine {
    /// `cpus` online CPUs over a fresh `frames` × `entries` world; `dirty` CPUs may cache the
    /// domain's translations.
    pub fn new(
        frames: usize,
        entries: usize,
        cpus: usize,
        dirty: &[usize],
        shoot_on_retype: bool,
    ) -> Self {
        let m = Self {
            w: World::new(frames, entries),
            mailboxes: (0..cpus).map(|_| Mailbox::new()).collect(),
            slots: (0..cpus).map(|_| CpuFlushTime::new()).collect(),
            online: AtomicCpuMask::for_cpus(cpus),
            dirty: AtomicCpuMask::for_cpus(cpus),
            irq: (0..cpus).map(|_| AtomicBool::new(false)).collect(),
            tlbs: (0..cpus).map(|_| ModelTlb::default()).collect(),
            finished: (0..cpus).map(|_| AtomicBool::new(false)).collect(),
            shoot_on_retype,
            retype_targets: StdU64::new(0),
            retypes: StdU64::new(0),
        };
        for cpu in 0..cpus {
            assert!(m.sd().bring_online(cpu).is_ok());
        }
        for &cpu in dirty {
            m.dirty.set(cpu);
        }
        m
    }

    /// Flush times over the world's clock (the one the frame table stamps with).
    pub fn times(&self) -> CpuFlushTimes<'_> {
        CpuFlushTimes::new(&self.w.kit.clock, &self.slots)
    }

    /// The shootdown layer.
    pub fn sd(&self) -> Shootdown<'_> {
        match Shootdown::new(&self.mailboxes, self.times(), &self.online) {
            Ok(sd) => sd,
            Err(e) => panic!("shootdown set-up: {e:?}"),
        }
    }

    /// CPU `id` as a domain context and IPI sender.
    pub fn cpu(&self, id: usize) -> Cpu<'_> {
        Cpu { m: self, id }
    }

    /// The filtered targets of the last retype, and the number of retypes reported.
    pub fn retype_record(&self) -> (CpuMask, u64) {
        let mut words = [0u64; 4];
        words[0] = self.retype_targets.load(StdRelaxed);
        (CpuMask::from_words(words), self.retypes.load(StdRelaxed))
    }

    /// A poll point of CPU `cpu`: take a pending flush IPI, if any.
    pub fn poll(&self, cpu: usize) {
        // Acquire: pairs with the Release in `Cpu::send` (the IPI is delivered after the post).
        if self.irq[cpu].swap(false, Ordering::Acquire) {
            let handled = self.sd().handle(cpu, &self.tlbs[cpu]);
            assert!(handled.wrap.is_none(), "the model's clock cannot wrap");
        }
    }

    /// CPU `cpu` writes to [`VA`] if its TLB holds a writable translation: that translation must
    /// not lead to a validated page table.
    pub fn write_through_tlb(&self, cpu: usize) {
        if let Some((frame, true)) = self.tlbs[cpu].lookup() {
            let s = self.w.s(frame);
            assert!(
                !(s.ty().level().is_some() && s.type_count() > 0 && s.validated()),
                "CPU {cpu} wrote through a stale writable TLB entry to frame {frame}, \
                 now a validated {:?}",
                s.ty()
            );
        }
    }

    /// CPU `cpu` is done with its own work: mark it, then keep taking interrupts (and writing
    /// through its TLB) until every CPU in `others` is done too.
    pub fn idle_until_finished(&self, cpu: usize, others: &[usize]) {
        // Release: pairs with the Acquire loads below on the other CPUs (only a progress flag).
        self.finished[cpu].store(true, Ordering::Release);
        // Acquire: pairs with the Release above.
        while !others
            .iter()
            .all(|&o| self.finished[o].load(Ordering::Acquire))
        {
            self.poll(cpu);
            self.write_through_tlb(cpu);
            loom::thread::yield_now();
        }
        self.poll(cpu);
        self.write_through_tlb(cpu);
    }
}

/// One CPU of the machine: domain context for its hypercalls, and IPI sender.
#[derive(Debug, Clone, Copy)]
pub struct Cpu<'a> {
    m: &'a Machine,
    id: usize,
}

impl Ipi for Cpu<'_> {
    fn send(&self, cpu: usize) {
        assert_ne!(cpu, self.id, "CPU {cpu} sent an IPI to itself");
        // Release: the sender's posts happen-before the handler; pairs with `Machine::poll`.
        // A read-modify-write (the pending bit latches, like an IRR bit), so that it is ordered
        // with the target's `swap`: loom may otherwise let a spinning chain of swaps read around
        // a concurrent plain store forever.
        self.m.irq[cpu].swap(true, Ordering::Release);
    }
}

impl DomainCtx for Cpu<'_> {
    fn domid(&self) -> DomId {
        DOM
    }
    fn is_privileged(&self) -> bool {
        false
    }
    fn has_io_caps(&self) -> bool {
        false
    }
    fn linear_pt_enabled(&self) -> bool {
        true
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        test_xen_l4_slot(l4, slot)
    }
    /// The hypervisor's retype flush: the dirty mask filtered by the frame's stamp; shot down
    /// (a full flush) if the machine says so, recorded either way.
    fn flush_retyped(&self, change: TypeChange) {
        let sd = self.m.sd();
        let targets = sd.filter(self.m.dirty.snapshot(), change.stamp);
        self.m.retype_targets.store(targets.words()[0], StdRelaxed);
        self.m.retypes.fetch_add(1, StdRelaxed);
        if self.m.shoot_on_retype {
            let _ = sd.flush(
                self.id,
                targets,
                FlushKind::Full,
                self,
                &self.m.tlbs[self.id],
            );
        }
    }
    /// No I/O capabilities, so no cache attributes and no frame is ever marked non-coherent.
    fn flush_frame_cache(&self, mfn: Mfn) {
        panic!("frame {mfn:?} flushed, but nothing can mark it non-coherent here");
    }
}
