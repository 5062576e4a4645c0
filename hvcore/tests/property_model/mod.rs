//! The sequential reference model of `property.rs`: the shadow of every entry, the pins, the
//! per-frame snapshot a failed operation must leave untouched, and `predict`, which states the
//! outcome of every operation whose outcome follows from the spec rules directly.
#![allow(dead_code)]

use super::mm_common::*;
use std::collections::BTreeMap;

/// Frames 0..20 belong to DOM, 20..22 to domain 2, 22..24 are free, 24.. is not RAM.
pub const N: u64 = 24;
pub const OURS: u64 = 20;
pub const THEIRS: u64 = 22;
pub const SLOTS: [usize; 9] = [0, 1, 2, 3, 255, 256, 258, 272, 511];
/// Flags every generated present entry carries (a fixed point of the adjustment at all levels).
pub const BASE: u64 = PTE_P | PTE_US | PTE_A | PTE_GUEST_KERNEL;

/// Per-frame snapshot of what a failed operation must leave untouched.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Snap {
    general: u32,
    type_count: u32,
    pinned: bool,
    allocated: bool,
    owner: DomId,
    live_type: Option<(PageType, bool)>,
    linear: i32,
}

pub fn snap(w: &World) -> Vec<Snap> {
    (0..N)
        .map(|f| {
            let s = w.s(f);
            Snap {
                general: s.general(),
                type_count: s.type_count(),
                pinned: s.pinned(),
                allocated: s.allocated(),
                owner: s.owner(),
                live_type: (s.type_count() > 0).then_some((s.ty(), s.validated())),
                linear: w.t().linear_count(Mfn(f)).unwrap(),
            }
        })
        .collect()
}

pub struct Model {
    pub shadow: Vec<u64>,
    pub pins: BTreeMap<u64, Level>,
}

