//! The vCPU scheduler: per-CPU run queues with work stealing, APIC-timer time slices, and the
//! hand-over of a domain between the bootstrap CPU, which starts and retires it, and every CPU,
//! which runs its vCPUs.
//!
//! Design (deliberately simple):
//! - One [`RunQueue`] per CPU holds runnable vCPUs (entries `generation << 8 | vcpu`). A CPU
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
//! - Domains: the BSP publishes the running domain in [`CURRENT`] and retires it once it shut
//!   down. A CPU *attaches* before it touches the domain — it sets its `active` flag, then reads
//!   `CURRENT` — and the BSP, to retire, clears `CURRENT`, then waits for every flag to drop:
//!   both sides are SeqCst (a Dekker handshake), so either the CPU sees no domain or the BSP
//!   sees the CPU and waits for it. After retirement nothing references the domain, so it may
//!   be destroyed.
//! - CR3 hand-over: a CPU keeps the last vCPU's tables loaded after that vCPU leaves (so a vCPU
//!   that yields with nobody waiting resumes with its TLB intact), until it loads another
//!   vCPU's tables or goes idle. A CPU about to run a vCPU whose tables another CPU may still
//!   have loaded (its `dirty_cpu`) first drops its own, then waits until that CPU has switched
//!   ([`wait_unloaded`]); CPUs never wait with a released vCPU's tables loaded, so there is no
//!   cycle. So no CPU ever has in CR3 an L4 that a running vCPU could free.
//! - Idle: a CPU with nothing to run switches CR3 to the boot tables (its TLB then holds nothing
//!   of the domain, and a freed guest L4 can never be its CR3) but stays in the domain's dirty
//!   mask (spec §5.1's lazy rule). It sets its bit in [`IDLE`] and re-checks [`WAITING`], while a
//!   pusher bumps `WAITING` and then reads `IDLE` (both SeqCst): either the idle CPU sees the
//!   work or the pusher sees the idle CPU and kicks it. A poll timer backs this up.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use smp::{CachePadded, MAX_CPUS};

use super::dom::Domain;
use super::run::{self, Leave};
use super::runq::RunQueue;
use crate::cpu::{ipi, percpu, time};

/// A vCPU's time slice.
pub const SLICE_NS: u64 = 4_000_000;
/// How long an idle CPU sleeps at most before it looks at the queues again.
const POLL_NS: u64 = 2_000_000;
/// How long a CPU naps when its vCPU blocked and nothing else is runnable.
const BLOCK_NS: u64 = 500_000;

struct SchedCpu {
    queue: RunQueue,
    /// Attached to `CURRENT` (module head).
    active: AtomicU32,
    /// The slice timer fired since the running vCPU's slice began.
    slice_over: AtomicBool,
    /// The vCPU whose tables are in this CPU's CR3, plus one (0 = the boot tables). Written by
    /// its CPU after each CR3 load (Release), read by a CPU about to take that vCPU over.
    loaded: AtomicU32,
}

static CPUS: [CachePadded<SchedCpu>; MAX_CPUS] = [const {
    CachePadded::new(SchedCpu {
        queue: RunQueue::new(),
        active: AtomicU32::new(0),
        slice_over: AtomicBool::new(false),
        loaded: AtomicU32::new(0),
    })
}; MAX_CPUS];

/// The domain whose vCPUs run (null: none).
static CURRENT: AtomicPtr<Domain> = AtomicPtr::new(core::ptr::null_mut());
/// Generation of `CURRENT`; queue entries of another generation are stale.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Entries in all run queues (stale ones included), counted before an entry is pushed and
/// after it is popped, so never fewer than there are.
static WAITING: AtomicU32 = AtomicU32::new(0);
/// CPUs halted in an idle loop.
static IDLE: AtomicU64 = AtomicU64::new(0);
/// vCPUs `BLOCKED` (a hint for the idle poll period; Relaxed).
static BLOCKED_COUNT: AtomicU32 = AtomicU32::new(0);

