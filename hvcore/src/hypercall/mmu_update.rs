//! `HYPERVISOR_mmu_update` (hypercall 1), exactly spec §3.
//!
//! Order of checks: the final-return call and the continuation flag (`batch::prologue`); the
//! start address of `reqs` (`-EFAULT`); PFD (`-ESRCH`, `-EINVAL` without a vCPU 0); FD
//! (`-ESRCH`). A bad `reqs` or a PFD that does not exist returns at once; a PFD without a vCPU 0
//! and a bad FD write `*pdone` first (Xen's `out:` path; checked against Xen 4.17 by the guest's
//! `reject` suite). Then,
//! per request: read (`-EFAULT`), decode `ptr & 7` (4..7 `-ENOSYS`), XSM on first use
//! (`-EPERM`), and the request itself:
//!
//! * normal / preserve-AD / no-translate: the frame `ptr >> 12` must be a RAM frame of PFD
//!   (`-EINVAL`), held by a general reference for the request (or, when a snapshot of its state
//!   shows a validated table of PFD, by `mod_entry`'s own hold alone: the common case, which
//!   falls back to the held path whenever that could decide otherwise). A validated L1 →
//!   `mod_entry` with Xen's FD rules (`leaf`); a validated L2–L4 → FD must be PFD (XSA-109) and
//!   `mod_entry_deferred`, remembering that a flush is needed (an old child losing its last type
//!   reference is de-validated through the vCPU's deferred slot, `deferred`, spec §3.6); anything
//!   else → a raw 8-byte write under a transient writable type reference, which fails (`-EINVAL`)
//!   for descriptor frames and tables being validated or de-validated (partial). A table that
//!   changes type between the look and the update is looked at again (at most [`ATTEMPTS`] times;
//!   each retry means another CPU retyped it).
//! * machphys: PFD must be the caller (`-EPERM`); the frame must be FD's (`-EINVAL`); then
//!   `M2P[mfn] = val` through the environment.
//!
//! At the end of the invocation — failed, complete or preempted alike — a full flush of PFD's
//! dirty mask if any L2–L4 entry changed (spec §5.3, XSA-286).

use abi::domid::DOMID_IO;
use abi::mmu::{ForeignDom, MmuCmd, MmuRequest, MmuUpdate};

use super::batch::{self, BatchArgs, Prologue};
use super::decode::{permitted, pg_owner, pt_owner};
use super::env::{HcEnv, guest_addr_ok};
use super::error::{HcError, Invalid};
use super::{HcResult, deferred, leaf, tlb};
use crate::domain::DomId;
use crate::flush::{FlushKind, FlushToken};
use crate::frame::{FrameState, Level, MmError, PageType, owned};
use crate::mem::{Mfn, PhysMem};

/// How often one request looks at its frame's type before giving up with `-EINVAL`.
const ATTEMPTS: usize = 4;

/// `mmu_update(reqs, count, pdone, foreigndom)`: apply the `mmu_update_t` array at guest
/// address `reqs` (spec §3). `count` and `foreigndom` are the 32-bit register values.
pub fn mmu_update<E: HcEnv + ?Sized>(
    env: &mut E,
    reqs: u64,
    count: u32,
    pdone: u64,
    foreigndom: u32,
) -> HcResult {
    let args = BatchArgs {
        ops: reqs,
        count,
        pdone,
        foreigndom,
    };
    let (count, done) = match batch::prologue(env, &args) {
        Prologue::Again(c) => return HcResult::Continue(c),
        Prologue::Final(v) => return HcResult::Done(Ok(v)),
        Prologue::Run { count, done } => (count, done),
    };
    if !guest_addr_ok(reqs) {
        return HcResult::Done(Err(HcError::Fault));
    }
    let names = ForeignDom::decode(foreigndom);
    let pfd = match pt_owner(env, names.pfd) {
        Err(HcError::NoSuchDomain) => return HcResult::Done(Err(HcError::NoSuchDomain)),
        pfd => pfd,
    };
    let owners = pfd.and_then(|pfd| Ok((pfd, pg_owner(env, names.fd)?)));
    let (pfd, fd) = match owners {
        Ok(owners) => owners,
        Err(e) => {
            batch::write_done(env, pdone, done);
            return HcResult::Done(Err(e));
        }
    };
    let mut batch_state = Batch {
        pfd,
        fd,
        xsm_checked: false,
        flush: false,
    };
    let progress = batch::run(env, reqs, count, |env, req: MmuUpdate| {
        batch_state.apply(env, req)
    });
    if batch_state.flush {
        let token = FlushToken::new(env.dirty_mask(pfd), FlushKind::Full);
        tlb::emit(env, token);
    }
    batch::finish(env, &args, count, done, MmuUpdate::SIZE, progress)
}

