//! Secondary vCPUs: bringing them up with `VCPUOP_initialise` + `VCPUOP_up` (the context:
//! [`context`], optionally with a GDT for one of them, [`start_with`]), running one job
//! on every vCPU at once ([`run_on_all`]), a barrier for the rounds inside a job, and taking the
//! secondaries down again ([`stop`]).
//!
//! vCPU 0 runs the harness. The others wait in [`guest_secondary_main`] for a new job number,
//! run the job with their id and report through their own result slot. Every wait spins a
//! little and then gives the CPU up (`SCHEDOP_block` on Argon, `SCHEDOP_yield` elsewhere), so
//! a domain with more vCPUs than CPUs makes progress and idle CPUs can halt. A vCPU that fails raises [`ABORT`]: barriers then return an error at once, so the
//! others leave the job instead of waiting for a vCPU that left. All shared words are atomics;
//! a job's inputs are published by the Release that bumps [`JOB`], its results by each vCPU's
//! Release increment of [`DONE`] (vCPU 0 reads them after an Acquire load that sees them all).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicUsize, Ordering};

use abi::VcpuGuestContext;
use abi::selectors::{FLAT_KERNEL_CS64, FLAT_KERNEL_SS};
use abi::vcpu::{VGCF_IN_KERNEL, xen_pfn_to_cr3};
use abi::vcpu_op::{VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_UP};

use crate::env::Env;
use crate::harness::{Fail, Outcome};
use crate::hypercall;

/// vCPUs this kernel can drive (shared_info's `vcpu_info` slots).
pub const MAX_VCPUS: usize = 32;
const STACK: usize = 16 * 1024;

/// A job: runs on every vCPU with (its id, the number of vCPUs).
pub type Job = fn(usize, usize) -> Outcome;

#[repr(C, align(16))]
struct Stacks(UnsafeCell<[[u8; STACK]; MAX_VCPUS]>);
// SAFETY: stack `i` is used only by vCPU `i`, as its stack; the kernel never forms a reference.
unsafe impl Sync for Stacks {}
static STACKS: Stacks = Stacks(UnsafeCell::new([[0; STACK]; MAX_VCPUS]));

struct Results([UnsafeCell<Option<Fail>>; MAX_VCPUS]);
// SAFETY: slot `i` is written by vCPU `i` while it runs a job and read by vCPU 0 after the
// job's DONE count (Release/Acquire) says every writer finished.
unsafe impl Sync for Results {}
static RESULTS: Results = Results([const { UnsafeCell::new(None) }; MAX_VCPUS]);

/// vCPUs running (vCPU 0 included).
static NR: AtomicUsize = AtomicUsize::new(1);
/// Secondaries that reached their wait loop.
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// Job number; the job function is in `JOB_FN`.
static JOB: AtomicU32 = AtomicU32::new(0);
static JOB_FN: AtomicUsize = AtomicUsize::new(0);
/// Secondaries that finished the current job.
static DONE: AtomicUsize = AtomicUsize::new(0);
/// A vCPU failed: barriers give up.
pub static ABORT: AtomicBool = AtomicBool::new(false);
static BARRIER_COUNT: AtomicUsize = AtomicUsize::new(0);
static BARRIER_GEN: AtomicU32 = AtomicU32::new(0);

/// The number of vCPUs running.
pub fn nr() -> usize {
    // Acquire: pairs with the Release in `start`.
    NR.load(Ordering::Acquire)
}

/// How a waiting vCPU gives its CPU up: 1 = `SCHEDOP_block` (Argon, where it returns at the
/// next scheduling decision and lets an otherwise idle CPU halt), 2 = `SCHEDOP_yield`
/// (elsewhere: an event-less block would never return), 0 = not decided yet.
static RELAX: AtomicU32 = AtomicU32::new(0);

