//! The one checked accessor for guest virtual memory ([`GuestMem`]). Every hypercall argument
//! that is a guest pointer, and every bounce frame written to a guest stack, goes through it;
//! nothing else in the hypervisor dereferences a guest address.
//!
//! How: a software walk of the vCPU's current L4 (read through the direct map, never through
//! the guest's own mappings) with the permissions the guest itself has — present and user at
//! every level, writable at every level for a write, no superpages (PV forbids them) — then a
//! copy through the direct map while holding a general reference on the frame, taken only if
//! the domain owns it, and for a write also a writable type reference. So a bad pointer
//! (unmapped, non-canonical, in the hypervisor's hole, read-only for a write, a foreign or MMIO
//! frame) is a [`Fault`], never a hypervisor fault; the frame cannot be freed and reused while it
//! is copied; and a write can never land in a page table, even when another vCPU unmaps the
//! frame and makes it one between the walk and the copy (the type reference excludes the
//! retype, and a retype that came first makes the write fault).
//!
//! The walk reads entries with Acquire loads (`PhysMem`), pairing with the Release/AcqRel of
//! page-table updates. Guest data is copied with volatile byte accesses: the guest may change
//! it concurrently, and the hypervisor must not assume it stable (every value read is checked
//! after the copy, never re-read).

use core::cell::Cell;

use abi::Wire;
use abi::layout::is_guest_va;
use hvcore::frame::{FrameTable, PageType, Released};
use hvcore::mem::{Mfn, PhysMem};
use hvcore::pt::{PTE_PSE, PTE_RW, PTE_US, frame_of, present};

use crate::domain::machine::{DirectMem, HvCtx};

pub use hvcore::hypercall::Fault;

const PAGE: u64 = 4096;

/// A domain's address space as seen through one of its L4 tables.
#[derive(Clone)]
pub struct GuestMem<'a> {
    ft: &'a FrameTable<'a>,
    mem: &'a DirectMem,
    /// The L4 walked: follows the vCPU's base when a hypercall changes it (`set_l4`).
    l4: Cell<u64>,
    /// The domain's context: its id for ownership checks, and for the writable type
    /// references of writes.
    ctx: HvCtx<'a>,
}

impl<'a> GuestMem<'a> {
    /// The address space of L4 `l4` (an MFN) of the domain whose context is `ctx`.
    pub fn new(ft: &'a FrameTable<'a>, mem: &'a DirectMem, l4: u64, ctx: HvCtx<'a>) -> Self {
        Self {
            ft,
            mem,
            l4: Cell::new(l4),
            ctx,
        }
    }

    /// Walks `l4` from now on (the vCPU's base changed in the middle of a hypercall).
    pub fn set_l4(&self, l4: u64) {
        self.l4.set(l4);
    }

    /// The MFN mapped at `va`, if the guest may access it (`write`: for writing).
    fn translate(&self, va: u64, write: bool) -> Result<u64, Fault> {
        let fault = Fault { va };
        if !is_guest_va(va) {
            return Err(fault);
        }
        let mut table = self.l4.get();
        for shift in [39u32, 30, 21, 12] {
            if table == 0 || table >= self.mem.frames() as u64 {
                return Err(fault);
            }
            let e = self
                .mem
                .read_entry(Mfn(table), ((va >> shift) & 511) as usize);
            let allowed = present(e) && e & PTE_US != 0 && (!write || e & PTE_RW != 0);
            if !allowed || (shift != 12 && e & PTE_PSE != 0) {
                return Err(fault);
            }
            table = frame_of(e);
        }
        Ok(table)
    }

