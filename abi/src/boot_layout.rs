//! The initial virtual layout of a PV domain, computed the way Xen 4.17's dom0 builder does
//! (`pv-boot-abi.md`, spec §6.4): a pure function of the kernel's addresses and the domain size.
//! No `unsafe`, no hardware, nothing beyond `core`; the hypervisor's domain builder calls it, and
//! `abi/tests/boot_layout.rs` tests it against the arrangement Xen prints.
//!
//! From `v_start` (= VIRT_BASE), 4 KiB aligned and packed in this order: kernel image, P2M list
//! (8 bytes per page), start_info (one page, with dom0's console info after it), bootstrap page
//! tables (L4, then L3s, L2s and L1s covering the whole region), one boot-stack page. The region
//! ends at `v_end`, the first 4 MiB boundary at least 512 KiB past the stack. Pseudo-physical
//! page `n` is mapped at `v_start + n * 4 KiB`; the region must fit in the domain's pages and in
//! one half of the canonical address space, outside the hypervisor's hole
//! ([`crate::layout`]).
//!
//! Invariant of a returned [`BootLayout`]: `v_start <= kernel_start < kernel_end <= p2m <
//! start_info < pt_start < stack < v_end`, all but the kernel bounds page aligned, `1 + nr_l3 +
//! nr_l2 + nr_l1 <= nr_pt_frames`, and `(v_end - v_start) / 4 KiB <= nr_pages`.

use crate::layout::{HYPERVISOR_VIRT_END, LOWER_HALF_END, PAGE_SIZE as PAGE};
use crate::start_info::START_INFO_SIZE;

const MIB4: u64 = 4 << 20;
/// start_info plus dom0's `dom0_vga_console_info` (40 bytes), as Xen reserves.
const START_INFO_BYTES: u64 = START_INFO_SIZE as u64 + 40;

/// Why a domain cannot be laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootLayoutError {
    /// The region would wrap, leave its canonical half or enter the hypervisor's hole.
    BadRange,
    /// The region needs `needed` pages; the domain has `have`.
    TooSmall { needed: u64, have: u64 },
}

impl core::fmt::Display for BootLayoutError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadRange => write!(f, "initial mapping outside the guest's address range"),
            Self::TooSmall { needed, have } => write!(
                f,
                "initial mapping needs {needed} pages ({} KiB) but the domain has {have}",
                needed * 4
            ),
        }
    }
}

/// Where everything of the initial address space lives (virtual addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootLayout {
    /// VIRT_BASE: pseudo-physical page 0.
    pub v_start: u64,
    /// Kernel image bounds (as linked).
    pub kernel_start: u64,
    pub kernel_end: u64,
    /// The P2M list: `nr_pages` u64 entries.
    pub p2m: u64,
    /// The start_info page.
    pub start_info: u64,
    /// First bootstrap page-table page (the L4).
    pub pt_start: u64,
    /// Pages reserved for bootstrap page tables (some may be unused).
    pub nr_pt_frames: u64,
    /// Tables needed at each level below the L4.
    pub nr_l3: u64,
    pub nr_l2: u64,
    pub nr_l1: u64,
    /// The boot stack page; `rsp` starts at `stack + 4 KiB`.
    pub stack: u64,
    /// End of the mapped region (a 4 MiB boundary).
    pub v_end: u64,
    /// Pages of the domain.
    pub nr_pages: u64,
}

fn round_up(v: u64, to: u64) -> Option<u64> {
    Some(v.checked_add(to - 1)? & !(to - 1))
}

/// Tables of `1 << shift` coverage needed for `[lo, hi)` (Xen's `NR()`).
fn tables(lo: u64, hi: u64, shift: u32) -> u64 {
    let hi_idx = (u128::from(hi) + (1u128 << shift) - 1) >> shift;
    (hi_idx - (u128::from(lo) >> shift)) as u64
}

/// `[lo, hi)` lies in one guest half of the canonical address space.
fn guest_range(lo: u64, hi: u64) -> bool {
    (hi <= LOWER_HALF_END) || (lo >= HYPERVISOR_VIRT_END && hi >= lo)
}

impl BootLayout {
    /// Lays out a domain of `nr_pages` pages for a kernel at `[kernel_start, kernel_end)`.
    pub fn compute(
        v_start: u64,
        kernel_start: u64,
        kernel_end: u64,
        nr_pages: u64,
    ) -> Result<BootLayout, BootLayoutError> {
        let bad = BootLayoutError::BadRange;
        if !v_start.is_multiple_of(PAGE) || kernel_start < v_start || kernel_end <= kernel_start {
            return Err(bad);
        }
        let p2m = round_up(kernel_end, PAGE).ok_or(bad)?;
        let p2m_end = p2m
            .checked_add(nr_pages.checked_mul(8).ok_or(bad)?)
            .ok_or(bad)?;
        let start_info = round_up(p2m_end, PAGE).ok_or(bad)?;
        let pt_start = round_up(start_info + START_INFO_BYTES, PAGE).ok_or(bad)?;
        let mut nr_pt = 2u64;
        loop {
            let stack = pt_start.checked_add(nr_pt * PAGE).ok_or(bad)?;
            let stack_end = stack.checked_add(PAGE).ok_or(bad)?;
            let mut v_end = round_up(stack_end, MIB4).ok_or(bad)?;
            if v_end - stack_end < 512 << 10 {
                v_end = v_end.checked_add(MIB4).ok_or(bad)?;
            }
            let (l3, l2, l1) = (
                tables(v_start, v_end, 39),
                tables(v_start, v_end, 30),
                tables(v_start, v_end, 21),
            );
            if 1 + l3 + l2 + l1 <= nr_pt {
                if !guest_range(v_start, v_end) {
                    return Err(bad);
                }
                let needed = (v_end - v_start) / PAGE;
                if needed > nr_pages {
                    return Err(BootLayoutError::TooSmall {
                        needed,
                        have: nr_pages,
                    });
                }
                return Ok(BootLayout {
                    v_start,
                    kernel_start,
                    kernel_end,
                    p2m,
                    start_info,
                    pt_start,
                    nr_pt_frames: nr_pt,
                    nr_l3: l3,
                    nr_l2: l2,
                    nr_l1: l1,
                    stack,
                    v_end,
                    nr_pages,
                });
            }
            nr_pt += 1;
        }
    }

    /// The pseudo-physical page mapped at `va`, if `va` is in the mapped region.
    pub fn pfn_of(&self, va: u64) -> Option<u64> {
        (self.v_start..self.v_end)
            .contains(&va)
            .then(|| (va - self.v_start) / PAGE)
    }

    /// Pages mapped by the bootstrap tables.
    pub fn mapped_pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE
    }

    /// `va` is one of the bootstrap page-table pages (mapped read-only).
    pub fn is_pt_page(&self, va: u64) -> bool {
        (self.pt_start..self.stack).contains(&va)
    }

    /// Initial `rsp`: the top of the boot stack page.
    pub fn stack_top(&self) -> u64 {
        self.stack + PAGE
    }

    /// Virtual address of page-table page `i` (0 = L4, then L3s, L2s, L1s).
    pub fn pt_page(&self, i: u64) -> u64 {
        self.pt_start + i * PAGE
    }
}
