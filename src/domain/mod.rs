//! Domains: building PV domains from boot modules, running them, destroying them, and the
//! frame-table audit that closes every run.
//!
//! | module | owns |
//! |---|---|
//! | `elf` | pure parser of ELF64 kernels and their Xen notes |
//! | `layout` | pure initial-layout arithmetic (Xen's dom0 builder) |
//! | `builder` | a domain from a kernel image |
//! | `dom` | `Domain` / `Vcpu` state |
//! | `machine` | direct-map `PhysMem`, M2P, frame boxes, the `DomainCtx` |
//! | `run` | the vCPU loop |
//! | `life` | destroy, audit references |
//! | `host_tests.rs` | host tests of `elf` and `layout`, compiled by xtask only |
//!
//! Life cycle: module 0 becomes domain 0 (privileged, `SIF_INITDOMAIN`), module `i` domain `i`
//! (unprivileged). Domains are built and run **one after another** on the bootstrap CPU: each
//! runs until it shuts down or crashes, is audited and destroyed (every frame back to the
//! allocator), then the next module is built. A module that is not a valid PV kernel is
//! reported (`argon: error: module N (path): why; domain N not created`) and skipped. At the
//! end the whole frame table is audited (`argon: audit: N discrepancies`) and Argon exits with
//! domain 0's verdict: poweroff (or no domain 0) → success, anything else → failure.

pub mod builder;
pub mod dom;
pub mod elf;
pub mod layout;
pub mod life;
pub mod machine;
pub mod run;

use core::cell::RefCell;

use abi::sched::SHUTDOWN_POWEROFF;
use boot::arch::qemu::ExitCode;
use boot::cmdline::{self, Options};
use boot::multiboot::BootInfo;
use hvcore::audit::{AuditScratch, ExtraRef};
use hvcore::domain::DomId;
use hvcore::flush::FlushClock;
use hvcore::frame::FrameTable;
use hvcore::mem::Mfn;

use crate::kmain::exit;
use crate::mem::BootMemory;
use dom::Domain;
use machine::{DirectMem, M2p, XenSlots};

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
    scratch: RefCell<&'static mut [AuditScratch]>,
}

impl Hv<'_> {
    /// Audits the whole frame table, counting `dom`'s out-of-table references; returns the
    /// number of discrepancies (printing the first few when `print`).
    pub fn audit(&self, dom: Option<&Domain>, print: bool) -> usize {
        let mut extra = [ExtraRef {
            mfn: Mfn(0),
            ty: None,
        }; life::MAX_EXTRA];
        let n = dom.map_or(0, |d| life::extra_refs(d, &mut extra));
        let foreign_ok =
            |mapper: DomId, _owner: DomId| dom.is_some_and(|d| d.id == mapper && d.privileged);
        let Ok(mut scratch) = self.scratch.try_borrow_mut() else {
            return usize::MAX;
        };
        let mut shown = 0;
        self.ft
            .audit_each(&self.mem, &extra[..n], &mut scratch, foreign_ok, |f| {
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
    let clock = FlushClock::new();
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
        ft: FrameTable::new(mem.frame_table, &clock),
        mem: DirectMem::new(mem.max_frame),
        m2p,
        slots,
        linear_pt: options.linear_pt,
        scratch: RefCell::new(scratch),
    };
    // SAFETY: on the BSP, interrupts off, after `cpu::init` set the GS base.
    if let Err(why) = unsafe { crate::pv::cpu_init() } {
        error!("{why}");
        exit(ExitCode::Failure, "failure (guest entry setup)");
    }
    let free_before = mem.alloc.free_count();
    let mut dom0_reason = None;
    let mut leaked = 0u64;
    for (i, m) in info.modules().enumerate() {
        let Ok(id) = DomId::try_from(i) else { break };
        let (mc, _) = cmdline::parse_module(m.cmdline);
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
            continue;
        };
        let Some(image) = module_bytes(m.start, m.end) else {
            error!(
                "module {i} ({}): not in the direct map; domain {id} not created",
                mc.path
            );
            continue;
        };
        let spec = builder::BuildSpec {
            id,
            privileged,
            image,
            nr_pages: mem_bytes.unwrap_or(DEFAULT_MEM) / 4096,
            nr_vcpus: vcpus.unwrap_or(1),
            cmdline: &args[..args_len],
        };
        let mut dom = match builder::build(&hv, &mut mem.alloc, &spec) {
            Ok(d) => d,
            Err(e) => {
                error!("module {i} ({}): {e}; domain {id} not created", mc.path);
                continue;
            }
        };
        info!(
            "d{id}: {}{} MiB, {} vCPU(s), from module {i} ({})",
            if privileged { "privileged, " } else { "" },
            spec.nr_pages >> 8,
            dom.nr_vcpus,
            mc.path
        );
        if dom.nr_vcpus > 1 {
            warn!("d{id}: only vCPU 0 runs (secondary vCPUs are not brought up yet)");
        }
        run::run(&hv, &mut dom);
        let reason = dom.shutdown_reason().unwrap_or(abi::sched::SHUTDOWN_CRASH);
        let found = hv.audit(Some(&dom), true);
        info!("d{id}: audit at shutdown: {found} discrepancies");
        leaked += life::destroy(&hv, &mut mem.alloc, dom);
        if privileged {
            dom0_reason = Some(reason);
        }
    }
    let found = hv.audit(None, true);
    info!("audit: {found} discrepancies");
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
