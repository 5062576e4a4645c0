//! `update_va_mapping` / `update_va_mapping_otherdomain`: spec §8.5 cases 65–69, plus the
//! walk's other refusals, every flush target, and FD's rules for the foreign variant.

mod hypercall_common;
use hypercall_common::*;

fn uvm(env: &mut FakeEnv<'_>, va: u64, val: u64, flags: u64) -> HcResult {
    update_va_mapping(env, va, val, flags)
}

/// The environment with domain 1's tables installed (L1 4 maps `va(i)`).
macro_rules! setup {
    ($kit:ident, $env:ident) => {
        let $kit = kit();
        let mut $env = FakeEnv::new(&$kit);
        $env.install_tree();
    };
}

#[test]
fn updates_the_l1_entry_and_flushes_as_asked() {
    setup!(kit, env);
    ok(uvm(&mut env, va(5), pte(9, PTE_P | PTE_RW), UVMF_NONE));
    assert_eq!(frame_of(kit.read(4, 5)), 9);
    assert_eq!((env.s(9).general(), env.s(9).type_count()), (2, 1));
    assert!(env.flushes.is_empty());
    let dirty: CpuMask = [0, 1, 3].into_iter().collect();
    env.put_u64(MASK, 0b110); // vCPU 1 (CPU 1) and vCPU 2 (loaded nowhere)
    let cases = [
        (
            UVMF_INVLPG | UVMF_LOCAL,
            CpuMask::single(0),
            FlushKind::Va(va(5)),
        ),
        (
            UVMF_TLB_FLUSH | UVMF_LOCAL,
            CpuMask::single(0),
            FlushKind::Full,
        ),
        (UVMF_INVLPG | UVMF_ALL, dirty, FlushKind::Va(va(5))),
        (UVMF_TLB_FLUSH | UVMF_ALL, dirty, FlushKind::Full),
        (
            UVMF_INVLPG | UVMF_MULTI | MASK,
            CpuMask::single(1),
            FlushKind::Va(va(5)),
        ),
        (
            UVMF_TLB_FLUSH | UVMF_MULTI | MASK,
            CpuMask::single(1),
            FlushKind::Full,
        ),
    ];
    for (flags, cpus, kind) in cases {
        env.flushes.clear();
        ok(uvm(&mut env, va(5) + 0x123, pte(9, PTE_P), flags));
        assert_eq!(env.flushes, [(cpus, kind)], "flags {flags:#x}");
    }
    assert_eq!(
        (env.s(9).general(), env.s(9).type_count()),
        (2, 0),
        "RW dropped"
    );
    ok(uvm(&mut env, va(5), 0, UVMF_NONE));
    env.assert_clean();
}

#[test]
fn spec_08_65_l2_entry_absent_or_pse_is_einval() {
    setup!(kit, env);
    let no_l1 = Some(HcError::Invalid(Invalid::NoL1Entry));
    // L2 slot 2 is empty.
    let far = (1 << 30) | (2 << 21);
    assert_eq!(uvm(&mut env, far, pte(9, PTE_P), UVMF_NONE).err(), no_l1);
    // A PSE L2 entry (cannot be created by a guest; planted here to check the walk).
    let saved = kit.read(3, 1);
    kit.write(3, 1, saved | PTE_PSE);
    let r = uvm(&mut env, va(0), pte(9, PTE_P), UVMF_INVLPG | UVMF_ALL);
    assert_eq!((r.err(), env.flushes.len()), (no_l1, 0));
    kit.write(3, 1, saved);
    // Absent L4 / L3 entries, no kernel base.
    assert_eq!(uvm(&mut env, 1 << 39, pte(9, PTE_P), 0).err(), no_l1);
    assert_eq!(uvm(&mut env, 2 << 30, pte(9, PTE_P), 0).err(), no_l1);
    let base = env.kernel_base.take();
    assert_eq!(uvm(&mut env, va(0), pte(9, PTE_P), 0).err(), no_l1);
    env.kernel_base = base;
    // The "L1" is not an L1: L2 slot 5 is a read-only self-map, so the walk ends in the L2.
    ok(env.mmu(&[req(3, 5, pte(3, PTE_P))], DOMID_SELF as u32));
    let r = uvm(&mut env, (1 << 30) | (5 << 21), pte(9, PTE_P), 0);
    assert_eq!(
        (r.err(), r.ret()),
        (Some(HcError::Mm(MmError::NotValidated)), Some(-22))
    );
    assert_eq!(kit.read(4, 0), 0);
    env.assert_clean();
}

