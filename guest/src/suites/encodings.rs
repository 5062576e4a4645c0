//! Hypercall encodings at their edges (spec §3.5, §3.6, §4.2, §4.4; §8.4 cases 46, 48, 49;
//! §8.5 cases 59, 63, 67, 68, 69): a NULL `pdone`, the continuation flag in a guest's own
//! count, the "final return value" call, MMUEXT_SET_LDT's checks, INVLPG of addresses that are
//! not the guest's, and `update_va_mapping`'s flush encodings and `_otherdomain` form.
//!
//! Calls that take a pointer the typed wrappers do not offer (NULL arrays, vCPU bitmaps in
//! `flags`) go through `hypercall5` directly. Mappings only change at [`ALIAS`], which is put
//! back before each test returns; raw writes only land in [`RAW`].

use abi::domid::{DOMID_INVALID, DOMID_SELF};
use abi::hypercall::Hypercall;
use abi::layout::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START, PAGE_SHIFT};
use abi::mmu::MMU_UPDATE_PREEMPTED;
use abi::mmuext::{
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_SET_LDT,
    MMUEXT_TLB_FLUSH_LOCAL,
};
use abi::uvmf::{UVMF_ALL, UVMF_INVLPG, UVMF_LOCAL, UVMF_TLB_FLUSH};
use abi::{Errno, MmuUpdate, MmuextOp};

use super::Page;
use super::desc::probes::{load_ds, with_gp_probes};
use super::ops::{Alias, FD_SELF, LEAF_RO, PDONE_SENTINEL, expect_set, ext, frame};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure_eq};
use crate::hypercall;
use crate::traps::probe_read;

/// The page whose VA `update_va_mapping` points elsewhere.
static ALIAS: Page = Page::new();
/// Raw-write target.
static RAW: Page = Page::new();

const EINVAL: i64 = Errno::EINVAL.ret();
/// An address nothing maps (beyond the builder's initial region).
const UNMAPPED: u64 = 0x4000_0000;
/// Written into the frame the alias is pointed at.
const MARK: u64 = 0x0E4C_0D1A_6000_0001;

fn raw_maddr(env: &Env, word: u64) -> Result<u64, Fail> {
    env.maddr_of(RAW.va() + word * 8)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for RAW")))
}

/// `nr(args, count, pdone, fd)` for `mmu_update` / `mmuext_op` with any `pdone` pointer.
fn call4(nr: Hypercall, args: u64, count: u32, pdone: u64, fd: u32) -> i64 {
    // SAFETY: the callers pass arrays of raw writes into RAW or of TLB flushes (or no array),
    // and `pdone` is null or a live u32; nothing the kernel relies on changes.
    unsafe { hypercall::hypercall5(nr.nr(), args, u64::from(count), pdone, u64::from(fd), 0) }
}

/// A NULL `pdone` is accepted and nothing is written through it: `mmu_update` and
/// `mmuext_op` succeed (or fail with their error) and the word at VA 0 is unchanged (case 46).
pub fn null_pdone_accepted(env: &Env) -> Outcome {
    RAW.fill(0);
    let at0 = probe_read(0);
    let good = [MmuUpdate {
        ptr: raw_maddr(env, 1)?,
        val: 0x46,
    }];
    let bad = [MmuUpdate {
        ptr: raw_maddr(env, 2)? | 5,
        val: 0x47,
    }];
    let flush = [MmuextOp {
        cmd: MMUEXT_TLB_FLUSH_LOCAL,
        arg1: 0,
        arg2: 0,
    }];
    let unknown = [MmuextOp {
        cmd: 14,
        ..flush[0]
    }];
    let mmu = |r: &[MmuUpdate]| call4(Hypercall::MmuUpdate, r.as_ptr() as u64, 1, 0, FD_SELF);
    let mmuext = |o: &[MmuextOp]| call4(Hypercall::MmuextOp, o.as_ptr() as u64, 1, 0, FD_SELF);
    let rcs = [mmu(&good), mmu(&bad), mmuext(&flush), mmuext(&unknown)];
    let nosys = Errno::ENOSYS.ret();
    ensure_eq!(
        rcs,
        [0, nosys, 0, nosys],
        "rc of mmu_update, bad mmu_update, mmuext, bad mmuext"
    );
    ensure_eq!((RAW.read(1), RAW.read(2)), (0x46, 0), "RAW words 1, 2");
    ensure_eq!(probe_read(0), at0, "the word at VA 0");
    Ok(())
}

