//! `mmu_update` at the hypercall layer: spec §8.4 cases 44–54. The FD / PFD rules (§8.2 cases
//! 18–21, §8.3 case 41) are in `hypercall_fd_rules.rs`; case 55 (deferred de-validation) and
//! the partial state's half of case 53 are in `hypercall_deferred.rs`.

mod hypercall_common;
use hypercall_common::*;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

const SELF: u32 = DOMID_SELF as u32;

#[test]
fn spec_08_44_commands_4_to_7_are_enosys_and_pdone_is_their_index() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for low in 4..8u64 {
        let bad = MmuUpdate {
            ptr: (9 << 12) | 8 | low,
            val: 0x5678,
        };
        let r = env.mmu(&[req(9, 0, 0x1000 + low), bad, req(9, 2, 0x9abc)], SELF);
        assert_eq!(r.err(), Some(HcError::UnknownCommand));
        assert_eq!(errno(r), Errno::ENOSYS);
        assert_eq!(env.pdone(), 1, "index of the failing request");
        assert_eq!(
            (kit.read(9, 0), kit.read(9, 1), kit.read(9, 2)),
            (0x1000 + low, 0, 0)
        );
    }
    env.assert_clean();
}

#[test]
fn spec_08_45_batch_stops_at_first_failure() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let targets = [10, 11, 12, FREE, 14];
    let reqs: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, &f)| req(4, i, pte(f, PTE_P)))
        .collect();
    let r = env.mmu(&reqs, SELF);
    assert_eq!(r.err(), Some(HcError::Mm(MmError::FrameBusy)));
    assert_eq!(r.ret(), Some(-16));
    assert_eq!(env.pdone(), 3);
    for (i, &f) in targets.iter().enumerate().take(3) {
        assert_eq!(frame_of(kit.read(4, i)), f, "request {i} applied");
        assert_eq!(env.s(f).general(), 2);
    }
    assert_eq!(
        (kit.read(4, 3), kit.read(4, 4)),
        (0, 0),
        "requests 3 and 4 not applied"
    );
    assert_eq!(env.s(14).general(), 1);
    assert!(
        env.flushes.is_empty(),
        "L1 changes are the guest's to flush"
    );
    env.assert_clean();
}

#[test]
fn spec_08_46_null_pdone_works_and_writes_nothing() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.put(REQS, &[req(9, 3, 7), req(9, 4, 8)]);
    let writes = env.guest.writes.get();
    assert_eq!(
        mmu_update(&mut env, REQS, 2, 0, SELF),
        HcResult::Done(Ok(0))
    );
    assert_eq!((kit.read(9, 3), kit.read(9, 4)), (7, 8));
    assert_eq!(env.guest.writes.get(), writes, "no guest write at all");
    // A failing batch with a NULL pdone writes nothing either.
    env.put(REQS, &[MmuUpdate { ptr: 4, val: 0 }]);
    let writes = env.guest.writes.get();
    assert_eq!(mmu_update(&mut env, REQS, 1, 0, SELF).ret(), Some(-38));
    assert_eq!(env.guest.writes.get(), writes);
}

#[test]
fn spec_08_47_reqs_start_address_checked_before_any_work() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for bad in [
        0xFFFF_8000_0000_0000,
        0xFFFF_87FF_FFFF_FFF0,
        0x0000_8000_0000_0000,
        1 << 62,
    ] {
        env.put_u32(PDONE, SENTINEL);
        let r = mmu_update(&mut env, bad, 1, PDONE, SELF);
        assert_eq!(r.err(), Some(HcError::Fault), "{bad:#x}");
        assert_eq!(r.ret(), Some(-14));
        assert_eq!(
            env.pdone(),
            SENTINEL,
            "the early exit leaves *pdone alone (Xen 4.17)"
        );
    }
    // Also for a continuation: *pdone keeps its pre-loaded count.
    env.put_u32(PDONE, 5);
    let r = mmu_update(
        &mut env,
        0xFFFF_8000_0000_0000,
        MMU_UPDATE_PREEMPTED | 3,
        PDONE,
        SELF,
    );
    assert_eq!((r.ret(), env.pdone()), (Some(-14), 5));
    // An array just below 2^47 that runs past it: the elements below the boundary apply.
    let base = (1u64 << 47) - 32;
    env.put(base, &[req(9, 0, 1), req(9, 1, 2)]);
    env.put_u32(PDONE, SENTINEL);
    let r = mmu_update(&mut env, base, 3, PDONE, SELF);
    assert_eq!((r.err(), env.pdone()), (Some(HcError::Fault), 2));
    assert_eq!((kit.read(9, 0), kit.read(9, 1)), (1, 2));
    env.assert_clean();
}

