//! Stored page-table entries and the type and linear-use rules behind them (spec §2.3, §8.1
//! cases 10 and 11, §8.2 cases 24 and 25, §8.3 case 43): a former L4 referenced as an L3, the
//! limit on linear uses of one L2, what Xen stores for a leaf the guest wrote, and
//! MMU_PT_UPDATE_PRESERVE_AD keeping the accessed and dirty bits the processor set.
//!
//! Tables are fresh frames ([`frame`]) pinned here and unpinned by the test that made them;
//! they are read back through a read-only mapping at [`ALIAS`]. The one table that is not fresh
//! is the kernel's own L1 holding the alias page's entry, which
//! `preserve_ad_keeps_accessed_dirty` rewrites (the page's only mapping) and puts back.

use abi::layout::{MACH2PHYS_VIRT_START, PAGE_SHIFT, XEN_L4_SLOT_FIRST};
use abi::mmu::MMU_PT_UPDATE_PRESERVE_AD;
use abi::mmuext::{
    MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE,
};
use abi::{Errno, MmuUpdate};

use super::Page;
use super::ops::{
    Alias, LEAF_RO, UPPER, entry, expect_ext, expect_set, ext, frame, mfn_of, update,
};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::traps::probe_read;

/// Where a test maps a table read-only to read it back.
static ALIAS: Page = Page::new();

const EINVAL: i64 = Errno::EINVAL.ret();
const P: u64 = 0x001;
const RW: u64 = 0x002;
const US: u64 = 0x004;
const A: u64 = 0x020;
const D: u64 = 0x040;
const G: u64 = 0x100;
/// Xen's `_PAGE_GUEST_KERNEL` (bit 52): what marks a stored kernel leaf.
const GUEST_KERNEL: u64 = 1 << 52;
/// Present, user, accessed, not writable: a read-only (linear) upper-level entry.
const UPPER_RO: u64 = 0x025;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
/// L2s pointing at the target of `linear_use_limit`, each with 512 linear entries.
const USERS: usize = 64;

/// A fresh frame pinned with `pin`.
fn pinned(env: &Env, pin: u32) -> Result<u64, Fail> {
    let t = frame(env)?;
    expect_ext(pin, t, 0, 0, "pin of a fresh table")?;
    Ok(t)
}

fn unpin(tables: &[u64]) -> Outcome {
    for &t in tables {
        expect_ext(MMUEXT_UNPIN_TABLE, t, 0, 0, "unpin")?;
    }
    Ok(())
}

/// Entries `first..first + N` of table `t`, read through a read-only mapping of it.
fn entries<const N: usize>(alias: &Alias, t: u64, first: usize) -> Result<[u64; N], Fail> {
    let rc = alias.map((t << PAGE_SHIFT) | LEAF_RO);
    let words = core::array::from_fn(|i| alias.read(first + i));
    alias.restore()?;
    ensure_eq!(rc, 0, "RO mapping of table {t:#x}");
    Ok(words)
}

/// A frame pinned as an L4 and unpinned keeps its contents, the hypervisor's slots 256..271
/// included. An L4 entry naming it makes it an L3, and at L3 those slots are ordinary entries
/// that do not validate → `-EINVAL`; once they are cleared (raw writes: the frame is untyped)
/// the same entry → 0, and the frame is then an L3 (PIN_L4 of it `-EINVAL`) until the entry
/// goes (case 10).
pub fn former_l4_referenced_as_l3(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let (x, l4) = (frame(env)?, pinned(env, MMUEXT_PIN_L4_TABLE)?);
    let as_l3 = (x << PAGE_SHIFT) | UPPER;
    let r = (|| {
        expect_ext(MMUEXT_PIN_L4_TABLE, x, 0, 0, "PIN_L4 of the frame")?;
        expect_ext(MMUEXT_UNPIN_TABLE, x, 0, 0, "UNPIN of it")?;
        expect_set(l4, 0, as_l3, EINVAL, "L4 entry → it, Xen slots filled")?;
        let [linear] = entries::<1>(&alias, x, 258)?;
        ensure!(
            linear & P == P && (linear & ADDR) >> PAGE_SHIFT == x,
            "slot 258 of the former L4 is {linear:#x}, not its self-map"
        );
        let clear: [_; 16] = core::array::from_fn(|i| entry(x, XEN_L4_SLOT_FIRST + i, 0));
        ensure_eq!(update(&clear), (0, 16), "raw clearing of slots 256..271");
        expect_set(l4, 0, as_l3, 0, "L4 entry → it, Xen slots clear")?;
        expect_ext(MMUEXT_PIN_L4_TABLE, x, 0, EINVAL, "PIN_L4 while an L3")?;
        expect_set(l4, 0, 0, 0, "clearing the L4 entry")?;
        expect_ext(MMUEXT_PIN_L4_TABLE, x, 0, 0, "PIN_L4 once unreferenced")?;
        expect_ext(MMUEXT_UNPIN_TABLE, x, 0, 0, "unpin")
    })();
    if r.is_err() {
        let _ = update(&[entry(l4, 0, 0)]);
        let _ = ext(MMUEXT_UNPIN_TABLE, x, 0);
    }
    unpin(&[l4])?;
    r
}

