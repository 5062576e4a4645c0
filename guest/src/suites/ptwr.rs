//! Writable page tables (spec §6.6; §8.6 cases 71–76): with VMASST_TYPE_writable_pagetables
//! enabled, the kernel's plain stores into an L1 it maps read-only are emulated as updates of
//! the entry, checked and adjusted as `mmu_update` would; whatever the emulation refuses — an
//! entry `mmu_update` refuses, a misaligned store, a store into an L2, the assist disabled — is
//! the original #PF (error P|W, cr2 the store's address), delivered with the entry unchanged.
//! As on Xen 4.17, the initial (hardware) domain keeps the emulation with the assist disabled
//! ([`ptwr_assist_disabled`]); the spec's plain #PF is checked in a second domain on Argon.
//!
//! Each test builds its own tree ([`Tree`]): kernel L4 slot [`SLOT`] → L3 → L2 → a pinned L1
//! whose entry [`I`] maps [`va`]`(I)`, plus data frames; the L1 is mapped read-only at the
//! [`ALIAS`] page, and every store goes through a probe of `crate::traps` (a store that faults
//! returns false and its #PF is recorded). Whatever happens, the alias is restored, the tree
//! torn down and the assist left enabled (as `mmu::vm_assist_cmds` leaves it).

use abi::Errno;
use abi::layout::PAGE_SHIFT;
use abi::mmuext::{
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_UNPIN_TABLE,
};
use abi::start_info::SIF_INITDOMAIN;
use abi::vm_assist::{VMASST_CMD_DISABLE, VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES};

use super::Page;
use super::exceptions::{PF_PRESENT, PF_WRITE, guest_cr2, one_trap};
use super::ops::{Alias, LEAF_RO, LEAF_RW, UPPER, expect_ext, expect_set, ext, frame, mfn_of, set};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::hypercall;
use crate::traps::{Probe, last_trap, probe_cmpxchg, probe_read, probe_write, probe_write32};

/// Mapped read-only onto the test's L1 (or L2).
static ALIAS: Page = Page::new();
/// The kernel L4 slot the tree hangs at (through entry 0 of its L3 and L2).
const SLOT: usize = 6;
/// The L1 entry the tests write.
const I: usize = 7;
/// Word 0 of data frame k is `MARK | k`.
const MARK: u64 = 0x97E0_0000_0000_0000;
const US: u64 = 0x004;
const G: u64 = 0x100;
/// Xen's `_PAGE_GUEST_KERNEL` (bit 52): what marks a stored kernel leaf.
const GUEST_KERNEL: u64 = 1 << 52;
const EINVAL: i64 = Errno::EINVAL.ret();

/// The test's tables and frames (MFNs).
struct Tree {
    l1: u64,
    l2: u64,
    l3: u64,
    /// Two frames with markers, and a cleared one (a valid L1 while it stays clear).
    data: [u64; 3],
    kernel_l4: u64,
}

impl Tree {
    fn build(env: &Env) -> Result<Tree, Fail> {
        let kernel_l4 = mfn_of(env, env.si.pt_base)?;
        let slot = probe_read(env.si.pt_base + SLOT as u64 * 8);
        ensure_eq!(slot, Some(0), "kernel L4 slot {SLOT}");
        let t = Tree {
            l1: frame(env)?,
            l2: frame(env)?,
            l3: frame(env)?,
            data: [frame(env)?, frame(env)?, frame(env)?],
            kernel_l4,
        };
        let r = t.hook();
        if r.is_err() {
            let _ = t.teardown();
        }
        r.map(|()| t)
    }

    fn hook(&self) -> Outcome {
        for (k, &d) in self.data[..2].iter().enumerate() {
            expect_set(d, 0, MARK | k as u64, 0, "raw write of a marker")?;
        }
        expect_ext(MMUEXT_PIN_L1_TABLE, self.l1, 0, 0, "PIN_L1")?;
        expect_ext(MMUEXT_PIN_L2_TABLE, self.l2, 0, 0, "PIN_L2")?;
        expect_set(self.l2, 0, leaf(self.l1, UPPER), 0, "L2 entry → L1")?;
        expect_ext(MMUEXT_PIN_L3_TABLE, self.l3, 0, 0, "PIN_L3")?;
        expect_set(self.l3, 0, leaf(self.l2, UPPER), 0, "L3 entry → L2")?;
        let l4e = leaf(self.l3, UPPER);
        expect_set(self.kernel_l4, SLOT, l4e, 0, "kernel L4 entry → L3")
    }

