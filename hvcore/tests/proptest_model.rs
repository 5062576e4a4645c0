//! Property tests with `proptest`: random sequences of `mmu_update` batches (L1–L4 entry
//! updates with valid and invalid values, raw writes into data frames, PRESERVE_AD, MACHPHYS,
//! unknown commands) and `mmuext_op` batches (pin at each level, unpin, NEW_BASEPTR,
//! NEW_USER_BASEPTR, unknown and removed commands), with hostile `foreigndom` values, run
//! through the hypercall layer over `hypercall_common`'s fake environment, for one domain and
//! for two domains acting on each other's frames. After every step each of these must equal
//! the plain sequential reference model of `reference_model/`: the verdict (Ok, or the exact
//! `HcError` and so the exact errno), `*pdone`, whether a flush was issued, every frame's
//! counts, type, pin, owner and linear counter, all of page-table memory, both base pointers of
//! both vCPUs and the M2P; and the audit must be clean.
//!
//! It fails when the implementation and the model disagree on any of these after any step (a
//! wrong errno or done count, a leaked or missing reference, an entry stored differently, a
//! cross-domain request that is let through or refused for the wrong reason) or when the audit
//! finds a discrepancy; proptest then shrinks the sequence to a minimal one and prints it. It
//! also fails if the generator stopped reaching the interesting cases (coverage counts at the
//! end). Cases: [`DEFAULT_CASES`] per test; `PROPTEST_CASES` overrides it for longer runs.

mod hypercall_common;
mod reference_model;

use hvcore::frame::Level;
use hypercall_common::{FakeEnv, kit};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use reference_model::harness::{Stats, compare, state_stats, step};
use reference_model::ops::{Ext, F, Fd, Op, Req};
use reference_model::*;

/// Cases per test when `PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 256;
/// Most chunks (one step, or the three steps of a [`chain`]) in a sequence.
const MAX_CHUNKS: usize = 50;
/// Frames of each domain the generator names (its first ones).
const POOL: u8 = 7;
const SLOTS: [usize; 9] = [0, 1, 2, 255, 256, 258, 271, 272, 511];

// --- strategies ------------------------------------------------------------------------------

fn any_frame() -> impl Strategy<Value = F> {
    prop_oneof![
        14 => (0..POOL).prop_map(F::Own),
        4 => (0..4u8).prop_map(F::Other),
        1 => Just(F::Priv),
        1 => Just(F::Free),
        1 => Just(F::Mmio),
    ]
}

/// The frame a request writes into: mostly the actor's own.
fn table() -> impl Strategy<Value = F> {
    prop_oneof![
        24 => (0..POOL).prop_map(F::Own),
        2 => (0..4u8).prop_map(F::Other),
        1 => Just(F::Priv),
        1 => Just(F::Free),
        1 => Just(F::Mmio),
    ]
}

fn target() -> impl Strategy<Value = F> {
    prop_oneof![40 => any_frame(), 1 => Just(F::AllOnes)]
}

/// Flags: each bit set with its own chance; values shrink towards fewer bits.
fn flags() -> impl Strategy<Value = u64> {
    const BITS: [(u64, u32); 13] = [
        (P, 88),
        (RW, 30),
        (US, 50),
        (A, 40),
        (D, 20),
        (NX, 15),
        (1 << 9, 10),
        (GUEST_KERNEL, 30),
        (1 << 57, 10),
        (G, 3),
        (PSE, 3),
        (PCD, 2),
        (PWT, 1),
    ];
    prop::collection::vec(0..100u32, BITS.len()).prop_map(|xs| {
        BITS.iter()
            .zip(xs)
            .filter(|((_, pct), x)| *x >= 100 - pct)
            .fold(0, |acc, ((bit, _), _)| acc | bit)
    })
}

