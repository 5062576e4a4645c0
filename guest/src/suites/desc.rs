//! Descriptor tables and the privileged instructions the hypervisor emulates: `set_gdt` (2),
//! `update_descriptor` (10), a selector loaded from the installed GDT, and `mov` from CR2/CR3
//! and to CR3 executed by the kernel in ring 3 (spec §2.10, §4.3, §8 cases 28 and 53; Xen 4.17's
//! `pv/descriptor-tables.c` and `pv/emul-priv-op.c`).
//!
//! The GDT frame is [`GDT`], a page of the image: it is remapped read-only (its only mapping, so
//! it can become a descriptor frame) for the length of a test and mapped writable again, with the
//! GDT dropped (`set_gdt` of 0 entries), on every way out ([`GdtFrame`]). While it is read-only
//! it is only read.
//!
//! Instructions that may raise #GP run as probes under the suite's own #GP handler (`probes`),
//! so a hypervisor that does not emulate them fails the test instead of crashing the kernel.

use abi::hypercall::Hypercall;
use abi::layout::PAGE_SHIFT;
use abi::mmu::MmuCmd;
use abi::selectors::{FIRST_RESERVED_GDT_ENTRY, FLAT_KERNEL_CS64};
use abi::uvmf::{UVMF_INVLPG, UVMF_LOCAL};
use abi::{Errno, MmuUpdate};

use super::Page;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::{hypercall, traps};
use probes::{CrRead, load_ds, read_cr, with_gp_probes};

pub(super) mod probes;

/// The GDT frame of these tests.
static GDT: Page = Page::new();
/// A plain data page (`update_descriptor` on a writable frame).
static DATA: Page = Page::new();

/// Flat data, DPL 3 / 0 (type 3: read/write, accessed).
const DATA_DPL3: u64 = 0x00CF_F300_0000_FFFF;
const DATA_DPL0: u64 = 0x00CF_9300_0000_FFFF;
/// Flat 64-bit code, DPL 0 / 3.
const CODE64_DPL0: u64 = 0x00AF_9B00_0000_FFFF;
const CODE64_DPL3: u64 = 0x00AF_FB00_0000_FFFF;
/// A present 64-bit TSS (type 9) and interrupt gate (type 0xE): system descriptors a guest may
/// not have.
const TSS: u64 = 0x0000_8900_0000_0067;
const INTR_GATE: u64 = 0x0000_EE00_E033_1000;
/// Arbitrary bits with P (bit 47) clear: never checked further.
const NOT_PRESENT: u64 = 0x1234_5678_9ABC_DEF0;
/// Present, DPL-3 64-bit call gate (type 0xC) to `sel`, offset 0x1000.
const fn call_gate(sel: u16) -> u64 {
    0x0000_EC00_0000_1000 | (sel as u64) << 16
}
/// Leaf flags: present, accessed (read-only) / present, writable, accessed, dirty.
const PTE_RO: u64 = 0x021;
const PTE_RW: u64 = 0x063;
/// An address nothing maps in this kernel (L4 slot 255).
const UNMAPPED: u64 = 0x0000_7FFF_FFFF_F008;

fn mfn_of(env: &Env, va: u64) -> Result<u64, Fail> {
    env.mfn_of(va)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for va {va:#x}")))
}

/// `set_gdt(frames, entries)`.
fn set_gdt(frames: &[u64], entries: u64) -> i64 {
    // SAFETY: the hypervisor reads at most ⌈entries / 512⌉ words of `frames` (callers pass
    // enough, or a count it refuses before reading); the frames are GDT's, which the kernel
    // only reads while it is a descriptor frame.
    unsafe {
        hypercall::hypercall5(
            Hypercall::SetGdt.nr(),
            frames.as_ptr() as u64,
            entries,
            0,
            0,
            0,
        )
    }
}

/// `update_descriptor(maddr, desc)`.
fn update_descriptor(maddr: u64, desc: u64) -> i64 {
    // SAFETY: the callers aim only at GDT and DATA (pages only these tests use) or at frames
    // the hypervisor must refuse to write (a page table, frames not ours).
    unsafe { hypercall::hypercall5(Hypercall::UpdateDescriptor.nr(), maddr, desc, 0, 0, 0) }
}

/// Points `page`'s VA at its own frame with `flags`.
fn remap(env: &Env, page: &Page, flags: u64) -> i64 {
    let Some(mfn) = env.mfn_of(page.va()) else {
        return Errno::EINVAL.ret();
    };
    // SAFETY: the VA maps `page`'s own frame before and after; only the permissions change,
    // and the kernel writes the page only while it is writable.
    unsafe {
        hypercall::update_va_mapping(
            page.va(),
            mfn << PAGE_SHIFT | flags,
            UVMF_INVLPG | UVMF_LOCAL,
        )
    }
}

/// [`GDT`] as a frame that may become a descriptor frame: read-only while this lives; on drop
/// the GDT is dropped and the page mapped writable again.
struct GdtFrame<'e> {
    env: &'e Env,
    mfn: u64,
}

