//! Shared fixture of the `hypercall_*` tests: a fake [`HcEnv`] over a `testkit::Kit`, three
//! domains, a few vCPUs and a fake [`GuestMem`] over byte buffers.
//!
//! Frames (64): domain 1 (unprivileged, the default caller) owns 0..24, domain 2 (unprivileged)
//! 24..40, domain 0 (privileged, I/O capable) 40..48; 48..64 are free. Frame 0x1000 and up are
//! not RAM (MMIO). vCPUs: domain 1 has vCPU 0 on CPU 0, vCPU 1 on CPU 1 and vCPU 2 loaded
//! nowhere, dirty mask {0, 1, 3} (CPU 3 switched to idle lazily); domain 2 has vCPU 0 on CPU 2,
//! dirty {2}; domain 0 has vCPU 0 on CPU 5, dirty {5}. The hypercalls run on CPU 0.
//!
//! Guest memory: [`GUEST`] .. +256 KiB (request arrays at [`REQS`], `*pdone` at [`PDONE`], a
//! vCPU bitmap at [`MASK`]) and the last page below 2^47 ([`TOP`]). Every flush the env is
//! handed and every type change the domains report is recorded.
#![allow(dead_code, unused_imports)]

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

pub use abi::domid::{DOMID_IO, DOMID_SELF, DOMID_XEN};
pub use abi::errno::Errno;
pub use abi::mmu::{MMU_UPDATE_PREEMPTED, MmuCmd, MmuUpdate};
pub use abi::mmuext::{MmuextCmd, MmuextOp};
pub use abi::uvmf::{UVMF_ALL, UVMF_INVLPG, UVMF_LOCAL, UVMF_MULTI, UVMF_NONE, UVMF_TLB_FLUSH};
pub use abi::wire::Wire;
pub use hvcore::audit::ExtraRef;
pub use hvcore::domain::{DomId, DomainCtx, TypeChange};
pub use hvcore::flush::{CpuFlushTime, CpuFlushTimes, CpuMask, FlushKind, FlushToken};
pub use hvcore::frame::{FrameState, FrameTable, Level, MmError, PageType};
pub use hvcore::hypercall::*;
pub use hvcore::mem::{Mfn, PhysMem};
pub use hvcore::pt::*;
pub use hvcore::testkit::{Kit, pte, test_xen_l4_slot};

mod dom;
mod guest;
pub use dom::FakeDom;
pub use guest::FakeGuest;

pub const D0: DomId = 0;
pub const D1: DomId = 1;
pub const D2: DomId = 2;
pub const FRAMES: usize = 64;
/// A free frame.
pub const FREE: u64 = 50;
/// A non-RAM frame.
pub const MMIO: u64 = 0x1000;

pub const GUEST: u64 = 0x10_0000;
pub const GUEST_LEN: usize = 0x4_0000;
pub const REQS: u64 = GUEST;
pub const PDONE: u64 = GUEST + 0x3_F000;
pub const MASK: u64 = GUEST + 0x3_F100;
pub const TOP: u64 = (1 << 47) - 0x1000;
/// What `*pdone` holds before a call.
pub const SENTINEL: u32 = 0xDEAD;

/// The RO M2P L4 entry the env reports (distinct from what validation installs).
pub const RO_M2P_L4E: u64 = 0x000F_0000_0000_0005;

/// The kit: 64 frames owned as described in the module head.
pub fn kit() -> Kit {
    let k = Kit::new(FRAMES);
    k.assign_range(0..24, D1);
    k.assign_range(24..40, D2);
    k.assign_range(40..48, D0);
    k
}

/// The fake hypervisor.
pub struct FakeEnv<'k> {
    pub kit: &'k Kit,
    pub doms: Vec<FakeDom<'k>>,
    pub caller: DomId,
    pub cpu: usize,
    pub guest: FakeGuest,
    pub kernel_base: Option<Mfn>,
    pub user_base: Option<Mfn>,
    /// The vCPU's deferred de-validation (`old_guest_table`).
    pub old_table: Option<Mfn>,
    /// Every `set_base` call.
    pub base_loads: Vec<(Base, Option<Mfn>)>,
    pub ldt: Ldt,
    /// The vCPU has shadow-mapped LDT pages (dropped by the next `set_ldt`).
    pub ldt_shadow: bool,
    pub m2p: RefCell<BTreeMap<u64, u64>>,
    pub m2p_strict: bool,
    /// Every flush handed over.
    pub flushes: Vec<(CpuMask, FlushKind)>,
    pub cache_flushes: u32,
    /// `preempt_pending` fires on every n-th poll.
    pub preempt_every: Option<u32>,
    pub polls: Cell<u32>,
}

