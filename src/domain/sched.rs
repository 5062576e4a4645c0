//! The vCPU scheduler: per-CPU run queues with work stealing, APIC-timer time slices, and the
//! hand-over of a domain between the bootstrap CPU, which starts and retires it, and every CPU,
//! which runs its vCPUs.
//!
//! Design (deliberately simple):
//! - One [`RunQueue`] per CPU holds runnable vCPUs (entries: see "Domains" below). A CPU
//!   pops its own queue first and then steals from the others in ring order, so vCPUs migrate
//!   freely and a domain may have more vCPUs than there are CPUs. A vCPU that yields or blocks
//!   looks at the other queues first, so a spinning vCPU gives way to a waiting one anywhere.
//!   Preempted and yielding vCPUs go back to their CPU's queue; a vCPU brought up goes to the
//!   waker's queue, and an idle CPU is kicked to steal it.
//! - Time slices: a CPU arms its one-shot APIC timer for [`SLICE_NS`] when it switches a vCPU
//!   in; when the timer has fired and some vCPU is waiting ([`WAITING`] > 0), the running vCPU
//!   is preempted at its next exit (the timer interrupt itself makes it exit).
//! - `SCHEDOP_block` has no event source to wait for yet, so a blocked vCPU sleeps for
//!   [`BLOCK_NS`] (a wake-up the ABI allows to be spurious): it is `BLOCKED`, in no queue, and
//!   any CPU that schedules, or whose time slice ends, after its time makes it runnable again
//!   ([`wake_due`]); idle CPUs poll at that period while any vCPU is blocked
//!   ([`BLOCKED_COUNT`]). Guests that spin-wait by
//!   blocking so leave their CPUs to others, or let them halt.
//! - Domains: several may run at once (`live`). An entry is `generation << 12 | slot << 8 |
//!   vcpu`; a CPU attaches to an entry's domain before it touches it, and an entry whose
//!   domain has been retired (slot empty, or another generation in it) is stale and dropped. A
//!   CPU runs one domain's vCPUs at a time: before it takes a vCPU of another domain it drops
//!   the first one (boot tables in CR3, attachment released).
//! - CR3 hand-over: see `cr3`.
//! - Idle: a CPU with nothing to run switches CR3 to the boot tables (its TLB then holds nothing
//!   of the domain, and a freed guest L4 can never be its CR3) but stays in the domain's dirty
//!   mask (spec §5.1's lazy rule). It sets its bit in [`IDLE`] and re-checks [`WAITING`], while a
//!   pusher bumps `WAITING` and then reads `IDLE` (both SeqCst): either the idle CPU sees the
//!   work or the pusher sees the idle CPU and kicks it. A poll timer backs this up.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use smp::{CachePadded, MAX_CPUS};

use super::cr3;
use super::dom::Domain;
use super::live::{self, GEN_MASK, MAX_LIVE};
use super::run::{self, Leave};
use super::runq::RunQueue;
use crate::cpu::{ipi, percpu, time};

/// A vCPU's time slice.
pub const SLICE_NS: u64 = 4_000_000;
/// How long an idle CPU sleeps at most before it looks at the queues again.
const POLL_NS: u64 = 2_000_000;
/// How long a CPU naps when its vCPU blocked and nothing else is runnable.
const BLOCK_NS: u64 = 500_000;
/// The bootstrap CPU, which starts and retires domains.
const BSP: usize = 0;

struct SchedCpu {
    queue: RunQueue,
    /// The slice timer fired since the running vCPU's slice began.
    slice_over: AtomicBool,
}

static CPUS: [CachePadded<SchedCpu>; MAX_CPUS] = [const {
    CachePadded::new(SchedCpu {
        queue: RunQueue::new(),
        slice_over: AtomicBool::new(false),
    })
}; MAX_CPUS];

/// Entries in all run queues (stale ones included), counted before an entry is pushed and
/// after it is popped, so never fewer than there are.
static WAITING: AtomicU32 = AtomicU32::new(0);
/// CPUs halted in an idle loop.
static IDLE: AtomicU64 = AtomicU64::new(0);
/// vCPUs `BLOCKED` (a hint for the idle poll period; Relaxed).
static BLOCKED_COUNT: AtomicU32 = AtomicU32::new(0);

/// vCPU `v` of `dom` as a queue entry (module head).
fn entry(dom: &Domain, v: usize) -> u32 {
    ((dom.sched_gen & GEN_MASK) << 12) | (dom.sched_slot << 8) | v as u32
}

/// An entry's (generation, slot, vCPU).
fn decode(e: u32) -> (u32, usize, usize) {
    (e >> 12, ((e >> 8) & 0xF) as usize, (e & 0xFF) as usize)
}

/// The slice timer interrupt (interrupts off).
pub fn on_timer() {
    // Relaxed: read by this CPU's run loop (program order with the interrupt).
    CPUS[percpu::this_index()]
        .slice_over
        .store(true, Ordering::Relaxed);
}

