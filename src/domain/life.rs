//! The end of a domain's life: [`destroy`] gives every frame back, and [`extra_refs`] lists the
//! references the hypervisor holds outside page tables for the frame-table audit.
//!
//! Destroy order (Xen's `domain_relinquish_resources`, simplified): the caller has already
//! retired the domain (`sched`: no CPU runs its vCPUs or has its tables in CR3; other domains
//! may run on); then (1) drop the vCPUs' base-pointer and GDT-frame references
//! (`pv::desc::release`) and finish their deferred de-validations, (2) unpin every table the
//! domain pinned — each unpin may de-validate a whole tree, dropping the references its entries
//! held, (3) drop the hypervisor's type reference on shared_info, (4) release each frame's
//! allocation reference; a frame whose last reference that was goes back to the allocator, (5)
//! invalidate the M2P. Page-table references cannot form cycles (upper levels only point down
//! or, linearly, at tables that contain no linear entries), so after (1)–(3) nothing but
//! allocations remain, and a frame still referenced at (4) is a leak, reported and counted,
//! never reused.

use abi::layout::INVALID_M2P_ENTRY;
use abi::selectors::FIRST_RESERVED_GDT_PAGE;
use boot::frame_alloc::FrameAllocator;
use hvcore::audit::ExtraRef;
use hvcore::frame::{FrameTable, PageType, Released};
use hvcore::mem::Mfn;

use super::Hv;
use super::dom::{Domain, MAX_VCPUS};
use super::machine::FrameBox;

/// References held outside page tables: at most two bases, a deferred de-validation and 14 GDT
/// frames per vCPU, and shared_info.
pub const MAX_EXTRA: usize = (3 + FIRST_RESERVED_GDT_PAGE) * MAX_VCPUS + 1;

/// The domain's out-of-table references, for `FrameTable::audit`; returns how many.
pub fn extra_refs(ft: &FrameTable<'_>, dom: &Domain, out: &mut [ExtraRef; MAX_EXTRA]) -> usize {
    let mut n = 0;
    let mut push = |mfn: u64, ty| {
        if mfn != 0 && n < MAX_EXTRA {
            out[n] = ExtraRef {
                mfn: Mfn(mfn),
                ty: Some(ty),
            };
            n += 1;
        }
    };
    for v in &dom.vcpus {
        push(v.kernel_l4(), PageType::L4);
        push(v.user_l4(), PageType::L4);
        // A partial table keeps its type while its de-validation is pending.
        if let Ok(s) = ft.state(Mfn(v.old_table())) {
            push(v.old_table(), s.ty());
        }
        for f in v.gdt.frames() {
            push(f, PageType::SegDesc);
        }
    }
    push(dom.shared_info, PageType::Writable);
    n
}

fn release(hv: &Hv<'_>, alloc: &mut FrameAllocator<'_>, dom: &Domain, mfn: u64) -> bool {
    match hv.ft.release_allocation(Mfn(mfn), dom.id) {
        Ok(Released::Freed { .. }) => alloc.free(mfn).is_ok(),
        Ok(Released::Held) => false,
        Err(e) => {
            error!("d{}: releasing frame {mfn:#x}: {e}", dom.id);
            false
        }
    }
}

/// Destroys a domain that is not running; returns how many frames could not be freed.
pub fn destroy(hv: &Hv<'_>, alloc: &mut FrameAllocator<'_>, mut dom: FrameBox<Domain>) -> u64 {
    let ctx = dom.ctx(&hv.slots);
    let id = dom.id;
    for v in 0..MAX_VCPUS {
        let slot = &dom.vcpus[v];
        for l4 in [slot.kernel_l4(), slot.user_l4()] {
            if l4 != 0
                && let Err(e) = hv.ft.put_page_and_type(&hv.mem, Mfn(l4))
            {
                error!("d{id}: dropping vCPU {v}'s base {l4:#x}: {e}");
            }
        }
        slot.set_kernel_l4(0);
        slot.set_user_l4(0);
        // A deferred de-validation: finish it now, without preemption.
        let old = slot.old_table();
        if old != 0
            && let Err(e) = hv.ft.devalidate(&hv.mem, Mfn(old), &mut || false)
        {
            error!("d{id}: finishing vCPU {v}'s deferred de-validation of {old:#x}: {e}");
        }
        slot.set_old_table(0);
        crate::pv::desc::release(hv, id, slot);
    }
    let range = dom.first_mfn..dom.first_mfn + dom.nr_pages;
    for mfn in range.clone() {
        let pinned = hv
            .ft
            .state(Mfn(mfn))
            .is_ok_and(|s| s.pinned() && s.owner() == id);
        if pinned && let Err(e) = hv.ft.unpin(&hv.mem, &ctx, Mfn(mfn)) {
            error!("d{id}: unpinning {mfn:#x}: {e}");
        }
    }
    let mut leaked = 0u64;
    if dom.shared_info != 0 {
        let si = dom.shared_info;
        match hv.ft.put_page_and_type(&hv.mem, Mfn(si)) {
            Ok(_) => leaked += u64::from(!release(hv, alloc, &dom, si)),
            Err(e) => {
                error!("d{id}: dropping shared_info's writable reference: {e}");
                leaked += 1;
            }
        }
        dom.shared_info = 0;
    }
    for mfn in range {
        let state = hv.ft.state(Mfn(mfn));
        let freed = match state {
            // Never assigned (a build that failed part-way): straight back to the allocator.
            Ok(s) if s.general() == 0 => alloc.free(mfn).is_ok(),
            Ok(s) if s.allocated() && s.owner() == id => release(hv, alloc, &dom, mfn),
            _ => false,
        };
        if !freed {
            leaked += 1;
            if leaked <= 8 {
                error!("d{id}: frame {mfn:#x} still referenced after destroy ({state:?})");
            }
        }
        hv.m2p.set(mfn, INVALID_M2P_ENTRY);
    }
    if leaked > 0 {
        error!("d{id}: {leaked} frames leaked");
    }
    dom.free(alloc);
    leaked
}