    /// Unhooks and unpins everything (every step is tried; the first failure is reported).
    fn teardown(&self) -> Outcome {
        let rcs = [
            set(self.kernel_l4, SLOT, 0).0,
            ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0).0,
            ext(MMUEXT_UNPIN_TABLE, self.l3, 0).0,
            ext(MMUEXT_UNPIN_TABLE, self.l2, 0).0,
            ext(MMUEXT_UNPIN_TABLE, self.l1, 0).0,
        ];
        ensure_eq!(rcs, [0; 5], "tearing the tree down (rc of each step)");
        Ok(())
    }
}

/// `vm_assist(cmd, writable_pagetables)`.
fn assist(cmd: u32) -> i64 {
    hypercall::vm_assist(cmd, VMASST_TYPE_WRITABLE_PAGETABLES)
}

/// Builds the tree, enables the assist, maps the L1 read-only at the alias and runs `test`;
/// then restores the alias, tears the tree down and leaves the assist enabled.
fn with_tree(env: &Env, test: impl FnOnce(&Tree, &Alias) -> Outcome) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    ensure_eq!(assist(VMASST_CMD_ENABLE), 0, "enabling writable_pagetables");
    let t = Tree::build(env)?;
    let r = match alias.map(leaf(t.l1, LEAF_RO)) {
        0 => test(&t, &alias),
        rc => Err(Fail::new(format_args!("RO mapping of the L1 = {rc}"))),
    };
    let restored = alias.restore();
    let down = t.teardown();
    ensure_eq!(assist(VMASST_CMD_ENABLE), 0, "enabling writable_pagetables");
    r.and(restored).and(down)
}

/// An entry for `frame` with `flags`.
fn leaf(frame: u64, flags: u64) -> u64 {
    (frame << PAGE_SHIFT) | flags
}

/// What an L1 holds for a kernel leaf written with `flags` (US clear): US and bit 52 added.
fn kernel_leaf(frame: u64, flags: u64) -> u64 {
    leaf(frame, flags | US) | GUEST_KERNEL
}

/// The alias address of entry `i` of the table mapped there.
fn at(alias: &Alias, i: usize) -> u64 {
    alias.va() + i as u64 * 8
}

/// The VA that entry `i` of the test's L1 maps.
fn va(i: usize) -> u64 {
    ((SLOT as u64) << 39) | ((i as u64) << PAGE_SHIFT)
}

/// `store` (true if it faulted) raised exactly one #PF, at `probe`'s instruction: a kernel
/// write to a present page, with cr2 `addr`.
fn pf(env: &Env, store: impl FnOnce() -> bool, probe: Probe, addr: u64) -> Outcome {
    one_trap(store, 14, probe.rip(), PF_PRESENT | PF_WRITE)?;
    ensure_eq!(guest_cr2(env)?, addr, "cr2 of the #PF");
    Ok(())
}

/// A plain 8-byte store of a valid leaf into the read-only L1 is emulated: no exception, the
/// entry reads back as `mmu_update` stores it (US and bit 52 added) and the mapping works; a
/// store of 0 unmaps it again (case 71).
pub fn ptwr_store_emulated(env: &Env) -> Outcome {
    with_tree(env, |t, alias| {
        let before = last_trap().count;
        // SAFETY: into the read-only alias of the test's L1: emulated as an update of the
        // entry, or a #PF the probe catches.
        let stored = unsafe { probe_write(at(alias, I), leaf(t.data[0], LEAF_RW)) };
        let entry = alias.read(I);
        let seen = probe_read(va(I));
        // SAFETY: as above.
        let cleared = unsafe { probe_write(at(alias, I), 0) };
        ensure!(
            stored && cleared,
            "a store faulted (#PF error {:#x})",
            last_trap().error
        );
        ensure_eq!(last_trap().count, before, "exceptions caught");
        ensure_eq!(entry, kernel_leaf(t.data[0], LEAF_RW), "entry stored");
        ensure_eq!(seen, Some(MARK), "word 0 through the new entry");
        expect_ext(MMUEXT_TLB_FLUSH_LOCAL, 0, 0, 0, "TLB_FLUSH_LOCAL")?;
        ensure_eq!(alias.read(I), 0, "entry after storing 0");
        ensure_eq!(probe_read(va(I)), None, "the VA after storing 0");
        Ok(())
    })
}

