//! `mmuext_op` at the hypercall layer: spec §8.1 cases 4 and 12–16, §8.5 cases 59 and 61–64,
//! plus the entry checks, batches, continuations and the FD ≠ caller rule of the vCPU-local
//! commands. The base-pointer cases 56 and 57 are in `hypercall_baseptr.rs`.

mod hypercall_common;
use hypercall_common::*;

const SELF: u32 = DOMID_SELF as u32;

fn op(cmd: MmuextCmd, arg1: u64, arg2: u64) -> MmuextOp {
    MmuextOp::new(cmd, arg1, arg2)
}

#[test]
fn spec_08_04_second_pin_fails_and_keeps_one_extra_reference() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let before = env.s(12);
    ok(env.ext1(MmuextCmd::PinL1Table, 12, 0));
    let r = env.ext(&[op(MmuextCmd::PinL1Table, 12, 0)], SELF);
    assert_eq!(
        (r.err(), env.pdone()),
        (Some(HcError::Mm(MmError::AlreadyPinned)), 0)
    );
    let s = env.s(12);
    assert_eq!(
        (s.type_count(), s.general()),
        (before.type_count() + 1, before.general() + 1)
    );
    ok(env.ext1(MmuextCmd::UnpinTable, 12, 0));
    assert_eq!(
        errno(env.ext1(MmuextCmd::UnpinTable, 12, 0)),
        Errno::EINVAL,
        "case 5"
    );
    env.assert_clean();
}

#[test]
fn spec_08_12_pin_via_foreigndom_by_unprivileged_is_eperm() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let r = env.ext(&[op(MmuextCmd::PinL4Table, 30, 0)], fd(D2));
    assert_eq!(r.err(), Some(HcError::NotPermitted));
    assert_eq!(
        env.pdone(),
        SENTINEL,
        "mmuext_op's entry checks do not write *pdone"
    );
    assert_eq!(env.s(30).type_count(), 0);
    // The control domain may.
    env.caller = D0;
    ok(env.ext(&[op(MmuextCmd::PinL4Table, 30, 0)], fd(D2)));
    assert_eq!(env.pdone(), 1);
    assert!(env.s(30).pinned() && env.s(30).ty() == PageType::L4);
    env.assert_clean();
}

#[test]
fn spec_08_13_unknown_commands_enosys_removed_ones_eopnotsupp() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for cmd in [14, 21, 22, 0xFFFF_FFFF] {
        let ops = [
            op(MmuextCmd::TlbFlushLocal, 0, 0),
            MmuextOp {
                cmd,
                arg1: 0,
                arg2: 0,
            },
        ];
        let r = env.ext(&ops, SELF);
        assert_eq!(
            (r.err(), r.ret(), env.pdone()),
            (Some(HcError::UnknownCommand), Some(-38), 1)
        );
    }
    for cmd in [MmuextCmd::MarkSuper, MmuextCmd::UnmarkSuper] {
        let r = env.ext1(cmd, 12, 0);
        assert_eq!((r.ret(), env.pdone()), (Some(-95), 0));
    }
}

#[test]
fn spec_08_14_pin_of_another_domains_frame_with_fd_self_is_einval() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let r = env.ext1(MmuextCmd::PinL1Table, 30, 0);
    assert_eq!(
        (r.err(), env.pdone()),
        (Some(HcError::Mm(MmError::WrongOwner)), 0)
    );
    assert_eq!(errno(r), Errno::EINVAL);
    assert_eq!(env.s(30).general(), 1);
}

#[test]
fn spec_08_15_pin_of_free_or_mmio_frame_is_einval() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for f in [FREE, MMIO, u64::MAX] {
        assert_eq!(
            errno(env.ext1(MmuextCmd::PinL1Table, f, 0)),
            Errno::EINVAL,
            "frame {f:#x}"
        );
    }
    assert_eq!(env.s(FREE), FrameState::FREE);
}

#[test]
fn spec_08_16_released_pinned_l1_lives_until_unpinned() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    ok(env.ext1(MmuextCmd::PinL1Table, 12, 0));
    // decrease_reservation: the allocation reference goes, the pin stays (XSA-252).
    let _ = env.t().release_allocation(Mfn(12), D1).unwrap();
    let s = env.s(12);
    assert!(s.pinned() && !s.allocated() && s.general() == 1);
    ok(env.ext1(MmuextCmd::UnpinTable, 12, 0));
    assert_eq!(env.s(12), FrameState::FREE, "freed by the unpin");
}

