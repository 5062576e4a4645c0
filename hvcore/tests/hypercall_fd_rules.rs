//! The foreign-domain (FD / PFD) rules of `mmu_update`: spec §8.2 cases 18–21 (XSM and
//! `get_pg_owner`) and §8.3 case 41 (XSA-109: no upper-level entries on behalf of another FD).

mod hypercall_common;
use hypercall_common::*;

const SELF: u32 = DOMID_SELF as u32;

#[test]
fn spec_08_18_foreign_fd_by_unprivileged_caller_is_eperm_before_any_work() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let r = env.mmu(&[req(4, 0, pte(30, PTE_P)), req(9, 0, 1)], fd(D2));
    assert_eq!((r.err(), env.pdone()), (Some(HcError::NotPermitted), 0));
    assert_eq!((kit.read(4, 0), kit.read(9, 0)), (0, 0));
    // A privileged caller may map another domain's frame with FD = that domain ...
    env.caller = D0;
    ok(env.ext1(MmuextCmd::PinL1Table, 40, 0));
    ok(env.mmu(&[req(40, 0, pte(9, PTE_P | PTE_RW))], fd(D1)));
    assert_eq!((env.s(9).general(), env.s(9).type_count()), (2, 1));
    // ... but with FD = itself only its own frames (owner ≠ FD and FD = PFD: -EBUSY).
    assert_eq!(
        errno(env.mmu(&[req(40, 1, pte(10, PTE_P))], SELF)),
        Errno::EBUSY
    );
    // As PFD it may write another domain's L1 (then FD = itself ≠ PFD, privileged over D1).
    ok(env.mmu(&[req(4, 2, pte(11, PTE_P))], pfd_fd(D1, DOMID_SELF)));
    assert_eq!(frame_of(kit.read(4, 2)), 11);
    // An unprivileged caller may not name another PFD.
    env.caller = D2;
    assert_eq!(
        errno(env.mmu(&[req(4, 3, 0)], pfd_fd(D1, DOMID_SELF))),
        Errno::EPERM
    );
    env.caller = D0;
    ok(env.mmu(&[req(40, 0, 0)], SELF));
    env.caller = D1;
    env.assert_clean();
}

#[test]
fn spec_08_19_fd_naming_the_caller_numerically_is_esrch() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let r = env.mmu(&[req(4, 0, pte(9, PTE_P))], fd(D1));
    assert_eq!((errno(r), env.pdone()), (Errno::ESRCH, 0));
    ok(env.mmu(&[req(4, 0, pte(9, PTE_P))], SELF));
    assert_eq!(pg_owner(&env, D1), Err(HcError::NoSuchDomain));
    assert_eq!(pg_owner(&env, DOMID_SELF), Ok(D1));
    env.assert_clean();
}

#[test]
fn spec_08_20_fd_dom_io_ram_is_ebusy_mmio_without_permission_is_eperm() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let io = fd(DOMID_IO);
    let r = env.mmu(&[req(4, 0, pte(9, PTE_P))], io);
    assert_eq!(
        r.err(),
        Some(HcError::Mm(MmError::FrameBusy)),
        "own RAM frame"
    );
    assert_eq!(
        errno(env.mmu(&[req(4, 0, pte(30, PTE_P))], io)),
        Errno::EBUSY,
        "foreign RAM"
    );
    assert_eq!(
        errno(env.mmu(&[req(4, 0, pte(MMIO, PTE_P))], io)),
        Errno::EPERM
    );
    assert_eq!(kit.read(4, 0), 0);
    // Fast path (only A changes on an existing mapping) takes no references, as in Xen.
    ok(env.mmu(&[req(4, 1, pte(9, PTE_P))], SELF));
    ok(env.mmu(&[req(4, 1, pte(9, PTE_P | PTE_A))], io));
    // A domain with I/O capabilities maps MMIO with FD = DOMID_IO.
    env.caller = D0;
    ok(env.ext1(MmuextCmd::PinL1Table, 40, 0));
    ok(env.mmu(&[req(40, 0, pte(MMIO, PTE_P | PTE_RW))], io));
    env.caller = D1;
    env.assert_clean();
}

#[test]
fn spec_08_21_fd_dom_xen_by_unprivileged_is_eperm() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.install_tree();
    let r = env.mmu(&[req(4, 0, pte(9, PTE_P))], fd(DOMID_XEN));
    assert_eq!((r.err(), env.pdone()), (Some(HcError::NotPermitted), 0));
    assert_eq!(kit.read(4, 0), 0);
}

#[test]
fn spec_08_41_upper_level_update_with_foreign_fd_is_einval() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.caller = D0;
    ok(env.ext1(MmuextCmd::PinL2Table, 41, 0));
    env.flushes.clear();
    let r = env.mmu(&[req(41, 0, pte(42, PTE_P))], fd(D1));
    assert_eq!(r.err(), Some(HcError::Invalid(Invalid::ForeignUpperEntry)));
    assert_eq!(
        (errno(r), env.pdone(), kit.read(41, 0)),
        (Errno::EINVAL, 0, 0)
    );
    assert!(env.flushes.is_empty(), "nothing changed, nothing flushed");
    ok(env.mmu(&[req(41, 0, pte(42, PTE_P))], SELF));
    assert_eq!(
        (env.s(42).ty(), env.s(42).validated()),
        (PageType::L1, true)
    );
    assert_eq!(env.flushes, [(CpuMask::single(5), FlushKind::Full)]);
    env.assert_clean();
}
