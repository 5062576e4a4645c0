//! The PV domain builder: from a kernel ELF with Xen notes to a domain whose vCPU 0 is ready to
//! enter the kernel, laid out like Xen 4.17's dom0 builder (`pv-boot-abi.md`, spec §6.4).
//!
//! Steps: parse (`abi::pv_image`) → check required features → lay out (`abi::boot_layout`) →
//! take `nr_pages` contiguous frames, assign them to the domain and zero them → shared_info →
//! kernel segments → hypercall page → P2M list and M2P → start_info → bootstrap page tables
//! (leaves P|RW|A, page-table pages P|A, upper levels P|RW|US|A|D) → validate and pin the L4
//! through `hvcore` like any other table → install it as vCPU 0's kernel base → vCPU 0 at the
//! entry point.
//!
//! Invariants: the builder is the only writer of the domain's frames until the domain runs;
//! page-table words are written with `PhysMem` atomics; any failure gives a [`BuildError`]
//! after `life::destroy` has released everything taken so far (the domain never existed).

use abi::hypercall_page::{self, HYPERCALL_PAGE_SIZE};
use abi::pv_image::{self, Kernel};
use abi::shared_info::SharedInfo;
use abi::start_info::{SIF_INITDOMAIN, SIF_PRIVILEGED, START_INFO_MAGIC_PAE, StartInfo};
use abi::{BootLayout, BootLayoutError, ElfError, Wire};
use boot::frame_alloc::FrameAllocator;
use hvcore::domain::DomId;
use hvcore::flush::AtomicCpuMask;
use hvcore::frame::{Level, MmError, PageType};
use hvcore::mem::{Mfn, PhysMem};
use hvcore::pt::{PTE_A, PTE_D, PTE_P, PTE_RW, PTE_US, make_pte};

use super::dom::{Domain, MAX_VCPUS};
use super::machine::{FrameBox, frame_bytes};
use super::{Hv, life};
use crate::arch::gdt::FLAT_RING3_DS;
use crate::pv::regs::GuestRegs;

/// `XENFEAT_*` bits a kernel may require: writable_page_tables (accepted; see the reply to
/// `vm_assist`), pae_pgdir_above_4gb (always true for 64-bit), and dom0 for domain 0.
const FEATURES_OK: u32 = (1 << 0) | (1 << 4);
const FEATURE_DOM0: u32 = 1 << 11;
/// Upper-level entries of the bootstrap tables.
const UPPER: u64 = PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D;
const PAGE: u64 = 4096;

/// What to build.
pub struct BuildSpec<'a> {
    pub id: DomId,
    pub privileged: bool,
    pub image: &'a [u8],
    pub nr_pages: u64,
    pub nr_vcpus: u32,
    /// start_info's command line (the module's guest arguments).
    pub cmdline: &'a [u8],
}

