//! L1 entry updates on behalf of a foreign domain (FD): Xen's `pg_owner` rules of spec §2.4
//! step 3, applied around the core's `mod_entry`.
//!
//! The core asks the context "may this updated L1 entry map a frame of owner X"
//! (`DomainCtx::may_map`) inside the compare-and-swap that takes the frame's reference. Xen's
//! rule, with PFD the table owner and FD the `pg_owner` of the request, is: a frame owned by FD
//! may be mapped; a frame of any other owner only if FD ≠ PFD and FD is privileged over that
//! owner (XSM `priv_mapping`). [`LeafCtx`] is the PFD context with `may_map` (and
//! `may_map_foreign`) replaced by that rule, so a frame of PFD itself is refused while FD ≠ PFD
//! and FD is not privileged over PFD (e.g. FD = `DOMID_IO` mapping the caller's own RAM, spec
//! case 20: `-EBUSY`), unless the update takes the fast path, which takes no references (in
//! Xen as here).
//!
//! I/O frames: Xen asks FD for `iomem` permission and, when FD ≠ PFD, PFD too; `DOMID_IO` as FD
//! means "the caller's permission". The core asks `has_io_caps` of the context, which also gates
//! PWT/PCD/PAT, so with FD ≠ PFD cache attributes need both domains' capabilities (stricter than
//! Xen, which asks only PFD for those).

use abi::domid::DOMID_IO;

use super::env::HcEnv;
use super::error::HcError;
use crate::domain::{DomId, DomainCtx, TypeChange};
use crate::frame::Level;
use crate::mem::Mfn;
use crate::pt::EntryUpdate;

/// Xen's rule: may an L1 entry of PFD's table, written on behalf of FD, map a frame of `owner`?
fn owner_allowed<E: HcEnv + ?Sized>(env: &E, pfd: DomId, fd: DomId, owner: DomId) -> bool {
    owner == fd || (fd != pfd && env.is_privileged_over(fd, owner))
}

/// The table owner's context with Xen's FD rule for foreign frames.
struct LeafCtx<'a, E: HcEnv + ?Sized> {
    env: &'a E,
    table_owner: &'a E::Dom,
    fd: DomId,
    io_caps: bool,
}

impl<E: HcEnv + ?Sized> DomainCtx for LeafCtx<'_, E> {
    fn domid(&self) -> DomId {
        self.table_owner.domid()
    }
    fn is_privileged(&self) -> bool {
        self.table_owner.is_privileged()
    }
    fn has_io_caps(&self) -> bool {
        self.io_caps
    }
    fn linear_pt_enabled(&self) -> bool {
        self.table_owner.linear_pt_enabled()
    }
    fn may_map_foreign(&self, owner: DomId) -> bool {
        owner_allowed(self.env, self.table_owner.domid(), self.fd, owner)
    }
    fn may_map(&self, owner: DomId) -> bool {
        owner_allowed(self.env, self.table_owner.domid(), self.fd, owner)
    }
    fn xen_l4_slot(&self, l4: Mfn, slot: usize) -> u64 {
        self.table_owner.xen_l4_slot(l4, slot)
    }
    fn flush_retyped(&self, change: TypeChange) {
        self.table_owner.flush_retyped(change);
    }
    fn is_special_page(&self, mfn: Mfn) -> bool {
        self.table_owner.is_special_page(mfn)
    }
    fn cpu_self_snoop(&self) -> bool {
        self.table_owner.cpu_self_snoop()
    }
    fn flush_frame_cache(&self, mfn: Mfn) {
        self.table_owner.flush_frame_cache(mfn);
    }
}

/// I/O capability for an L1 entry written into PFD's table on behalf of FD.
fn io_caps<E: HcEnv + ?Sized>(env: &E, table_owner: &E::Dom, fd: DomId) -> bool {
    let pfd = table_owner.domid();
    let fd_caps = if fd == pfd {
        true
    } else if fd == DOMID_IO {
        env.domain(env.caller()).is_some_and(|d| d.has_io_caps())
    } else {
        env.domain(fd).is_some_and(|d| d.has_io_caps())
    };
    table_owner.has_io_caps() && fd_caps
}

/// Write `val` into entry `index` of L1 table `table` (owned by `table_owner`) on behalf of FD
/// `fd`. The caller has checked that the caller may act on FD and PFD.
#[inline(always)]
pub(crate) fn update<E: HcEnv + ?Sized>(
    env: &E,
    table_owner: &E::Dom,
    fd: DomId,
    table: Mfn,
    index: usize,
    val: u64,
    preserve_ad: bool,
) -> Result<EntryUpdate, HcError> {
    let ft = env.frames();
    let mem = env.mem();
    let io_caps = io_caps(env, table_owner, fd);
    let ctx = LeafCtx {
        env,
        table_owner,
        fd,
        io_caps,
    };
    Ok(ft.mod_entry(mem, &ctx, table, Level::L1, index, val, preserve_ad)?)
}
