//! The lock-free frame table (spec §1, DESIGN.md §5).
//!
//! Owns: [`FrameInfo`] (one per machine frame: the packed state word, the flush stamp, the linear
//! page-table counter) and [`FrameTable`], a borrowed slice of them plus the flush clock, so that
//! the hypervisor and loom models place it where they like. Every transition is a CAS loop on the
//! state word; there are no locks. Waiting happens in one place only — a taker of a type whose
//! validation is in progress spins with `sync::spin_loop` — and cannot deadlock because the
//! "requires" graph strictly descends in level (same-level linear references never wait).
//!
//! Submodules: `state` (the packed word), `types` (type and level values), `error`, `general`
//! (allocation and general references), `typed` (type references, validation, de-validation),
//! `pair` (a general and a type reference together, one CAS where the word allows),
//! `partial` (de-validation deferred and resumed across hypercalls), `pin` (pin/unpin),
//! `linear` (the linear page-table counter and the partial cursor).
//!
//! Orderings are named at each atomic. In short: a taker's successful CAS is Acquire (it pairs
//! with the Release that published validation, the last put or the assignment); a non-last drop
//! is Release (the holder's uses happen-before whoever drops last); the last drop of a type or
//! general reference begins with an Acquire (a fence, or the `V`-clearing CAS for tables) so
//! that de-validation reads every entry update and the clock read for the stamp is no older than
//! any other holder's last use, and ends with the Release that publishes `C == 0` / `G == 0`.
//! The stamp itself is written Relaxed just before that Release and read Relaxed just after the
//! Acquire CAS that took `C` 0 → 1 (or assigned the frame), so it travels with the state word.
//! Initial loads that only seed a CAS are Relaxed. The linear counter is a separate word updated
//! Relaxed (see `linear` for why that is sound).

mod error;
mod general;
mod linear;
mod pair;
mod partial;
mod pin;
mod state;
mod typed;
mod types;

pub use error::MmError;
pub use general::{Assigned, Released};
pub use partial::Devalidation;
pub use state::{
    ALLOCATED_BIT, FrameState, GENERAL_MASK, GENERAL_MAX, GENERAL_SHIFT, NON_COHERENT_BIT,
    OWNER_MASK, OWNER_SHIFT, PARTIAL_BIT, PINNED_BIT, TYPE_COUNT_MASK, TYPE_COUNT_MAX,
    TYPE_COUNT_ONE, TYPE_COUNT_SHIFT, TYPE_MASK, TYPE_SHIFT, VALIDATED_BIT,
};
pub use types::{Level, PageType};

use crate::flush::{FlushClock, Stamp};
use crate::mem::Mfn;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// Per-frame metadata.
#[derive(Debug)]
pub struct FrameInfo {
    /// The packed [`FrameState`] word.
    pub(crate) state: AtomicU64,
    /// Flush-clock stamp of the frame's last use; meaningful only while `C == 0` (or `G == 0`).
    /// A separate word, never a union with anything (XSA-280).
    pub(crate) stamp: AtomicU32,
    /// Linear page-table counter as an `i16` (> 0 = same-level entries this table contains,
    /// < 0 = same-level entries elsewhere that point at it) in bits 0–15, and the cursor of a
    /// partial de-validation in bits 16–31. See `linear` for why it may live outside the state
    /// word.
    pub(crate) linear: AtomicU32,
}

impl FrameInfo {
    /// A free frame (all-zero state, stamp 0, no linear entries).
    pub fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            stamp: AtomicU32::new(0),
            linear: AtomicU32::new(0),
        }
    }
}

impl Default for FrameInfo {
    fn default() -> Self {
        Self::new()
    }
}

/// The frame table: frame `n` of machine memory is `frames[n]`.
#[derive(Debug, Clone, Copy)]
pub struct FrameTable<'a> {
    frames: &'a [FrameInfo],
    clock: &'a FlushClock,
}

impl<'a> FrameTable<'a> {
    /// A table over `frames`, stamping with `clock`.
    pub fn new(frames: &'a [FrameInfo], clock: &'a FlushClock) -> Self {
        Self { frames, clock }
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// No frames at all.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The flush clock frames are stamped with.
    pub fn clock(&self) -> &'a FlushClock {
        self.clock
    }

    /// `mfn` is a frame of this table (a RAM frame; anything else is I/O or nothing).
    pub fn contains(&self, mfn: Mfn) -> bool {
        mfn.index().is_some_and(|i| i < self.frames.len())
    }

    #[inline]
    pub(crate) fn info(&self, mfn: Mfn) -> Result<&'a FrameInfo, MmError> {
        mfn.index()
            .and_then(|i| self.frames.get(i))
            .ok_or(MmError::BadMfn)
    }

    /// The frame's current state (a snapshot; Acquire, pairing with every Release transition).
    #[inline]
    pub fn state(&self, mfn: Mfn) -> Result<FrameState, MmError> {
        let info = self.info(mfn)?;
        // Acquire: a reader that acts on the snapshot (tests, audit, `pt` deciding whether a
        // reference it holds is linear) sees what the transition published.
        decode(info.state.load(Ordering::Acquire))
    }

    /// The frame's flush stamp (meaningful while its type count is 0).
    pub fn stamp(&self, mfn: Mfn) -> Result<Stamp, MmError> {
        // Relaxed: an informational snapshot; the stamp is published by the state word.
        Ok(self.info(mfn)?.stamp.load(Ordering::Relaxed))
    }

    /// The frame's linear page-table counter (> 0 contains, < 0 is targeted).
    pub fn linear_count(&self, mfn: Mfn) -> Result<i32, MmError> {
        // Relaxed: a snapshot of a counter that publishes no data (see `linear`).
        Ok(linear::counter_of(
            self.info(mfn)?.linear.load(Ordering::Relaxed),
        ))
    }
}

/// Decode a word loaded from a state atomic, failing closed.
#[inline]
pub(crate) fn decode(word: u64) -> Result<FrameState, MmError> {
    FrameState::decode(word).ok_or(MmError::CorruptState)
}

/// Drop a reference that the caller owns on a path that cannot report failure (unwinding,
/// de-validation). Failure means the counts are already wrong — a hypervisor bug that `audit`
/// reports; debug builds stop here.
pub(crate) fn owned<T>(r: Result<T, MmError>) {
    debug_assert!(
        r.is_ok(),
        "dropping an owned reference failed: {:?}",
        r.err()
    );
}

#[cfg(test)]
mod pair_tests;
#[cfg(test)]
mod tests;
