//! Random `mmu_update` batches whose outcome is known in advance, for `stress_batches.rs`.
//!
//! A [`View`] is what one thread may touch, by role: page tables that stay validated for the
//! whole run (they are pinned), data frames that are never typed as anything but writable,
//! typed frames of the same domain, frames of other domains, a free frame, and optionally one
//! table whose type another thread keeps changing. Because every frame keeps its role, the
//! verdict of each request follows from the request alone, whatever other threads do at the
//! same time: [`Expect::Ok`] or [`Expect::Fail`] with the exact error. Only requests on the
//! changing table have two possible verdicts ([`Expect::OkOr`]). [`check`] then holds a
//! batch's verdict, `*pdone` and flush count to exactly that (`run.rs`, which also runs a
//! thread's batches).

pub mod run;

use crate::hypercall_common::*;

/// xorshift64* (deterministic per seed).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// What one request must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Succeed; `upper`: it changed an L2–L4 entry (a flush is due).
    Ok { upper: bool },
    /// Fail with exactly this error.
    Fail(HcError),
    /// Succeed or fail with this error (the table's type is changing under it).
    OkOr(HcError),
}

/// The L2–L4 tables a thread writes, and the L1s its L2 entries may point at.
pub struct Upper {
    pub l4: u64,
    pub l3: u64,
    pub l2: u64,
    pub children: Vec<u64>,
}

/// What one thread may touch, by role (see the module head).
pub struct View {
    pub dom: DomId,
    /// The other unprivileged domain (hostile `foreigndom` values).
    pub other: DomId,
    /// L1 tables the thread writes (slots `0..LEAF_SLOTS`).
    pub l1s: Vec<u64>,
    pub upper: Option<Upper>,
    /// Frames that may be mapped RO and RW at any time.
    pub data: Vec<u64>,
    /// Frames of the same domain typed as tables for the whole run.
    pub typed: Vec<u64>,
    /// Frames of other domains.
    pub foreign: Vec<u64>,
    pub free: u64,
    /// A table whose type another thread keeps changing.
    pub dynamic: Option<u64>,
}

/// Leaf slots written: few, so that threads sharing a table collide on them.
pub const LEAF_SLOTS: u64 = 8;
/// L2 slots written (0 and 1 hold the tree's L1s).
pub const L2_SLOTS: std::ops::Range<u64> = 2..8;
const SELF: u32 = DOMID_SELF as u32;

/// A batch: the requests, `foreigndom`, and the expectation of each request.
#[derive(Debug)]
pub struct Batch {
    pub reqs: Vec<MmuUpdate>,
    pub foreigndom: u32,
    pub expects: Vec<Expect>,
}

fn fail(e: MmError) -> Expect {
    Expect::Fail(HcError::Mm(e))
}

impl View {
    /// Fast-path noise and an optional RW bit.
    fn bits(rng: &mut Rng) -> (u64, u64) {
        let noise = rng.pick(&[
            0,
            PTE_A,
            PTE_A | PTE_D,
            PTE_NX,
            1 << 9,
            PTE_GUEST_KERNEL,
            1 << 57,
        ]);
        let us = if rng.chance(50) { PTE_US } else { 0 };
        let rw = if rng.chance(40) { PTE_RW } else { 0 };
        (PTE_P | noise | us, rw)
    }

    /// A value for an L1 entry, with its verdict.
    fn leaf(&self, rng: &mut Rng) -> (u64, Expect) {
        let (p, rw) = Self::bits(rng);
        let ok = Expect::Ok { upper: false };
        match rng.below(100) {
            0..=59 => (pte(rng.pick(&self.data), p | rw), ok),
            60..=67 => (rng.next() & !PTE_P, ok),
            68..=75 if rw != 0 => (
                pte(rng.pick(&self.typed), p | rw),
                fail(MmError::WritableBusy),
            ),
            68..=75 => (pte(rng.pick(&self.typed), p), ok),
            76..=83 => (
                pte(rng.pick(&self.foreign), p | rw),
                fail(MmError::FrameBusy),
            ),
            84..=86 => (pte(self.free, p | rw), fail(MmError::FrameBusy)),
            87..=89 => (pte(MMIO, p | rw), fail(MmError::MmioDenied)),
            90..=91 => (pte(ALL_ONES_FRAME, PTE_P), fail(MmError::AllOnesFrame)),
            _ => {
                let attr = rng.pick(&[PTE_PCD, PTE_PWT, PTE_PAT]);
                (
                    pte(rng.pick(&self.data), p | rw | attr),
                    fail(MmError::CacheAttr),
                )
            }
        }
    }

