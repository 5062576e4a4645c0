//! `vcpu_op(cmd, vcpuid, arg)` (hypercall 24): `VCPUOP_initialise`, `up`, `down`, `is_up`, with
//! Xen 4.17's semantics (`common/domain.c` `do_vcpu_op`, `arch/x86/domain.c`
//! `arch_set_info_guest`):
//!
//! - every command first needs `vcpuid < nr_vcpus` (`-ENOENT`); other commands are `-ENOSYS`;
//! - `initialise` copies the `vcpu_guest_context` (`-EFAULT`), checks it (`-EINVAL`: a
//!   non-canonical address, an LDT that is misaligned or too long, more than 14 GDT frames),
//!   and installs it once (`-EEXIST` if the vCPU was initialised): first its GDT
//!   (`gdt_frames`/`gdt_ents`, taken exactly as `set_gdt` takes them, `pv::desc::install`),
//!   then its page-table bases; if either cannot be taken (`-EINVAL`) nothing is held and the
//!   vCPU stays uninitialised. The data selectors DS/ES/FS/GS come from `user_regs`
//!   (`pv::selectors` loads them when the vCPU first runs) and, as in Xen, a non-null FS
//!   selector zeroes `fs_base` and a non-null GS selector `gs_base_user`. The vCPU then stays
//!   down until `up` (`VGCF_online` is ignored);
//! - `up` of a vCPU never initialised is `-EINVAL`; otherwise it makes the vCPU runnable;
//! - `down` stops the vCPU at its next exit (at once if it is the caller); taking down the last
//!   vCPU that is up powers the domain off instead, as Xen does;
//! - `is_up` is 1 for an initialised vCPU that is not down.
//!
//! The target's context is touched only after `VcpuSlot::claim_init` made this CPU its owner;
//! everything else goes through the slot's atomic state word (`domain::vcpu`).

use abi::sched::SHUTDOWN_POWEROFF;
use abi::vcpu::{VGCF_IN_KERNEL, VGCF_SYSCALL_DISABLES_EVENTS, VcpuGuestContext};
use abi::vcpu_op::{VCPUOP_DOWN, VCPUOP_INITIALISE, VCPUOP_IS_UP, VCPUOP_UP};
use abi::{Errno, Wire};
use hvcore::frame::PageType;
use hvcore::hypercall::{guest_addr_ok, is_canonical};
use hvcore::mem::{Mfn, PhysMem};

use super::desc;
use super::hypercall::{Call, HcResult};
use super::regs::GuestRegs;
use super::selectors::DataSelectors;
use crate::domain::sched;
use crate::domain::vcpu::{Up, Vcpu};

/// `MMUEXT_SET_LDT`'s limit, which the context's LDT obeys too.
const LDT_MAX_ENTS: u64 = 8192;
/// L4 slot of the read-only M2P.
const M2P_SLOT: usize = abi::layout::M2P_L4_SLOT;

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn vcpu_op(c: &mut Call<'_, '_>, cmd: u64, vcpuid: u64, arg: u64) -> HcResult {
    // `unsigned int vcpuid` in the C ABI: the low 32 bits.
    let id = (vcpuid & 0xFFFF_FFFF) as usize;
    if id >= c.dom.nr_vcpus as usize {
        return Err(Errno::ENOENT);
    }
    match cmd as u32 {
        VCPUOP_INITIALISE => initialise(c, id, arg),
        VCPUOP_UP => match c.dom.vcpus[id].up() {
            Up::NotInitialised => Err(Errno::EINVAL),
            Up::Queued => {
                sched::push(crate::cpu::percpu::this_index(), c.dom, id);
                Ok(0)
            }
            Up::Already => Ok(0),
        },
        VCPUOP_DOWN => {
            let others_up = c
                .dom
                .slots()
                .iter()
                .enumerate()
                .any(|(i, s)| i != id && s.is_up());
            if !others_up {
                if c.dom.shut_down(SHUTDOWN_POWEROFF) {
                    info!("d{}: shutdown: poweroff (last vCPU down)", c.dom.id);
                }
                return Ok(0);
            }
            if let Some(cpu) = c.dom.vcpus[id].down() {
                sched::kick(cpu);
            }
            Ok(0)
        }
        VCPUOP_IS_UP => Ok(i64::from(c.dom.vcpus[id].is_up())),
        _ => Err(Errno::ENOSYS),
    }
}

