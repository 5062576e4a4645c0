//! What the kernel knows about its domain: the decoded start_info and the address translations
//! built on it (VA → PFN → MFN through the P2M list, MFN → PFN through the read-only M2P).
//!
//! The kernel is linked with VIRT_BASE 0, so inside the builder's initial region a VA is its
//! PFN × 4 KiB. Every read of builder- or hypervisor-provided memory is bounds-checked against
//! start_info first and done with a volatile load: the hypervisor may change it behind the
//! compiler's back.

use abi::StartInfo;
use abi::layout::{INVALID_M2P_ENTRY, MACH2PHYS_VIRT_START, PAGE_SHIFT, PAGE_SIZE};
use abi::start_info::START_INFO_SIZE;

/// The domain as the kernel found it at entry.
pub struct Env {
    /// start_info, decoded.
    pub si: StartInfo,
    /// Where the builder put start_info (`rsi` at entry).
    pub si_va: u64,
    /// `rsp` at entry: the top of the builder's bootstrap stack page.
    pub boot_rsp: u64,
}

impl Env {
    /// Reads start_info at `si_va`.
    ///
    /// # Safety
    ///
    /// `si_va` must be the start_info address the builder passed in `rsi`: 1168 readable bytes.
    pub unsafe fn from_entry(si_va: u64, boot_rsp: u64) -> Env {
        // SAFETY: the caller guarantees `si_va` points at a mapped start_info; an unaligned-safe
        // copy of its bytes is all that is read.
        let bytes = unsafe { core::ptr::read_unaligned(si_va as *const [u8; START_INFO_SIZE]) };
        Env {
            si: StartInfo::from_bytes(&bytes),
            si_va,
            boot_rsp,
        }
    }

    /// The command line's words.
    pub fn cmd_words(&self) -> impl Iterator<Item = &[u8]> {
        self.si
            .cmd_line()
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty())
    }

    /// The value of `name=N` on the command line (a decimal number), if there is one.
    pub fn arg_u64(&self, name: &[u8]) -> Option<u64> {
        self.cmd_words().find_map(|w| {
            let v = w.strip_prefix(name)?.strip_prefix(b"=")?;
            core::str::from_utf8(v).ok()?.parse().ok()
        })
    }

    /// MFN of the kernel's initial L4 (`pt_base`).
    pub fn kernel_l4_mfn(&self) -> Option<u64> {
        self.mfn_of(self.si.pt_base)
    }

    /// P2M entry of `pfn` (its MFN); `None` past `nr_pages`.
    pub fn p2m(&self, pfn: u64) -> Option<u64> {
        if pfn >= self.si.nr_pages {
            return None;
        }
        let at = self.si.mfn_list + pfn * 8;
        // SAFETY: the builder maps the P2M list (nr_pages u64 entries) at `mfn_list` for the
        // domain's lifetime; `pfn < nr_pages` keeps the read inside it.
        Some(unsafe { core::ptr::read_volatile(at as *const u64) })
    }

    /// The PFN of a kernel VA inside the builder's initial region.
    pub fn pfn_of(va: u64) -> u64 {
        va >> PAGE_SHIFT
    }

    /// Machine address of a kernel VA in the initial region (P2M lookup of its page).
    pub fn maddr_of(&self, va: u64) -> Option<u64> {
        let mfn = self.p2m(Self::pfn_of(va))?;
        Some((mfn << PAGE_SHIFT) | (va & (PAGE_SIZE - 1)))
    }

    /// MFN of a kernel VA's page.
    pub fn mfn_of(&self, va: u64) -> Option<u64> {
        self.p2m(Self::pfn_of(va))
    }

    /// Frames of other domains: those whose read-only M2P entry is a PFN that this domain's
    /// P2M does not map back to them. Fills `out` with up to `out.len()` of them, spread evenly
    /// over all, and returns (how many it filled, how many there are). The M2P is scanned up to
    /// its first unmapped entry above this domain's own frames (it is mapped as far as the
    /// machine's memory reaches).
    pub fn foreign_frames(&self, out: &mut [u64]) -> (usize, usize) {
        let is_foreign = |mfn: u64| -> Option<bool> {
            let pfn = crate::traps::probe_read(MACH2PHYS_VIRT_START + mfn * 8)?;
            Some(pfn != INVALID_M2P_ENTRY && self.p2m(pfn) != Some(mfn))
        };
        let top = (0..self.si.nr_pages)
            .filter_map(|p| self.p2m(p))
            .max()
            .unwrap_or(0);
        let (mut total, mut end) = (0usize, 0u64);
        while let Some(f) = is_foreign(end).or((end <= top).then_some(false)) {
            total += usize::from(f);
            end += 1;
        }
        let stride = total.div_ceil(out.len().max(1)).max(1);
        let (mut n, mut seen) = (0, 0usize);
        for mfn in 0..end {
            if n < out.len() && is_foreign(mfn) == Some(true) {
                if seen % stride == 0 {
                    out[n] = mfn;
                    n += 1;
                }
                seen += 1;
            }
        }
        (n, total)
    }
}

/// The read-only M2P entry of `mfn`.
///
/// # Safety
///
/// `mfn` must be a frame the hypervisor has an M2P entry for (e.g. one taken from this domain's
/// P2M); the M2P window is only mapped as far as the machine's memory reaches, and reading past it
/// faults.
pub unsafe fn m2p(mfn: u64) -> u64 {
    let at = MACH2PHYS_VIRT_START + mfn * 8;
    // SAFETY: the hypervisor maps the M2P read-only at MACH2PHYS_VIRT_START in every guest L4;
    // the caller guarantees the entry of `mfn` is inside the mapped part.
    unsafe { core::ptr::read_volatile(at as *const u64) }
}
