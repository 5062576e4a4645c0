//! A plain sequential reference model of the frame table, the PTE rules and the two MMU
//! hypercalls, for `proptest_model.rs`. Written from the spec (§1.4–1.5 counts and types,
//! §2.1–2.9 entry rules, §3 `mmu_update`, §4.2–4.3 pin / unpin / base pointers) as direct
//! recursive code over plain structs: no atomics, no CAS, no unwinding, and its own copies of
//! the flag, adjustment and fast-path rules (it uses only hvcore's enums and error values).
//!
//! One simplification is sound by construction: a request that fails restores a snapshot of
//! the frame records (the implementation instead unwinds reference by reference; either way
//! the counts must end where they began). Memory is *not* restored: validation adjusts entries
//! in place as it goes, and so does this model, in the same order. Any nested validation
//! failure fails the whole request (spec §2.5: a child that cannot be validated is not a
//! linear target either), so no partial state is ever acted on.
//!
//! `hypercalls.rs` models the hypercall layer on top (FD / PFD rules, raw writes, pins, base
//! pointers); `ops.rs` the generated operations and whole batches; `harness.rs` runs a step
//! through the model and the implementation and compares them.
//!
//! Frames mirror `hypercall_common::kit()`: domain 1 owns 0..24, domain 2 24..40, domain 0
//! 40..48, 48..64 are free; nothing at or above 64 is RAM.

pub mod harness;
mod hypercalls;
pub mod ops;

use std::collections::BTreeMap;

use hvcore::domain::DomId;
use hvcore::frame::{Level, MmError, PageType};
use hvcore::mem::Mfn;
use hvcore::testkit::test_xen_l4_slot;

pub const FRAMES: u64 = 64;
pub const ENTRIES: usize = 512;
pub const DOMID_IO: DomId = 0x7FF1;
/// What NEW_BASEPTR writes into L4 slot 256 (`hypercall_common::RO_M2P_L4E`).
pub const RO_M2P: u64 = 0x000F_0000_0000_0005;

pub const P: u64 = 1;
pub const RW: u64 = 1 << 1;
pub const US: u64 = 1 << 2;
pub const PWT: u64 = 1 << 3;
pub const PCD: u64 = 1 << 4;
pub const A: u64 = 1 << 5;
pub const D: u64 = 1 << 6;
pub const PSE: u64 = 1 << 7;
pub const G: u64 = 1 << 8;
pub const GUEST_KERNEL: u64 = 1 << 52;
pub const NX: u64 = 1 << 63;
pub const ADDR: u64 = ((1 << 40) - 1) << 12;
pub const ALL_ONES: u64 = ADDR >> 12;
/// Spec §2.8: NX, AVAIL_HIGH (52–62), AVL (9–11), G, D, A, US.
const FAST: u64 = NX | (0x7FF << 52) | (0x7 << 9) | G | D | A | US;

pub fn frame(e: u64) -> u64 {
    (e & ADDR) >> 12
}
fn present(e: u64) -> bool {
    e & P != 0
}
fn xen_slot(level: Level, i: usize) -> bool {
    level == Level::L4 && (256..=271).contains(&i)
}
/// Spec §2.1 for a domain without I/O capabilities (checked in this order by the spec table).
fn flags_ok(level: Level, e: u64) -> Result<(), MmError> {
    match level {
        _ if !present(e) => Ok(()),
        Level::L1 if e & (PWT | PCD | PSE) != 0 => Err(MmError::CacheAttr),
        Level::L1 => Ok(()),
        Level::L2 | Level::L3 if e & PSE != 0 => Err(MmError::Superpage),
        _ if e & (PWT | PCD | PSE | G) != 0 => Err(MmError::BadFlags),
        _ => Ok(()),
    }
}
/// Spec §2.3.
fn adjust(level: Level, e: u64) -> u64 {
    if !present(e) {
        return e;
    }
    match level {
        Level::L1 => {
            let e = if e & US == 0 {
                e | US | GUEST_KERNEL
            } else {
                e
            };
            if e & GUEST_KERNEL == 0 { e | G | US } else { e }
        }
        Level::L2 | Level::L3 => e | US,
        Level::L4 => e | US | A,
    }
}
fn fast(old: u64, new: u64) -> bool {
    present(old) && present(new) && (old ^ new) & !FAST == 0
}