#[test]
fn spec_08_48_continuation_flag_from_the_guest_is_accepted() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.put(REQS, &[req(9, 0, 0x11), req(9, 1, 0x22)]);
    env.put_u32(PDONE, 7);
    let r = mmu_update(&mut env, REQS, MMU_UPDATE_PREEMPTED | 1, PDONE, SELF);
    assert_eq!(r, HcResult::Done(Ok(0)));
    assert_eq!(env.pdone(), 8);
    assert_eq!(
        (kit.read(9, 0), kit.read(9, 1)),
        (0x11, 0),
        "exactly one request processed"
    );
}

#[test]
fn spec_08_49_final_return_value_call_returns_foreigndom() {
    // Argon follows Xen: (NULL, 0x80000000, pdone, fd) returns (int)fd and touches nothing.
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.put_u32(PDONE, SENTINEL);
    let writes = env.guest.writes.get();
    assert_eq!(
        mmu_update(&mut env, 0, MMU_UPDATE_PREEMPTED, PDONE, 5),
        HcResult::Done(Ok(5))
    );
    assert_eq!(
        mmu_update(&mut env, 0, MMU_UPDATE_PREEMPTED, PDONE, 0xFFFF_FFEA),
        HcResult::Done(Ok(-22)),
        "the 32-bit value is sign-extended, as Xen's (int) cast does"
    );
    assert_eq!(
        mmuext_op(&mut env, 0, MMU_UPDATE_PREEMPTED, PDONE, 9),
        HcResult::Done(Ok(9))
    );
    assert_eq!((env.pdone(), env.guest.writes.get()), (SENTINEL, writes));
    // Only with a NULL array: otherwise it is an ordinary (empty) continuation.
    assert_eq!(
        mmu_update(&mut env, REQS, MMU_UPDATE_PREEMPTED, PDONE, SELF),
        HcResult::Done(Ok(0))
    );
    assert_eq!(
        errno(mmu_update(&mut env, REQS, MMU_UPDATE_PREEMPTED, PDONE, 5)),
        Errno::ESRCH
    );
}

#[test]
fn spec_08_50_unknown_page_table_owner_is_esrch() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    // An unknown PFD returns before anything else and leaves *pdone alone; an unknown FD is
    // looked up on the way to the batch loop, whose exit writes 0 (Xen 4.17, guest `reject`).
    for (foreigndom, pdone) in [
        (pfd_fd(99, DOMID_SELF), SENTINEL),
        (pfd_fd(DOMID_SELF, DOMID_SELF), SENTINEL),
        (fd(99), 0),
    ] {
        let r = env.mmu(&[req(9, 0, 1)], foreigndom);
        assert_eq!(
            (r.err(), env.pdone()),
            (Some(HcError::NoSuchDomain), pdone),
            "{foreigndom:#x}"
        );
        assert_eq!(errno(r), Errno::ESRCH);
    }
    // The caller's own numeric id is fine as PFD (not as FD); a PFD without vCPU 0 is -EINVAL.
    ok(env.mmu(&[req(9, 0, 1)], pfd_fd(D1, DOMID_SELF)));
    env.dom_mut(D2).vcpus.clear();
    let r = env.mmu(&[req(9, 0, 1)], pfd_fd(D2, DOMID_SELF));
    assert_eq!(r.err(), Some(HcError::Invalid(Invalid::NoVcpu0)));
    assert_eq!(kit.read(9, 0), 1);
}

#[test]
fn spec_08_51_machphys_update() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let m2p = |f: u64, val: u64| MmuUpdate::new(MmuCmd::MachphysUpdate, f << 12, val);
    // Own frame: the entry is handed to the hypervisor's M2P (what the RO M2P mapping shows at
    // 0xFFFF8000_00000000 + 8·mfn is the hypervisor's business, not this layer's).
    ok(env.mmu(&[m2p(9, 0x1234), m2p(10, 0x99)], SELF));
    assert_eq!(*env.m2p.borrow(), BTreeMap::from([(9, 0x1234), (10, 0x99)]));
    assert_eq!(env.s(9).general(), 1, "the frame reference is given back");
    // Not FD's frame, a free frame: -EINVAL.
    for f in [30, FREE, MMIO] {
        let r = env.mmu(&[m2p(f, 1)], SELF);
        assert_eq!((errno(r), env.pdone()), (Errno::EINVAL, 0), "frame {f}");
    }
    // PFD other than the caller: -EPERM, even for a privileged caller.
    env.caller = D0;
    assert_eq!(
        errno(env.mmu(&[m2p(9, 5)], pfd_fd(D1, DOMID_SELF))),
        Errno::EPERM
    );
    // A privileged caller may set the M2P of another domain's frame with FD = that domain.
    ok(env.mmu(&[m2p(9, 5)], fd(D1)));
    assert_eq!(env.m2p.borrow()[&9], 5);
    // An unprivileged one may not name FD.
    env.caller = D2;
    assert_eq!(errno(env.mmu(&[m2p(9, 6)], fd(D1))), Errno::EPERM);
    env.assert_clean();
}

