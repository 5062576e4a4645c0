//! Xen's public error numbers (`xen/include/public/errno.h`), as hypercalls return them.
//!
//! A hypercall returns `0` (or a positive count) on success and the *negated* error number on
//! failure, so `-EINVAL` is `-22` in `rax`. [`Errno::ret`] gives that negated value and
//! [`Errno::from_ret`] maps it back. Only the numbers the PV MMU contract uses are listed; three of
//! them ([`Errno::EINTR`], [`Errno::EILSEQ`], [`Errno::ERESTART`]) are internal to the hypervisor
//! and must never reach a guest (see [`Errno::is_internal`]).

use core::fmt;

/// An error number from Xen's public `errno.h` (the positive value).
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Errno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such entry.
    ENOENT = 2,
    /// No such domain (Xen reuses "no such process").
    ESRCH = 3,
    /// Interrupted; internal, turned into a continuation before it reaches a guest.
    EINTR = 4,
    /// Out of memory.
    ENOMEM = 12,
    /// Permission denied.
    EACCES = 13,
    /// Bad guest address.
    EFAULT = 14,
    /// Resource busy.
    EBUSY = 16,
    EEXIST = 17,
    /// Invalid argument.
    EINVAL = 22,
    /// Result out of range.
    ERANGE = 34,
    /// Unknown hypercall or sub-operation.
    ENOSYS = 38,
    /// Internal: validation met an illegal byte sequence.
    EILSEQ = 84,
    /// Internal: the operation must be restarted (a hypercall continuation).
    ERESTART = 85,
    /// Operation not supported.
    EOPNOTSUPP = 95,
}

impl Errno {
    /// Every error number in this enum, in ascending order.
    pub const ALL: [Errno; 15] = [
        Errno::EPERM,
        Errno::ENOENT,
        Errno::ESRCH,
        Errno::EINTR,
        Errno::ENOMEM,
        Errno::EACCES,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EINVAL,
        Errno::ERANGE,
        Errno::ENOSYS,
        Errno::EILSEQ,
        Errno::ERESTART,
        Errno::EOPNOTSUPP,
    ];

    /// The positive error number, e.g. 22 for `EINVAL`.
    pub const fn value(self) -> i64 {
        self as i64
    }

    /// The value a failing hypercall leaves in `rax`: the negated error number.
    pub const fn ret(self) -> i64 {
        -(self as i64)
    }

    /// The error number `value` (positive), if it is one of [`Errno::ALL`].
    pub const fn from_value(value: i64) -> Option<Errno> {
        Some(match value {
            1 => Errno::EPERM,
            2 => Errno::ENOENT,
            3 => Errno::ESRCH,
            4 => Errno::EINTR,
            12 => Errno::ENOMEM,
            13 => Errno::EACCES,
            14 => Errno::EFAULT,
            16 => Errno::EBUSY,
            17 => Errno::EEXIST,
            22 => Errno::EINVAL,
            34 => Errno::ERANGE,
            38 => Errno::ENOSYS,
            84 => Errno::EILSEQ,
            85 => Errno::ERESTART,
            95 => Errno::EOPNOTSUPP,
            _ => return None,
        })
    }

    /// The error a hypercall return value reports: `Some` for a negated known error number,
    /// `None` for success values (≥ 0) and for negative values this enum does not know.
    pub const fn from_ret(ret: i64) -> Option<Errno> {
        match ret.checked_neg() {
            Some(value) if value > 0 => Errno::from_value(value),
            _ => None,
        }
    }

    /// True for the numbers that are hypervisor-internal and must not be returned to a guest.
    pub const fn is_internal(self) -> bool {
        matches!(self, Errno::EINTR | Errno::EILSEQ | Errno::ERESTART)
    }

    /// The C name, e.g. `"EINVAL"`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::EINTR => "EINTR",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::ERANGE => "ERANGE",
            Errno::ENOSYS => "ENOSYS",
            Errno::EILSEQ => "EILSEQ",
            Errno::ERESTART => "ERESTART",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_xen_errno_h() {
        let expected: [(Errno, i64); 15] = [
            (Errno::EPERM, 1),
            (Errno::ENOENT, 2),
            (Errno::ESRCH, 3),
            (Errno::EINTR, 4),
            (Errno::ENOMEM, 12),
            (Errno::EACCES, 13),
            (Errno::EFAULT, 14),
            (Errno::EBUSY, 16),
            (Errno::EEXIST, 17),
            (Errno::EINVAL, 22),
            (Errno::ERANGE, 34),
            (Errno::ENOSYS, 38),
            (Errno::EILSEQ, 84),
            (Errno::ERESTART, 85),
            (Errno::EOPNOTSUPP, 95),
        ];
        for (e, v) in expected {
            assert_eq!(e.value(), v, "{e}");
            assert_eq!(e.ret(), -v, "{e}");
        }
    }

    #[test]
    fn round_trip_through_ret_and_value() {
        for e in Errno::ALL {
            assert_eq!(Errno::from_ret(e.ret()), Some(e));
            assert_eq!(Errno::from_value(e.value()), Some(e));
        }
    }

    #[test]
    fn only_known_negative_values_decode() {
        let known = |v: i64| Errno::ALL.iter().any(|e| e.value() == v);
        for v in -200..=200i64 {
            let decoded = Errno::from_ret(v);
            if v < 0 && known(-v) {
                assert_eq!(decoded.map(Errno::ret), Some(v));
            } else {
                assert_eq!(decoded, None, "ret {v}");
            }
        }
        assert_eq!(Errno::from_ret(i64::MIN), None);
        assert_eq!(Errno::from_ret(i64::MAX), None);
    }

    #[test]
    fn internal_numbers_are_flagged() {
        let internal: [Errno; 3] = [Errno::EINTR, Errno::EILSEQ, Errno::ERESTART];
        for e in Errno::ALL {
            assert_eq!(e.is_internal(), internal.contains(&e), "{e}");
        }
    }
}
