//! Exceptions and the guest kernel's entry points: the virtual IDT (`set_trap_table`),
//! callbacks (`set_callbacks`, `callback_op`), the kernel stack (`stack_switch`), segment bases
//! (`set_segment_base`), bounce frames, `iret`, and what happens to a guest exception or a
//! user-mode `syscall` (spec §6.1–6.2).
//!
//! Bounce frame (Xen's exact layout, `abi::frames::BounceFrame`): rcx, r11, [error code], rip,
//! cs (saved upcall mask in bits 39..32; RPL cleared when the guest kernel was interrupted),
//! rflags (IF = !saved mask), rsp, ss — pushed below the interrupted rsp (or `kernel_sp` coming
//! from user mode), 16-byte aligned, through the checked accessor. The handler then runs in
//! kernel mode on that frame with flat kernel selectors.
//!
//! Invariants: an exception with no handler, a bounce frame that cannot be written, an `iret`
//! frame that cannot be read or names bad selectors, all crash the *domain* with a log line and
//! a register dump; the hypervisor carries on. Every address loaded into an MSR or returned to
//! is checked canonical first (a non-canonical `rip` never reaches iretq/sysretq: XSA-7).

use abi::callback::{
    CALLBACKF_MASK_EVENTS, CALLBACKOP_REGISTER, CALLBACKOP_UNREGISTER, CALLBACKTYPE_EVENT,
    CALLBACKTYPE_FAILSAFE, CALLBACKTYPE_NMI, CALLBACKTYPE_SYSCALL, CallbackRegister,
    CallbackUnregister,
};
use abi::frames::{BounceFrame, IretContext, VGCF_IN_SYSCALL};
use abi::segbase::{SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER};
use abi::{Errno, TrapInfo};

use super::hypercall::{Call, HcResult, Outcome};
use hvcore::hypercall::is_canonical as canonical;

use super::regs::RFLAGS_TF;
use crate::arch::gdt::{FLAT_RING3_CS64, FLAT_RING3_DS};
use crate::arch::trap::exception_name;
use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::domain::vcpu::Vcpu;

const EFAULT: Errno = Errno::EFAULT;
const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS cleared when a handler is entered: TF, NT, RF, VM.
const HANDLER_CLEARS: u64 = RFLAGS_TF | (1 << 14) | (1 << 16) | (1 << 17);
/// Vectors whose exceptions push an error code.
const HAS_ERROR_CODE: [u64; 8] = [8, 10, 11, 12, 13, 14, 17, 21];
/// #UD.
const VECTOR_UD: u64 = 6;
/// #NM (device not available): the guest used x87/SSE with its virtual CR0.TS set.
const VECTOR_NM: u64 = 7;
/// #GP.
const VECTOR_GP: u64 = 13;
/// #PF.
const VECTOR_PF: u64 = 14;
/// #PF error code: the access came from user mode.
const PFEC_USER: u64 = 1 << 2;

/// `set_trap_table(table)`: installs entries until one with address 0; a null `table` clears
/// the whole virtual IDT.
pub fn set_trap_table(c: &mut Call<'_, '_>, table: u64) -> HcResult {
    if table == 0 {
        c.vcpu().trap_table = [TrapInfo::default(); 256];
        return Ok(0);
    }
    for i in 0..256u64 {
        let ti: TrapInfo = c.gm().read_wire(table + i * 16).map_err(|_| EFAULT)?;
        if ti.is_terminator() {
            break;
        }
        c.vcpu().trap_table[usize::from(ti.vector)] = ti;
    }
    Ok(0)
}

/// `stack_switch(ss, sp)`: the kernel stack for later user → kernel transitions.
pub fn stack_switch(c: &mut Call<'_, '_>, ss: u64, sp: u64) -> HcResult {
    let v = c.vcpu();
    v.kernel_ss = ss | 3;
    v.kernel_sp = sp;
    Ok(0)
}

/// `set_callbacks(event, failsafe, syscall)` (the pre-`callback_op` form).
pub fn set_callbacks(c: &mut Call<'_, '_>, event: u64, failsafe: u64, syscall: u64) -> HcResult {
    let v = c.vcpu();
    v.event_callback = event;
    v.failsafe_callback = failsafe;
    v.syscall_callback = syscall;
    v.syscall_masks_events = false;
    Ok(0)
}

