//! What the kernel finds at entry: start_info, the initial address space, the P2M/M2P pair,
//! `xen_version` and the hypercall page (spec §6.3, §6.4, §8.9 cases 93 and 95,
//! `pv-boot-abi.md`).

use abi::hypercall_page::{HYPERCALL_PAGE_SIZE, HYPERCALL_STUB_SIZE};
use abi::layout::{M2P_L4_SLOT, PAGE_SIZE, m2p_entry_valid};
use abi::start_info::START_INFO_MAGIC;

use crate::console::println;
use crate::env::{Env, m2p};
use crate::harness::{Outcome, ensure, fail};
use crate::hypercall;

unsafe extern "C" {
    /// First and one-past-last byte of the image (`linker.ld`).
    static __image_start: u8;
    static __image_end: u8;
}

fn image_end() -> u64 {
    (&raw const __image_end) as u64
}

fn image_start() -> u64 {
    (&raw const __image_start) as u64
}

/// The magic begins with `xen-3.0-x86_64` (dom0 under Xen adds a `p`).
pub fn start_info_magic(env: &Env) -> Outcome {
    let magic = &env.si.magic;
    let end = magic.iter().position(|&b| b == 0).unwrap_or(magic.len());
    let shown = core::str::from_utf8(&magic[..end]).unwrap_or("<non-utf-8>");
    ensure!(magic.starts_with(START_INFO_MAGIC), "magic is {shown:?}");
    Ok(())
}

/// `nr_pages` is non-zero and covers at least the kernel image.
pub fn start_info_nr_pages(env: &Env) -> Outcome {
    let nr = env.si.nr_pages;
    ensure!(nr > 0, "nr_pages is 0");
    let image_pages = image_end().div_ceil(PAGE_SIZE);
    ensure!(
        nr >= image_pages,
        "nr_pages {nr} < {image_pages} pages up to the image end"
    );
    Ok(())
}

/// `pt_base` is a page-aligned VA between start_info and the boot stack, inside the domain's
/// pages, and the page there reads as an L4 with the M2P slot present (spec §6.4).
pub fn start_info_pt_base(env: &Env) -> Outcome {
    let si = &env.si;
    let (pt, frames) = (si.pt_base, si.nr_pt_frames);
    println!(
        "guest: info image {:#x}-{:#x} start_info {:#x} pt_base {:#x} nr_pt_frames {} \
         boot_rsp {:#x} nr_pages {}",
        image_start(),
        image_end(),
        env.si_va,
        pt,
        frames,
        env.boot_rsp,
        si.nr_pages
    );
    ensure!(pt % PAGE_SIZE == 0, "pt_base {pt:#x} not page aligned");
    ensure!(
        pt >= image_end(),
        "pt_base {pt:#x} inside the image (ends {:#x})",
        image_end()
    );
    ensure!(
        pt > env.si_va,
        "pt_base {pt:#x} not after start_info {:#x}",
        env.si_va
    );
    ensure!(frames >= 4, "nr_pt_frames {frames} < 4 (L4, L3, L2, L1)");
    let pt_end = pt + frames * PAGE_SIZE;
    ensure!(
        pt_end < env.boot_rsp,
        "page tables {pt:#x}-{pt_end:#x} reach the boot stack (rsp {:#x})",
        env.boot_rsp
    );
    ensure!(
        pt_end <= si.nr_pages * PAGE_SIZE,
        "page tables end {pt_end:#x} past the domain's {} pages",
        si.nr_pages
    );
    let entry = (pt as *const u64).wrapping_add(M2P_L4_SLOT);
    // SAFETY: pt_base is inside the initial region (checked above), which the builder maps
    // (page-table pages read-only); one aligned word of that page is read.
    let m2p_slot = unsafe { core::ptr::read_volatile(entry) };
    ensure!(
        m2p_slot & 1 == 1,
        "L4[{M2P_L4_SLOT}] (the M2P) not present: {m2p_slot:#x}"
    );
    Ok(())
}

