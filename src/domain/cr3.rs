//! Which vCPU's page tables each CPU has in CR3, and the hand-over of a vCPU between CPUs.
//!
//! A CPU keeps the last vCPU's tables loaded after that vCPU leaves (so a vCPU that yields with
//! nobody waiting resumes with its TLB intact), until it loads another vCPU's tables or goes
//! idle. A CPU about to run a vCPU whose tables another CPU may still have loaded (its
//! `dirty_cpu`) first drops its own, then waits until that CPU has switched
//! ([`wait_unloaded`]); CPUs never wait with a released vCPU's tables loaded, so there is no
//! cycle. So no CPU ever has in CR3 an L4 that a running vCPU could free. The loaded vCPU always
//! belongs to the domain the CPU is attached to for running (`sched`, `live`).
//!
//! Orderings: a CPU writes its own word after each CR3 load (Release); a CPU about to take a
//! vCPU over reads the other CPU's word with Acquire (pairs with that store), so the other CPU's
//! switch away from the vCPU's tables happens-before the vCPU runs again.

use core::sync::atomic::{AtomicU32, Ordering};

use smp::{CachePadded, MAX_CPUS};

use super::dom::Domain;
use crate::cpu::ipi;

/// Per CPU: the vCPU whose tables are in its CR3 as `1 + (slot << 8 | vcpu)` (0 = the boot
/// tables).
static LOADED: [CachePadded<AtomicU32>; MAX_CPUS] =
    [const { CachePadded::new(AtomicU32::new(0)) }; MAX_CPUS];

/// The `LOADED` word for vCPU `v` of `dom`.
fn loaded_word(dom: &Domain, v: usize) -> u32 {
    1 + ((dom.sched_slot << 8) | v as u32)
}

/// The vCPU of `dom` whose tables are in this CPU's CR3.
pub fn loaded(me: usize, dom: &Domain) -> Option<usize> {
    // Relaxed: this CPU's own word.
    let w = LOADED[me].load(Ordering::Relaxed).checked_sub(1)?;
    (w >> 8 == dom.sched_slot).then_some((w & 0xFF) as usize)
}

/// Records that this CPU has just loaded vCPU `v` of `dom`'s tables (or the boot tables) into
/// CR3.
pub fn set_loaded(me: usize, dom: &Domain, v: Option<usize>) {
    let word = v.map_or(0, |v| loaded_word(dom, v));
    // Release: the CR3 load happens-before a CPU that sees the new value stops waiting in
    // `wait_unloaded`.
    LOADED[me].store(word, Ordering::Release);
}

/// Loads the boot tables if a vCPU's of `dom` are loaded, and tells that vCPU this CPU holds
/// nothing of it any more.
pub fn unload(me: usize, dom: &Domain) {
    if let Some(v) = loaded(me, dom) {
        // SAFETY: the boot L4 maps the hypervisor and is permanent.
        unsafe { super::flush::load_cr3(boot::arch::boot_pml4_phys()) };
        set_loaded(me, dom, None);
        if let Some(slot) = dom.vcpus.get(v) {
            slot.clear_dirty_cpu(me);
        }
    }
}

/// Waits until CPU `cpu` no longer has vCPU `v` of `dom`'s tables in CR3 (it switches right
/// after it released `v`, and never waits for another CPU meanwhile), with interrupts on so
/// that this CPU keeps answering shootdowns. A vCPU's bases may change once it runs, so it must
/// not run while another CPU may still walk its old tables.
pub fn wait_unloaded(cpu: usize, dom: &Domain, v: usize) {
    let word = loaded_word(dom, v);
    // Acquire: pairs with the Release in `set_loaded`.
    if LOADED[cpu].load(Ordering::Acquire) != word {
        return;
    }
    ipi::interrupts_on();
    // Acquire: as above.
    while LOADED[cpu].load(Ordering::Acquire) == word {
        core::hint::spin_loop();
    }
    ipi::interrupts_off();
}