/// One frame's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rec {
    pub owner: DomId,
    pub alloc: bool,
    pub g: u32,
    pub c: u32,
    pub ty: PageType,
    pub v: bool,
    pub pinned: bool,
    pub linear: i32,
}

/// The model: frame records, memory, each domain's two bases, the M2P.
pub struct Model {
    pub recs: Vec<Rec>,
    pub mem: Vec<u64>,
    pub bases: BTreeMap<DomId, [Option<u64>; 2]>,
    pub m2p: BTreeMap<u64, u64>,
}

impl Model {
    pub fn new() -> Self {
        let owner = |f: u64| match f {
            0..24 => Some(1),
            24..40 => Some(2),
            40..48 => Some(0),
            _ => None,
        };
        let recs = (0..FRAMES)
            .map(|f| match owner(f) {
                Some(o) => Rec {
                    owner: o,
                    alloc: true,
                    g: 1,
                    ..Rec::default()
                },
                None => Rec::default(),
            })
            .collect();
        Self {
            recs,
            mem: vec![0; FRAMES as usize * ENTRIES],
            bases: BTreeMap::new(),
            m2p: BTreeMap::new(),
        }
    }

    pub fn get(&self, f: u64, i: usize) -> u64 {
        self.mem[f as usize * ENTRIES + i]
    }
    fn set(&mut self, f: u64, i: usize, v: u64) {
        self.mem[f as usize * ENTRIES + i] = v;
    }
    fn rec(&mut self, f: u64) -> &mut Rec {
        &mut self.recs[f as usize]
    }
    pub fn base(&self, dom: DomId, user: bool) -> Option<u64> {
        self.bases.get(&dom).and_then(|b| b[user as usize])
    }
    /// Hardware sets A and D in a present entry.
    pub fn hw_ad(&mut self, f: u64, i: usize) {
        if present(self.get(f, i)) {
            self.set(f, i, self.get(f, i) | A | D);
        }
    }

    // --- general and type references (spec §1.4, §1.5) ---

    fn get_page_if(&mut self, f: u64, allow: impl Fn(DomId) -> bool) -> Result<(), MmError> {
        let r = self.recs.get_mut(f as usize).ok_or(MmError::BadMfn)?;
        if !r.alloc || r.g == 0 {
            return Err(MmError::NotAllocated);
        }
        if !allow(r.owner) {
            return Err(MmError::WrongOwner);
        }
        r.g += 1;
        Ok(())
    }
    fn get_page(&mut self, f: u64, dom: DomId) -> Result<(), MmError> {
        self.get_page_if(f, |o| o == dom)
    }
    fn put_page(&mut self, f: u64) {
        let r = self.rec(f);
        assert!(
            r.g > r.c + r.alloc as u32,
            "model: put_page below the typed count"
        );
        r.g -= 1;
    }
    /// Take a `want` type reference for `dom`'s tables, validating a table on first use.
    fn get_type(&mut self, dom: DomId, f: u64, want: PageType) -> Result<(), MmError> {
        let r = self.recs[f as usize];
        if r.c > 0 {
            if r.ty != want {
                return Err(MmError::TypeMismatch);
            }
            assert!(
                r.v,
                "model: a sequential taker never meets a validation in progress"
            );
            self.rec(f).c += 1;
            return Ok(());
        }
        let keep = r.ty == want && r.v;
        let rec = self.rec(f);
        rec.c = 1;
        if keep {
            return Ok(());
        }
        (rec.ty, rec.v) = (want, false);
        if let Some(level) = want.level()
            && let Err(e) = self.promote(dom, f, level)
        {
            // Untyped again; what validation took is given back by the caller's snapshot.
            (self.rec(f).c, self.rec(f).ty) = (0, PageType::None);
            return Err(e);
        }
        self.rec(f).v = true;
        Ok(())
    }
    fn put_type(&mut self, f: u64) {
        let r = *self.rec(f);
        assert!(
            r.c > 0 && r.v && !(r.c == 1 && r.pinned),
            "model: bad put_type"
        );
        if r.c > 1 {
            self.rec(f).c -= 1;
        } else if let Some(level) = r.ty.level() {
            self.rec(f).v = false;
            for i in (0..ENTRIES).rev().filter(|&i| !xen_slot(level, i)) {
                self.drop_entry(f, level, self.get(f, i));
            }
            self.rec(f).c = 0;
        } else {
            self.rec(f).c = 0;
        }
    }