impl<'e> GdtFrame<'e> {
    /// Fills GDT with `descs` (index, descriptor; zero elsewhere), then maps it read-only.
    fn new(env: &'e Env, descs: &[(usize, u64)]) -> Result<GdtFrame<'e>, Fail> {
        let mfn = mfn_of(env, GDT.va())?;
        GDT.fill(0);
        for &(i, d) in descs {
            GDT.write(i, d);
        }
        ensure_eq!(remap(env, &GDT, PTE_RO), 0, "remapping GDT read-only");
        Ok(GdtFrame { env, mfn })
    }

    /// Machine address of descriptor `i`.
    fn maddr(&self, i: usize) -> u64 {
        (self.mfn << PAGE_SHIFT) | ((i as u64) * 8)
    }
}

impl Drop for GdtFrame<'_> {
    fn drop(&mut self) {
        let dropped = set_gdt(&[], 0);
        let mapped = remap(self.env, &GDT, PTE_RW);
        if dropped != 0 || mapped != 0 {
            crate::console::println!(
                "guest: desc: cleanup failed (set_gdt {dropped}, remap {mapped}); later tests \
                 may fail"
            );
        }
    }
}

/// set_gdt with the GDT page, then mapping it writable → `-EBUSY` (case 28) and a raw
/// `mmu_update` write into it → `-EINVAL` (case 53); both work again once the GDT is dropped.
/// Where the audit hypercall exists (Argon) the installed GDT's references audit clean.
pub fn set_gdt_frame_not_writable(env: &Env) -> Outcome {
    let gdt = GdtFrame::new(env, &[(1, DATA_DPL3)])?;
    ensure_eq!(set_gdt(&[gdt.mfn], 16), 0, "set_gdt");
    ensure_eq!(
        remap(env, &GDT, PTE_RW),
        Errno::EBUSY.ret(),
        "RW mapping (case 28)"
    );
    let req = MmuUpdate::new(MmuCmd::NormalPtUpdate, gdt.maddr(3), DATA_DPL3);
    // SAFETY: the hypervisor must refuse this write into the GDT frame; if it did not, it would
    // store a valid descriptor into a page only this suite uses.
    let rc = unsafe { hypercall::mmu_update(&[req], None, abi::domid::DOMID_SELF.into()) };
    ensure_eq!(rc, Errno::EINVAL.ret(), "mmu_update into the GDT (case 53)");
    let audit = hypercall::argon_audit();
    ensure!(
        audit <= 0,
        "audit with a GDT installed: {audit} discrepancies"
    );
    ensure_eq!(set_gdt(&[], 0), 0, "dropping the GDT");
    ensure_eq!(
        remap(env, &GDT, PTE_RW),
        0,
        "RW mapping after the GDT is dropped"
    );
    ensure_eq!(remap(env, &GDT, PTE_RO), 0, "read-only again");
    Ok(())
}

