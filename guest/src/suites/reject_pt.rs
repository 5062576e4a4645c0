//! Page-table structure rules a hypervisor must enforce, with Xen's exact errno (spec §2.2,
//! §2.5, §8.3): the reserved L4 slots 256..271 and what validation puts there, L4 self-maps,
//! linear (same-level) L2 entries, flags forbidden above the leaves, and a table one level
//! up. Every table is a fresh frame pinned here (never the kernel's own), cleared and unpinned
//! by the test that made it.

use abi::Errno;
use abi::layout::{PAGE_SHIFT, XEN_L4_SLOT_FIRST, XEN_L4_SLOT_LAST};
use abi::mmuext::{
    MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE,
};

use super::Page;
use super::ops::{Alias, LEAF_RO, UPPER, entry, expect_ext, expect_set, frame, update};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};

/// Where a test maps an L4 read-only to read it back.
static ALIAS: Page = Page::new();

const EINVAL: i64 = Errno::EINVAL.ret();
/// Present, user, accessed, not writable: a read-only upper-level entry.
const UPPER_RO: u64 = 0x025;
const PSE: u64 = 0x80;
const GLOBAL: u64 = 0x100;
const PCD: u64 = 0x10;
const PWT: u64 = 0x08;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;

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

/// mmu_update of L4 slots 256..271 → `-EINVAL`, present or not; slots 255 and 272 → 0
/// (case 31).
pub fn l4_xen_slots_einval(env: &Env) -> Outcome {
    let (l4, l3) = (pinned(env, MMUEXT_PIN_L4_TABLE)?, frame(env)?);
    let l3e = (l3 << PAGE_SHIFT) | UPPER;
    for slot in XEN_L4_SLOT_FIRST..=XEN_L4_SLOT_LAST {
        expect_set(l4, slot, 0, EINVAL, "clearing a Xen slot")?;
        expect_set(l4, slot, l3e, EINVAL, "an L3 in a Xen slot")?;
    }
    for slot in [XEN_L4_SLOT_FIRST - 1, XEN_L4_SLOT_LAST + 1] {
        expect_set(l4, slot, l3e, 0, "an L3 next to the Xen slots")?;
        expect_set(l4, slot, 0, 0, "clearing it")?;
    }
    unpin(&[l4])
}

/// Garbage written raw into slots 256..271 of a frame, which is then pinned as an L4: the pin
/// succeeds and validation replaced the garbage with the hypervisor's entries, slot 258 being
/// the L4's own self-map (case 32).
pub fn l4_pin_overwrites_xen_slots(env: &Env) -> Outcome {
    const GARBAGE: u64 = 0x0BAD_0000_0BAD_0067;
    let l4 = frame(env)?;
    let reqs: [_; 16] = core::array::from_fn(|i| entry(l4, XEN_L4_SLOT_FIRST + i, GARBAGE));
    ensure_eq!(update(&reqs), (0, 16), "raw writes of garbage");
    expect_ext(MMUEXT_PIN_L4_TABLE, l4, 0, 0, "PIN_L4")?;
    let alias = Alias::new(env, &ALIAS)?;
    let rc = alias.map((l4 << PAGE_SHIFT) | LEAF_RO);
    let slots: [u64; 16] = core::array::from_fn(|i| alias.read(XEN_L4_SLOT_FIRST + i));
    alias.restore()?;
    unpin(&[l4])?;
    ensure_eq!(rc, 0, "RO mapping of the pinned L4");
    if let Some(i) = slots.iter().position(|&e| e == GARBAGE) {
        return Err(Fail::new(format_args!(
            "slot {} still holds the garbage",
            XEN_L4_SLOT_FIRST + i
        )));
    }
    let linear = slots[258 - XEN_L4_SLOT_FIRST];
    ensure!(
        linear & 1 == 1 && (linear & ADDR) >> PAGE_SHIFT == l4,
        "slot 258 is {linear:#x}, not a self-map of {l4:#x}"
    );
    Ok(())
}

/// An L4 self-map read-only → 0; read-write → `-EINVAL`, whether fresh (case 33) or as an
/// update of the read-only one, which stays read-only (case 34, XSA-182).
pub fn l4_self_map_read_only(env: &Env) -> Outcome {
    let l4 = pinned(env, MMUEXT_PIN_L4_TABLE)?;
    let self_ro = (l4 << PAGE_SHIFT) | UPPER_RO;
    let self_rw = (l4 << PAGE_SHIFT) | UPPER;
    expect_set(l4, 301, self_rw, EINVAL, "RW self-map")?;
    expect_set(l4, 300, self_ro, 0, "RO self-map")?;
    expect_set(l4, 300, self_rw, EINVAL, "adding RW to the RO self-map")?;
    let alias = Alias::new(env, &ALIAS)?;
    let rc = alias.map((l4 << PAGE_SHIFT) | LEAF_RO);
    let (e300, e301) = (alias.read(300), alias.read(301));
    alias.restore()?;
    expect_set(l4, 300, 0, 0, "clearing the self-map")?;
    unpin(&[l4])?;
    ensure_eq!(rc, 0, "RO mapping of the pinned L4");
    ensure_eq!(
        e300 & (ADDR | 3),
        (l4 << PAGE_SHIFT) | 1,
        "slot 300 after the refusal"
    );
    ensure_eq!(e301, 0, "slot 301");
    Ok(())
}

