//! Test kit: a ready-made world of `HostMem` + frame table + domains for host tests, loom models
//! and benches (`cfg(test)`, `cfg(loom)` or feature `testkit`).
//!
//! [`Kit`] owns the memory, the frame metadata and the flush clock; [`Kit::table`] borrows a
//! [`FrameTable`] over them on demand. [`TestDomain`] implements [`DomainCtx`] with plain
//! fields and counts retype and frame-cache flushes in `sync` atomics (Relaxed: statistics
//! only, read after the threads that wrote them were joined). Pure code, no statics.

extern crate alloc;

use alloc::vec::Vec;

use crate::audit::{AuditReport, AuditScratch, ExtraRef};
use crate::domain::{DomId, DomainCtx, TypeChange};
use crate::flush::FlushClock;
use crate::frame::{FrameInfo, FrameState, FrameTable, PageType};
use crate::mem::{HostMem, Mfn, PhysMem};
use crate::pt::{PTE_A, PTE_D, PTE_NX, PTE_P, PTE_RW, PTE_US, make_pte};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Frame number the test domains' read-only M2P slot points at (outside any test table).
pub const TEST_M2P_FRAME: u64 = 0xF_0000;

/// A domain context with plain fields.
#[derive(Debug)]
pub struct TestDomain {
    /// Domain id.
    pub domid: DomId,
    /// Privileged (control) domain.
    pub privileged: bool,
    /// I/O capabilities.
    pub io_caps: bool,
    /// Linear page tables allowed.
    pub linear_pt: bool,
    /// Another domain whose frames this one may map in L1 entries.
    pub foreign_ok: Option<DomId>,
    /// A special page (like shared_info): L1 entries may map it write-back only.
    pub special: Option<Mfn>,
    /// The CPUs self-snoop: writable WC mappings mark nothing non-coherent.
    pub self_snoop: bool,
    retypes: AtomicU64,
    cache_flushes: AtomicU64,
    last_cache_flush: AtomicU64,
    last_mfn: AtomicU64,
    last_types: AtomicU32,
    last_stamp: AtomicU32,
}

impl TestDomain {
    /// An unprivileged domain without I/O capabilities, linear page tables on.
    pub fn new(domid: DomId) -> Self {
        Self {
            domid,
            privileged: false,
            io_caps: false,
            linear_pt: true,
            foreign_ok: None,
            special: None,
            self_snoop: false,
            retypes: AtomicU64::new(0),
            cache_flushes: AtomicU64::new(0),
            last_cache_flush: AtomicU64::new(0),
            last_mfn: AtomicU64::new(0),
            last_types: AtomicU32::new(0),
            last_stamp: AtomicU32::new(0),
        }
    }

    /// Number of `flush_retyped` calls so far.
    pub fn retypes(&self) -> u64 {
        // Relaxed: statistics.
        self.retypes.load(Ordering::Relaxed)
    }

    /// Number of `flush_frame_cache` calls so far.
    pub fn cache_flushes(&self) -> u64 {
        // Relaxed: statistics.
        self.cache_flushes.load(Ordering::Relaxed)
    }

    /// The frame of the last `flush_frame_cache` call (single-threaded tests), if any.
    pub fn last_cache_flush(&self) -> Option<Mfn> {
        // Relaxed: statistics, written by this thread or one joined since.
        (self.cache_flushes() > 0).then(|| Mfn(self.last_cache_flush.load(Ordering::Relaxed)))
    }

    /// The last reported type change (single-threaded tests), if any.
    pub fn last_retype(&self) -> Option<TypeChange> {
        if self.retypes() == 0 {
            return None;
        }
        // Relaxed: statistics, written by this thread or one joined since.
        let types = self.last_types.load(Ordering::Relaxed);
        Some(TypeChange {
            mfn: Mfn(self.last_mfn.load(Ordering::Relaxed)),
            owner: (types >> 16) as DomId,
            old_type: PageType::from_bits((types & 0xF) as u8).unwrap_or_default(),
            new_type: PageType::from_bits(((types >> 4) & 0xF) as u8).unwrap_or_default(),
            stamp: self.last_stamp.load(Ordering::Relaxed),
        })
    }
}

