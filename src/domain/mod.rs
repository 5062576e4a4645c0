//! Domains: building PV domains from boot modules, running their vCPUs on every CPU,
//! destroying them, and the frame-table audit that closes every run.
//!
//! | module | owns |
//! |---|---|
//! | `builder` | a domain from a kernel image (parsed by `abi::pv_image`, laid out by `abi::boot_layout`) |
//! | `dom` | `Domain`: fixed facts, shared state, dirty mask |
//! | `vcpu`, `vcpu_ctx` | `Vcpu` contexts and their slots' scheduling state machine |
//! | `machine` | direct-map `PhysMem`, M2P, frame boxes, the `DomainCtx` |
//! | `flush` | the flush clock and shootdowns over IPIs, statistics |
//! | `sched`, `runq` | run queues, time slices, idle CPUs, starting and retiring a domain |
//! | `cr3` | which vCPU's tables each CPU has loaded; hand-over between CPUs |
//! | `live` | the table of running domains and the attach/retire handshake |
//! | `run` | running one vCPU on this CPU |
//! | `life` | destroy, audit references |
//! | `modules` | a domain per boot module, end-of-domain report |
//! | `once` | write-once statics |
//!
//! Life cycle: module 0 becomes domain 0 (privileged, `SIF_INITDOMAIN`), module `i` domain `i`
//! (unprivileged). The BSP builds the domains, then starts them together, up to
//! `live::MAX_LIVE` at once (the rest are built and started as others end); their vCPUs share every CPU
//! (`sched`). When a domain shuts down or crashes, the BSP retires it (no CPU references it any
//! more), audits it — only its own frames while others still run (`Scope::Own`) — and destroys
//! it (every frame back to the allocator); the others keep running. A module that is not a
//! valid PV kernel is reported (`argon: error: module N (path): why; domain N not created`)
//! and skipped. When the last domain has ended, the whole frame table is audited (`argon:
//! audit: N discrepancies`), the shootdown statistics are printed, and Argon exits with domain
//! 0's verdict: poweroff (or no domain 0) → success, anything else → failure.

pub mod builder;
mod cr3;
pub mod dom;
pub mod flush;
pub mod life;
pub mod live;
pub mod machine;
mod modules;
mod once;
pub mod run;
mod runq;
pub mod sched;
pub mod vcpu;
mod vcpu_ctx;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use abi::sched::SHUTDOWN_POWEROFF;
use boot::arch::qemu::ExitCode;
use boot::cmdline::Options;
use boot::frame_alloc::FrameAllocator;
use boot::multiboot::BootInfo;
use hvcore::audit::{AuditScratch, ExtraRef, Finding};
use hvcore::domain::DomId;
use hvcore::frame::FrameTable;
use hvcore::mem::Mfn;
use smp::BootCell;

use crate::kmain::exit;
use crate::mem::BootMemory;
use dom::Domain;
use live::MAX_LIVE;
use machine::{DirectMem, FrameBox, M2p, XenSlots};
use once::Global;

/// The machine as every CPU running a vCPU sees it; set once by the BSP in [`run_all`].
pub static HV: Global<Hv<'static>> = Global::new();

/// Memory of a domain whose module gives no `mem=` (like `dom0_mem=64M` in our Xen runs).
const DEFAULT_MEM: u64 = 64 << 20;

/// What hypercalls and the builder need from the machine.
pub struct Hv<'a> {
    pub ft: FrameTable<'a>,
    pub mem: DirectMem,
    pub m2p: M2p,
    pub slots: XenSlots,
    /// `linear-pt` on the command line.
    pub linear_pt: bool,
    /// The audit's scratch space, used by one audit at a time (`audit_busy`).
    scratch: BootCell<&'static mut [AuditScratch]>,
    audit_busy: AtomicBool,
    /// Domains built and not yet destroyed (running, or retired and being destroyed).
    domains: AtomicUsize,
}

