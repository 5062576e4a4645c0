//! The one checked accessor for guest virtual memory ([`GuestMem`]). Every hypercall argument
//! that is a guest pointer, and every bounce frame written to a guest stack, goes through it;
//! nothing else in the hypervisor dereferences a guest address.
//!
//! How: a software walk of the vCPU's current L4 (read through the direct map, never through
//! the guest's own mappings) with the permissions the guest itself has — present and user at
//! every level, writable at every level for a write, no superpages (PV forbids them) — then a
//! copy through the direct map while holding a general reference on the frame, taken only if
//! the domain owns it. So a bad pointer (unmapped, non-canonical, in the hypervisor's hole,
//! read-only for a write, a foreign or MMIO frame) is a [`Fault`], never a hypervisor fault, and
//! the frame cannot be freed and reused while it is copied.
//!
//! The walk reads entries with Acquire loads (`PhysMem`), pairing with the Release/AcqRel of
//! page-table updates. Guest data is copied with volatile byte accesses: the guest may change
//! it concurrently, and the hypervisor must not assume it stable (every value read is checked
//! after the copy, never re-read).

use core::cell::Cell;

use abi::Wire;
use abi::layout::is_guest_va;
use hvcore::domain::DomId;
use hvcore::frame::{FrameTable, Released};
use hvcore::mem::{Mfn, PhysMem};
use hvcore::pt::{PTE_PSE, PTE_RW, PTE_US, frame_of, present};

use crate::domain::machine::DirectMem;

pub use hvcore::hypercall::Fault;

const PAGE: u64 = 4096;

/// A domain's address space as seen through one of its L4 tables.
#[derive(Clone)]
pub struct GuestMem<'a> {
    ft: &'a FrameTable<'a>,
    mem: &'a DirectMem,
    /// The L4 walked: follows the vCPU's base when a hypercall changes it (`set_l4`).
    l4: Cell<u64>,
    dom: DomId,
}

impl<'a> GuestMem<'a> {
    /// The address space of L4 `l4` (an MFN) of domain `dom`.
    pub fn new(ft: &'a FrameTable<'a>, mem: &'a DirectMem, l4: u64, dom: DomId) -> Self {
        Self { ft, mem, l4: Cell::new(l4), dom }
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
    /// general reference on the frame; `len` bytes from `va` must stay inside one page.
    fn with_page<R>(&self, va: u64, write: bool, f: impl FnOnce(*mut u8) -> R) -> Result<R, Fault> {
        let mfn = self.translate(va, write)?;
        self.ft
            .get_page(Mfn(mfn), self.dom)
            .map_err(|_| Fault { va })?;
        let ptr = boot::arch::phys_to_virt(mfn * PAGE + (va % PAGE)).map(|v| v as *mut u8);
        let r = ptr.map(f);
        if let Ok(Released::Freed { .. }) = self.ft.put_page(Mfn(mfn)) {
            // Impossible while the mapping we walked holds its own reference (one vCPU per
            // domain runs, and it is in this hypercall): report rather than lose the frame.
            error!(
                "d{}: frame {mfn:#x} freed by a guest copy; it is leaked",
                self.dom
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
                    // SAFETY: as in `read`; the guest maps the frame writable, and it is an
                    // ordinary frame of the domain (never a validated page table: those are
                    // never mapped writable).
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
