//! The TLB shootdown protocol (DESIGN.md §7, spec §5.2) as plain data-structure code.
//!
//! [`Shootdown`] is a `Copy` view over caller-owned state: one [`Mailbox`] per CPU, the per-CPU
//! flush times and clock, the online mask and optional counters. There is no global lock: each
//! target is reached through its own mailbox (see `mailbox.rs` for the word protocol and its
//! orderings). The hardware arrives through two traits: [`Ipi`] (the hypervisor writes the x2APIC
//! ICR) and [`Tlb`] (INVLPG / full flush on the CPU that handles a request).
//!
//! A shootdown is issue → dispatch → wait: post the request to every target's mailbox (the
//! initiator's own included, if it is a target), send one IPI to each remote target whose mailbox
//! was idle, then wait for every target's acknowledgement, serving the initiator's own mailbox
//! while waiting. The initiator never IPIs itself: it serves its own request.
//!
//! Progress. A CPU with an unserved request either has an IPI on its way or is inside its handler
//! (`mailbox.rs`). Every waiting initiator runs its own handler in its wait loop, so two CPUs
//! shooting at each other, or any cycle of them, all make progress. The wait therefore ends
//! provided every online CPU eventually either takes the IPI (interrupts are not disabled forever)
//! or is itself waiting in `flush`. `handle` never waits for another CPU; a wrap it causes is
//! reported ([`Handled::wrap`]) and completed by the caller outside the interrupt handler.
//!
//! Orderings in this file: the online mask is read with `AtomicCpuMask::load` (Acquire) after the
//! caller's dirty-mask snapshot; a CPU that set its dirty bit was online before, so the snapshot's
//! Acquire already makes its online bit visible. All other atomics are in `mailbox.rs`,
//! `filter.rs`, `clock.rs` and `stats.rs`.

use super::FlushError;
use super::clock::WrapPending;
use super::cpumask::{AtomicCpuMask, CpuMask, MAX_CPUS};
use super::filter::CpuFlushTimes;
use super::mailbox::Mailbox;
use super::stats::{Counter, FlushStats, Handled, ShootdownStats};
use super::token::{FlushKind, FlushToken};
use crate::sync::spin_loop;

/// Sends the flush IPI to a CPU (x2APIC ICR write in the hypervisor; a flag in tests).
///
/// The transport must order the ICR write after the preceding atomic writes (on x2APIC a fence
/// before `wrmsr`), and the target's handler must run after the interrupt arrives.
pub trait Ipi {
    /// Interrupt `cpu` so that it calls [`Shootdown::handle`].
    fn send(&self, cpu: usize);
}

/// The TLB of the CPU that handles a request.
pub trait Tlb {
    /// Drop every translation, global ones included.
    fn flush_all(&self);
    /// Drop the translation of the 4 KiB page at `va` (page aligned).
    fn flush_va(&self, va: u64);
}

/// The shootdown layer: a view over caller-owned per-CPU state, cheap to copy to every CPU.
#[derive(Debug, Clone, Copy)]
pub struct Shootdown<'a> {
    mailboxes: &'a [Mailbox],
    times: CpuFlushTimes<'a>,
    online: &'a AtomicCpuMask,
    stats: Option<&'a ShootdownStats>,
    /// CPUs `0..mailboxes.len()`.
    valid: CpuMask,
}

impl<'a> Shootdown<'a> {
    /// A view over one mailbox per CPU, the flush times of the same CPUs and the online mask.
    ///
    /// Build the state with non-const constructors (loom models build it per iteration).
    pub fn new(
        mailboxes: &'a [Mailbox],
        times: CpuFlushTimes<'a>,
        online: &'a AtomicCpuMask,
    ) -> Result<Self, FlushError> {
        if mailboxes.len() > MAX_CPUS {
            return Err(FlushError::TooManyCpus {
                cpus: mailboxes.len(),
            });
        }
        if times.len() != mailboxes.len() {
            return Err(FlushError::LengthMismatch {
                mailboxes: mailboxes.len(),
                times: times.len(),
            });
        }
        let valid = CpuMask::first(mailboxes.len());
        Ok(Self {
            mailboxes,
            times,
            online,
            stats: None,
            valid,
        })
    }

