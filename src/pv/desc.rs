//! Guest descriptor tables: `set_gdt` (hypercall 2), `update_descriptor` (hypercall 10), each
//! vCPU's GDT record ([`GdtRecord`]) and the guest part of the GDT of the CPU a vCPU runs on
//! ([`load_gdt`]). What a descriptor may be is `hvcore::desc`'s.
//!
//! Semantics (Xen 4.17, `xen/arch/x86/pv/descriptor-tables.c`; spec §2.10):
//! - `set_gdt(frame_list, entries)`: `entries` (32 bits) above 7168 → `-EINVAL`; the list of
//!   ⌈entries / 512⌉ frames unreadable → `-EFAULT`; each frame must be the caller's and take a
//!   general and a `SegDesc` type reference (the first one validates the frame: every
//!   descriptor checked and rewritten to its stored form) else `-EINVAL` and nothing is held.
//!   Then the old frames are released, the new ones recorded, and this CPU's TLB flushed.
//!   `entries` 0 just drops the GDT. Everything after reading the list is [`install`], which
//!   `VCPUOP_initialise` also uses for a context's `gdt_frames`/`gdt_ents` (Xen's `pv_set_gdt`
//!   from `arch_set_info_guest`).
//! - `update_descriptor(maddr, desc)`: `maddr` 8-byte aligned and `desc` acceptable
//!   (`hvcore::desc::check`) else `-EINVAL`; the frame must be the caller's and take, for the
//!   write, a `SegDesc` type reference if it is a descriptor frame, else a writable one (so a
//!   page table is refused) else `-EINVAL`; the stored form is written with one 8-byte store.
//!
//! References: each frame of a [`GdtRecord`] holds one general and one `SegDesc` type
//! reference, taken by [`install`] (`set_gdt`, `VCPUOP_initialise`) and dropped when a later
//! `set_gdt` replaces it or by [`release`] (domain destruction, a failed initialise); the audit
//! counts them ([`GdtRecord::frames`]). So a GDT frame cannot be mapped writable (`-EBUSY`,
//! spec case 28) or written by `mmu_update` (`-EINVAL`, case 53) while it is in use.
//!
//! Loading: Xen maps a vCPU's GDT frames into its GDT; Argon's GDT is one static table per CPU,
//! so its guest part holds a copy of whole frames (as Xen maps whole frames), made by
//! [`load_gdt`] when a vCPU is switched in (before its data selectors are reloaded,
//! `pv::selectors`) and before each entry into the guest, unless this CPU already holds the
//! copy of that vCPU slot at the current GDT generation ([`GDT_GEN`], bumped after every change
//! of any record or write into a descriptor frame). A descriptor written while another vCPU
//! runs with that frame therefore reaches it at its next exit and entry, not at once as under
//! Xen.
//!
//! Orderings: a record is written only by the owner of its vCPU's context and read by that
//! owner (loading, the next `set_gdt`) or by the audit and destruction while the domain is
//! quiescent, like the base mirrors of `VcpuSlot`: Relaxed. `GDT_GEN` is bumped with a Release
//! RMW after the change it announces and read Acquire before a copy, so a CPU that sees the new
//! generation copies the new contents (frames are read with `PhysMem`'s Acquire loads); one that
//! still sees the old one copies at a later entry. `LOADED` is per CPU, touched only by its CPU:
//! Relaxed.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use abi::Errno;
use abi::selectors::{FIRST_RESERVED_GDT_ENTRY, FIRST_RESERVED_GDT_PAGE};
use hvcore::frame::{PageType, Released};
use hvcore::mem::{Mfn, PhysMem};
use smp::MAX_CPUS;

use super::hypercall::{Call, HcResult};
use crate::arch::gdt;
use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::domain::vcpu::VcpuSlot;

/// Descriptors in a frame.
const PER_FRAME: usize = 512;

/// The GDT a vCPU installed with `set_gdt`: its frames (MFNs) and entry count. All-zero is "no
/// GDT", so a zeroed `VcpuSlot` starts without one.
#[repr(C)]
pub struct GdtRecord {
    frames: [AtomicU64; FIRST_RESERVED_GDT_PAGE],
    ents: AtomicU32,
}

impl GdtRecord {
    /// The entry count (`gdt_ents`).
    pub fn ents(&self) -> u32 {
        // Relaxed: see the module head.
        self.ents.load(Ordering::Relaxed)
    }

