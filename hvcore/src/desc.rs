//! Segment descriptors a 64-bit PV guest hands the hypervisor: the check each must pass and the
//! form in which it is stored ([`check`]), and the validation of a whole descriptor frame
//! ([`validate_frame`]), run when a frame is first typed `SegDesc` (a GDT frame of `set_gdt`),
//! and whether a data-segment selector would load at the guest's privilege
//! ([`data_selector_loads`]: the hypervisor reloads a vCPU's DS/ES/FS/GS when it switches it in).
//!
//! The rules are Xen 4.17's `check_descriptor` (`xen/arch/x86/pv/descriptor-tables.c`, spec
//! §2.10) for a 64-bit PV domain, whose kernel runs at RPL 3:
//!
//! | descriptor | verdict | stored as |
//! |---|---|---|
//! | not present (P clear) | accepted | unchanged: it faults whenever it is used |
//! | code or data (S set) | accepted, no base/limit checks | DPL raised to 3 |
//! | system type 0 (upper half of a 16-byte gate) | accepted | unchanged (DPL too) |
//! | call gate (type 0xC) whose target selector is a guest GDT entry (index < 7168), the flat kernel code selector 0xE033, or an LDT selector, with bits 7..0 of the high word zero | accepted | DPL 0, and the selector's RPL holds the raised DPL (3), so every use traps to the hypervisor |
//! | any other system descriptor (TSS, LDT, interrupt/trap/task gates, reserved types) | refused | — |
//!
//! So nothing a guest stores can give ring 0 to its code, and no gate leads into the
//! hypervisor's reserved selectors. Like Xen, validation writes the accepted form back into the
//! frame, descriptor by descriptor, stopping at the first refused one.
//!
//! Pure functions over a `u64` and [`PhysMem`]; no atomics of its own (`PhysMem` entry accesses
//! are Acquire/Release, see `mem`).

use abi::selectors::{FIRST_RESERVED_GDT_ENTRY, FLAT_KERNEL_CS};

use crate::frame::MmError;
use crate::mem::{Mfn, PhysMem};

/// High word: present.
const P: u32 = 1 << 15;
/// High word: code/data (else system).
const S: u32 = 1 << 12;
/// High word: descriptor privilege level.
const DPL_SHIFT: u32 = 13;
const DPL_MASK: u32 = 3 << DPL_SHIFT;
/// High word: the type field.
const TYPE_MASK: u32 = 0xF << 8;
/// System type 0xC: a (64-bit) call gate.
const TYPE_CALL_GATE: u32 = 0xC << 8;
/// High word bits a 64-bit call gate must leave zero.
const GATE_RESERVED: u32 = 0xFF;
/// The RPL of a 64-bit PV guest kernel (Xen's `GUEST_KERNEL_RPL`).
const GUEST_KERNEL_RPL: u32 = 3;

/// May a call gate target `sel`? A guest GDT entry, the flat kernel code selector, or an LDT
/// selector (Xen's `guest_gate_selector_okay`).
fn gate_selector_ok(sel: u16) -> bool {
    usize::from(sel >> 3) < FIRST_RESERVED_GDT_ENTRY || sel == FLAT_KERNEL_CS || sel & 4 != 0
}

/// The descriptor `desc` as the hypervisor stores it, or `None` if a 64-bit PV guest may not
/// have it (the module head's table).
pub fn check(desc: u64) -> Option<u64> {
    let mut a = desc as u32;
    let mut b = (desc >> 32) as u32;
    if b & P == 0 {
        return Some(desc);
    }
    // Xen's `__fixup_guest_selector` on the DPL: below the kernel RPL it becomes the kernel RPL.
    let dpl = ((b & DPL_MASK) >> DPL_SHIFT).max(GUEST_KERNEL_RPL);
    b = (b & !DPL_MASK) | (dpl << DPL_SHIFT);
    if b & S != 0 {
        return Some(join(a, b));
    }
    match b & TYPE_MASK {
        0 => return Some(desc),
        TYPE_CALL_GATE => {}
        _ => return None,
    }
    let cs = a >> 16;
    if !gate_selector_ok(cs as u16) {
        return None;
    }
    b &= !DPL_MASK;
    a = (a & 0xFFFF) | (((cs & !3) | dpl) << 16);
    if b & GATE_RESERVED != 0 {
        return None;
    }
    Some(join(a, b))
}

