//! Flushes at the hypercall layer, observed as tokens and masks: spec §8.7 cases 77, 78, 80 and
//! 81, and the end-of-invocation flush of `mmu_update` (spec §5.3, XSA-286).
//!
//! Type-change flushes (77, 78) leave the core through `DomainCtx::flush_retyped`; the fake
//! domain filters its dirty mask with the CPUs' flush times exactly as the hypervisor's does, so
//! the recorded mask is the set of CPUs that would be sent an IPI.

mod hypercall_common;
use hypercall_common::*;

const SELF: u32 = DOMID_SELF as u32;

fn cpus(list: &[usize]) -> CpuMask {
    list.iter().copied().collect()
}

/// Map frame 10 RW at entry 0 of L1 4 (as if used on vCPU 1 / CPU 1), then unmap it without any
/// guest flush. Returns the frame's stamp.
fn use_and_drop_rw_mapping(env: &mut FakeEnv<'_>) -> u32 {
    ok(env.mmu(&[req(4, 0, pte(10, PTE_P | PTE_RW))], SELF));
    ok(env.mmu(&[req(4, 0, 0)], SELF));
    assert!(env.flushes.is_empty(), "L1 changes: no flush of its own");
    let s = env.s(10);
    assert_eq!((s.ty(), s.type_count()), (PageType::Writable, 0));
    env.t().stamp(Mfn(10)).unwrap()
}

#[test]
fn spec_08_77_pin_after_stale_writable_use_flushes_the_cpus_that_used_it() {
    let kit = kit();
    let slots: Vec<CpuFlushTime> = (0..8).map(|_| CpuFlushTime::new()).collect();
    let mut env = FakeEnv::new(&kit);
    env.dom_mut(D1).times = Some(CpuFlushTimes::new(&kit.clock, &slots));
    env.install_tree();
    let stamp = use_and_drop_rw_mapping(&mut env);
    env.dom(D1).retypes.borrow_mut().clear();
    ok(env.ext1(MmuextCmd::PinL1Table, 10, 0));
    let retypes = env.dom(D1).retypes.borrow().clone();
    assert_eq!(retypes.len(), 1);
    let (change, mask) = retypes[0];
    assert_eq!(
        (change.mfn, change.old_type, change.new_type),
        (Mfn(10), PageType::Writable, PageType::L1)
    );
    assert_eq!(change.stamp, stamp);
    assert!(
        mask.contains(1),
        "pCPU 1 may still cache the RW translation: {mask:?}"
    );
    assert_eq!(mask, cpus(&[0, 1, 3]));
    env.assert_clean();
}

#[test]
fn spec_08_78_cpus_that_flushed_after_the_stamp_are_filtered_out() {
    let kit = kit();
    let slots: Vec<CpuFlushTime> = (0..8).map(|_| CpuFlushTime::new()).collect();
    let times = CpuFlushTimes::new(&kit.clock, &slots);
    let mut env = FakeEnv::new(&kit);
    env.dom_mut(D1).times = Some(times);
    env.install_tree();
    let stamp = use_and_drop_rw_mapping(&mut env);
    // pCPU 1 does a full flush after P's last use.
    let tick = times.begin_full_flush();
    assert!(times.end_full_flush(1, tick).is_none());
    assert!(times.last_flush(1) > stamp);
    env.dom(D1).retypes.borrow_mut().clear();
    ok(env.ext1(MmuextCmd::PinL1Table, 10, 0));
    assert_eq!(
        env.dom(D1).retypes.borrow()[0].1,
        cpus(&[0, 3]),
        "no IPI to pCPU 1"
    );
    // Once every dirty CPU has flushed since the stamp, the retype sends no IPI at all.
    ok(env.ext1(MmuextCmd::UnpinTable, 10, 0));
    ok(env.mmu(&[req(4, 0, pte(10, PTE_P | PTE_RW))], SELF));
    ok(env.mmu(&[req(4, 0, 0)], SELF));
    for cpu in [0, 1, 3] {
        let tick = times.begin_full_flush();
        assert!(times.end_full_flush(cpu, tick).is_none());
    }
    env.dom(D1).retypes.borrow_mut().clear();
    ok(env.ext1(MmuextCmd::PinL1Table, 10, 0));
    assert_eq!(env.dom(D1).retypes.borrow()[0].1, CpuMask::new());
    env.assert_clean();
}

