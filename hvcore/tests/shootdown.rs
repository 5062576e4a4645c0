//! Host tests of the shootdown protocol (DESIGN.md §7) with std threads as CPUs: exactly-once
//! delivery, no self-IPI, coalescing, local flushes, nested handlers, and mutual shootdowns.

#[path = "shootdown_harness.rs"]
pub mod harness;

use harness::{Machine, run_cpus};
use hvcore::flush::{CpuMask, FlushError, FlushKind, FlushToken, Mailbox, Shootdown, Tlb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn every_target_flushes_exactly_once_and_nobody_ipis_itself() {
    let m = Machine::new(4, 1);
    let started = Arc::new(AtomicBool::new(false));
    let go = started.clone();
    let mm = m.clone();
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu == 0 {
            let s = mm.sd().flush(
                0,
                [1, 2, 3].into_iter().collect(),
                FlushKind::va(0x7000),
                &mm.ipi(0),
                &mm.tlbs[0],
            );
            assert_eq!(
                (s.remote_targets, s.ipis_sent, s.local, s.wrapped),
                (3, 3, false, false)
            );
            go.store(true, Ordering::SeqCst);
        } else {
            while !go.load(Ordering::SeqCst) {
                mm.poll(cpu);
            }
        }
    });
    assert!(started.load(Ordering::SeqCst));
    for cpu in 1..4 {
        assert_eq!(*m.tlbs[cpu].va_log.lock().unwrap(), [0x7000], "CPU {cpu}");
        assert_eq!(m.tlbs[cpu].full.load(Ordering::SeqCst), 0);
        assert_eq!(m.ipis_to(cpu), 1);
    }
    assert_eq!(m.tlbs[0].flushes(), 0, "the initiator was not a target");
    let c = m.stats.read();
    assert_eq!(
        (c.shootdowns, c.cpus_targeted, c.ipis_sent, c.coalesced),
        (1, 3, 3, 0)
    );
    assert!(m.mailboxes.iter().all(Mailbox::is_idle));
}

#[test]
fn initiator_in_the_mask_flushes_itself_without_an_ipi() {
    let m = Machine::new(2, 1);
    let done = Arc::new(AtomicBool::new(false));
    let (mm, d) = (m.clone(), done.clone());
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu == 0 {
            let s = mm.sd().flush(
                0,
                CpuMask::first(2),
                FlushKind::Full,
                &mm.ipi(0),
                &mm.tlbs[0],
            );
            assert_eq!((s.remote_targets, s.ipis_sent, s.local), (1, 1, true));
            // Only-local: no IPI, no remote target.
            let s = mm.sd().flush(
                0,
                CpuMask::single(0),
                FlushKind::va(0x1000),
                &mm.ipi(0),
                &mm.tlbs[0],
            );
            assert_eq!((s.remote_targets, s.ipis_sent, s.local), (0, 0, true));
            d.store(true, Ordering::SeqCst);
        } else {
            while !d.load(Ordering::SeqCst) {
                mm.poll(cpu);
            }
        }
    });
    assert_eq!(
        (
            m.tlbs[0].full.load(Ordering::SeqCst),
            m.tlbs[0].va.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert_eq!(m.tlbs[1].flushes(), 1);
    assert_eq!(*m.ipis.lock().unwrap(), [(0, 1)]);
    // Both full flushes ticked the clock (1 → 2 → 3) and were recorded.
    assert_eq!(m.clock.now(), 3);
    let mut t = [m.times().last_flush(0), m.times().last_flush(1)];
    t.sort();
    assert_eq!(t, [2, 3]);
}

/// CPU 2 keeps interrupts off until CPUs 0 and 1 have both posted to it: one IPI, one flush.
fn coalesce(va0: u64, va1: u64, want_full: u64, want_va: &[u64]) {
    let m = Machine::new(3, 1);
    let mm = m.clone();
    run_cpus(&m, LIMIT, move |cpu| match cpu {
        0 | 1 => {
            let va = if cpu == 0 { va0 } else { va1 };
            let _ = mm.sd().flush(
                cpu,
                CpuMask::single(2),
                FlushKind::va(va),
                &mm.ipi(cpu),
                &mm.tlbs[cpu],
            );
        }
        _ => {
            while mm.stats.read().cpus_targeted < 2 {
                std::thread::yield_now();
            }
            assert!(mm.poll(2), "the IPI must be pending");
        }
    });
    let c = m.stats.read();
    assert_eq!(
        (c.ipis_sent, c.coalesced),
        (1, 1),
        "one IPI for two requests"
    );
    assert_eq!(m.ipis_to(2), 1);
    assert_eq!(m.tlbs[2].full.load(Ordering::SeqCst), want_full);
    assert_eq!(*m.tlbs[2].va_log.lock().unwrap(), want_va);
}

#[test]
fn requests_to_one_cpu_coalesce() {
    coalesce(0x5000, 0x5008, 0, &[0x5000]); // same page: one page flush
    coalesce(0x5000, 0x6000, 1, &[]); // two pages: degrade to one full flush
}

/// A Tlb that, on its first flush, takes an "interrupt" (a nested `handle`), then lets a second
/// initiator post while the outer handler is still serving.
struct NestingTlb<'a> {
    m: &'a Machine,
    first: AtomicBool,
    inside: &'a AtomicBool,
}