fn req() -> impl Strategy<Value = Req> {
    let cmd = prop_oneof![20 => Just(0u64), 4 => Just(2), 1 => Just(3), 1 => Just(1), 1 => 4..8u64];
    (
        cmd,
        table(),
        prop::sample::select(&SLOTS[..]),
        target(),
        flags(),
    )
        .prop_map(|(cmd, table, slot, target, flags)| Req {
            cmd,
            table,
            slot,
            target,
            flags,
        })
}

fn ext() -> impl Strategy<Value = Ext> {
    prop_oneof![
        6 => (any_frame(), prop::sample::select(&Level::ALL[..])).prop_map(|(f, l)| Ext::Pin(f, l)),
        3 => any_frame().prop_map(Ext::Unpin),
        2 => any_frame().prop_map(Ext::Base),
        1 => prop::option::of(any_frame()).prop_map(Ext::UserBase),
        1 => prop::sample::select(&[14u32, 19, 20, 21, 0x1000][..]).prop_map(Ext::Bad),
    ]
}

fn fd() -> impl Strategy<Value = Fd> {
    prop_oneof![
        60 => Just(Fd::Slf),
        1 => Just(Fd::OwnId),
        2 => Just(Fd::Other),
        2 => Just(Fd::Io),
        1 => Just(Fd::Missing),
        2 => Just(Fd::PfdOther),
    ]
}

fn op(two: bool) -> impl Strategy<Value = Op> {
    let who = if two {
        (1..=2u16).boxed()
    } else {
        Just(1u16).boxed()
    };
    prop_oneof![
        12 => (who.clone(), fd(), prop::collection::vec(req(), 1..=3))
            .prop_map(|(who, fd, reqs)| Op::Mmu { who, fd, reqs }),
        7 => (who.clone(), fd(), prop::collection::vec(ext(), 1..=2))
            .prop_map(|(who, fd, ops)| Op::Ext { who, fd, ops }),
        1 => (who, 0..POOL, prop::sample::select(&SLOTS[..]))
            .prop_map(|(who, table, slot)| Op::HwAd { who, table, slot }),
    ]
}

/// A four-level chain written as data and then typed: `d[s0]` maps data frame `x`, `c → d`,
/// `b → c`, `a → b`, then `a` is pinned as an L4 or installed as the kernel base. Random steps
/// alone rarely build one; these make deep validation and de-validation common.
fn chain(two: bool) -> impl Strategy<Value = Vec<Op>> {
    let who = if two {
        (1..=2u16).boxed()
    } else {
        Just(1u16).boxed()
    };
    let frames = prop::sample::subsequence((0..POOL).collect::<Vec<_>>(), 5).prop_shuffle();
    let slots = prop::collection::vec(prop::sample::select(&[0usize, 1, 255, 272, 511][..]), 4);
    (who, frames, slots, any::<bool>(), flags()).prop_map(|(who, f, s, base, leaf)| {
        let req = |table: u8, slot: usize, target: u8, flags: u64| Req {
            cmd: 0,
            table: F::Own(table),
            slot,
            target: F::Own(target),
            flags,
        };
        let (a, b, c, d, x) = (f[0], f[1], f[2], f[3], f[4]);
        let upper = P | RW | US;
        let reqs = vec![
            req(d, s[0], x, leaf),
            req(c, s[1], d, upper),
            req(b, s[2], c, upper),
        ];
        let last = if base {
            Ext::Base(F::Own(a))
        } else {
            Ext::Pin(F::Own(a), Level::L4)
        };
        vec![
            Op::Mmu {
                who,
                fd: Fd::Slf,
                reqs,
            },
            Op::Mmu {
                who,
                fd: Fd::Slf,
                reqs: vec![req(a, s[3], b, upper)],
            },
            Op::Ext {
                who,
                fd: Fd::Slf,
                ops: vec![last],
            },
        ]
    })
}