impl Hv<'_> {
    /// Audits the whole frame table, counting `dom`'s out-of-table references; returns the
    /// number of discrepancies (printing the first few when `print`). One audit runs at a time:
    /// a second caller spins until the first is done, so callers must not hold anything the
    /// running audit could wait for (it waits for nothing and sends no IPIs), and should have
    /// interrupts on. Meaningful only while no MMU operation is in flight on the frames it
    /// judges: with `Scope::Own`, only findings about frames `dom` owns count, which other
    /// running domains cannot reference (only a privileged domain maps foreign frames, and
    /// `Own` is used while the others are unprivileged or stopped).
    pub fn audit(&self, dom: Option<&Domain>, print: bool, scope: Scope) -> usize {
        // Acquire: pairs with the Release below; the previous audit's scratch writes are done.
        while self.audit_busy.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        let own = dom.filter(|_| scope == Scope::Own).map(|d| d.id);
        let found = self.audit_locked(dom, print, own);
        // Release: this audit's scratch writes happen-before the next audit's.
        self.audit_busy.store(false, Ordering::Release);
        found
    }

    fn audit_locked(&self, dom: Option<&Domain>, print: bool, own: Option<DomId>) -> usize {
        let mut extra = [ExtraRef {
            mfn: Mfn(0),
            ty: None,
        }; life::MAX_EXTRA];
        let n = dom.map_or(0, |d| life::extra_refs(&self.ft, d, &mut extra));
        let foreign_ok =
            |mapper: DomId, _owner: DomId| dom.is_some_and(|d| d.id == mapper && d.privileged);
        // SAFETY: `audit_busy` makes this the only audit running, so the scratch slice has no
        // other user until the flag drops.
        let scratch: &mut [AuditScratch] = unsafe { &mut **self.scratch.get() };
        let mut shown = 0;
        let mut counted = 0;
        self.ft
            .audit_each(&self.mem, &extra[..n], scratch, foreign_ok, |f| {
                if own.is_some_and(|id| self.finding_owner(&f) != Some(id)) {
                    return;
                }
                counted += 1;
                if print && shown < 16 {
                    error!("audit: {f:?}");
                    shown += 1;
                }
            });
        counted
    }

    /// The scope of an audit on behalf of one domain: `Own` while any other domain exists —
    /// running, or retired and still being destroyed (its frames change meanwhile).
    pub fn scope_for_one(&self) -> Scope {
        // Acquire: pairs with the Release decrement after `destroy`, so an audit that sees no
        // other domain also sees every frame-table change of their destruction.
        if self.domains.load(Ordering::Acquire) > 1 {
            Scope::Own
        } else {
            Scope::All
        }
    }

    /// The domain a finding is about: the owner of the frame or table it names (`None` for a
    /// frame that is not allocated, or a finding about the audit itself).
    fn finding_owner(&self, f: &Finding) -> Option<DomId> {
        let owner = |mfn: Mfn| {
            let s = self.ft.state(mfn).ok()?;
            s.allocated().then(|| s.owner())
        };
        match *f {
            Finding::Count { mfn, .. }
            | Finding::WritableMapping { mfn, .. }
            | Finding::State { mfn, .. } => owner(mfn),
            Finding::Entry { table, .. } => owner(table),
            Finding::ForeignMapping { table_owner, .. } => Some(table_owner),
            Finding::ScratchTooSmall { .. } => None,
        }
    }
}

/// Which findings an audit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every finding (no other domain runs).
    All,
    /// Findings about the audited domain's own frames (other domains run meanwhile).
    Own,
}

