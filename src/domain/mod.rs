//! Domains: building PV domains from boot modules, running their vCPUs on every CPU,
//! destroying them, and the frame-table audit that closes every run.
//!
//! | module | owns |
//! |---|---|
//! | `elf` | pure parser of ELF64 kernels and their Xen notes |
//! | `layout` | pure initial-layout arithmetic (Xen's dom0 builder) |
//! | `builder` | a domain from a kernel image |
//! | `dom` | `Domain`: fixed facts, shared state, dirty mask |
//! | `vcpu` | `Vcpu` contexts and their slots' scheduling state machine |
//! | `machine` | direct-map `PhysMem`, M2P, frame boxes, the `DomainCtx` |
//! | `flush` | the flush clock and shootdowns over IPIs, statistics |
//! | `sched`, `runq` | run queues, time slices, idle CPUs, starting and retiring a domain |
//! | `run` | running one vCPU on this CPU |
//! | `life` | destroy, audit references |
//! | `once` | write-once statics |
//! | `host_tests.rs` | host tests of `elf` and `layout`, compiled by xtask only |
//!
//! Life cycle: module 0 becomes domain 0 (privileged, `SIF_INITDOMAIN`), module `i` domain `i`
//! (unprivileged). Domains are built and run **one after another**, each on every CPU: the
//! BSP builds it, `sched::run_domain` runs its vCPUs on all CPUs until it shuts down or
//! crashes and retires it, then it is audited and destroyed (every frame back to the
//! allocator), and the next module is built. A module that is not a valid PV kernel is
//! reported (`argon: error: module N (path): why; domain N not created`) and skipped. At the
//! end the whole frame table is audited (`argon: audit: N discrepancies`), the shootdown
//! statistics are printed, and Argon exits with domain 0's verdict: poweroff (or no domain 0)
//! → success, anything else → failure.

pub mod builder;
pub mod dom;
pub mod elf;
pub mod flush;
pub mod layout;
pub mod life;
pub mod machine;
mod once;
pub mod run;
mod runq;
pub mod sched;
pub mod vcpu;

use core::sync::atomic::{AtomicBool, Ordering};

use abi::sched::SHUTDOWN_POWEROFF;
use boot::arch::qemu::ExitCode;
use boot::cmdline::{self, Options};
use boot::multiboot::BootInfo;
use hvcore::audit::{AuditScratch, ExtraRef};
use hvcore::domain::DomId;
use hvcore::frame::FrameTable;
use hvcore::mem::Mfn;
use smp::BootCell;

use crate::kmain::exit;
use crate::mem::BootMemory;
use dom::Domain;
use machine::{DirectMem, M2p, XenSlots};
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
}

impl Hv<'_> {
    /// Audits the whole frame table, counting `dom`'s out-of-table references; returns the
    /// number of discrepancies (printing the first few when `print`), or `None` if another
    /// audit is running. Meaningful only while no MMU operation is in flight.
    pub fn audit(&self, dom: Option<&Domain>, print: bool) -> Option<usize> {
        // Acquire: pairs with the Release below; the previous audit's scratch writes are done.
        if self.audit_busy.swap(true, Ordering::Acquire) {
            return None;
        }
        let found = self.audit_locked(dom, print);
        // Release: this audit's scratch writes happen-before the next audit's.
        self.audit_busy.store(false, Ordering::Release);
        Some(found)
    }

    fn audit_locked(&self, dom: Option<&Domain>, print: bool) -> usize {
        let mut extra = [ExtraRef {
            mfn: Mfn(0),
            ty: None,
        }; life::MAX_EXTRA];
        let n = dom.map_or(0, |d| life::extra_refs(d, &mut extra));
        let foreign_ok =
            |mapper: DomId, _owner: DomId| dom.is_some_and(|d| d.id == mapper && d.privileged);
        // SAFETY: `audit_busy` makes this the only audit running, so the scratch slice has no
        // other user until the flag drops.
        let scratch: &mut [AuditScratch] = unsafe { &mut **self.scratch.get() };
        let mut shown = 0;
        self.ft
            .audit_each(&self.mem, &extra[..n], scratch, foreign_ok, |f| {
                if print && shown < 16 {
                    error!("audit: {f:?}");
                    shown += 1;
                }
            })
    }
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
    };
    let Ok(hv) = HV.set(hv) else {
        exit(ExitCode::Failure, "failure (domains started twice)");
    };
    // SAFETY: on the BSP, interrupts off, after `cpu::init` set its GS base and TSS.
    unsafe { crate::pv::cpu_init() };
    let free_before = mem.alloc.free_count();
    let mut dom0_reason = None;
    let mut leaked = 0u64;
    for (i, m) in info.modules().enumerate() {
        let Ok(id) = DomId::try_from(i) else { break };
        let privileged = i == 0;
        let Some(dom) = build_module(hv, mem, options, i, id, m.cmdline, (m.start, m.end)) else {
            continue;
        };
        sched::run_domain(&dom);
        let reason = dom.shutdown_reason().unwrap_or(abi::sched::SHUTDOWN_CRASH);
        report_vcpus(&dom);
        let found = hv.audit(Some(&dom), true).unwrap_or(usize::MAX);
        info!("d{id}: audit at shutdown: {found} discrepancies");
        leaked += life::destroy(hv, &mut mem.alloc, dom);
        if privileged {
            dom0_reason = Some(reason);
        }
    }
    let found = hv.audit(None, true).unwrap_or(usize::MAX);
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
            let text = fmt_reason(&mut why, r);
            exit(ExitCode::Failure, text)
        }
    }
}

