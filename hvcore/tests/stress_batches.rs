//! Multi-threaded stress of the hypercall layer: more than 10^6 `mmu_update` requests in
//! random batches of 1–16, issued by std threads, each with its own fake environment
//! (`hypercall_common::FakeEnv`) over one shared frame table and memory. Batches mix valid
//! L1–L4 updates (RO / RW, fast path, PRESERVE_AD, self-maps, raw writes into data frames,
//! MACHPHYS) with hostile requests: bad flags, superpages, other domains' frames, page-table
//! frames mapped RW, the hypervisor's L4 slots, unknown commands, bad frames, and hostile
//! `foreigndom` values.
//!
//! Two scenarios: threads of two domains on disjoint tables, and threads sharing one table
//! tree (with a thread playing the CPU's A/D updates, a thread of another domain attacking it,
//! and a thread that pins, maps, unmaps and unpins a table the others write into). Every
//! frame keeps its role for the whole run (`batch_gen`), so each batch's verdict, `*pdone` and
//! flush count are checked exactly; only requests on the re-typed table may end either way.
//! At quiescence the audit must be clean, every count must equal the one recomputed here from
//! the tables that exist, and after unpinning every table no reference may remain.
//!
//! It fails on any verdict, done count or flush that differs from the prediction, on a lost or
//! leaked reference (counts, audit, teardown), and on a panic of the core in any thread. Run
//! time is bounded by request counts, never measured.

mod batch_gen;
mod hypercall_common;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;

use batch_gen::run::{ENDINGS, Work, env, forget, worker};
use batch_gen::{LEAF_SLOTS, Upper, View};
use hypercall_common::*;

/// Frames of each scenario's kit.
const N: usize = 40;
/// Requests each worker processes in the disjoint scenario (4 workers).
const DISJOINT_REQS: u64 = 300_000;
/// Requests each worker processes in the shared scenario (4 workers + 1 attacker).
const SHARED_REQS: u64 = 200_000;
/// Pin / map / unmap / unpin rounds of the shared scenario's type-changing thread.
const CHURN_ROUNDS: u64 = 30_000;
const SELF: u32 = DOMID_SELF as u32;

/// Write `l4[0] → l3`, `l3[0] → l2`, `l2[0, 1] → l1s` as data, then pin all five (which
/// validates the tree). Returns the tables with their levels.
fn build_tree(
    env: &mut FakeEnv<'_>,
    l4: u64,
    l3: u64,
    l2: u64,
    l1s: [u64; 2],
) -> Vec<(u64, Level)> {
    let up = PTE_P | PTE_RW | PTE_US;
    let kit = env.kit;
    kit.write(l4, 0, pte(l3, up));
    kit.write(l3, 0, pte(l2, up));
    kit.write(l2, 0, pte(l1s[0], up));
    kit.write(l2, 1, pte(l1s[1], up));
    let tables = vec![
        (l4, Level::L4),
        (l3, Level::L3),
        (l2, Level::L2),
        (l1s[0], Level::L1),
        (l1s[1], Level::L1),
    ];
    pin_all(env, &tables);
    tables
}

fn pin_all(env: &mut FakeEnv<'_>, tables: &[(u64, Level)]) {
    let cmd = |l| match l {
        Level::L1 => MmuextCmd::PinL1Table,
        Level::L2 => MmuextCmd::PinL2Table,
        Level::L3 => MmuextCmd::PinL3Table,
        Level::L4 => MmuextCmd::PinL4Table,
    };
    let ops: Vec<_> = tables
        .iter()
        .map(|&(f, l)| MmuextOp::new(cmd(l), f, 0))
        .collect();
    ok(env.ext(&ops, SELF));
}

