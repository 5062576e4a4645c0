//! SMP self-tests (`argon.test=`): `dump-madt` (hex dump for the host fixtures), `smp-call`
//! (every CPU answers a cross-CPU call, from the BSP and around a ring of APs; all-but-self and
//! set IPIs reach everyone), `ipi-storm` (every CPU sends [`STORM_ROUNDS`] IPIs to every other;
//! counts must match exactly), `timer` (each CPU's one-shot fires, not early) and `ap-timeout`
//! (a CPU that never starts is left out; everyone else still comes online and answers).
//!
//! Storm protocol, per (target t, sender s): s waits until `ACKED[t][s] == round`, stores
//! `POSTED[t][s] = round + 1` (Release) and sends the IPI; t's handler loads `POSTED[t][s]`
//! (Acquire: pairs with that Release) and stores it into `ACKED[t][s]` (Release: pairs with the
//! sender's Acquire wait). Flow control keeps at most one message per pair in flight, so
//! interrupts that coalesce in the IRR lose nothing, and a lost IPI shows up as a sender timeout.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use smp::MAX_CPUS;

use super::ipi::{self, TEST_VECTOR, call_on, post_work, wait_until};
use super::{percpu, time};

/// The APIC ID of the CPU that `ap-timeout` adds to the boot list; no QEMU test machine has it.
pub const PHANTOM_APIC_ID: u32 = 0xf0;

/// IPIs each CPU sends to each other CPU in the storm.
const STORM_ROUNDS: u32 = 32;
/// Generous: under TCG on two host cores one IPI round trip can take 0.1 s.
const TEST_TIMEOUT_NS: u64 = 30_000_000_000;

pub fn run(name: &str) -> Option<Result<(), &'static str>> {
    let test: fn() -> Result<(), &'static str> = match name {
        "dump-madt" => dump_madt,
        "smp-call" => smp_call,
        "ipi-storm" => ipi_storm,
        "timer" => timer,
        "ap-timeout" => ap_timeout,
        _ => return None,
    };
    // SAFETY: the tests need the BSP to take IPIs; interrupts are masked again afterwards.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    let r = test();
    // SAFETY: restores the masked state kmain runs in.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    match r {
        Ok(()) => info!("self-test {name}: passed"),
        Err(why) => error!("self-test {name}: FAILED: {why}"),
    }
    Some(r)
}

fn dump_madt() -> Result<(), &'static str> {
    let bytes = super::madt_bytes().ok_or("no MADT was found")?;
    for (i, line) in bytes.chunks(16).enumerate() {
        let mut hex = [0u8; 48];
        for (j, b) in line.iter().enumerate() {
            let d = b"0123456789abcdef";
            hex[j * 3..j * 3 + 3].copy_from_slice(&[
                b' ',
                d[usize::from(b >> 4)],
                d[usize::from(b & 15)],
            ]);
        }
        let text = core::str::from_utf8(&hex[..line.len() * 3]).unwrap_or("");
        info!("madt {:04x}:{text}", i * 16);
    }
    info!("madt: {} bytes", bytes.len());
    Ok(())
}

/// `(cpu index << 32) | APIC ID` of the CPU running it.
fn whoami(_: u64) -> u64 {
    (percpu::this_index() as u64) << 32 | u64::from(super::lapic().id())
}

fn expected_id(cpu: usize) -> u64 {
    // Relaxed: the ID was written before the CPU went online (Acquire in `online`).
    let id = percpu::cpu(cpu).map_or(u32::MAX, |c| c.apic_id.load(Ordering::Relaxed));
    (cpu as u64) << 32 | u64::from(id)
}

static RING_OK: AtomicU32 = AtomicU32::new(0);
static RING_DONE: AtomicU32 = AtomicU32::new(0);

