//! Host harness for the shootdown tests: std threads stand in for CPUs.
//!
//! Owns the test machine: one mailbox, flush-time slot, "interrupt pending" flag and modelled TLB
//! per CPU. The test [`Ipi`] sets the target's flag (Release); a CPU thread that polls sees it
//! (Acquire) and calls `Shootdown::handle`, completing a clock wrap afterwards as a softirq would.
//! A CPU thread that is inside `flush` does not poll (interrupts "disabled"): it can only make
//! progress by serving its own mailbox, which is what the protocol promises.
//!
//! Included by the shootdown and flush test files with `#[path]`; built alone it has no tests.

use hvcore::flush::{
    AtomicCpuMask, CpuFlushTime, CpuFlushTimes, FlushClock, Ipi, Mailbox, Shootdown,
    ShootdownStats, Tlb,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// A modelled TLB: virtual page → (frame, writable), plus flush counters.
#[derive(Debug, Default)]
pub struct ModelTlb {
    pub entries: Mutex<HashMap<u64, (u64, bool)>>,
    pub full: AtomicU64,
    pub va: AtomicU64,
    /// Flushes started / completed (any kind), for coverage checks.
    pub started: AtomicU64,
    pub completed: AtomicU64,
    /// Pages flushed with `flush_va`, in order.
    pub va_log: Mutex<Vec<u64>>,
}

impl ModelTlb {
    /// The cached translation of `va`, if any.
    pub fn lookup(&self, va: u64) -> Option<(u64, bool)> {
        self.entries.lock().unwrap().get(&va).copied()
    }

    /// Translate `va` like a CPU: use the cached entry, or walk `pte` and cache it. The walk and
    /// the fill are one step with respect to this CPU's flushes (as an interrupt cannot split a
    /// hardware page walk). `pte` holds `frame << 1 | writable`, 0 = not present.
    pub fn access(&self, va: u64, pte: &AtomicU64) -> Option<(u64, bool)> {
        let mut e = self.entries.lock().unwrap();
        if let Some(hit) = e.get(&va) {
            return Some(*hit);
        }
        let raw = pte.load(Ordering::Acquire);
        if raw == 0 {
            return None;
        }
        let t = (raw >> 1, raw & 1 != 0);
        e.insert(va, t);
        Some(t)
    }

    pub fn flushes(&self) -> u64 {
        self.full.load(Ordering::SeqCst) + self.va.load(Ordering::SeqCst)
    }
}

impl Tlb for ModelTlb {
    fn flush_all(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap().clear();
        self.full.fetch_add(1, Ordering::SeqCst);
        self.completed.fetch_add(1, Ordering::SeqCst);
    }

    fn flush_va(&self, va: u64) {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap().remove(&va);
        self.va_log.lock().unwrap().push(va);
        self.va.fetch_add(1, Ordering::SeqCst);
        self.completed.fetch_add(1, Ordering::SeqCst);
    }
}

/// The test machine.
#[derive(Debug)]
pub struct Machine {
    pub mailboxes: Vec<Mailbox>,
    pub slots: Vec<CpuFlushTime>,
    pub clock: FlushClock,
    pub online: AtomicCpuMask,
    pub stats: ShootdownStats,
    pub irq: Vec<AtomicBool>,
    pub tlbs: Vec<ModelTlb>,
    /// Every IPI sent: (from, to).
    pub ipis: Mutex<Vec<(usize, usize)>>,
    pub clock_enabled: bool,
}

impl Machine {
    /// `n` online CPUs, clock starting at `clock`.
    pub fn new(n: usize, clock: u32) -> Arc<Self> {
        Self::build(n, clock, true)
    }

    pub fn build(n: usize, clock: u32, clock_enabled: bool) -> Arc<Self> {
        let m = Self {
            mailboxes: (0..n).map(|_| Mailbox::new()).collect(),
            slots: (0..n).map(|_| CpuFlushTime::new()).collect(),
            clock: FlushClock::starting_at(clock),
            online: AtomicCpuMask::for_cpus(n),
            stats: ShootdownStats::new(),
            irq: (0..n).map(|_| AtomicBool::new(false)).collect(),
            tlbs: (0..n).map(|_| ModelTlb::default()).collect(),
            ipis: Mutex::new(Vec::new()),
            clock_enabled,
        };
        let sd = m.sd();
        for cpu in 0..n {
            sd.bring_online(cpu).unwrap();
        }
        Arc::new(m)
    }

    pub fn times(&self) -> CpuFlushTimes<'_> {
        if self.clock_enabled {
            CpuFlushTimes::new(&self.clock, &self.slots)
        } else {
            CpuFlushTimes::with_clock_disabled(&self.clock, &self.slots)
        }
    }

    pub fn sd(&self) -> Shootdown<'_> {
        Shootdown::new(&self.mailboxes, self.times(), &self.online)
            .unwrap()
            .with_stats(&self.stats)
    }

    pub fn ipi(&self, me: usize) -> TestIpi<'_> {
        TestIpi { m: self, me }
    }

    /// Take a pending interrupt on `cpu`, if any; returns whether one was taken.
    pub fn poll(&self, cpu: usize) -> bool {
        // Acquire: pairs with the Release store in `TestIpi::send` (IPI delivery).
        if !self.irq[cpu].swap(false, Ordering::Acquire) {
            return false;
        }
        let sd = self.sd();
        let handled = sd.handle(cpu, &self.tlbs[cpu]);
        assert!(!handled.nested);
        if let Some(wrap) = handled.wrap {
            // The "softirq" after the interrupt.
            let _ = sd.complete_wrap(cpu, wrap, &self.ipi(cpu), &self.tlbs[cpu]);
        }
        true
    }

    pub fn ipis_to(&self, cpu: usize) -> usize {
        self.ipis
            .lock()
            .unwrap()
            .iter()
            .filter(|&&(_, to)| to == cpu)
            .count()
    }
}

/// The test IPI: sets the target's interrupt flag. Panics on an IPI to oneself.
#[derive(Debug)]
pub struct TestIpi<'a> {
    m: &'a Machine,
    me: usize,
}

impl Ipi for TestIpi<'_> {
    fn send(&self, cpu: usize) {
        assert_ne!(cpu, self.me, "CPU {cpu} sent an IPI to itself");
        self.m.ipis.lock().unwrap().push((self.me, cpu));
        // Release: the sender's posts happen-before the handler; pairs with `Machine::poll`.
        self.m.irq[cpu].store(true, Ordering::Release);
    }
}

/// Run `body(cpu)` on one thread per CPU in `0..n`. After its body, each thread keeps taking
/// interrupts until every body has finished, so late requests are still served. Panics if the
/// bodies do not all finish within `limit` (a lost wake-up or a deadlock).
pub fn run_cpus(m: &Arc<Machine>, limit: Duration, body: impl Fn(usize) + Send + Sync + 'static) {
    let n = m.mailboxes.len();
    let body = Arc::new(body);
    let finished = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for cpu in 0..n {
        let (m, body, finished, tx) = (m.clone(), body.clone(), finished.clone(), tx.clone());
        std::thread::spawn(move || {
            body(cpu);
            finished.fetch_add(1, Ordering::SeqCst);
            while finished.load(Ordering::SeqCst) < n {
                if !m.poll(cpu) {
                    std::thread::yield_now();
                }
            }
            // Serve anything posted just before the last body finished.
            while m.poll(cpu) {}
            tx.send(cpu).unwrap();
        });
    }
    for _ in 0..n {
        rx.recv_timeout(limit)
            .expect("CPU threads did not finish: lost wake-up or deadlock");
    }
}