/// Why a domain was not built.
#[derive(Debug, Clone, Copy)]
pub enum BuildError {
    Elf(ElfError),
    Layout(BootLayoutError),
    /// The kernel requires `XENFEAT_*` bits Argon does not offer.
    Features(u32),
    /// Not enough free memory for `pages` frames (contiguous).
    NoMemory(u64),
    /// The guest command line does not fit start_info.
    CmdLineTooLong(usize),
    /// The bootstrap page tables were refused (a builder bug).
    PageTables(MmError),
    /// Something that cannot happen did.
    Internal(&'static str),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::Layout(e) => write!(f, "{e}"),
            Self::Features(bits) => write!(f, "kernel requires features {bits:#x} Argon lacks"),
            Self::NoMemory(n) => write!(f, "not enough free memory for {n} contiguous pages"),
            Self::CmdLineTooLong(n) => write!(f, "guest command line of {n} bytes is too long"),
            Self::PageTables(e) => write!(f, "initial page tables refused: {e}"),
            Self::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

/// Builds a domain; on failure nothing of it remains.
pub fn build(
    hv: &Hv<'_>,
    alloc: &mut FrameAllocator<'_>,
    spec: &BuildSpec<'_>,
) -> Result<FrameBox<Domain>, BuildError> {
    let k = pv_image::parse(spec.image).map_err(BuildError::Elf)?;
    let offered = FEATURES_OK | if spec.privileged { FEATURE_DOM0 } else { 0 };
    if k.features_required & !offered != 0 {
        return Err(BuildError::Features(k.features_required & !offered));
    }
    let layout = BootLayout::compute(k.virt_base, k.image_start, k.image_end, spec.nr_pages)
        .map_err(BuildError::Layout)?;
    if k.init_p2m.is_some() {
        warn!(
            "d{}: INIT_P2M ignored: the P2M list is in the initial mapping",
            spec.id
        );
    }
    let mut dom = FrameBox::<Domain>::new_zeroed(alloc).ok_or(BuildError::NoMemory(1))?;
    dom.id = spec.id;
    dom.privileged = spec.privileged;
    dom.linear_pt = hv.linear_pt;
    dom.nr_vcpus = spec.nr_vcpus.clamp(1, MAX_VCPUS as u32);
    dom.features_required = k.features_required;
    dom.dirty = AtomicCpuMask::for_cpus(smp::MAX_CPUS);
    match populate(hv, alloc, &mut dom, &k, &layout, spec) {
        Ok(()) => {
            debug!(
                "d{}: kernel '{}': {} pages at mfn {:#x}; image {:#x}-{:#x}, p2m {:#x}, \
                 start_info {:#x}, {} pt frames at {:#x}, stack {:#x}, mapped to {:#x}, entry {:#x}",
                spec.id,
                core::str::from_utf8(k.guest_os).unwrap_or("?"),
                spec.nr_pages,
                dom.first_mfn,
                k.image_start,
                k.image_end,
                layout.p2m,
                layout.start_info,
                layout.nr_pt_frames,
                layout.pt_start,
                layout.stack,
                layout.v_end,
                k.entry
            );
            Ok(dom)
        }
        Err(e) => {
            life::destroy(hv, alloc, dom);
            Err(e)
        }
    }
}

/// Copies `data` into the domain's memory at `va` (inside the initial mapping).
fn write_va(layout: &BootLayout, first_mfn: u64, va: u64, data: &[u8]) -> Result<(), BuildError> {
    let mut done = 0usize;
    while done < data.len() {
        let at = va + done as u64;
        let pfn = layout
            .pfn_of(at)
            .ok_or(BuildError::Internal("write outside the mapping"))?;
        let off = (at % PAGE) as usize;
        let n = (PAGE as usize - off).min(data.len() - done);
        // SAFETY: the frame is one of the domain's, which nothing but the builder touches
        // before the domain first runs; the slice lives only for this copy.
        let page = unsafe { frame_bytes(first_mfn + pfn) }
            .ok_or(BuildError::Internal("frame outside the direct map"))?;
        page[off..off + n].copy_from_slice(&data[done..done + n]);
        done += n;
    }
    Ok(())
}

fn populate(
    hv: &Hv<'_>,
    alloc: &mut FrameAllocator<'_>,
    dom: &mut Domain,
    k: &Kernel<'_>,
    layout: &BootLayout,
    spec: &BuildSpec<'_>,
) -> Result<(), BuildError> {
    let n = spec.nr_pages;
    dom.first_mfn = alloc
        .alloc_contig(n, 1)
        .map_err(|_| BuildError::NoMemory(n))?;
    dom.nr_pages = n;
    let first = dom.first_mfn;
    for mfn in first..first + n {
        // The frames come from the allocator, whose previous users' translations were
        // dropped when their address spaces were (CR3 switch, no global pages), so the
        // allocation-time flush that `Assigned` asks for has nothing to do here.
        let _assigned = hv
            .ft
            .assign(Mfn(mfn), dom.id)
            .map_err(|_| BuildError::Internal("frame in use"))?;
        // SAFETY: just allocated and assigned to the domain, which has not run.
        unsafe { frame_bytes(mfn) }
            .ok_or(BuildError::Internal("frame outside the direct map"))?
            .fill(0);
        hv.m2p.set(mfn, mfn - first);
    }
    shared_info(hv, alloc, dom)?;

    for s in k.segments() {
        let bytes = spec
            .image
            .get(s.offset as usize..(s.offset + s.filesz) as usize);
        write_va(
            layout,
            first,
            s.va,
            bytes.ok_or(BuildError::Internal("segment bounds"))?,
        )?;
    }
    if let Some(hp) = k.hypercall_page {
        let mut page = [0u8; HYPERCALL_PAGE_SIZE];
        hypercall_page::fill(&mut page);
        write_va(layout, first, hp, &page)?;
    }
    for pfn in 0..n {
        write_va(
            layout,
            first,
            layout.p2m + pfn * 8,
            &(first + pfn).to_le_bytes(),
        )?;
    }
    let si = start_info(dom, k, layout, spec)?;
    write_va(layout, first, layout.start_info, &si.to_bytes())?;

    let l4 = page_tables(hv, dom, layout)?;
    let ctx = dom.ctx(&hv.slots);
    hv.ft
        .pin(&hv.mem, &ctx, Mfn(l4), Level::L4)
        .map_err(BuildError::PageTables)?;
    hv.ft
        .get_page_and_type(&hv.mem, &ctx, Mfn(l4), PageType::L4)
        .map_err(BuildError::PageTables)?;
    let slot = &mut dom.vcpus[0];
    slot.set_kernel_l4(l4);
    slot.set_initial_queued();
    let v0 = slot.ctx_mut();
    v0.regs = GuestRegs::at_entry(k.entry, layout.stack_top(), layout.start_info);
    v0.kernel_mode = true;
    v0.kernel_ss = u64::from(FLAT_RING3_DS);
    v0.kernel_sp = layout.stack_top();
    Ok(())
}

/// The hypervisor-owned shared_info frame: assigned to the domain (it maps it read-write), with
/// a hypervisor-held writable type reference so it can never be typed as a page table.
fn shared_info(
    hv: &Hv<'_>,
    alloc: &mut FrameAllocator<'_>,
    dom: &mut Domain,
) -> Result<(), BuildError> {
    let mfn = alloc.alloc().ok_or(BuildError::NoMemory(1))?;
    if hv.ft.assign(Mfn(mfn), dom.id).is_err() {
        let _ = alloc.free(mfn);
        return Err(BuildError::Internal("shared_info frame in use"));
    }
    let ctx = dom.ctx(&hv.slots);
    if let Err(e) = hv
        .ft
        .get_page_and_type(&hv.mem, &ctx, Mfn(mfn), PageType::Writable)
    {
        if let Ok(hvcore::frame::Released::Freed { .. }) =
            hv.ft.release_allocation(Mfn(mfn), dom.id)
        {
            let _ = alloc.free(mfn);
        }
        return Err(BuildError::PageTables(e));
    }
    // SAFETY: the frame was just allocated; only the hypervisor writes it until the domain runs.
    let page = unsafe { frame_bytes(mfn) };
    let page = page.ok_or(BuildError::Internal("frame outside the direct map"))?;
    page.fill(0);
    SharedInfo::initial()
        .write_to(page)
        .map_err(|_| BuildError::Internal("shared_info size"))?;
    dom.shared_info = mfn;
    Ok(())
}

fn start_info(
    dom: &Domain,
    k: &Kernel<'_>,
    layout: &BootLayout,
    spec: &BuildSpec<'_>,
) -> Result<StartInfo, BuildError> {
    let mut si = StartInfo::new();
    if spec.privileged && k.pae {
        si.magic[..START_INFO_MAGIC_PAE.len()].copy_from_slice(START_INFO_MAGIC_PAE);
    }
    si.nr_pages = spec.nr_pages;
    si.shared_info = dom.shared_info * PAGE;
    if spec.privileged {
        si.flags = SIF_PRIVILEGED | SIF_INITDOMAIN;
        // dom0's console info follows start_info in its page (all zero: no VGA console).
        si.set_console_dom0(1168, 40);
    }
    si.pt_base = layout.pt_start;
    si.nr_pt_frames = layout.nr_pt_frames;
    si.mfn_list = layout.p2m;
    si.set_cmd_line(spec.cmdline)
        .map_err(|e| BuildError::CmdLineTooLong(e.len))?;
    Ok(si)
}

/// Writes the bootstrap tables for `[v_start, v_end)`; returns the L4's MFN.
fn page_tables(hv: &Hv<'_>, dom: &Domain, layout: &BootLayout) -> Result<u64, BuildError> {
    let first = dom.first_mfn;
    let pt_mfn = |i: u64| {
        layout
            .pfn_of(layout.pt_page(i))
            .map(|pfn| first + pfn)
            .ok_or(BuildError::Internal("page-table page outside the mapping"))
    };
    let (l3_base, l2_base) = (1, 1 + layout.nr_l3);
    let l1_base = l2_base + layout.nr_l2;
    let l4 = pt_mfn(0)?;
    let v_start = layout.v_start;
    let idx = |va: u64, shift: u32| ((va >> shift) & 511) as usize;
    for page in 0..layout.mapped_pages() {
        let va = v_start + page * PAGE;
        let t3 = pt_mfn(l3_base + ((va >> 39) - (v_start >> 39)))?;
        let t2 = pt_mfn(l2_base + ((va >> 30) - (v_start >> 30)))?;
        let t1 = pt_mfn(l1_base + ((va >> 21) - (v_start >> 21)))?;
        let leaf = if layout.is_pt_page(va) {
            PTE_P | PTE_A
        } else {
            PTE_P | PTE_RW | PTE_A
        };
        hv.mem
            .write_entry(Mfn(l4), idx(va, 39), make_pte(t3, UPPER));
        hv.mem
            .write_entry(Mfn(t3), idx(va, 30), make_pte(t2, UPPER));
        hv.mem
            .write_entry(Mfn(t2), idx(va, 21), make_pte(t1, UPPER));
        hv.mem
            .write_entry(Mfn(t1), idx(va, 12), make_pte(first + page, leaf));
    }
    Ok(l4)
}
