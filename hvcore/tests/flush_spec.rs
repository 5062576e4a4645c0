//! Spec §8.7 cases 77–81 and the clock wrap, at the level of masks, the filter and the shootdown
//! layer (std threads as CPUs). The dirty-mask bookkeeping of domains is modelled here as the
//! spec describes it (§5.1); the hypervisor's domain code does the same with `AtomicCpuMask`.

#[path = "shootdown_harness.rs"]
pub mod harness;

use harness::{Machine, run_cpus};
use hvcore::flush::{AtomicCpuMask, CpuMask, FlushClock, FlushKind, FlushToken, Tlb};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const VA: u64 = 0x40_0000;
const P: u64 = 77; // the frame

/// Cases 77 and 78. pCPU 1 (X) cached a writable mapping of P; the mapping was removed without a
/// guest flush and P's type count dropped to 0 (stamped). If `x_flushed_since`, X then did a full
/// flush (e.g. a CR3 switch). vCPU 0 on pCPU 0 now pins P as an L1: the owner's dirty mask
/// {0, 1}, filtered by P's stamp, is flushed. Returns (IPIs to X, X still maps P writable).
fn pin_after_unmap(x_flushed_since: bool) -> (usize, bool, u64) {
    let m = Machine::new(2, 1);
    let pte = AtomicU64::new(P << 1 | 1);
    assert_eq!(m.tlbs[1].access(VA, &pte), Some((P, true)));
    pte.store(0, Ordering::Release); // unmapped, no guest flush
    let stamp = m.clock.stamp(); // type count of P dropped to 0
    if x_flushed_since {
        let tick = m.times().begin_full_flush();
        m.tlbs[1].flush_all();
        assert!(m.times().end_full_flush(1, tick).is_none());
    }
    let dirty = AtomicCpuMask::for_cpus(2);
    dirty.set(0);
    dirty.set(1);
    let mm = m.clone();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu == 0 {
            let sd = mm.sd();
            let targets = sd.filter(dirty.snapshot(), stamp);
            let token = FlushToken::new(targets, FlushKind::Full);
            let _ = sd.flush_token(0, token, &mm.ipi(0), &mm.tlbs[0]);
            d.store(true, Ordering::SeqCst);
        } else {
            while !d.load(Ordering::SeqCst) {
                mm.poll(1);
            }
        }
    });
    let still = m.tlbs[1].lookup(VA) == Some((P, true));
    (m.ipis_to(1), still, m.stats.read().filtered_out)
}

#[test]
fn spec77_stale_writable_mapping_is_shot_down_before_pin() {
    assert_eq!(pin_after_unmap(false), (1, false, 0));
}

#[test]
fn spec78_cpu_that_flushed_after_the_stamp_gets_no_ipi() {
    assert_eq!(
        pin_after_unmap(true),
        (0, false, 1),
        "(IPIs, stale, filtered_out)"
    );
}

#[test]
fn spec78_clock_disabled_filter_removes_nothing() {
    let m = Machine::build(2, 1, false);
    let stamp = m.clock.stamp();
    let tick = m.times().begin_full_flush();
    assert!(m.times().end_full_flush(1, tick).is_none());
    assert_eq!(m.clock.now(), 1, "a disabled clock does not tick");
    assert_eq!(m.sd().filter(CpuMask::first(2), stamp), CpuMask::first(2));
    assert!(m.times().need_flush(1, stamp));
}

#[test]
fn spec79_clock_wrap_flushes_everyone_then_restarts_at_1() {
    let m = Machine::new(4, u32::MAX);
    let times = m.times();
    let old_stamp = m.clock.stamp(); // a page last used just before the wrap
    let tick = times.begin_full_flush();
    assert!(tick.wrapped() && tick.stamp() == 0);
    m.tlbs[0].flush_all();
    let wrap = times
        .end_full_flush(0, tick)
        .expect("the tick that produced 0 must report it");
    // While the clock is 0 every NEED_FLUSH test says "flush", and nothing ticks.
    assert_eq!(m.clock.now(), 0);
    for stamp in [0, 1, old_stamp, 12345] {
        assert_eq!(times.filter(CpuMask::first(4), stamp), CpuMask::first(4));
    }
    let t = times.begin_full_flush();
    assert!(!t.wrapped() && t.stamp() == 0, "no second leader");
    assert!(times.end_full_flush(0, t).is_none());

    let mm = m.clone();
    let wrap = std::sync::Mutex::new(Some(wrap));
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu == 0 {
            let w = wrap.lock().unwrap().take().unwrap();
            let s = mm.sd().complete_wrap(0, w, &mm.ipi(0), &mm.tlbs[0]);
            assert!(s.wrapped && s.remote_targets == 3 && !s.local);
            d.store(true, Ordering::SeqCst);
        } else {
            while !d.load(Ordering::SeqCst) {
                mm.poll(cpu);
            }
        }
    });
    assert_eq!(m.clock.now(), 1);
    for cpu in 1..4 {
        assert_eq!(
            m.tlbs[cpu].full.load(Ordering::SeqCst),
            1,
            "CPU {cpu} flushed once"
        );
        assert_eq!(times.last_flush(cpu), 0, "flushed during the wrap");
    }
    assert_eq!(m.stats.read().wraps, 1);
    // After the restart: a pre-wrap stamp needs nobody; CPUs that flushed during the wrap still
    // need a flush for pages used after it, until they tick.
    assert_eq!(times.filter(CpuMask::first(4), old_stamp), CpuMask::new());
    let post = m.clock.stamp();
    assert_eq!(post, 1);
    assert_eq!(times.filter(CpuMask::first(4), post), CpuMask::first(4));
    let t = times.begin_full_flush();
    assert_eq!(t.stamp(), 2);
    assert!(times.end_full_flush(2, t).is_none());
    assert_eq!(
        times.filter(CpuMask::first(4), post),
        [0, 1, 3].into_iter().collect()
    );
}

