//! Property test: random sequences of pin / unpin / mod_entry / data writes / hardware A/D
//! updates against a sequential reference model, with the audit and the invariants checked after
//! every step, and a full teardown at the end that must leave no reference behind.
//!
//! The model is deliberately simpler than the implementation: it shadows memory (what every
//! entry must read back as), the set of pins, and predicts the outcome of every operation whose
//! outcome follows from the spec rules directly (flags, hypervisor slots, ownership, non-RAM,
//! pins, fast path, self-maps, the type of the target before the call). Where the outcome depends
//! on validating a subtree it accepts either, but then checks the consequences: a failed
//! operation changes no count, flag or entry; a successful one stores exactly the value asked
//! for; the audit recomputes every count from the tables that exist.
//!
//! Generated present entries are fixed points of Xen's adjustment at every level (US, A and
//! bit 52 set), so validation never rewrites them and the shadow stays exact. Deterministic:
//! xorshift64*, fixed seeds (override with `HVCORE_PROP_SEED` / `HVCORE_PROP_STEPS`).

mod mm_common;
mod property_model;
use mm_common::*;
use property_model::*;
use std::collections::BTreeMap;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A random entry for a table at `level` (or for raw data when `None`). Targets are biased
/// towards frames that can succeed: validated tables one level down, fresh frames, same-level
/// tables (linear), the table itself, and now and then anything (foreign, free, non-RAM).
fn random_entry(rng: &mut Rng, w: &World, table: u64, level: Option<Level>) -> u64 {
    let typed = |want: Option<Level>| -> Vec<u64> {
        (0..OURS)
            .filter(|&f| {
                let s = w.s(f);
                match want {
                    Some(l) => live_table(s, l),
                    None => s.type_count() == 0 || s.ty() == PageType::Writable,
                }
            })
            .collect()
    };
    let candidates = match level {
        _ if rng.chance(6) => vec![rng.below(N + 2)],
        Some(Level::L1) | None => typed(None),
        Some(l) => match rng.below(10) {
            0..=4 => typed(l.lower()),
            5..=6 => (0..OURS).filter(|&f| w.s(f).type_count() == 0).collect(),
            7 => typed(Some(l)),
            _ => vec![table],
        },
    };
    let target = if candidates.is_empty() {
        rng.below(N)
    } else {
        rng.pick(&candidates)
    };
    if rng.chance(10) {
        // Not present: anything at all.
        return rng.next() & !PTE_P;
    }
    let mut flags = BASE;
    let rw = if level.is_some_and(|l| l != Level::L1) {
        15
    } else {
        35
    };
    for (bit, percent) in [
        (PTE_RW, rw),
        (PTE_D, 20),
        (PTE_NX, 20),
        (1 << 9, 10),
        (1 << 57, 10),
    ] {
        if rng.chance(percent) {
            flags |= bit;
        }
    }
    if rng.chance(4) {
        flags |= rng.pick(&[PTE_G, PTE_PCD, PTE_PWT, PTE_PSE]);
    }
    pte(target, flags)
}

