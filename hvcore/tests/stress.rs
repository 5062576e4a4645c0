//! Multi-threaded host stress tests (std threads) of the concurrent paths: spec §8.8 cases
//! 82–84 at this layer, plus concurrent validation of a shared child. Each ends with a clean
//! audit and the exact counts that quiescence implies. These exercise real interleavings on the
//! host; the exhaustive exploration of small cases belongs to the loom models.

mod mm_common;
use mm_common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::thread;

const ITERS: usize = 3000;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn spec_08_84_concurrent_updates_of_one_l1_slot_leak_nothing() {
    // Frame 0: pinned L1; frames 1..8: data. Four threads rewrite slots 0 and 1 with different
    // targets, RO / RW / not-present, some with PRESERVE_AD; a fifth plays the hardware and
    // sets A/D bits under them, so entry CASes fail and retry.
    let w = World::new(8);
    w.pin(0, Level::L1).unwrap();
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let hw = s.spawn(|| {
            while !stop.load(Relaxed) {
                for slot in 0..2 {
                    if w.read(0, slot) & PTE_P != 0 {
                        w.kit.mem.hw_set_bits(Mfn(0), slot, PTE_A | PTE_D);
                    }
                }
                thread::yield_now();
            }
        });
        let updaters: Vec<_> = (0..4u64)
            .map(|id| {
                let w = &w;
                s.spawn(move || {
                    let mut rng = Rng(0x1234_5678 + id * 0x9E37);
                    let t = w.t();
                    for _ in 0..ITERS {
                        let target = 1 + rng.below(7);
                        let val = match rng.below(4) {
                            0 => 0,
                            1 => pte(target, PTE_P | PTE_US),
                            _ => pte(target, PTE_P | PTE_RW | PTE_US),
                        };
                        let slot = (rng.below(4) == 0) as usize;
                        let preserve = rng.below(3) == 0;
                        let r =
                            t.mod_entry(&w.kit.mem, &w.dom, Mfn(0), Level::L1, slot, val, preserve);
                        assert!(r.is_ok(), "{r:?}");
                    }
                })
            })
            .collect();
        for u in updaters {
            u.join().unwrap();
        }
        stop.store(true, Relaxed);
        hw.join().unwrap();
    });
    w.clean();
    let retries = w.kit.mem.cas_failures();
    println!("entry CAS retries: {retries}");
    let live: Vec<u64> = [w.read(0, 0), w.read(0, 1)]
        .into_iter()
        .filter(|e| e & PTE_P != 0)
        .collect();
    for f in 1..8 {
        let g = 1 + live.iter().filter(|&&e| frame_of(e) == f).count() as u32;
        let c = live
            .iter()
            .filter(|&&e| frame_of(e) == f && e & PTE_RW != 0)
            .count() as u32;
        assert_eq!((w.g(f), w.c(f)), (g, c), "frame {f}");
    }
}

#[test]
fn spec_08_82_xsa_401_pin_versus_writable_map_of_one_frame() {
    // P = frame 1. Thread A loops {pin P as L1; check; unpin}. Thread B loops {map P RW through
    // L1 Q = frame 0; write a malicious entry into P; maybe clear it again; unmap}. The malicious
    // entry maps P itself RW: it must never be present while P is a validated L1.
    const P: u64 = 1;
    const SLOT: usize = 5;
    let malicious = pte(P, PTE_P | PTE_RW | PTE_US);
    let w = World::new(4);
    w.pin(0, Level::L1).unwrap();
    let (pins, maps) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let progress = || pins.load(Relaxed) > 0 && maps.load(Relaxed) > 0;
    thread::scope(|s| {
        s.spawn(|| {
            // At least ITERS rounds, and on until both sides made progress (bounded).
            for i in 0..100 * ITERS {
                if i >= ITERS && progress() {
                    break;
                }
                if w.pin(P, Level::L1).is_ok() {
                    pins.fetch_add(1, Relaxed);
                    assert_ne!(
                        w.read(P, SLOT),
                        malicious,
                        "validated an L1 with a bad entry"
                    );
                    assert!(w.s(P).validated() && w.ty(P) == PageType::L1);
                    thread::yield_now();
                    assert_ne!(w.read(P, SLOT), malicious, "written while a validated L1");
                    w.unpin(P).unwrap();
                }
                // Leave the other side a window in which P is untyped.
                thread::yield_now();
            }
        });
        s.spawn(|| {
            let mut rng = Rng(77);
            for i in 0..100 * ITERS {
                if i >= ITERS && progress() {
                    break;
                }
                match w.set(0, Level::L1, 0, pte(P, PTE_P | PTE_RW | PTE_US)) {
                    Ok(()) => {
                        maps.fetch_add(1, Relaxed);
                        assert_eq!(w.ty(P), PageType::Writable);
                        w.kit.write(P, SLOT, malicious);
                        if rng.below(2) == 0 {
                            w.kit.write(P, SLOT, 0);
                        }
                        w.set(0, Level::L1, 0, 0).unwrap();
                    }
                    Err(e) => assert_eq!(e, MmError::WritableBusy),
                }
                thread::yield_now();
            }
        });
    });
    let (pins, maps) = (pins.load(Relaxed), maps.load(Relaxed));
    assert!(
        pins > 0 && maps > 0,
        "both sides must make progress: {pins} pins, {maps} maps"
    );
    assert_eq!((w.g(P), w.c(P)), (1, 0));
    w.clean();
}

