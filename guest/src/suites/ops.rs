//! Single-request MMU hypercalls with their done counts, fresh frames, and an alias page, for
//! the suites that build and tear down their own page tables (`lifecycle`, `reject`,
//! `reject_pt`).
//!
//! Every call here acts on frames the caller took from [`frame`] (never mapped by the kernel,
//! so changing their type or contents cannot break it), on entries of the kernel's L4 outside
//! the slots it uses, or on the VA of an [`Alias`] page that only one test uses at a time. The
//! base-pointer switch, which does change what the kernel runs on, is not here (`lifecycle`).
//! `pdone` starts at a sentinel so a hypervisor that never writes it is caught.

use abi::domid::DOMID_SELF;
use abi::layout::PAGE_SHIFT;
use abi::uvmf::{UVMF_INVLPG, UVMF_LOCAL};
use abi::{MmuCmd, MmuUpdate, MmuextOp};

use super::Page;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure_eq};
use crate::{hypercall, pt};

/// `*pdone` before a call.
pub const PDONE_SENTINEL: u32 = 0xDEAD_BEEF;
/// `foreigndom` = DOMID_SELF, no page-table owner.
pub const FD_SELF: u32 = DOMID_SELF as u32;
/// Present, writable, accessed, dirty: a kernel data leaf (Xen adds US).
pub const LEAF_RW: u64 = 0x063;
/// Present, accessed: a read-only leaf.
pub const LEAF_RO: u64 = 0x021;
/// Present, writable, user, accessed, dirty: an entry of an L2–L4.
pub const UPPER: u64 = 0x067;

/// A cleared frame nothing maps (its MFN), from the top of the domain's memory.
pub fn frame(env: &Env) -> Result<u64, Fail> {
    pt::init_frames(env);
    pt::alloc()
}

/// MFN of a kernel VA in the initial region.
pub fn mfn_of(env: &Env, va: u64) -> Result<u64, Fail> {
    env.mfn_of(va)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for va {va:#x}")))
}

/// `mmu_update` of `reqs` with FD `fd`: `(rc, done)`.
pub fn update_fd(reqs: &[MmuUpdate], fd: u32) -> (i64, u32) {
    let mut done = PDONE_SENTINEL;
    // SAFETY: the callers write entries of their own fresh tables, free slots of the kernel's
    // L4, or raw words of frames they took from `frame` or own as test pages (module head).
    let rc = unsafe { hypercall::mmu_update(reqs, Some(&mut done), fd) };
    (rc, done)
}

/// `mmu_update` of `reqs` on the caller's own tables: `(rc, done)`.
pub fn update(reqs: &[MmuUpdate]) -> (i64, u32) {
    update_fd(reqs, FD_SELF)
}

/// The request writing `val` into entry `index` of table `mfn`.
pub fn entry(mfn: u64, index: usize, val: u64) -> MmuUpdate {
    MmuUpdate::new(
        MmuCmd::NormalPtUpdate,
        (mfn << PAGE_SHIFT) + index as u64 * 8,
        val,
    )
}

/// Writes `val` into entry `index` of table `mfn`: `(rc, done)`.
pub fn set(mfn: u64, index: usize, val: u64) -> (i64, u32) {
    update(&[entry(mfn, index, val)])
}

/// Fails unless `set(mfn, index, val)` returns `want` with the matching done count.
pub fn expect_set(mfn: u64, index: usize, val: u64, want: i64, what: &str) -> Outcome {
    let (rc, done) = set(mfn, index, val);
    ensure_eq!(rc, want, "rc of {what}");
    ensure_eq!(done, u32::from(want == 0), "pdone of {what}");
    Ok(())
}

/// One `mmuext_op`: `(rc, done)`.
pub fn ext(cmd: u32, arg1: u64, arg2: u64) -> (i64, u32) {
    let op = MmuextOp { cmd, arg1, arg2 };
    let mut done = PDONE_SENTINEL;
    // SAFETY: pins, unpins, flushes and page clears/copies of the callers' own fresh frames
    // (module head); none changes a mapping the kernel uses.
    let rc = unsafe { hypercall::mmuext_op(&[op], Some(&mut done), FD_SELF) };
    (rc, done)
}

/// Fails unless `ext(cmd, arg1, arg2)` returns `want` with the matching done count.
pub fn expect_ext(cmd: u32, arg1: u64, arg2: u64, want: i64, what: &str) -> Outcome {
    let (rc, done) = ext(cmd, arg1, arg2);
    ensure_eq!(rc, want, "rc of {what}");
    ensure_eq!(done, u32::from(want == 0), "pdone of {what}");
    Ok(())
}

/// A test page whose VA a test may point at other frames ([`Alias::map`]) and back
/// ([`Alias::restore`]); only accessed through volatile word reads and writes.
pub struct Alias {
    page: &'static Page,
    own: u64,
}

impl Alias {
    pub fn new(env: &Env, page: &'static Page) -> Result<Alias, Fail> {
        Ok(Alias {
            page,
            own: mfn_of(env, page.va())?,
        })
    }

    pub fn va(&self) -> u64 {
        self.page.va()
    }

    /// `update_va_mapping` of the page's VA to `pte` (flushing the VA locally): the rc.
    pub fn map(&self, pte: u64) -> i64 {
        // SAFETY: the VA belongs to a test page only the running test touches, through
        // volatile accesses; callers restore it before returning.
        unsafe { hypercall::update_va_mapping(self.va(), pte, UVMF_INVLPG | UVMF_LOCAL) }
    }

    /// Points the VA back at the page's own frame, read-write.
    pub fn restore(&self) -> Outcome {
        ensure_eq!(
            self.map((self.own << PAGE_SHIFT) | LEAF_RW),
            0,
            "restoring the alias page"
        );
        Ok(())
    }

    /// Word `i` through the VA.
    pub fn read(&self, i: usize) -> u64 {
        self.page.read(i)
    }

    /// Sets word `i` through the VA.
    pub fn write(&self, i: usize, value: u64) {
        self.page.write(i, value)
    }
}
