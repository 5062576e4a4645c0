//! Requests a hypervisor must refuse, with Xen's exact errno (spec §8): writable mappings of
//! page tables, frames the domain does not own, hypervisor and MMIO frames, bad commands in a
//! batch, bad pointers, bad domain ids and bad `update_va_mapping` addresses. The page-table
//! structure rules (Xen slots, self-maps, linear tables, flags) are in `reject_pt`.
//!
//! Each test names its spec case. Frames come fresh from [`frame`] and every test unpins and
//! unmaps what it set up, so the audit after the suite sees no leftovers. Every test holds in
//! the privileged dom0 (with I/O capabilities, as under Xen) and in an unprivileged Argon
//! domain alike; the cases whose answer needs a particular kind of domain are listed in
//! `guest/README.md`.

use abi::Errno;
use abi::hypercall::Hypercall;
use abi::layout::{HYPERVISOR_VIRT_START, M2P_L4_SLOT, PAGE_SHIFT};
use abi::mmuext::{
    MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE, MMUEXT_INVLPG_MULTI, MMUEXT_PIN_L1_TABLE,
    MMUEXT_PIN_L2_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE,
};
use abi::uvmf::{UVMF_ALL, UVMF_INVLPG};
use abi::{MmuUpdate, MmuextOp};

use super::Page;
use super::ops::{
    Alias, FD_SELF, LEAF_RO, LEAF_RW, PDONE_SENTINEL, expect_ext, expect_set, frame, update,
    update_fd,
};
use crate::console::println;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::hypercall;
use crate::traps::{probe_read, probe_write};

/// The page whose VA the tests point at other frames.
static ALIAS: Page = Page::new();
/// Raw-write target of the batch tests.
static RAW: Page = Page::new();

const EBUSY: i64 = Errno::EBUSY.ret();
const EINVAL: i64 = Errno::EINVAL.ret();
const EFAULT: i64 = Errno::EFAULT.ret();
const ESRCH: i64 = Errno::ESRCH.ret();
/// An address with nothing mapped (beyond the builder's initial region).
const UNMAPPED: u64 = 0x4000_0000;

/// Maps `pte` at the alias VA and restores the alias: the mapping's rc.
fn try_map(alias: &Alias, pte: u64) -> Result<i64, Fail> {
    let rc = alias.map(pte);
    alias.restore()?;
    Ok(rc)
}

/// A writable mapping of a pinned L1 or L2 → `-EBUSY`; a read-only one → 0 (case 7; for an
/// L1 also spec §2.4 step 5).
pub fn rw_map_pinned_table_ebusy(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    for (pin, what) in [(MMUEXT_PIN_L1_TABLE, "L1"), (MMUEXT_PIN_L2_TABLE, "L2")] {
        let t = frame(env)?;
        expect_ext(pin, t, 0, 0, what)?;
        let rw = try_map(&alias, (t << PAGE_SHIFT) | LEAF_RW)?;
        let ro = alias.map((t << PAGE_SHIFT) | LEAF_RO);
        let seen = alias.read(0);
        alias.restore()?;
        expect_ext(MMUEXT_UNPIN_TABLE, t, 0, 0, "unpin")?;
        ensure_eq!(rw, EBUSY, "RW mapping of a pinned {what}");
        ensure_eq!(ro, 0, "RO mapping of a pinned {what}");
        ensure_eq!(
            seen,
            0,
            "word 0 of the empty {what}, read through the RO mapping"
        );
    }
    Ok(())
}

/// Pinning as L1 a frame that is mapped read-write → `-EINVAL`; once unmapped → 0 (case 1).
pub fn pin_l1_mapped_rw_einval(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let t = frame(env)?;
    ensure_eq!(alias.map((t << PAGE_SHIFT) | LEAF_RW), 0, "RW mapping");
    let (rc, done) = super::ops::ext(MMUEXT_PIN_L1_TABLE, t, 0);
    alias.restore()?;
    ensure_eq!(
        (rc, done),
        (EINVAL, 0),
        "PIN_L1 while mapped RW (rc, pdone)"
    );
    expect_ext(MMUEXT_PIN_L1_TABLE, t, 0, 0, "PIN_L1 after the unmap")?;
    expect_ext(MMUEXT_UNPIN_TABLE, t, 0, 0, "unpin")
}