fn entry(generation: u32, v: usize) -> u32 {
    (generation << 8) | v as u32
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

/// The slice is over and another vCPU of `dom` is waiting (blocked vCPUs whose time has come
/// are woken first: with every CPU busy, this tick is what wakes them); re-arms the timer when
/// nobody waits.
pub fn should_preempt(dom: &Domain) -> bool {
    let me = percpu::this_index();
    // Relaxed: this CPU's own flag.
    if !CPUS[me].slice_over.load(Ordering::Relaxed) {
        return false;
    }
    wake_due(me, dom);
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

/// Puts vCPU `v` of the current domain (now `QUEUED`) on CPU `me`'s queue and kicks an idle CPU.
pub fn push(me: usize, v: usize) {
    // Relaxed: the generation was published with `CURRENT` (SeqCst), which the caller read.
    let e = entry(GENERATION.load(Ordering::Relaxed), v);
    // Counted before the entry is visible, so the count never drops below the entries.
    // SeqCst: the Dekker pair with `idle_enter` (module head).
    WAITING.fetch_add(1, Ordering::SeqCst);
    let pushed =
        CPUS[me].queue.push(e).is_ok() || (0..MAX_CPUS).any(|c| CPUS[c].queue.push(e).is_ok());
    if !pushed {
        // Relaxed: undoes the count above.
        WAITING.fetch_sub(1, Ordering::Relaxed);
        // Cannot happen (capacity ≥ vCPUs); a lost vCPU would hang its domain, so say so.
        error!("scheduler: every run queue is full; vCPU {v} lost");
        return;
    }
    let idle = IDLE.load(Ordering::SeqCst) & !(1 << me);
    if idle != 0 {
        kick(idle.trailing_zeros() as usize);
    }
}

/// The next runnable vCPU of `dom` for CPU `me`, now `RUNNING` and owned by this CPU.
fn pop(me: usize, dom: &Domain, others_first: bool) -> Option<usize> {
    // Relaxed: see `push`.
    let generation = GENERATION.load(Ordering::Relaxed);
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
            let v = (e & 0xFF) as usize;
            if e >> 8 != generation & 0x00FF_FFFF || v >= dom.nr_vcpus as usize {
                continue;
            }
            if dom.vcpus[v].claim_run(dom.shutdown_reason().is_some()) {
                return Some(v);
            }
        }
    }
    None
}

/// Sets this CPU's `active` flag and reads `CURRENT` (module head).
fn attach(me: usize) -> Option<&'static Domain> {
    // SeqCst: the Dekker pair with `retire`.
    CPUS[me].active.swap(1, Ordering::SeqCst);
    let d = CURRENT.load(Ordering::SeqCst);
    if d.is_null() {
        // Release: nothing was touched.
        CPUS[me].active.store(0, Ordering::Release);
        return None;
    }
    // SAFETY: `CURRENT` names a live domain, and `retire` does not let it be destroyed while
    // this CPU's flag is up (module head); the reference is dropped before `detach`.
    Some(unsafe { &*d })
}

/// Switches this CPU to the boot tables and drops its `active` flag.
fn detach(me: usize, dom: &Domain) {
    unload(me, dom);
    // Release: every access to the domain happens-before the BSP's SeqCst load that sees 0.
    CPUS[me].active.store(0, Ordering::Release);
}

/// The vCPU whose tables are in this CPU's CR3.
pub fn loaded(me: usize) -> Option<usize> {
    // Relaxed: this CPU's own word.
    CPUS[me]
        .loaded
        .load(Ordering::Relaxed)
        .checked_sub(1)
        .map(|v| v as usize)
}

/// Records that this CPU has just loaded vCPU `v`'s tables (or the boot tables) into CR3.
pub fn set_loaded(me: usize, v: Option<usize>) {
    let word = v.map_or(0, |v| v as u32 + 1);
    // Release: the CR3 load happens-before a CPU that sees the new value stops waiting in
    // `wait_unloaded`.
    CPUS[me].loaded.store(word, Ordering::Release);
}

/// Loads the boot tables if a vCPU's are loaded, and tells that vCPU this CPU holds nothing of
/// it any more.
pub fn unload(me: usize, dom: &Domain) {
    if let Some(v) = loaded(me) {
        // SAFETY: the boot L4 maps the hypervisor and is permanent.
        unsafe { super::flush::load_cr3(boot::arch::boot_pml4_phys()) };
        set_loaded(me, None);
        if let Some(slot) = dom.vcpus.get(v) {
            slot.clear_dirty_cpu(me);
        }
    }
}

