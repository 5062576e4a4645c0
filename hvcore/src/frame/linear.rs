//! The linear ("same-level") page-table counter of each frame (spec §2.5, XSA-240), and the
//! de-validation cursor that shares its word.
//!
//! The word (`FrameInfo::linear`, an `AtomicU32`): bits 0–15 are the counter, an `i16`; bits
//! 16–31 the cursor of a partial de-validation (see `partial`; 0 whenever the frame is not
//! partial). The counter's range is exactly an `i16`'s, so the cursor costs no memory; each
//! half is changed by a CAS of the whole word that keeps the other half.
//!
//! The counter: > 0 is the number of same-level entries a
//! table *contains*; < 0 is the number of same-level entries elsewhere that *target* it. A table
//! may be one or the other, never both, which limits linear chains to one level; a target may be
//! used at most [`LINEAR_USES_MAX`] times (the 32769th use fails).
//!
//! Why it may live outside the state word: every rule it enforces is a check-and-modify of this
//! one counter (the containing table must be ≥ 0, the target ≤ 0), so the RMW total order on
//! the counter alone decides races (two tables trying to become "container" and "target" of each
//! other: one CAS wins, the other sees the wrong sign and fails). It publishes no data, so every
//! access is Relaxed. It is only touched while the holder owns a type reference on the frame
//! (the containing table is validated or being validated by us; the target's reference is
//! taken first), so it cannot be reset by a type change underneath; it returns to 0 exactly when
//! the last linear entry goes, which de-validation guarantees before `C` reaches 0 (so a resumed
//! or repeated validation never finds a stale count: the XSA-309 class cannot arise).

use super::{FrameTable, MmError, owned};
use crate::mem::Mfn;
use crate::sync::Ordering;

/// Most same-level entries that may target one table.
pub const LINEAR_USES_MAX: i32 = 32768;
/// Most same-level entries one table may contain (a table has at most 512 entries anyway).
pub const LINEAR_ENTRIES_MAX: i32 = 32767;

// The counter's whole range fits its 16-bit half.
const _: () = assert!(-LINEAR_USES_MAX >= i16::MIN as i32 && LINEAR_ENTRIES_MAX <= i16::MAX as i32);

/// The counter half of the word.
const COUNTER_MASK: u32 = 0xFFFF;
/// The cursor half of the word.
const CURSOR_SHIFT: u32 = 16;

/// The counter held in word `w`.
pub(crate) const fn counter_of(w: u32) -> i32 {
    (w & COUNTER_MASK) as u16 as i16 as i32
}

impl FrameTable<'_> {
    /// Apply `f` to the word of `mfn` in a CAS loop; returns the old word.
    fn word_update(
        &self,
        mfn: Mfn,
        f: impl Fn(u32) -> Result<u32, MmError>,
    ) -> Result<u32, MmError> {
        let info = self.info(mfn)?;
        // Relaxed throughout: see the module head.
        let mut cur = info.linear.load(Ordering::Relaxed);
        loop {
            let next = f(cur)?;
            match info
                .linear
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(cur),
                Err(seen) => cur = seen,
            }
        }
    }

    /// Apply `f` to the counter of `mfn`, keeping the cursor.
    fn linear_update(
        &self,
        mfn: Mfn,
        f: impl Fn(i32) -> Result<i32, MmError>,
    ) -> Result<(), MmError> {
        self.word_update(mfn, |w| {
            let next = f(counter_of(w))?;
            Ok(w & !COUNTER_MASK | (next as i16 as u16 as u32))
        })
        .map(|_| ())
    }

    /// The de-validation cursor of `mfn` (0 if it is not partial).
    pub(crate) fn cursor(&self, mfn: Mfn) -> usize {
        // Relaxed: see the module head; only the de-validation's owner (or the audit, at
        // quiescence) reads it.
        self.info(mfn).map_or(0, |i| {
            (i.linear.load(Ordering::Relaxed) >> CURSOR_SHIFT) as usize
        })
    }

    /// Set the de-validation cursor of `mfn`, keeping the counter.
    pub(crate) fn set_cursor(&self, mfn: Mfn, cursor: usize) {
        let cursor = (cursor as u32) << CURSOR_SHIFT;
        owned(self.word_update(mfn, |w| Ok(w & COUNTER_MASK | cursor)));
    }

    /// Table `mfn` gains a linear entry: it must not itself be a linear target.
    pub(crate) fn inc_linear_entries(&self, mfn: Mfn) -> Result<(), MmError> {
        self.linear_update(mfn, |v| match v {
            v if v < 0 => Err(MmError::LinearChain),
            v if v >= LINEAR_ENTRIES_MAX => Err(MmError::CountOverflow),
            v => Ok(v + 1),
        })
    }

    /// Table `mfn` loses a linear entry.
    pub(crate) fn dec_linear_entries(&self, mfn: Mfn) -> Result<(), MmError> {
        self.linear_update(mfn, |v| {
            if v > 0 {
                Ok(v - 1)
            } else {
                Err(MmError::CountUnderflow)
            }
        })
    }

    /// Table `mfn` becomes the target of one more linear entry: it must not contain any.
    pub(crate) fn inc_linear_uses(&self, mfn: Mfn) -> Result<(), MmError> {
        self.linear_update(mfn, |v| match v {
            v if v > 0 => Err(MmError::LinearChain),
            v if v <= -LINEAR_USES_MAX => Err(MmError::LinearOverflow),
            v => Ok(v - 1),
        })
    }

    /// Table `mfn` loses one linear use.
    pub(crate) fn dec_linear_uses(&self, mfn: Mfn) -> Result<(), MmError> {
        self.linear_update(mfn, |v| {
            if v < 0 {
                Ok(v + 1)
            } else {
                Err(MmError::CountUnderflow)
            }
        })
    }
}