#[test]
fn spec_08_52_normal_update_of_a_plain_data_page_is_a_raw_write() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let garbage = 0xFFF0_0000_DEAD_BEEF; // not a valid PTE at any level: written raw
    ok(env.mmu(&[req(9, 5, garbage)], SELF));
    assert_eq!(kit.read(9, 5), garbage);
    let s = env.s(9);
    assert_eq!(
        (s.ty(), s.type_count(), s.general()),
        (PageType::Writable, 0, 1)
    );
    // A frame mapped RW (writable type count 1) takes raw writes too.
    ok(env.mmu(&[req(4, 0, pte(10, PTE_P | PTE_RW)), req(10, 7, 77)], SELF));
    assert_eq!((kit.read(10, 7), env.s(10).type_count()), (77, 1));
    // A page-table frame does not: it goes through the PTE rules.
    assert_eq!(errno(env.mmu(&[req(4, 1, garbage)], SELF)), Errno::EINVAL);
    env.assert_clean();
}

#[test]
fn spec_08_53_descriptor_pages_and_pages_mid_validation_are_einval() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let t = kit.table();
    t.get_page_and_type(&kit.mem, env.dom(D1), Mfn(11), PageType::SegDesc)
        .unwrap();
    let r = env.mmu(&[req(11, 0, 0x42)], SELF);
    assert_eq!(r.err(), Some(HcError::Invalid(Invalid::NotUpdatable)));
    assert_eq!((errno(r), kit.read(11, 0)), (Errno::EINVAL, 0));
    t.put_page_and_type(&kit.mem, Mfn(11)).unwrap();

    // Mid-validation: while frame 12 is being validated as an L1 (type count 1, not validated),
    // an mmu_update on it from "another vCPU" fails (partial tables: `hypercall_deferred.rs`).
    let seen = Rc::new(Cell::new(None));
    let (k, seen2): (&Kit, _) = (&kit, seen.clone());
    *env.dom(D1).hook.borrow_mut() = Some(Box::new(move |change: TypeChange| {
        if change.mfn == Mfn(12) && change.new_type == PageType::L1 {
            let mut other = FakeEnv::new(k);
            let r = other.mmu(&[req(12, 0, pte(9, PTE_P))], SELF);
            seen2.set(Some((r, k.state(12).validated(), k.state(12).type_count())));
        }
    }));
    ok(env.ext1(MmuextCmd::PinL1Table, 12, 0));
    let (r, validated, count) = seen.get().expect("the hook ran");
    assert_eq!((validated, count), (false, 1), "observed mid-validation");
    assert_eq!(r.err(), Some(HcError::Invalid(Invalid::NotUpdatable)));
    assert_eq!(kit.read(12, 0), 0);
    env.assert_clean();
}

#[test]
fn spec_08_54_preempted_batch_of_10000_is_continued_transparently() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let n = 10_000u32;
    let slot = |i: u32| (9 + u64::from(i / 1000), (i % 512) as usize);
    let reqs: Vec<_> = (0..n)
        .map(|i| {
            let (f, x) = slot(i);
            req(f, x, u64::from(i) + 1)
        })
        .collect();
    let mut want = BTreeMap::new();
    for i in 0..n {
        want.insert(slot(i), u64::from(i) + 1);
    }
    env.put(REQS, &reqs);
    env.put_u32(PDONE, 0);
    env.preempt_every = Some(7);
    let (mut ops, mut count, mut calls) = (REQS, n, 0u32);
    let rc = loop {
        calls += 1;
        match mmu_update(&mut env, ops, count, PDONE, SELF) {
            HcResult::Done(r) => break r,
            HcResult::Continue(c) => {
                let (left_before, left) = (
                    count & !MMU_UPDATE_PREEMPTED,
                    c.count & !MMU_UPDATE_PREEMPTED,
                );
                assert_ne!(c.count & MMU_UPDATE_PREEMPTED, 0);
                assert_eq!(left_before - left, 7, "each invocation did 7 requests");
                assert_eq!(c.ops, ops + 16 * 7);
                assert_eq!(
                    (c.pdone, c.foreigndom),
                    (PDONE, SELF),
                    "only reqs and count change"
                );
                assert_eq!(
                    c.args(),
                    [c.ops, u64::from(c.count), PDONE, u64::from(SELF)]
                );
                assert_eq!(env.pdone(), n - left, "progress visible in *pdone");
                (ops, count) = (c.ops, c.count);
            }
        }
    };
    assert_eq!(rc, Ok(0));
    assert_eq!(env.pdone(), n);
    assert_eq!(calls, n.div_ceil(7));
    for (&(f, x), &v) in &want {
        assert_eq!(kit.read(f, x), v, "frame {f} entry {x}");
    }
    // Preemption pending before every request: still one request per call (forward progress).
    env.preempt_every = Some(1);
    env.polls.set(0);
    env.put(REQS, &reqs[..3]);
    let (mut ops, mut count, mut calls) = (REQS, 3u32, 0);
    while let HcResult::Continue(c) = mmu_update(&mut env, ops, count, PDONE, SELF) {
        (ops, count, calls) = (c.ops, c.count, calls + 1);
    }
    assert_eq!((calls, env.pdone()), (2, 3));
}
