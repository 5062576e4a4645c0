//! The AP trampoline in low memory: copied to [`TRAMP_PHYS`], patched with its page tables, EFER
//! bits, stack layout and 64-bit entry, then armed with one ticket (a CPU index) per AP start.
//!
//! The trampoline runs on its own small page tables: a copy of the BSP's L4 whose slot 0
//! identity-maps the first 2 MiB, so it works whatever the hypervisor later puts in L4 slot 0.
//! The 64-bit entry must therefore switch to the real page tables itself.
//!
//! Orderings: [`Trampoline::arm`] stores the ticket with Release after every other write of the
//! start-up (the AP's `lock xchg` on it is a full barrier); [`Trampoline::disarm`] swaps it back
//! with AcqRel, so exactly one of the AP and the BSP gets a given ticket.

use core::sync::atomic::{AtomicU32, Ordering};

/// Physical address of the trampoline (must be page aligned and below 1 MiB).
pub const TRAMP_PHYS: u64 = 0x8000;
/// The SIPI vector that starts an AP at [`TRAMP_PHYS`].
pub const SIPI_PAGE: u8 = (TRAMP_PHYS >> 12) as u8;

core::arch::global_asm!(
    ".set AP_TRAMP, {tramp}",
    include_str!("trampoline.S"),
    tramp = const TRAMP_PHYS,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_tramp_start: u8;
    static ap_tramp_data: u8;
    static ap_tramp_end: u8;
}

/// The patched quads at `ap_tramp_data` (same order as trampoline.S).
#[repr(C)]
struct Data {
    cr3: u64,
    efer: u64,
    stack_base: u64,
    stride: u64,
    entry: u64,
    ticket: u64,
}

#[repr(C, align(4096))]
struct Tables([[u64; 512]; 3]);

/// Trampoline page tables: L4, a PDPT and a PD for the identity map of 0–2 MiB.
static TABLES: crate::BootCell<Tables> = crate::BootCell::new(Tables([[0; 512]; 3]));

const PRESENT_WRITABLE: u64 = 0x3;
const HUGE: u64 = 0x80;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_NXE: u64 = 1 << 11;

/// An installed trampoline.
#[derive(Debug)]
pub struct Trampoline {
    ticket: &'static AtomicU32,
}

/// Why the trampoline could not be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// Low memory or the BSP's L4 is outside the direct map.
    Unmapped,
    /// The image (and so the trampoline's page tables) lies above 4 GiB.
    TablesTooHigh,
    /// The trampoline does not fit its page.
    TooLarge,
}

impl Trampoline {
    /// Copies the trampoline to [`TRAMP_PHYS`] and patches it. An AP given ticket `t` starts in
    /// 64-bit mode with `rsp = stack_base + t * stride` and calls `entry(t)`.
    ///
    /// # Safety
    ///
    /// Single-threaded boot on the BSP; the page at [`TRAMP_PHYS`] is not used by anything else
    /// for as long as APs may start; `stack_base + t * stride` is a free, mapped stack top for each
    /// ticket used; `entry` is mapped in the BSP's current page tables.
    pub unsafe fn install(
        stack_base: u64,
        stride: u64,
        entry: extern "C" fn(u64) -> !,
    ) -> Result<Self, InstallError> {
        let start = (&raw const ap_tramp_start) as u64;
        let len = (&raw const ap_tramp_end) as u64 - start;
        let data_off = (&raw const ap_tramp_data) as u64 - start;
        if len > 4096 {
            return Err(InstallError::TooLarge);
        }
        let dst = boot::arch::phys_to_virt(TRAMP_PHYS).ok_or(InstallError::Unmapped)?;
        let (_, cr3, _) = crate::x86::read_cr0_cr3_cr4();
        let l4_virt =
            boot::arch::phys_to_virt(cr3 & 0x000f_ffff_ffff_f000).ok_or(InstallError::Unmapped)?;
        let tables = TABLES.get() as u64;
        let tables_phys = tables - boot::arch::VOFF;
        if tables_phys + 3 * 4096 > 1 << 32 {
            return Err(InstallError::TablesTooHigh);
        }
        // SAFETY: single-threaded boot (caller's contract), so TABLES has no other user.
        let t = unsafe { &mut *TABLES.get() };
        // SAFETY: the BSP's L4 is a mapped page of 512 entries (CR3 through the direct map).
        t.0[0].copy_from_slice(unsafe { &*(l4_virt as *const [u64; 512]) });
        t.0[0][0] = (tables_phys + 4096) | PRESENT_WRITABLE;
        t.0[1][0] = (tables_phys + 2 * 4096) | PRESENT_WRITABLE;
        t.0[2][0] = HUGE | PRESENT_WRITABLE;
        // SAFETY: [dst, dst + len) is the free low page (caller's contract; the trampoline fits
        // it, checked above), disjoint from the image it is copied from.
        unsafe { core::ptr::copy_nonoverlapping(start as *const u8, dst as *mut u8, len as usize) };
        // SAFETY: EFER exists on every x86-64 CPU.
        let bsp_efer = unsafe { crate::x86::rdmsr(crate::x86::MSR_EFER) };
        let efer = bsp_efer & (EFER_SCE | EFER_NXE) | EFER_LME;
        let data = (dst + data_off) as *mut Data;
        let value = Data {
            cr3: tables_phys,
            efer,
            stack_base,
            stride,
            entry: entry as usize as u64,
            ticket: 0,
        };
        // SAFETY: `data` is the 8-aligned `ap_tramp_data` block inside the copy just made.
        unsafe { data.write(value) };
        let ticket = data
            .cast::<u8>()
            .wrapping_add(core::mem::offset_of!(Data, ticket))
            .cast::<u32>();
        // SAFETY: the ticket is an 8-aligned quad in the low page, which lives forever and is
        // only accessed atomically from now on (here and by the APs' `lock xchg`).
        let ticket = unsafe { AtomicU32::from_ptr(ticket) };
        Ok(Self { ticket })
    }

    /// Offers the trampoline to the next AP to start: it will run as CPU `ticket` (non-zero).
    pub fn arm(&self, ticket: u32) {
        // Release: publishes the caller's set-up of CPU `ticket` to the AP, whose `lock xchg`
        // (a full barrier) takes the ticket.
        self.ticket.store(ticket, Ordering::Release);
    }

    /// Whether an AP has taken the ticket.
    pub fn taken(&self) -> bool {
        // Acquire: pairs with the AP's `lock xchg`.
        self.ticket.load(Ordering::Acquire) == 0
    }

    /// Takes the ticket back; `true` if no AP had taken it (so none ever will).
    pub fn disarm(&self) -> bool {
        // AcqRel: one atomic swap decides between the BSP and a late AP.
        self.ticket.swap(0, Ordering::AcqRel) != 0
    }
}

const _: () = assert!(TRAMP_PHYS.is_multiple_of(4096) && TRAMP_PHYS < 0x10_0000);
