//! The IDT: the 32 exception vectors, each through an assembly stub in `entry.S` that saves the
//! registers into a [`TrapFrame`](super::trap::TrapFrame) and calls `trap_dispatch`.

use super::gdt::{self, DescriptorPointer, HYPERVISOR_CS};

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    flags: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        flags: 0,
        offset_mid: 0,
        offset_high: 0,
        _reserved: 0,
    };

    fn interrupt(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: HYPERVISOR_CS,
            ist,
            flags: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            _reserved: 0,
        }
    }
}

/// The interrupt descriptor table, shared by every CPU.
#[repr(C, align(16))]
pub struct Idt {
    gates: [Gate; 256],
}

unsafe extern "C" {
    /// 32 entry stubs, 16 bytes apart, starting at vector 0 (see `entry.S`).
    static trap_stubs: u8;
}

/// Size of one stub in `entry.S`.
const STUB_SIZE: u64 = 16;

impl Idt {
    /// An IDT with no gates.
    pub const fn new() -> Self {
        Self {
            gates: [Gate::MISSING; 256],
        }
    }

    /// Installs the exception stubs, with IST stacks for #NMI, #DF and #MC.
    pub fn init(&mut self) {
        let base = (&raw const trap_stubs) as u64;
        for vector in 0..32u8 {
            let ist = match vector {
                2 => gdt::IST_NMI,
                8 => gdt::IST_DOUBLE_FAULT,
                18 => gdt::IST_MACHINE_CHECK,
                _ => 0,
            };
            self.gates[usize::from(vector)] =
                Gate::interrupt(base + u64::from(vector) * STUB_SIZE, ist);
        }
    }

    /// Points `vector` (32..=255) at an interrupt entry stub `handler` (a ring-0 interrupt gate).
    pub fn set_interrupt(&mut self, vector: u8, handler: u64) {
        self.gates[usize::from(vector)] = Gate::interrupt(handler, 0);
    }

    /// Loads this IDT on the current CPU.
    ///
    /// # Safety
    ///
    /// `self` must be initialised and live forever; the GDT with the hypervisor code selector and
    /// the TSS with the IST stacks must already be loaded.
    pub unsafe fn load(&'static self) {
        let ptr = DescriptorPointer {
            limit: (core::mem::size_of::<Self>() - 1) as u16,
            base: self as *const Self as u64,
        };
        // SAFETY: the caller guarantees the table and its handlers are valid and permanent.
        unsafe { core::arch::asm!("lidt [{}]", in(reg) &ptr, options(nostack)) };
    }
}

impl Default for Idt {
    fn default() -> Self {
        Self::new()
    }
}
