//! The `smp` suite's segment checks: a GDT given to `VCPUOP_initialise` (Xen's
//! `arch_set_info_guest` → `pv_set_gdt`, as Linux brings up its secondary vCPUs) and data
//! selectors kept per vCPU across context switches (Xen's `save_segments` / `load_segments`).
//!
//! vCPU 1 is brought up by `smp::vcpus_up` with a one-frame GDT, [`GDT`] (16 entries, a flat
//! DPL-3 data descriptor at entry 1, selector [`GDT_SEL`]): [`boot_gdt`] fills it and maps it
//! read-only, its only mapping, and it stays read-only — a descriptor frame of a live vCPU —
//! until the domain ends. Before that, [`initialise_gdt_refused`] checks the contexts Xen refuses
//! with that frame and vCPU 1 still uninitialised; vCPU 0 never has a GDT in this suite.
//!
//! Selector probes: `verr` (no fault: ZF says whether the selector is readable) guards every
//! load of a GDT selector on vCPU 1; vCPU 0 probes the selector it must not have under the `desc`
//! suite's #GP handler (`probes`). Each job loads the null selectors again before it returns.

use abi::Errno;
use abi::layout::PAGE_SHIFT;
use abi::selectors::FLAT_RING3_DS32;
use abi::uvmf::{UVMF_INVLPG, UVMF_LOCAL};
use abi::vcpu::xen_pfn_to_cr3;
use abi::vcpu_op::VCPUOP_INITIALISE;

use super::Page;
use super::desc::probes::{load_ds, with_gp_probes};
use crate::console::println;
use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure, ensure_eq};
use crate::hypercall;
use crate::smp::{self, BootGdt};

/// vCPU 1's boot GDT (module head).
static GDT: Page = Page::new();
/// A page the kernel keeps mapped writable, so it can never be a descriptor frame.
static WRITABLE: Page = Page::new();

/// Flat data, DPL 3, accessed.
const DATA_DPL3: u64 = 0x00CF_F300_0000_FFFF;
/// GDT entry 1 at RPL 3.
const GDT_SEL: u16 = 0x0B;
/// The boot GDT's entries (one frame).
const GDT_ENTS: u64 = 16;
/// The vCPU brought up with it.
const GDT_VCPU: usize = 1;
/// Leaf flags: present, accessed (read-only) / present, writable, accessed, dirty.
const PTE_RO: u64 = 0x021;
const PTE_RW: u64 = 0x063;
/// Yields per vCPU in the switching checks.
const ROUNDS: u32 = 32;

fn mfn_of(env: &Env, va: u64) -> Result<u64, Fail> {
    env.mfn_of(va)
        .ok_or_else(|| Fail::new(format_args!("no P2M entry for va {va:#x}")))
}

/// Points `page`'s VA at its own frame with `flags`.
fn remap(env: &Env, page: &Page, flags: u64) -> i64 {
    let Some(mfn) = env.mfn_of(page.va()) else {
        return Errno::EINVAL.ret();
    };
    // SAFETY: the VA maps `page`'s own frame before and after; only the permissions change,
    // and the kernel writes the page only while it is writable.
    unsafe {
        hypercall::update_va_mapping(
            page.va(),
            mfn << PAGE_SHIFT | flags,
            UVMF_INVLPG | UVMF_LOCAL,
        )
    }
}

/// Fills [`GDT`] and maps it read-only: the GDT `vcpus_up` brings vCPU 1 up with (none when
/// the domain has one vCPU). Call before vCPU 1 is initialised.
pub fn boot_gdt(env: &Env) -> Result<Option<BootGdt>, Fail> {
    if smp::available() <= GDT_VCPU {
        return Ok(None);
    }
    ensure_eq!(remap(env, &GDT, PTE_RW), 0, "mapping the GDT page writable");
    GDT.fill(0);
    GDT.write(usize::from(GDT_SEL >> 3), DATA_DPL3);
    ensure_eq!(
        remap(env, &GDT, PTE_RO),
        0,
        "mapping the GDT page read-only"
    );
    Ok(Some(BootGdt {
        vcpu: GDT_VCPU,
        frame: mfn_of(env, GDT.va())?,
        ents: GDT_ENTS,
        es: GDT_SEL,
    }))
}

