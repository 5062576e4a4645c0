//! [`HcError`]: the typed error of the MMU hypercalls, and the one place it becomes an
//! [`Errno`] ([`HcError::errno`]; the dispatcher negates it with `Errno::ret`).
//!
//! Frame-table and entry-update refusals stay [`MmError`]s inside [`HcError::Mm`] so tests and
//! logs see which rule fired; their errno is `MmError::errno`'s. Hypercall-level refusals get
//! their own variants. Internal numbers (`EINTR`, `ERESTART`, `EILSEQ`) are never produced:
//! a restart is a [`super::Continuation`], not an error.

use abi::errno::Errno;

use crate::frame::MmError;

/// Why an MMU hypercall (or one element of a batch) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HcError {
    /// A frame-table or page-table rule (errno from [`MmError::errno`]).
    Mm(MmError),
    /// A guest address that is not a guest address, or a guest access that faulted (`EFAULT`).
    Fault,
    /// No such domain, or a domain that may not be named here (`ESRCH`).
    NoSuchDomain,
    /// The caller may not act on that domain (XSM), or the command is only for the caller's
    /// own domain (`EPERM`).
    NotPermitted,
    /// An argument the command does not accept (`EINVAL`).
    Invalid(Invalid),
    /// Cache flush without I/O capabilities (`EACCES`).
    NoCacheControl,
    /// A removed command: MARK_SUPER / UNMARK_SUPER (`EOPNOTSUPP`).
    NotSupported,
    /// An unknown command (`ENOSYS`).
    UnknownCommand,
}

/// The `EINVAL` cases that are the hypercall layer's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The page-table owner named by `foreigndom` has no vCPU 0.
    NoVcpu0,
    /// The machine address is outside machine memory.
    BadFrame,
    /// An L2–L4 entry update whose FD differs from the page-table owner (XSA-109).
    ForeignUpperEntry,
    /// The frame is neither a validated page table nor typeable as writable data (a GDT/LDT
    /// frame, a table being validated, ...).
    NotUpdatable,
    /// The vCPU bitmap of a MULTI flush could not be read.
    VcpuMask,
    /// SET_LDT with more than 8192 entries.
    LdtTooLarge,
    /// SET_LDT with a base that is not page aligned.
    LdtMisaligned,
    /// SET_LDT with a base outside guest addresses.
    LdtAddress,
    /// update_va_mapping: `va` is not a guest address, no kernel base is set, or the walk found
    /// a missing entry or a superpage above the L1.
    NoL1Entry,
}

impl HcError {
    /// The Xen errno this error is reported as (positive; negate with `Errno::ret`).
    pub fn errno(self) -> Errno {
        match self {
            // Every MmError maps to one of EPERM / EACCES / EBUSY / EINVAL; fail closed to EINVAL.
            HcError::Mm(e) => Errno::from_value(e.errno()).unwrap_or(Errno::EINVAL),
            HcError::Fault => Errno::EFAULT,
            HcError::NoSuchDomain => Errno::ESRCH,
            HcError::NotPermitted => Errno::EPERM,
            HcError::Invalid(_) => Errno::EINVAL,
            HcError::NoCacheControl => Errno::EACCES,
            HcError::NotSupported => Errno::EOPNOTSUPP,
            HcError::UnknownCommand => Errno::ENOSYS,
        }
    }
}

impl From<MmError> for HcError {
    fn from(e: MmError) -> Self {
        HcError::Mm(e)
    }
}

impl From<Invalid> for HcError {
    fn from(e: Invalid) -> Self {
        HcError::Invalid(e)
    }
}

impl core::fmt::Display for HcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{self:?} ({})", self.errno())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos() {
        assert_eq!(HcError::Mm(MmError::WritableBusy).errno(), Errno::EBUSY);
        assert_eq!(HcError::Mm(MmError::MmioDenied).errno(), Errno::EPERM);
        assert_eq!(
            HcError::Mm(MmError::SpecialPageCacheAttr).errno(),
            Errno::EACCES
        );
        assert_eq!(HcError::Mm(MmError::WrongOwner).errno(), Errno::EINVAL);
        assert_eq!(HcError::Fault.errno(), Errno::EFAULT);
        assert_eq!(HcError::NoSuchDomain.errno(), Errno::ESRCH);
        assert_eq!(HcError::NotPermitted.errno(), Errno::EPERM);
        assert_eq!(HcError::Invalid(Invalid::VcpuMask).errno(), Errno::EINVAL);
        assert_eq!(HcError::NoCacheControl.errno(), Errno::EACCES);
        assert_eq!(HcError::NotSupported.errno(), Errno::EOPNOTSUPP);
        assert_eq!(HcError::UnknownCommand.errno().ret(), -38);
    }
}