/// A guest may set the continuation flag itself: count 0x8000_0001 with `*pdone` = 7 runs
/// one request and leaves `*pdone` = 8, for `mmu_update` and `mmuext_op` (case 48).
pub fn continuation_count_from_guest(env: &Env) -> Outcome {
    RAW.fill(0);
    let reqs = [
        MmuUpdate {
            ptr: raw_maddr(env, 0)?,
            val: 0x11,
        },
        MmuUpdate {
            ptr: raw_maddr(env, 1)?,
            val: 0x22,
        },
    ];
    let flush = MmuextOp {
        cmd: MMUEXT_TLB_FLUSH_LOCAL,
        arg1: 0,
        arg2: 0,
    };
    let ops = [flush, MmuextOp { cmd: 14, ..flush }];
    let count = MMU_UPDATE_PREEMPTED | 1;
    let (mut d1, mut d2) = (7u32, 7u32);
    let mmu = call4(
        Hypercall::MmuUpdate,
        reqs.as_ptr() as u64,
        count,
        (&raw mut d1) as u64,
        FD_SELF,
    );
    let mmuext = call4(
        Hypercall::MmuextOp,
        ops.as_ptr() as u64,
        count,
        (&raw mut d2) as u64,
        FD_SELF,
    );
    ensure_eq!((mmu, d1), (0, 8), "mmu_update (rc, pdone)");
    ensure_eq!((RAW.read(0), RAW.read(1)), (0x11, 0), "RAW words 0, 1");
    ensure_eq!(
        (mmuext, d2),
        (0, 8),
        "mmuext_op (rc, pdone; op 1 would be -ENOSYS)"
    );
    Ok(())
}

/// The call a hypervisor makes to hand a deferred put's result back, NULL array and count
/// 0x8000_0000, returns `foreigndom` as an int and touches nothing, also when a guest makes
/// it (case 49: Xen's choice, kept).
pub fn final_return_call_returns_fd(_env: &Env) -> Outcome {
    for nr in [Hypercall::MmuUpdate, Hypercall::MmuextOp] {
        for (fd, want) in [(5u32, 5i64), (0xFFFF_FFEA, EINVAL), (0, 0)] {
            let mut done = PDONE_SENTINEL;
            let rc = call4(nr, 0, MMU_UPDATE_PREEMPTED, (&raw mut done) as u64, fd);
            ensure_eq!(
                (rc, done),
                (want, PDONE_SENTINEL),
                "{nr:?} with fd {fd:#x} (rc, pdone)"
            );
        }
    }
    Ok(())
}

/// MMUEXT_SET_LDT: more than 8192 entries, a base not page-aligned, in the hypervisor's hole
/// or non-canonical → `-EINVAL`; 8192 entries at a guest address, or above the hole → 0;
/// 0 entries → 0 whatever the base, and no LDT: an LDT selector then raises #GP (case 59).
pub fn set_ldt_checks(_env: &Env) -> Outcome {
    let base = ALIAS.va();
    let cases = [
        (base, 8193, EINVAL),
        (base + 8, 16, EINVAL),
        (HYPERVISOR_VIRT_START, 16, EINVAL),
        (HYPERVISOR_VIRT_END - 0x1000, 16, EINVAL),
        (1 << 47, 16, EINVAL),
        (base, 8192, 0),
        (HYPERVISOR_VIRT_END, 16, 0),
        (HYPERVISOR_VIRT_START + 8, 0, 0),
    ];
    let r = cases.iter().try_for_each(|&(at, ents, want)| {
        ensure_eq!(
            ext(MMUEXT_SET_LDT, at, ents),
            (want, u32::from(want == 0)),
            "SET_LDT({at:#x}, {ents}) (rc, pdone)"
        );
        Ok(())
    });
    if r.is_err() {
        let _ = ext(MMUEXT_SET_LDT, 0, 0);
    }
    r?;
    with_gp_probes(|| {
        ensure_eq!(
            load_ds(0x0F),
            Err(0x0C),
            "loading LDT selector 0x0f with no LDT"
        );
        Ok(())
    })
}

