//! The life of a page-table tree built from the kernel's own free frames (spec §1.5, §2.5,
//! §4.2–4.3; §8.1 cases 4, 5, 7, 8, 9; §8.5 cases 56, 57): pin an L1, L2, L3 and L4, map a data
//! frame through them, read and write it through the new mapping, switch the kernel's base
//! pointer to the new L4 (which copies the kernel's own L4 slots) and back, then unmap, unpin,
//! and map every former table read-write again. Every step asserts its exact return code and
//! done count; a step that fails tears the tree down as far as it can (`Tree::teardown`), so
//! later tests run on the kernel's own address space.
//!
//! The tree hangs at L4 slot [`SLOT`] (1.5 TiB), which nothing else uses: L3 entry [`L3I`] →
//! L2 entry [`L2I`] → L1 entry [`L1I`] → the data frame, at [`VA`].

use abi::Errno;
use abi::layout::{MACH2PHYS_VIRT_START, PAGE_SHIFT, XEN_L4_SLOTS};
use abi::mmuext::{
    MMUEXT_NEW_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE,
    MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_UNPIN_TABLE,
};
use abi::{MmuUpdate, MmuextOp};

use super::Page;
use super::ops::{
    Alias, FD_SELF, LEAF_RW, PDONE_SENTINEL, UPPER, entry, expect_ext, expect_set, ext, frame,
    mfn_of, set, update,
};
use crate::env::Env;
use crate::harness::{Outcome, ensure, ensure_eq};
use crate::hypercall;
use crate::traps::{probe_read, probe_write};

/// The kernel L4 slot the tree hangs at.
const SLOT: usize = 3;
const L3I: usize = 5;
const L2I: usize = 7;
const L1I: usize = 9;
/// The VA the tree maps.
const VA: u64 =
    ((SLOT as u64) << 39) | ((L3I as u64) << 30) | ((L2I as u64) << 21) | ((L1I as u64) << 12);
const MARK: u64 = 0x11FE_C1C1_E000_0001;
const MARK2: u64 = 0x11FE_C1C1_E000_0002;

/// Aliased onto the former tables at the end.
static ALIAS: Page = Page::new();

/// The tree's frames (MFNs).
struct Tree {
    l1: u64,
    l2: u64,
    l3: u64,
    l4: u64,
    data: u64,
    kernel_l4: u64,
}

impl Tree {
    /// Best effort after a failed step: back on the kernel's base, slot and leaf cleared, every
    /// table unpinned (each call may fail if its step was never reached; that is fine here).
    fn teardown(&self) {
        let _ = switch_base(self.kernel_l4);
        let _ = set(self.kernel_l4, SLOT, 0);
        let _ = set(self.l1, L1I, 0);
        for t in [self.l4, self.l3, self.l2, self.l1] {
            let _ = ext(MMUEXT_UNPIN_TABLE, t, 0);
        }
        let _ = ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0);
    }
}

/// MMUEXT_NEW_BASEPTR to `l4`: (rc, done).
fn switch_base(l4: u64) -> (i64, u32) {
    let op = MmuextOp {
        cmd: MMUEXT_NEW_BASEPTR,
        arg1: l4,
        arg2: 0,
    };
    let mut done = PDONE_SENTINEL;
    // SAFETY: `l4` is either the kernel's own L4 or one holding a copy of every guest slot of
    // it (the image, stack, P2M and start_info stay mapped at the same VAs), so the kernel
    // keeps running across the switch.
    let rc = unsafe { hypercall::mmuext_op(&[op], Some(&mut done), FD_SELF) };
    (rc, done)
}

/// Entry `i` of the kernel's L4, read through its read-only mapping at `pt_base`.
fn kernel_l4e(env: &Env, i: usize) -> u64 {
    let at = env.si.pt_base + i as u64 * 8;
    // SAFETY: `pt_base` maps the kernel's L4 (one page, read-only) for the domain's lifetime.
    unsafe { core::ptr::read_volatile(at as *const u64) }
}

/// Build, use, switch to, tear down and reuse a four-level tree (see the module head).
pub fn page_table_lifecycle(env: &Env) -> Outcome {
    ensure_eq!(
        kernel_l4e(env, SLOT) & 1,
        0,
        "kernel L4 slot {SLOT} already in use"
    );
    let t = Tree {
        l1: frame(env)?,
        l2: frame(env)?,
        l3: frame(env)?,
        l4: frame(env)?,
        data: frame(env)?,
        kernel_l4: mfn_of(env, env.si.pt_base)?,
    };
    let alias = Alias::new(env, &ALIAS)?;
    let r = build_and_use(env, &t, &alias).and_then(|()| tear_down_and_reuse(&t, &alias));
    if r.is_err() {
        t.teardown();
        let _ = alias.restore();
    }
    r
}

