//! Flush requests as values: [`FlushKind`] and the `#[must_use]` [`FlushToken`].
//!
//! Operations that can leave stale translations (page-table updates, type changes) return a
//! `FlushToken` naming the CPUs and the kind of flush they need. Tokens merge (union of CPUs,
//! coarsest kind) and are discharged by handing them to [`super::Shootdown::flush_token`]; dropping
//! one is a compiler warning (STYLE.md practice 9). Plain data: no atomics, no orderings here.

use super::cpumask::CpuMask;

/// Size of the page a single-address flush invalidates.
pub const PAGE_SIZE: u64 = 4096;

/// What a CPU must drop from its TLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushKind {
    /// The translation of the 4 KiB page holding this virtual address (INVLPG). Does not tick the
    /// flush clock.
    Va(u64),
    /// Every translation, global ones included; ticks the flush clock (spec §1.7).
    Full,
}

impl FlushKind {
    /// A single-page flush of the page holding `va` (the address is aligned down).
    pub fn va(va: u64) -> Self {
        Self::Va(va & !(PAGE_SIZE - 1))
    }

    /// The one flush that covers both: the same page stays a page flush; anything else is full.
    pub fn merge(self, other: Self) -> Self {
        match (self, other) {
            (Self::Va(a), Self::Va(b)) if a & !(PAGE_SIZE - 1) == b & !(PAGE_SIZE - 1) => {
                Self::va(a)
            }
            _ => Self::Full,
        }
    }
}

/// A flush that must still happen: the CPUs that may hold stale translations and what they must
/// drop. Discharge it with [`super::Shootdown::flush_token`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "stale translations remain until this token is handed to Shootdown::flush_token"]
pub struct FlushToken {
    targets: CpuMask,
    kind: FlushKind,
}

impl FlushToken {
    /// Nothing to flush (the identity of [`Self::merge`]).
    pub fn none() -> Self {
        Self {
            targets: CpuMask::new(),
            kind: FlushKind::Full,
        }
    }

    /// `targets` must do a `kind` flush. Take `targets` from a dirty-mask snapshot (and the
    /// filter, for type changes) *after* the change the flush protects.
    pub fn new(targets: CpuMask, kind: FlushKind) -> Self {
        let kind = match kind {
            FlushKind::Va(va) => FlushKind::va(va),
            FlushKind::Full => FlushKind::Full,
        };
        Self { targets, kind }
    }

    /// One token covering both: the union of the CPUs and the merged kind. An empty token leaves
    /// the other unchanged.
    pub fn merge(self, other: FlushToken) -> FlushToken {
        let (a, b) = (self.into_parts(), other.into_parts());
        if a.0.is_empty() {
            return Self::new(b.0, b.1);
        }
        if b.0.is_empty() {
            return Self::new(a.0, a.1);
        }
        Self {
            targets: a.0.union(b.0),
            kind: a.1.merge(b.1),
        }
    }

    /// The CPUs to flush.
    pub fn targets(&self) -> CpuMask {
        self.targets
    }

    /// What they must flush.
    pub fn kind(&self) -> FlushKind {
        self.kind
    }

    /// Is there nothing to flush?
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Take the token apart, discharging it. Only for code that performs the flush itself (the
    /// shootdown layer) or that can show none is needed (say why at the call site).
    pub fn into_parts(self) -> (CpuMask, FlushKind) {
        (self.targets, self.kind)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn kinds_merge_to_the_coarser_flush() {
        let (a, a2, b) = (
            FlushKind::va(0x1234),
            FlushKind::va(0x1fff),
            FlushKind::va(0x2000),
        );
        assert_eq!(a, FlushKind::Va(0x1000));
        assert_eq!(a.merge(a2), FlushKind::Va(0x1000));
        assert_eq!(a.merge(b), FlushKind::Full);
        assert_eq!(a.merge(FlushKind::Full), FlushKind::Full);
        assert_eq!(FlushKind::Full.merge(a), FlushKind::Full);
    }

    #[test]
    fn tokens_merge() {
        let t =
            FlushToken::none().merge(FlushToken::new(CpuMask::single(2), FlushKind::va(0x5000)));
        assert_eq!(
            t,
            FlushToken::new(CpuMask::single(2), FlushKind::Va(0x5000))
        );
        let t = t.merge(FlushToken::none());
        assert_eq!(t.kind(), FlushKind::Va(0x5000));
        let t = t.merge(FlushToken::new(CpuMask::single(3), FlushKind::va(0x5008)));
        assert_eq!(
            (t.targets(), t.kind()),
            ([2, 3].into_iter().collect(), FlushKind::Va(0x5000))
        );
        let t = t.merge(FlushToken::new(CpuMask::single(0), FlushKind::va(0x6000)));
        assert_eq!(
            t.into_parts(),
            ([0, 2, 3].into_iter().collect(), FlushKind::Full)
        );
        assert!(FlushToken::none().is_empty());
    }
}
