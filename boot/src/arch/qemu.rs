//! QEMU's `isa-debug-exit` device at port 0xf4: writing `v` ends QEMU with status `(v << 1) | 1`.
//!
//! The test harness passes a run only on [`ExitCode::Success`] (status 33). A triple fault under
//! `-no-reboot` ends QEMU with status 0, which the harness counts as a failure.

/// Exit codes Argon reports to the harness (the byte written; QEMU's status is `(v << 1) | 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything ran as asked: status 33.
    Success = 0x10,
    /// A hypervisor fault, panic or failed self-test: status 35.
    Failure = 0x11,
}

/// Ends the QEMU run. On real hardware (no debug-exit device) the CPU halts forever.
pub fn exit(code: ExitCode) -> ! {
    exit_raw(code as u8)
}

/// Ends the QEMU run with a raw byte (status `(v << 1) | 1`).
pub fn exit_raw(value: u8) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device under QEMU; on a machine without it, an
    // `out` to an unclaimed ISA port is ignored.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") 0xf4u16, in("al") value, options(nomem, nostack))
    };
    loop {
        // SAFETY: interrupts are disabled first, so `hlt` stops this CPU for good.
        unsafe { core::arch::asm!("cli; hlt", options(nomem, nostack)) };
    }
}