#[test]
fn spec79_wrap_inside_flush_is_completed_by_flush() {
    let m = Machine::new(3, u32::MAX);
    let mm = m.clone();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    run_cpus(&m, LIMIT, move |cpu| {
        if cpu == 0 {
            let s = mm.sd().flush(
                0,
                CpuMask::single(0),
                FlushKind::Full,
                &mm.ipi(0),
                &mm.tlbs[0],
            );
            assert!(s.local && s.wrapped && s.remote_targets == 2);
            d.store(true, Ordering::SeqCst);
        } else {
            while !d.load(Ordering::SeqCst) {
                mm.poll(cpu);
            }
        }
    });
    assert_eq!(m.clock.now(), 1);
    assert!((0..3).all(|c| m.tlbs[c].full.load(Ordering::SeqCst) == 1));
    assert!(FlushClock::need_flush_at(1, 0, 1));
}

/// A vCPU's `dirty_cpu`: the pCPU holding its state, if any (spec §5.1).
fn multi_targets(dirty_cpu: &[Option<usize>], selected: &[usize]) -> CpuMask {
    selected.iter().filter_map(|&v| dirty_cpu[v]).collect()
}

#[test]
fn spec80_multi_flush_of_an_unloaded_vcpu_sends_no_ipi() {
    let m = Machine::new(2, 1);
    let dirty_cpu = [Some(0), None]; // vCPU 1 is not loaded anywhere
    let token = FlushToken::new(multi_targets(&dirty_cpu, &[1]), FlushKind::va(VA));
    assert!(token.is_empty());
    let s = m.sd().flush_token(0, token, &m.ipi(0), &m.tlbs[0]);
    assert_eq!((s.remote_targets, s.ipis_sent, s.local), (0, 0, false));
    assert_eq!(m.stats.read().shootdowns, 0);
    assert!(m.ipis.lock().unwrap().is_empty() && m.tlbs[0].flushes() == 0);
}

#[test]
fn spec81_lazy_switch_to_idle_keeps_the_cpu_in_the_dirty_mask() {
    let m = Machine::new(2, 1);
    let (dom_d, dom_e) = (AtomicCpuMask::for_cpus(2), AtomicCpuMask::for_cpus(2));
    // pCPU 1 (X) runs a vCPU of D, then is descheduled to idle: lazily stays on D's tables.
    dom_d.set(1);
    let all_d = || FlushToken::new(dom_d.snapshot(), FlushKind::Full);
    let flush = |token| {
        let mm = m.clone();
        let token = std::sync::Mutex::new(Some(token));
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        run_cpus(&m, LIMIT, move |cpu| {
            if cpu == 0 {
                let t = token.lock().unwrap().take().unwrap();
                let _ = mm.sd().flush_token(0, t, &mm.ipi(0), &mm.tlbs[0]);
                d.store(true, Ordering::SeqCst);
            } else {
                while !d.load(Ordering::SeqCst) {
                    mm.poll(cpu);
                }
            }
        });
    };
    flush(all_d());
    assert_eq!(m.ipis_to(1), 1, "ALL flush for D must still IPI X");
    // X switches to a vCPU of E: it joins E's mask and leaves D's.
    dom_e.set(1);
    dom_d.clear(1);
    flush(all_d());
    assert_eq!(m.ipis_to(1), 1, "X left D: no further IPI");
    assert_eq!(dom_e.snapshot(), CpuMask::single(1));
}