/// Every frame's counts equal those recomputed from the entries of `tables` (all pinned and
/// validated, the only validated tables), no linear entries exist, the audit is clean; then
/// unpinning every table leaves each frame with its allocation reference alone.
fn quiescent(kit: &Kit, tables: &[(u64, Level)]) {
    kit.assert_clean(&[]);
    let mut want: Vec<(u32, u32)> = (0..N as u64)
        .map(|f| (u32::from(kit.state(f).allocated()), 0))
        .collect();
    for &(t, level) in tables {
        want[t as usize].0 += 1;
        want[t as usize].1 += 1;
        for i in 0..512 {
            let e = kit.read(t, i);
            let x = frame_of(e);
            let skip = level == Level::L4 && (256..=271).contains(&i);
            if skip || e & PTE_P == 0 || x >= N as u64 || (level != Level::L1 && x == t) {
                continue;
            }
            want[x as usize].0 += 1;
            if level != Level::L1 || e & PTE_RW != 0 {
                want[x as usize].1 += 1;
            }
        }
    }
    for (f, &(g, c)) in want.iter().enumerate() {
        let s = kit.state(f as u64);
        assert_eq!((s.general(), s.type_count()), (g, c), "frame {f}: (G, C)");
        assert_eq!(kit.table().linear_count(Mfn(f as u64)), Ok(0), "frame {f}");
        let table = tables.iter().find(|&&(t, _)| t == f as u64);
        match table {
            Some(&(_, level)) => {
                assert!(s.pinned() && s.validated() && s.ty() == level.page_type())
            }
            None if c > 0 => assert_eq!(s.ty(), PageType::Writable, "frame {f}"),
            None => {}
        }
    }
    let mut by_owner: Vec<(DomId, Vec<(u64, Level)>)> = Vec::new();
    for &(t, l) in tables {
        let owner = kit.state(t).owner();
        match by_owner.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, ts)) => ts.push((t, l)),
            None => by_owner.push((owner, vec![(t, l)])),
        }
    }
    for (owner, ts) in by_owner {
        let mut env = env(kit, owner, 0);
        let ops: Vec<_> = ts
            .iter()
            .map(|&(t, _)| MmuextOp::new(MmuextCmd::UnpinTable, t, 0))
            .collect();
        ok(env.ext(&ops, SELF));
    }
    for f in 0..N as u64 {
        let s = kit.state(f);
        assert_eq!(
            (s.general(), s.type_count(), s.pinned()),
            (u32::from(s.allocated()), 0, false),
            "frame {f} after teardown"
        );
    }
    kit.assert_clean(&[]);
}

#[test]
fn disjoint_tables_of_two_domains() {
    // Thread t owns frames 8t..8t+8 in domain 1 (t even) or 2 (t odd): an L4, L3, L2, two
    // L1s and three data frames. Frames 32..34 are domain 0's; 34..40 are free.
    let kit = Kit::new(N);
    let dom = |t: u64| if t.is_multiple_of(2) { D1 } else { D2 };
    for t in 0..4 {
        kit.assign_range(8 * t..8 * t + 8, dom(t));
    }
    kit.assign_range(32..34, D0);
    let mut tables = Vec::new();
    for t in 0..4 {
        let b = 8 * t;
        tables.extend(build_tree(
            &mut env(&kit, dom(t), 0),
            b,
            b + 1,
            b + 2,
            [b + 3, b + 4],
        ));
    }
    let of = |pred: &dyn Fn(u64, u64) -> bool| -> Vec<u64> {
        (0..4)
            .flat_map(|t| (0..8).map(move |i| (t, i)))
            .filter(|&(t, i)| pred(t, i))
            .map(|(t, i)| 8 * t + i)
            .collect()
    };
    let views: Vec<View> = (0..4u64)
        .map(|t| View {
            dom: dom(t),
            other: dom(t + 1),
            l1s: vec![8 * t + 3, 8 * t + 4],
            upper: Some(Upper {
                l4: 8 * t,
                l3: 8 * t + 1,
                l2: 8 * t + 2,
                children: of(&|u, i| dom(u) == dom(t) && (3..5).contains(&i)),
            }),
            data: of(&|u, i| dom(u) == dom(t) && i >= 5),
            typed: of(&|u, i| dom(u) == dom(t) && i < 5),
            foreign: of(&|u, _| dom(u) != dom(t))
                .into_iter()
                .chain(32..34)
                .collect(),
            free: 36,
            dynamic: None,
        })
        .collect();
    let work = thread::scope(|s| {
        let handles: Vec<_> = views
            .iter()
            .enumerate()
            .map(|(t, v)| {
                let kit = &kit;
                s.spawn(move || worker(kit, v, t, 0x9E37_79B9 * (t as u64 + 1), DISJOINT_REQS))
            })
            .collect();
        let works = handles.into_iter().map(|h| h.join().unwrap());
        works.fold(Work::default(), Work::add)
    });
    work.report("disjoint tables", ENDINGS);
    assert!(work.requests >= 4 * DISJOINT_REQS);
    quiescent(&kit, &tables);
}

