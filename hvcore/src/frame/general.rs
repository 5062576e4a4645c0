//! Allocation and general references: `assign`, `release_allocation`, `get_page`, `put_page`.
//!
//! Invariants: `G == 0 ⇔` the word is 0 (free); the allocation reference is one `G` held while
//! `allocated` is set; a general reference is never dropped below `C + allocated` (those
//! references belong to type holders and the allocation); the last reference frees the frame
//! and stamps it for the allocation-time flush filter (spec §5.3).
//!
//! Orderings: taking a reference is Acquire (pairs with the AcqRel of `assign`, so a holder sees
//! the frame as its allocator left it); dropping a non-last reference is Release (the holder's
//! uses happen-before the free); the last drop is an Acquire fence (it frees after every other
//! holder's use and reads the clock after them) plus a Release CAS (publishes the stamp written
//! just before it); `assign` is AcqRel for the mirror reasons. Initial loads are Relaxed: they
//! only seed the CAS, whose success ordering carries the synchronisation.

use super::{FrameState, FrameTable, MmError, decode};
use crate::domain::DomId;
use crate::flush::Stamp;
use crate::mem::Mfn;
use crate::sync::{Ordering, fence};

/// A frame just assigned to a domain. Its previous life may still be cached in TLBs: the
/// allocator flushes all online CPUs filtered by `stamp` before handing it out (spec §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "flush CPUs that may still cache the frame's previous use (filter by `stamp`)"]
pub struct Assigned {
    /// The frame.
    pub mfn: Mfn,
    /// Stamp of its last use before it was freed.
    pub stamp: Stamp,
}

/// What dropping a general reference did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Other references remain.
    Held,
    /// That was the last reference: the frame is free (all-zero state, stamped with `stamp`)
    /// and may be returned to the allocator.
    Freed {
        /// Flush-clock stamp taken after its last use.
        stamp: Stamp,
    },
}

impl FrameTable<'_> {
    /// Give the free frame `mfn` to `owner`: `G = 1` (the allocation reference), no type.
    pub fn assign(&self, mfn: Mfn, owner: DomId) -> Result<Assigned, MmError> {
        let info = self.info(mfn)?;
        let next = FrameState::FREE
            .with_general(1)
            .with_allocated(true)
            .with_owner(owner);
        // AcqRel: Acquire pairs with the AcqRel free, so the new owner's use happens-after every
        // earlier holder's and we read the stamp it wrote; Release pairs with the Acquire of
        // `get_page`. Relaxed on failure: we only report it.
        info.state
            .compare_exchange(0, next.encode(), Ordering::AcqRel, Ordering::Relaxed)
            .map_err(|_| MmError::FrameInUse)?;
        // Relaxed: ordered by the Acquire above (written before the free's Release).
        Ok(Assigned {
            mfn,
            stamp: info.stamp.load(Ordering::Relaxed),
        })
    }

    /// Drop `owner`'s allocation reference (the guest gave the frame back). The frame stays
    /// alive, without an allocation, until its last reference goes; no new references can be
    /// taken on it.
    pub fn release_allocation(&self, mfn: Mfn, owner: DomId) -> Result<Released, MmError> {
        self.drop_general(mfn, |s| {
            if !s.allocated() || s.general() == 0 {
                return Err(MmError::NotAllocated);
            }
            if s.owner() != owner {
                return Err(MmError::WrongOwner);
            }
            if s.general() <= s.type_count() {
                // The type holders' references would be gone: the word is already wrong.
                return Err(MmError::CountUnderflow);
            }
            // The allocation's own reference: `dec_general` would count it as reserved.
            Ok(s.with_allocated(false).with_general(s.general() - 1))
        })
    }

    /// Take a general reference on a frame owned by `dom` (owner check and increment in one
    /// CAS). Fails on a free or released frame, another owner, or a count at its cap.
    pub fn get_page(&self, mfn: Mfn, dom: DomId) -> Result<(), MmError> {
        self.get_page_if(mfn, |owner| owner == dom).map(|_| ())
    }

    /// Take a general reference if `allow(owner)`; returns the owner. The predicate is checked
    /// against the same word the increment is applied to.
    pub fn get_page_if(&self, mfn: Mfn, allow: impl Fn(DomId) -> bool) -> Result<DomId, MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let s = decode(cur)?;
            if !s.allocated() || s.general() == 0 {
                return Err(MmError::NotAllocated);
            }
            if !allow(s.owner()) {
                return Err(MmError::WrongOwner);
            }
            let next = s.inc_general()?;
            // Acquire: pairs with the AcqRel of `assign`. Relaxed on failure: retry value only.
            match info.state.compare_exchange_weak(
                cur,
                next.encode(),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(s.owner()),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Drop a general reference the caller holds.
    pub fn put_page(&self, mfn: Mfn) -> Result<Released, MmError> {
        self.drop_general(mfn, FrameState::dec_general)
    }

    /// Apply a decrement of `G`; if it reaches 0, stamp and free the frame.
    fn drop_general(
        &self,
        mfn: Mfn,
        dec: impl Fn(FrameState) -> Result<FrameState, MmError>,
    ) -> Result<Released, MmError> {
        let info = self.info(mfn)?;
        // Relaxed: seeds the CAS.
        let mut cur = info.state.load(Ordering::Relaxed);
        loop {
            let next = dec(decode(cur)?)?;
            if next.general() > 0 {
                // Release: this holder's uses happen-before the eventual free (which Acquires).
                match info.state.compare_exchange_weak(
                    cur,
                    next.encode(),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Released::Held),
                    Err(seen) => {
                        cur = seen;
                        continue;
                    }
                }
            }
            // Last reference. `dec` left C = 0 and allocated clear (G ≥ C + allocated).
            // Acquire fence: makes the load that saw `cur` an Acquire, so every other holder's
            // Release drop happens-before the clock read below and the stamp is no older than
            // their last use (as `Arc`'s drop does). Only the last holder writes the stamp.
            fence(Ordering::Acquire);
            // `stamp`, an RMW of the clock, not a load: see `FlushClock::stamp`.
            #[cfg(not(loom_mutant = "stamp_plain_load"))]
            let stamp = self.clock.stamp();
            #[cfg(loom_mutant = "stamp_plain_load")]
            let stamp = self.clock.now();
            // Relaxed: published by the Release CAS below.
            info.stamp.store(stamp, Ordering::Relaxed);
            // Release: publishes the stamp and the free to the next `assign` (which Acquires).
            match info
                .state
                .compare_exchange(cur, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return Ok(Released::Freed { stamp }),
                Err(seen) => cur = seen,
            }
        }
    }
}