impl<'k> FakeEnv<'k> {
    pub fn new(kit: &'k Kit) -> Self {
        let mut d0 = FakeDom::new(D0, &[Some(5)], &[5]);
        d0.privileged = true;
        d0.io_caps = true;
        let d1 = FakeDom::new(D1, &[Some(0), Some(1), None], &[0, 1, 3]);
        let d2 = FakeDom::new(D2, &[Some(2)], &[2]);
        let guest = FakeGuest {
            regions: vec![
                (GUEST, RefCell::new(vec![0; GUEST_LEN])),
                (TOP, RefCell::new(vec![0; 0x1000])),
            ],
            writes: Cell::new(0),
        };
        Self {
            kit,
            doms: vec![d0, d1, d2],
            caller: D1,
            cpu: 0,
            guest,
            kernel_base: None,
            user_base: None,
            old_table: None,
            base_loads: Vec::new(),
            ldt: Ldt::default(),
            ldt_shadow: false,
            m2p: RefCell::new(BTreeMap::new()),
            m2p_strict: false,
            flushes: Vec::new(),
            cache_flushes: 0,
            preempt_every: None,
            polls: Cell::new(0),
        }
    }

    pub fn dom(&self, id: DomId) -> &FakeDom<'k> {
        self.doms.iter().find(|d| d.id == id).expect("test domain")
    }
    pub fn dom_mut(&mut self, id: DomId) -> &mut FakeDom<'k> {
        self.doms
            .iter_mut()
            .find(|d| d.id == id)
            .expect("test domain")
    }
    pub fn t(&self) -> FrameTable<'k> {
        self.kit.table()
    }
    pub fn s(&self, f: u64) -> FrameState {
        self.kit.state(f)
    }

    // --- guest memory ---
    pub fn put<T: Wire>(&self, va: u64, items: &[T]) {
        let mut buf = vec![0u8; T::SIZE];
        for (i, item) in items.iter().enumerate() {
            item.write_to(&mut buf).unwrap();
            self.guest.write(va + (i * T::SIZE) as u64, &buf).unwrap();
        }
    }
    pub fn put_u32(&self, va: u64, v: u32) {
        self.guest.write(va, &v.to_le_bytes()).unwrap();
    }
    pub fn put_u64(&self, va: u64, v: u64) {
        self.guest.write(va, &v.to_le_bytes()).unwrap();
    }
    pub fn get_u32(&self, va: u64) -> u32 {
        let mut b = [0u8; 4];
        self.guest.read(va, &mut b).unwrap();
        u32::from_le_bytes(b)
    }
    pub fn pdone(&self) -> u32 {
        self.get_u32(PDONE)
    }

    // --- calls ---
    /// `mmu_update` of `reqs` (placed at [`REQS`]), `*pdone` preset to [`SENTINEL`].
    pub fn mmu(&mut self, reqs: &[MmuUpdate], foreigndom: u32) -> HcResult {
        self.put(REQS, reqs);
        self.put_u32(PDONE, SENTINEL);
        mmu_update(self, REQS, reqs.len() as u32, PDONE, foreigndom)
    }
    /// `mmuext_op` of `ops` (placed at [`REQS`]), `*pdone` preset to [`SENTINEL`].
    pub fn ext(&mut self, ops: &[MmuextOp], foreigndom: u32) -> HcResult {
        self.put(REQS, ops);
        self.put_u32(PDONE, SENTINEL);
        mmuext_op(self, REQS, ops.len() as u32, PDONE, foreigndom)
    }
    /// One `mmuext_op` for the caller's own domain.
    pub fn ext1(&mut self, cmd: MmuextCmd, arg1: u64, arg2: u64) -> HcResult {
        self.ext(&[MmuextOp::new(cmd, arg1, arg2)], DOMID_SELF as u32)
    }
    /// Build and install domain 1's kernel tables: L4 1 → L3 2 (slot 0) → L2 3 (slot 1) → L1 4
    /// (slot 1), so that [`va`]`(i)` is mapped by entry `i` of L1 4. L4 1 becomes the kernel
    /// base through NEW_BASEPTR (which validates the tree).
    pub fn install_tree(&mut self) {
        self.kit.write(1, 0, pte(2, PTE_P | PTE_RW));
        self.kit.write(2, 1, pte(3, PTE_P | PTE_RW));
        self.kit.write(3, 1, pte(4, PTE_P | PTE_RW));
        let r = self.ext1(MmuextCmd::NewBaseptr, 1, 0);
        assert_eq!(r, HcResult::Done(Ok(0)), "install the kernel base");
        self.base_loads.clear();
        self.flushes.clear();
    }

    /// The references held outside page tables: the bases and the deferred table.
    pub fn extras(&self) -> Vec<ExtraRef> {
        let bases = [self.kernel_base, self.user_base].into_iter().flatten();
        bases
            .map(|mfn| ExtraRef {
                mfn,
                ty: Some(PageType::L4),
            })
            .chain(self.old_table.map(|mfn| ExtraRef {
                mfn,
                ty: Some(self.s(mfn.0).ty()),
            }))
            .collect()
    }

    /// The frame table agrees with the page tables (cross-domain maps by domain 0 allowed).
    pub fn assert_clean(&self) {
        let report = self.kit.audit_with(&self.extras(), &[(D0, D1), (D0, D2)]);
        assert!(
            report.is_clean(),
            "audit: {:#?}",
            report.findings().collect::<Vec<_>>()
        );
    }
}