/// Selector bit: the selector names an LDT entry.
const SEL_TI: u16 = 1 << 2;
/// Type bits of a code/data descriptor (high word): code, conforming (code), readable (code).
const TYPE_CODE: u32 = 1 << 11;
const TYPE_CONFORMING: u32 = 1 << 10;
const TYPE_READABLE: u32 = 1 << 9;

/// Would `mov sel, %ds` (or %es, %fs, %gs) succeed in a 64-bit PV guest, which runs at CPL 3,
/// when `desc` is the GDT descriptor `sel` names? The processor's rules for a data-segment
/// load: a null selector (index 0 of the GDT, any RPL) always loads; otherwise the descriptor
/// must be present, a code or data segment (a readable one if code), and — unless it is
/// conforming code — have DPL ≥ max(CPL, RPL) = 3. An LDT selector never loads: the
/// hypervisor loads no guest LDT (`desc` is ignored for it).
///
/// A selector that passes also loads at CPL 0 (whose rules are weaker) without faulting, which
/// is what lets the hypervisor reload a vCPU's selectors on its behalf.
pub fn data_selector_loads(sel: u16, desc: u64) -> bool {
    if sel & SEL_TI != 0 {
        return false;
    }
    if sel >> 3 == 0 {
        return true;
    }
    let b = (desc >> 32) as u32;
    if b & P == 0 || b & S == 0 {
        return false;
    }
    let ty = b & TYPE_MASK;
    if ty & TYPE_CODE != 0 && ty & TYPE_READABLE == 0 {
        return false;
    }
    let conforming = ty & TYPE_CODE != 0 && ty & TYPE_CONFORMING != 0;
    conforming || (b & DPL_MASK) >> DPL_SHIFT == GUEST_KERNEL_RPL
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(high) << 32 | u64::from(low)
}