/// `callback_op(cmd, arg)`.
pub fn callback_op(c: &mut Call<'_, '_>, cmd: u64, arg: u64) -> HcResult {
    match cmd as u32 {
        CALLBACKOP_REGISTER => {
            let r: CallbackRegister = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            let v = c.vcpu();
            match r.kind {
                CALLBACKTYPE_EVENT => v.event_callback = r.address,
                CALLBACKTYPE_FAILSAFE => v.failsafe_callback = r.address,
                CALLBACKTYPE_SYSCALL => {
                    v.syscall_callback = r.address;
                    v.syscall_masks_events = r.flags & CALLBACKF_MASK_EVENTS != 0;
                }
                CALLBACKTYPE_NMI => {}
                _ => return Err(Errno::EINVAL),
            }
            Ok(0)
        }
        CALLBACKOP_UNREGISTER => {
            let r: CallbackUnregister = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if r.kind == CALLBACKTYPE_NMI {
                Ok(0)
            } else {
                Err(Errno::EINVAL)
            }
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `set_segment_base(which, base)`: FS and the two GS bases (the user GS selector is not
/// supported: `-ENOSYS`).
pub fn set_segment_base(c: &mut Call<'_, '_>, which: u64, base: u64) -> HcResult {
    if !canonical(base) {
        return Err(Errno::EINVAL);
    }
    let v = c.vcpu();
    match which as u32 {
        SEGBASE_FS => {
            v.fs_base = base;
            super::load_segment_bases(base, super::guest_gs_base());
        }
        SEGBASE_GS_USER => v.gs_base_user = base,
        SEGBASE_GS_KERNEL => {
            v.gs_base_kernel = base;
            super::load_segment_bases(super::guest_fs_base(), base);
        }
        3 => return Err(Errno::ENOSYS),
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// Switches the running vCPU between guest kernel and user mode: swaps the GS bases (the live
/// one is in KERNEL_GS_BASE while the hypervisor runs); the live FS base stays (it is
/// `vcpu.fs_base` only until the guest loads an FS selector). The run loop loads the matching
/// CR3.
fn toggle_mode(vcpu: &mut Vcpu) {
    let live = super::guest_gs_base();
    let fs = super::guest_fs_base();
    if vcpu.kernel_mode {
        vcpu.gs_base_kernel = live;
        super::load_segment_bases(fs, vcpu.gs_base_user);
    } else {
        vcpu.gs_base_user = live;
        super::load_segment_bases(fs, vcpu.gs_base_kernel);
    }
    vcpu.kernel_mode = !vcpu.kernel_mode;
}

/// `iret`: returns from a bounce using the 9-word frame at the guest's rsp.
pub fn iret(c: &mut Call<'_, '_>) -> Outcome {
    let rsp = c.vcpu().regs.rsp;
    let frame: IretContext = match c.gm().read_wire(rsp) {
        Ok(f) => f,
        Err(f) => {
            c.crash(format_args!(
                "iret frame at {rsp:#x} unreadable ({:#x})",
                f.va
            ));
            return Outcome::Resumed;
        }
    };
    if frame.cs & 3 == 3 {
        if c.dom.vcpus[c.v].user_l4() == 0 {
            c.crash(format_args!("iret to user mode with no user page tables"));
            return Outcome::Resumed;
        }
        toggle_mode(c.vcpu());
    }
    let regs = &mut c.vcpu().regs;
    // Selectors are 16 bits: a bounce frame's CS word also carries the saved upcall mask in
    // bits 39..32, which guests hand back unchanged.
    regs.rip = frame.rip;
    regs.cs = u64::from(frame.cs as u16 | 3);
    regs.rflags = (frame.rflags & !(0x3000 | (1 << 17))) | RFLAGS_IF;
    regs.rsp = frame.rsp;
    regs.ss = u64::from(frame.ss as u16 | 3);
    regs.rax = frame.rax;
    if frame.flags & VGCF_IN_SYSCALL == 0 {
        regs.r11 = frame.r11;
        regs.rcx = frame.rcx;
    } else {
        regs.r11 = regs.rflags;
        regs.rcx = regs.rip;
    }
    let masked = frame.rflags & RFLAGS_IF == 0;
    c.dom.set_upcall_mask(c.v, masked);
    Outcome::Resumed
}

/// Pushes a bounce frame for the interrupted context of vCPU `v` and points it at `handler`.
fn bounce(
    hv: &Hv<'_>,
    dom: &Domain,
    v: usize,
    vcpu: &mut Vcpu,
    handler: u64,
    error: Option<u32>,
    mask: bool,
) {
    let from_user = !vcpu.kernel_mode;
    if from_user {
        toggle_mode(vcpu);
    }
    let saved_mask = dom.upcall_mask(v);
    let r = vcpu.regs;
    let top = if from_user { vcpu.kernel_sp } else { r.rsp };
    let if_flag = if saved_mask == 0 { RFLAGS_IF } else { 0 };
    let frame = BounceFrame {
        rcx: r.rcx,
        r11: r.r11,
        error_code: error,
        rip: r.rip,
        cs: if from_user {
            r.cs as u16
        } else {
            r.cs as u16 & !3
        },
        saved_upcall_mask: saved_mask,
        rflags: (r.rflags & !RFLAGS_IF) | if_flag,
        rsp: r.rsp,
        ss: r.ss as u16,
    };
    let base = frame.base(top);
    let words = frame.encode();
    let mut bytes = [0u8; 64];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let kernel_l4 = dom.vcpus[v].kernel_l4();
    let gm = super::guestmem::GuestMem::new(&hv.ft, &hv.mem, kernel_l4, dom.ctx(&hv.slots));
    if let Err(f) = gm.write(base, &bytes[..frame.words() * 8]) {
        dom.crash(
            v,
            vcpu,
            format_args!("cannot write a bounce frame at {base:#x} ({:#x})", f.va),
        );
        return;
    }
    if mask {
        dom.set_upcall_mask(v, true);
    }
    let regs = &mut vcpu.regs;
    regs.rip = handler;
    regs.cs = u64::from(FLAT_RING3_CS64);
    regs.ss = u64::from(FLAT_RING3_DS);
    regs.rsp = base;
    regs.rflags &= !HANDLER_CLEARS;
}

/// A guest exception (vector, error and cr2 in the vCPU's registers): a #GP the hypervisor
/// emulates (`emul`) or a #PF it emulates as a page-table write (`ptwr`) is done with; anything
/// else is bounced to the guest's handler, or the domain crashes if there is none.
pub fn exception(hv: &Hv<'_>, dom: &Domain, v: usize, vcpu: &mut Vcpu) {
    if vcpu.regs.vector == VECTOR_GP && super::emul::privileged_op(hv, dom, v, vcpu) {
        return;
    }
    if vcpu.regs.vector == VECTOR_PF && super::ptwr::page_fault(hv, dom, v, vcpu) {
        return;
    }
    if vcpu.regs.vector == VECTOR_NM && !super::fpu::device_not_available(&mut vcpu.fpu) {
        return;
    }
    let r = vcpu.regs;
    let vector = r.vector;
    let ti = vcpu
        .trap_table
        .get(vector as usize)
        .copied()
        .unwrap_or_default();
    if ti.address == 0 || !canonical(ti.address) {
        let name = exception_name(vector);
        let what = if vcpu.kernel_mode { "kernel" } else { "user" };
        dom.crash(
            v,
            vcpu,
            format_args!(
                "{name} in guest {what} mode at rip {:#x} (error {:#x}, cr2 {:#x}), no handler",
                r.rip, r.error, r.cr2
            ),
        );
        return;
    }
    let mut error = r.error;
    if vector == VECTOR_PF {
        vcpu.cr2 = r.cr2;
        dom.set_guest_cr2(v, r.cr2);
        // The hardware always reports a user access (the guest runs at CPL 3); the guest sees
        // the U bit for its user mode only, as under Xen.
        error &= !PFEC_USER;
        if !vcpu.kernel_mode {
            error |= PFEC_USER;
        }
    }
    let error = HAS_ERROR_CODE.contains(&vector).then_some(error as u32);
    bounce(hv, dom, v, vcpu, ti.address, error, ti.clears_events());
}

/// `syscall` from guest user mode: delivered to the kernel's syscall callback (never a
/// hypercall); without one, as #UD.
pub fn user_syscall(hv: &Hv<'_>, dom: &Domain, v: usize, vcpu: &mut Vcpu) {
    let (callback, mask) = (vcpu.syscall_callback, vcpu.syscall_masks_events);
    if callback == 0 || !canonical(callback) {
        vcpu.regs.vector = VECTOR_UD;
        vcpu.regs.error = 0;
        return exception(hv, dom, v, vcpu);
    }
    bounce(hv, dom, v, vcpu, callback, None, mask);
}