/// INVLPG_LOCAL, INVLPG_ALL and INVLPG_MULTI of a non-canonical address, one in the
/// hypervisor's hole and one high in the gap → 0, no fault (case 63, XSA-279).
pub fn invlpg_bad_va_ignored(_env: &Env) -> Outcome {
    let mask: u64 = 1;
    let cmds = [
        (MMUEXT_INVLPG_LOCAL, 0),
        (MMUEXT_INVLPG_ALL, 0),
        (MMUEXT_INVLPG_MULTI, (&raw const mask) as u64),
    ];
    for va in [
        1 << 47,
        0x1234_5678_9ABC_D000,
        HYPERVISOR_VIRT_START + 0x1000,
    ] {
        for (cmd, arg2) in cmds {
            ensure_eq!(
                ext(cmd, va, arg2),
                (0, 1),
                "cmd {cmd} of {va:#x} (rc, pdone)"
            );
        }
    }
    Ok(())
}

/// `update_va_mapping` with raw `flags` (a bitmap pointer among them).
fn uvm(va: u64, pte: u64, flags: u64) -> i64 {
    // SAFETY: `va` is the alias page's, which only the running test uses and puts back; any
    // bitmap pointer in `flags` is only read (or refused).
    unsafe { hypercall::hypercall5(Hypercall::UpdateVaMapping.nr(), va, pte, flags, 0, 0) }
}

/// The alias VA after a local INVLPG: word 0 of what it maps.
fn alias_word(alias: &Alias) -> Result<u64, Fail> {
    ensure_eq!(
        ext(MMUEXT_INVLPG_LOCAL, alias.va(), 0),
        (0, 1),
        "INVLPG_LOCAL"
    );
    Ok(alias.read(0))
}

/// A fresh frame holding [`MARK`] in word 0 (its MFN).
fn marked_frame(env: &Env) -> Result<u64, Fail> {
    let f = frame(env)?;
    expect_set(f, 0, MARK, 0, "raw write of the mark")?;
    Ok(f)
}

/// `update_va_mapping` whose flush targets a vCPU bitmap it cannot read (unmapped, in the
/// hole, non-canonical) → `-EFAULT`, with the entry already changed (case 67).
pub fn uvm_multi_bad_bitmap_efault(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let pte = (marked_frame(env)? << PAGE_SHIFT) | LEAF_RO;
    for bitmap in [UNMAPPED, HYPERVISOR_VIRT_START, 1 << 63] {
        for kind in [UVMF_INVLPG, UVMF_TLB_FLUSH] {
            let rc = uvm(alias.va(), pte, kind | bitmap);
            let seen = alias_word(&alias);
            alias.restore()?;
            ensure_eq!(rc, Errno::EFAULT.ret(), "flags {:#x}", kind | bitmap);
            ensure_eq!(
                seen?,
                MARK,
                "word at the alias after flags {:#x}",
                kind | bitmap
            );
        }
    }
    Ok(())
}

/// `update_va_mapping` with flush type 3 (both flush bits) → 0 and the entry changed; the
/// target bits are not looked at, not even an unreadable bitmap (case 68).
pub fn uvm_flush_type_3(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let pte = (marked_frame(env)? << PAGE_SHIFT) | LEAF_RO;
    for flags in [3, 3 | UVMF_ALL, 3 | UNMAPPED] {
        let rc = uvm(alias.va(), pte, flags);
        let seen = alias_word(&alias);
        alias.restore()?;
        ensure_eq!(rc, 0, "flags {flags:#x}");
        ensure_eq!(seen?, MARK, "word at the alias after flags {flags:#x}");
    }
    Ok(())
}

/// `update_va_mapping_otherdomain` naming a domain that does not exist (100, DOMID_INVALID)
/// or, in the initial domain, its own id 0 → `-ESRCH`; DOMID_SELF → 0 (case 69).
pub fn uvm_otherdomain_unknown_esrch(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let own = (super::ops::mfn_of(env, ALIAS.va())? << PAGE_SHIFT) | super::ops::LEAF_RW;
    let other = |domid: u16| {
        // SAFETY: the new entry is the alias page's own mapping, so the VA keeps mapping it
        // whether or not the call is refused.
        unsafe {
            hypercall::hypercall5(
                Hypercall::UpdateVaMappingOtherdomain.nr(),
                alias.va(),
                own,
                UVMF_INVLPG | UVMF_LOCAL,
                u64::from(domid),
                0,
            )
        }
    };
    let initial = env.si.flags & abi::start_info::SIF_INITDOMAIN != 0;
    let esrch = Errno::ESRCH.ret();
    for domid in [100, DOMID_INVALID].into_iter().chain(initial.then_some(0)) {
        ensure_eq!(other(domid), esrch, "domid {domid:#x}");
    }
    ensure_eq!(other(DOMID_SELF), 0, "DOMID_SELF");
    alias.restore()
}