#[test]
fn one_shared_table_tree() {
    // Domain 1: L4 0 → L3 1 → L2 2 → L1s 3, 4; frame 5 is the table whose type changes
    // (pinned, mapped at L2 slot 9, unmapped, unpinned in a loop); data 6..16. Domain 2: L1s
    // 16, 17 and data 18, 19. Domain 0: 20, 21. 22..40 free.
    let kit = Kit::new(N);
    kit.assign_range(0..16, D1);
    kit.assign_range(16..20, D2);
    kit.assign_range(20..22, D0);
    let (x, s2) = (5, 2);
    let mut tables = build_tree(&mut env(&kit, D1, 0), 0, 1, s2, [3, 4]);
    let d2_tables = vec![(16, Level::L1), (17, Level::L1)];
    pin_all(&mut env(&kit, D2, 2), &d2_tables);
    tables.extend(&d2_tables);
    let worker_view = View {
        dom: D1,
        other: D2,
        l1s: vec![3, 4],
        upper: Some(Upper {
            l4: 0,
            l3: 1,
            l2: s2,
            children: vec![3, 4],
        }),
        data: (6..16).collect(),
        typed: (0..5).collect(),
        foreign: (16..22).collect(),
        free: 30,
        dynamic: Some(x),
    };
    let attacker = View {
        dom: D2,
        other: D1,
        l1s: vec![16, 17],
        upper: None,
        data: vec![18, 19],
        typed: vec![16, 17],
        foreign: (0..16).chain(20..22).collect(),
        free: 31,
        dynamic: None,
    };
    let stop = AtomicBool::new(false);
    let work = thread::scope(|s| {
        let kit = &kit;
        let hw = s.spawn(|| {
            // The CPU's walker setting A/D under the updaters, so that their entry CASes fail.
            while !stop.load(Relaxed) {
                for (t, i) in [3, 4]
                    .into_iter()
                    .flat_map(|t| (0..LEAF_SLOTS as usize).map(move |i| (t, i)))
                {
                    if kit.read(t, i) & PTE_P != 0 {
                        kit.mem.hw_set_bits(Mfn(t), i, PTE_A | PTE_D);
                    }
                }
                thread::yield_now();
            }
        });
        // Stops the A/D thread however this closure ends (a failed join must not hang it).
        let stop_hw = StopOnDrop(&stop);
        let churn = s.spawn(|| churn(kit, x, s2));
        let mut handles: Vec<_> = (0..4u64)
            .map(|t| {
                let v = &worker_view;
                s.spawn(move || worker(kit, v, t as usize, 0xD1B5_4A32 * (t + 1), SHARED_REQS))
            })
            .collect();
        handles.push(s.spawn(|| worker(kit, &attacker, 2, 0xC0FFEE, SHARED_REQS)));
        let works = handles.into_iter().map(|h| h.join().unwrap());
        let work = works.fold(churn.join().unwrap(), Work::add);
        drop(stop_hw);
        hw.join().unwrap();
        work
    });
    let retries = kit.mem.cas_failures();
    work.report("shared table tree", &[ENDINGS, &["churn pin: ok"]].concat());
    println!("entry CAS retries: {retries}");
    assert!(work.requests >= 5 * SHARED_REQS + CHURN_ROUNDS);
    let s = kit.state(x);
    assert_eq!(
        (s.general(), s.type_count(), s.pinned()),
        (1, 0, false),
        "the churned table"
    );
    quiescent(&kit, &tables);
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Pin `x` as an L1, map it at L2 `s2` slot 9, unmap it, unpin it; the others write into it
/// meanwhile, so pinning and mapping may find it transiently writable (`-EINVAL`, type
/// mismatch) and nothing else.
fn churn(kit: &Kit, x: u64, s2: u64) -> Work {
    let mut env = env(kit, D1, 5);
    let busy = HcResult::Done(Err(HcError::Mm(MmError::TypeMismatch)));
    let mut work = Work::default();
    for round in 0..CHURN_ROUNDS {
        let pinned = match env.ext1(MmuextCmd::PinL1Table, x, 0) {
            HcResult::Done(Ok(0)) => true,
            r => {
                assert_eq!(r, busy, "round {round}: pin");
                false
            }
        };
        let mapped = match env.mmu(&[req(s2, 9, pte(x, PTE_P | PTE_RW | PTE_US))], SELF) {
            HcResult::Done(Ok(0)) => true,
            r => {
                assert_eq!(r, busy, "round {round}: map");
                false
            }
        };
        assert_eq!(
            forget(&mut env),
            usize::from(mapped),
            "round {round}: flush after map"
        );
        if mapped {
            ok(env.mmu(&[req(s2, 9, 0)], SELF));
            assert_eq!(forget(&mut env), 1, "round {round}: flush after unmap");
        }
        let unpin = env.ext1(MmuextCmd::UnpinTable, x, 0);
        if pinned {
            ok(unpin);
        } else {
            assert_eq!(unpin, HcResult::Done(Err(HcError::Mm(MmError::NotPinned))));
        }
        forget(&mut env);
        work.requests += 3 + u64::from(mapped);
        let tally = |ok| if ok { "ok" } else { "busy" };
        for what in [("pin", pinned), ("map", mapped)] {
            let end = format!("churn {}: {}", what.0, tally(what.1));
            *work.ends.entry(end).or_default() += 1;
        }
    }
    work
}