/// Gives the CPU up for a moment (see [`RELAX`]); `hot` only yields, so that a vCPU with nobody
/// else to run keeps its CPU — and its TLB, which the shootdown checks need.
fn relax(hot: bool) {
    // Relaxed: a cached, idempotent answer.
    let mut how = RELAX.load(Ordering::Relaxed);
    if how == 0 {
        how = if hypercall::is_argon() { 1 } else { 2 };
        RELAX.store(how, Ordering::Relaxed);
    }
    if how == 1 && !hot {
        hypercall::sched_block();
    } else {
        hypercall::sched_yield();
    }
}

fn wait_with(hot: bool, mut cond: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        spins += 1;
        if spins.is_multiple_of(64) {
            relax(hot);
        } else {
            core::hint::spin_loop();
        }
    }
}

/// Spins on `cond`, giving the CPU up every few dozen tries.
pub fn wait(cond: impl FnMut() -> bool) {
    wait_with(false, cond);
}

/// How many vCPUs the domain has (`VCPUOP_is_up` answers for ids below it).
pub fn available() -> usize {
    let mut n = 1;
    while n < MAX_VCPUS && hypercall::vcpu_is_up(n as u32) >= 0 {
        n += 1;
    }
    n
}

/// The context [`start`] initialises secondary vCPU `id` with: kernel mode on the kernel's page
/// tables and trap table, on its own stack, entering [`guest_secondary_main`]; no GDT, null
/// data selectors.
pub fn context(env: &Env, id: usize) -> Result<VcpuGuestContext, Fail> {
    let kernel_l4_mfn = env
        .kernel_l4_mfn()
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for the L4")))?;
    let mut ctx = VcpuGuestContext {
        flags: VGCF_IN_KERNEL,
        ..Default::default()
    };
    let top = STACKS.0.get() as u64 + ((id + 1) * STACK) as u64;
    ctx.user_regs.rip = crate::traps::guest_secondary_entry as *const () as u64;
    ctx.user_regs.rsp = top;
    ctx.user_regs.rdi = id as u64;
    ctx.user_regs.cs = FLAT_KERNEL_CS64;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    ctx.user_regs.rflags = 1 << 9;
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = top;
    ctx.ctrlreg[3] = xen_pfn_to_cr3(kernel_l4_mfn);
    for t in crate::traps::table() {
        ctx.trap_ctxt[usize::from(t.vector)] = t;
    }
    Ok(ctx)
}

/// A GDT one secondary vCPU is brought up with (the context's `gdt_frames`/`gdt_ents`), and
/// the selector its context puts in %es (`user_regs.es`), which may be one of that GDT's.
#[derive(Debug, Clone, Copy)]
pub struct BootGdt {
    pub vcpu: usize,
    pub frame: u64,
    pub ents: u64,
    pub es: u16,
}

/// Each secondary's %es when it reached [`guest_secondary_main`] (written once by that vCPU
/// before its Release increment of [`ONLINE`]).
static ENTRY_ES: [AtomicU16; MAX_VCPUS] = [const { AtomicU16::new(0) }; MAX_VCPUS];

/// The %es secondary `id` started with.
pub fn entry_es(id: usize) -> u16 {
    // Relaxed: published by the ONLINE increment that `start` waited for (Acquire).
    ENTRY_ES.get(id).map_or(0, |e| e.load(Ordering::Relaxed))
}

/// Brings up every vCPU the domain has (as `VCPUOP_is_up` reports them) on the kernel's page
/// tables and waits until each runs. Returns how many vCPUs run, or why one could not start.
pub fn start(env: &Env) -> Result<usize, Fail> {
    start_with(env, None)
}