impl DomainCtx for TestDomain {
    fn domid(&self) -> DomId {
        self.domid
    }
    fn is_privileged(&self) -> bool {
        self.privileged
    }
    fn has_io_caps(&self) -> bool {
        self.io_caps
    }
    fn linear_pt_enabled(&self) -> bool {
        self.linear_pt
    }
    fn may_map_foreign(&self, owner: DomId) -> bool {
        self.privileged || self.foreign_ok == Some(owner)
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        test_xen_l4_slot(l4, slot)
    }
    fn flush_retyped(&self, change: TypeChange) {
        // Relaxed: statistics (see the module head).
        self.last_mfn.store(change.mfn.0, Ordering::Relaxed);
        let types = u32::from(change.old_type.bits())
            | u32::from(change.new_type.bits()) << 4
            | u32::from(change.owner) << 16;
        self.last_types.store(types, Ordering::Relaxed);
        self.last_stamp.store(change.stamp, Ordering::Relaxed);
        self.retypes.fetch_add(1, Ordering::Relaxed);
    }
    fn is_special_page(&self, mfn: Mfn) -> bool {
        self.special == Some(mfn)
    }
    fn cpu_self_snoop(&self) -> bool {
        self.self_snoop
    }
    fn flush_frame_cache(&self, mfn: Mfn) {
        // Relaxed: statistics (see the module head).
        self.last_cache_flush.store(mfn.0, Ordering::Relaxed);
        self.cache_flushes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The hypervisor L4 slot values the test domains install: slot 256 the read-only M2P, slot
/// 258 a supervisor-only self-map, the rest supervisor mappings of frames beyond any test table.
pub fn test_xen_l4_slot(l4: Mfn, slot: usize) -> u64 {
    match slot {
        256 => make_pte(TEST_M2P_FRAME, PTE_P | PTE_US | PTE_A | PTE_NX),
        258 => make_pte(l4.0, PTE_P | PTE_RW | PTE_A | PTE_D | PTE_NX),
        _ => make_pte(
            TEST_M2P_FRAME + 1 + slot as u64,
            PTE_P | PTE_RW | PTE_A | PTE_D,
        ),
    }
}

/// An entry for `frame` with `flags`.
pub fn pte(frame: u64, flags: u64) -> u64 {
    make_pte(frame, flags)
}

/// Memory, frame metadata and a flush clock for `n` frames.
#[derive(Debug)]
pub struct Kit {
    /// Page-table memory.
    pub mem: HostMem,
    /// Frame metadata (the table borrows it).
    pub frames: Vec<FrameInfo>,
    /// The flush clock.
    pub clock: FlushClock,
}

impl Kit {
    /// `n` free frames of 512 entries.
    pub fn new(n: usize) -> Self {
        Self::with_entries(n, crate::mem::ENTRIES_PER_TABLE)
    }

    /// `n` free frames of `entries` entries (loom models use small tables).
    pub fn with_entries(n: usize, entries: usize) -> Self {
        Self {
            mem: HostMem::with_entries(n, entries),
            frames: (0..n).map(|_| FrameInfo::new()).collect(),
            clock: FlushClock::new(),
        }
    }

    /// `n` frames, all assigned to `dom`.
    pub fn with_domain(n: usize, dom: DomId) -> Self {
        let kit = Self::new(n);
        kit.assign_range(0..n as u64, dom);
        kit
    }

    /// Assign every frame in `range` to `dom` (panics if one is not free: test setup).
    pub fn assign_range(&self, range: core::ops::Range<u64>, dom: DomId) {
        for f in range {
            let assigned = self.table().assign(Mfn(f), dom);
            assert!(assigned.is_ok(), "assign {f}: {assigned:?}");
        }
    }

    /// The frame table over this kit.
    pub fn table(&self) -> FrameTable<'_> {
        FrameTable::new(&self.frames, &self.clock)
    }

    /// Write a raw entry (as the guest would through a writable mapping, or a test setting up).
    pub fn write(&self, mfn: u64, index: usize, val: u64) {
        self.mem.write_entry(Mfn(mfn), index, val);
    }

    /// Read an entry.
    pub fn read(&self, mfn: u64, index: usize) -> u64 {
        self.mem.read_entry(Mfn(mfn), index)
    }

    /// The state of frame `mfn` (panics outside the table: test helper).
    pub fn state(&self, mfn: u64) -> FrameState {
        match self.table().state(Mfn(mfn)) {
            Ok(s) => s,
            Err(e) => panic!("state of {mfn}: {e}"),
        }
    }

    /// Audit with `extra` references and no cross-domain permissions beyond `foreign`.
    pub fn audit_with(&self, extra: &[ExtraRef], foreign: &[(DomId, DomId)]) -> AuditReport {
        let mut scratch = alloc::vec![AuditScratch::default(); self.frames.len()];
        self.table()
            .audit(&self.mem, extra, &mut scratch, |mapper, owner| {
                foreign.contains(&(mapper, owner))
            })
    }

    /// Audit with `extra` references.
    pub fn audit(&self, extra: &[ExtraRef]) -> AuditReport {
        self.audit_with(extra, &[])
    }

    /// Panic with the findings unless the audit is clean.
    pub fn assert_clean(&self, extra: &[ExtraRef]) {
        let report = self.audit(extra);
        assert!(
            report.is_clean(),
            "audit found {} discrepancies: {:#?}",
            report.discrepancies(),
            report.findings().collect::<Vec<_>>()
        );
    }
}