/// A store of a leaf mapping a page table (the L1 itself, the L2) read-write is refused as
/// `mmu_update` refuses it: the #PF is delivered and the entry keeps its value (case 72).
pub fn ptwr_table_mapping_faults(env: &Env) -> Outcome {
    with_tree(env, |t, alias| {
        expect_set(t.l1, I, leaf(t.data[0], LEAF_RO), 0, "a leaf")?;
        let before = alias.read(I);
        for table in [t.l1, t.l2] {
            // SAFETY: refused, so the store faults (were it taken, it would only write the
            // test's L1).
            let store = || unsafe { !probe_write(at(alias, I), leaf(table, LEAF_RW)) };
            pf(env, store, Probe::Write, at(alias, I))?;
            ensure_eq!(alias.read(I), before, "entry after the refused store");
        }
        Ok(())
    })
}

/// An 8-byte store straddling entries I and I + 1, and a valid L2 entry stored into the L2
/// mapped read-only, are not emulated: #PF, nothing changed (case 73).
pub fn ptwr_misaligned_or_l2_faults(env: &Env) -> Outcome {
    with_tree(env, |t, alias| {
        expect_set(t.l1, I, leaf(t.data[0], LEAF_RO), 0, "a leaf")?;
        let before = (alias.read(I), alias.read(I + 1));
        // 0 would be valid in both halves it covers: only the alignment refuses it.
        let mid = at(alias, I) + 4;
        // SAFETY: misaligned, so not emulated: the store faults.
        let store = || unsafe { !probe_write(mid, 0) };
        pf(env, store, Probe::Write, mid)?;
        let after = (alias.read(I), alias.read(I + 1));
        ensure_eq!(after, before, "entries after the misaligned store");
        ensure_eq!(alias.map(leaf(t.l2, LEAF_RO)), 0, "RO mapping of the L2");
        let slot = at(alias, 1);
        // SAFETY: an L2 is never written this way: the store faults.
        let store = || unsafe { !probe_write(slot, leaf(t.l1, UPPER)) };
        pf(env, store, Probe::Write, slot)?;
        ensure_eq!(alias.read(1), 0, "L2 entry 1 after the store");
        Ok(())
    })
}

/// A 4-byte store to the low half of an entry is merged with the high half and the whole
/// validated: a new frame read-write is taken and mapped; a low half that makes the whole a
/// writable mapping of the L1 is refused (#PF). A store to the high half alone keeps the low
/// half: without bit 52 the leaf (US set) is a user one, to which G is added (case 74).
pub fn ptwr_half_store_merged(env: &Env) -> Outcome {
    with_tree(env, |t, alias| {
        expect_set(t.l1, I, leaf(t.data[0], LEAF_RO), 0, "a leaf")?;
        let low = |e: u64| e as u32;
        // SAFETY: into the read-only alias of the test's L1 (emulated, or a caught #PF).
        let stored = unsafe { probe_write32(at(alias, I), low(leaf(t.data[1], LEAF_RW))) };
        ensure!(stored, "the low-half store faulted");
        let rw = kernel_leaf(t.data[1], LEAF_RW);
        ensure_eq!(alias.read(I), rw, "entry after the low-half store");
        ensure_eq!(probe_read(va(I)), Some(MARK | 1), "word 0 through it");
        // SAFETY: refused, so the store faults.
        let bad = || unsafe { !probe_write32(at(alias, I), low(leaf(t.l1, LEAF_RW))) };
        pf(env, bad, Probe::Write32, at(alias, I))?;
        ensure_eq!(alias.read(I), rw, "entry after the refused low half");
        // SAFETY: into the read-only alias (emulated, or a caught #PF).
        let high = unsafe { probe_write32(at(alias, I) + 4, 0) };
        ensure!(high, "the high-half store faulted");
        let user = leaf(t.data[1], LEAF_RW | US | G);
        ensure_eq!(alias.read(I), user, "entry after the high-half store");
        Ok(())
    })
}