#[test]
fn spec_08_80_multi_flush_of_an_unloaded_vcpu_sends_nothing() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.put_u64(MASK, 1 << 2); // vCPU 2: loaded nowhere
    ok(env.ext1(MmuextCmd::TlbFlushMulti, 0, MASK));
    ok(env.ext1(MmuextCmd::InvlpgMulti, 0x4000, MASK));
    assert!(env.flushes.is_empty(), "{:?}", env.flushes);
    // Bits at or above max_vcpus (3) are ignored; vCPUs 0 and 1 are on CPUs 0 and 1.
    env.put_u64(MASK, 0xFFFF_FFFF_FFFF_FFF8 | 0b011);
    ok(env.ext1(MmuextCmd::TlbFlushMulti, 0, MASK));
    env.put_u64(MASK, 0b010);
    ok(env.ext1(MmuextCmd::InvlpgMulti, 0x4321, MASK));
    assert_eq!(
        env.flushes,
        [
            (cpus(&[0, 1]), FlushKind::Full),
            (cpus(&[1]), FlushKind::Va(0x4000))
        ]
    );
}

#[test]
fn spec_08_81_all_flush_reaches_a_cpu_that_switched_to_idle_lazily() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    // CPU 3 ran domain 1 and switched to idle: no vCPU is loaded there, but it stays dirty.
    assert!(env.dom(D1).vcpus.iter().all(|c| *c != Some(3)));
    ok(env.ext1(MmuextCmd::TlbFlushAll, 0, 0));
    ok(env.ext1(MmuextCmd::InvlpgAll, 0x7000, 0));
    env.put_u64(MASK, 0b111);
    ok(env.ext1(MmuextCmd::TlbFlushMulti, 0, MASK));
    ok(env.ext1(MmuextCmd::TlbFlushLocal, 0, 0));
    let want = [
        (cpus(&[0, 1, 3]), FlushKind::Full),
        (cpus(&[0, 1, 3]), FlushKind::Va(0x7000)),
        (cpus(&[0, 1]), FlushKind::Full),
        (cpus(&[0]), FlushKind::Full),
    ];
    assert_eq!(env.flushes, want);
}

#[test]
fn spec_05_3_upper_level_changes_flush_the_pfd_dirty_mask_once_per_invocation() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let full = (cpus(&[0, 1, 3]), FlushKind::Full);
    // Two L2 changes and an L1 change in one batch: one full flush.
    let batch = [
        req(3, 2, pte(12, PTE_P)),
        req(3, 3, pte(13, PTE_P)),
        req(4, 0, pte(9, PTE_P)),
    ];
    ok(env.mmu(&batch, SELF));
    assert_eq!(env.flushes, [full]);
    // L1-only batches and raw writes: none.
    env.flushes.clear();
    ok(env.mmu(&[req(4, 1, pte(9, PTE_P)), req(9, 0, 5)], SELF));
    assert!(env.flushes.is_empty());
    // A batch that fails after an L2 change still flushes.
    let r = env.mmu(&[req(3, 2, 0), req(4, 2, pte(FREE, PTE_P))], SELF);
    assert_eq!((errno(r), env.pdone()), (Errno::EBUSY, 1));
    assert_eq!(env.flushes, [full]);
    // A failed L2 change alone flushes nothing.
    env.flushes.clear();
    assert_eq!(
        errno(env.mmu(&[req(3, 4, pte(30, PTE_P))], SELF)),
        Errno::EINVAL
    );
    assert!(env.flushes.is_empty());
    // A preempted invocation flushes for what it did before returning the continuation.
    env.preempt_every = Some(1);
    let r = env.mmu(&[req(3, 3, 0), req(3, 4, pte(14, PTE_P))], SELF);
    assert!(matches!(r, HcResult::Continue(_)));
    assert_eq!(env.flushes, [full]);
    env.preempt_every = None;
    env.flushes.clear();
    // A privileged caller updating domain 1's L2 (PFD = FD = D1) flushes domain 1's CPUs.
    env.caller = D0;
    ok(env.mmu(&[req(3, 4, pte(14, PTE_P))], pfd_fd(D1, D1)));
    assert_eq!(env.flushes, [full]);
    env.caller = D1;
    env.assert_clean();
}