/// An L1 whose entry maps the L1 itself: read-write → pin `-EBUSY` and the frame stays
/// untyped (raw writes still work); read-only → pin 0 (cases 2, 3).
pub fn pin_l1_self_map(env: &Env) -> Outcome {
    let t = frame(env)?;
    expect_set(t, 3, (t << PAGE_SHIFT) | LEAF_RW, 0, "raw RW self entry")?;
    expect_ext(
        MMUEXT_PIN_L1_TABLE,
        t,
        0,
        EBUSY,
        "PIN_L1 with an RW self-map",
    )?;
    expect_set(
        t,
        3,
        (t << PAGE_SHIFT) | LEAF_RO,
        0,
        "raw RO self entry (still untyped)",
    )?;
    expect_ext(MMUEXT_PIN_L1_TABLE, t, 0, 0, "PIN_L1 with an RO self-map")?;
    expect_ext(MMUEXT_UNPIN_TABLE, t, 0, 0, "unpin")
}

/// The lowest and highest MFN of the domain's P2M.
fn own_mfn_range(env: &Env) -> (u64, u64) {
    (0..env.si.nr_pages)
        .filter_map(|p| env.p2m(p))
        .fold((u64::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)))
}

/// A RAM frame of somebody else: the one just below the domain's lowest MFN (both hypervisors
/// place a 64 MiB dom0 above other RAM of theirs), or just above its highest.
fn foreign_ram_frame(env: &Env) -> u64 {
    let (lo, hi) = own_mfn_range(env);
    let mfn = if lo > 0x200 { lo - 1 } else { hi + 1 };
    println!("guest: info own MFNs {lo:#x}-{hi:#x}, foreign frame {mfn:#x}");
    mfn
}

/// Mapping a RAM frame the domain does not own, RW or RO → `-EBUSY` (cases 17, 22).
pub fn map_unowned_ram_ebusy(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let mfn = foreign_ram_frame(env);
    ensure_eq!(
        try_map(&alias, (mfn << PAGE_SHIFT) | LEAF_RW)?,
        EBUSY,
        "RW mapping"
    );
    ensure_eq!(
        try_map(&alias, (mfn << PAGE_SHIFT) | LEAF_RO)?,
        EBUSY,
        "RO mapping"
    );
    Ok(())
}

/// Mapping one of the hypervisor's own page-table frames (the L3 under the M2P slot of the
/// kernel's L4) → `-EBUSY`: RAM with no owner the domain may name (case 22).
pub fn map_hypervisor_frame_ebusy(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let at = env.si.pt_base + M2P_L4_SLOT as u64 * 8;
    let l4e = probe_read(at).ok_or_else(|| Fail::new(format_args!("L4 unreadable")))?;
    ensure!(
        l4e & 1 == 1,
        "M2P slot of the kernel's L4 not present ({l4e:#x})"
    );
    let mfn = (l4e & 0x000F_FFFF_FFFF_F000) >> PAGE_SHIFT;
    println!("guest: info M2P L3 frame {mfn:#x}");
    ensure_eq!(
        try_map(&alias, (mfn << PAGE_SHIFT) | LEAF_RO)?,
        EBUSY,
        "RO mapping"
    );
    ensure_eq!(
        try_map(&alias, (mfn << PAGE_SHIFT) | LEAF_RW)?,
        EBUSY,
        "RW mapping"
    );
    Ok(())
}

/// A leaf whose address field is all ones → `-EINVAL` (case 22).
pub fn map_all_ones_frame_einval(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let all_ones = 0x000F_FFFF_FFFF_F000;
    ensure_eq!(try_map(&alias, all_ones | LEAF_RO)?, EINVAL, "RO mapping");
    ensure_eq!(try_map(&alias, all_ones | LEAF_RW)?, EINVAL, "RW mapping");
    Ok(())
}

/// The local APIC's MMIO page, which not even dom0 may map → `-EPERM` (cases 20, 22).
pub fn map_lapic_mmio_eperm(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let lapic = 0xFEE0_0000 | LEAF_RO;
    ensure_eq!(
        try_map(&alias, lapic)?,
        Errno::EPERM.ret(),
        "mapping the LAPIC"
    );
    Ok(())
}

