//! `mmu_update`, `mmuext_op`, `update_va_mapping` and `vm_assist` on paths that need no trap
//! table or second vCPU: command decoding, error numbers, raw writes to data pages, pin/unpin of
//! the initial L4, aliasing a page (spec §3, §4, §8.1 cases 4/5, §8.4 cases 44/52, §8.1 case 13,
//! §8.9 case 96).
//!
//! Every call uses FD = DOMID_SELF and single-request batches; `pdone` starts at a sentinel so a
//! hypervisor that never writes it is caught.

use abi::domid::DOMID_SELF;
use abi::layout::PAGE_SHIFT;
use abi::mmu::{MMU_NORMAL_PT_UPDATE, MmuCmd};
use abi::mmuext::{MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE};
use abi::uvmf::{UVMF_INVLPG, UVMF_LOCAL};
use abi::vm_assist::{VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES};
use abi::{Errno, MmuUpdate, MmuextOp};

use super::Page;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure_eq};
use crate::hypercall;

/// Written only by these tests: raw `mmu_update` target, unpin target.
static RAW: Page = Page::new();
/// The two pages `update_va_mapping_alias` swaps.
static ALIAS_A: Page = Page::new();
static ALIAS_B: Page = Page::new();

const PDONE_SENTINEL: u32 = 0xDEAD_BEEF;
const FD_SELF: u32 = DOMID_SELF as u32;
/// Leaf flags for a kernel data mapping: present, writable, accessed, dirty.
const PTE_DATA: u64 = 0x063;

/// One `mmuext_op` on `arg1`: (rc, pdone).
fn mmuext1(cmd: u32, arg1: u64) -> (i64, u32) {
    let op = MmuextOp { cmd, arg1, arg2: 0 };
    let mut done = PDONE_SENTINEL;
    // SAFETY: the callers pass commands that either fail or pin/unpin a table the kernel keeps
    // using unchanged (pinning never alters a mapping); no page is freed or remapped.
    let rc = unsafe { hypercall::mmuext_op(&[op], Some(&mut done), FD_SELF) };
    (rc, done)
}

