//! Per-CPU GDT and TSS with Xen's selector layout.
//!
//! The GDT is 16 pages like Xen's: entries below `FIRST_RESERVED_GDT_ENTRY` (7168, byte 0xe000)
//! are the guest's; the hypervisor's own descriptors sit in the reserved tail at Xen's
//! selectors, so a PV guest's flat selectors (0xe023, 0xe02b, 0xe033) are valid from its first
//! instruction, and `syscall`/`sysret` work with `STAR = 0xe023 << 48 | 0xe008 << 32`.
//!
//! The guest part of the GDT of the CPU running a vCPU holds a copy of that vCPU's `set_gdt`
//! frames (`pv::desc` decides what; [`set_guest_entries`] writes it). Only the CPU itself
//! writes its guest part. The hypervisor loads selectors from it only on a vCPU's behalf — its
//! DS/ES/FS/GS when switching it in (`pv::selectors`), after reading the entry ([`entry`]) and
//! checking that the load cannot fault.

use core::mem::size_of;

/// Hypervisor 64-bit code.
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data/stack.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Guest 32-bit code, ring 3 (FLAT_RING3_CS32).
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Guest data/stack, ring 3 (FLAT_RING3_DS32/SS64).
pub const FLAT_RING3_DS: u16 = 0xe02b;
/// Guest 64-bit code, ring 3 (FLAT_RING3_CS64).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// This CPU's TSS.
pub const TSS_SEL: u16 = 0xe040;

const ENTRIES: usize = 8192;
/// Entries below this one are the guest's (Xen's FIRST_RESERVED_GDT_ENTRY).
pub const GUEST_ENTRIES: usize = abi::selectors::FIRST_RESERVED_GDT_ENTRY;
const _: () = assert!(HYPERVISOR_CS as usize >> 3 >= GUEST_ENTRIES);

/// Stack-table slots used by exceptions that must not trust the current stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

/// The 64-bit TSS: ring-0 stack and the interrupt stack table.
#[repr(C, packed(4))]
#[derive(Debug, Clone, Copy)]
pub struct Tss {
    _reserved0: u32,
    /// Stack loaded on a ring 3 → ring 0 transition.
    pub rsp0: u64,
    _rsp12: [u64; 2],
    _reserved1: u64,
    /// IST1..IST7 (index 0 is IST1).
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    /// Offset of the I/O bitmap: past the end, so every port access from ring 3 faults.
    pub iomap_base: u16,
}

const _: () = assert!(size_of::<Tss>() == 104);

impl Tss {
    /// A TSS with no stacks set.
    pub const fn new() -> Self {
        Self {
            _reserved0: 0,
            rsp0: 0,
            _rsp12: [0; 2],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: size_of::<Tss>() as u16,
        }
    }
}

impl Default for Tss {
    fn default() -> Self {
        Self::new()
    }
}

/// A whole GDT, page aligned.
#[repr(C, align(4096))]
pub struct Gdt {
    entries: [u64; ENTRIES],
}

impl Gdt {
    /// An empty GDT.
    pub const fn new() -> Self {
        Self {
            entries: [0; ENTRIES],
        }
    }

    /// Fills the hypervisor's reserved descriptors, with `tss` as this CPU's TSS.
    pub fn init(&mut self, tss: &'static Tss) {
        let set = |gdt: &mut Self, sel: u16, desc: u64| gdt.entries[usize::from(sel >> 3)] = desc;
        set(self, HYPERVISOR_CS, 0x00af_9b00_0000_ffff);
        set(self, HYPERVISOR_DS, 0x00cf_9300_0000_ffff);
        set(self, FLAT_RING3_CS32, 0x00cf_fb00_0000_ffff);
        set(self, FLAT_RING3_DS, 0x00cf_f300_0000_ffff);
        set(self, FLAT_RING3_CS64, 0x00af_fb00_0000_ffff);
        let base = tss as *const Tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let low = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        set(self, TSS_SEL, low);
        set(self, TSS_SEL + 8, base >> 32);
    }

