//! Boot modules as domains: building the domain of one module (its command line, memory and
//! vCPUs), the per-vCPU report printed when a domain ends, and the text of domain 0's verdict.

use core::sync::atomic::Ordering;

use boot::cmdline::{self, Options};
use hvcore::domain::DomId;

use super::dom::Domain;
use super::machine::FrameBox;
use super::{DEFAULT_MEM, Hv, builder};
use crate::mem::BootMemory;

/// Builds the domain of boot module `i`; `None` (reported) if it cannot be.
pub fn build(
    hv: &Hv<'_>,
    mem: &mut BootMemory,
    options: &Options,
    i: usize,
    id: DomId,
    cmdline: &str,
    (start, end): (u64, u64),
) -> Option<FrameBox<Domain>> {
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
pub fn report_vcpus(dom: &Domain) {
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
pub fn fmt_reason(buf: &mut [u8; 48], reason: u32) -> &str {
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
