//! Running the reference model beside the implementation: one step through both (the
//! implementation through `hypercall_common`'s fake environment), the comparison of everything
//! observable after it, and coverage statistics of what the generated sequences reached.

use std::cell::RefCell;
use std::collections::BTreeMap;

use abi::mmu::MmuUpdate;
use abi::mmuext::{MmuextCmd, MmuextOp};
use hvcore::domain::DomId;
use hvcore::frame::{Level, PageType};
use hvcore::hypercall::{HcError, HcResult};
use hvcore::mem::Mfn;
use hvcore::testkit::Kit;
use proptest::test_runner::TestCaseError;

use super::ops::{Ext, F, Op, Outcome};
use super::{A, D, ENTRIES, FRAMES, Model, P, frame};
use crate::hypercall_common::{FakeEnv, SENTINEL};

pub type Stats = RefCell<BTreeMap<String, u64>>;

pub fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

/// What the implementation did, in the model's terms.
pub fn observed(env: &mut FakeEnv<'_>, r: HcResult) -> Result<Outcome, TestCaseError> {
    let verdict = match r {
        HcResult::Done(Ok(0)) => Ok(()),
        HcResult::Done(Err(e)) => Err(e),
        other => return Err(TestCaseError::fail(format!("unexpected result {other:?}"))),
    };
    let pdone = env.pdone();
    let flushes = std::mem::take(&mut env.flushes).len();
    check(flushes <= 1, || format!("{flushes} flushes for one call"))?;
    Ok(Outcome {
        verdict,
        pdone: (pdone != SENTINEL).then_some(pdone),
        flush: flushes == 1,
    })
}

/// Label for the coverage statistics: the kind of the first element and how the call ended.
pub fn label(model: &Model, op: &Op, verdict: &Result<(), HcError>) -> String {
    let kind = match op {
        Op::Mmu { who, reqs, .. } => {
            let t = reqs[0].table.mfn(*who);
            let r = model.recs.get(t as usize).copied().unwrap_or_default();
            match r.ty.level().filter(|_| r.c > 0 && r.v) {
                Some(l) => format!("mmu {l:?}"),
                None => "mmu data".into(),
            }
        }
        Op::Ext { ops, .. } => match ops[0] {
            Ext::Pin(_, l) => format!("pin {l:?}"),
            e => format!("{e:?}").split('(').next().unwrap_or("").to_string(),
        },
        Op::HwAd { .. } => "hw".into(),
    };
    match verdict {
        Ok(()) => format!("{kind}: ok"),
        Err(e) => format!("{kind}: {e:?}"),
    }
}

