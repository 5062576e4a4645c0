//! The hypercall layer of the reference model: one `mmu_update` request (spec §3.3–3.4,
//! with Xen's FD / PFD and XSM rules), pin / unpin (§4.2) and the base pointers (§4.3), each
//! over the frame-table model of `mod.rs`. A whole batch, with `*pdone`, is `ops.rs`'s.

use super::{DOMID_IO, FRAMES, Model, RO_M2P, adjust, fast, flags_ok, frame, present};
use hvcore::domain::DomId;
use hvcore::frame::{Level, MmError, PageType};
use hvcore::hypercall::{HcError, Invalid};

impl Model {
    /// One `mmu_update` request (spec §3.3, §3.4) for `caller` with PFD `pfd` and FD `fd`.
    /// `Ok(true)` if an L2–L4 entry changed (a flush is due).
    pub fn mmu_request(
        &mut self,
        caller: DomId,
        (pfd, fd): (DomId, DomId),
        xsm_done: &mut bool,
        (ptr, val): (u64, u64),
    ) -> Result<bool, HcError> {
        let (cmd, addr) = (ptr & 7, ptr & !7);
        let mfn = addr >> 12;
        if cmd >= 4 {
            return Err(HcError::UnknownCommand);
        }
        if cmd == 1 {
            if pfd != caller || (fd != DOMID_IO && fd != caller) {
                return Err(HcError::NotPermitted);
            }
            self.get_page(mfn, fd)?;
            self.m2p.insert(mfn, val);
            self.put_page(mfn);
            return Ok(false);
        }
        if !*xsm_done {
            if (fd != DOMID_IO && fd != caller) || pfd != caller {
                return Err(HcError::NotPermitted);
            }
            *xsm_done = true;
        }
        let index = ((addr & 0xFFF) >> 3) as usize;
        if mfn >= FRAMES {
            return Err(Invalid::BadFrame.into());
        }
        self.get_page(mfn, pfd)?;
        let r = self.recs[mfn as usize];
        let level = r.ty.level().filter(|_| r.c > 0 && r.v);
        let out = match level {
            None => match self.get_type(pfd, mfn, PageType::Writable) {
                Ok(()) => {
                    self.set(mfn, index, val);
                    self.put_type(mfn);
                    Ok(false)
                }
                Err(MmError::TypeMismatch) => Err(Invalid::NotUpdatable.into()),
                Err(e) => Err(e.into()),
            },
            Some(Level::L1) => self.leaf_update(pfd, fd, mfn, index, val, cmd == 2),
            Some(_) if fd != pfd => Err(Invalid::ForeignUpperEntry.into()),
            Some(l) => self
                .mod_entry(pfd, pfd, mfn, l, index, val, cmd == 2)
                .map(|_| true)
                .map_err(HcError::Mm),
        };
        self.put_page(mfn);
        out
    }

    /// Xen's FD rules around an L1 update (spec §2.4 step 3; `hypercall::leaf`). Nobody here is
    /// privileged, so FD ≠ PFD (only `DOMID_IO` gets this far) may map none of PFD's frames.
    fn leaf_update(
        &mut self,
        pfd: DomId,
        fd: DomId,
        table: u64,
        i: usize,
        val: u64,
        preserve: bool,
    ) -> Result<bool, HcError> {
        if present(val) && fd != pfd {
            flags_ok(Level::L1, val)?;
            let t = frame(val);
            let pfds =
                t < FRAMES && self.recs[t as usize].g > 0 && self.recs[t as usize].owner == pfd;
            if pfds && !fast(self.get(table, i), adjust(Level::L1, val)) {
                return Err(MmError::FrameBusy.into());
            }
        }
        self.mod_entry(pfd, fd, table, Level::L1, i, val, preserve)
            .map(|_| false)
            .map_err(HcError::Mm)
    }

    /// MMUEXT_PIN_Ln_TABLE for FD `fd`.
    pub fn pin(&mut self, fd: DomId, f: u64, level: Level) -> Result<(), HcError> {
        self.get_page(f, fd)?;
        self.get_type(fd, f, level.page_type())?;
        if self.recs[f as usize].pinned {
            return Err(MmError::AlreadyPinned.into());
        }
        self.rec(f).pinned = true;
        Ok(())
    }

    /// MMUEXT_UNPIN_TABLE for FD `fd`.
    pub fn unpin(&mut self, fd: DomId, f: u64) -> Result<(), HcError> {
        let r = *self.recs.get(f as usize).ok_or(MmError::BadMfn)?;
        let err = if r.g == 0 {
            MmError::NotAllocated
        } else if r.owner != fd {
            MmError::WrongOwner
        } else if !r.pinned {
            MmError::NotPinned
        } else {
            self.rec(f).pinned = false;
            self.put_type(f);
            self.put_page(f);
            return Ok(());
        };
        Err(err.into())
    }

    /// NEW_BASEPTR (`user` false) / NEW_USER_BASEPTR (`user` true; frame 0 clears it).
    pub fn new_base(&mut self, caller: DomId, user: bool, arg: u64) -> Result<(), HcError> {
        let new = (!user || arg != 0).then_some(arg);
        let old = self.base(caller, user);
        if old == new {
            return Ok(());
        }
        if let Some(f) = new {
            self.get_page(f, caller)?;
            self.get_type(caller, f, PageType::L4)?;
            if !user {
                self.set(f, 256, RO_M2P);
            }
        }
        self.bases.entry(caller).or_default()[user as usize] = new;
        if let Some(old) = old {
            self.put_type(old);
            self.put_page(old);
        }
        Ok(())
    }

    /// Run `f` on the model; if it fails, restore the frame records it changed.
    pub fn atomically<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, HcError>,
    ) -> Result<T, HcError> {
        let (recs, bases) = (self.recs.clone(), self.bases.clone());
        let r = f(self);
        if r.is_err() {
            (self.recs, self.bases) = (recs, bases);
        }
        r
    }
}