/// Waits until CPU `cpu` no longer has vCPU `v`'s tables in CR3 (it switches right after it
/// released `v`, and never waits for another CPU meanwhile), with interrupts on so that this
/// CPU keeps answering shootdowns. A vCPU's bases may change once it runs, so it must not run
/// while another CPU may still walk its old tables.
pub fn wait_unloaded(cpu: usize, v: usize) {
    // Acquire: pairs with the Release in `set_loaded`.
    if CPUS[cpu].loaded.load(Ordering::Acquire) != v as u32 + 1 {
        return;
    }
    ipi::interrupts_on();
    // Acquire: as above.
    while CPUS[cpu].loaded.load(Ordering::Acquire) == v as u32 + 1 {
        core::hint::spin_loop();
    }
    ipi::interrupts_off();
}

/// Runs vCPUs of the current domain on this CPU while any is runnable; returns whether it ran
/// one. Called with interrupts off; returns with them off.
pub fn run_some() -> bool {
    let me = percpu::this_index();
    super::flush::finish_wraps();
    let Some(dom) = attach(me) else { return false };
    let Some(hv) = super::HV.get() else {
        detach(me, dom);
        return false;
    };
    let mut ran = false;
    let mut others_first = false;
    loop {
        wake_due(me, dom);
        let Some(v) = pop(me, dom, others_first) else {
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
            push(me, v);
        }
        others_first = leave == Leave::Yield;
    }
    detach(me, dom);
    ran
}

/// Makes every blocked vCPU of `dom` whose time has come runnable (on CPU `me`'s queue).
fn wake_due(me: usize, dom: &Domain) {
    // Relaxed: a hint; a stale zero delays a wake-up to the next pass.
    if BLOCKED_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = time::now_ns();
    for (v, slot) in dom.slots().iter().enumerate() {
        if slot.wake(now) {
            // Relaxed: as above.
            BLOCKED_COUNT.fetch_sub(1, Ordering::Relaxed);
            push(me, v);
        }
    }
}

/// Before an idle halt (interrupts off): marks this CPU idle and says whether to halt (false:
/// work arrived meanwhile, or there is a domain to poll for).
pub fn idle_enter() -> bool {
    let me = percpu::this_index();
    // SeqCst: the Dekker pair with `push` (module head).
    IDLE.fetch_or(1 << me, Ordering::SeqCst);
    let has_domain = !CURRENT.load(Ordering::SeqCst).is_null();
    if has_domain && WAITING.load(Ordering::SeqCst) > 0 {
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

/// Runs `dom` on every CPU until it shuts down, then retires it; on the BSP, with interrupts
/// off. Returns when no CPU references the domain any more.
pub fn run_domain(dom: &Domain) {
    let me = percpu::this_index();
    // Relaxed: published by the SeqCst store of CURRENT below.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    // SeqCst: see `attach`.
    CURRENT.store(dom as *const Domain as *mut Domain, Ordering::SeqCst);
    for (v, slot) in dom.slots().iter().enumerate() {
        if slot.run_state() == super::vcpu::QUEUED {
            push(me, v);
        }
    }
    kick_all();
    while dom.shutdown_reason().is_none() {
        run_some();
        if dom.shutdown_reason().is_none() && idle_enter() {
            ipi::halt();
            ipi::interrupts_off();
            idle_leave();
        }
    }
    retire(me);
}

/// Clears `CURRENT`, waits for every CPU to detach, and drops the stale queue entries.
fn retire(me: usize) {
    // SeqCst: the Dekker pair with `attach`.
    CURRENT.store(core::ptr::null_mut(), Ordering::SeqCst);
    kick_all();
    // With interrupts on: CPUs still finishing a hypercall may shoot down this CPU.
    ipi::interrupts_on();
    for cpu in percpu::online().iter().filter(|&c| c != me) {
        // SeqCst: see `attach`.
        while CPUS[cpu].active.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
    }
    ipi::interrupts_off();
    // Relaxed: no CPU is attached; the next domain starts with none blocked.
    BLOCKED_COUNT.store(0, Ordering::Relaxed);
    for c in CPUS.iter() {
        while c.queue.pop().is_some() {
            // Relaxed: no CPU is attached; the next domain's pushes come after this.
            WAITING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