fn mfn_of(env: &Env, va: u64) -> Result<u64, Fail> {
    env.mfn_of(va)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for va {va:#x}")))
}

/// `ptr & 7` = 4..7 → `-ENOSYS`, `*pdone` = 0 (case 44).
pub fn mmu_update_bad_cmd_enosys(env: &Env) -> Outcome {
    let target = mfn_of(env, RAW.va())? << PAGE_SHIFT;
    for cmd in 4..=7u64 {
        let req = MmuUpdate {
            ptr: target | cmd,
            val: 0,
        };
        let mut done = PDONE_SENTINEL;
        // SAFETY: an unknown command changes nothing; even a hypervisor that decoded it as a
        // normal update would only write 0 into RAW, which no one relies on.
        let rc = unsafe { hypercall::mmu_update(&[req], Some(&mut done), FD_SELF) };
        ensure_eq!(rc, Errno::ENOSYS.ret(), "rc for ptr&7 = {cmd}");
        ensure_eq!(done, 0, "pdone for ptr&7 = {cmd}");
    }
    Ok(())
}

/// mmuext cmd 14, 21 and 0xFFFFFFFF → `-ENOSYS`; MARK_SUPER (19) and UNMARK_SUPER (20) →
/// `-EOPNOTSUPP` (case 13).
pub fn mmuext_unknown_cmds(env: &Env) -> Outcome {
    let mfn = mfn_of(env, RAW.va())?;
    let cases = [
        (14u32, Errno::ENOSYS),
        (21, Errno::ENOSYS),
        (0xFFFF_FFFF, Errno::ENOSYS),
        (19, Errno::EOPNOTSUPP),
        (20, Errno::EOPNOTSUPP),
    ];
    for (cmd, want) in cases {
        let (rc, done) = mmuext1(cmd, mfn);
        ensure_eq!(rc, want.ret(), "rc for cmd {cmd}");
        ensure_eq!(done, 0, "pdone for cmd {cmd}");
    }
    Ok(())
}

/// MMU_NORMAL_PT_UPDATE on a plain data page (typed writable) stores the 8 bytes raw (case 52).
pub fn mmu_update_raw_write_data_page(env: &Env) -> Outcome {
    const SLOT: usize = 5;
    const VALUE: u64 = 0xA5A5_5A5A_0123_4567;
    RAW.fill(0);
    let maddr = env
        .maddr_of(RAW.va() + (SLOT as u64) * 8)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for RAW")))?;
    let req = MmuUpdate::new(MmuCmd::NormalPtUpdate, maddr, VALUE);
    ensure_eq!(req.ptr & 7, MMU_NORMAL_PT_UPDATE, "request encoding");
    let mut done = PDONE_SENTINEL;
    // SAFETY: the write lands in RAW, a page only this test reads.
    let rc = unsafe { hypercall::mmu_update(&[req], Some(&mut done), FD_SELF) };
    ensure_eq!(rc, 0, "rc");
    ensure_eq!(done, 1, "pdone");
    ensure_eq!(RAW.read(SLOT), VALUE, "word written");
    ensure_eq!(
        (RAW.read(SLOT - 1), RAW.read(SLOT + 1)),
        (0, 0),
        "neighbours"
    );
    Ok(())
}

/// Unpinning a frame that is not pinned → `-EINVAL` (case 5).
pub fn unpin_not_pinned_einval(env: &Env) -> Outcome {
    let (rc, done) = mmuext1(MMUEXT_UNPIN_TABLE, mfn_of(env, RAW.va())?);
    ensure_eq!(rc, Errno::EINVAL.ret(), "rc");
    ensure_eq!(done, 0, "pdone");
    Ok(())
}

/// The builder pins the initial L4, so pinning it again → `-EINVAL` (cases 4, 96).
pub fn pin_initial_l4_again_einval(env: &Env) -> Outcome {
    let (rc, done) = mmuext1(MMUEXT_PIN_L4_TABLE, mfn_of(env, env.si.pt_base)?);
    ensure_eq!(rc, Errno::EINVAL.ret(), "rc");
    ensure_eq!(done, 0, "pdone");
    Ok(())
}

/// The initial L4 unpins once (0), not twice (`-EINVAL`), and pins again (0) (case 96). It stays
/// the kernel's base throughout, so the base pointer keeps it typed.
pub fn initial_l4_unpin_repin(env: &Env) -> Outcome {
    let l4 = mfn_of(env, env.si.pt_base)?;
    let steps = [
        (MMUEXT_UNPIN_TABLE, 0, "first unpin"),
        (MMUEXT_UNPIN_TABLE, Errno::EINVAL.ret(), "second unpin"),
        (MMUEXT_PIN_L4_TABLE, 0, "re-pin"),
        (MMUEXT_PIN_L4_TABLE, Errno::EINVAL.ret(), "pin while pinned"),
    ];
    for (cmd, want, what) in steps {
        let (rc, done) = mmuext1(cmd, l4);
        ensure_eq!(rc, want, "rc of {what}");
        ensure_eq!(done, u32::from(want == 0), "pdone of {what}");
    }
    Ok(())
}

/// `update_va_mapping` points B's VA at A's frame (B then reads and writes A) and back.
pub fn update_va_mapping_alias(env: &Env) -> Outcome {
    const PAT_A: u64 = 0xAAAA_0000_0000_AAAA;
    const PAT_B: u64 = 0xBBBB_0000_0000_BBBB;
    const MARK: u64 = 0x1234_5678_9ABC_DEF0;
    ALIAS_A.fill(PAT_A);
    ALIAS_B.fill(PAT_B);
    let (mfn_a, mfn_b) = (mfn_of(env, ALIAS_A.va())?, mfn_of(env, ALIAS_B.va())?);
    let flush = UVMF_INVLPG | UVMF_LOCAL;
    // SAFETY: B's VA maps only ALIAS_B, which nothing but this test touches, through volatile
    // accesses; the mapping is restored below before the test returns on every path that gets
    // this far (checks in between only read and write A/B).
    let rc = unsafe {
        hypercall::update_va_mapping(ALIAS_B.va(), mfn_a << PAGE_SHIFT | PTE_DATA, flush)
    };
    ensure_eq!(rc, 0, "rc of remap B -> A");
    let seen = ALIAS_B.read(0);
    ALIAS_B.write(1, MARK);
    let wrote = ALIAS_A.read(1);
    // SAFETY: as above; this puts B's original frame back.
    let rc = unsafe {
        hypercall::update_va_mapping(ALIAS_B.va(), mfn_b << PAGE_SHIFT | PTE_DATA, flush)
    };
    ensure_eq!(rc, 0, "rc of restoring B");
    ensure_eq!(seen, PAT_A, "B's VA read while aliased");
    ensure_eq!(wrote, MARK, "write through the alias, read via A");
    ensure_eq!(
        (ALIAS_B.read(0), ALIAS_B.read(1)),
        (PAT_B, PAT_B),
        "B after restore"
    );
    Ok(())
}

/// `vm_assist`: a PV64 assist enables (0); an invalid type is `-EINVAL` before the command is
/// looked at; an unknown command on a valid type is `-ENOSYS`.
pub fn vm_assist_cmds(_env: &Env) -> Outcome {
    let wpt = VMASST_TYPE_WRITABLE_PAGETABLES;
    let cases = [
        (VMASST_CMD_ENABLE, wpt, 0, "enable writable_pagetables"),
        (VMASST_CMD_ENABLE, 6, Errno::EINVAL.ret(), "enable type 6"),
        (VMASST_CMD_ENABLE, 64, Errno::EINVAL.ret(), "enable type 64"),
        (2, wpt, Errno::ENOSYS.ret(), "cmd 2"),
        (2, 6, Errno::EINVAL.ret(), "cmd 2 on type 6"),
    ];
    for (cmd, kind, want, what) in cases {
        ensure_eq!(hypercall::vm_assist(cmd, kind), want, "{what}");
    }
    Ok(())
}