/// Starts a time slice on this CPU.
pub fn start_slice() {
    // Relaxed: this CPU's own flag.
    CPUS[percpu::this_index()]
        .slice_over
        .store(false, Ordering::Relaxed);
    time::arm_oneshot(SLICE_NS);
}

/// This CPU's slice flag, for a loop that asks [`should_preempt`] before every step (a hypercall
/// batch): while the flag is clear, `should_preempt` can only be true on the BSP with a domain
/// waiting to be retired, and such a loop may leave that to the next slice tick (the timer sets
/// the flag within [`SLICE_NS`], as it does for a vCPU running guest code). The reference is
/// this CPU's: valid while the caller does not migrate, i.e. within one hypercall.
pub fn slice_flag() -> &'static AtomicBool {
    &CPUS[percpu::this_index()].slice_over
}

/// Should the running vCPU of `dom` leave this CPU now? On the BSP when a domain waits to be
/// retired; elsewhere when the slice is over and another vCPU is waiting (blocked vCPUs whose
/// time has come are woken first: with every CPU busy, this tick is what wakes them).
/// Re-arms the timer when nobody waits.
pub fn should_preempt(dom: &Domain) -> bool {
    let me = percpu::this_index();
    if me == BSP && live::shutdown_pending() {
        return true;
    }
    // Relaxed: this CPU's own flag.
    if !CPUS[me].slice_over.load(Ordering::Relaxed) {
        return false;
    }
    wake_all_due(me, Some(dom));
    // Relaxed: a heuristic; a missed waiter is seen at the next tick.
    if WAITING.load(Ordering::Relaxed) > 0 {
        return true;
    }
    start_slice();
    false
}

/// Wakes CPU `cpu` (from a halt, or out of the guest it runs).
pub fn kick(cpu: usize) {
    if cpu != percpu::this_index() {
        let _ = ipi::send_ipi(cpu, ipi::KICK_VECTOR);
    }
}

/// Kicks every other online CPU.
pub fn kick_all() {
    for cpu in percpu::online().iter() {
        kick(cpu);
    }
}

/// Puts vCPU `v` of `dom` (now `QUEUED`; the caller is attached to `dom`) on CPU `me`'s queue
/// and kicks an idle CPU.
pub fn push(me: usize, dom: &Domain, v: usize) {
    let e = entry(dom, v);
    // Counted before the entry is visible, so the count never drops below the entries.
    // SeqCst: the Dekker pair with `idle_enter` (module head).
    WAITING.fetch_add(1, Ordering::SeqCst);
    let pushed =
        CPUS[me].queue.push(e).is_ok() || (0..MAX_CPUS).any(|c| CPUS[c].queue.push(e).is_ok());
    if !pushed {
        // Relaxed: undoes the count above.
        WAITING.fetch_sub(1, Ordering::Relaxed);
        // Cannot happen (capacity ≥ vCPUs); a lost vCPU would hang its domain, so say so.
        error!(
            "scheduler: every run queue is full; d{} vCPU {v} lost",
            dom.id
        );
        return;
    }
    let idle = IDLE.load(Ordering::SeqCst) & !(1 << me);
    if idle != 0 {
        kick(idle.trailing_zeros() as usize);
    }
}

/// The next runnable vCPU for CPU `me`, now `RUNNING` and owned by this CPU, with its domain.
/// `cur` is the domain this CPU is attached to for running; when the vCPU belongs to another
/// one, `cur` is dropped (`detach`) and replaced.
fn pop(
    me: usize,
    cur: &mut Option<&'static Domain>,
    others_first: bool,
) -> Option<(&'static Domain, usize)> {
    let online = percpu::online();
    let start = usize::from(others_first);
    for k in start..start + MAX_CPUS {
        let cpu = (me + k) % MAX_CPUS;
        if !online.contains(cpu) {
            continue;
        }
        while let Some(e) = CPUS[cpu].queue.pop() {
            // Relaxed: a counter for the heuristics and the idle check, which re-reads it.
            WAITING.fetch_sub(1, Ordering::Relaxed);
            let (generation, s, v) = decode(e);
            let current = cur.filter(|d| d.sched_slot as usize == s);
            let Some(dom) = current.or_else(|| live::attach(me, s)) else {
                continue;
            };
            let claimed = dom.sched_gen & GEN_MASK == generation
                && v < dom.nr_vcpus as usize
                && dom.vcpus[v].claim_run(dom.shutdown_reason().is_some());
            if current.is_some() {
                if claimed {
                    return Some((dom, v));
                }
            } else if claimed {
                if let Some(old) = cur.replace(dom) {
                    detach(me, old);
                }
                return Some((dom, v));
            } else {
                live::detach(me, s);
            }
        }
    }
    None
}

/// Switches this CPU to the boot tables and drops its attachment to `dom`.
fn detach(me: usize, dom: &Domain) {
    cr3::unload(me, dom);
    live::detach(me, dom.sched_slot as usize);
}

