//! The operations `proptest_model.rs` generates, their encoding as hypercall arguments, and
//! what the reference model says each one does (verdict, `*pdone`, whether a flush is due).
//!
//! Frames are named relative to the acting domain ([`F`]), so that one generated sequence
//! means the same thing whoever acts and shrinking keeps its meaning.

use super::{ALL_ONES, DOMID_IO, Model};
use hvcore::domain::DomId;
use hvcore::frame::Level;
use hvcore::hypercall::HcError;

pub const DOMID_SELF: DomId = 0x7FF0;
/// A domain id nobody has.
pub const MISSING: DomId = 7;

/// A frame, as seen from the acting domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F {
    /// One of the actor's first frames.
    Own(u8),
    /// One of the other unprivileged domain's first frames.
    Other(u8),
    /// A frame of the privileged domain 0.
    Priv,
    /// A free frame.
    Free,
    /// Beyond RAM (MMIO for leaves, a bad frame for everything else).
    Mmio,
    /// The all-ones address field.
    AllOnes,
}

/// The other unprivileged domain.
pub fn other(me: DomId) -> DomId {
    if me == 1 { 2 } else { 1 }
}

impl F {
    pub fn mfn(self, me: DomId) -> u64 {
        let first = |d: DomId| if d == 1 { 0 } else { 24 };
        match self {
            F::Own(i) => first(me) + u64::from(i),
            F::Other(i) => first(other(me)) + u64::from(i),
            F::Priv => 40,
            F::Free => 50,
            F::Mmio => 0x1000,
            F::AllOnes => ALL_ONES,
        }
    }
}

/// The `foreigndom` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fd {
    /// `DOMID_SELF`.
    Slf,
    /// The caller's own numeric id (`-ESRCH`).
    OwnId,
    /// The other domain as FD (`-EPERM` at the first request).
    Other,
    /// `DOMID_IO`.
    Io,
    /// A domain that does not exist (`-ESRCH`).
    Missing,
    /// PFD = the other domain, FD = self (`mmu_update`: `-EPERM`; `mmuext_op` ignores PFD).
    PfdOther,
}

impl Fd {
    pub fn encode(self, me: DomId) -> u32 {
        let id = |d: DomId| u32::from(d);
        match self {
            Fd::Slf => id(DOMID_SELF),
            Fd::OwnId => id(me),
            Fd::Other => id(other(me)),
            Fd::Io => id(DOMID_IO),
            Fd::Missing => id(MISSING),
            Fd::PfdOther => ((id(other(me)) + 1) << 16) | id(DOMID_SELF),
        }
    }
}

/// One `mmu_update` request: `cmd` (0–7) on entry `slot` of `table`, value `target | flags`.
#[derive(Clone, Copy, Debug)]
pub struct Req {
    pub cmd: u64,
    pub table: F,
    pub slot: usize,
    pub target: F,
    pub flags: u64,
}

impl Req {
    /// `(ptr, val)` as the guest writes them.
    pub fn encode(&self, me: DomId) -> (u64, u64) {
        let ptr = (self.table.mfn(me) << 12) + self.slot as u64 * 8 + self.cmd;
        let val = (self.target.mfn(me) << 12) & super::ADDR | (self.flags & !super::ADDR);
        (ptr, val)
    }
}

/// One `mmuext_op` command.
#[derive(Clone, Copy, Debug)]
pub enum Ext {
    Pin(F, Level),
    Unpin(F),
    /// NEW_BASEPTR.
    Base(F),
    /// NEW_USER_BASEPTR (`None`: frame 0, which clears it).
    UserBase(Option<F>),
    /// An unknown (14, ≥ 21) or removed (19, 20) command.
    Bad(u32),
}

/// One step.
#[derive(Clone, Debug)]
pub enum Op {
    Mmu {
        who: DomId,
        fd: Fd,
        reqs: Vec<Req>,
    },
    Ext {
        who: DomId,
        fd: Fd,
        ops: Vec<Ext>,
    },
    /// The CPU sets A and D in a present entry (a table walk).
    HwAd {
        who: DomId,
        table: u8,
        slot: usize,
    },
}

/// What the model says a hypercall does.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Result<(), HcError>,
    /// `*pdone` after the call (`None`: left untouched).
    pub pdone: Option<u32>,
    /// A flush of PFD's dirty CPUs was issued.
    pub flush: bool,
}

impl Model {
    /// `mmu_update(reqs, foreigndom)` by `me` (spec §3.2, §3.5).
    pub fn mmu(&mut self, me: DomId, fd: Fd, reqs: &[Req]) -> Outcome {
        let fail = |e| Outcome {
            verdict: Err(e),
            pdone: Some(0),
            flush: false,
        };
        let owners = match fd {
            Fd::Slf => (me, me),
            Fd::PfdOther => (other(me), me),
            Fd::Other => (me, other(me)),
            Fd::Io => (me, DOMID_IO),
            Fd::OwnId | Fd::Missing => return fail(HcError::NoSuchDomain),
        };
        let (mut xsm, mut flush) = (false, false);
        for (i, req) in reqs.iter().enumerate() {
            let r = self.atomically(|m| m.mmu_request(me, owners, &mut xsm, req.encode(me)));
            match r {
                Ok(upper) => flush |= upper,
                Err(e) => {
                    return Outcome {
                        verdict: Err(e),
                        pdone: Some(i as u32),
                        flush,
                    };
                }
            }
        }
        Outcome {
            verdict: Ok(()),
            pdone: Some(reqs.len() as u32),
            flush,
        }
    }

    /// `mmuext_op(ops, foreigndom)` by `me` (spec §4.1–4.3).
    pub fn ext(&mut self, me: DomId, fd: Fd, ops: &[Ext]) -> Outcome {
        let early = |e| Outcome {
            verdict: Err(e),
            pdone: None,
            flush: false,
        };
        match fd {
            Fd::Slf | Fd::PfdOther => {}
            Fd::Other | Fd::Io => return early(HcError::NotPermitted),
            Fd::OwnId | Fd::Missing => return early(HcError::NoSuchDomain),
        }
        for (i, op) in ops.iter().enumerate() {
            let r = self.atomically(|m| match *op {
                Ext::Pin(f, level) => m.pin(me, f.mfn(me), level),
                Ext::Unpin(f) => m.unpin(me, f.mfn(me)),
                Ext::Base(f) => m.new_base(me, false, f.mfn(me)),
                Ext::UserBase(f) => m.new_base(me, true, f.map_or(0, |f| f.mfn(me))),
                Ext::Bad(19 | 20) => Err(HcError::NotSupported),
                Ext::Bad(_) => Err(HcError::UnknownCommand),
            });
            if let Err(e) = r {
                return Outcome {
                    verdict: Err(e),
                    pdone: Some(i as u32),
                    flush: false,
                };
            }
        }
        Outcome {
            verdict: Ok(()),
            pdone: Some(ops.len() as u32),
            flush: false,
        }
    }
}