/// The checks of `arch_set_info_guest` that need no reference.
fn check(ctx: &VcpuGuestContext) -> Result<(), Errno> {
    let r = &ctx.user_regs;
    let addresses = [
        r.rip,
        r.rsp,
        ctx.kernel_sp,
        ctx.fs_base,
        ctx.gs_base_kernel,
        ctx.gs_base_user,
        ctx.event_callback_eip,
        ctx.syscall_callback_eip,
        ctx.failsafe_callback_eip,
    ];
    let ldt_ok = ctx.ldt_ents == 0
        || (is_canonical(ctx.ldt_base)
            && guest_addr_ok(ctx.ldt_base)
            && ctx.ldt_base & 0xFFF == 0
            && ctx.ldt_ents <= LDT_MAX_ENTS);
    let traps_ok = ctx.trap_ctxt.iter().all(|t| is_canonical(t.address));
    // Xen's `nr_gdt_frames`: DIV_ROUND_UP of the 64-bit count, kept in an unsigned int.
    let gdt_frames = (ctx.gdt_ents.wrapping_add(511) / 512) as u32;
    let gdt_ok = gdt_frames as usize <= abi::selectors::FIRST_RESERVED_GDT_PAGE;
    if !addresses.iter().all(|&a| is_canonical(a)) || !ldt_ok || !traps_ok || !gdt_ok {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn initialise(c: &mut Call<'_, '_>, id: usize, arg: u64) -> HcResult {
    let mut bytes = [0u8; abi::vcpu::VCPU_GUEST_CONTEXT_SIZE];
    c.gm().read(arg, &mut bytes).map_err(|_| Errno::EFAULT)?;
    let ctx = VcpuGuestContext::read_from(&bytes).map_err(|_| Errno::EFAULT)?;
    check(&ctx)?;
    let slot = &c.dom.vcpus[id];
    if !slot.claim_init() {
        return Err(Errno::EEXIST);
    }
    // Xen's `pv_set_gdt` takes the count as an unsigned int (and refuses more than 7168).
    let gdt = desc::install(c.hv, c.dom, slot, &ctx.gdt_frames, ctx.gdt_ents as u32);
    let bases = gdt.and_then(|()| take_bases(c, &ctx));
    if gdt.is_ok() && bases.is_err() {
        desc::release(c.hv, c.dom.id, slot);
    }
    if let Ok((kernel, user)) = bases {
        // SAFETY: `claim_init` made this CPU the owner of vCPU `id`'s context (it is BUSY, and
        // not the caller, which is RUNNING); no other reference to it exists.
        let vcpu = unsafe { slot.ctx() };
        install(vcpu, &ctx);
        slot.set_kernel_l4(kernel);
        slot.set_user_l4(user);
    }
    slot.finish_init(bases.is_ok());
    bases.map(|_| 0)
}

/// Takes the kernel (and user) L4 references of the context, validating the tables if needed;
/// on failure nothing is held. Fills slot 256 like `MMUEXT_NEW_BASEPTR` does.
fn take_bases(c: &Call<'_, '_>, ctx: &VcpuGuestContext) -> Result<(u64, u64), Errno> {
    let hv = c.hv;
    let dctx = c.dom.ctx(&hv.slots);
    let strict = c.dom.vm_assist() & (1 << abi::vm_assist::VMASST_TYPE_M2P_STRICT) != 0;
    let take = |mfn: u64| {
        if mfn == 0 || mfn >= hv.mem.frames() as u64 {
            return Err(Errno::EINVAL);
        }
        hv.ft
            .get_page_and_type(&hv.mem, &dctx, Mfn(mfn), PageType::L4)
            .map_err(|_| Errno::EINVAL)
    };
    let kernel = ctx.kernel_l4_mfn();
    take(kernel)?;
    if !strict {
        hv.mem.write_entry(Mfn(kernel), M2P_SLOT, hv.slots.ro_m2p());
    }
    let user = ctx.user_l4_mfn().unwrap_or(0);
    if user != 0 {
        if let Err(e) = take(user) {
            if hv.ft.put_page_and_type(&hv.mem, Mfn(kernel)).is_err() {
                error!("d{}: dropping a kernel base reference failed", c.dom.id);
            }
            return Err(e);
        }
        if strict {
            hv.mem.write_entry(Mfn(user), M2P_SLOT, 0);
        }
    }
    Ok((kernel, user))
}

/// Copies a checked context into the vCPU (all of it: nothing of an earlier life survives).
fn install(vcpu: &mut Vcpu, ctx: &VcpuGuestContext) {
    let r = &ctx.user_regs;
    vcpu.reset();
    let i387 = ctx.flags & abi::vcpu::VGCF_I387_VALID != 0;
    vcpu.fpu.reset(i387.then_some(&ctx.fpu_ctxt));
    vcpu.regs = GuestRegs {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        cs: u64::from(r.cs),
        rflags: r.rflags,
        rsp: r.rsp,
        ss: u64::from(r.ss),
        ..GuestRegs::default()
    };
    vcpu.trap_table = ctx.trap_ctxt;
    vcpu.kernel_mode = ctx.flags & VGCF_IN_KERNEL != 0;
    vcpu.kernel_ss = ctx.kernel_ss | 3;
    vcpu.kernel_sp = ctx.kernel_sp;
    vcpu.event_callback = ctx.event_callback_eip;
    vcpu.failsafe_callback = ctx.failsafe_callback_eip;
    vcpu.syscall_callback = ctx.syscall_callback_eip;
    vcpu.syscall_masks_events = ctx.flags & VGCF_SYSCALL_DISABLES_EVENTS != 0;
    vcpu.selectors = DataSelectors {
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    };
    // Xen: "non-nul selector kills fs_base" (and the user GS base).
    vcpu.fs_base = if r.fs & !3 == 0 { ctx.fs_base } else { 0 };
    vcpu.gs_base_kernel = ctx.gs_base_kernel;
    vcpu.gs_base_user = if r.gs & !3 == 0 { ctx.gs_base_user } else { 0 };
    vcpu.ldt_base = ctx.ldt_base;
    vcpu.ldt_ents = ctx.ldt_ents as u32;
}