#[test]
fn spec_08_83_xsa_242_updates_racing_the_last_unpin_leave_no_reference() {
    // P = frame 0, an L1 whose only long-lived reference is a pin, pinned and unpinned in a
    // loop; two other threads keep updating its entries. Every time the last reference goes,
    // P must be fully de-validated: no entry installed behind de-validation may keep a
    // reference. At the end P is unpinned, so every data frame holds only its allocation.
    let w = World::new(6);
    let done = AtomicBool::new(false);
    let updates = AtomicUsize::new(0);
    thread::scope(|s| {
        let pinner = s.spawn(|| {
            for _ in 0..ITERS {
                w.pin(0, Level::L1).unwrap();
                thread::yield_now();
                w.unpin(0).unwrap();
            }
        });
        for id in 0..2u64 {
            let (w, done, updates) = (&w, &done, &updates);
            s.spawn(move || {
                let mut rng = Rng(99 + id);
                while !done.load(Relaxed) {
                    let slot = rng.below(3) as usize;
                    let val = match rng.below(3) {
                        0 => 0,
                        1 => pte(1 + rng.below(5), PTE_P | PTE_US),
                        _ => pte(1 + rng.below(5), PTE_P | PTE_RW | PTE_US),
                    };
                    // Two cores on the test machine: give the pinner its turns.
                    thread::yield_now();
                    match w.set(0, Level::L1, slot, val) {
                        Ok(()) => {
                            updates.fetch_add(1, Relaxed);
                        }
                        Err(e) => assert!(
                            e == MmError::NotValidated,
                            "only a table that is not validated refuses: {e:?}"
                        ),
                    }
                }
            });
        }
        pinner.join().unwrap();
        done.store(true, Relaxed);
    });
    assert!(
        updates.load(Relaxed) > 0,
        "updates must have landed while pinned"
    );
    let s0 = w.s(0);
    assert_eq!(
        (s0.type_count(), s0.validated(), s0.general()),
        (0, false, 1)
    );
    for f in 1..6 {
        assert_eq!(
            (w.g(f), w.c(f)),
            (1, 0),
            "frame {f}: reference left behind de-validation"
        );
    }
    w.clean();
}

#[test]
fn concurrent_validation_of_a_shared_child_waits_and_never_deadlocks() {
    // L2s 0 and 1 each point at L1 X = 2 (whose entries map data frames 4 and 5); two threads
    // pin/unpin their L2 (validating / de-validating X concurrently), a third maps X RW in L1
    // Q = 3 now and then (retyping X when both L2s are unpinned).
    let w = World::new(6);
    w.kit.write(2, 0, pte(4, PTE_P | PTE_RW | PTE_US));
    w.kit.write(2, 1, pte(5, PTE_P | PTE_US));
    w.kit.write(0, 0, pte(2, PTE_P | PTE_US));
    w.kit.write(1, 7, pte(2, PTE_P | PTE_US));
    w.pin(3, Level::L1).unwrap();
    let (ok_pins, ok_maps) = (AtomicUsize::new(0), AtomicUsize::new(0));
    thread::scope(|s| {
        for l2 in 0..2u64 {
            let (w, ok_pins) = (&w, &ok_pins);
            s.spawn(move || {
                for _ in 0..ITERS {
                    match w.pin(l2, Level::L2) {
                        Ok(()) => {
                            ok_pins.fetch_add(1, Relaxed);
                            assert!(w.s(2).validated() && w.ty(2) == PageType::L1);
                            w.unpin(l2).unwrap();
                        }
                        // X is writable-mapped right now.
                        Err(e) => assert_eq!(e, MmError::TypeMismatch),
                    }
                }
            });
        }
        s.spawn(|| {
            for _ in 0..ITERS / 4 {
                if w.set(3, Level::L1, 0, pte(2, PTE_P | PTE_RW | PTE_US))
                    .is_ok()
                {
                    ok_maps.fetch_add(1, Relaxed);
                    w.set(3, Level::L1, 0, 0).unwrap();
                }
            }
        });
    });
    assert!(ok_pins.load(Relaxed) > 0);
    for f in 0..6 {
        let pinned = u32::from(f == 3);
        assert_eq!((w.g(f), w.c(f)), (1 + pinned, pinned), "frame {f}");
    }
    w.clean();
}