/// Apply `op` to the implementation and the model and compare the outcomes.
pub fn step(
    envs: &mut [FakeEnv<'_>; 2],
    model: &mut Model,
    op: &Op,
    stats: &Stats,
) -> Result<(), TestCaseError> {
    let (expect, got) = match op {
        Op::Mmu { who, fd, reqs } => {
            let abi: Vec<MmuUpdate> = reqs
                .iter()
                .map(|r| {
                    let (ptr, val) = r.encode(*who);
                    MmuUpdate { ptr, val }
                })
                .collect();
            let env = &mut envs[*who as usize - 1];
            let r = env.mmu(&abi, fd.encode(*who));
            let got = observed(env, r)?;
            let before = label(model, op, &got.verdict);
            *stats.borrow_mut().entry(before).or_default() += 1;
            (model.mmu(*who, *fd, reqs), got)
        }
        Op::Ext { who, fd, ops } => {
            let abi: Vec<MmuextOp> = ops.iter().map(|e| ext_abi(*who, *e)).collect();
            let env = &mut envs[*who as usize - 1];
            let r = env.ext(&abi, fd.encode(*who));
            let got = observed(env, r)?;
            *stats
                .borrow_mut()
                .entry(label(model, op, &got.verdict))
                .or_default() += 1;
            (model.ext(*who, *fd, ops), got)
        }
        Op::HwAd { who, table, slot } => {
            let f = F::Own(*table).mfn(*who);
            let kit = envs[0].kit;
            if kit.read(f, *slot) & P != 0 {
                kit.mem.hw_set_bits(Mfn(f), *slot, A | D);
            }
            model.hw_ad(f, *slot);
            return Ok(());
        }
    };
    check(got == expect, || {
        format!("implementation {got:?}, model {expect:?}")
    })
}

pub fn ext_abi(who: DomId, e: Ext) -> MmuextOp {
    let pin = |l: Level| match l {
        Level::L1 => MmuextCmd::PinL1Table,
        Level::L2 => MmuextCmd::PinL2Table,
        Level::L3 => MmuextCmd::PinL3Table,
        Level::L4 => MmuextCmd::PinL4Table,
    };
    match e {
        Ext::Pin(f, l) => MmuextOp::new(pin(l), f.mfn(who), 0),
        Ext::Unpin(f) => MmuextOp::new(MmuextCmd::UnpinTable, f.mfn(who), 0),
        Ext::Base(f) => MmuextOp::new(MmuextCmd::NewBaseptr, f.mfn(who), 0),
        Ext::UserBase(f) => {
            MmuextOp::new(MmuextCmd::NewUserBaseptr, f.map_or(0, |f| f.mfn(who)), 0)
        }
        Ext::Bad(cmd) => MmuextOp {
            cmd,
            arg1: 0,
            arg2: 0,
        },
    }
}

/// Every frame, all of memory, the bases and the M2P equal the model's; the audit is clean.
pub fn compare(kit: &Kit, envs: &[FakeEnv<'_>; 2], model: &Model) -> Result<(), TestCaseError> {
    for f in 0..FRAMES {
        let s = kit.state(f);
        let r = model.recs[f as usize];
        let live = |c: u32, ty, v| (c > 0).then_some((ty, v));
        let got = (
            (
                s.general(),
                s.type_count(),
                s.pinned(),
                s.allocated(),
                s.owner(),
            ),
            live(s.type_count(), s.ty(), s.validated()),
            kit.table().linear_count(Mfn(f)).unwrap_or(i32::MIN),
        );
        let want = (
            (r.g, r.c, r.pinned, r.alloc, r.owner),
            live(r.c, r.ty, r.v),
            r.linear,
        );
        check(got == want, || {
            format!("frame {f}: implementation {got:?}, model {want:?}")
        })?;
        for i in 0..ENTRIES {
            let (got, want) = (kit.read(f, i), model.get(f, i));
            check(got == want, || {
                format!("frame {f} entry {i}: {got:#x}, model {want:#x}")
            })?;
        }
    }
    let mut m2p = BTreeMap::new();
    for (env, dom) in envs.iter().zip([1, 2]) {
        for (user, got) in [(false, env.kernel_base), (true, env.user_base)] {
            let want = model.base(dom, user).map(Mfn);
            check(got == want, || {
                format!("domain {dom} base (user {user}): {got:?}, model {want:?}")
            })?;
        }
        m2p.extend(env.m2p.borrow().iter().map(|(k, v)| (*k, *v)));
    }
    check(m2p == model.m2p, || {
        format!("M2P {m2p:?}, model {:?}", model.m2p)
    })?;
    let extras: Vec<_> = envs.iter().flat_map(|e| e.extras()).collect();
    let report = kit.audit_with(&extras, &[]);
    check(report.is_clean(), || {
        format!("audit: {:#?}", report.findings().collect::<Vec<_>>())
    })
}

/// Depth of the validated tree under table `f` (an L1 with a present entry is 1 deep).
pub fn depth(model: &Model, f: u64, level: Level) -> u32 {
    let mut deepest = 0;
    for i in 0..ENTRIES {
        let e = model.get(f, i);
        let t = frame(e);
        if e & P == 0 || t == f || (level == Level::L4 && (256..=271).contains(&i)) {
            continue;
        }
        deepest = deepest.max(match level.lower() {
            None => 1,
            Some(lower) if t < FRAMES && model.recs[t as usize].ty == lower.page_type() => {
                match depth(model, t, lower) {
                    0 => 0,
                    d => d + 1,
                }
            }
            Some(_) => 0,
        });
    }
    deepest
}

/// What the state reached: linear entries, and a four-level tree with a present leaf.
pub fn state_stats(model: &Model, stats: &Stats) {
    let mut stats = stats.borrow_mut();
    if model.recs.iter().any(|r| r.linear > 0) {
        *stats.entry("state: linear entry".into()).or_default() += 1;
    }
    let l4s = (0..FRAMES).filter(|&f| {
        let r = model.recs[f as usize];
        r.ty == PageType::L4 && r.c > 0 && r.v
    });
    if l4s.into_iter().any(|f| depth(model, f, Level::L4) == 4) {
        *stats.entry("state: 4-level tree".into()).or_default() += 1;
    }
}