/// Runs vCPUs on this CPU while any is runnable (on the BSP, only until a domain waits to be
/// retired); returns whether it ran one. Called with interrupts off; returns with them off.
pub fn run_some() -> bool {
    let me = percpu::this_index();
    super::flush::finish_wraps();
    let Some(hv) = super::HV.get() else {
        return false;
    };
    let mut cur: Option<&'static Domain> = None;
    let mut ran = false;
    let mut others_first = false;
    loop {
        if me == BSP && live::shutdown_pending() {
            break;
        }
        wake_all_due(me, cur);
        let Some((dom, v)) = pop(me, &mut cur, others_first) else {
            break;
        };
        ran = true;
        let leave = run::run_vcpu(hv, dom, v, me);
        // A vCPU that left because it is down is requeued all the same: `release` parks it
        // only if DOWN is still set, so an `up` that raced with its leaving is not lost.
        let stopped = dom.shutdown_reason().is_some();
        let requeue = !stopped && leave != Leave::Stopped;
        let slot = &dom.vcpus[v];
        if requeue && leave == Leave::Block {
            if slot.block(time::now_ns().saturating_add(BLOCK_NS)) {
                // Relaxed: a hint (module head).
                BLOCKED_COUNT.fetch_add(1, Ordering::Relaxed);
            }
        } else if slot.release(requeue) {
            push(me, dom, v);
        }
        others_first = leave == Leave::Yield;
    }
    if let Some(dom) = cur {
        detach(me, dom);
    }
    ran
}

/// Makes every blocked vCPU whose time has come runnable (on CPU `me`'s queue), in every live
/// domain; `cur` is the domain this CPU is attached to already.
fn wake_all_due(me: usize, cur: Option<&Domain>) {
    // Relaxed: a hint; a stale zero delays a wake-up to the next pass.
    if BLOCKED_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = time::now_ns();
    for s in (0..MAX_LIVE).filter(|&s| live::is_live(s)) {
        match cur.filter(|d| d.sched_slot as usize == s) {
            Some(dom) => wake_due(me, dom, now),
            None => {
                if let Some(dom) = live::attach(me, s) {
                    wake_due(me, dom, now);
                    live::detach(me, s);
                }
            }
        }
    }
}

fn wake_due(me: usize, dom: &Domain, now: u64) {
    for (v, slot) in dom.slots().iter().enumerate() {
        if slot.wake(now) {
            // Relaxed: as in `wake_all_due`.
            BLOCKED_COUNT.fetch_sub(1, Ordering::Relaxed);
            push(me, dom, v);
        }
    }
}

/// Before an idle halt (interrupts off): marks this CPU idle and says whether to halt (false:
/// work arrived meanwhile).
pub fn idle_enter() -> bool {
    let me = percpu::this_index();
    // SeqCst: the Dekker pair with `push` (module head).
    IDLE.fetch_or(1 << me, Ordering::SeqCst);
    let has_domain = live::count() > 0;
    let bsp_work = me == BSP && live::shutdown_pending();
    if bsp_work || (has_domain && WAITING.load(Ordering::SeqCst) > 0) {
        idle_leave();
        return false;
    }
    if has_domain {
        // Relaxed: a hint (module head).
        let blocked = BLOCKED_COUNT.load(Ordering::Relaxed) > 0;
        time::arm_oneshot(if blocked { BLOCK_NS } else { POLL_NS });
    }
    true
}

/// After an idle halt.
pub fn idle_leave() {
    // SeqCst: as in `idle_enter`.
    IDLE.fetch_and(!(1 << percpu::this_index()), Ordering::SeqCst);
}

/// Publishes `dom` and queues its runnable vCPUs (on the BSP, interrupts off); returns its
/// slot, or `None` if as many domains as can run already do.
///
/// # Safety
///
/// `dom` must stay alive and in place until [`retire`] has returned for it.
pub unsafe fn start(dom: &mut Domain) -> Option<usize> {
    let me = percpu::this_index();
    // SAFETY: passed on from this function's contract.
    let s = unsafe { live::publish(dom) }?;
    for (v, slot) in dom.slots().iter().enumerate() {
        if slot.run_state() == super::vcpu::QUEUED {
            push(me, dom, v);
        }
    }
    kick_all();
    Some(s)
}

/// Runs vCPUs on the BSP until a domain waits to be retired or none is live (interrupts off).
pub fn run_bsp() {
    while !live::shutdown_pending() && live::count() > 0 {
        run_some();
        if !live::shutdown_pending() && idle_enter() {
            ipi::halt();
            ipi::interrupts_off();
            idle_leave();
        }
    }
}

/// Retires `dom`, which has shut down (on the BSP): waits until no CPU references it and
/// forgets its blocked vCPUs. Its stale queue entries are dropped by whoever pops them.
pub fn retire(dom: &Domain) {
    live::retire(percpu::this_index(), dom.sched_slot as usize);
    let blocked = dom
        .slots()
        .iter()
        .filter(|s| s.run_state() == super::vcpu::BLOCKED)
        .count();
    // Relaxed: a hint (module head); no CPU touches the domain any more.
    BLOCKED_COUNT.fetch_sub(blocked as u32, Ordering::Relaxed);
}
