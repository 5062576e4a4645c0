//! IPIs: the hypervisor's vectors and their dispatch (taken in hypervisor mode through
//! `irq.S`, or in guest mode through `arch::trap`), sending to one CPU, a set or all but self,
//! cross-CPU calls ("run `f(arg)` on CPU n and wait"), posted work for the idle loop, and the
//! idle loop itself, which runs vCPUs (`domain::sched`) when there are any.
//!
//! A [`Mailbox`] carries one request at a time through `state`:
//! FREE → CLAIMED (a sender's CAS, Acquire: pairs with the Release that freed it) → POSTED
//! (Release: publishes `func`/`arg`) → RUNNING (the target's CAS, Acquire: pairs with POSTED) →
//! DONE (Release: publishes `result`; calls only) → FREE (the sender, after an Acquire load of
//! DONE). Posted work goes RUNNING → FREE at once, with the target copying `func`/`arg` first.
//! A sender that times out before the target took the request takes it back with a
//! POSTED → CLAIMED CAS; once RUNNING, it waits for DONE (the function is running).
//! While waiting, a CPU serves its own call mailbox, so two CPUs calling each other (or a caller
//! with interrupts off) cannot deadlock.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use smp::cpuset::CpuSet;
use smp::icr::Dest;

use super::percpu::{self, ONLINE};
use super::time;

/// First vector with an entry stub in `irq.S`.
pub const IRQ_FIRST: u8 = 0xe0;
/// The one-shot APIC timer.
pub const TIMER_VECTOR: u8 = 0xef;
/// Cross-CPU call mailbox and idle-loop wake-up.
pub const CALL_VECTOR: u8 = 0xf0;
/// The IPI storm self-test.
pub const TEST_VECTOR: u8 = 0xf1;
/// TLB shootdown transport: the handler serves hvcore's mailbox (`domain::flush`).
pub const SHOOTDOWN_VECTOR: u8 = 0xf2;
/// Scheduler kick: no work of its own; it wakes a halted CPU, and makes a CPU running a guest
/// leave it for its run loop, which then looks at what changed (`domain::sched`).
pub const KICK_VECTOR: u8 = 0xf3;
/// `argon.bench=ipi`'s ping: the handler only acknowledges (`bench`).
pub const BENCH_VECTOR: u8 = 0xf4;
/// The APIC's spurious vector: no EOI.
pub const SPURIOUS_VECTOR: u8 = 0xff;

core::arch::global_asm!(
    ".set IRQ_FIRST, {first}",
    include_str!("irq.S"),
    first = const IRQ_FIRST,
    options(att_syntax)
);

unsafe extern "C" {
    static cpu_irq_stubs: u8;
}

/// Points every hypervisor vector at its stub in the shared IDT.
///
/// # Safety
///
/// Single-threaded boot, before any AP loads the IDT.
pub unsafe fn install_vectors() {
    let base = (&raw const cpu_irq_stubs) as u64;
    for v in [
        TIMER_VECTOR,
        CALL_VECTOR,
        TEST_VECTOR,
        SHOOTDOWN_VECTOR,
        KICK_VECTOR,
        BENCH_VECTOR,
        SPURIOUS_VECTOR,
    ] {
        // SAFETY: each stub saves what it clobbers and returns with iretq; boot is
        // single-threaded (caller's contract).
        unsafe { crate::arch::set_interrupt_gate(v, base + u64::from(v - IRQ_FIRST) * 16) };
    }
}

/// Interrupt dispatch, called by `irq_common` with interrupts disabled (interrupts taken in
/// hypervisor mode).
#[unsafe(no_mangle)]
extern "C" fn cpu_irq_dispatch(vector: u64) {
    dispatch(vector);
}

/// Runs the handler of `vector` with interrupts disabled: from `cpu_irq_dispatch`, or from
/// `arch::trap` for an interrupt that arrived while a guest ran.
pub fn dispatch(vector: u64) {
    if vector == u64::from(SPURIOUS_VECTOR) {
        return;
    }
    let me = percpu::this_cpu();
    // Relaxed: a statistic.
    me.interrupts.fetch_add(1, Ordering::Relaxed);
    // EOI first: an IPI sent while the handler runs sets IRR again and is taken after iretq.
    super::lapic().eoi();
    match vector as u8 {
        CALL_VECTOR => serve_calls(),
        TEST_VECTOR => super::selftests::on_test_ipi(),
        TIMER_VECTOR => time::on_timer(),
        SHOOTDOWN_VECTOR => crate::domain::flush::on_ipi(),
        BENCH_VECTOR => super::bench::on_ipi(),
        _ => {}
    }
}

