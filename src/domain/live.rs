//! The live-domain table: the domains whose vCPUs may run now (up to [`MAX_LIVE`] at once), and
//! the handshake that lets the bootstrap CPU retire one while other CPUs may still touch it.
//!
//! - Slot `s` holds a pointer to a running domain, or null. Only the BSP writes slots: it
//!   [`publish`]es a built domain in a free slot, and [`retire`]s it once it has shut down. A
//!   domain records its slot and a fresh generation (`Domain::sched_slot`, `sched_gen`) before
//!   it is published; run-queue entries carry both, so an entry left over from a retired domain
//!   is recognised as stale even after its slot has been reused.
//! - Attach: a CPU sets bit `s` of its `attached` mask *before* it reads slot `s`, and touches
//!   the domain only while the bit is up. `retire` nulls the slot, then waits until no CPU has
//!   bit `s` set. Both sides are SeqCst (a Dekker handshake): either the CPU sees null, or the
//!   BSP sees the CPU's bit and waits for it. After retirement nothing references the domain,
//!   so it may be destroyed.
//! - A CPU may be attached to several domains at once: to the one whose vCPU it runs (and whose
//!   tables may be in its CR3, `sched`), and briefly to others to wake their blocked vCPUs.
//! - [`PENDING`] counts domains that shut down and wait for the BSP to retire them; the BSP
//!   stops running vCPUs as soon as it is non-zero.

use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use hvcore::domain::DomId;
use smp::{CachePadded, MAX_CPUS};

use super::dom::Domain;
use crate::cpu::ipi;

/// Domains that may run at once.
pub const MAX_LIVE: usize = 8;
/// Generations are 20 bits wide in run-queue entries (`sched`).
pub const GEN_MASK: u32 = 0x000F_FFFF;

static SLOTS: [AtomicPtr<Domain>; MAX_LIVE] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_LIVE];
/// Per CPU: bit `s` set while it may touch the domain in slot `s`.
static ATTACHED: [CachePadded<AtomicU32>; MAX_CPUS] =
    [const { CachePadded::new(AtomicU32::new(0)) }; MAX_CPUS];
/// The last generation handed out (BSP only).
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Domains shut down and not yet retired.
static PENDING: AtomicU32 = AtomicU32::new(0);

const _: () = assert!(MAX_LIVE <= 16, "run-queue entries have 4 bits of slot");

/// Publishes `dom` in a free slot (on the BSP); returns the slot, or `None` when all are taken.
///
/// # Safety
///
/// `dom` must stay alive and in place until [`retire`] for the returned slot has returned.
pub unsafe fn publish(dom: &mut Domain) -> Option<usize> {
    // Relaxed: only the BSP writes slots, so its own loads see its own stores.
    let s = (0..MAX_LIVE).find(|&s| SLOTS[s].load(Ordering::Relaxed).is_null())?;
    // Relaxed: BSP-only counter; the value is published by the SeqCst store below.
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & GEN_MASK;
    dom.sched_slot = s as u32;
    dom.sched_gen = generation;
    // SeqCst: the Dekker pair with `attach`; also publishes the fields written above (and the
    // builder's writes) to every CPU that loads the pointer.
    SLOTS[s].store(dom as *mut Domain, Ordering::SeqCst);
    Some(s)
}

/// Attaches CPU `me` to slot `s` and returns its domain, or `None` (detached again) if the slot
/// is empty. The caller must not be attached to `s` already.
pub fn attach(me: usize, s: usize) -> Option<&'static Domain> {
    let bit = 1u32 << s;
    // SeqCst: the Dekker pair with `retire` (module head).
    ATTACHED[me].fetch_or(bit, Ordering::SeqCst);
    let d = SLOTS[s].load(Ordering::SeqCst);
    if d.is_null() {
        detach(me, s);
        return None;
    }
    // SAFETY: the slot names a live domain, and `retire` does not let it be destroyed while
    // this CPU's bit is up (module head); callers drop the reference before `detach`.
    Some(unsafe { &*d })
}

/// Attaches CPU `me` to the live domain with id `id` in a slot other than `skip` (the caller's
/// own); returns the slot and the domain, to [`detach`] when done.
pub fn attach_id(me: usize, id: DomId, skip: usize) -> Option<(usize, &'static Domain)> {
    for s in (0..MAX_LIVE).filter(|&s| s != skip && is_live(s)) {
        match attach(me, s) {
            Some(d) if d.id == id => return Some((s, d)),
            Some(_) => detach(me, s),
            None => {}
        }
    }
    None
}

/// Drops CPU `me`'s attachment to slot `s`.
pub fn detach(me: usize, s: usize) {
    // Release: every access to the domain happens-before the BSP's SeqCst load that sees the
    // bit clear.
    ATTACHED[me].fetch_and(!(1u32 << s), Ordering::Release);
}

/// Is slot `s` taken? (A hint for skipping empty slots; attach to use the domain.)
pub fn is_live(s: usize) -> bool {
    // Relaxed: a hint; `attach` re-reads the slot with SeqCst.
    !SLOTS[s].load(Ordering::Relaxed).is_null()
}

/// How many domains are live.
pub fn count() -> usize {
    (0..MAX_LIVE).filter(|&s| is_live(s)).count()
}

/// A domain shut down (called once per domain, by its first `shut_down`).
pub fn note_shutdown() {
    // Release: pairs with the Acquire in `shutdown_pending`; the shutdown reason was stored
    // before.
    PENDING.fetch_add(1, Ordering::Release);
}

/// Does a shut-down domain wait for the BSP to retire it?
pub fn shutdown_pending() -> bool {
    // Acquire: pairs with `note_shutdown`.
    PENDING.load(Ordering::Acquire) > 0
}

/// Empties slot `s` (on the BSP, interrupts off) and waits until no CPU is attached to it; the
/// domain in it has shut down. Returns with interrupts off.
pub fn retire(me: usize, s: usize) {
    // SeqCst: the Dekker pair with `attach`.
    SLOTS[s].store(core::ptr::null_mut(), Ordering::SeqCst);
    super::sched::kick_all();
    // With interrupts on: CPUs still finishing a hypercall may shoot down this CPU.
    ipi::interrupts_on();
    let bit = 1u32 << s;
    for (cpu, word) in ATTACHED.iter().enumerate() {
        // SeqCst: see `attach`.
        while cpu != me && word.load(Ordering::SeqCst) & bit != 0 {
            core::hint::spin_loop();
        }
    }
    ipi::interrupts_off();
    // Relaxed: the BSP's own bookkeeping; readers only use it as a prompt to stop.
    PENDING.fetch_sub(1, Ordering::Relaxed);
}