    /// Loads this GDT, reloads every segment register and loads the TSS.
    ///
    /// # Safety
    ///
    /// `self` must have been set up by [`Gdt::init`] and must live (and not move) for as long as
    /// the CPU uses it; its TSS descriptor must not be marked busy by another CPU.
    pub unsafe fn load(&'static self) {
        let ptr = DescriptorPointer {
            limit: (size_of::<Self>() - 1) as u16,
            base: self as *const Self as u64,
        };
        // SAFETY: the caller guarantees the table is complete and lives forever. The far return
        // reloads CS with the hypervisor code selector; the data selectors are valid in it.
        unsafe {
            core::arch::asm!(
                "lgdt [{ptr}]",
                "push {cs}",
                "lea {tmp}, [rip + 2f]",
                "push {tmp}",
                "retfq",
                "2:",
                "mov ds, {ds:x}",
                "mov es, {ds:x}",
                "mov ss, {ds:x}",
                "xor {tmp:e}, {tmp:e}",
                "mov fs, {tmp:x}",
                "mov gs, {tmp:x}",
                "ltr {tss:x}",
                ptr = in(reg) &ptr,
                cs = in(reg) u64::from(HYPERVISOR_CS),
                ds = in(reg) u64::from(HYPERVISOR_DS),
                tss = in(reg) u64::from(TSS_SEL),
                tmp = out(reg) _,
            );
        }
    }
}

impl Default for Gdt {
    fn default() -> Self {
        Self::new()
    }
}

/// The operand of `lgdt` / `lidt`.
#[repr(C, packed)]
pub struct DescriptorPointer {
    pub limit: u16,
    pub base: u64,
}

/// Writes `descs` into the guest part of this CPU's GDT from entry `first` on; whatever would
/// reach the reserved part (entry [`GUEST_ENTRIES`] and up) is left out. Call on the CPU whose
/// GDT it is, with interrupts off or at least never from an interrupt handler.
pub fn set_guest_entries(first: usize, descs: &[u64]) {
    let Some(table) = loaded_table() else {
        // Not one of our GDTs (`Gdt::load` has not run on this CPU): nothing to write into.
        return;
    };
    for (i, &desc) in descs.iter().enumerate() {
        let Some(at) = first.checked_add(i).filter(|&at| at < GUEST_ENTRIES) else {
            break;
        };
        // SAFETY: the loaded GDT is this CPU's own `Gdt` (its size checked above), installed by
        // `Gdt::load` and living forever in its static; `at` is below GUEST_ENTRIES, inside it and
        // outside the hypervisor's descriptors (asserted above), so no selector the hypervisor
        // uses changes. Only this CPU writes its guest part and no Rust reference to the entries
        // is live after `init`; the CPU reads entries only when a selector is loaded, so a
        // volatile 8-byte store is all it can observe.
        unsafe { core::ptr::write_volatile(table.wrapping_add(at), desc) };
    }
}

/// The GDT this CPU has loaded, if it is one of ours (a whole [`Gdt`]).
fn loaded_table() -> Option<*mut u64> {
    let mut ptr = DescriptorPointer { limit: 0, base: 0 };
    // SAFETY: `sgdt` stores 10 bytes into `ptr`, a live DescriptorPointer of exactly that size.
    unsafe { core::arch::asm!("sgdt [{}]", in(reg) &raw mut ptr, options(nostack)) };
    let (limit, base) = (ptr.limit, ptr.base);
    (usize::from(limit) == size_of::<Gdt>() - 1 && base != 0).then_some(base as *mut u64)
}

/// Entry `index` of this CPU's GDT (what a selector with that index loads), or `None` past the
/// table or before `Gdt::load` ran here. Call on the CPU itself, like [`set_guest_entries`].
pub fn entry(index: usize) -> Option<u64> {
    let table = loaded_table().filter(|_| index < ENTRIES)?;
    // SAFETY: the loaded GDT is this CPU's own `Gdt` (its size checked by `loaded_table`),
    // living forever in its static; `index` is inside it. Only this CPU writes it (its guest
    // part, with volatile stores; the processor sets accessed bits), so a volatile 8-byte load
    // reads a whole descriptor.
    Some(unsafe { core::ptr::read_volatile(table.wrapping_add(index)) })
}
