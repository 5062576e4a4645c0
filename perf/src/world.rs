//! The benchmark world: one `testkit::Kit` (HostMem + frame table) and one domain, laid out for a
//! [`Mode`], and the update each [`Design`] performs.
//!
//! Layout: thread `t` owns a block of [`BLOCK`] frames starting at `t * BLOCK` (its L1 at offset
//! 0, its private targets at 1 and 2). `FrameInfo` is 16 bytes, four to a cache line, so a
//! 128-byte block keeps one thread's frame words off every other thread's lines; the hot targets
//! get a block each after the threads'. Thread `t` updates `slots` consecutive entries of its
//! table (8 entries = one 64-byte line of the table, so threads sharing a table never share an
//! entry line). Update `k` of a thread writes slot `k % slots` with target `(k / slots) % 2`:
//! every update replaces a present entry by one for the other target, which is the full slow
//! path of `mod_entry` (take new references, CAS, drop old references).
//!
//! Every design runs exactly the same `FrameTable::mod_entry` call; the baselines only wrap it
//! in a lock. Nothing here is timed; the audit after a run checks that the counts are exact.

use hvcore::frame::{Level, MmError};
use hvcore::mem::Mfn;
use hvcore::pt::{PTE_P, PTE_RW, PTE_US};
use hvcore::testkit::{Kit, TestDomain, pte};

use crate::lock::SpinLock;

/// Frames per thread block (see the module head).
pub const BLOCK: u64 = 8;
/// Domain id owning every frame.
const DOM: u16 = 1;
/// Entries per thread when the table has room: one 64-byte line of the table.
const SLOTS_PER_THREAD: usize = 8;

/// Which frames the threads' updates touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each thread its own L1 and its own two targets.
    Disjoint,
    /// One L1 for all threads (different entries), private targets.
    SharedTable,
    /// Own L1 per thread, but every thread alternates between the same two target frames.
    HotFrame,
}

impl Mode {
    /// All modes, in report order.
    pub const ALL: [Mode; 3] = [Mode::Disjoint, Mode::SharedTable, Mode::HotFrame];

    /// Name used in CSV files, tables and plot file names.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Disjoint => "disjoint",
            Mode::SharedTable => "shared_table",
            Mode::HotFrame => "hot_frame",
        }
    }
}

/// RW or RO leaf entries (an RW leaf also takes and drops a writable type reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `P | RW | US`.
    Rw,
    /// `P | US`.
    Ro,
}

impl Variant {
    /// Both variants, in report order.
    pub const ALL: [Variant; 2] = [Variant::Rw, Variant::Ro];

    /// Name used in CSV files and tables.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Rw => "rw",
            Variant::Ro => "ro",
        }
    }

    fn flags(self) -> u64 {
        match self {
            Variant::Rw => PTE_P | PTE_RW | PTE_US,
            Variant::Ro => PTE_P | PTE_US,
        }
    }
}

/// How an update is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Argon: `mod_entry` as is (entry CAS, no lock).
    Argon,
    /// One global spin lock around every `mod_entry`.
    GlobalLock,
    /// Xen style: a spin lock per page-table frame, held while one of its entries is updated.
    PerTableLock,
}

impl Design {
    /// All designs, in report order.
    pub const ALL: [Design; 3] = [Design::Argon, Design::GlobalLock, Design::PerTableLock];

    /// Name used in CSV files, tables and plot legends.
    pub fn name(self) -> &'static str {
        match self {
            Design::Argon => "argon",
            Design::GlobalLock => "global_lock",
            Design::PerTableLock => "per_table_lock",
        }
    }

    /// Parse a [`Self::name`].
    pub fn parse(s: &str) -> Option<Design> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// What one thread updates.
#[derive(Debug, Clone, Copy)]
pub struct ThreadPlan {
    table: Mfn,
    first_slot: usize,
    slots: usize,
    values: [u64; 2],
}

impl ThreadPlan {
    /// Table, slot and value of this thread's update number `k`.
    #[inline]
    pub fn update(&self, k: u64) -> (Mfn, usize, u64) {
        let slots = self.slots as u64;
        let slot = self.first_slot + (k % slots) as usize;
        (self.table, slot, self.values[((k / slots) & 1) as usize])
    }
}