#[test]
fn spec_08_59_set_ldt_validation() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    let bad = [
        (0x20_0000, 8193, Invalid::LdtTooLarge),
        (0x20_0008, 16, Invalid::LdtMisaligned),
        (0xFFFF_8000_0000_0000, 16, Invalid::LdtAddress),
        (1 << 47, 16, Invalid::LdtAddress),
    ];
    for (base, ents, why) in bad {
        let r = env.ext1(MmuextCmd::SetLdt, base, ents);
        assert_eq!(
            (r.err(), r.ret()),
            (Some(HcError::Invalid(why)), Some(-22)),
            "{base:#x}"
        );
    }
    assert_eq!(env.ldt, Ldt::default());
    env.ldt_shadow = true;
    ok(env.ext1(MmuextCmd::SetLdt, 0x20_0000, 8192));
    assert_eq!(
        env.ldt,
        Ldt {
            base: 0x20_0000,
            ents: 8192
        }
    );
    assert_eq!(
        env.flushes,
        [(CpuMask::single(0), FlushKind::Full)],
        "shadow LDT dropped"
    );
    // Unchanged: nothing happens. ents 0: no LDT (the base is ignored, even a bad one).
    env.ldt_shadow = true;
    ok(env.ext1(MmuextCmd::SetLdt, 0x20_0000, 8192));
    assert!(env.ldt_shadow, "unchanged LDT: the shadow mappings stay");
    ok(env.ext1(MmuextCmd::SetLdt, 0xFFFF_8000_0000_0123, 0));
    assert_eq!(env.ldt, Ldt { base: 0, ents: 0 });
    // Only for the caller's own domain.
    env.caller = D0;
    assert_eq!(
        errno(env.ext(&[op(MmuextCmd::SetLdt, 0, 0)], fd(D1))),
        Errno::EPERM
    );
}

#[test]
fn spec_08_61_flush_cache_needs_io_capabilities() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for cmd in [MmuextCmd::FlushCache, MmuextCmd::FlushCacheGlobal] {
        let r = env.ext1(cmd, 0, 0);
        assert_eq!(
            (r.err(), r.ret()),
            (Some(HcError::NoCacheControl), Some(-13))
        );
    }
    assert_eq!(env.cache_flushes, 0);
    env.caller = D0;
    ok(env.ext1(MmuextCmd::FlushCache, 0, 0));
    ok(env.ext1(MmuextCmd::FlushCacheGlobal, 0, 0));
    assert_eq!(env.cache_flushes, 2);
    assert_eq!(
        errno(env.ext(&[op(MmuextCmd::FlushCache, 0, 0)], fd(D1))),
        Errno::EPERM
    );
}

#[test]
fn spec_08_62_multi_flush_with_unreadable_vcpumask_is_einval() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for cmd in [MmuextCmd::TlbFlushMulti, MmuextCmd::InvlpgMulti] {
        for mask in [0x7000_0000, 0xFFFF_8000_0000_0000, (1 << 47) - 4] {
            let r = env.ext1(cmd, 0x1000, mask);
            assert_eq!(
                r.err(),
                Some(HcError::Invalid(Invalid::VcpuMask)),
                "{cmd:?} {mask:#x}"
            );
            assert_eq!(r.ret(), Some(-22), "-EINVAL, not -EFAULT");
        }
    }
    assert!(env.flushes.is_empty());
}

#[test]
fn spec_08_63_invlpg_of_a_bad_address_is_ignored() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    for va in [0x0000_8000_0000_0000, 0x1234_5678_9ABC_D000] {
        ok(env.ext1(MmuextCmd::InvlpgAll, va, 0));
        ok(env.ext1(MmuextCmd::InvlpgLocal, va, 0));
        env.put_u64(MASK, 0b11);
        ok(env.ext1(MmuextCmd::InvlpgMulti, va, MASK));
    }
    ok(env.ext1(MmuextCmd::InvlpgAll, 0xFFFF_8000_0000_1000, 0)); // hypervisor hole
    assert!(
        env.flushes.is_empty(),
        "no flush attempted: {:?}",
        env.flushes
    );
    ok(env.ext1(MmuextCmd::InvlpgAll, 0xFFFF_8800_0000_1234, 0));
    ok(env.ext1(MmuextCmd::InvlpgLocal, 0x5000, 0));
    let all = [0, 1, 3].into_iter().collect();
    assert_eq!(
        env.flushes,
        [
            (all, FlushKind::Va(0xFFFF_8800_0000_1000)),
            (CpuMask::single(0), FlushKind::Va(0x5000))
        ]
    );
}