/// [`start`], with `gdt` installed by `VCPUOP_initialise` for the one vCPU it names.
pub fn start_with(env: &Env, gdt: Option<BootGdt>) -> Result<usize, Fail> {
    if nr() > 1 {
        // Started before and taken down by `stop`: bring them back.
        for id in 1..nr() {
            // SAFETY: VCPUOP_up takes no argument; the vCPU resumes after its VCPUOP_down.
            let rc = unsafe { hypercall::vcpu_op(VCPUOP_UP, id as u32, 0) };
            if rc != 0 {
                return Err(Fail::new(format_args!("VCPUOP_up({id}) = {rc}")));
            }
        }
        return Ok(nr());
    }
    let n = available();
    for id in 1..n {
        let mut ctx = context(env, id)?;
        if let Some(g) = gdt.filter(|g| g.vcpu == id) {
            ctx.gdt_frames[0] = g.frame;
            ctx.gdt_ents = g.ents;
            ctx.user_regs.es = g.es;
        }
        // SAFETY: the context starts vCPU `id` in `guest_secondary_main` on its own stack with
        // the kernel's page tables and trap table (and a GDT frame the caller keeps read-only).
        let rc = unsafe { hypercall::vcpu_op(VCPUOP_INITIALISE, id as u32, &raw const ctx as u64) };
        if rc != 0 {
            return Err(Fail::new(format_args!("VCPUOP_initialise({id}) = {rc}")));
        }
        // SAFETY: VCPUOP_up takes no argument; the vCPU runs the context installed above.
        let rc = unsafe { hypercall::vcpu_op(VCPUOP_UP, id as u32, 0) };
        if rc != 0 {
            return Err(Fail::new(format_args!("VCPUOP_up({id}) = {rc}")));
        }
    }
    // Acquire: pairs with each secondary's Release increment.
    wait(|| ONLINE.load(Ordering::Acquire) == n - 1);
    // Release: pairs with `nr`.
    NR.store(n, Ordering::Release);
    Ok(n)
}

/// Runs `job` on every vCPU (this one as vCPU 0) and returns the first failure.
pub fn run_on_all(job: Job) -> Outcome {
    let n = nr();
    // Relaxed: published by the Release bump of JOB below.
    ABORT.store(false, Ordering::Relaxed);
    BARRIER_COUNT.store(0, Ordering::Relaxed);
    DONE.store(0, Ordering::Relaxed);
    JOB_FN.store(job as usize, Ordering::Relaxed);
    // Release: publishes the job and the reset words to the secondaries' Acquire load.
    JOB.fetch_add(1, Ordering::Release);
    let mine = job(0, n);
    if mine.is_err() {
        // Release: see `fail`.
        ABORT.store(true, Ordering::Release);
    }
    // Acquire: pairs with the secondaries' Release increments (their results are visible).
    wait(|| DONE.load(Ordering::Acquire) == n - 1);
    // The first failure that is not just "another vCPU failed" says what went wrong.
    let mut first: Option<Fail> = None;
    for result in core::iter::once(mine.err()).chain(RESULTS.0[1..n].iter().map(|slot| {
        // SAFETY: every secondary finished the job (DONE above), so no one writes the slot.
        unsafe { (*slot.get()).take() }
    })) {
        let Some(f) = result else { continue };
        if first
            .as_ref()
            .is_none_or(|g| g.as_str() == ABORTED && f.as_str() != ABORTED)
        {
            first = Some(f);
        }
    }
    first.map_or(Ok(()), Err)
}

/// What a barrier reports when another vCPU gave up.
const ABORTED: &str = "another vCPU failed";

/// Waits until all `n` vCPUs arrived; `Err` if some vCPU gave up meanwhile.
pub fn barrier(n: usize) -> Outcome {
    barrier_with(n, false)
}

/// [`barrier`] that only yields while it waits: a vCPU alone on its CPU stays there with its
/// TLB intact (on Argon it even keeps its CR3), so a test can tell whether a translation it
/// cached before the barrier was shot down during it.
pub fn barrier_hot(n: usize) -> Outcome {
    barrier_with(n, true)
}

