//! Running a thread's batches: [`worker`] issues random batches of a [`View`] through its own
//! fake environment until it has processed its share, and holds each to its prediction with
//! [`check`]; [`Work`] tallies what happened.

use std::collections::BTreeMap;

use super::{Batch, Expect, Rng, View};
use crate::hypercall_common::*;

/// A fake environment for vCPU `cpu` of domain `dom`.
pub fn env(kit: &Kit, dom: DomId, cpu: usize) -> FakeEnv<'_> {
    let mut env = FakeEnv::new(kit);
    env.caller = dom;
    env.cpu = cpu;
    env
}

/// Forget what the fake environment recorded after a call (type changes, flushes); returns
/// the number of flushes.
pub fn forget(env: &mut FakeEnv<'_>) -> usize {
    for d in &env.doms {
        d.retypes.borrow_mut().clear();
    }
    std::mem::take(&mut env.flushes).len()
}

/// What a worker did: requests processed, and how many batches ended each way.
#[derive(Default)]
pub struct Work {
    pub requests: u64,
    pub ends: BTreeMap<String, u64>,
}

impl Work {
    pub fn add(mut self, other: Work) -> Work {
        self.requests += other.requests;
        for (k, n) in other.ends {
            *self.ends.entry(k).or_default() += n;
        }
        self
    }

    /// Print the tally and require every ending in `must` to have occurred.
    pub fn report(&self, name: &str, must: &[&str]) {
        println!(
            "{name}: {} requests; batches ending: {:?}",
            self.requests, self.ends
        );
        for want in must {
            assert!(
                self.ends.contains_key(*want),
                "{name}: no batch ended with {want}"
            );
        }
    }
}

/// Endings every scenario's batches must reach (the verdicts are predicted exactly).
pub const ENDINGS: &[&str] = &[
    "ok",
    "Mm(WritableBusy)",
    "Mm(FrameBusy)",
    "Mm(MmioDenied)",
    "Mm(AllOnesFrame)",
    "Mm(CacheAttr)",
    "Mm(LinearWritable)",
    "Mm(BadChild)",
    "Mm(TypeMismatch)",
    "Mm(Superpage)",
    "Mm(BadFlags)",
    "Mm(XenSlot)",
    "Mm(WrongOwner)",
    "Mm(NotAllocated)",
    "Invalid(BadFrame)",
    "UnknownCommand",
    "NotPermitted",
    "NoSuchDomain",
];

/// Run random batches of `view` until `target` requests were processed; every batch is
/// checked against its prediction.
pub fn worker(kit: &Kit, view: &View, cpu: usize, seed: u64, target: u64) -> Work {
    let mut env = env(kit, view.dom, cpu);
    let mut rng = Rng(seed | 1);
    let mut work = Work::default();
    while work.requests < target {
        let Batch {
            reqs,
            foreigndom,
            expects,
        } = view.batch(&mut rng);
        let r = env.mmu(&reqs, foreigndom);
        let flushes = forget(&mut env);
        match check(&expects, r, env.pdone(), flushes) {
            Ok(n) => work.requests += n,
            Err(msg) => panic!(
                "domain {} cpu {cpu}: {msg}\nbatch {reqs:#x?}\nforeigndom {foreigndom:#x}\nexpected {expects:?}",
                view.dom
            ),
        }
        let end = r.err().map_or("ok".into(), |e| format!("{e:?}"));
        *work.ends.entry(end).or_default() += 1;
    }
    work
}

/// Hold a finished batch to its expectations: the verdict and `*pdone` name the first request
/// expected to fail (or one allowed to), and a flush was issued iff an applied request changed
/// an L2–L4 entry. Returns the number of requests processed (applied, plus the failing one).
pub fn check(expects: &[Expect], r: HcResult, pdone: u32, flushes: usize) -> Result<u64, String> {
    let HcResult::Done(verdict) = r else {
        return Err(format!("not finished: {r:?}"));
    };
    let n = expects.len();
    let done = pdone as usize;
    if done > n || (verdict.is_ok() && done != n) || (verdict.is_err() && done == n) {
        return Err(format!("verdict {verdict:?} with *pdone {pdone} of {n}"));
    }
    if let Some(i) = expects[..done]
        .iter()
        .position(|e| matches!(e, Expect::Fail(_)))
    {
        return Err(format!(
            "request {i} applied, expected {:?}; verdict {verdict:?}, *pdone {pdone}",
            expects[i]
        ));
    }
    match verdict {
        Ok(0) => {}
        Ok(v) => return Err(format!("returned {v}")),
        Err(got) => match expects[done] {
            Expect::Fail(e) | Expect::OkOr(e) if e == got => {
                assert_eq!(got.errno(), e.errno());
            }
            e => {
                return Err(format!(
                    "request {done} failed with {got:?}, expected {e:?}"
                ));
            }
        },
    }
    let upper = expects[..done].contains(&Expect::Ok { upper: true });
    if flushes != usize::from(upper) {
        return Err(format!("{flushes} flushes, L2-L4 entry changed: {upper}"));
    }
    Ok(done as u64 + u64::from(verdict.is_err()))
}
