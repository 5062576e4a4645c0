//! The page-table base commands of `mmuext_op`: spec §8.5 cases 56 and 57 (NEW_BASEPTR,
//! NEW_USER_BASEPTR, the references a base holds, the M2P slot).
//!
//! Case 57's creation-time part ("with m2p_strict off, a never-kernel L4 has slot 256 empty")
//! is the core's: validation writes what `DomainCtx::xen_l4_slot` returns, so the hypervisor's
//! context answers 0 for slot 256 when m2p_strict is off. This layer fills slot 256 when an L4
//! becomes the kernel base (m2p_strict off) and zaps it when it becomes the user base (on).

mod hypercall_common;
use hypercall_common::*;

fn op(cmd: MmuextCmd, arg1: u64, arg2: u64) -> MmuextOp {
    MmuextOp::new(cmd, arg1, arg2)
}

#[test]
fn spec_08_56_new_baseptr_rules() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    // A frame in use as an L1 (type count > 0).
    let r = env.ext1(MmuextCmd::NewBaseptr, 4, 0);
    assert_eq!(
        (r.err(), env.kernel_base),
        (Some(HcError::Mm(MmError::TypeMismatch)), Some(Mfn(1)))
    );
    // FD other than the caller, even for a privileged caller.
    env.caller = D0;
    let r = env.ext(&[op(MmuextCmd::NewBaseptr, 1, 0)], fd(D1));
    assert_eq!((r.err(), env.pdone()), (Some(HcError::NotPermitted), 0));
    env.caller = D1;
    // The current base: reload only, no reference moves.
    let before = env.s(1);
    ok(env.ext1(MmuextCmd::NewBaseptr, 1, 0));
    assert_eq!(
        (env.s(1), env.base_loads.as_slice()),
        (before, &[(Base::Kernel, Some(Mfn(1)))][..])
    );
    // A former L1 whose type count dropped to 0 is retyped and validated as an L4.
    ok(env.ext1(MmuextCmd::PinL1Table, 12, 0));
    ok(env.ext1(MmuextCmd::UnpinTable, 12, 0));
    ok(env.ext1(MmuextCmd::NewBaseptr, 12, 0));
    let s = env.s(12);
    assert_eq!(
        (s.ty(), s.validated(), s.type_count(), s.general()),
        (PageType::L4, true, 1, 2)
    );
    assert_eq!(env.kernel_base, Some(Mfn(12)));
    // The old base was released: unpinned and unreferenced, the whole tree is de-validated.
    assert_eq!(
        (
            env.s(1).type_count(),
            env.s(2).type_count(),
            env.s(4).type_count()
        ),
        (0, 0, 0)
    );
    env.assert_clean();
}

#[test]
fn spec_08_57_new_baseptr_validates_and_fills_the_m2p_slot() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    kit.write(5, 3, pte(6, PTE_P)); // a valid L4 entry to an empty L3
    ok(env.ext1(MmuextCmd::NewBaseptr, 5, 0));
    let s = env.s(5);
    assert_eq!(
        (s.ty(), s.validated(), s.type_count(), s.pinned()),
        (PageType::L4, true, 1, false)
    );
    assert_eq!((env.s(6).ty(), env.s(6).validated()), (PageType::L3, true));
    assert_eq!(
        kit.read(5, 256),
        RO_M2P_L4E,
        "m2p_strict off: slot 256 filled on install"
    );
    assert_eq!(
        kit.read(5, 258),
        test_xen_l4_slot(Mfn(5), 258),
        "validation's Xen slots"
    );
    // m2p_strict on: a user base gets slot 256 zapped; a kernel base keeps validation's value.
    env.m2p_strict = true;
    ok(env.ext1(MmuextCmd::NewUserBaseptr, 7, 0));
    assert_eq!((kit.read(7, 256), env.user_base), (0, Some(Mfn(7))));
    ok(env.ext1(MmuextCmd::NewBaseptr, 8, 0));
    assert_eq!(kit.read(8, 256), test_xen_l4_slot(Mfn(8), 256));
    assert_eq!(
        env.s(5).type_count(),
        0,
        "the previous kernel base was released"
    );
    // The same frame may be both bases (two references).
    ok(env.ext1(MmuextCmd::NewUserBaseptr, 8, 0));
    assert_eq!((env.s(8).type_count(), env.s(7).type_count()), (2, 0));
    // User base 0 removes it; 0 again is a no-op.
    ok(env.ext1(MmuextCmd::NewUserBaseptr, 0, 0));
    ok(env.ext1(MmuextCmd::NewUserBaseptr, 0, 0));
    assert_eq!((env.user_base, env.s(8).type_count()), (None, 1));
    assert_eq!(
        errno(env.ext1(MmuextCmd::NewUserBaseptr, 30, 0)),
        Errno::EINVAL,
        "not ours"
    );
    env.assert_clean();
}