/// `lock cmpxchg` on an entry: with a stale expected value nothing is stored or validated (ZF
/// clear, rax the entry; the new target took no reference, so it can still be pinned as an
/// L1); with the current value the new leaf is stored (ZF set; its target, now mapped
/// writable, cannot be pinned until the entry goes) (case 75).
pub fn ptwr_cmpxchg(env: &Env) -> Outcome {
    with_tree(env, |t, alias| {
        expect_set(t.l1, I, leaf(t.data[0], LEAF_RO), 0, "a leaf")?;
        let (cur, target) = (alias.read(I), t.data[2]);
        let new = leaf(target, LEAF_RW);
        let stale = cur ^ (1 << PAGE_SHIFT);
        // SAFETY: into the read-only alias of the test's L1 (emulated, or a caught #PF).
        let r = unsafe { probe_cmpxchg(at(alias, I), stale, new) };
        ensure_eq!(r, Some((false, cur)), "stale cmpxchg (ZF, rax)");
        ensure_eq!(alias.read(I), cur, "entry after the stale cmpxchg");
        expect_ext(
            MMUEXT_PIN_L1_TABLE,
            target,
            0,
            0,
            "PIN_L1 of the new target",
        )?;
        expect_ext(MMUEXT_UNPIN_TABLE, target, 0, 0, "unpin")?;
        // SAFETY: as above.
        let r = unsafe { probe_cmpxchg(at(alias, I), cur, new) };
        ensure_eq!(
            r,
            Some((true, cur)),
            "cmpxchg of the current value (ZF, rax)"
        );
        ensure_eq!(
            alias.read(I),
            kernel_leaf(target, LEAF_RW),
            "entry after it"
        );
        let what = "PIN_L1 of the target mapped writable";
        expect_ext(MMUEXT_PIN_L1_TABLE, target, 0, EINVAL, what)?;
        expect_set(t.l1, I, 0, 0, "clearing the entry")?;
        expect_ext(MMUEXT_PIN_L1_TABLE, target, 0, 0, "PIN_L1 once unmapped")?;
        expect_ext(MMUEXT_UNPIN_TABLE, target, 0, 0, "unpin")
    })
}

/// The assist disabled (case 76). In a domain that is not the initial one the same stores (8
/// bytes, 4 bytes, `lock cmpxchg`) are plain #PFs and change nothing. The initial (hardware)
/// domain keeps the emulation: Xen 4.17 hands its kernel's write faults on present pages to the
/// read-only-page emulation whatever the assist (for r/o MMIO), and that emulates L1 writes
/// too. Enabled again, the 8-byte store is emulated in either.
pub fn ptwr_assist_disabled(env: &Env) -> Outcome {
    let initial = env.si.flags & SIF_INITDOMAIN != 0;
    with_tree(env, |t, alias| {
        ensure_eq!(
            assist(VMASST_CMD_DISABLE),
            0,
            "disabling writable_pagetables"
        );
        let (a, v) = (at(alias, I), leaf(t.data[0], LEAF_RW));
        if initial {
            // SAFETY: into the read-only alias of the test's L1 (emulated, or a caught #PF).
            let stored = unsafe { probe_write(a, v) };
            let entry = alias.read(I);
            // SAFETY: as above.
            let cleared = unsafe { probe_write(a, 0) };
            ensure!(stored && cleared, "a store faulted in the initial domain");
            let want = kernel_leaf(t.data[0], LEAF_RW);
            ensure_eq!(entry, want, "entry stored with the assist disabled");
        } else {
            // SAFETY: without the assist a store to a read-only page faults.
            let store = || unsafe { !probe_write(a, v) };
            pf(env, store, Probe::Write, a)?;
            // SAFETY: as above.
            let store = || unsafe { !probe_write32(a, v as u32) };
            pf(env, store, Probe::Write32, a)?;
            // SAFETY: as above.
            let store = || unsafe { probe_cmpxchg(a, 0, v).is_none() };
            pf(env, store, Probe::Cmpxchg, a)?;
        }
        ensure_eq!(alias.read(I), 0, "entry after the stores");
        ensure_eq!(assist(VMASST_CMD_ENABLE), 0, "enabling it again");
        // SAFETY: into the read-only alias (emulated, or a caught #PF).
        ensure!(unsafe { probe_write(a, v) }, "the store faulted, assist on");
        ensure_eq!(alias.read(I), kernel_leaf(t.data[0], LEAF_RW), "entry");
        Ok(())
    })
}