    /// The frames in use (⌈ents / 512⌉ of them), each holding a `SegDesc` reference.
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        let n = (self.ents() as usize).div_ceil(PER_FRAME);
        // Relaxed: see the module head.
        self.frames[..n.min(FIRST_RESERVED_GDT_PAGE)]
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
    }

    /// Records `frames` and `ents` (by the context's owner); the old frames are returned.
    fn replace(&self, frames: &[u64], ents: u32) -> ([u64; FIRST_RESERVED_GDT_PAGE], usize) {
        let mut old = [0u64; FIRST_RESERVED_GDT_PAGE];
        let mut n = 0;
        for (slot, f) in old.iter_mut().zip(self.frames()) {
            *slot = f;
            n += 1;
        }
        for (i, slot) in self.frames.iter().enumerate() {
            // Relaxed: see the module head.
            slot.store(frames.get(i).copied().unwrap_or(0), Ordering::Relaxed);
        }
        // Relaxed: see the module head.
        self.ents.store(ents, Ordering::Relaxed);
        (old, n)
    }
}

/// The GDT generation: bumped after any record changes or a descriptor frame is written.
/// Starts at 1 so that a CPU that never loaded (generation 0) always loads.
static GDT_GEN: AtomicU64 = AtomicU64::new(1);

/// What the guest part of one CPU's GDT holds.
struct Loaded {
    /// The `VcpuSlot` (address) whose copy it is.
    slot: AtomicUsize,
    /// The generation it was copied at.
    generation: AtomicU64,
    /// Frames copied (entries `0 .. 512 * frames` are non-zero at most).
    frames: AtomicUsize,
}

static LOADED: [Loaded; MAX_CPUS] = [const {
    Loaded {
        slot: AtomicUsize::new(0),
        generation: AtomicU64::new(0),
        frames: AtomicUsize::new(0),
    }
}; MAX_CPUS];

fn bump_generation() {
    // Release: the record change or descriptor write before it happens-before the copy of a
    // CPU whose Acquire load in `load_gdt` sees the new value.
    GDT_GEN.fetch_add(1, Ordering::Release);
}

/// Makes the guest part of this CPU's GDT a copy of the GDT of the vCPU in `slot`, which is
/// about to run here (the caller owns its context; interrupts are off).
pub fn load_gdt(hv: &Hv<'_>, slot: &VcpuSlot) {
    let Some(here) = LOADED.get(crate::cpu::percpu::this_index()) else {
        return;
    };
    // Acquire: pairs with the Release in `bump_generation`.
    let generation = GDT_GEN.load(Ordering::Acquire);
    let key = core::ptr::from_ref(slot) as usize;
    // Relaxed: this CPU's own words (module head).
    if here.generation.load(Ordering::Relaxed) == generation
        && here.slot.load(Ordering::Relaxed) == key
    {
        return;
    }
    let mut buf = [0u64; PER_FRAME];
    let mut copied = 0;
    for (k, mfn) in slot.gdt.frames().enumerate() {
        for (i, d) in buf.iter_mut().enumerate() {
            *d = hv.mem.read_entry(Mfn(mfn), i);
        }
        gdt::set_guest_entries(k * PER_FRAME, &buf);
        copied += 1;
    }
    // Relaxed: this CPU's own words (module head).
    let before = here.frames.load(Ordering::Relaxed);
    buf.fill(0);
    for k in copied..before {
        gdt::set_guest_entries(k * PER_FRAME, &buf);
    }
    here.frames.store(copied, Ordering::Relaxed);
    here.slot.store(key, Ordering::Relaxed);
    here.generation.store(generation, Ordering::Relaxed);
}

/// Drops one general and one type reference the hypervisor holds on a descriptor frame.
fn put_frame(hv: &Hv<'_>, domid: u16, mfn: u64) {
    match hv.ft.put_page_and_type(&hv.mem, Mfn(mfn)) {
        Ok(Released::Held) => {}
        Ok(Released::Freed { .. }) => {
            // Impossible while the domain holds the frame's allocation (released only after
            // `release`): report rather than lose the frame.
            error!("d{domid}: GDT frame {mfn:#x} freed by its last put; it is leaked");
        }
        Err(e) => error!("d{domid}: dropping GDT frame {mfn:#x}: {e}"),
    }
}