/// `VCPUOP_initialise` refuses a context whose GDT cannot be taken, with `-EINVAL`, and holds
/// nothing of it (Xen's `arch_set_info_guest`: `pv_set_gdt` takes the frames like `set_gdt`,
/// and a later failure drops them): a frame mapped writable; a good frame followed by one
/// mapped writable; 7169 entries (15 frames); a good GDT with a data page as the L4. After each,
/// the good frame maps writable again, and vCPU 1 stays uninitialised. Runs before `vcpus_up`.
pub fn initialise_gdt_refused(env: &Env) -> Outcome {
    if smp::available() <= GDT_VCPU {
        println!("guest: info initialise_gdt_refused needs 2 vCPUs; skipped");
        return Ok(());
    }
    if smp::nr() > 1 {
        println!("guest: info initialise_gdt_refused: vCPU 1 already runs; skipped");
        return Ok(());
    }
    let good = boot_gdt(env)?
        .ok_or_else(|| Fail::new(format_args!("no boot GDT")))?
        .frame;
    let writable = mfn_of(env, WRITABLE.va())?;
    let data = mfn_of(env, env.si_va)?;
    let cases: [(&[u64], u64, bool, &str); 4] = [
        (&[writable], GDT_ENTS, false, "a GDT frame mapped writable"),
        (
            &[good, writable],
            1024,
            false,
            "a good GDT frame, then one mapped writable",
        ),
        (&[good; 15], 7169, false, "7169 GDT entries"),
        (&[good], GDT_ENTS, true, "a good GDT and a data page as L4"),
    ];
    for (frames, ents, bad_l4, what) in cases {
        let mut ctx = smp::context(env, GDT_VCPU)?;
        ctx.gdt_frames[..frames.len()].copy_from_slice(frames);
        ctx.gdt_ents = ents;
        if bad_l4 {
            ctx.ctrlreg[3] = xen_pfn_to_cr3(data);
        }
        // SAFETY: the hypervisor must refuse the context, so vCPU 1 does not start; were it
        // accepted, it would wait down (no VCPUOP_up) and `vcpus_up` would report -EEXIST.
        let rc = unsafe {
            hypercall::vcpu_op(VCPUOP_INITIALISE, GDT_VCPU as u32, &raw const ctx as u64)
        };
        ensure_eq!(rc, Errno::EINVAL.ret(), "initialise(1) with {what}");
        ensure_eq!(
            remap(env, &GDT, PTE_RW),
            0,
            "GDT frame writable after {what}: a reference was kept"
        );
        ensure_eq!(remap(env, &GDT, PTE_RO), 0, "GDT frame read-only again");
    }
    ensure_eq!(
        hypercall::vcpu_is_up(GDT_VCPU as u32),
        0,
        "is_up(1) after the refusals"
    );
    Ok(())
}

/// DS, ES, FS, GS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Selectors {
    ds: u16,
    es: u16,
    fs: u16,
    gs: u16,
}

const NULL: Selectors = Selectors {
    ds: 0,
    es: 0,
    fs: 0,
    gs: 0,
};

/// The selectors live on this vCPU.
fn read_selectors() -> Selectors {
    let (ds, es, fs, gs): (u16, u16, u16, u16);
    // SAFETY: reading segment registers has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {ds:x}, ds",
            "mov {es:x}, es",
            "mov {fs:x}, fs",
            "mov {gs:x}, gs",
            ds = out(reg) ds,
            es = out(reg) es,
            fs = out(reg) fs,
            gs = out(reg) gs,
            options(nomem, nostack, preserves_flags),
        );
    }
    Selectors { ds, es, fs, gs }
}

/// Loads `s`.
///
/// # Safety
///
/// Each selector must load on this vCPU (null, a flat ring-3 selector, or one `verr` accepted
/// on this vCPU's GDT). The kernel addresses nothing through DS/ES (64-bit mode) or FS/GS.
unsafe fn load_selectors(s: Selectors) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "mov ds, {ds:x}",
            "mov es, {es:x}",
            "mov fs, {fs:x}",
            "mov gs, {gs:x}",
            ds = in(reg) s.ds,
            es = in(reg) s.es,
            fs = in(reg) s.fs,
            gs = in(reg) s.gs,
            options(nostack, preserves_flags),
        );
    }
}