#[test]
fn spec_08_64_clear_and_copy_page() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    kit.write(12, 9, pte(13, PTE_P));
    ok(env.ext1(MmuextCmd::PinL1Table, 12, 0));
    let r = env.ext1(MmuextCmd::ClearPage, 12, 0);
    assert_eq!(
        (errno(r), kit.read(12, 9) & PTE_P),
        (Errno::EINVAL, PTE_P),
        "pinned L1 untouched"
    );
    kit.write(14, 1, 0xAAAA);
    ok(env.ext1(MmuextCmd::CopyPage, 14, 12));
    assert_eq!(
        (kit.read(14, 9), kit.read(14, 1)),
        (kit.read(12, 9), 0),
        "src copied over dst"
    );
    assert_eq!(
        (env.s(14).ty(), env.s(14).type_count()),
        (PageType::Writable, 0)
    );
    ok(env.ext1(MmuextCmd::ClearPage, 14, 0));
    assert_eq!(kit.read(14, 9), 0);
    // dst typed otherwise, src or dst not ours, not RAM: -EINVAL.
    for (dst, src) in [(12, 14), (14, 30), (30, 14), (14, MMIO), (FREE, 14)] {
        let r = env.ext1(MmuextCmd::CopyPage, dst, src);
        assert_eq!(errno(r), Errno::EINVAL, "copy {src} -> {dst}");
    }
    for f in [30, FREE, MMIO] {
        assert_eq!(
            errno(env.ext1(MmuextCmd::ClearPage, f, 0)),
            Errno::EINVAL,
            "clear {f}"
        );
    }
    // With FD = the owner, a privileged caller clears another domain's page.
    kit.write(31, 0, 5);
    env.caller = D0;
    ok(env.ext(&[op(MmuextCmd::ClearPage, 31, 0)], fd(D2)));
    assert_eq!(kit.read(31, 0), 0);
    env.caller = D1;
    env.assert_clean();
}

#[test]
fn vcpu_local_commands_need_fd_to_be_the_caller() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.caller = D0;
    for cmd in [
        MmuextCmd::NewUserBaseptr,
        MmuextCmd::TlbFlushLocal,
        MmuextCmd::InvlpgLocal,
        MmuextCmd::TlbFlushMulti,
        MmuextCmd::InvlpgMulti,
        MmuextCmd::TlbFlushAll,
        MmuextCmd::InvlpgAll,
    ] {
        assert_eq!(
            errno(env.ext(&[op(cmd, 0x1000, MASK)], fd(D1))),
            Errno::EPERM,
            "{cmd:?}"
        );
    }
    assert!(env.flushes.is_empty());
}

#[test]
fn entry_checks_batches_and_continuations() {
    let kit = kit();
    let mut env = FakeEnv::new(&kit);
    env.put_u32(PDONE, SENTINEL);
    let r = mmuext_op(&mut env, 0xFFFF_8000_0000_0000, 1, PDONE, SELF);
    assert_eq!((r.err(), env.pdone()), (Some(HcError::Fault), SENTINEL));
    for bad in [fd(99), fd(D1), fd(DOMID_XEN)] {
        let r = env.ext(&[op(MmuextCmd::TlbFlushLocal, 0, 0)], bad);
        assert!(
            matches!(r.err(), Some(HcError::NoSuchDomain | HcError::NotPermitted)),
            "{bad:#x}"
        );
        assert_eq!(env.pdone(), SENTINEL);
    }
    // FD is the low 16 bits of foreigndom.
    ok(env.ext(&[op(MmuextCmd::TlbFlushLocal, 0, 0)], 0xABCD_0000 | SELF));
    env.flushes.clear();
    // Stops at the first failure; what came before stays done.
    let ops = [
        op(MmuextCmd::TlbFlushLocal, 0, 0),
        op(MmuextCmd::PinL1Table, 30, 0),
        op(MmuextCmd::TlbFlushAll, 0, 0),
    ];
    assert_eq!(errno(env.ext(&ops, SELF)), Errno::EINVAL);
    assert_eq!((env.pdone(), env.flushes.len()), (1, 1));
    // Preempted after the first op: continuation with ops advanced by one 24-byte element.
    env.preempt_every = Some(1);
    env.put(
        REQS,
        &[
            op(MmuextCmd::PinL1Table, 12, 0),
            op(MmuextCmd::PinL1Table, 13, 0),
        ],
    );
    env.put_u32(PDONE, 0);
    let r = mmuext_op(&mut env, REQS, 2, PDONE, SELF);
    let want = Continuation {
        ops: REQS + 24,
        count: MMU_UPDATE_PREEMPTED | 1,
        pdone: PDONE,
        foreigndom: SELF,
    };
    assert_eq!((r, env.pdone()), (HcResult::Continue(want), 1));
    assert!(env.s(12).pinned() && !env.s(13).pinned());
    ok(mmuext_op(&mut env, want.ops, want.count, PDONE, SELF));
    assert!(env.s(13).pinned());
    assert_eq!(env.pdone(), 2);
    env.assert_clean();
}