/// Calls the next online CPU after this one (wrapping) and checks who answered.
fn ring_step(_: u64) -> u64 {
    let me = percpu::this_index();
    let online = percpu::online();
    let next = online
        .iter()
        .find(|&c| c > me)
        .or(online.iter().next())
        .unwrap_or(me);
    if call_on(next, whoami, 0) == Ok(expected_id(next)) {
        // Relaxed: the count is read after RING_DONE's Acquire.
        RING_OK.fetch_add(1, Ordering::Relaxed);
    }
    // Release: pairs with the BSP's Acquire wait.
    RING_DONE.fetch_add(1, Ordering::Release);
    0
}

/// Per-CPU count of TEST_VECTOR interrupts.
static PINGS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn pings() -> [u64; MAX_CPUS] {
    // Acquire: pairs with the handler's Release increment.
    core::array::from_fn(|i| PINGS[i].load(Ordering::Acquire))
}

fn all_pinged(since: &[u64; MAX_CPUS], me: usize) -> bool {
    // Acquire: pairs with the handler's Release increment.
    percpu::online()
        .without(me)
        .iter()
        .all(|c| PINGS[c].load(Ordering::Acquire) > since[c])
}

fn smp_call() -> Result<(), &'static str> {
    let online = percpu::online();
    for cpu in online.iter() {
        let got = call_on(cpu, whoami, 0).map_err(|_| "a cross-CPU call failed")?;
        if got != expected_id(cpu) {
            error!(
                "smp-call: CPU {cpu} answered as {:#x}, expected {:#x}",
                got,
                expected_id(cpu)
            );
            return Err("a call ran on the wrong CPU");
        }
        info!("smp-call: CPU {cpu} (APIC ID {}) answered", got as u32);
    }
    let n = online.len() as u32;
    for cpu in online.without(0).iter() {
        post_work(cpu, ring_step, 0).map_err(|_| "posting ring work failed")?;
    }
    ring_step(0);
    let deadline = time::now_ns() + TEST_TIMEOUT_NS;
    // Acquire: pairs with each ring step's Release.
    if !wait_until(deadline, || RING_DONE.load(Ordering::Acquire) == n) {
        return Err("the ring of calls did not finish");
    }
    // Relaxed: ordered after the RING_DONE Acquire above.
    if RING_OK.load(Ordering::Relaxed) != n {
        return Err("a CPU in the ring got a wrong or no answer");
    }
    info!("smp-call: ring of {n} CPU-to-CPU calls answered");
    let before = pings();
    ipi::send_ipi_all_but_self(TEST_VECTOR).map_err(|_| "all-but-self send failed")?;
    if !wait_until(deadline, || all_pinged(&before, 0)) {
        return Err("an all-but-self IPI was not received");
    }
    let before = pings();
    ipi::send_ipi_set(online.without(0), TEST_VECTOR).map_err(|_| "set send failed")?;
    if !wait_until(deadline, || all_pinged(&before, 0)) {
        return Err("a set IPI was not received");
    }
    info!("smp-call: all-but-self and set IPIs reached {} CPUs", n - 1);
    Ok(())
}

type Row = [AtomicU32; MAX_CPUS];
/// `[target][sender]`: the last message a sender posted to a target.
static POSTED: [Row; MAX_CPUS] = [const { [const { AtomicU32::new(0) }; MAX_CPUS] }; MAX_CPUS];
/// `[target][sender]`: the last message the target's handler took.
static ACKED: [Row; MAX_CPUS] = [const { [const { AtomicU32::new(0) }; MAX_CPUS] }; MAX_CPUS];
/// Messages a handler found more than one ahead of its ack: a protocol break.
static STORM_ERRORS: AtomicU32 = AtomicU32::new(0);
static STORM_DONE: AtomicU32 = AtomicU32::new(0);
static STORM_TIMEOUTS: AtomicU32 = AtomicU32::new(0);