/// Checks every descriptor of frame `mfn`, storing each accepted one in its accepted form, and
/// stops at the first refused one (`BadDescriptor`; the descriptors before it stay rewritten,
/// as in Xen's `validate_segdesc_page`). The caller holds the frame's only type reference, with
/// `V` clear, so nobody else writes it meanwhile.
pub fn validate_frame<M: PhysMem + ?Sized>(mem: &M, mfn: Mfn) -> Result<(), MmError> {
    if mfn.index().is_none_or(|i| i >= mem.frames()) {
        return Err(MmError::BadMfn);
    }
    for i in 0..mem.entries_per_frame() {
        let desc = mem.read_entry(mfn, i);
        let stored = check(desc).ok_or(MmError::BadDescriptor)?;
        if stored != desc {
            mem.write_entry(mfn, i, stored);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HostMem;

    /// Flat 64-bit code, DPL 0 / 3.
    const CODE64_DPL0: u64 = 0x00AF_9B00_0000_FFFF;
    const CODE64_DPL3: u64 = 0x00AF_FB00_0000_FFFF;
    /// Flat data, DPL 0 / 1 / 3.
    const DATA_DPL0: u64 = 0x00CF_9300_0000_FFFF;
    const DATA_DPL1: u64 = 0x00CF_B300_0000_FFFF;
    const DATA_DPL3: u64 = 0x00CF_F300_0000_FFFF;

    /// A 64-bit call gate's low half: `offset` (low 16 and middle 16 bits), `sel`, high-word
    /// flags `flags` (type, DPL, P, reserved byte).
    fn gate(sel: u16, flags: u32) -> u64 {
        join(0x1000 | u32::from(sel) << 16, 0x0040_0000 | flags)
    }

    #[test]
    fn not_present_is_kept_as_is() {
        for d in [0, DATA_DPL0 & !(1 << 47), 0xFFFF_7FFF_FFFF_FFFF] {
            assert_eq!(check(d), Some(d), "{d:#x}");
        }
    }

    #[test]
    fn code_and_data_get_dpl_3() {
        assert_eq!(check(CODE64_DPL0), Some(CODE64_DPL3));
        assert_eq!(check(CODE64_DPL3), Some(CODE64_DPL3));
        assert_eq!(check(DATA_DPL0), Some(DATA_DPL3));
        assert_eq!(check(DATA_DPL1), Some(DATA_DPL3));
        // No base or limit checks, whatever the other bits say.
        let odd = 0xFF5F_9AFF_FFFF_FFFF;
        assert_eq!(check(odd), Some(odd | 3 << 45));
    }

    #[test]
    fn system_type_0_is_kept_with_its_dpl() {
        let d = join(0x1234_5678, P);
        assert_eq!(check(d), Some(d));
    }

    #[test]
    fn other_system_descriptors_are_refused() {
        for ty in [1u32, 2, 3, 4, 5, 6, 7, 8, 9, 0xA, 0xB, 0xD, 0xE, 0xF] {
            for dpl in 0..4 {
                let d = join(0, P | ty << 8 | dpl << DPL_SHIFT);
                assert_eq!(check(d), None, "type {ty:#x} dpl {dpl}");
            }
        }
        // A present 64-bit TSS (type 9) and interrupt gate (type 0xE) as kernels build them.
        assert_eq!(check(0x0000_8900_0000_0067), None);
        assert_eq!(check(0x0000_EE00_E033_1000), None);
    }

    #[test]
    fn call_gates_to_guest_selectors() {
        let dpl3 = TYPE_CALL_GATE | P | 3 << DPL_SHIFT;
        // The flat kernel code selector: DPL 0, RPL 3 in the selector.
        let stored = check(gate(FLAT_KERNEL_CS, dpl3)).map(|d| (d >> 16) as u16);
        assert_eq!(stored, Some(FLAT_KERNEL_CS));
        assert_eq!(
            check(gate(FLAT_KERNEL_CS, dpl3)).map(|d| (d >> 32) as u32 & DPL_MASK),
            Some(0)
        );
        // A guest GDT selector with RPL 0 and a DPL-0 gate: RPL becomes the raised DPL.
        let d = check(gate(0x0010, TYPE_CALL_GATE | P)).expect("accepted");
        assert_eq!((d >> 16) as u16, 0x0013);
        assert_eq!(d >> 32, u64::from(0x0040_0000 | TYPE_CALL_GATE | P));
        // The last guest entry, and an LDT selector in the reserved range.
        assert!(check(gate(0xDFF8, dpl3)).is_some());
        assert!(check(gate(0xE00C, dpl3)).is_some());
    }

    #[test]
    fn call_gates_refused() {
        let dpl3 = TYPE_CALL_GATE | P | 3 << DPL_SHIFT;
        // Hypervisor selectors (GDT index >= 7168, not the flat kernel CS, not LDT).
        for sel in [0xE008u16, 0xE010, 0xE023, 0xE030, 0xE040, 0xFFF8] {
            assert_eq!(check(gate(sel, dpl3)), None, "{sel:#x}");
        }
        // Reserved bits of the high word.
        for bit in 0..8 {
            assert_eq!(
                check(gate(FLAT_KERNEL_CS, dpl3 | 1 << bit)),
                None,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn validate_rewrites_in_place_and_stops_at_the_first_bad_one() {
        let mem = HostMem::new(2);
        let f = Mfn(1);
        mem.write_entry(f, 0, 0);
        mem.write_entry(f, 1, CODE64_DPL0);
        mem.write_entry(f, 2, DATA_DPL3);
        assert_eq!(validate_frame(&mem, f), Ok(()));
        assert_eq!(mem.read_entry(f, 1), CODE64_DPL3);
        assert_eq!(mem.read_entry(f, 2), DATA_DPL3);
        mem.write_entry(f, 1, DATA_DPL0);
        mem.write_entry(f, 3, 0x0000_8900_0000_0067);
        mem.write_entry(f, 4, CODE64_DPL0);
        assert_eq!(validate_frame(&mem, f), Err(MmError::BadDescriptor));
        assert_eq!(
            mem.read_entry(f, 1),
            DATA_DPL3,
            "rewritten before the bad one"
        );
        assert_eq!(mem.read_entry(f, 4), CODE64_DPL0, "untouched after it");
        assert_eq!(validate_frame(&mem, Mfn(2)), Err(MmError::BadMfn));
    }

    #[test]
    fn data_selectors_that_load_at_cpl3() {
        // Null selectors, whatever the RPL and the (ignored) descriptor.
        for sel in [0u16, 1, 2, 3] {
            assert!(data_selector_loads(sel, 0), "{sel:#x}");
        }
        // DPL-3 data and readable code (the flat ring-3 selectors' descriptors), any RPL.
        for sel in [0x08u16, 0x0B, 0xE02B, 0xE033] {
            assert!(data_selector_loads(sel, DATA_DPL3), "{sel:#x} data");
            assert!(data_selector_loads(sel, CODE64_DPL3), "{sel:#x} code");
        }
        // Conforming readable code loads whatever its DPL.
        assert!(data_selector_loads(0x10, CODE64_DPL0 | 1 << 42));
    }

    #[test]
    fn data_selectors_that_fault_at_cpl3() {
        let cases = [
            (0x0Bu16, 0u64, "empty entry"),
            (0x0B, DATA_DPL3 & !(1 << 47), "not present"),
            (0xE013, DATA_DPL0, "DPL-0 data (the hypervisor's 0xe010)"),
            (0xE00B, CODE64_DPL0, "DPL-0 code (the hypervisor's 0xe008)"),
            (0x0B, DATA_DPL1, "DPL-1 data"),
            (0x0B, CODE64_DPL3 & !(1 << 41), "execute-only code"),
            (0xE043, 0x0000_E900_0000_0067, "a TSS, even at DPL 3"),
            (
                0x0B,
                join(0, P | TYPE_CALL_GATE | 3 << DPL_SHIFT),
                "a call gate",
            ),
            (0x0F, DATA_DPL3, "an LDT selector"),
            (0x04, 0, "the LDT's null selector"),
        ];
        for (sel, desc, what) in cases {
            assert!(!data_selector_loads(sel, desc), "{what}");
        }
    }

    /// The frame table validates a frame when it first becomes `SegDesc` (set_gdt's typing): a
    /// refused descriptor leaves it untyped, an accepted frame is rewritten and usable at once.
    #[test]
    fn seg_desc_typing_validates() {
        use crate::frame::PageType;
        use crate::testkit::{Kit, TestDomain};
        let dom = TestDomain::new(1);
        let kit = Kit::with_domain(2, 1);
        let t = kit.table();
        kit.write(1, 7, 0x0000_8900_0000_0067);
        kit.write(1, 8, DATA_DPL0);
        let got = t.get_page_and_type(&kit.mem, &dom, Mfn(1), PageType::SegDesc);
        assert_eq!(got, Err(MmError::BadDescriptor));
        assert_eq!(kit.state(1).type_count(), 0);
        assert_eq!(kit.state(1).ty(), PageType::None);
        assert_eq!(kit.state(1).general(), 1, "only the allocation is left");
        kit.write(1, 7, 0);
        t.get_page_and_type(&kit.mem, &dom, Mfn(1), PageType::SegDesc)
            .expect("valid frame");
        assert_eq!(kit.read(1, 8), DATA_DPL3);
        assert!(kit.state(1).validated());
        // A writable reference is refused while it is a descriptor frame.
        assert_eq!(
            t.get_page_type(&kit.mem, &dom, Mfn(1), PageType::Writable),
            Err(MmError::TypeMismatch)
        );
        t.put_page_and_type(&kit.mem, Mfn(1)).expect("drop");
    }
}