fn random_op(rng: &mut Rng, w: &World, model: &Model) -> Op {
    let level = rng.pick(&Level::ALL);
    let frame = rng.below(N);
    match rng.below(100) {
        0..=19 => Op::Pin(frame, level),
        20..=25 => {
            let pinned: Vec<u64> = model.pins.keys().copied().collect();
            Op::Unpin(if !pinned.is_empty() && rng.chance(85) {
                rng.pick(&pinned)
            } else {
                frame
            })
        }
        26..=79 => {
            // Mostly tables that are validated now, at their level.
            let live: Vec<(u64, Level)> = (0..N)
                .filter_map(|f| {
                    let s = w.s(f);
                    s.ty()
                        .level()
                        .filter(|_| s.type_count() > 0 && s.validated())
                        .map(|l| (f, l))
                })
                .collect();
            let (table, level) = if !live.is_empty() && rng.chance(92) {
                rng.pick(&live)
            } else {
                (frame, level)
            };
            let index = rng.pick(&SLOTS);
            // Sometimes re-use the current value with only fast-path bits toggled.
            let old = model.get(table, index);
            let val = if rng.chance(20) && old & PTE_P != 0 {
                old ^ rng.pick(&[PTE_D, PTE_NX, 1 << 10, 1 << 60, PTE_RW, PTE_G, PTE_PSE])
            } else {
                random_entry(rng, w, table, Some(level))
            };
            Op::Mod {
                table,
                level,
                index,
                val,
                preserve: rng.chance(25),
            }
        }
        80..=91 => {
            // Data written for a later pin: entries fit for a random level, or cleared.
            let as_level = rng.pick(&[None, Some(Level::L1), Some(Level::L2), Some(Level::L3)]);
            let val = if rng.chance(40) {
                0
            } else {
                random_entry(rng, w, frame, as_level)
            };
            Op::DataWrite(frame, rng.pick(&SLOTS), val)
        }
        _ => Op::HwAd(frame, rng.pick(&SLOTS)),
    }
}