/// `verr`: would `sel` load as a readable segment here? Never faults for a GDT it can read.
fn readable(sel: u16) -> bool {
    let ok: u8;
    // SAFETY: `verr` only reads the descriptor and sets ZF.
    unsafe {
        core::arch::asm!(
            "verr {sel:x}",
            "setz {ok}",
            sel = in(reg) sel,
            ok = out(reg_byte) ok,
            options(nostack),
        );
    }
    ok != 0
}

/// vCPU 1, brought up with its GDT and [`GDT_SEL`] in the context's `es`, started with that
/// %es (the hypervisor loaded it from the context, with the GDT in place); it loads the
/// selector into %ds and still holds it after a yield (so a hypervisor reloads it only once
/// that vCPU's GDT is in place), round after round, while vCPU 0, with no GDT, gets #GP
/// (error 0x08) for the same selector: each vCPU has its own GDT.
pub fn secondary_gdt_selector(_env: &Env) -> Outcome {
    if smp::nr() <= GDT_VCPU {
        println!("guest: info secondary_gdt_selector needs 2 vCPUs; skipped");
        return Ok(());
    }
    ensure_eq!(
        smp::entry_es(GDT_VCPU),
        GDT_SEL,
        "vCPU 1's %es at its first instruction (its context's es)"
    );
    smp::run_on_all(|id, _| match id {
        0 => with_gp_probes(|| {
            for r in 0..ROUNDS {
                ensure_eq!(
                    load_ds(GDT_SEL),
                    Err(0x08),
                    "vCPU 0 round {r}: {GDT_SEL:#x}"
                );
                hypercall::sched_yield();
            }
            Ok(())
        }),
        GDT_VCPU => {
            let mut out = Ok(());
            for r in 0..ROUNDS {
                if !readable(GDT_SEL) {
                    out = Err(Fail::new(format_args!(
                        "round {r}: verr {GDT_SEL:#x} fails"
                    )));
                    break;
                }
                let want = Selectors {
                    ds: GDT_SEL,
                    ..NULL
                };
                // SAFETY: null selectors, and one `verr` just accepted on this vCPU's GDT.
                unsafe { load_selectors(want) };
                hypercall::sched_yield();
                let got = read_selectors();
                if got != want {
                    out = Err(Fail::new(format_args!("round {r}: {got:x?} after a yield")));
                    break;
                }
            }
            // SAFETY: null selectors always load.
            unsafe { load_selectors(NULL) };
            out.map_err(|f| smp::fail(Fail::new(format_args!("vCPU 1 {}", f.as_str()))))
        }
        _ => Ok(()),
    })
}

/// Every vCPU loads its own data selectors — the flat FLAT_RING3_DS32 (0xe02b) in some, null
/// in the others, vCPU 1 its GDT's [`GDT_SEL`] in %es — then yields again and again: with
/// more vCPUs than CPUs others run on its CPU meanwhile, and its selectors must survive.
pub fn selectors_survive_switches(_env: &Env) -> Outcome {
    smp::run_on_all(|id, _| {
        let (a, b) = if id % 2 == 0 {
            (FLAT_RING3_DS32, 0)
        } else {
            (0, FLAT_RING3_DS32)
        };
        let gdt = id == GDT_VCPU && readable(GDT_SEL);
        let want = Selectors {
            ds: b,
            es: if gdt { GDT_SEL } else { a },
            fs: a,
            gs: b,
        };
        // SAFETY: null, the flat ring-3 data selector, and one `verr` accepted here.
        unsafe { load_selectors(want) };
        let mut out = Ok(());
        for r in 0..ROUNDS {
            hypercall::sched_yield();
            let got = read_selectors();
            if got != want {
                out = Err(smp::fail(Fail::new(format_args!(
                    "vCPU {id} round {r}: {got:x?}, loaded {want:x?}"
                ))));
                break;
            }
        }
        // SAFETY: null selectors always load.
        unsafe { load_selectors(NULL) };
        ensure!(
            id != GDT_VCPU || gdt,
            "vCPU 1 cannot read its GDT's selector"
        );
        out
    })
}
