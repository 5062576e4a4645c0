//! `HYPERVISOR_console_io` (hypercall 18): the hypervisor's debug console
//! (`CONSOLEIO_*` in `xen/include/public/xen.h`).
//!
//! `long console_io(int cmd, unsigned count, char *buffer)`: write `count` bytes from the guest
//! buffer, or read up to `count` bytes into it (returns the number read).

/// Write `count` bytes from the guest buffer to the console.
pub const CONSOLEIO_WRITE: u32 = 0;
/// Read up to `count` bytes of console input into the guest buffer.
pub const CONSOLEIO_READ: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen_h() {
        assert_eq!([CONSOLEIO_WRITE, CONSOLEIO_READ], [0, 1]);
    }
}