fn run(seed: u64, steps: usize) -> (usize, usize) {
    let kit = Kit::new(N as usize);
    kit.assign_range(0..OURS, DOM);
    kit.assign_range(OURS..THEIRS, 2);
    let w = World {
        kit,
        dom: TestDomain::new(DOM),
    };
    let mut model = Model {
        shadow: vec![0; N as usize * 512],
        pins: BTreeMap::new(),
    };
    let mut rng = Rng(seed | 1);
    let (mut oks, mut deep) = (0, 0);
    for step in 0..steps {
        let op = random_op(&mut rng, &w, &model);
        let ctx = format!("seed {seed:#x} step {step}: {op:?}");
        let before = snap(&w);
        let l4_before: Vec<bool> = (0..N).map(|f| live_table(w.s(f), Level::L4)).collect();
        let prediction = predict(&w, &model, op);
        let result = apply(&w, op);
        if let Err(e) = result {
            assert!(!internal(e), "{ctx}: internal error {e:?}");
        }
        match (prediction, &result) {
            (Some(Ok(fast)), Ok(Some(tok))) => assert_eq!(tok.fast_path, fast, "{ctx}"),
            (Some(Ok(_)), Ok(None)) | (None, _) => {}
            (Some(Err(e)), Err(got)) => assert_eq!(*got, e, "{ctx}"),
            (p, r) => panic!("{ctx}: predicted {p:?}, got {r:?}"),
        }
        match (op, &result) {
            (_, Err(_)) => {
                assert_eq!(snap(&w), before, "{ctx}: a failed operation changed counts");
            }
            (Op::Pin(f, l), Ok(_)) => {
                model.pins.insert(f, l);
            }
            (Op::Unpin(f), Ok(_)) => {
                model.pins.remove(&f);
            }
            (Op::Mod { table, index, .. }, Ok(Some(tok))) => {
                assert_eq!(tok.old, model.get(table, index), "{ctx}: replaced value");
                model.put(table, index, tok.new);
            }
            (Op::DataWrite(f, i, v), Ok(_)) => model.put(f, i, v),
            (Op::HwAd(f, i), Ok(_)) => {
                if model.get(f, i) & PTE_P != 0 {
                    model.put(f, i, model.get(f, i) | PTE_A | PTE_D);
                }
            }
            (_, Ok(_)) => {}
        }
        if std::env::var("HVCORE_PROP_STATS").is_ok() {
            let kind = match op {
                Op::Pin(_, l) => format!("pin {l:?}"),
                Op::Unpin(_) => "unpin".into(),
                Op::Mod { level, .. } => format!("mod {level:?}"),
                Op::DataWrite(..) => "data".into(),
                Op::HwAd(..) => "hwad".into(),
            };
            let outcome = match &result {
                Ok(Some(t)) if t.fast_path => "fast".to_string(),
                Ok(_) => "ok".to_string(),
                Err(e) => format!("{e:?}"),
            };
            *STATS.lock().unwrap().entry((kind, outcome)).or_insert(0) += 1;
            let live = (0..N)
                .filter(|&f| w.s(f).type_count() > 0 && w.s(f).ty().level().is_some())
                .count();
            let lin = (0..N)
                .filter(|&f| w.t().linear_count(Mfn(f)).unwrap() > 0)
                .count();
            *STATS
                .lock()
                .unwrap()
                .entry((format!("live tables {live}"), String::new()))
                .or_insert(0) += 1;
            *STATS
                .lock()
                .unwrap()
                .entry((format!("linear containers {lin}"), String::new()))
                .or_insert(0) += 1;
        }
        if result.is_ok() {
            oks += 1;
            if matches!(
                op,
                Op::Pin(..)
                    | Op::Mod {
                        level: Level::L2 | Level::L3 | Level::L4,
                        ..
                    }
            ) {
                deep += 1;
            }
        }
        // Hypervisor slots of every newly validated L4 hold the domain's values.
        for f in 0..N {
            if !l4_before[f as usize] && live_table(w.s(f), Level::L4) {
                for slot in XEN_L4_SLOTS {
                    model.put(f, slot, test_xen_l4_slot(Mfn(f), slot));
                }
            }
        }
        // Touched entries read back as the model says; all of memory now and then.
        if let Op::Mod { table, index, .. } | Op::DataWrite(table, index, _) = op
            && table < N
        {
            assert_eq!(
                w.read(table, index),
                model.get(table, index),
                "{ctx}: entry"
            );
        }
        if step % 64 == 0 {
            check_memory(&w, &model, &ctx);
        }
        // Pins agree with the model; the audit finds nothing.
        for f in 0..N {
            let s = w.s(f);
            let want = model.pins.get(&f).copied();
            assert_eq!(s.pinned(), want.is_some(), "{ctx}: pinned flag of {f}");
            if let Some(level) = want {
                assert!(
                    live_table(s, level),
                    "{ctx}: pinned {f} is a validated {level:?}"
                );
            }
        }
        let report = w.kit.audit_with(&[], &[]);
        assert!(
            report.is_clean(),
            "{ctx}: audit: {:#?}",
            report.findings().collect::<Vec<_>>()
        );
    }
    check_memory(&w, &model, "end");
    // Teardown: unpin everything; nothing may stay referenced.
    let pins: Vec<u64> = model.pins.keys().copied().collect();
    for f in pins {
        w.unpin(f).unwrap();
    }
    for f in 0..N {
        let s = w.s(f);
        let alloc = u32::from(f < THEIRS);
        assert_eq!(
            (s.general(), s.type_count()),
            (alloc, 0),
            "seed {seed:#x}: frame {f} leaked"
        );
        assert_eq!(w.t().linear_count(Mfn(f)), Ok(0));
    }
    w.clean();
    (oks, deep)
}

static STATS: std::sync::Mutex<BTreeMap<(String, String), usize>> =
    std::sync::Mutex::new(BTreeMap::new());

#[test]
fn random_operation_sequences_keep_every_invariant() {
    let steps: usize = std::env::var("HVCORE_PROP_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    let seeds: Vec<u64> = match std::env::var("HVCORE_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => vec![0x9E37_79B9_7F4A_7C15, 0xD1B5_4A32_D192_ED03, 42, 0xC0FFEE],
    };
    for seed in seeds {
        let (oks, deep) = run(seed, steps);
        // The generator must actually build structures, or the test proves little.
        assert!(
            oks > steps / 5,
            "seed {seed:#x}: only {oks} operations succeeded"
        );
        assert!(
            deep > steps / 50,
            "seed {seed:#x}: only {deep} pins / upper-level updates"
        );
        println!(
            "seed {seed:#x}: {oks} of {steps} operations succeeded, {deep} pins/upper updates"
        );
    }
    for ((k, o), n) in STATS.lock().unwrap().iter() {
        println!("{k:>24} {o:>16} {n}");
    }
}