/// Three tables of one level pinned, then linked read-only in a ring `x → y → z → x`: the
/// first link is a linear entry; the others must be refused as chains (XSA-240: `y` is now a
/// linear target and may not contain one, `x` contains one and may not be a target).
fn linear_ring(two: bool) -> impl Strategy<Value = Vec<Op>> {
    let who = if two {
        (1..=2u16).boxed()
    } else {
        Just(1u16).boxed()
    };
    let frames = prop::sample::subsequence((0..POOL).collect::<Vec<_>>(), 3).prop_shuffle();
    let level = prop::sample::select(&[Level::L2, Level::L3, Level::L4][..]);
    let slots = prop::collection::vec(prop::sample::select(&[0usize, 1, 255, 272, 511][..]), 3);
    (who, frames, level, slots).prop_map(|(who, f, level, s)| {
        let pins = f.iter().map(|&x| Ext::Pin(F::Own(x), level)).collect();
        let link = |i: usize| Op::Mmu {
            who,
            fd: Fd::Slf,
            reqs: vec![Req {
                cmd: 0,
                table: F::Own(f[i]),
                slot: s[i],
                target: F::Own(f[(i + 1) % 3]),
                flags: P | US | A,
            }],
        };
        let pin = Op::Ext {
            who,
            fd: Fd::Slf,
            ops: pins,
        };
        vec![pin, link(0), link(1), link(2)]
    })
}

fn sequence(two: bool) -> impl Strategy<Value = Vec<Op>> {
    let chunk = prop_oneof![
        12 => op(two).prop_map(|o| vec![o]),
        1 => chain(two),
        1 => linear_ring(two),
    ];
    prop::collection::vec(chunk, 1..=MAX_CHUNKS).prop_map(|c| c.concat())
}

// --- running a sequence ----------------------------------------------------------------------

fn run_case(ops: &[Op], stats: &Stats) -> Result<(), TestCaseError> {
    let kit = kit();
    let mut envs = [FakeEnv::new(&kit), FakeEnv::new(&kit)];
    envs[1].caller = 2;
    envs[1].cpu = 2;
    let mut model = Model::new();
    for (n, op) in ops.iter().enumerate() {
        step(&mut envs, &mut model, op, stats)
            .and_then(|()| compare(&kit, &envs, &model))
            .map_err(|e| TestCaseError::fail(format!("step {n} {op:?}: {e}")))?;
        state_stats(&model, stats);
    }
    Ok(())
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Run the property; then require that the generator reached every kind of step it exists for.
fn property(two: bool, must_reach: &[&str]) {
    let stats = Stats::default();
    let strategy = sequence(two);
    if let Err(e) = TestRunner::new(config()).run(&strategy, |ops| run_case(&ops, &stats)) {
        panic!("{e}");
    }
    let stats = stats.into_inner();
    for (k, n) in &stats {
        println!("{k:>40} {n}");
    }
    for want in must_reach {
        let n: u64 = stats
            .iter()
            .filter(|(k, _)| k.contains(want))
            .map(|(_, n)| n)
            .sum();
        assert!(n > 0, "the generator never produced {want:?}");
    }
}

const COMMON: &[&str] = &[
    "pin L1: ok",
    "pin L2: ok",
    "pin L3: ok",
    "pin L4: ok",
    "Unpin: ok",
    "Base: ok",
    "mmu L1: ok",
    "mmu L2: ok",
    "mmu L3: ok",
    "mmu L4: ok",
    "mmu data: ok",
    "AlreadyPinned",
    "TypeMismatch",
    "WritableBusy",
    "FrameBusy",
    "XenSlot",
    "BadChild",
    "WrongOwner",
    "NotPermitted",
    "NoSuchDomain",
    "UnknownCommand",
    "LinearChain",
    "state: linear entry",
    "state: 4-level tree",
];

#[test]
fn one_domain_sequences_match_the_reference_model() {
    property(false, COMMON);
}

#[test]
fn two_domain_sequences_match_the_reference_model() {
    property(true, COMMON);
}