/// `M2P[P2M[pfn]] == pfn` for every PFN of the domain (spec §8.9 case 95).
pub fn p2m_m2p_consistent(env: &Env) -> Outcome {
    let nr = env.si.nr_pages;
    let mut bad = 0u64;
    let mut first: Option<(u64, u64, u64)> = None;
    for pfn in 0..nr {
        let Some(mfn) = env.p2m(pfn) else {
            fail!("no P2M entry for pfn {pfn}");
        };
        ensure!(
            m2p_entry_valid(mfn),
            "P2M[{pfn:#x}] = {mfn:#x} is not a frame"
        );
        // SAFETY: `mfn` is one of this domain's frames (from its P2M), so the M2P has its entry.
        let back = unsafe { m2p(mfn) };
        if back != pfn {
            bad += 1;
            first.get_or_insert((pfn, mfn, back));
        }
    }
    if let Some((pfn, mfn, back)) = first {
        fail!("{bad} of {nr} pfns disagree; first: P2M[{pfn:#x}] = {mfn:#x}, M2P = {back:#x}");
    }
    let (first_mfn, last_mfn) = (env.p2m(0).unwrap_or(0), env.p2m(nr - 1).unwrap_or(0));
    println!("guest: info {nr} pfns, P2M[0] = {first_mfn:#x}, P2M[last] = {last_mfn:#x}");
    Ok(())
}

/// `xen_version(XENVER_version)` returns `major << 16 | minor` with a plausible major (≥ 3).
pub fn xen_version_sane(_env: &Env) -> Outcome {
    let v = hypercall::xen_version();
    ensure!(v > 0, "xen_version returned {v}");
    let (major, minor) = (v >> 16, v & 0xFFFF);
    println!("guest: info xen_version {major}.{minor}");
    ensure!((3..100).contains(&major), "major {major} (raw {v:#x})");
    ensure!(minor < 100, "minor {minor} (raw {v:#x})");
    Ok(())
}

/// The expected bytes of stub `nr`, spelled out from spec §8.9 case 93 (independently of
/// `abi::hypercall_page`, which Argon uses to write the page).
fn expected_stub(nr: u32) -> [u8; HYPERCALL_STUB_SIZE] {
    let mut s = [0xCC; HYPERCALL_STUB_SIZE];
    let imm = nr.to_le_bytes();
    let code: &[u8] = if nr == 23 {
        &[
            0x51, 0x41, 0x53, 0x50, 0xB8, imm[0], imm[1], imm[2], imm[3], 0x0F, 0x05,
        ]
    } else {
        &[
            0x51, 0x41, 0x53, 0xB8, imm[0], imm[1], imm[2], imm[3], 0x0F, 0x05, 0x41, 0x5B, 0x59,
            0xC3,
        ]
    };
    s[..code.len()].copy_from_slice(code);
    s
}

/// Every byte of the hypercall page: 128 stubs, the iret stub, `0xCC` filler (case 93).
pub fn hypercall_page_bytes(_env: &Env) -> Outcome {
    let page = hypercall::page();
    let stubs = HYPERCALL_PAGE_SIZE / HYPERCALL_STUB_SIZE;
    let mut bad = 0usize;
    let mut first: Option<(usize, u8, u8)> = None;
    for nr in 0..stubs {
        let want = expected_stub(nr as u32);
        let got = &page[nr * HYPERCALL_STUB_SIZE..(nr + 1) * HYPERCALL_STUB_SIZE];
        for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
            if g != w {
                bad += 1;
                first.get_or_insert((nr * HYPERCALL_STUB_SIZE + i, g, w));
            }
        }
    }
    if let Some((off, got, want)) = first {
        fail!("{bad} bytes differ; first at {off:#x}: got {got:#04x}, want {want:#04x}");
    }
    Ok(())
}
