//! The `demo` workload: rounds of 16-request `mmu_update` batches writing raw words into a data
//! page, each round checked word by word. It runs on one vCPU with nothing but the hypercall page.

use abi::domid::DOMID_SELF;
use abi::{MmuCmd, MmuUpdate};

use super::{PAGE_WORDS, Page};
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure_eq};
use crate::hypercall;

static TARGET: Page = Page::new();

const ROUNDS: u64 = 64;
const BATCH: usize = 16;

/// `ROUNDS` batches of `BATCH` raw writes; every batch completes (`*pdone` = `BATCH`) and every
/// word reads back.
pub fn mmu_update_batches(env: &Env) -> Outcome {
    TARGET.fill(0);
    let base = env
        .maddr_of(TARGET.va())
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for the target page")))?;
    for round in 0..ROUNDS {
        let first = (round as usize * BATCH) % PAGE_WORDS;
        let value = |i: usize| (round << 32) | (i as u64) | 0xD000_0000;
        let reqs: [MmuUpdate; BATCH] = core::array::from_fn(|i| {
            MmuUpdate::new(
                MmuCmd::NormalPtUpdate,
                base + ((first + i) as u64) * 8,
                value(i),
            )
        });
        let mut done = 0u32;
        // SAFETY: every request writes a word of TARGET, a page only this test uses.
        let rc = unsafe { hypercall::mmu_update(&reqs, Some(&mut done), u32::from(DOMID_SELF)) };
        ensure_eq!(rc, 0, "rc in round {round}");
        ensure_eq!(done as usize, BATCH, "pdone in round {round}");
        for i in 0..BATCH {
            ensure_eq!(
                TARGET.read(first + i),
                value(i),
                "word {} in round {round}",
                first + i
            );
        }
    }
    Ok(())
}