/// A function run on another CPU: takes and returns one word.
pub type CallFn = fn(u64) -> u64;

const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const POSTED: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;

/// One request slot (see the module comment for the protocol).
pub struct Mailbox {
    state: AtomicU32,
    func: AtomicU64,
    arg: AtomicU64,
    result: AtomicU64,
}

impl Mailbox {
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            func: AtomicU64::new(0),
            arg: AtomicU64::new(0),
            result: AtomicU64::new(0),
        }
    }

    /// Takes a POSTED request: `(func, arg)`.
    fn take(&self) -> Option<(CallFn, u64)> {
        // Acquire: pairs with the Release that posted the request.
        self.state
            .compare_exchange(POSTED, RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Relaxed: ordered after the Acquire above.
        let raw = self.func.load(Ordering::Relaxed) as usize;
        let arg = self.arg.load(Ordering::Relaxed);
        // SAFETY: `func` was stored from a `fn(u64) -> u64` by `post` before the POSTED Release.
        let f = unsafe { core::mem::transmute::<usize, CallFn>(raw) };
        Some((f, arg))
    }

    /// Claims the slot and posts `f(arg)`; `false` if it stayed busy until `deadline_ns`.
    fn post(&self, f: fn(u64) -> u64, arg: u64, deadline_ns: u64) -> bool {
        // Acquire on success: pairs with the Release that freed the slot.
        let claimed = wait_until(deadline_ns, || {
            self.state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        if !claimed {
            return false;
        }
        // Relaxed: published by the Release below.
        self.func.store(f as usize as u64, Ordering::Relaxed);
        self.arg.store(arg, Ordering::Relaxed);
        // Release: pairs with the Acquire in `take`.
        self.state.store(POSTED, Ordering::Release);
        true
    }
}

/// Why a cross-CPU call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The CPU is not online.
    Offline,
    /// The target did not take the request in time (or its mailbox stayed busy).
    Timeout,
    /// The IPI could not be sent.
    Send(smp::apic::SendError),
}

/// How long a call waits for its target before giving up (TCG on two host cores is slow).
const CALL_TIMEOUT_NS: u64 = 5_000_000_000;

/// Spins until `cond` holds or `deadline_ns` passes, serving this CPU's call mailbox meanwhile.
pub fn wait_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        serve_calls();
        if time::now_ns() > deadline_ns {
            return cond();
        }
        core::hint::spin_loop();
    }
}

/// Runs the current CPU's pending cross-CPU call, if any.
pub fn serve_calls() {
    let mb = &percpu::this_cpu().call;
    if let Some((f, arg)) = mb.take() {
        let r = f(arg);
        // Relaxed: published by the DONE Release.
        mb.result.store(r, Ordering::Relaxed);
        // Release: pairs with the caller's Acquire load of DONE.
        mb.state.store(DONE, Ordering::Release);
    }
}

/// Sends `vector` to CPU `cpu`, which must be online.
pub fn send_ipi(cpu: usize, vector: u8) -> Result<(), CallError> {
    let target = percpu::cpu(cpu)
        .filter(|_| percpu::online().contains(cpu))
        .ok_or(CallError::Offline)?;
    // Relaxed: the APIC ID was written before the CPU went online (Acquire in `online`).
    let id = target.apic_id.load(Ordering::Relaxed);
    super::lapic()
        .send_fixed(Dest::Apic(id), vector)
        .map_err(CallError::Send)
}

/// Sends `vector` to every online CPU in `set`; the first error, after trying all.
pub fn send_ipi_set(set: CpuSet, vector: u8) -> Result<(), CallError> {
    let mut result = Ok(());
    for cpu in set.iter() {
        let r = send_ipi(cpu, vector);
        result = result.and(r);
    }
    result
}