    /// A value for an entry of `up.l2`, with its verdict.
    fn l2(&self, up: &Upper, rng: &mut Rng) -> (u64, Expect) {
        let (p, rw) = Self::bits(rng);
        let ok = Expect::Ok { upper: true };
        let child = rng.pick(&up.children);
        match rng.below(100) {
            0..=54 => (pte(child, p | rw), ok),
            55..=62 => (rng.next() & !PTE_P, ok),
            63..=70 if rw != 0 => (pte(up.l2, p | rw), fail(MmError::LinearWritable)),
            63..=70 => (pte(up.l2, p), ok),
            71..=78 => (pte(rng.pick(&self.foreign), p), fail(MmError::BadChild)),
            79..=81 => (pte(self.free, p), fail(MmError::BadChild)),
            82..=84 => (pte(MMIO, p), fail(MmError::BadChild)),
            // An L4 is neither an L1 child nor an L2 linear target.
            85..=89 => (pte(up.l4, p | rw), fail(MmError::TypeMismatch)),
            90..=94 => (pte(child, p | PTE_PSE), fail(MmError::Superpage)),
            _ => (
                pte(child, p | rng.pick(&[PTE_G, PTE_PCD, PTE_PWT])),
                fail(MmError::BadFlags),
            ),
        }
    }

    /// One request and its verdict.
    pub fn request(&self, rng: &mut Rng) -> (MmuUpdate, Expect) {
        let at = |table: u64, slot: u64| (table << 12) + slot * 8;
        let normal = |rng: &mut Rng| rng.pick(&[0, 0, 0, 2, 3]);
        let raw = |cmd: u64, addr: u64, val: u64| MmuUpdate {
            ptr: addr | cmd,
            val,
        };
        let ok = Expect::Ok { upper: false };
        let roll = rng.below(100);
        if let (Some(up), 50..=73) = (&self.upper, roll) {
            let (table, slot, (val, expect)) = match roll {
                50..=65 => (
                    up.l2,
                    rng.below(L2_SLOTS.end - L2_SLOTS.start) + L2_SLOTS.start,
                    self.l2(up, rng),
                ),
                66..=68 => (
                    up.l3,
                    1 + rng.below(3),
                    (pte(up.l2, PTE_P | PTE_RW), Expect::Ok { upper: true }),
                ),
                69..=70 => (
                    up.l4,
                    1 + rng.below(3),
                    (pte(up.l3, PTE_P), Expect::Ok { upper: true }),
                ),
                _ => (
                    up.l4,
                    256 + rng.below(16),
                    (pte(up.l3, PTE_P), fail(MmError::XenSlot)),
                ),
            };
            return (raw(normal(rng), at(table, slot), val), expect);
        }
        match roll {
            74..=78 => (
                raw(0, at(rng.pick(&self.data), rng.below(512)), rng.next()),
                ok,
            ),
            79..=80 => (raw(1, at(rng.pick(&self.data), 0), rng.next()), ok),
            81 => (
                raw(1, at(rng.pick(&self.foreign), 0), 1),
                fail(MmError::WrongOwner),
            ),
            82..=84 => (
                raw(0, at(rng.pick(&self.foreign), rng.below(8)), 0),
                fail(MmError::WrongOwner),
            ),
            85 => (raw(0, at(self.free, 0), 0), fail(MmError::NotAllocated)),
            86 => (
                raw(0, at(MMIO, 0), 0),
                Expect::Fail(HcError::Invalid(Invalid::BadFrame)),
            ),
            87..=88 => {
                let l1 = rng.pick(&self.l1s);
                (
                    raw(4 + rng.below(4), at(l1, 0), 0),
                    Expect::Fail(HcError::UnknownCommand),
                )
            }
            89..=95 if self.dynamic.is_some() => {
                let (p, rw) = Self::bits(rng);
                let val = pte(rng.pick(&self.data), p | rw);
                let table = self.dynamic.unwrap_or_default();
                let expect = Expect::OkOr(HcError::Invalid(Invalid::NotUpdatable));
                (
                    raw(normal(rng), at(table, rng.below(LEAF_SLOTS)), val),
                    expect,
                )
            }
            _ => {
                let (val, expect) = self.leaf(rng);
                let table = rng.pick(&self.l1s);
                (
                    raw(normal(rng), at(table, rng.below(LEAF_SLOTS)), val),
                    expect,
                )
            }
        }
    }

    /// 1..=16 requests, a hostile one kept only one time in five (so that about half the
    /// batches complete); now and then with a hostile `foreigndom`, which decides the verdict
    /// of the first request (the XSM check comes after decoding the command).
    pub fn batch(&self, rng: &mut Rng) -> Batch {
        let n = 1 + rng.below(16);
        let one = |rng: &mut Rng| loop {
            let (req, expect) = self.request(rng);
            if !matches!(expect, Expect::Fail(_)) || rng.chance(20) {
                return (req, expect);
            }
        };
        let (reqs, mut expects): (Vec<_>, Vec<_>) = (0..n).map(|_| one(rng)).unzip();
        let foreigndom = match rng.below(100) {
            0..=1 => fd(self.other),
            2 => pfd_fd(self.other, DOMID_SELF),
            3 => fd(self.dom),
            _ => SELF,
        };
        if foreigndom == fd(self.dom) {
            expects[0] = Expect::Fail(HcError::NoSuchDomain);
        } else if foreigndom != SELF {
            let bad_cmd = reqs[0].ptr & 7 >= 4;
            expects[0] = Expect::Fail(if bad_cmd {
                HcError::UnknownCommand
            } else {
                HcError::NotPermitted
            });
        }
        Batch {
            reqs,
            foreigndom,
            expects,
        }
    }
}