impl Tlb for NestingTlb<'_> {
    fn flush_all(&self) {
        self.m.tlbs[1].flush_all();
    }
    fn flush_va(&self, va: u64) {
        if self.first.swap(false, Ordering::SeqCst) {
            let nested = self.m.sd().handle(1, self);
            assert!(nested.nested && nested.flushes == 0 && nested.wrap.is_none());
            self.inside.store(true, Ordering::SeqCst);
            while self.m.stats.read().cpus_targeted < 2 {
                std::thread::yield_now();
            }
        }
        self.m.tlbs[1].flush_va(va);
    }
}

#[test]
fn nested_handler_defers_and_busy_handler_needs_no_ipi() {
    let m = Machine::new(3, 1);
    let inside = Arc::new(AtomicBool::new(false));
    let mm = m.clone();
    run_cpus(&m, LIMIT, move |cpu| match cpu {
        0 => {
            let _ = mm.sd().flush(
                0,
                CpuMask::single(1),
                FlushKind::va(0x1000),
                &mm.ipi(0),
                &mm.tlbs[0],
            );
        }
        2 => {
            // Post while CPU 1 is serving CPU 0's request (its mailbox is not armed).
            while !inside.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let _ = mm.sd().flush(
                2,
                CpuMask::single(1),
                FlushKind::va(0x2000),
                &mm.ipi(2),
                &mm.tlbs[2],
            );
        }
        _ => {
            while !mm.irq[1].swap(false, Ordering::Acquire) {
                std::thread::yield_now();
            }
            let tlb = NestingTlb {
                m: &mm,
                first: AtomicBool::new(true),
                inside: &inside,
            };
            let h = mm.sd().handle(1, &tlb);
            assert_eq!((h.flushes, h.nested), (2, false));
        }
    });
    assert_eq!(*m.tlbs[1].va_log.lock().unwrap(), [0x1000, 0x2000]);
    assert_eq!(m.ipis_to(1), 1, "CPU 2 posted to a busy handler: no IPI");
    assert_eq!(m.stats.read().coalesced, 1);
}

#[test]
fn two_cpus_shooting_at_each_other_both_complete() {
    const ROUNDS: u64 = 20_000;
    let m = Machine::new(2, 1);
    let mm = m.clone();
    // No interrupts are taken during the rounds: each CPU completes only because the other
    // serves its own mailbox while it waits.
    run_cpus(&m, LIMIT, move |cpu| {
        let other = 1 - cpu;
        for i in 0..ROUNDS {
            let kind = if i % 3 == 0 {
                FlushKind::Full
            } else {
                FlushKind::va(i << 12)
            };
            let _ = mm.sd().flush(
                cpu,
                CpuMask::single(other),
                kind,
                &mm.ipi(cpu),
                &mm.tlbs[cpu],
            );
        }
    });
    let c = m.stats.read();
    assert_eq!(c.cpus_targeted, 2 * ROUNDS);
    assert_eq!(c.ipis_sent + c.coalesced, c.cpus_targeted);
    for cpu in 0..2 {
        assert!(m.tlbs[cpu].flushes() >= 1 && m.tlbs[cpu].flushes() <= ROUNDS);
    }
    assert!(m.mailboxes.iter().all(Mailbox::is_idle));
}