/// Linear L2 entries (case 36, XSA-240): A → B read-only is allowed; read-write is not; C → A
/// is not (A holds a linear entry); B → D is not (B is a linear target); B's read-only
/// self-map is (self-maps are not counted).
pub fn linear_l2_rules(env: &Env) -> Outcome {
    let l2 = |_| pinned(env, MMUEXT_PIN_L2_TABLE);
    let [a, b, c, d] = [l2(0)?, l2(1)?, l2(2)?, l2(3)?];
    let ro = |t: u64| (t << PAGE_SHIFT) | UPPER_RO;
    let r = (|| {
        expect_set(a, 0, (b << PAGE_SHIFT) | UPPER, EINVAL, "RW linear A → B")?;
        expect_set(a, 0, ro(b), 0, "RO linear A → B")?;
        expect_set(c, 0, ro(a), EINVAL, "C → A (A has a linear entry)")?;
        expect_set(b, 0, ro(d), EINVAL, "B → D (B is a linear target)")?;
        expect_set(b, 1, ro(b), 0, "B's RO self-map")?;
        expect_set(b, 1, 0, 0, "clearing B's self-map")?;
        expect_set(a, 0, 0, 0, "clearing A → B")?;
        // With the linear entry gone, C → A is an ordinary linear entry again.
        expect_set(c, 0, ro(a), 0, "C → A after A's entry went")?;
        expect_set(c, 0, 0, 0, "clearing C → A")
    })();
    unpin(&[a, b, c, d])?;
    r
}

/// Upper-level entries with PSE, G, PCD or PWT → `-EINVAL` (cases 29, 30), also as an update
/// of a valid entry that only adds PSE (case 35, XSA-148).
pub fn upper_entry_bad_flags_einval(env: &Env) -> Outcome {
    let (l3, l2, l1) = (
        pinned(env, MMUEXT_PIN_L3_TABLE)?,
        pinned(env, MMUEXT_PIN_L2_TABLE)?,
        frame(env)?,
    );
    let l1e = (l1 << PAGE_SHIFT) | UPPER;
    let r = (|| {
        for (bit, what) in [(PSE, "PSE"), (GLOBAL, "G"), (PCD, "PCD"), (PWT, "PWT")] {
            expect_set(l2, 0, l1e | bit, EINVAL, what)?;
        }
        expect_set(
            l3,
            0,
            (frame(env)? << PAGE_SHIFT) | UPPER | PSE,
            EINVAL,
            "L3 PSE",
        )?;
        expect_set(l2, 0, l1e, 0, "a valid L2 entry")?;
        expect_set(l2, 0, l1e | PSE, EINVAL, "adding PSE to it")?;
        expect_set(l2, 0, 0, 0, "clearing it")
    })();
    unpin(&[l3, l2])?;
    r
}

/// An L3 entry naming a pinned L4 → `-EINVAL` (case 40); an L2 entry naming an untyped frame
/// makes it an L1, so it cannot be pinned as an L2 until the entry goes (case 38).
pub fn upper_entry_level_rules(env: &Env) -> Outcome {
    let (l4, l3, l2, x) = (
        pinned(env, MMUEXT_PIN_L4_TABLE)?,
        pinned(env, MMUEXT_PIN_L3_TABLE)?,
        pinned(env, MMUEXT_PIN_L2_TABLE)?,
        frame(env)?,
    );
    let r = (|| {
        expect_set(
            l3,
            0,
            (l4 << PAGE_SHIFT) | UPPER,
            EINVAL,
            "L3 entry → pinned L4",
        )?;
        expect_set(
            l2,
            0,
            (x << PAGE_SHIFT) | UPPER,
            0,
            "L2 entry → fresh frame",
        )?;
        expect_ext(MMUEXT_PIN_L2_TABLE, x, 0, EINVAL, "PIN_L2 of the new L1")?;
        expect_set(l2, 0, 0, 0, "clearing the entry")?;
        expect_ext(MMUEXT_PIN_L2_TABLE, x, 0, 0, "PIN_L2 once untyped")?;
        expect_ext(MMUEXT_UNPIN_TABLE, x, 0, 0, "unpin")
    })();
    unpin(&[l4, l3, l2])?;
    r
}