/// Writes `val` raw into every entry of the untyped frame `t`.
fn fill(t: u64, val: u64) -> Outcome {
    for chunk in 0..4 {
        let reqs: [MmuUpdate; 128] = core::array::from_fn(|i| entry(t, chunk * 128 + i, val));
        ensure_eq!(update(&reqs), (0, 128), "raw writes of 128 entries");
    }
    Ok(())
}

/// One L2 may be named by at most 32768 linear entries (read-only, L2 → L2) of other L2s:
/// 64 L2s whose 512 entries all name it validate when pinned; the 32769th is `-EINVAL`, as
/// an update and in a table being pinned; with one entry gone there is room for exactly one
/// more (case 11; Xen counts linear uses in an `s16`).
pub fn linear_use_limit(env: &Env) -> Outcome {
    let target = pinned(env, MMUEXT_PIN_L2_TABLE)?;
    let extra = pinned(env, MMUEXT_PIN_L2_TABLE)?;
    let ro = (target << PAGE_SHIFT) | UPPER_RO;
    let mut users = [0u64; USERS];
    let r = (|| {
        for u in users.iter_mut() {
            let t = frame(env)?;
            fill(t, ro)?;
            expect_ext(MMUEXT_PIN_L2_TABLE, t, 0, 0, "PIN_L2 of 512 linear entries")?;
            *u = t;
        }
        expect_set(extra, 0, ro, EINVAL, "the 32769th linear entry")?;
        let z = frame(env)?;
        expect_set(z, 0, ro, 0, "raw linear entry in a fresh frame")?;
        expect_ext(
            MMUEXT_PIN_L2_TABLE,
            z,
            0,
            EINVAL,
            "PIN_L2 of it (the 32769th)",
        )?;
        expect_set(users[0], 0, 0, 0, "clearing one linear entry")?;
        expect_set(extra, 0, ro, 0, "the 32768th again")?;
        expect_set(extra, 1, ro, EINVAL, "one more")?;
        expect_set(extra, 0, 0, 0, "clearing it")
    })();
    if r.is_err() {
        let _ = update(&[entry(extra, 0, 0)]);
    }
    for &u in users.iter().filter(|&&u| u != 0) {
        expect_ext(MMUEXT_UNPIN_TABLE, u, 0, 0, "unpin of a linear user")?;
    }
    unpin(&[extra, target])?;
    r
}

/// Leaves as stored: US clear → US and bit 52 added (a kernel mapping); US set → G added (a
/// user mapping); G with US clear (a kernel global page) is accepted, stored with US and bit
/// 52 and its G; RW, A and D are kept. The same whether an `mmu_update` writes the entries
/// into a pinned L1 or validation finds them when the L1 is pinned (cases 24, 25; Xen's
/// `adjust_guest_l1e`).
pub fn l1_entries_stored_adjusted(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let data = frame(env)? << PAGE_SHIFT;
    let cases: [(u64, u64); 5] = [
        (P | A, P | US | A | GUEST_KERNEL),
        (P | US | A, P | US | A | G),
        (P | G | A, P | US | G | A | GUEST_KERNEL),
        (P | US | G | A, P | US | G | A),
        (P | RW | A | D, P | RW | US | A | D | GUEST_KERNEL),
    ];
    let (updated, validated) = (pinned(env, MMUEXT_PIN_L1_TABLE)?, frame(env)?);
    let reqs =
        |t: u64| -> [MmuUpdate; 5] { core::array::from_fn(|i| entry(t, i, data | cases[i].0)) };
    let by_update = update(&reqs(updated));
    let raw = update(&reqs(validated));
    let pin = ext(MMUEXT_PIN_L1_TABLE, validated, 0);
    let stored = [
        entries::<5>(&alias, updated, 0),
        entries::<5>(&alias, validated, 0),
    ];
    unpin(&[updated])?;
    if pin.0 == 0 {
        unpin(&[validated])?;
    }
    ensure_eq!(by_update, (0, 5), "mmu_update of the 5 leaves (rc, pdone)");
    ensure_eq!(raw, (0, 5), "raw writes of the 5 leaves (rc, pdone)");
    ensure_eq!(pin, (0, 1), "PIN_L1 of the raw leaves (rc, pdone)");
    for (how, words) in ["by mmu_update", "by validation"].into_iter().zip(stored) {
        let words = words?;
        for (i, (&(written, want), got)) in cases.iter().zip(words).enumerate() {
            ensure_eq!(got, data | want, "leaf {i} ({written:#x}) stored {how}");
        }
    }
    Ok(())
}

