//! [`FakeDom`]: a domain of the `hypercall_*` fixture, a `DomainCtx` that records the type
//! changes it is told of (with the CPUs they would flush) and the frames whose caches it flushed.

use std::cell::RefCell;

use hvcore::domain::{DomId, DomainCtx, TypeChange};
use hvcore::flush::{CpuFlushTimes, CpuMask};
use hvcore::mem::Mfn;
use hvcore::testkit::test_xen_l4_slot;

type Hook<'k> = Box<dyn FnMut(TypeChange) + 'k>;

/// A domain: a `DomainCtx` that records type changes with the CPUs they would flush.
pub struct FakeDom<'k> {
    pub id: DomId,
    pub privileged: bool,
    pub io_caps: bool,
    /// vCPU n is loaded on this CPU, if any.
    pub vcpus: Vec<Option<usize>>,
    pub dirty: CpuMask,
    /// Flush times to filter type-change flushes with (none: no filtering).
    pub times: Option<CpuFlushTimes<'k>>,
    /// Each reported type change with the filtered CPU set it flushes.
    pub retypes: RefCell<Vec<(TypeChange, CpuMask)>>,
    /// Called from `flush_retyped` (after recording).
    pub hook: RefCell<Option<Hook<'k>>>,
    /// Each frame whose cache lines were flushed (XSA-402).
    pub cache_flushes: RefCell<Vec<Mfn>>,
}

impl<'k> FakeDom<'k> {
    pub fn new(id: DomId, vcpus: &[Option<usize>], dirty: &[usize]) -> Self {
        Self {
            id,
            privileged: false,
            io_caps: false,
            vcpus: vcpus.to_vec(),
            dirty: dirty.iter().copied().collect(),
            times: None,
            retypes: RefCell::new(Vec::new()),
            hook: RefCell::new(None),
            cache_flushes: RefCell::new(Vec::new()),
        }
    }
}

impl DomainCtx for FakeDom<'_> {
    fn domid(&self) -> DomId {
        self.id
    }
    fn is_privileged(&self) -> bool {
        self.privileged
    }
    fn has_io_caps(&self) -> bool {
        self.io_caps
    }
    fn linear_pt_enabled(&self) -> bool {
        true
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        test_xen_l4_slot(l4, slot)
    }
    fn flush_retyped(&self, change: TypeChange) {
        let mask = self
            .times
            .map_or(self.dirty, |t| t.filter(self.dirty, change.stamp));
        self.retypes.borrow_mut().push((change, mask));
        let hook = self.hook.borrow_mut().take();
        if let Some(mut hook) = hook {
            hook(change);
            *self.hook.borrow_mut() = Some(hook);
        }
    }
    fn flush_frame_cache(&self, mfn: Mfn) {
        self.cache_flushes.borrow_mut().push(mfn);
    }
}