fn barrier_with(n: usize, hot: bool) -> Outcome {
    // Acquire: the generation this wait is for (pairs with the last arriver's Release).
    let generation = BARRIER_GEN.load(Ordering::Acquire);
    // AcqRel: arrivals form one RMW chain; the last one sees everyone's earlier writes.
    if BARRIER_COUNT.fetch_add(1, Ordering::AcqRel) + 1 == n {
        // Relaxed: published by the Release below.
        BARRIER_COUNT.store(0, Ordering::Relaxed);
        // Release: everyone's writes before the barrier happen-before the others leave it.
        BARRIER_GEN.fetch_add(1, Ordering::Release);
        return Ok(());
    }
    let mut aborted = false;
    // Acquire: pairs with the last arriver's Release.
    wait_with(hot, || {
        aborted = ABORT.load(Ordering::Acquire);
        aborted || BARRIER_GEN.load(Ordering::Acquire) != generation
    });
    if aborted {
        return Err(Fail::new(format_args!("{ABORTED}")));
    }
    Ok(())
}

/// Records a failure for the job's other vCPUs (their barriers stop waiting).
pub fn fail(f: Fail) -> Fail {
    // Release: the failing vCPU's writes happen-before a barrier that sees it.
    ABORT.store(true, Ordering::Release);
    f
}

/// The job number of [`stop`]: secondaries report and then take themselves down.
const STOP: usize = 1;

/// Takes every secondary down (`VCPUOP_down` on itself), so that vCPU 0 runs alone again.
pub fn stop() -> Outcome {
    let n = nr();
    if n == 1 {
        return Ok(());
    }
    // Relaxed: published by the Release bump of JOB.
    DONE.store(0, Ordering::Relaxed);
    JOB_FN.store(STOP, Ordering::Relaxed);
    // Release: see `run_on_all`.
    JOB.fetch_add(1, Ordering::Release);
    // Acquire: pairs with the secondaries' Release increments.
    wait(|| DONE.load(Ordering::Acquire) == n - 1);
    for id in 1..n {
        wait(|| hypercall::vcpu_is_up(id as u32) == 0);
    }
    Ok(())
}

/// A secondary vCPU's life: wait for a job, run it, report, forever.
#[unsafe(no_mangle)]
extern "C" fn guest_secondary_main(id: u64) -> ! {
    let id = id as usize;
    let es: u16;
    // SAFETY: reading a segment register has no side effects.
    unsafe {
        core::arch::asm!("mov {:x}, es", out(reg) es, options(nomem, nostack, preserves_flags))
    };
    // Relaxed: published by the Release increment of ONLINE below.
    ENTRY_ES[id].store(es, Ordering::Relaxed);
    // Acquire: the job number seen so far; pairs with `run_on_all`'s Release.
    let mut seen = JOB.load(Ordering::Acquire);
    // Release: pairs with `start`'s Acquire wait.
    ONLINE.fetch_add(1, Ordering::Release);
    loop {
        // Acquire: pairs with the Release bump in `run_on_all` (the job and reset words).
        wait(|| JOB.load(Ordering::Acquire) != seen);
        seen = JOB.load(Ordering::Acquire);
        // Relaxed: ordered by the Acquire above.
        let f = JOB_FN.load(Ordering::Relaxed);
        if f == STOP {
            // Release: see below; vCPU 0 then waits for this vCPU to be down.
            DONE.fetch_add(1, Ordering::Release);
            // SAFETY: VCPUOP_down takes no argument; the vCPU stops when the call returns and
            // goes on from here if it is brought up again.
            let rc = unsafe { hypercall::vcpu_op(VCPUOP_DOWN, id as u32, 0) };
            if rc != 0 {
                crate::console::println!("guest: vCPU {id}: VCPUOP_down = {rc}");
            }
            continue;
        }
        // SAFETY: `run_on_all` stored a `Job` there (never STOP) before publishing the job number.
        let job: Job = unsafe { core::mem::transmute::<usize, Job>(f) };
        let n = nr();
        let result = job(id, n);
        if let Err(e) = result {
            let e = fail(e);
            // SAFETY: slot `id` is this vCPU's; vCPU 0 reads it only after DONE (module head).
            unsafe { *RESULTS.0[id].get() = Some(e) };
        }
        // Release: publishes the result slot; pairs with `run_on_all`'s Acquire wait.
        DONE.fetch_add(1, Ordering::Release);
    }
}