/// A normal page-table update request for entry `index` of frame `table`.
pub fn req(table: u64, index: usize, val: u64) -> MmuUpdate {
    MmuUpdate::new(
        MmuCmd::NormalPtUpdate,
        (table << 12) + (index as u64) * 8,
        val,
    )
}

/// `foreigndom` naming FD only.
pub fn fd(id: DomId) -> u32 {
    u32::from(id)
}

/// `foreigndom` naming PFD `pfd` and FD `fd`.
pub fn pfd_fd(pfd: DomId, fd: DomId) -> u32 {
    ((u32::from(pfd) + 1) << 16) | u32::from(fd)
}

/// The errno a finished call returned.
#[track_caller]
pub fn errno(r: HcResult) -> Errno {
    match r {
        HcResult::Done(Err(e)) => e.errno(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// The call finished with 0.
#[track_caller]
pub fn ok(r: HcResult) {
    assert_eq!(r, HcResult::Done(Ok(0)));
}

/// The address mapped by entry `i` of L1 4 in [`FakeEnv::install_tree`]'s tables.
pub fn va(i: u64) -> u64 {
    (1 << 30) | (1 << 21) | (i << 12)
}

impl<'k> HcEnv for FakeEnv<'k> {
    type Mem = hvcore::mem::HostMem;
    type Dom = FakeDom<'k>;
    type Guest = FakeGuest;

    fn frames(&self) -> FrameTable<'_> {
        self.kit.table()
    }
    fn mem(&self) -> &Self::Mem {
        &self.kit.mem
    }
    fn guest(&self) -> &FakeGuest {
        &self.guest
    }
    fn this_cpu(&self) -> usize {
        self.cpu
    }
    fn caller(&self) -> DomId {
        self.caller
    }
    fn domain(&self, id: DomId) -> Option<&Self::Dom> {
        self.doms.iter().find(|d| d.id == id)
    }
    fn max_vcpus(&self, dom: DomId) -> u32 {
        self.domain(dom).map_or(0, |d| d.vcpus.len() as u32)
    }
    fn vcpu_dirty_cpu(&self, dom: DomId, vcpu: u32) -> Option<usize> {
        self.domain(dom)?
            .vcpus
            .get(vcpu as usize)
            .copied()
            .flatten()
    }
    fn dirty_mask(&self, dom: DomId) -> CpuMask {
        self.domain(dom).map_or(CpuMask::new(), |d| d.dirty)
    }
    fn m2p_strict(&self) -> bool {
        self.m2p_strict
    }
    fn ro_m2p_l4e(&self) -> u64 {
        RO_M2P_L4E
    }
    fn base(&self, which: Base) -> Option<Mfn> {
        match which {
            Base::Kernel => self.kernel_base,
            Base::User => self.user_base,
        }
    }
    fn set_base(&mut self, which: Base, mfn: Option<Mfn>) {
        self.base_loads.push((which, mfn));
        match which {
            Base::Kernel => self.kernel_base = mfn,
            Base::User => self.user_base = mfn,
        }
    }
    fn old_table(&self) -> Option<Mfn> {
        self.old_table
    }
    fn set_old_table(&mut self, mfn: Option<Mfn>) {
        self.old_table = mfn;
    }
    fn ldt(&self) -> Ldt {
        self.ldt
    }
    fn set_ldt(&mut self, ldt: Ldt) -> bool {
        self.ldt = ldt;
        std::mem::take(&mut self.ldt_shadow)
    }
    fn set_m2p(&self, mfn: Mfn, val: u64) {
        self.m2p.borrow_mut().insert(mfn.0, val);
    }
    fn flush(&mut self, token: FlushToken) {
        assert!(!token.is_empty(), "tokens handed over are never empty");
        self.flushes.push(token.into_parts());
    }
    fn flush_cache(&mut self) {
        self.cache_flushes += 1;
    }
    fn preempt_pending(&self) -> bool {
        let Some(every) = self.preempt_every else {
            return false;
        };
        let n = self.polls.get() + 1;
        let fire = n >= every;
        self.polls.set(if fire { 0 } else { n });
        fire
    }
}
