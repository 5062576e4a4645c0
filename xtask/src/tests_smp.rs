//! QEMU test cases for SMP bring-up, IPIs and time (the `smp/` crate and `src/cpu/`).

use super::tests::Case;

/// The SMP matrix. Empty until SMP bring-up lands.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
