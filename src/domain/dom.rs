//! A domain and its vCPUs as plain data ([`Domain`], [`Vcpu`]), the hypervisor-side state the
//! PV ABI needs: registers, trap table, callbacks, stacks, segment bases, page-table bases,
//! vm_assist, shutdown state and the console line buffer.
//!
//! Invariants:
//! - Both types are all-zero-valid (`Zeroable`): a domain is created zeroed in frames of its own
//!   (`FrameBox`) and filled by the builder, with no large stack temporaries. So optional frames
//!   are MFNs with 0 for "none" (frame 0 is in the first MiB, never given to a guest).
//! - `Vcpu::kernel_l4`/`user_l4`, when non-zero, each hold one general and one L4 type
//!   reference, taken when installed and dropped by `destroy`.
//! - `first_mfn..first_mfn + nr_pages` are exactly the frames allocated to the domain (PFN `n`
//!   is MFN `first_mfn + n` at creation); `shared_info` is assigned to the domain too and carries
//!   one extra, hypervisor-held writable type reference so it can never become a page table.

use core::sync::atomic::Ordering;

use abi::TrapInfo;
use abi::sched::SHUTDOWN_CRASH;
use abi::shared_info::vcpu_info_offset;
use hvcore::domain::DomId;

use super::machine::{HvCtx, XenSlots, Zeroable, shared_u8, shared_u64};
use crate::pv::regs::GuestRegs;

/// vCPUs a domain may have.
pub const MAX_VCPUS: usize = 8;
/// Bytes of console output held until a newline.
pub const CONSOLE_LINE: usize = 256;

/// One virtual CPU.
#[repr(C)]
pub struct Vcpu {
    /// Saved registers while not running.
    pub regs: GuestRegs,
    /// The virtual IDT (`set_trap_table`); address 0 = no handler.
    pub trap_table: [TrapInfo; 256],
    /// Set by the builder (vCPU 0) or VCPUOP_up.
    pub online: bool,
    /// Guest kernel mode (else guest user mode).
    pub kernel_mode: bool,
    /// Kernel stack for user → kernel transitions (`stack_switch`).
    pub kernel_ss: u64,
    pub kernel_sp: u64,
    /// Callbacks (`set_callbacks` / `callback_op`).
    pub event_callback: u64,
    pub failsafe_callback: u64,
    pub syscall_callback: u64,
    /// Entering the syscall callback masks events.
    pub syscall_masks_events: bool,
    /// Segment bases (`set_segment_base`).
    pub fs_base: u64,
    pub gs_base_kernel: u64,
    pub gs_base_user: u64,
    /// Kernel / user page-table base (L4 MFN), 0 = none.
    pub kernel_l4: u64,
    pub user_l4: u64,
    /// The LDT `MMUEXT_SET_LDT` recorded (not loaded: guest descriptor tables are not
    /// supported yet).
    pub ldt_base: u64,
    pub ldt_ents: u32,
}

/// One domain.
#[repr(C)]
pub struct Domain {
    pub id: DomId,
    pub privileged: bool,
    pub linear_pt: bool,
    pub first_mfn: u64,
    pub nr_pages: u64,
    /// The shared_info frame (0 until allocated).
    pub shared_info: u64,
    /// Enabled `VMASST_TYPE_*` bits.
    pub vm_assist: u64,
    /// `XENFEAT_*` bits the kernel required.
    pub features_required: u32,
    /// Shutdown reason + 1 once the domain has shut down (0 = running).
    shutdown: u32,
    /// `SCHEDOP_shutdown_code`'s reason + 1 (0 = none).
    pub shutdown_code: u32,
    pub nr_vcpus: u32,
    pub vcpus: [Vcpu; MAX_VCPUS],
    console: [u8; CONSOLE_LINE],
    console_len: usize,
}

// SAFETY: every field of Vcpu is an integer, bool, `GuestRegs` (u64s) or `TrapInfo` (integers),
// for which all-zero bytes are valid.
unsafe impl Zeroable for Vcpu {}
// SAFETY: every field is an integer, bool, byte array or an array of `Vcpu` (Zeroable above).
unsafe impl Zeroable for Domain {}

impl Domain {
    /// The validation context for this domain's page tables.
    pub fn ctx<'a>(&self, slots: &'a XenSlots) -> HvCtx<'a> {
        HvCtx {
            domid: self.id,
            privileged: self.privileged,
            linear_pt: self.linear_pt,
            slots,
        }
    }

    /// Why the domain shut down, if it did.
    pub fn shutdown_reason(&self) -> Option<u32> {
        self.shutdown.checked_sub(1)
    }

    /// Records a shutdown (the first reason wins).
    pub fn shut_down(&mut self, reason: u32) {
        if self.shutdown == 0 {
            self.shutdown = reason.saturating_add(1);
        }
    }

    /// Kills the domain: prints `argon: dN: crashed: <why>` (at every log level) and a
    /// register dump of vCPU `v`.
    pub fn crash(&mut self, v: usize, why: core::fmt::Arguments<'_>) {
        let id = self.id;
        crate::console::raw(format_args!("argon: d{id}: crashed: {why}\n"));
        if let Some(vcpu) = self.vcpus.get(v) {
            crate::console::raw(format_args!("d{id} vCPU {v} registers:\n{}\n", vcpu.regs));
        }
        self.shut_down(SHUTDOWN_CRASH);
    }

    /// vCPU `v`'s `evtchn_upcall_mask` in shared_info (1 = events masked).
    pub fn upcall_mask(&self, v: usize) -> u8 {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 1);
        // Relaxed: a flag the guest flips itself; nothing else is published with it.
        at.and_then(|o| shared_u8(self.shared_info, o))
            .map_or(1, |m| m.load(Ordering::Relaxed))
    }

    /// Sets vCPU `v`'s upcall mask.
    pub fn set_upcall_mask(&self, v: usize, masked: bool) {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 1);
        if let Some(m) = at.and_then(|o| shared_u8(self.shared_info, o)) {
            // Relaxed: as in `upcall_mask`.
            m.store(u8::from(masked), Ordering::Relaxed);
        }
    }

    /// Records the faulting address of a bounced page fault in vCPU `v`'s `arch.cr2`.
    pub fn set_guest_cr2(&self, v: usize, cr2: u64) {
        let at = vcpu_info_offset(v).map(|o| o as u64 + 16);
        if let Some(w) = at.and_then(|o| shared_u64(self.shared_info, o)) {
            // Relaxed: read by the guest's handler after the bounce, on this same vCPU.
            w.store(cr2, Ordering::Relaxed);
        }
    }

    /// Console output from the guest: whole lines are printed as `(dN) <line>`; control
    /// characters other than tab are shown as `?`.
    pub fn console_write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => self.console_flush(),
                b'\r' => {}
                b'\t' | 0x20..=0x7e => self.console_push(b),
                _ => self.console_push(b'?'),
            }
        }
    }

    fn console_push(&mut self, b: u8) {
        if self.console_len == CONSOLE_LINE {
            self.console_flush();
        }
        self.console[self.console_len] = b;
        self.console_len += 1;
    }

    /// Prints what is buffered as one line.
    pub fn console_flush(&mut self) {
        let line = core::str::from_utf8(&self.console[..self.console_len]).unwrap_or("?");
        crate::console::raw(format_args!("(d{}) {line}\n", self.id));
        self.console_len = 0;
    }

    /// Anything still buffered (printed when the domain ends).
    pub fn console_pending(&self) -> bool {
        self.console_len > 0
    }
}