#[test]
fn spec_08_66_xsa_279_non_canonical_va_is_einval_without_flush() {
    setup!(kit, env);
    for bad in [
        0x0000_8000_0000_0000,
        0xFFFF_8000_0000_0000,
        0xFFFF_87FF_FFFF_F000,
    ] {
        let r = uvm(&mut env, bad, pte(9, PTE_P), UVMF_INVLPG | UVMF_ALL);
        assert_eq!(
            r.err(),
            Some(HcError::Invalid(Invalid::NoL1Entry)),
            "{bad:#x}"
        );
        assert_eq!(r.ret(), Some(-22));
    }
    assert!(env.flushes.is_empty(), "no flush attempted");
    // Any failing update flushes nothing either.
    let r = uvm(&mut env, va(1), pte(FREE, PTE_P), UVMF_TLB_FLUSH | UVMF_ALL);
    assert_eq!((errno(r), env.flushes.len()), (Errno::EBUSY, 0));
}

#[test]
fn spec_08_67_multi_with_bad_bitmap_changes_the_pte_then_efaults() {
    setup!(kit, env);
    for bad in [0x7000_0000, 0xFFFF_8000_0000_0000, (1 << 47) - 4] {
        let r = uvm(
            &mut env,
            va(2),
            pte(9, PTE_P),
            UVMF_INVLPG | UVMF_MULTI | bad,
        );
        assert_eq!(
            (r.err(), r.ret()),
            (Some(HcError::Fault), Some(-14)),
            "{bad:#x}"
        );
        assert_eq!(frame_of(kit.read(4, 2)), 9, "PTE already changed");
    }
    assert!(env.flushes.is_empty());
    env.assert_clean();
}

#[test]
fn spec_08_68_flush_type_3_is_success_without_flush() {
    setup!(kit, env);
    for target in [UVMF_LOCAL, UVMF_ALL, MASK, 0x7000_0000] {
        ok(uvm(&mut env, va(3), pte(9, PTE_P), 3 | target));
    }
    assert_eq!(frame_of(kit.read(4, 3)), 9);
    assert!(env.flushes.is_empty());
}

#[test]
fn spec_08_69_otherdomain_with_unknown_domid_is_esrch() {
    setup!(kit, env);
    for bad in [99, D1, DOMID_SELF + 4] {
        let r = update_va_mapping_otherdomain(&mut env, va(0), pte(30, PTE_P), 0, bad);
        assert_eq!(r.err(), Some(HcError::NoSuchDomain), "{bad:#x}");
    }
    assert_eq!(kit.read(4, 0), 0);
}

#[test]
fn otherdomain_follows_fd_rules() {
    setup!(kit, env);
    // An unprivileged caller may not name FD for a present entry; a not-present one is fine.
    let r = update_va_mapping_otherdomain(&mut env, va(0), pte(30, PTE_P), 0, D2);
    assert_eq!(r.err(), Some(HcError::NotPermitted));
    ok(update_va_mapping_otherdomain(&mut env, va(0), 0, 0, D2));
    // Plain update_va_mapping cannot map another domain's frame (-EBUSY), even privileged.
    assert_eq!(errno(uvm(&mut env, va(0), pte(30, PTE_P), 0)), Errno::EBUSY);
    // Domain 0 on its own vCPU, with its own tables: the L1 is the caller's; FD = D1 lets it
    // map D1's frame.
    env.caller = D0;
    env.kernel_base = None;
    kit.write(40, 0, pte(41, PTE_P | PTE_RW));
    kit.write(41, 1, pte(42, PTE_P | PTE_RW));
    kit.write(42, 1, pte(43, PTE_P | PTE_RW));
    ok(env.ext1(MmuextCmd::NewBaseptr, 40, 0));
    assert_eq!(errno(uvm(&mut env, va(0), pte(9, PTE_P), 0)), Errno::EBUSY);
    ok(update_va_mapping_otherdomain(
        &mut env,
        va(0),
        pte(9, PTE_P | PTE_RW),
        0,
        D1,
    ));
    assert_eq!((frame_of(kit.read(43, 0)), env.s(9).type_count()), (9, 1));
    ok(uvm(&mut env, va(0), 0, 0));
    // Domain 1's base (frame 1) is still held: it belongs to its own vCPU.
    let extras = [Mfn(1), Mfn(40)].map(|mfn| ExtraRef {
        mfn,
        ty: Some(PageType::L4),
    });
    let report = kit.audit_with(&extras, &[(D0, D1)]);
    assert!(
        report.is_clean(),
        "{:#?}",
        report.findings().collect::<Vec<_>>()
    );
}
