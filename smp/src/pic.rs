//! The legacy 8259 interrupt controllers, which Argon does not use: [`disable`] moves their
//! vectors out of the exception range and masks every line. Bare-metal only; runs once on the
//! BSP, before interrupts are first enabled.
//!
//! Firmware may leave the pair programmed as at reset of a PC BIOS — master at vector 8, slave at
//! 0x70 — with the PIT's IRQ 0 unmasked (SeaBIOS does; qboot does not). Argon routes everything
//! through the local APICs, but an unmasked PIC line still reaches the CPU through LINT0 in
//! ExtINT mode: the PIT tick then arrives as vector 8 and looks like a double fault. Remapping
//! first (master 0x20–0x27, slave 0x28–0x2F) means that even a spurious IRQ 7/15, which a masked
//! PIC may still raise, lands on a vector that is not an exception.

use crate::x86::outb;

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xA0;
const SLAVE_DATA: u16 = 0xA1;
/// Vector base of the master after [`disable`]; the slave follows at +8.
pub const VECTOR_BASE: u8 = 0x20;

/// Remaps both PICs to [`VECTOR_BASE`] and masks all their lines.
///
/// # Safety
///
/// Must run on the BSP with interrupts off, before anything else programs the PICs; the ports
/// 0x20/0x21/0xA0/0xA1 must be the PC's 8259 pair (or absent, when writes are ignored).
pub unsafe fn disable() {
    let steps: [(u16, u8); 10] = [
        (MASTER_CMD, 0x11), // ICW1: edge triggered, cascade, ICW4 follows
        (SLAVE_CMD, 0x11),
        (MASTER_DATA, VECTOR_BASE), // ICW2: vector base
        (SLAVE_DATA, VECTOR_BASE + 8),
        (MASTER_DATA, 0x04), // ICW3: slave on line 2
        (SLAVE_DATA, 0x02),  // ICW3: cascade identity 2
        (MASTER_DATA, 0x01), // ICW4: 8086 mode
        (SLAVE_DATA, 0x01),
        (MASTER_DATA, 0xFF), // OCW1: mask every line
        (SLAVE_DATA, 0xFF),
    ];
    for (port, value) in steps {
        // SAFETY: the caller guarantees these are the 8259 ports and that nobody else is
        // programming them; the sequence is the standard initialisation.
        unsafe { outb(port, value) };
    }
}