/// Builds a domain per boot module, runs them until the last one ends, then exits Argon.
pub fn run_all(info: &BootInfo, options: &Options, mem: &mut BootMemory) -> ! {
    if info.modules().len() == 0 {
        exit(ExitCode::Success, "success");
    }
    let clock = flush::clock();
    flush::init();
    let (m2p, slots) = match M2p::init(&mut mem.alloc, mem.max_frame) {
        Ok(m) => m,
        Err(why) => {
            error!("{why}");
            exit(ExitCode::Failure, "failure (no M2P)");
        }
    };
    let Some(scratch) = machine::scratch_slice::<AuditScratch>(&mut mem.alloc, mem.max_frame)
    else {
        error!("no memory for the audit");
        exit(ExitCode::Failure, "failure (no memory)");
    };
    let hv = Hv {
        ft: FrameTable::new(mem.frame_table, clock),
        mem: DirectMem::new(mem.max_frame),
        m2p,
        slots,
        linear_pt: options.linear_pt,
        scratch: BootCell::new(scratch),
        audit_busy: AtomicBool::new(false),
        domains: AtomicUsize::new(0),
    };
    let Ok(hv) = HV.set(hv) else {
        exit(ExitCode::Failure, "failure (domains started twice)");
    };
    // SAFETY: on the BSP, interrupts off, after `cpu::init` set its GS base and TSS.
    unsafe { crate::pv::cpu_init() };
    let free_before = mem.alloc.free_count();
    let mut ends = Ends::default();
    let mut running: [Option<FrameBox<Domain>>; MAX_LIVE] = [const { None }; MAX_LIVE];
    let mut pending = info.modules().enumerate();
    loop {
        // Build every module there is room for, then start them together.
        let mut fresh = [false; MAX_LIVE];
        while let Some(free) = running.iter().position(Option::is_none) {
            let Some((i, m)) = pending.next() else { break };
            let Ok(id) = DomId::try_from(i) else { break };
            running[free] = modules::build(hv, mem, options, i, id, m.cmdline, (m.start, m.end));
            fresh[free] = running[free].is_some();
            if fresh[free] {
                // Relaxed: read only by the audit-scope check, which the BSP's own later
                // Release decrement orders; an audit meanwhile seeing one domain too few can
                // only pick `All` before this domain has run.
                hv.domains.fetch_add(1, Ordering::Relaxed);
            }
        }
        for (entry, _) in running.iter_mut().zip(fresh).filter(|(_, f)| *f) {
            // SAFETY: the domain lives in its own frames (moving the box does not move it) and
            // is destroyed only after `sched::retire` below.
            let started = entry.as_mut().and_then(|dom| unsafe { sched::start(dom) });
            // There are as many live slots as `running` entries, so this cannot happen.
            if started.is_none()
                && let Some(dom) = entry.take()
            {
                error!("d{}: no free scheduler slot; domain not started", dom.id);
                ends.leaked += life::destroy(hv, &mut mem.alloc, dom);
                // Release: see `Hv::scope_for_one`.
                hv.domains.fetch_sub(1, Ordering::Release);
            }
        }
        if running.iter().all(Option::is_none) {
            break;
        }
        sched::run_bsp();
        for entry in &mut running {
            if entry
                .as_ref()
                .is_some_and(|d| d.shutdown_reason().is_some())
                && let Some(dom) = entry.take()
            {
                sched::retire(&dom);
                ends.end(hv, &mut mem.alloc, dom);
            }
        }
    }
    let (dom0_reason, leaked) = (ends.dom0_reason, ends.leaked);
    let found = hv.audit(None, true, Scope::All);
    info!("audit: {found} discrepancies");
    flush::report();
    let lost = free_before.saturating_sub(mem.alloc.free_count());
    if lost > 0 || leaked > 0 {
        error!("{lost} frames not returned to the allocator ({leaked} leaked by destroy)");
    }
    if found > 0 || lost > 0 {
        exit(ExitCode::Failure, "failure (audit)");
    }
    match dom0_reason {
        None | Some(SHUTDOWN_POWEROFF) => exit(ExitCode::Success, "success"),
        Some(r) => {
            let mut why = [0u8; 48];
            let text = modules::fmt_reason(&mut why, r);
            exit(ExitCode::Failure, text)
        }
    }
}

/// What the ends of the domains leave for the verdict.
#[derive(Default)]
struct Ends {
    dom0_reason: Option<u32>,
    leaked: u64,
}

impl Ends {
    /// A retired domain's end: its vCPU report, its audit, its destruction.
    fn end(&mut self, hv: &Hv<'_>, alloc: &mut FrameAllocator<'_>, dom: FrameBox<Domain>) {
        let (id, privileged) = (dom.id, dom.privileged);
        let reason = dom.shutdown_reason().unwrap_or(abi::sched::SHUTDOWN_CRASH);
        modules::report_vcpus(&dom);
        // Other domains may still run: then only this domain's own frames are judged.
        let (scope, what) = match hv.scope_for_one() {
            Scope::Own => (Scope::Own, " in its own frames (other domains still run)"),
            Scope::All => (Scope::All, ""),
        };
        // Interrupts on: a guest's audit hypercall may hold the audit meanwhile.
        crate::cpu::ipi::interrupts_on();
        let found = hv.audit(Some(&dom), true, scope);
        crate::cpu::ipi::interrupts_off();
        info!("d{id}: audit at shutdown: {found} discrepancies{what}");
        self.leaked += life::destroy(hv, alloc, dom);
        // Release: see `Hv::scope_for_one`.
        hv.domains.fetch_sub(1, Ordering::Release);
        if privileged {
            self.dom0_reason = Some(reason);
        }
    }
}