/// The TEST_VECTOR handler: counts the interrupt and acknowledges every posted storm message.
pub fn on_test_ipi() {
    let me = percpu::this_index();
    // Release: pairs with the Acquire in `pings`.
    PINGS[me].fetch_add(1, Ordering::Release);
    for s in percpu::online().iter() {
        // Acquire: pairs with the sender's Release of the message.
        let posted = POSTED[me][s].load(Ordering::Acquire);
        // Relaxed: only this CPU writes its ACKED row.
        let acked = ACKED[me][s].load(Ordering::Relaxed);
        if posted != acked {
            if posted != acked + 1 {
                // Relaxed: a statistic read after the storm's Release/Acquire.
                STORM_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
            // Release: pairs with the sender's Acquire wait.
            ACKED[me][s].store(posted, Ordering::Release);
        }
    }
}

fn storm_sender(_: u64) -> u64 {
    let me = percpu::this_index();
    let targets = percpu::online().without(me);
    let deadline = time::now_ns() + TEST_TIMEOUT_NS;
    'rounds: for round in 0..STORM_ROUNDS {
        for t in targets.iter() {
            // Acquire: pairs with the target handler's Release of the ack.
            if !wait_until(deadline, || ACKED[t][me].load(Ordering::Acquire) == round) {
                STORM_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                break 'rounds;
            }
            // Release: pairs with the handler's Acquire load.
            POSTED[t][me].store(round + 1, Ordering::Release);
            if ipi::send_ipi(t, TEST_VECTOR).is_err() {
                // Relaxed: a count read after the STORM_DONE Release/Acquire.
                STORM_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
                break 'rounds;
            }
        }
    }
    // Acquire: pairs with the target handler's Release of the ack.
    let all_acked = |t: usize| ACKED[t][me].load(Ordering::Acquire) == STORM_ROUNDS;
    if !wait_until(deadline, || targets.iter().all(all_acked)) {
        // Relaxed: as above.
        STORM_TIMEOUTS.fetch_add(1, Ordering::Relaxed);
    }
    // Release: pairs with the BSP's Acquire wait; publishes this sender's counts.
    STORM_DONE.fetch_add(1, Ordering::Release);
    0
}

fn ipi_storm() -> Result<(), &'static str> {
    let online = percpu::online();
    let n = online.len() as u32;
    let t0 = time::now_ns();
    let before = pings();
    for cpu in online.without(0).iter() {
        post_work(cpu, storm_sender, 0).map_err(|_| "posting the storm failed")?;
    }
    storm_sender(0);
    // Acquire: pairs with each sender's STORM_DONE Release (publishes its counts).
    if !wait_until(t0 + TEST_TIMEOUT_NS * 2, || {
        STORM_DONE.load(Ordering::Acquire) == n
    }) {
        return Err("a storm sender never finished");
    }
    let after = pings();
    // Relaxed: ordered after the STORM_DONE Acquire; ACKED loads below pair with handlers.
    let mut ok =
        STORM_TIMEOUTS.load(Ordering::Relaxed) == 0 && STORM_ERRORS.load(Ordering::Relaxed) == 0;
    for t in online.iter() {
        let received: u32 = online
            .without(t)
            .iter()
            .map(|s| ACKED[t][s].load(Ordering::Acquire))
            .sum();
        let exact = online
            .without(t)
            .iter()
            .all(|s| ACKED[t][s].load(Ordering::Acquire) == STORM_ROUNDS);
        ok &= exact && received == STORM_ROUNDS * (n - 1);
        info!(
            "ipi-storm: CPU {t} received {received} of {} messages in {} interrupts",
            STORM_ROUNDS * (n - 1),
            after[t] - before[t]
        );
    }
    let ms = (time::now_ns() - t0) / 1_000_000;
    info!(
        "ipi-storm: {n} CPUs, {} IPIs in {ms} ms, {} timeouts, {} protocol errors",
        STORM_ROUNDS * n * (n - 1),
        STORM_TIMEOUTS.load(Ordering::Relaxed),
        STORM_ERRORS.load(Ordering::Relaxed)
    );
    if ok {
        Ok(())
    } else {
        Err("IPI counts do not match")
    }
}