fn build_and_use(env: &Env, t: &Tree, alias: &Alias) -> Outcome {
    // A fresh frame is plain data: mmu_update writes it raw (case 52).
    expect_set(t.data, 0, MARK, 0, "raw write of the data frame")?;
    // L1: pinned (validated empty), a second pin refused (case 4), no RW mapping while it is a
    // page table (case 7 for an L1), then the data leaf.
    expect_ext(MMUEXT_PIN_L1_TABLE, t.l1, 0, 0, "PIN_L1")?;
    expect_ext(
        MMUEXT_PIN_L1_TABLE,
        t.l1,
        0,
        Errno::EINVAL.ret(),
        "second PIN_L1",
    )?;
    ensure_eq!(
        alias.map((t.l1 << PAGE_SHIFT) | LEAF_RW),
        Errno::EBUSY.ret(),
        "RW mapping of the pinned L1"
    );
    expect_set(
        t.l1,
        L1I,
        (t.data << PAGE_SHIFT) | LEAF_RW,
        0,
        "L1 entry → data",
    )?;
    expect_ext(MMUEXT_PIN_L2_TABLE, t.l2, 0, 0, "PIN_L2")?;
    expect_set(t.l2, L2I, (t.l1 << PAGE_SHIFT) | UPPER, 0, "L2 entry → L1")?;
    expect_ext(MMUEXT_PIN_L3_TABLE, t.l3, 0, 0, "PIN_L3")?;
    expect_set(t.l3, L3I, (t.l2 << PAGE_SHIFT) | UPPER, 0, "L3 entry → L2")?;
    // Hooked into the kernel's L4: the data frame is readable and writable at VA.
    expect_set(
        t.kernel_l4,
        SLOT,
        (t.l3 << PAGE_SHIFT) | UPPER,
        0,
        "kernel L4 entry → L3",
    )?;
    ensure_eq!(probe_read(VA), Some(MARK), "data read through the new tree");
    // SAFETY: VA maps the data frame, which only this test uses.
    let wrote = unsafe { probe_write(VA, MARK2) };
    ensure!(wrote, "write through the new tree faulted");
    ensure_eq!(probe_read(VA), Some(MARK2), "data after the write");
    // A fresh L4 holding every guest slot of the kernel's (the tree's slot included), pinned
    // empty first so that validation fills Xen's slots (case 32).
    expect_ext(MMUEXT_PIN_L4_TABLE, t.l4, 0, 0, "PIN_L4")?;
    let mut reqs = [MmuUpdate { ptr: 0, val: 0 }; 64];
    let (mut n, mut copied) = (0, 0u32);
    for i in (0..512).filter(|i| !XEN_L4_SLOTS.contains(i)) {
        let e = kernel_l4e(env, i);
        if e & 1 == 0 {
            continue;
        }
        reqs[n] = entry(t.l4, i, e);
        n += 1;
        if n == reqs.len() {
            ensure_eq!(update(&reqs), (0, n as u32), "copying kernel L4 slots");
            copied += n as u32;
            n = 0;
        }
    }
    ensure_eq!(update(&reqs[..n]), (0, n as u32), "copying kernel L4 slots");
    copied += n as u32;
    ensure!(copied >= 2, "only {copied} kernel L4 slots copied");
    // Running on the new L4 (case 57: validated on the spot, the M2P in slot 256): the tree's
    // data and the M2P entry of the data frame are readable. Then back (case 56: the current
    // base again is a reload).
    ensure_eq!(switch_base(t.l4), (0, 1), "NEW_BASEPTR to the new L4");
    let seen = probe_read(VA);
    let m2p = probe_read(MACH2PHYS_VIRT_START + t.data * 8);
    let again = switch_base(t.l4);
    let back = switch_base(t.kernel_l4);
    ensure_eq!(back, (0, 1), "NEW_BASEPTR back to the kernel's L4");
    ensure_eq!(again, (0, 1), "NEW_BASEPTR to the current base");
    ensure_eq!(seen, Some(MARK2), "data read on the new L4");
    let pfn = (0..env.si.nr_pages)
        .rev()
        .find(|&p| env.p2m(p) == Some(t.data));
    ensure_eq!(m2p, pfn, "M2P entry of the data frame read on the new L4");
    Ok(())
}

fn tear_down_and_reuse(t: &Tree, alias: &Alias) -> Outcome {
    expect_set(t.kernel_l4, SLOT, 0, 0, "clearing the kernel L4 entry")?;
    expect_ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0, 0, "TLB_FLUSH_LOCAL")?;
    ensure_eq!(probe_read(VA), None, "VA after the tree was unhooked");
    expect_set(t.l1, L1I, 0, 0, "unmapping the data frame")?;
    // Unpinning drops each table's last reference: the L4 first (no longer a base), then each
    // level whose parent entry went with its parent's de-validation (case 8).
    for (l, what) in [
        (t.l4, "UNPIN L4"),
        (t.l3, "UNPIN L3"),
        (t.l2, "UNPIN L2"),
        (t.l1, "UNPIN L1"),
    ] {
        expect_ext(MMUEXT_UNPIN_TABLE, l, 0, 0, what)?;
    }
    expect_ext(
        MMUEXT_UNPIN_TABLE,
        t.l1,
        0,
        Errno::EINVAL.ret(),
        "second UNPIN L1",
    )?;
    // Every former table is untyped: it maps read-write again (case 9), and a word written
    // through that mapping is there.
    for (k, l) in [t.l1, t.l2, t.l3, t.l4].into_iter().enumerate() {
        ensure_eq!(
            alias.map((l << PAGE_SHIFT) | LEAF_RW),
            0,
            "RW mapping of former L{}",
            k + 1
        );
        alias.write(0, MARK ^ k as u64);
        let seen = alias.read(0);
        alias.restore()?;
        ensure_eq!(
            seen,
            MARK ^ k as u64,
            "word written through former L{}",
            k + 1
        );
    }
    Ok(())
}