/// The machine address of the kernel's L1 entry for `va`, and the VA it reads at: the
/// builder's page-table frames lie in the initial region, where a VA is its PFN × 4 KiB.
fn kernel_l1e(env: &Env, va: u64) -> Result<(u64, u64), Fail> {
    let mut table = env.si.pt_base;
    for shift in [39, 30, 21] {
        let at = table + ((va >> shift) & 511) * 8;
        let e = probe_read(at).ok_or_else(|| Fail::new(format_args!("{at:#x} unreadable")))?;
        ensure!(
            e & P == P,
            "entry at {at:#x} for {va:#x} not present ({e:#x})"
        );
        let mfn = (e & ADDR) >> PAGE_SHIFT;
        let pfn = probe_read(MACH2PHYS_VIRT_START + mfn * 8)
            .ok_or_else(|| Fail::new(format_args!("no M2P entry for {mfn:#x}")))?;
        ensure_eq!(
            env.p2m(pfn),
            Some(mfn),
            "P2M of table {mfn:#x} (pfn {pfn:#x})"
        );
        table = pfn << PAGE_SHIFT;
    }
    let index = (va >> PAGE_SHIFT) & 511;
    let l1 = mfn_of(env, table)?;
    Ok(((l1 << PAGE_SHIFT) + index * 8, table + index * 8))
}

/// MMU_PT_UPDATE_PRESERVE_AD keeps the A and D bits of the entry it replaces (case 43). The
/// kernel's L1 entry for the alias page, mapped without A and D, gets both from the processor
/// when the page is written; rewritten without them with PRESERVE_AD it keeps them, with a
/// normal update it loses them. In a pinned L1 the replaced entry's A and D carry over even to
/// an entry naming another frame (Xen ORs them in whatever the update).
pub fn preserve_ad_keeps_accessed_dirty(env: &Env) -> Outcome {
    let alias = Alias::new(env, &ALIAS)?;
    let (maddr, at) = kernel_l1e(env, ALIAS.va())?;
    let own = mfn_of(env, ALIAS.va())? << PAGE_SHIFT;
    let read = || probe_read(at).ok_or_else(|| Fail::new(format_args!("L1 entry unreadable")));
    let preserve = |ptr: u64, val: u64| {
        update(&[MmuUpdate {
            ptr: ptr | MMU_PT_UPDATE_PRESERVE_AD,
            val,
        }])
    };
    let r = (|| {
        ensure_eq!(
            alias.map(own | P | RW),
            0,
            "mapping the page without A and D"
        );
        let fresh = read()?;
        ALIAS.write(0, 0x5A5A);
        let touched = read()?;
        let kept = (preserve(maddr, own | P | RW), read()?);
        let dropped = (
            update(&[MmuUpdate {
                ptr: maddr,
                val: own | P | RW,
            }]),
            read()?,
        );
        ensure_eq!(fresh, own | P | RW | US | GUEST_KERNEL, "entry as mapped");
        ensure_eq!(touched, fresh | A | D, "entry after a write through it");
        ensure_eq!(
            kept,
            ((0, 1), touched),
            "PRESERVE_AD update ((rc, pdone), entry)"
        );
        ensure_eq!(
            dropped,
            ((0, 1), fresh),
            "normal update ((rc, pdone), entry)"
        );
        Ok(())
    })();
    alias.restore()?;
    r?;
    let l1 = pinned(env, MMUEXT_PIN_L1_TABLE)?;
    let (d1, d2) = (frame(env)? << PAGE_SHIFT, frame(env)? << PAGE_SHIFT);
    let steps = [
        expect_set(l1, 0, d1 | P | A | D, 0, "a leaf with A and D"),
        expect_set(l1, 1, d1 | P, 0, "a leaf without"),
    ];
    let with_ad = preserve(l1 << PAGE_SHIFT, d2 | P);
    let without = preserve((l1 << PAGE_SHIFT) + 8, d2 | P);
    let stored = entries::<2>(&alias, l1, 0);
    unpin(&[l1])?;
    for s in steps {
        s?;
    }
    ensure_eq!(
        (with_ad, without),
        ((0, 1), (0, 1)),
        "PRESERVE_AD to a new frame (rc, pdone)"
    );
    let want = [
        d2 | P | US | A | D | GUEST_KERNEL,
        d2 | P | US | GUEST_KERNEL,
    ];
    ensure_eq!(stored?, want, "entries after PRESERVE_AD to a new frame");
    Ok(())
}