const TIMER_DELAY_NS: u64 = 2_000_000;
/// Per CPU: ns from arming to the interrupt, or `u64::MAX` when it never came.
static TIMER_RESULT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static TIMER_DONE: AtomicU32 = AtomicU32::new(0);

/// Arms a one-shot and halts until it fires (or a second passes). Needs interrupts on.
fn timer_probe(_: u64) -> u64 {
    let me = percpu::this_cpu();
    // Relaxed: written by this CPU's own timer interrupt.
    let fired = || me.timer_fired.load(Ordering::Relaxed);
    let (before, t0) = (fired(), time::now_ns());
    time::arm_oneshot(TIMER_DELAY_NS);
    let result = loop {
        // SAFETY: check with interrupts masked, then `sti; hlt` (atomic through the sti shadow),
        // so the timer interrupt cannot slip in between the check and the halt.
        unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
        let elapsed = time::now_ns() - t0;
        if fired() != before {
            break elapsed;
        }
        if elapsed > 1_000_000_000 {
            break u64::MAX;
        }
        // SAFETY: see above; the timer (or any other interrupt) ends the halt.
        unsafe { core::arch::asm!("sti", "hlt", options(nomem, nostack)) };
    };
    // SAFETY: posted work and the self-test both run with interrupts on.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    time::cancel_oneshot();
    // Relaxed + Release: the result is published by the TIMER_DONE Release.
    TIMER_RESULT[percpu::this_index()].store(result, Ordering::Relaxed);
    TIMER_DONE.fetch_add(1, Ordering::Release);
    0
}

fn timer() -> Result<(), &'static str> {
    let online = percpu::online();
    for cpu in online.without(0).iter() {
        post_work(cpu, timer_probe, 0).map_err(|_| "posting the timer probe failed")?;
    }
    timer_probe(0);
    let n = online.len() as u32;
    // Acquire: pairs with each probe's TIMER_DONE Release.
    if !wait_until(time::now_ns() + TEST_TIMEOUT_NS, || {
        TIMER_DONE.load(Ordering::Acquire) == n
    }) {
        return Err("a timer probe never finished");
    }
    let mut ok = true;
    for cpu in online.iter() {
        // Relaxed: ordered after the TIMER_DONE Acquire above.
        let ns = TIMER_RESULT[cpu].load(Ordering::Relaxed);
        // Firing early is a bug; firing late is only TCG being slow. 5% slack covers the
        // APIC-timer calibration error.
        let good = ns != u64::MAX && ns >= TIMER_DELAY_NS * 95 / 100;
        ok &= good;
        info!(
            "timer: CPU {cpu} one-shot of {} us fired after {} us{}",
            TIMER_DELAY_NS / 1000,
            ns / 1000,
            if good { "" } else { " (WRONG)" }
        );
    }
    if ok {
        Ok(())
    } else {
        Err("a one-shot timer fired early or never")
    }
}

/// `init` tried to start a CPU that does not exist: it must have been left out, alone, and every
/// real CPU must still answer.
fn ap_timeout() -> Result<(), &'static str> {
    if super::left_out() != 1 {
        return Err("the phantom CPU was not the one CPU left out");
    }
    let online = percpu::online();
    // Relaxed: IDs are written before a CPU goes online.
    if online.iter().any(|c| {
        percpu::cpu(c).is_some_and(|p| p.apic_id.load(Ordering::Relaxed) == PHANTOM_APIC_ID)
    }) {
        return Err("the phantom CPU is marked online");
    }
    for cpu in online.iter() {
        if call_on(cpu, whoami, 0) != Ok(expected_id(cpu)) {
            return Err("a real CPU did not answer after the phantom's timeout");
        }
    }
    info!(
        "ap-timeout: phantom APIC ID {PHANTOM_APIC_ID:#x} left out, {} CPUs answer",
        online.len()
    );
    Ok(())
}
