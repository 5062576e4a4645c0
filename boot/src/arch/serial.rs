//! COM1 (16550 UART at port 0x3f8): the early and only console.
//!
//! Polling, 115200 8N1. The writer has no lock of its own; `src/console.rs` serialises callers.

use core::fmt;

const COM1: u16 = 0x3f8;

fn outb(port: u16, value: u8) {
    // SAFETY: COM1's registers are I/O ports owned by the console; writing them has no effect on
    // memory.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack))
    };
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: reading a COM1 register has no side effect on memory.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack))
    };
    value
}

/// The COM1 port. Zero-sized: any number of handles write to the same device.
#[derive(Debug, Clone, Copy)]
pub struct Com1;

impl Com1 {
    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init() -> Self {
        outb(COM1 + 1, 0x00); // no interrupts
        outb(COM1 + 3, 0x80); // DLAB on
        outb(COM1, 0x01); // divisor 1: 115200 baud
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03); // 8N1, DLAB off
        outb(COM1 + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
        outb(COM1 + 4, 0x03); // DTR, RTS
        Com1
    }

    /// Writes one byte, waiting for the transmitter to have room.
    pub fn write_byte(self, byte: u8) {
        let mut spins = 0u32;
        // Bounded wait: a missing UART must not hang the hypervisor.
        while inb(COM1 + 5) & 0x20 == 0 && spins < 100_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        outb(COM1, byte);
    }
}

impl fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}