    /// Runs `f` on the direct-map address of `va`'s frame (plus offset) while holding a
    /// general reference on the frame (and for a `write`, a writable type reference); `len`
    /// bytes from `va` must stay inside one page.
    fn with_page<R>(&self, va: u64, write: bool, f: impl FnOnce(*mut u8) -> R) -> Result<R, Fault> {
        let mfn = Mfn(self.translate(va, write)?);
        self.ft
            .get_page(mfn, self.ctx.domid)
            .map_err(|_| Fault { va })?;
        let typed = !write
            || self
                .ft
                .get_page_type(self.mem, &self.ctx, mfn, PageType::Writable)
                .is_ok();
        let ptr = boot::arch::phys_to_virt(mfn.0 * PAGE + (va % PAGE)).map(|v| v as *mut u8);
        let r = if typed { ptr.map(f) } else { None };
        if write && typed && self.ft.put_page_type(self.mem, mfn).is_err() {
            error!(
                "d{}: dropping a copy's writable reference on {mfn:?} failed",
                self.ctx.domid
            );
        }
        if let Ok(Released::Freed { .. }) = self.ft.put_page(mfn) {
            // Impossible while the domain holds the frame's allocation reference (frames are
            // only released when it is destroyed): report rather than lose the frame.
            error!(
                "d{}: frame {mfn:?} freed by a guest copy; it is leaked",
                self.ctx.domid
            );
        }
        r.ok_or(Fault { va })
    }

    /// Calls `f(va, offset_in_buffer, len)` for each page-bounded chunk of `[va, va + len)`.
    fn chunks(
        va: u64,
        len: usize,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), Fault>,
    ) -> Result<(), Fault> {
        let mut done = 0usize;
        while done < len {
            let at = va.checked_add(done as u64).ok_or(Fault { va })?;
            let n = ((PAGE - at % PAGE) as usize).min(len - done);
            f(at, done, n)?;
            done += n;
        }
        Ok(())
    }

    /// Copies `buf.len()` bytes from guest address `va`.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let len = buf.len();
        Self::chunks(va, len, |at, off, n| {
            self.with_page(at, false, |src| {
                for (i, dst) in buf[off..off + n].iter_mut().enumerate() {
                    let byte = src.wrapping_add(i);
                    // SAFETY: `src..src + n` lies inside one guest frame we hold a reference on,
                    // mapped by the direct map; volatile because the guest may write it.
                    *dst = unsafe { core::ptr::read_volatile(byte) };
                }
            })
        })
    }

    /// Copies `data` to guest address `va`.
    pub fn write(&self, va: u64, data: &[u8]) -> Result<(), Fault> {
        Self::chunks(va, data.len(), |at, off, n| {
            self.with_page(at, true, |dst| {
                for (i, &b) in data[off..off + n].iter().enumerate() {
                    let byte = dst.wrapping_add(i);
                    // SAFETY: as in `read`; we hold a writable type reference on the frame,
                    // so it is not a page table or descriptor frame while we write.
                    unsafe { core::ptr::write_volatile(byte, b) };
                }
            })
        })
    }

    /// Writes a little-endian u64.
    pub fn write_u64(&self, va: u64, value: u64) -> Result<(), Fault> {
        self.write(va, &value.to_le_bytes())
    }

    /// Reads an ABI structure of at most 256 bytes.
    pub fn read_wire<T: Wire>(&self, va: u64) -> Result<T, Fault> {
        let mut b = [0u8; 256];
        let buf = b.get_mut(..T::SIZE).ok_or(Fault { va })?;
        self.read(va, buf)?;
        T::read_from(buf).map_err(|_| Fault { va })
    }

    /// Writes an ABI structure of at most 256 bytes.
    pub fn write_wire<T: Wire>(&self, va: u64, value: &T) -> Result<(), Fault> {
        let mut b = [0u8; 256];
        let buf = b.get_mut(..T::SIZE).ok_or(Fault { va })?;
        value.write_to(buf).map_err(|_| Fault { va })?;
        self.write(va, buf)
    }
}

/// The same accessor, as `hvcore::hypercall` sees it.
impl hvcore::hypercall::GuestMem for GuestMem<'_> {
    fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        GuestMem::read(self, va, buf)
    }

    fn write(&self, va: u64, buf: &[u8]) -> Result<(), Fault> {
        GuestMem::write(self, va, buf)
    }
}