/// Builds the domain of boot module `i`; `None` (reported) if it cannot be.
fn build_module(
    hv: &Hv<'_>,
    mem: &mut BootMemory,
    options: &Options,
    i: usize,
    id: DomId,
    cmdline: &str,
    (start, end): (u64, u64),
) -> Option<machine::FrameBox<Domain>> {
    let (mc, _) = cmdline::parse_module(cmdline);
    let privileged = i == 0;
    let mem_bytes = if privileged {
        options.dom0_mem.or(mc.mem)
    } else {
        mc.mem
    };
    let vcpus = if privileged {
        options.dom0_max_vcpus.or(mc.vcpus)
    } else {
        mc.vcpus
    };
    let mut args = [0u8; 1024];
    let Ok(args_len) = mc.write_guest_args(&mut args) else {
        error!(
            "module {i} ({}): guest arguments too long; domain {id} not created",
            mc.path
        );
        return None;
    };
    let Some(image) = module_bytes(start, end) else {
        error!(
            "module {i} ({}): not in the direct map; domain {id} not created",
            mc.path
        );
        return None;
    };
    let spec = builder::BuildSpec {
        id,
        privileged,
        image,
        nr_pages: mem_bytes.unwrap_or(DEFAULT_MEM) / 4096,
        nr_vcpus: vcpus.unwrap_or(1),
        cmdline: &args[..args_len],
    };
    let dom = match builder::build(hv, &mut mem.alloc, &spec) {
        Ok(d) => d,
        Err(e) => {
            error!("module {i} ({}): {e}; domain {id} not created", mc.path);
            return None;
        }
    };
    info!(
        "d{id}: {}{} MiB, {} vCPU(s), from module {i} ({})",
        if privileged { "privileged, " } else { "" },
        spec.nr_pages >> 8,
        dom.nr_vcpus,
        mc.path
    );
    Some(dom)
}

/// One line per vCPU that ran: its hypercalls, continuations, shootdowns, preemptions and
/// migrations.
fn report_vcpus(dom: &Domain) {
    for (v, slot) in dom.slots().iter().enumerate() {
        let s = &slot.stats;
        // Relaxed: statistics of a retired domain.
        let get = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        if get(&s.hypercalls) == 0 {
            continue;
        }
        info!(
            "d{} vCPU {v}: {} hypercalls, {} continuations, {} shootdowns, {} preemptions, {} \
             migrations",
            dom.id,
            get(&s.hypercalls),
            get(&s.continuations),
            get(&s.shootdowns),
            get(&s.preemptions),
            get(&s.migrations)
        );
    }
}

/// `failure (d0 <reason>)` in `buf`.
fn fmt_reason(buf: &mut [u8; 48], reason: u32) -> &str {
    let name = crate::pv::reason_name(reason);
    let parts: [&[u8]; 3] = [b"failure (d0 ", name.as_bytes(), b")"];
    let mut n = 0;
    for p in parts {
        let take = p.len().min(buf.len() - n);
        buf[n..n + take].copy_from_slice(&p[..take]);
        n += take;
    }
    core::str::from_utf8(&buf[..n]).unwrap_or("failure")
}

/// A boot module's bytes through the direct map.
fn module_bytes(start: u64, end: u64) -> Option<&'static [u8]> {
    let len = usize::try_from(end.checked_sub(start)?).ok()?;
    if end > boot::arch::DIRECTMAP_SIZE {
        return None;
    }
    let va = boot::arch::phys_to_virt(start)?;
    // SAFETY: the module lies inside the direct map (checked) and is reserved from the frame
    // allocator for the whole run (`mem::BootMemory::init` keeps it out), so nothing writes it.
    Some(unsafe { core::slice::from_raw_parts(va as *const u8, len) })
}