    /// Count events in `stats`.
    pub fn with_stats(self, stats: &'a ShootdownStats) -> Self {
        Self {
            stats: Some(stats),
            ..self
        }
    }

    /// The flush times and clock this layer records into.
    pub fn times(&self) -> CpuFlushTimes<'a> {
        self.times
    }

    /// Number of CPUs (mailboxes).
    pub fn cpus(&self) -> usize {
        self.mailboxes.len()
    }

    fn count(&self, c: Counter, n: usize) {
        if let Some(s) = self.stats {
            s.add(c, n as u64);
        }
    }

    /// Mark `cpu` online: from now on shootdowns may target it and wait for it. Call it on that
    /// CPU once it handles the flush IPI, before it runs any domain.
    pub fn bring_online(&self, cpu: usize) -> Result<(), FlushError> {
        if cpu >= self.mailboxes.len() {
            return Err(FlushError::NoSuchCpu { cpu });
        }
        let _already = self.online.set(cpu);
        Ok(())
    }

    /// The online CPUs that have a mailbox.
    pub fn online(&self) -> CpuMask {
        self.online.load().intersection(self.valid)
    }

    /// The clock filter (spec §1.7): `mask` without the CPUs that did a full flush after
    /// `page_stamp`, counting the CPUs removed.
    pub fn filter(&self, mask: CpuMask, page_stamp: super::Stamp) -> CpuMask {
        let kept = self.times.filter(mask, page_stamp);
        self.count(Counter::FilteredOut, mask.count() - kept.count());
        kept
    }

    /// Flush `kind` on every online CPU in `targets` and return once all have done so. The caller
    /// (`me`) flushes itself if it is in `targets`. If a full flush wraps the clock, every other
    /// online CPU is flushed too before this returns.
    ///
    /// Must not be called from inside [`Tlb`] callbacks or [`Self::handle`] of the same CPU.
    ///
    /// # Panics
    /// If `me` has no mailbox.
    pub fn flush(
        &self,
        me: usize,
        targets: CpuMask,
        kind: FlushKind,
        ipi: &impl Ipi,
        tlb: &impl Tlb,
    ) -> FlushStats {
        let (mut stats, wrap) = self.shoot(me, targets, kind, ipi, tlb);
        if let Some(wrap) = wrap {
            stats.absorb(self.complete_wrap(me, wrap, ipi, tlb));
        }
        stats
    }

    /// Discharge a [`FlushToken`]: [`Self::flush`] of its targets and kind.
    pub fn flush_token(
        &self,
        me: usize,
        token: FlushToken,
        ipi: &impl Ipi,
        tlb: &impl Tlb,
    ) -> FlushStats {
        let (targets, kind) = token.into_parts();
        if targets.is_empty() {
            return FlushStats::default();
        }
        self.flush(me, targets, kind, ipi, tlb)
    }

    /// Serve CPU `me`'s mailbox: perform every posted request with `tlb` (a full flush bracketed
    /// by the clock), acknowledge it, and return once the mailbox is idle. Call it from the flush
    /// IPI vector on `me`; `flush` calls it while waiting. A nested call (an IPI arriving inside
    /// it) returns at once with `nested` set; the interrupted call serves the rest.
    ///
    /// # Panics
    /// If `me` has no mailbox.
    pub fn handle(&self, me: usize, tlb: &impl Tlb) -> Handled {
        let mb = &self.mailboxes[me];
        let mut out = Handled {
            flushes: 0,
            nested: false,
            wrap: None,
        };
        // Re-check after leaving: a nested call refused while we were serving may have swallowed
        // an IPI whose request arrived after our last arming; it is visible here (program order).
        while !mb.is_idle() {
            if !mb.enter() {
                out.nested = true;
                return out;
            }
            mb.serve(|kind| {
                match kind {
                    FlushKind::Full => {
                        let tick = self.times.begin_full_flush();
                        tlb.flush_all();
                        if let Some(wrap) = self.times.end_full_flush(me, tick) {
                            out.wrap = Some(wrap);
                        }
                        self.count(Counter::FullFlushes, 1);
                    }
                    FlushKind::Va(va) => {
                        tlb.flush_va(va);
                        self.count(Counter::VaFlushes, 1);
                    }
                }
                out.flushes += 1;
            });
            mb.leave();
        }
        out
    }

    /// Complete a clock wrap: full-flush every other online CPU, then restart the clock at 1
    /// (Xen's `new_tlbflush_clock_period`). Call it outside interrupt context on the CPU whose
    /// tick wrapped. Until it returns every NEED_FLUSH test says "flush".
    pub fn complete_wrap(
        &self,
        me: usize,
        wrap: WrapPending,
        ipi: &impl Ipi,
        tlb: &impl Tlb,
    ) -> FlushStats {
        let others = self.online().without(me);
        // While the clock is 0 nothing ticks, so this shootdown cannot wrap again.
        let (mut stats, again) = self.shoot(me, others, FlushKind::Full, ipi, tlb);
        debug_assert!(again.is_none(), "the clock wrapped twice in one period");
        // The acknowledgements acquired in `shoot` make every CPU's flush (and its recorded time)
        // happen-before the restart; `finish_wrap` releases them (clock.rs).
        self.times.clock().finish_wrap(wrap);
        self.count(Counter::Wraps, 1);
        stats.wrapped = true;
        stats
    }

    /// Issue → dispatch → wait. Returns the wrap token if a full flush on this CPU wrapped.
    fn shoot(
        &self,
        me: usize,
        targets: CpuMask,
        kind: FlushKind,
        ipi: &impl Ipi,
        tlb: &impl Tlb,
    ) -> (FlushStats, Option<WrapPending>) {
        assert!(me < self.mailboxes.len(), "CPU {me} has no mailbox");
        let local = targets.contains(me);
        let mut targets = targets.intersection(self.online());
        if local {
            // The caller flushes itself even before it is marked online.
            targets.set(me);
        }
        let mut stats = FlushStats {
            local,
            ..FlushStats::default()
        };

        // Issue: post to every target. 2 KiB of tickets on the stack, no allocation.
        let mut tickets = [0u64; MAX_CPUS];
        let mut to_ipi = CpuMask::new();
        for cpu in targets.iter() {
            let posted = self.mailboxes[cpu].post(kind);
            tickets[cpu] = posted.ticket;
            if cpu != me {
                stats.remote_targets += 1;
                if posted.must_ipi {
                    to_ipi.set(cpu);
                }
            }
        }

        // Dispatch: one IPI per remote target that was idle.
        for cpu in to_ipi.iter() {
            ipi.send(cpu);
        }
        stats.ipis_sent = to_ipi.count();
        if stats.remote_targets > 0 {
            self.count(Counter::Shootdowns, 1);
        }
        self.count(Counter::CpusTargeted, stats.remote_targets);
        self.count(Counter::IpisSent, stats.ipis_sent);
        self.count(Counter::Coalesced, stats.remote_targets - stats.ipis_sent);

        // Wait, serving our own mailbox (our own request and anyone shooting at us).
        let mut wrap = None;
        for cpu in targets.iter() {
            loop {
                #[cfg(not(loom_mutant = "shootdown_no_self_serve"))]
                let handled = self.handle(me, tlb);
                // Mutant (caught by loom-tests shootdown_mutual_*): the waiting initiator does
                // not serve its own mailbox.
                #[cfg(loom_mutant = "shootdown_no_self_serve")]
                let handled = Handled {
                    flushes: 0,
                    nested: false,
                    wrap: None,
                };
                if handled.wrap.is_some() {
                    debug_assert!(wrap.is_none(), "the clock wrapped twice in one period");
                    wrap = handled.wrap;
                }
                #[cfg(not(loom_mutant = "shootdown_no_ack_wait"))]
                let acked = self.mailboxes[cpu].acked(tickets[cpu]);
                // Mutant (caught by loom-tests shootdown_unmap_*): remote targets are not waited
                // for.
                #[cfg(loom_mutant = "shootdown_no_ack_wait")]
                let acked = cpu != me || self.mailboxes[cpu].acked(tickets[cpu]);
                if acked {
                    break;
                }
                spin_loop();
            }
        }
        (stats, wrap)
    }
}
