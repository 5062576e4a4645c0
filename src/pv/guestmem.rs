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
//! retype, and a retype that came first makes the write fault). [`GuestMem::l1e`] hands out the
//! leaf entry of the same walk, unchecked, for the writable-page-table emulation (`ptwr`), which
//! only acts on it through the frame table.
//!
//! Reads remember the last page they went to (the guest page, its frame and the general
//! reference on it, held until the accessor is dropped or re-pointed with `set_l4`), so a
//! hypercall reading a batch of requests walks the tables once per page, not once per request.
//! That is a TLB of one entry that lives for one hypercall: Xen reads guest memory through the
//! CPU's TLB, which the hypercalls do not flush before they return either (an L1 change is the
//! guest's to flush; an L2–L4 change is flushed when the batch ends), so a read that still sees
//! a page through the mapping the hypercall started with is what Xen may do too. The held
//! reference keeps the frame the domain's (it cannot be freed and reused) while it is cached;
//! it takes no type, so the frame may be retyped meanwhile, and reading a page table is
//! harmless. Writes are never cached: each takes and drops its writable type reference.
//!
//! The walk reads entries with Acquire loads (`PhysMem`), pairing with the Release/AcqRel of
//! page-table updates. Guest data is copied with volatile accesses (8-byte words where source
//! and length allow, else bytes): the guest may change it concurrently, and the hypervisor must
//! not assume it stable (every value read is checked after the copy, never re-read).

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
pub struct GuestMem<'a> {
    ft: &'a FrameTable<'a>,
    mem: &'a DirectMem,
    /// The L4 walked: follows the vCPU's base when a hypercall changes it (`set_l4`).
    l4: Cell<u64>,
    /// The domain's context: its id for ownership checks, and for the writable type
    /// references of writes.
    ctx: HvCtx<'a>,
    /// The page the last read went to, with a general reference held on its frame.
    cached: Cell<Option<ReadPage>>,
}

/// A guest page a read went to (module head).
#[derive(Clone, Copy)]
struct ReadPage {
    /// The guest page number (`va >> 12`).
    vpn: u64,
    /// Its frame, on which the accessor holds one general reference.
    mfn: Mfn,
    /// The frame's direct-map address.
    base: u64,
}

impl<'a> GuestMem<'a> {
    /// The address space of L4 `l4` (an MFN) of the domain whose context is `ctx`.
    pub fn new(ft: &'a FrameTable<'a>, mem: &'a DirectMem, l4: u64, ctx: HvCtx<'a>) -> Self {
        Self {
            ft,
            mem,
            l4: Cell::new(l4),
            ctx,
            cached: Cell::new(None),
        }
    }

    /// Walks `l4` from now on (the vCPU's base changed in the middle of a hypercall): the
    /// cached page is forgotten, as a CR3 load flushes the TLB.
    pub fn set_l4(&self, l4: u64) {
        self.forget();
        self.l4.set(l4);
    }

    /// Drops the cached page's reference.
    fn forget(&self) {
        if let Some(p) = self.cached.take() {
            self.put(p.mfn);
        }
    }

    /// Drops a general reference this accessor took on `mfn`.
    fn put(&self, mfn: Mfn) {
        if let Ok(Released::Freed { .. }) = self.ft.put_page(mfn) {
            // Impossible while the domain holds the frame's allocation reference (frames are
            // only released when it is destroyed): report rather than lose the frame.
            error!(
                "d{}: frame {mfn:?} freed by a guest copy; it is leaked",
                self.ctx.domid
            );
        }
    }

    /// The direct-map address of the page holding `va`, readable by the guest: the cached
    /// page, or a fresh walk whose frame becomes the cached one.
    fn read_base(&self, va: u64) -> Result<u64, Fault> {
        let vpn = va / PAGE;
        if let Some(p) = self.cached.get().filter(|p| p.vpn == vpn) {
            return Ok(p.base);
        }
        let mfn = Mfn(self.translate(va, false)?);
        self.ft
            .get_page(mfn, self.ctx.domid)
            .map_err(|_| Fault { va })?;
        let Some(base) = boot::arch::phys_to_virt(mfn.0 * PAGE) else {
            self.put(mfn);
            return Err(Fault { va });
        };
        self.forget();
        self.cached.set(Some(ReadPage { vpn, mfn, base }));
        Ok(base)
    }

    /// May the guest access through entry `e` (`write`: for writing)?
    fn allows(e: u64, write: bool) -> bool {
        present(e) && e & PTE_US != 0 && (!write || e & PTE_RW != 0)
    }