/// Per-invocation state.
struct Batch {
    pfd: DomId,
    fd: DomId,
    xsm_checked: bool,
    /// An L2–L4 entry changed: flush PFD's dirty mask at the end.
    flush: bool,
}

impl Batch {
    #[inline(always)]
    fn apply<E: HcEnv + ?Sized>(&mut self, env: &mut E, req: MmuUpdate) -> Result<(), HcError> {
        let req = req.decode().map_err(|_| HcError::UnknownCommand)?;
        match req.cmd {
            MmuCmd::MachphysUpdate => self.machphys(env, req),
            cmd => {
                if !self.xsm_checked {
                    // XSM_TARGET on FD (unless it is DOMID_IO) and on PFD (spec §3.2 step 7).
                    if self.fd != DOMID_IO {
                        permitted(env, self.fd)?;
                    }
                    permitted(env, self.pfd)?;
                    self.xsm_checked = true;
                }
                self.pt_update(env, req, cmd == MmuCmd::PtUpdatePreserveAd)
            }
        }
    }

    /// MMU_MACHPHYS_UPDATE (spec §3.4).
    #[inline(never)]
    fn machphys<E: HcEnv + ?Sized>(&self, env: &E, req: MmuRequest) -> Result<(), HcError> {
        if self.pfd != env.caller() {
            return Err(HcError::NotPermitted);
        }
        if self.fd != DOMID_IO {
            permitted(env, self.fd)?;
        }
        let mfn = Mfn(req.addr >> 12);
        let ft = env.frames();
        ft.get_page(mfn, self.fd)?;
        env.set_m2p(mfn, req.val);
        owned(ft.put_page(mfn));
        Ok(())
    }

    /// The page-table commands (spec §3.3).
    #[inline(always)]
    fn pt_update<E: HcEnv + ?Sized>(
        &mut self,
        env: &mut E,
        req: MmuRequest,
        preserve_ad: bool,
    ) -> Result<(), HcError> {
        let mem = env.mem();
        let mfn = Mfn(req.addr >> 12);
        let index = ((req.addr & 0xFFF) >> 3) as usize;
        if mfn.index().is_none_or(|i| i >= mem.frames()) || index >= mem.entries_per_frame() {
            return Err(Invalid::BadFrame.into());
        }
        let attempts = match self.update_unheld(env, mfn, index, req.val, preserve_ad) {
            Unheld::Done(r) => return r.map(|begun| defer(env, begun)),
            Unheld::NotTried => ATTEMPTS,
            Unheld::Tried => ATTEMPTS - 1,
        };
        env.frames().get_page(mfn, self.pfd)?;
        let r = self.update_held(env, mfn, index, req.val, preserve_ad, attempts);
        owned(env.frames().put_page(mfn));
        r.map(|begun| defer(env, begun))
    }

    /// The common case, without a reference of our own: if a snapshot of `mfn`'s state says it
    /// is a validated table of PFD whose general count can grow (so that `pt_update`'s
    /// `get_page` would succeed), update it straight away — `mod_entry`'s own hold checks the
    /// same atomically, and nothing before that hold has an effect. If the update was refused
    /// for a reason the held path could decide otherwise (the table is no longer validated,
    /// PFD's or below the general cap), the held path runs with one look at the type fewer and
    /// gives the canonical result.
    #[inline(always)]
    fn update_unheld<E: HcEnv + ?Sized>(
        &mut self,
        env: &E,
        mfn: Mfn,
        index: usize,
        val: u64,
        preserve_ad: bool,
    ) -> Unheld {
        let Ok(s) = env.frames().state(mfn) else {
            return Unheld::NotTried;
        };
        let pfds = s.allocated() && s.owner() == self.pfd && s.inc_general().is_ok();
        let (Some(level), true) = (validated_level(s), pfds) else {
            return Unheld::NotTried;
        };
        let Some(owner) = env.domain(self.pfd) else {
            return Unheld::NotTried;
        };
        match self.update_table(env, owner, mfn, level, index, val, preserve_ad) {
            Err(HcError::Mm(
                MmError::NotValidated
                | MmError::NotAllocated
                | MmError::WrongOwner
                | MmError::CountOverflow
                | MmError::CorruptState,
            )) => Unheld::Tried,
            r => Unheld::Done(r),
        }
    }

