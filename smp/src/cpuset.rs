//! A set of CPU indices (`0..MAX_CPUS`) as one bitmask: the target of a multi-CPU IPI.

use crate::MAX_CPUS;

const _: () = assert!(MAX_CPUS <= 64, "CpuSet is one u64");

/// A set of CPU indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(pub u64);

impl CpuSet {
    pub const EMPTY: Self = Self(0);

    /// CPUs `0..n` (all of them when `n >= MAX_CPUS`).
    pub const fn first(n: usize) -> Self {
        if n >= 64 {
            Self(u64::MAX)
        } else {
            Self((1u64 << n) - 1)
        }
    }

    pub const fn single(cpu: usize) -> Self {
        Self::EMPTY.with(cpu)
    }

    /// `self` plus `cpu` (unchanged when `cpu` is out of range).
    pub const fn with(self, cpu: usize) -> Self {
        if cpu < MAX_CPUS {
            Self(self.0 | 1 << cpu)
        } else {
            self
        }
    }

    pub const fn without(self, cpu: usize) -> Self {
        if cpu < MAX_CPUS {
            Self(self.0 & !(1 << cpu))
        } else {
            self
        }
    }

    pub const fn contains(self, cpu: usize) -> bool {
        cpu < MAX_CPUS && self.0 & (1 << cpu) != 0
    }

    pub const fn intersect(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            let cpu = (bits != 0).then(|| bits.trailing_zeros() as usize)?;
            bits &= bits - 1;
            Some(cpu)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let s = CpuSet::first(4).without(2).with(63).with(64);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 1, 3, 63]);
        assert_eq!(s.len(), 4);
        assert!(s.contains(63) && !s.contains(2) && !s.contains(64));
        assert_eq!(CpuSet::first(64).len(), 64);
        assert_eq!(CpuSet::first(0), CpuSet::EMPTY);
        assert!(CpuSet::EMPTY.is_empty());
        assert_eq!(s.intersect(CpuSet::single(3)), CpuSet::single(3));
    }
}