/// A batch whose second request has command 5: `-ENOSYS`, `*pdone` = 1, the first request
/// applied and the third not (cases 44, 45).
pub fn mmu_update_batch_bad_cmd(env: &Env) -> Outcome {
    RAW.fill(0);
    let at = |w: u64| env.maddr_of(RAW.va() + w * 8);
    let (a, b) = at(1)
        .zip(at(2))
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for RAW")))?;
    let reqs = [
        MmuUpdate { ptr: a, val: 0xA1 },
        MmuUpdate {
            ptr: a | 5,
            val: 0xB2,
        },
        MmuUpdate { ptr: b, val: 0xC3 },
    ];
    ensure_eq!(update(&reqs), (Errno::ENOSYS.ret(), 1), "(rc, pdone)");
    ensure_eq!(
        (RAW.read(1), RAW.read(2)),
        (0xA1, 0),
        "words after the batch"
    );
    Ok(())
}

/// An mmuext batch whose second op is command 14: `-ENOSYS`, `*pdone` = 1 (cases 13, 45).
pub fn mmuext_batch_bad_cmd(_env: &Env) -> Outcome {
    let flush = MmuextOp {
        cmd: MMUEXT_TLB_FLUSH_LOCAL,
        arg1: 0,
        arg2: 0,
    };
    let bad = MmuextOp { cmd: 14, ..flush };
    let mut done = PDONE_SENTINEL;
    // SAFETY: local TLB flushes and an unknown command change no mapping.
    let rc = unsafe { hypercall::mmuext_op(&[flush, bad, flush], Some(&mut done), FD_SELF) };
    ensure_eq!((rc, done), (Errno::ENOSYS.ret(), 1), "(rc, pdone)");
    Ok(())
}

/// Request arrays starting in the hypervisor hole or the non-canonical gap → `-EFAULT` before
/// any work, for `mmu_update` and `mmuext_op` (case 47). Xen leaves `*pdone` untouched here
/// (the spec's "*pdone = 0" is what a guest that zeroed it sees).
pub fn request_array_bad_pointer_efault(_env: &Env) -> Outcome {
    for ptr in [HYPERVISOR_VIRT_START, 1 << 63, 0x0000_8000_0000_0000] {
        for nr in [Hypercall::MmuUpdate, Hypercall::MmuextOp] {
            let mut done = PDONE_SENTINEL;
            // SAFETY: the array pointer is not a guest address, so nothing is read or done.
            let rc = unsafe {
                hypercall::hypercall5(
                    nr.nr(),
                    ptr,
                    1,
                    (&raw mut done) as u64,
                    u64::from(FD_SELF),
                    0,
                )
            };
            ensure_eq!(
                (rc, done),
                (EFAULT, PDONE_SENTINEL),
                "{nr:?} from {ptr:#x} (rc, pdone)"
            );
        }
    }
    Ok(())
}

/// A two-request array whose first request is the last 16 bytes below 2^47: the first is
/// applied, the second (at the first non-canonical address) fails with `-EFAULT` and `*pdone`
/// = 1 (case 47). The page below 2^47 is mapped for the test through kernel L4 slot 255 by a
/// tree of fresh frames that validates when it is hooked in and is unhooked afterwards.
pub fn request_array_runs_past_lower_half(env: &Env) -> Outcome {
    const TOP: u64 = 0x7FFF_FFFF_F000;
    let (l3, l2, l1, page) = (frame(env)?, frame(env)?, frame(env)?, frame(env)?);
    let kernel_l4 = super::ops::mfn_of(env, env.si.pt_base)?;
    let raw = env
        .maddr_of(RAW.va())
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for RAW")))?;
    expect_set(l1, 511, (page << PAGE_SHIFT) | LEAF_RW, 0, "raw L1 entry")?;
    expect_set(
        l2,
        511,
        (l1 << PAGE_SHIFT) | super::ops::UPPER,
        0,
        "raw L2 entry",
    )?;
    expect_set(
        l3,
        511,
        (l2 << PAGE_SHIFT) | super::ops::UPPER,
        0,
        "raw L3 entry",
    )?;
    let hook = (l3 << PAGE_SHIFT) | super::ops::UPPER;
    expect_set(kernel_l4, 255, hook, 0, "kernel L4 slot 255 → the tree")?;
    RAW.fill(0);
    let req = TOP + 0xFF0;
    // SAFETY: the page at TOP is the fresh frame just mapped, used by nothing else.
    let store = |va: u64, value: u64| unsafe { probe_write(va, value) };
    let wrote = store(req, raw) && store(req + 8, 0x5EE);
    let mut done = PDONE_SENTINEL;
    // SAFETY: request 0 writes a word of RAW; request 1 is unreadable.
    let rc = unsafe {
        let pdone = (&raw mut done) as u64;
        hypercall::hypercall5(
            Hypercall::MmuUpdate.nr(),
            req,
            2,
            pdone,
            u64::from(FD_SELF),
            0,
        )
    };
    let unhook = super::ops::set(kernel_l4, 255, 0);
    ensure!(wrote, "writing the request below 2^47 faulted");
    ensure_eq!(unhook, (0, 1), "unhooking slot 255");
    ensure_eq!((rc, done), (EFAULT, 1), "(rc, pdone)");
    ensure_eq!(RAW.read(0), 0x5EE, "RAW word 0 after request 0");
    Ok(())
}