    /// `pt_update` with a general reference held on `mfn`, looking at its type at most
    /// `attempts` times; returns the old child whose de-validation was begun, if any.
    #[inline(never)]
    fn update_held<E: HcEnv + ?Sized>(
        &mut self,
        env: &E,
        mfn: Mfn,
        index: usize,
        val: u64,
        preserve_ad: bool,
        attempts: usize,
    ) -> Result<Option<Mfn>, HcError> {
        let owner = env.domain(self.pfd).ok_or(HcError::NoSuchDomain)?;
        for _ in 0..attempts {
            let Some(level) = validated_level(env.frames().state(mfn)?) else {
                return raw_write(env, owner, mfn, index, val).map(|()| None);
            };
            match self.update_table(env, owner, mfn, level, index, val, preserve_ad) {
                // The table stopped being a validated table of that level meanwhile.
                Err(HcError::Mm(MmError::NotValidated)) => continue,
                r => return r,
            }
        }
        Err(Invalid::NotUpdatable.into())
    }

    /// An entry of `mfn`, a validated table of level `level` owned by `owner` (PFD); returns
    /// the old child whose de-validation was begun, if any. `NotValidated` if it stopped
    /// being one.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn update_table<E: HcEnv + ?Sized>(
        &mut self,
        env: &E,
        owner: &E::Dom,
        mfn: Mfn,
        level: Level,
        index: usize,
        val: u64,
        preserve_ad: bool,
    ) -> Result<Option<Mfn>, HcError> {
        let update = if level == Level::L1 {
            leaf::update(env, owner, self.fd, mfn, index, val, preserve_ad)?
        } else if self.fd != self.pfd {
            return Err(Invalid::ForeignUpperEntry.into());
        } else {
            env.frames().mod_entry_deferred(
                env.mem(),
                owner,
                mfn,
                level,
                index,
                val,
                preserve_ad,
            )?
        };
        self.flush |= update.needs_flush();
        Ok(update.devalidating)
    }
}

/// What `Batch::update_unheld` did.
enum Unheld {
    /// The update ran to this result.
    Done(Result<Option<Mfn>, HcError>),
    /// The snapshot did not show a validated table of PFD: nothing was tried.
    NotTried,
    /// It did, but the update was refused for a reason the held path must look at again.
    Tried,
}

/// Spec §3.6: the old subtree `begun`, if any, is the vCPU's to de-validate; the batch stops
/// after this request.
fn defer<E: HcEnv + ?Sized>(env: &mut E, begun: Option<Mfn>) {
    if let Some(table) = begun {
        deferred::defer(env, table);
    }
}

/// The level of a validated table in use (`C > 0`), or `None` for anything else.
fn validated_level(s: FrameState) -> Option<Level> {
    s.ty()
        .level()
        .filter(|_| s.type_count() > 0 && s.validated())
}

/// Write 8 bytes into a data frame under a transient writable type reference (spec §3.3: "so
/// mmu_update doubles as write 8 bytes into any of my plain data pages").
fn raw_write<E: HcEnv + ?Sized>(
    env: &E,
    owner: &E::Dom,
    mfn: Mfn,
    index: usize,
    val: u64,
) -> Result<(), HcError> {
    let ft = env.frames();
    let mem = env.mem();
    ft.get_page_type(mem, owner, mfn, PageType::Writable)
        .map_err(|e| match e {
            MmError::TypeMismatch | MmError::Devalidating => {
                HcError::Invalid(Invalid::NotUpdatable)
            }
            e => HcError::Mm(e),
        })?;
    mem.write_entry(mfn, index, val);
    owned(ft.put_page_type(mem, mfn));
    Ok(())
}