/// What a design wraps around each update.
trait Guard {
    fn with<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// Argon: no lock.
struct NoLock;

impl Guard for NoLock {
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

impl Guard for SpinLock {
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        SpinLock::with(self, f)
    }
}

/// Kit, domain, locks and the per-thread plans of one run.
#[derive(Debug)]
pub struct World {
    kit: Kit,
    dom: TestDomain,
    global: SpinLock,
    per_table: Vec<SpinLock>,
    plans: Vec<ThreadPlan>,
}

/// Build the plans for `threads` threads in `mode` (pure layout; see the module head).
pub fn plans(mode: Mode, variant: Variant, threads: usize) -> Vec<ThreadPlan> {
    let hot = [threads as u64 * BLOCK + 1, (threads as u64 + 1) * BLOCK + 1];
    let per_table = (hvcore::mem::ENTRIES_PER_TABLE / threads.max(1)).max(1);
    let slots = SLOTS_PER_THREAD.min(per_table);
    (0..threads)
        .map(|t| {
            let base = t as u64 * BLOCK;
            let (table, first_slot) = match mode {
                Mode::SharedTable => (0, t * slots),
                _ => (base, 0),
            };
            let targets = match mode {
                Mode::HotFrame => hot,
                _ => [base + 1, base + 2],
            };
            ThreadPlan {
                table: Mfn(table),
                first_slot,
                slots,
                values: targets.map(|f| pte(f, variant.flags())),
            }
        })
        .collect()
}

impl World {
    /// A world for `threads` threads: frames assigned, tables pinned as L1, every slot filled
    /// once (so later updates replace present entries).
    pub fn new(mode: Mode, variant: Variant, threads: usize) -> Result<World, MmError> {
        let frames = (threads as u64 + 2) * BLOCK;
        let kit = Kit::with_domain(frames as usize, DOM);
        let world = World {
            per_table: (0..frames).map(|_| SpinLock::new()).collect(),
            kit,
            dom: TestDomain::new(DOM),
            global: SpinLock::new(),
            plans: plans(mode, variant, threads),
        };
        let ft = world.kit.table();
        let mut pinned = Vec::new();
        for p in &world.plans {
            if !pinned.contains(&p.table) {
                ft.pin(&world.kit.mem, &world.dom, p.table, Level::L1)?;
                pinned.push(p.table);
            }
        }
        for t in 0..threads {
            let mut k = 0;
            world.run(Design::Argon, t, &mut k, world.first_update(t))?;
        }
        Ok(world)
    }

    /// The update number thread `t` continues from after setup (setup ran one round).
    pub fn first_update(&self, t: usize) -> u64 {
        self.plans[t].slots as u64
    }

    /// Run `count` updates of thread `t` with `design`, starting at its update number `*k`.
    #[inline]
    pub fn run(&self, design: Design, t: usize, k: &mut u64, count: u64) -> Result<(), MmError> {
        let plan = self.plans[t];
        match design {
            Design::Argon => self.run_with(&NoLock, &plan, k, count),
            Design::GlobalLock => self.run_with(&self.global, &plan, k, count),
            Design::PerTableLock => {
                let lock = plan.table.index().and_then(|i| self.per_table.get(i));
                self.run_with(lock.ok_or(MmError::BadMfn)?, &plan, k, count)
            }
        }
    }

    #[inline(always)]
    fn run_with<G: Guard>(
        &self,
        guard: &G,
        plan: &ThreadPlan,
        k: &mut u64,
        count: u64,
    ) -> Result<(), MmError> {
        let ft = self.kit.table();
        for _ in 0..count {
            let (table, slot, val) = plan.update(*k);
            guard.with(|| {
                ft.mod_entry(&self.kit.mem, &self.dom, table, Level::L1, slot, val, false)
                    .map(|_| ())
            })?;
            *k += 1;
        }
        Ok(())
    }

    /// Audit the frame table against the page tables (meaningful at quiescence only).
    pub fn audit_clean(&self) -> Result<(), String> {
        let report = self.kit.audit(&[]);
        if report.is_clean() {
            Ok(())
        } else {
            Err(format!(
                "audit found {} discrepancies: {:?}",
                report.discrepancies(),
                report.findings().take(4).collect::<Vec<_>>()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_place_threads_as_documented() {
        let d = plans(Mode::Disjoint, Variant::Rw, 3);
        assert_eq!(d[2].update(0).0, Mfn(16));
        assert_eq!(d[2].update(0).2, pte(17, PTE_P | PTE_RW | PTE_US));
        // After one round of 8 slots the other target is written.
        assert_eq!(d[2].update(8).2, pte(18, PTE_P | PTE_RW | PTE_US));
        assert_eq!(d[2].update(9).1, 1);
        let s = plans(Mode::SharedTable, Variant::Ro, 3);
        assert!(s.iter().all(|p| p.table == Mfn(0)));
        assert_eq!(s[2].update(0).1, 16);
        let h = plans(Mode::HotFrame, Variant::Ro, 3);
        assert_eq!(h[0].values, h[2].values);
        assert_eq!(h[0].values[0], pte(25, PTE_P | PTE_US));
    }

    #[test]
    fn every_design_leaves_exact_counts() {
        for mode in Mode::ALL {
            let w = World::new(mode, Variant::Rw, 2).expect("world");
            for design in Design::ALL {
                for t in 0..2 {
                    let mut k = 0;
                    w.run(design, t, &mut k, 100).expect("updates");
                }
            }
            w.audit_clean().expect("clean audit");
        }
    }

    #[test]
    fn many_threads_shrink_slots_but_fit_one_table() {
        let s = plans(Mode::SharedTable, Variant::Rw, 128);
        let last = s[127].update(3).1;
        assert!(last < hvcore::mem::ENTRIES_PER_TABLE);
    }
}