/// set_gdt refusals (spec §2.10, Xen's `do_set_gdt`/`pv_set_gdt`): more than 7168 entries
/// (FIRST_RESERVED_GDT_ENTRY) → `-EINVAL`; an unreadable frame list → `-EFAULT`; a frame mapped
/// writable, or not the caller's (MFN 0) → `-EINVAL`, with nothing kept of earlier frames.
pub fn set_gdt_refused(env: &Env) -> Outcome {
    let too_many = FIRST_RESERVED_GDT_ENTRY as u64 + 1;
    let gdt = GdtFrame::new(env, &[])?;
    ensure_eq!(
        set_gdt(&[gdt.mfn], too_many),
        Errno::EINVAL.ret(),
        "7169 entries"
    );
    ensure!(
        traps::probe_read(UNMAPPED).is_none(),
        "{UNMAPPED:#x} is mapped"
    );
    // SAFETY: the hypervisor must fail to read the list; nothing is installed either way.
    let rc = unsafe { hypercall::hypercall5(Hypercall::SetGdt.nr(), UNMAPPED, 512, 0, 0, 0) };
    ensure_eq!(rc, Errno::EFAULT.ret(), "unreadable frame list");
    ensure_eq!(
        set_gdt(&[mfn_of(env, DATA.va())?], 512),
        Errno::EINVAL.ret(),
        "a frame mapped writable"
    );
    ensure_eq!(set_gdt(&[0], 1), Errno::EINVAL.ret(), "frame 0");
    ensure_eq!(
        set_gdt(&[gdt.mfn, 0], 1024),
        Errno::EINVAL.ret(),
        "a good frame then frame 0"
    );
    // The good frame's reference was given back: it maps writable.
    ensure_eq!(remap(env, &GDT, PTE_RW), 0, "GDT frame after the refusal");
    Ok(())
}

/// Typing a GDT frame checks all 512 descriptors (spec §2.10, Xen's `validate_segdesc_page`): a
/// TSS descriptor → `-EINVAL`. Accepted descriptors are stored in their checked form, in place
/// (a DPL-0 code segment becomes DPL 3), even those before the refused one.
pub fn set_gdt_validates_frame(env: &Env) -> Outcome {
    let gdt = GdtFrame::new(env, &[(2, CODE64_DPL0), (5, TSS), (9, DATA_DPL0)])?;
    ensure_eq!(
        set_gdt(&[gdt.mfn], 512),
        Errno::EINVAL.ret(),
        "frame with a TSS"
    );
    ensure_eq!(GDT.read(2), CODE64_DPL3, "descriptor 2 before the TSS");
    ensure_eq!(GDT.read(9), DATA_DPL0, "descriptor 9 after the TSS");
    ensure_eq!(update_descriptor(gdt.maddr(5), 0), 0, "clearing the TSS");
    ensure_eq!(set_gdt(&[gdt.mfn], 512), 0, "set_gdt once valid");
    ensure_eq!(GDT.read(9), DATA_DPL3, "descriptor 9");
    Ok(())
}

/// update_descriptor stores the checked form (spec §2.10, Xen's `check_descriptor`): DPL raised
/// to 3 for code and data (a DPL-0 code segment is accepted, not refused), a call gate's DPL
/// moved into its selector's RPL, a not-present descriptor as is; into the live GDT (seen at once)
/// and into a plain writable page.
pub fn update_descriptor_stores_checked_form(env: &Env) -> Outcome {
    let gdt = GdtFrame::new(env, &[])?;
    ensure_eq!(set_gdt(&[gdt.mfn], 512), 0, "set_gdt");
    let gate = call_gate(FLAT_KERNEL_CS64);
    let cases = [
        (3, DATA_DPL3, DATA_DPL3, "DPL-3 data"),
        (4, CODE64_DPL0, CODE64_DPL3, "DPL-0 code"),
        (
            5,
            gate,
            gate & !(3 << 45),
            "call gate to the flat kernel CS",
        ),
        (6, NOT_PRESENT, NOT_PRESENT, "not present"),
    ];
    for (i, desc, stored, what) in cases {
        ensure_eq!(update_descriptor(gdt.maddr(i), desc), 0, "rc for {what}");
        ensure_eq!(GDT.read(i), stored, "stored {what}");
    }
    DATA.fill(0);
    let maddr = env
        .maddr_of(DATA.va() + 8 * 7)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for DATA")))?;
    ensure_eq!(
        update_descriptor(maddr, DATA_DPL0),
        0,
        "into a writable page"
    );
    ensure_eq!(DATA.read(7), DATA_DPL3, "stored in the writable page");
    Ok(())
}