/// `set_gdt(frame_list, entries)`.
pub fn set_gdt(c: &mut Call<'_, '_>, list: u64, entries: u64) -> HcResult {
    // Xen's argument is an `unsigned int`.
    let entries = entries as u32;
    if entries as usize > FIRST_RESERVED_GDT_ENTRY {
        return Err(Errno::EINVAL);
    }
    let n = (entries as usize).div_ceil(PER_FRAME);
    let mut bytes = [0u8; 8 * FIRST_RESERVED_GDT_PAGE];
    c.gm()
        .read(list, &mut bytes[..8 * n])
        .map_err(|_| Errno::EFAULT)?;
    let mut frames = [0u64; FIRST_RESERVED_GDT_PAGE];
    for (f, b) in frames.iter_mut().zip(bytes.chunks_exact(8)).take(n) {
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        *f = u64::from_le_bytes(word);
    }
    install(c.hv, c.dom, &c.dom.vcpus[c.v], &frames[..n], entries)?;
    crate::domain::flush::local_flush();
    Ok(0)
}

/// Makes `frames` (MFNs already in hypervisor memory; the first ⌈entries / 512⌉ are used) with
/// `entries` descriptors the GDT of the vCPU in `slot` of `dom`, whose context the caller owns
/// (it runs it, or is initialising it): `set_gdt`'s checks and references (module head), then
/// the old GDT is released. On `-EINVAL` nothing is held and the old GDT stays. The caller
/// flushes what it must (`set_gdt` its own TLB; a vCPU being initialised has no translations).
pub fn install(
    hv: &Hv<'_>,
    dom: &Domain,
    slot: &VcpuSlot,
    frames: &[u64],
    entries: u32,
) -> Result<(), Errno> {
    if entries as usize > FIRST_RESERVED_GDT_ENTRY {
        return Err(Errno::EINVAL);
    }
    let frames = frames
        .get(..(entries as usize).div_ceil(PER_FRAME))
        .ok_or(Errno::EINVAL)?;
    let ctx = dom.ctx(&hv.slots);
    for (i, &mfn) in frames.iter().enumerate() {
        if hv
            .ft
            .get_page_and_type(&hv.mem, &ctx, Mfn(mfn), PageType::SegDesc)
            .is_err()
        {
            for &f in &frames[..i] {
                put_frame(hv, dom.id, f);
            }
            return Err(Errno::EINVAL);
        }
    }
    let (old, nr_old) = slot.gdt.replace(frames, entries);
    for &f in &old[..nr_old] {
        put_frame(hv, dom.id, f);
    }
    bump_generation();
    Ok(())
}

/// `update_descriptor(maddr, desc)`.
pub fn update_descriptor(c: &mut Call<'_, '_>, maddr: u64, desc: u64) -> HcResult {
    if !maddr.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let stored = hvcore::desc::check(desc).ok_or(Errno::EINVAL)?;
    let (hv, dom) = (c.hv, c.dom);
    let mfn = Mfn(maddr >> 12);
    if mfn.index().is_none_or(|i| i >= hv.mem.frames()) {
        return Err(Errno::EINVAL);
    }
    hv.ft.get_page(mfn, dom.id).map_err(|_| Errno::EINVAL)?;
    let ty = match hv.ft.state(mfn) {
        Ok(s) if s.ty() == PageType::SegDesc => PageType::SegDesc,
        _ => PageType::Writable,
    };
    let ctx = dom.ctx(&hv.slots);
    let typed = hv.ft.get_page_type(&hv.mem, &ctx, mfn, ty);
    if typed.is_ok() {
        hv.mem.write_entry(mfn, (maddr as usize % 4096) / 8, stored);
        if let Err(e) = hv.ft.put_page_type(&hv.mem, mfn) {
            error!("d{}: dropping the write reference on {mfn:?}: {e}", dom.id);
        }
        if ty == PageType::SegDesc {
            bump_generation();
        }
    }
    if let Ok(Released::Freed { .. }) = hv.ft.put_page(mfn) {
        // As in `put_frame`: the domain's allocation reference outlives every call.
        error!(
            "d{}: frame {mfn:?} freed by update_descriptor; it is leaked",
            dom.id
        );
    }
    typed.map(|()| 0).map_err(|_| Errno::EINVAL)
}

/// Drops the GDT of the vCPU in `slot`, which no CPU runs: its domain is being destroyed, or
/// `VCPUOP_initialise` took its GDT and then failed (the caller owns the context).
pub fn release(hv: &Hv<'_>, domid: u16, slot: &VcpuSlot) {
    let (old, n) = slot.gdt.replace(&[], 0);
    for &f in &old[..n] {
        put_frame(hv, domid, f);
    }
    if n > 0 {
        bump_generation();
    }
}