    // --- entries (spec §2.4–2.6) ---

    /// Validate `f` as a table of `level`, adjusting entries in place.
    fn promote(&mut self, dom: DomId, f: u64, level: Level) -> Result<(), MmError> {
        for i in (0..ENTRIES).filter(|&i| !xen_slot(level, i)) {
            let e = self.get(f, i);
            if !present(e) {
                continue;
            }
            flags_ok(level, e)?;
            let adjusted = adjust(level, e);
            self.take(dom, dom, f, level, adjusted)?;
            self.set(f, i, adjusted);
        }
        if level == Level::L4 {
            for slot in 256..=271 {
                self.set(f, slot, test_xen_l4_slot(Mfn(f), slot));
            }
        }
        Ok(())
    }

    /// The references present entry `e` of `table` needs. Leaves may map frames of `dom` or
    /// of FD (`fd`; no domain here is privileged and none has I/O capabilities).
    fn take(
        &mut self,
        dom: DomId,
        fd: DomId,
        table: u64,
        level: Level,
        e: u64,
    ) -> Result<(), MmError> {
        let t = frame(e);
        let Some(lower) = level.lower() else {
            if t == ALL_ONES {
                return Err(MmError::AllOnesFrame);
            }
            if t >= FRAMES {
                return Err(MmError::MmioDenied);
            }
            self.get_page_if(t, |o| o == dom || o == fd)
                .map_err(|_| MmError::FrameBusy)?;
            if e & RW != 0 {
                self.get_type(dom, t, PageType::Writable)
                    .map_err(|_| MmError::WritableBusy)?;
            }
            return Ok(());
        };
        if t == table {
            return if e & RW != 0 {
                Err(MmError::LinearWritable)
            } else {
                Ok(())
            };
        }
        if t >= FRAMES {
            return Err(MmError::BadChild);
        }
        self.get_page(t, dom).map_err(|_| MmError::BadChild)?;
        match self.get_type(dom, t, lower.page_type()) {
            Err(MmError::TypeMismatch) => {}
            other => return other,
        }
        // The linear rule: an already validated same-level table, read-only, one level deep.
        let r = self.recs[t as usize];
        if r.ty != level.page_type() {
            return Err(MmError::TypeMismatch);
        }
        if e & RW != 0 {
            return Err(MmError::LinearWritable);
        }
        if r.c == 0 || !r.v {
            return Err(MmError::LinearTarget);
        }
        if self.recs[table as usize].linear < 0 || r.linear > 0 {
            return Err(MmError::LinearChain);
        }
        self.rec(t).c += 1;
        self.rec(table).linear += 1;
        self.rec(t).linear -= 1;
        Ok(())
    }

    fn drop_entry(&mut self, table: u64, level: Level, e: u64) {
        let t = frame(e);
        if !present(e) || t >= FRAMES || (level != Level::L1 && t == table) {
            return;
        }
        if level != Level::L1 && self.recs[t as usize].ty == level.page_type() {
            self.rec(table).linear -= 1;
            self.rec(t).linear += 1;
        }
        if level != Level::L1 || e & RW != 0 {
            self.put_type(t);
        }
        self.put_page(t);
    }

    /// `mod_entry` of a validated table of `dom` (spec §2.8–2.9, DESIGN.md §6); `Ok(fast)`.
    #[allow(clippy::too_many_arguments)]
    fn mod_entry(
        &mut self,
        dom: DomId,
        fd: DomId,
        table: u64,
        level: Level,
        i: usize,
        val: u64,
        preserve: bool,
    ) -> Result<bool, MmError> {
        if xen_slot(level, i) {
            return Err(MmError::XenSlot);
        }
        flags_ok(level, val)?;
        let new = adjust(level, val);
        self.get_page(table, dom)?;
        self.rec(table).c += 1;
        let old = self.get(table, i);
        let new = if preserve { new | (old & (A | D)) } else { new };
        let fast_path = fast(old, new);
        if !fast_path && present(new) {
            self.take(dom, fd, table, level, new)?;
        }
        self.set(table, i, new);
        if !fast_path {
            self.drop_entry(table, level, old);
        }
        self.put_type(table);
        self.put_page(table);
        Ok(fast_path)
    }
}