impl Model {
    pub fn get(&self, f: u64, i: usize) -> u64 {
        self.shadow[f as usize * 512 + i]
    }
    pub fn put(&mut self, f: u64, i: usize, v: u64) {
        self.shadow[f as usize * 512 + i] = v;
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Op {
    Pin(u64, Level),
    Unpin(u64),
    Mod {
        table: u64,
        level: Level,
        index: usize,
        val: u64,
        preserve: bool,
    },
    DataWrite(u64, usize, u64),
    HwAd(u64, usize),
}

/// Errors that only a hypervisor bug can produce.
pub fn internal(e: MmError) -> bool {
    matches!(
        e,
        MmError::CountUnderflow | MmError::CorruptState | MmError::MissingGeneralRef
    )
}

pub fn flag_error(level: Level, v: u64) -> Option<MmError> {
    if v & PTE_P == 0 {
        return None;
    }
    match level {
        Level::L1 if v & (PTE_PCD | PTE_PWT | PTE_PSE) != 0 => Some(MmError::CacheAttr),
        Level::L1 => None,
        Level::L2 | Level::L3 if v & PTE_PSE != 0 => Some(MmError::Superpage),
        _ if v & (PTE_G | PTE_PCD | PTE_PWT | PTE_PSE) != 0 => Some(MmError::BadFlags),
        _ => None,
    }
}

pub fn live_table(s: FrameState, level: Level) -> bool {
    s.ty() == level.page_type() && s.type_count() > 0 && s.validated()
}

pub fn is_fast(old: u64, new: u64) -> bool {
    let fast = PTE_NX | (0x7FF << 52) | (0x7 << 9) | PTE_G | PTE_D | PTE_A | PTE_US;
    old & PTE_P != 0 && new & PTE_P != 0 && (old ^ new) & !fast == 0
}

/// What the model is sure of: `Some(Ok(fast_path))`, `Some(Err(e))`, or `None` (either).
pub fn predict(w: &World, model: &Model, op: Op) -> Option<Result<bool, MmError>> {
    let owned = |f: u64| f < OURS;
    match op {
        Op::Unpin(f) => Some(if model.pins.contains_key(&f) {
            Ok(false)
        } else if !owned(f) {
            Err(if f < THEIRS {
                MmError::WrongOwner
            } else {
                MmError::NotAllocated
            })
        } else {
            Err(MmError::NotPinned)
        }),
        Op::Pin(f, level) => {
            if !owned(f) {
                return Some(Err(if f < THEIRS {
                    MmError::WrongOwner
                } else {
                    MmError::NotAllocated
                }));
            }
            match model.pins.get(&f) {
                Some(&l) if l == level => Some(Err(MmError::AlreadyPinned)),
                Some(_) => Some(Err(MmError::TypeMismatch)),
                None => {
                    let s = w.s(f);
                    (s.type_count() > 0 && s.ty() != level.page_type())
                        .then_some(Err(MmError::TypeMismatch))
                }
            }
        }
        Op::DataWrite(f, ..) => Some(if !owned(f) {
            Err(if f < THEIRS {
                MmError::WrongOwner
            } else {
                MmError::NotAllocated
            })
        } else {
            let s = w.s(f);
            if s.type_count() == 0 || s.ty() == PageType::Writable {
                Ok(false)
            } else {
                Err(MmError::TypeMismatch)
            }
        }),
        Op::HwAd(..) => Some(Ok(false)),
        Op::Mod {
            table,
            level,
            index,
            val,
            preserve,
        } => {
            if level == Level::L4 && is_xen_l4_slot(index) {
                return Some(Err(MmError::XenSlot));
            }
            if let Some(e) = flag_error(level, val) {
                return Some(Err(e));
            }
            if !owned(table) {
                return Some(Err(if table < THEIRS {
                    MmError::WrongOwner
                } else {
                    MmError::NotAllocated
                }));
            }
            if !live_table(w.s(table), level) {
                return Some(Err(MmError::NotValidated));
            }
            let old = model.get(table, index);
            let new = if preserve {
                val | (old & (PTE_A | PTE_D))
            } else {
                val
            };
            if is_fast(old, new) {
                return Some(Ok(true));
            }
            if new & PTE_P == 0 {
                return Some(Ok(false));
            }
            let target = frame_of(new);
            let rw = new & PTE_RW != 0;
            if level == Level::L1 {
                if target >= N {
                    return Some(Err(MmError::MmioDenied));
                }
                if !owned(target) {
                    return Some(Err(MmError::FrameBusy));
                }
                let s = w.s(target);
                let writable_ok = s.type_count() == 0 || s.ty() == PageType::Writable;
                return Some(if !rw || writable_ok {
                    Ok(false)
                } else {
                    Err(MmError::WritableBusy)
                });
            }
            if target == table {
                return Some(if rw {
                    Err(MmError::LinearWritable)
                } else {
                    Ok(false)
                });
            }
            if target >= N || !owned(target) {
                return Some(Err(MmError::BadChild));
            }
            None
        }
    }
}

pub fn apply(w: &World, op: Op) -> Result<Option<EntryUpdate>, MmError> {
    let t = w.t();
    match op {
        Op::Pin(f, l) => w.pin(f, l).map(|()| None),
        Op::Unpin(f) => w.unpin(f).map(|()| None),
        Op::Mod {
            table,
            level,
            index,
            val,
            preserve,
        } => t
            .mod_entry(&w.kit.mem, &w.dom, Mfn(table), level, index, val, preserve)
            .map(Some),
        Op::DataWrite(f, i, v) => w.data_write(f, i, v).map(|()| None),
        Op::HwAd(f, i) => {
            if w.read(f, i) & PTE_P != 0 {
                w.kit.mem.hw_set_bits(Mfn(f), i, PTE_A | PTE_D);
            }
            Ok(None)
        }
    }
}

pub fn check_memory(w: &World, model: &Model, ctx: &str) {
    for f in 0..N {
        for i in 0..512 {
            assert_eq!(
                w.read(f, i),
                model.get(f, i),
                "{ctx}: memory of frame {f} slot {i}"
            );
        }
    }
}
