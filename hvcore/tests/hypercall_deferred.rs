//! The deferred, preemptible de-validation of a dropped subtree (Xen's `old_guest_table`):
//! spec §8.4 case 55, the partial half of case 53, and the §3.6 continuation encoding.
//!
//! The subtree: L4 1 (the kernel base) slot 0 → L3 2, whose 512 entries point at the L2s 3, 5,
//! 6, 7 in turn; each L2's 512 entries point at the L1s 4, 8, 9, 11; each L1's 512 entries map
//! data frames 10, 12, 13 read-only. Dropping L4 slot 0 de-validates 512 + 4·512 upper entries
//! and 4·512 leaves.

mod hypercall_common;
use hypercall_common::*;

const SELF: u32 = DOMID_SELF as u32;
const L4: u64 = 1;
const L3: u64 = 2;
const L2S: [u64; 4] = [3, 5, 6, 7];
const L1S: [u64; 4] = [4, 8, 9, 11];
const DATA: [u64; 3] = [10, 12, 13];
const UPPER: u64 = PTE_P | PTE_RW;

/// Build the subtree and install L4 1 as the kernel base (validating everything).
fn big_tree(env: &mut FakeEnv<'_>) {
    let kit = env.kit;
    for i in 0..512 {
        kit.write(L3, i, pte(L2S[i % 4], UPPER));
        for (k, &l2) in L2S.iter().enumerate() {
            kit.write(l2, i, pte(L1S[(i + k) % 4], UPPER));
        }
        for &l1 in &L1S {
            kit.write(l1, i, pte(DATA[i % 3], PTE_P));
        }
    }
    kit.write(L4, 0, pte(L3, UPPER));
    ok(env.ext1(MmuextCmd::NewBaseptr, L4, 0));
    assert!(env.s(L3).validated() && env.s(L2S[0]).validated());
    env.assert_clean();
}

/// Everything below L4 slot 0 is de-validated and holds nothing any more.
fn assert_subtree_gone(env: &FakeEnv<'_>) {
    for f in [L3].iter().chain(&L2S).chain(&L1S).chain(&DATA) {
        let s = env.s(*f);
        assert_eq!(
            (s.type_count(), s.general(), s.validated(), s.partial()),
            (0, 1, false, false),
            "frame {f}"
        );
    }
    assert_eq!(env.old_table, None);
    env.assert_clean();
}

/// The continuation that returns `rc` once the deferred work is done (spec §3.6).
fn final_return(rc: i32) -> Continuation {
    Continuation {
        ops: 0,
        count: MMU_UPDATE_PREEMPTED,
        pdone: 0,
        foreigndom: rc as u32,
    }
}

/// Re-execute `c` (as the guest does) until the call finishes; returns the result and how many
/// further continuations there were. Every re-entry is continued with the same arguments.
fn resume(
    env: &mut FakeEnv<'_>,
    c: Continuation,
    call: fn(&mut FakeEnv<'_>, Continuation) -> HcResult,
) -> (HcResult, u32) {
    let mut again = 0;
    loop {
        match call(env, c) {
            HcResult::Continue(next) => {
                assert_eq!(next, c, "step 1 preempted: the same arguments again");
                assert!(env.old_table.is_some());
                again += 1;
            }
            done => return (done, again),
        }
    }
}

fn mmu_call(env: &mut FakeEnv<'_>, c: Continuation) -> HcResult {
    mmu_update(env, c.ops, c.count, c.pdone, c.foreigndom)
}

fn ext_call(env: &mut FakeEnv<'_>, c: Continuation) -> HcResult {
    mmuext_op(env, c.ops, c.count, c.pdone, c.foreigndom)
}

#[test]
fn spec_08_55_large_subtree_devalidation_is_deferred_and_continued() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    big_tree(&mut env);
    env.flushes.clear();
    env.preempt_every = Some(40);
    // One L4 update drops the whole subtree: the update is done, the de-validation is not.
    let r = env.mmu(&[req(L4, 0, 0)], SELF);
    assert_eq!(r, HcResult::Continue(final_return(0)));
    assert_eq!(env.pdone(), 1, "*pdone written before the continuation");
    assert_eq!(kit.read(L4, 0), 0);
    assert_eq!(env.old_table, Some(Mfn(L3)));
    let s = env.s(L3);
    assert!(
        s.partial() && !s.validated() && s.type_count() == 1,
        "{s:?}"
    );
    assert_eq!(
        env.flushes,
        [([0, 1, 3].into_iter().collect(), FlushKind::Full)],
        "the L4 change is flushed before the continuation"
    );
    env.assert_clean();
    // The guest re-executes the continuation: more continuations, then rc.
    let (r, again) = resume(&mut env, final_return(0), mmu_call);
    assert_eq!(r, HcResult::Done(Ok(0)));
    assert!(
        again >= 1,
        "a small preemption budget needs several re-entries"
    );
    assert_eq!(
        env.pdone(),
        1,
        "the final-return call does not touch *pdone"
    );
    assert_subtree_gone(&env);
}