    /// The L1 entry for `va`, unchecked, reached through L4–L2 entries that allow the access
    /// (`write`: for writing) and are not superpages.
    fn walk(&self, va: u64, write: bool) -> Result<u64, Fault> {
        let fault = Fault { va };
        if !is_guest_va(va) {
            return Err(fault);
        }
        let entry = |table: u64, shift: u32| {
            if table == 0 || table >= self.mem.frames() as u64 {
                return Err(fault);
            }
            let index = ((va >> shift) & 511) as usize;
            Ok(self.mem.read_entry(Mfn(table), index))
        };
        let mut table = self.l4.get();
        for shift in [39u32, 30, 21] {
            let e = entry(table, shift)?;
            if !Self::allows(e, write) || e & PTE_PSE != 0 {
                return Err(fault);
            }
            table = frame_of(e);
        }
        entry(table, 12)
    }

    /// The L1 entry that maps `va` as the guest may read it, whatever its own permissions (the
    /// writable-page-table check, `ptwr`, reads the leaf behind a write fault).
    pub fn l1e(&self, va: u64) -> Result<u64, Fault> {
        self.walk(va, false)
    }

    /// The MFN mapped at `va`, if the guest may access it (`write`: for writing).
    fn translate(&self, va: u64, write: bool) -> Result<u64, Fault> {
        let e = self.walk(va, write)?;
        if !Self::allows(e, write) {
            return Err(Fault { va });
        }
        Ok(frame_of(e))
    }

    /// Runs `f` on the direct-map address of `va`'s frame (plus offset) while holding a
    /// general and a writable type reference on the frame; the bytes written from `va` must
    /// stay inside one page.
    fn with_writable_page<R>(&self, va: u64, f: impl FnOnce(u64) -> R) -> Result<R, Fault> {
        let mfn = Mfn(self.translate(va, true)?);
        self.ft
            .get_page(mfn, self.ctx.domid)
            .map_err(|_| Fault { va })?;
        let typed = self
            .ft
            .get_page_type(self.mem, &self.ctx, mfn, PageType::Writable)
            .is_ok();
        let addr = boot::arch::phys_to_virt(mfn.0 * PAGE + (va % PAGE));
        let r = if typed { addr.map(f) } else { None };
        if typed && self.ft.put_page_type(self.mem, mfn).is_err() {
            error!(
                "d{}: dropping a copy's writable reference on {mfn:?} failed",
                self.ctx.domid
            );
        }
        self.put(mfn);
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
    #[inline]
    pub fn read(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        // The common case first: the range lies in the cached page.
        if let Some(p) = self.cached.get()
            && va / PAGE == p.vpn
            && va % PAGE + buf.len() as u64 <= PAGE
        {
            Self::copy_in(p.base + va % PAGE, buf);
            return Ok(());
        }
        self.read_walking(va, buf)
    }

    /// [`Self::read`] through the tables, page by page (out of line: the common case above
    /// stays small).
    #[inline(never)]
    fn read_walking(&self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        Self::chunks(va, buf.len(), |at, off, n| {
            let src = self.read_base(at)? + at % PAGE;
            Self::copy_in(src, &mut buf[off..off + n]);
            Ok(())
        })
    }

    /// Copies `dst.len()` bytes from direct-map address `src`, which lies in a guest frame this
    /// accessor holds a general reference on (`read_base`), with the whole range in that frame.
    fn copy_in(src: u64, dst: &mut [u8]) {
        let mut i = 0;
        if src.is_multiple_of(8) {
            for word in dst.chunks_exact_mut(8) {
                let p = (src + i as u64) as *const u64;
                // SAFETY: `src..src + dst.len()` lies inside one guest frame we hold a general
                // reference on, mapped by the direct map (the caller's contract); `p` is 8-byte
                // aligned (`src` is, and `i` is a multiple of 8). Volatile because the guest may
                // write it.
                let w = unsafe { core::ptr::read_volatile(p) };
                word.copy_from_slice(&w.to_le_bytes());
                i += 8;
            }
        }
        for (j, b) in dst[i..].iter_mut().enumerate() {
            let p = (src + (i + j) as u64) as *const u8;
            // SAFETY: as above, byte by byte.
            *b = unsafe { core::ptr::read_volatile(p) };
        }
    }

    /// Copies `data` to guest address `va`.
    pub fn write(&self, va: u64, data: &[u8]) -> Result<(), Fault> {
        Self::chunks(va, data.len(), |at, off, n| {
            self.with_writable_page(at, |dst| {
                for (i, &b) in data[off..off + n].iter().enumerate() {
                    let p = (dst + i as u64) as *mut u8;
                    // SAFETY: `dst..dst + n` lies inside one guest frame we hold a general and a
                    // writable type reference on (so it is not a page table or descriptor frame
                    // while we write), mapped by the direct map; volatile because the guest may
                    // read or write it concurrently.
                    unsafe { core::ptr::write_volatile(p, b) };
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

impl Drop for GuestMem<'_> {
    fn drop(&mut self) {
        self.forget();
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