#[test]
fn all_to_all_storm_every_request_is_covered() {
    const ROUNDS: u64 = 600;
    const N: usize = 4;
    let m = Machine::new(N, u32::MAX - 100); // wraps during the storm
    let requested: Arc<Vec<AtomicU64>> = Arc::new((0..N).map(|_| AtomicU64::new(0)).collect());
    let uncovered = Arc::new(Mutex::new(Vec::new()));
    let (mm, req, unc) = (m.clone(), requested.clone(), uncovered.clone());
    run_cpus(&m, LIMIT, move |cpu| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ cpu as u64;
        for i in 0..ROUNDS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let targets = CpuMask::from_words([x & 0xf, 0, 0, 0]);
            let kind = if x & 0x30 == 0 {
                FlushKind::Full
            } else {
                FlushKind::va((x >> 8) & 0xff000)
            };
            // Flushes each target had *started* before we posted: one more must complete.
            let before: Vec<u64> = (0..N)
                .map(|t| mm.tlbs[t].started.load(Ordering::SeqCst))
                .collect();
            let token = FlushToken::new(targets, kind);
            let s = mm.sd().flush_token(cpu, token, &mm.ipi(cpu), &mm.tlbs[cpu]);
            assert_eq!(s.local, targets.contains(cpu));
            for t in targets.iter() {
                req[t].fetch_add(1, Ordering::SeqCst);
                if mm.tlbs[t].completed.load(Ordering::SeqCst) <= before[t] {
                    unc.lock().unwrap().push((cpu, i, t));
                }
            }
            if i % 16 == 0 {
                mm.poll(cpu);
            }
        }
    });
    assert_eq!(
        *uncovered.lock().unwrap(),
        [],
        "(initiator, round, target) not flushed"
    );
    let c = m.stats.read();
    assert_eq!(c.ipis_sent + c.coalesced, c.cpus_targeted);
    assert!(c.wraps >= 1, "the clock should have wrapped");
    for t in 0..N {
        let (got, asked) = (m.tlbs[t].flushes(), requested[t].load(Ordering::SeqCst));
        assert!(
            got >= 1 && got <= asked,
            "CPU {t}: {got} flushes for {asked} requests"
        );
    }
    assert!(m.mailboxes.iter().all(Mailbox::is_idle));
}

#[test]
fn after_flush_returns_no_target_holds_the_old_translation() {
    const PAGES: u64 = 4;
    const ROUNDS: u64 = 3_000;
    let m = Machine::new(3, 1);
    let ptes: Arc<Vec<AtomicU64>> = Arc::new(
        (0..PAGES)
            .map(|p| AtomicU64::new((100 + p) << 1 | 1))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let stale = Arc::new(Mutex::new(Vec::new()));
    let (mm, pt, st, bad) = (m.clone(), ptes.clone(), stop.clone(), stale.clone());
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu != 0 {
            // Guest CPUs: translate pages, take interrupts.
            let mut i = cpu as u64;
            while !st.load(Ordering::SeqCst) {
                i = i
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let page = (i >> 33) % PAGES;
                let _ = mm.tlbs[cpu].access(page << 12, &pt[page as usize]);
                if !mm.poll(cpu) {
                    // Two host cores for three CPU threads: let the initiator run.
                    std::thread::yield_now();
                }
            }
            return;
        }
        for round in 0..ROUNDS {
            let page = round % PAGES;
            let old = pt[page as usize].load(Ordering::SeqCst) >> 1;
            // Remove the writable mapping, then shoot down everyone who may cache it.
            pt[page as usize].store(0, Ordering::Release);
            let kind = if round % 5 == 0 {
                FlushKind::Full
            } else {
                FlushKind::va(page << 12)
            };
            let _ = mm
                .sd()
                .flush(0, CpuMask::first(3), kind, &mm.ipi(0), &mm.tlbs[0]);
            for t in 1..3 {
                if let Some((frame, true)) = mm.tlbs[t].lookup(page << 12)
                    && frame == old
                {
                    bad.lock().unwrap().push((round, t, frame));
                }
            }
            // Map a new frame for the next use of this page.
            pt[page as usize].store((old + PAGES) << 1 | 1, Ordering::Release);
        }
        st.store(true, Ordering::SeqCst);
    });
    assert_eq!(
        *stale.lock().unwrap(),
        [],
        "(round, cpu, frame) stale writable translations"
    );
    assert!(m.tlbs[1].flushes() > 0 && m.tlbs[2].flushes() > 0);
}

#[test]
fn setup_errors_are_typed() {
    let m = Machine::new(2, 1);
    let one = [Mailbox::new()];
    assert_eq!(
        Shootdown::new(&one, m.times(), &m.online).err(),
        Some(FlushError::LengthMismatch {
            mailboxes: 1,
            times: 2
        })
    );
    assert_eq!(
        m.sd().bring_online(2),
        Err(FlushError::NoSuchCpu { cpu: 2 })
    );
    let many: Vec<Mailbox> = (0..257).map(|_| Mailbox::new()).collect();
    assert_eq!(
        Shootdown::new(&many, m.times(), &m.online).err(),
        Some(FlushError::TooManyCpus { cpus: 257 })
    );
}