#[test]
fn spec_08_55_next_hypercall_finishes_the_deferred_work_first() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    big_tree(&mut env);
    env.preempt_every = Some(40);
    // A batch of two: the first request defers, so the batch stops before the second (§3.6),
    // which then fails with -ENOSYS.
    let bad = MmuUpdate {
        ptr: (9 << 12) | 4,
        val: 0,
    };
    let r = env.mmu(&[req(L4, 0, 0), bad], SELF);
    let HcResult::Continue(c) = r else {
        panic!("expected a continuation, got {r:?}")
    };
    assert_eq!(
        (c.ops, c.count, c.pdone, c.foreigndom),
        (REQS + 16, 1 | MMU_UPDATE_PREEMPTED, PDONE, SELF)
    );
    assert_eq!(env.pdone(), 1);
    // Before the guest re-executes it, an event handler makes another mmuext_op: with
    // preemption still pending it is continued with its own arguments and does nothing else.
    let op = MmuextOp::new(MmuextCmd::PinL1Table, 14, 0);
    env.put(REQS + 0x1000, &[op]);
    let own = Continuation {
        ops: REQS + 0x1000,
        count: 1,
        pdone: 0,
        foreigndom: SELF,
    };
    env.polls.set(39);
    assert_eq!(ext_call(&mut env, own), HcResult::Continue(own));
    assert!(!env.s(14).pinned(), "its op waits for the deferred work");
    // Without preemption the next call finishes the deferred work first, then does its op.
    env.preempt_every = None;
    assert_eq!(ext_call(&mut env, own), HcResult::Done(Ok(0)));
    assert!(env.s(14).pinned());
    assert_subtree_gone(&env);
    // The original continuation: the second request fails, *pdone = its index.
    let (r, again) = resume(&mut env, c, mmu_call);
    assert_eq!((r.err(), again), (Some(HcError::UnknownCommand), 0));
    assert_eq!((r.ret(), env.pdone()), (Some(-38), 1));
    env.assert_clean();
}

#[test]
fn spec_08_55_unpin_and_base_switch_defer_too() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    big_tree(&mut env);
    // Switch the kernel base away from L4 1 (its last reference): the whole tree is deferred.
    kit.write(14, 0, 0);
    env.preempt_every = Some(25);
    let r = env.ext1(MmuextCmd::NewBaseptr, 14, 0);
    assert_eq!(r, HcResult::Continue(final_return(0)));
    assert_eq!(
        (env.old_table, env.kernel_base),
        (Some(Mfn(L4)), Some(Mfn(14)))
    );
    env.assert_clean();
    let (r, again) = resume(&mut env, final_return(0), ext_call);
    assert_eq!(r, HcResult::Done(Ok(0)));
    assert!(again >= 1);
    assert_subtree_gone(&env);
    assert_eq!(env.s(L4).type_count(), 0);
    // Unpin of a pinned L3 that nothing else uses.
    ok(env.ext1(MmuextCmd::PinL3Table, L3, 0));
    let r = env.ext1(MmuextCmd::UnpinTable, L3, 0);
    assert_eq!(r, HcResult::Continue(final_return(0)));
    assert_eq!(env.old_table, Some(Mfn(L3)));
    env.preempt_every = None;
    assert_eq!(ext_call(&mut env, final_return(0)), HcResult::Done(Ok(0)));
    assert_subtree_gone(&env);
}

#[test]
fn spec_08_53_partial_tables_cannot_be_typed_or_targeted() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    big_tree(&mut env);
    // Preempt inside the de-validation of an L2: both L3 2 and that L2 are partial.
    env.preempt_every = Some(600);
    let r = env.mmu(&[req(L4, 0, 0)], SELF);
    assert_eq!(r, HcResult::Continue(final_return(0)));
    let l2 = L2S[3];
    assert!(env.s(L3).partial() && env.s(l2).partial());
    env.assert_clean();
    // Another vCPU of the domain, with no deferred work of its own.
    let mut other = FakeEnv::new(&kit);
    other.kernel_base = Some(Mfn(L4));
    for table in [L3, l2] {
        let r = other.mmu(&[req(table, 0, 0x42)], SELF);
        assert_eq!(r.err(), Some(HcError::Invalid(Invalid::NotUpdatable)));
        assert_eq!(errno(r), Errno::EINVAL);
        assert_ne!(kit.read(table, 0), 0x42);
        let r = other.ext1(MmuextCmd::ClearPage, table, 0);
        assert_eq!(errno(r), Errno::EINVAL);
        let r = other.ext1(MmuextCmd::PinL1Table, table, 0);
        assert_eq!(errno(r), Errno::EINVAL);
    }
    let r = other.ext1(MmuextCmd::PinL3Table, L3, 0);
    assert_eq!(r.err(), Some(HcError::Mm(MmError::Devalidating)));
    let r = other.ext1(MmuextCmd::PinL2Table, l2, 0);
    assert_eq!(r.err(), Some(HcError::Mm(MmError::Devalidating)));
    // Re-linking the partial L3 under the L4 fails the same way, and changes nothing.
    let r = other.mmu(&[req(L4, 1, pte(L3, UPPER))], SELF);
    assert_eq!((errno(r), kit.read(L4, 1)), (Errno::EINVAL, 0));
    assert!(env.s(L3).partial() && env.s(l2).partial());
    env.assert_clean();
    // The owner finishes; afterwards the frames are ordinary again.
    let (r, _) = resume(&mut env, final_return(0), mmu_call);
    assert_eq!(r, HcResult::Done(Ok(0)));
    assert_subtree_gone(&env);
    other.preempt_every = None;
    ok(other.ext1(MmuextCmd::PinL1Table, l2, 0));
    ok(other.ext1(MmuextCmd::UnpinTable, l2, 0));
}