/// TLB_FLUSH_MULTI and INVLPG_MULTI with an unreadable vCPU mask → `-EINVAL` (case 62).
pub fn flush_multi_bad_mask_einval(_env: &Env) -> Outcome {
    for mask in [UNMAPPED, 1 << 63] {
        for cmd in [MMUEXT_TLB_FLUSH_MULTI, MMUEXT_INVLPG_MULTI] {
            let op = MmuextOp {
                cmd,
                arg1: ALIAS.va(),
                arg2: mask,
            };
            let mut done = PDONE_SENTINEL;
            // SAFETY: a flush changes no mapping; the mask is unreadable anyway.
            let rc = unsafe { hypercall::mmuext_op(&[op], Some(&mut done), FD_SELF) };
            ensure_eq!(
                (rc, done),
                (EINVAL, 0),
                "cmd {cmd} with mask {mask:#x} (rc, pdone)"
            );
        }
    }
    Ok(())
}

/// FD = the caller's own numeric id → `-ESRCH` (case 19; checked in the initial domain, whose
/// id is 0: no other id is known to the kernel); a page-table owner that does not exist (PFD
/// 100) or is DOMID_SELF → `-ESRCH` (case 50). Xen looks PFD up before anything else and
/// leaves `*pdone` untouched; FD's lookup fails on the way to the batch loop, which writes 0.
pub fn bad_domain_ids_esrch(env: &Env) -> Outcome {
    let maddr = env
        .maddr_of(RAW.va())
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for RAW")))?;
    let req = [MmuUpdate { ptr: maddr, val: 1 }];
    let self_id = u32::from(abi::domid::DOMID_SELF);
    let initial = env.si.flags & abi::start_info::SIF_INITDOMAIN != 0;
    let cases = [
        (0, 0, "FD = own id 0"),
        (((100 + 1) << 16) | self_id, PDONE_SENTINEL, "PFD 100"),
        (
            ((self_id + 1) << 16) | self_id,
            PDONE_SENTINEL,
            "PFD DOMID_SELF",
        ),
    ];
    for (fd, done, what) in cases.into_iter().skip(usize::from(!initial)) {
        ensure_eq!(update_fd(&req, fd), (ESRCH, done), "{what} (rc, pdone)");
    }
    Ok(())
}

/// `update_va_mapping` where no L1 maps the VA (case 65) or at a non-canonical VA with a
/// global flush (case 66, XSA-279) → `-EINVAL`.
pub fn uvm_bad_va_einval(_env: &Env) -> Outcome {
    for (va, flags, what) in [
        (UNMAPPED, 0, "VA with no L2/L3 entry"),
        (
            0x0000_8000_0000_0000,
            UVMF_INVLPG | UVMF_ALL,
            "non-canonical VA",
        ),
    ] {
        // SAFETY: the PTE is not present and the call is refused before any change.
        let rc = unsafe { hypercall::update_va_mapping(va, 0, flags) };
        ensure_eq!(rc, EINVAL, "{what}");
    }
    Ok(())
}

/// CLEAR_PAGE of a pinned L1 → `-EINVAL`; COPY_PAGE from it into a data frame → 0 (case 64).
pub fn clear_page_pinned_l1_einval(env: &Env) -> Outcome {
    let (t, data) = (frame(env)?, frame(env)?);
    expect_ext(MMUEXT_PIN_L1_TABLE, t, 0, 0, "PIN_L1")?;
    let clear = super::ops::ext(MMUEXT_CLEAR_PAGE, t, 0);
    let copy = super::ops::ext(MMUEXT_COPY_PAGE, data, t);
    expect_ext(MMUEXT_UNPIN_TABLE, t, 0, 0, "unpin")?;
    ensure_eq!(
        clear,
        (EINVAL, 0),
        "CLEAR_PAGE of the pinned L1 (rc, pdone)"
    );
    ensure_eq!(copy, (0, 1), "COPY_PAGE from the pinned L1 (rc, pdone)");
    Ok(())
}