/// update_descriptor refusals, all `-EINVAL` (spec §2.10, Xen's `do_update_descriptor`): a
/// misaligned address; system descriptors (TSS, interrupt gate); call gates to a hypervisor
/// selector or with reserved bits; a page-table frame (the kernel's L4); frames not the
/// caller's (0, far past memory).
pub fn update_descriptor_refused(env: &Env) -> Outcome {
    let gdt = GdtFrame::new(env, &[])?;
    ensure_eq!(set_gdt(&[gdt.mfn], 512), 0, "set_gdt");
    let l4 = mfn_of(env, env.si.pt_base)? << PAGE_SHIFT;
    let cases = [
        (gdt.maddr(1) + 4, DATA_DPL3, "misaligned"),
        (gdt.maddr(1), TSS, "TSS"),
        (gdt.maddr(1), INTR_GATE, "interrupt gate"),
        (gdt.maddr(1), call_gate(0xE008), "call gate to 0xe008"),
        (
            gdt.maddr(1),
            call_gate(FLAT_KERNEL_CS64) | 1 << 32,
            "gate reserved bit",
        ),
        (l4 + 8, 0, "the kernel's L4"),
        (8, 0, "frame 0"),
        (1 << 45, 0, "past memory"),
    ];
    for (maddr, desc, what) in cases {
        ensure_eq!(
            update_descriptor(maddr, desc),
            Errno::EINVAL.ret(),
            "{what}"
        );
    }
    ensure_eq!(GDT.read(1), 0, "descriptor 1 untouched");
    Ok(())
}

/// A selector of the installed GDT loads (DPL-3 data, entry 1); an empty entry and, once the
/// GDT is dropped, entry 1 too raise #GP with the selector as error code (spec §2.10: the
/// frames are the vCPU's GDT below FIRST_RESERVED_GDT_ENTRY).
pub fn gdt_selector_loads(env: &Env) -> Outcome {
    let gdt = GdtFrame::new(env, &[(1, DATA_DPL3)])?;
    ensure_eq!(set_gdt(&[gdt.mfn], 16), 0, "set_gdt");
    with_gp_probes(|| {
        ensure_eq!(load_ds(0x0B), Ok(()), "loading selector 0x0b");
        ensure_eq!(load_ds(0x13), Err(0x10), "loading empty entry 2");
        ensure_eq!(set_gdt(&[], 0), 0, "dropping the GDT");
        ensure_eq!(load_ds(0x0B), Err(0x08), "loading 0x0b without a GDT");
        Ok(())
    })
}

/// `mov %cr3,%reg` in the kernel returns the machine address of its L4 (start_info's
/// `pt_base`), with and without a REX prefix (spec §4.3).
pub fn read_cr3_is_kernel_base(env: &Env) -> Outcome {
    let want = mfn_of(env, env.si.pt_base)? << PAGE_SHIFT;
    with_gp_probes(|| {
        ensure_eq!(read_cr(CrRead::Cr3), Ok(want), "mov %cr3,%rdx");
        ensure_eq!(read_cr(CrRead::Cr3R9), Ok(want), "mov %cr3,%r9");
        Ok(())
    })
}

/// `mov %cr2,%reg` returns the address of the last page fault bounced to the kernel (spec
/// §4.3; Xen's `read_cr` returns `ctrlreg[2]`, set when a #PF is delivered).
pub fn read_cr2_after_page_fault(_env: &Env) -> Outcome {
    ensure!(
        traps::probe_read(UNMAPPED).is_none(),
        "{UNMAPPED:#x} is mapped"
    );
    with_gp_probes(|| {
        ensure_eq!(read_cr(CrRead::Cr2), Ok(UNMAPPED), "CR2");
        Ok(())
    })
}

/// `mov %reg,%cr3` is NEW_BASEPTR (spec §4.3): the current base reloads it; a frame that cannot
/// be an L4 (a data page mapped writable) raises #GP (error 0) at the instruction and changes
/// nothing.
pub fn write_cr3_emulated(env: &Env) -> Outcome {
    let base = mfn_of(env, env.si.pt_base)? << PAGE_SHIFT;
    let data = mfn_of(env, DATA.va())? << PAGE_SHIFT;
    with_gp_probes(|| {
        // SAFETY: the current base again: the same address space after the reload.
        let rc = unsafe { probes::write_cr3(base) };
        ensure_eq!(rc, Ok(()), "writing the current base");
        let before = probes::last_gp().count;
        // SAFETY: refused (a data page is not an L4), caught as #GP; were it taken, the kernel
        // would lose its address space and crash, failing the run.
        let rc = unsafe { probes::write_cr3(data) };
        ensure_eq!(rc, Err(0), "writing a data page: #GP, error 0");
        let gp = probes::last_gp();
        ensure_eq!(gp.count, before + 1, "#GPs caught");
        ensure_eq!(gp.rip, probes::write_cr3_rip(), "rip of the #GP");
        ensure_eq!(read_cr(CrRead::Cr3), Ok(base), "CR3 afterwards");
        Ok(())
    })
}
