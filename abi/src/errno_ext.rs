//! Error numbers a hypercall may return that [`crate::errno::Errno`] does not list yet
//! (`xen/include/public/errno.h`). Kept apart so that the enum's owners can fold them in.

/// `EEXIST`: `VCPUOP_initialise` of a vCPU that was initialised already.
pub const EEXIST: i64 = 17;

#[cfg(test)]
mod tests {
    #[test]
    fn values_match_xen_errno_h() {
        assert_eq!(super::EEXIST, 17);
    }
}