/// Sends `vector` to every CPU but this one, with the ICR's shorthand.
pub fn send_ipi_all_but_self(vector: u8) -> Result<(), CallError> {
    super::lapic()
        .send_fixed(Dest::AllButSelf, vector)
        .map_err(CallError::Send)
}

/// Runs `f(arg)` on CPU `cpu` (in its IPI handler, interrupts off) and returns the result.
pub fn call_on(cpu: usize, f: fn(u64) -> u64, arg: u64) -> Result<u64, CallError> {
    if cpu == percpu::this_index() {
        return Ok(f(arg));
    }
    let target = percpu::cpu(cpu)
        .filter(|_| percpu::online().contains(cpu))
        .ok_or(CallError::Offline)?;
    let deadline = time::now_ns().saturating_add(CALL_TIMEOUT_NS);
    let mb = &target.call;
    if !mb.post(f, arg, deadline) {
        return Err(CallError::Timeout);
    }
    if let Err(e) = send_ipi(cpu, CALL_VECTOR) {
        retract(mb);
        return Err(e);
    }
    // Acquire: pairs with the DONE Release in `serve_calls`.
    if !wait_until(deadline, || mb.state.load(Ordering::Acquire) == DONE) {
        if retract(mb) {
            return Err(CallError::Timeout);
        }
        // Already running: the function will finish; wait for it without a deadline.
        wait_until(u64::MAX, || mb.state.load(Ordering::Acquire) == DONE);
    }
    // Relaxed: ordered after the DONE Acquire.
    let r = mb.result.load(Ordering::Relaxed);
    // Release: pairs with the next sender's claim.
    mb.state.store(FREE, Ordering::Release);
    Ok(r)
}

/// Takes back a request the target has not started; `true` if it was taken back (slot freed).
fn retract(mb: &Mailbox) -> bool {
    // Relaxed is enough: on success nothing was published by the target.
    let ok = mb
        .state
        .compare_exchange(POSTED, CLAIMED, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok();
    if ok {
        // Release: pairs with the next sender's claim.
        mb.state.store(FREE, Ordering::Release);
    }
    ok
}

/// Posts `f(arg)` to CPU `cpu`'s idle loop (run with interrupts on) and wakes it; no wait.
pub fn post_work(cpu: usize, f: fn(u64) -> u64, arg: u64) -> Result<(), CallError> {
    let target = percpu::cpu(cpu)
        .filter(|_| percpu::online().contains(cpu))
        .ok_or(CallError::Offline)?;
    let deadline = time::now_ns().saturating_add(CALL_TIMEOUT_NS);
    if !target.work.post(f, arg, deadline) {
        return Err(CallError::Timeout);
    }
    send_ipi(cpu, CALL_VECTOR)
}

/// An AP's life after start-up: run posted work with interrupts on, then runnable vCPUs
/// (`domain::sched`), else halt until an interrupt.
pub fn idle_loop() -> ! {
    let me = percpu::this_cpu();
    loop {
        // SAFETY: masks interrupts so that the checks below and the halt cannot miss a wake-up.
        unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
        if let Some((f, arg)) = me.work.take() {
            // Release: pairs with the next poster's claim; func/arg were copied out above.
            me.work.state.store(FREE, Ordering::Release);
            // SAFETY: work runs with interrupts on, as posted work expects.
            unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
            f(arg);
            continue;
        }
        // Relaxed: this CPU's own state, set by itself.
        debug_assert!(me.state.load(Ordering::Relaxed) == ONLINE);
        if crate::domain::sched::run_some() || !crate::domain::sched::idle_enter() {
            continue;
        }
        halt();
        crate::domain::sched::idle_leave();
    }
}

/// Enables interrupts on this CPU (the hypervisor's handlers run on any stack, in any
/// hypervisor context).
pub fn interrupts_on() {
    // SAFETY: the hypervisor's vectors are installed before anything enables interrupts.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
}

/// Masks interrupts on this CPU.
pub fn interrupts_off() {
    // SAFETY: masking interrupts has no other effect.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
}

/// Enables interrupts and halts until one arrives; returns with interrupts enabled.
pub fn halt() {
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (the sti shadow), so an IPI
    // arriving after the caller's last check (made with interrupts off) wakes the halt.
    unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
}
