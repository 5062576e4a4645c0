//! The hypercall dispatcher: number → handler, `multicall`, and the conversion of every result
//! to the guest's `rax` (spec §6.2).
//!
//! Invariants: a hypercall comes only from guest kernel mode (the run loop sends a user-mode
//! `syscall` to the guest's syscall callback instead); unknown numbers and known-but-missing
//! operations return `-ENOSYS`; handlers report failures as `Errno`, converted here, once; every
//! guest pointer is read or written through [`Call::gm`], the checked accessor. Registers other
//! than `rax` are left as the guest had them (the hypercall page's stubs save `rcx`/`r11`).

use abi::Errno;
use abi::hypercall::Hypercall;
use abi::multicall::{MULTICALL_ARGS_USED, MULTICALL_RESULT_OFFSET, MulticallEntry};

use super::guestmem::GuestMem;
use super::{desc, mmu, ops, traps, vcpu_op};
use crate::domain::Hv;
use crate::domain::dom::Domain;
use crate::domain::vcpu::Vcpu;

/// What a handler did with the vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Return this value in `rax`.
    Ret(i64),
    /// The handler set the whole frame itself (`iret`, a bounce): leave `rax` alone.
    Resumed,
}

/// A handler's result: a value (≥ 0) or an error number.
pub type HcResult = Result<i64, Errno>;

/// One hypercall in progress: the machine, the calling domain, its vCPU `v` (whose context this
/// CPU owns while the vCPU runs here) and whether it is a multicall entry.
pub struct Call<'c, 'h> {
    pub hv: &'c Hv<'h>,
    pub dom: &'c Domain,
    pub v: usize,
    vcpu: &'c mut Vcpu,
    /// Inside a `multicall`: no continuations.
    pub nested: bool,
}

impl<'c, 'h> Call<'c, 'h> {
    /// A call on behalf of vCPU `v` of `dom`, whose context `vcpu` this CPU owns (the
    /// dispatcher's, and an emulated instruction's that acts as a hypercall).
    pub fn new(hv: &'c Hv<'h>, dom: &'c Domain, v: usize, vcpu: &'c mut Vcpu) -> Self {
        Call {
            hv,
            dom,
            v,
            vcpu,
            nested: false,
        }
    }

    /// The calling vCPU.
    pub fn vcpu(&mut self) -> &mut Vcpu {
        self.vcpu
    }

    /// The calling vCPU's address space, through its current page-table base.
    pub fn gm(&self) -> GuestMem<'_> {
        let l4 = self.dom.vcpus[self.v].base(self.vcpu.kernel_mode);
        GuestMem::new(&self.hv.ft, &self.hv.mem, l4, self.dom.ctx(&self.hv.slots))
    }

    /// Kills the calling domain with a dump of the calling vCPU.
    pub fn crash(&self, why: core::fmt::Arguments<'_>) {
        self.dom.crash(self.v, self.vcpu, why);
    }
}

/// Handles the hypercall the vCPU `v` of `dom` just made (number in `rax`).
pub fn dispatch(hv: &Hv<'_>, dom: &Domain, v: usize, vcpu: &mut Vcpu) {
    let regs = vcpu.regs;
    let mut c = Call::new(hv, dom, v, vcpu);
    if let Outcome::Ret(ret) = call(&mut c, regs.rax, regs.args()) {
        c.vcpu().regs.rax = ret as u64;
    }
}

fn ret(r: HcResult) -> Outcome {
    Outcome::Ret(r.unwrap_or_else(Errno::ret))
}

/// Runs hypercall `nr` with arguments `a` (`c.nested` inside a multicall).
fn call(c: &mut Call<'_, '_>, nr: u64, a: [u64; 5]) -> Outcome {
    let nested = c.nested;
    let Some(h) = Hypercall::from_u64(nr) else {
        return Outcome::Ret(Errno::ENOSYS.ret());
    };
    let (a0, a1, a2, a3) = (a[0], a[1], a[2], a[3]);
    match h {
        Hypercall::SetTrapTable => ret(traps::set_trap_table(c, a0)),
        Hypercall::SetGdt => ret(desc::set_gdt(c, a0, a1)),
        Hypercall::MmuUpdate => mmu_ret(mmu::mmu_update(c, a0, a1, a2, a3), c, nr, nested),
        Hypercall::StackSwitch => ret(traps::stack_switch(c, a0, a1)),
        Hypercall::FpuTaskswitch => {
            super::fpu::taskswitch(&mut c.vcpu().fpu, a0 != 0);
            ret(Ok(0))
        }
        Hypercall::SetCallbacks => ret(traps::set_callbacks(c, a0, a1, a2)),
        Hypercall::UpdateDescriptor => ret(desc::update_descriptor(c, a0, a1)),
        Hypercall::MemoryOp => ret(ops::memory_op(c, a0, a1)),
        Hypercall::Multicall if !nested => ret(multicall(c, a0, a1)),
        Hypercall::UpdateVaMapping => mmu_ret(mmu::update_va_mapping(c, a0, a1, a2), c, nr, nested),
        Hypercall::UpdateVaMappingOtherdomain => mmu_ret(
            mmu::update_va_mapping_otherdomain(c, a0, a1, a2, a3),
            c,
            nr,
            nested,
        ),
        Hypercall::XenVersion => ret(ops::xen_version(c, a0, a1)),
        Hypercall::ConsoleIo => ret(ops::console_io(c, a0, a1, a2)),
        Hypercall::VmAssist => ret(ops::vm_assist(c, a0, a1)),
        Hypercall::Iret if !nested => traps::iret(c),
        Hypercall::VcpuOp => ret(vcpu_op::vcpu_op(c, a0, a1, a2)),
        Hypercall::SetSegmentBase => ret(traps::set_segment_base(c, a0, a1)),
        Hypercall::MmuextOp => mmu_ret(mmu::mmuext_op(c, a0, a1, a2, a3), c, nr, nested),
        Hypercall::SchedOp => ret(ops::sched_op(c, a0, a1)),
        Hypercall::CallbackOp => ret(traps::callback_op(c, a0, a1)),
        Hypercall::ArgonAudit => ret(ops::argon_audit(c)),
        Hypercall::Multicall | Hypercall::Iret => Outcome::Ret(Errno::EINVAL.ret()),
        _ => Outcome::Ret(Errno::ENOSYS.ret()),
    }
}

/// The result of an MMU hypercall: a value, an error (converted once, here), or a continuation
/// (spec §3.6): the argument registers advanced, `rax` the hypercall again and `rip` back on
/// the `syscall`, so the guest re-issues it. Inside a multicall there are no continuations.
fn mmu_ret(r: hvcore::hypercall::HcResult, c: &mut Call<'_, '_>, nr: u64, nested: bool) -> Outcome {
    match r {
        hvcore::hypercall::HcResult::Done(Ok(v)) => Outcome::Ret(v),
        hvcore::hypercall::HcResult::Done(Err(e)) => Outcome::Ret(e.errno().ret()),
        hvcore::hypercall::HcResult::Continue(_) if nested => Outcome::Ret(Errno::EINVAL.ret()),
        hvcore::hypercall::HcResult::Continue(k) => {
            crate::domain::vcpu::VcpuStats::bump(&c.dom.vcpus[c.v].stats.continuations);
            let regs = &mut c.vcpu().regs;
            [regs.rdi, regs.rsi, regs.rdx, regs.r10] = k.args();
            regs.rax = nr;
            regs.rip = regs.rip.wrapping_sub(2);
            Outcome::Resumed
        }
    }
}

/// Most entries one `multicall` processes.
const MULTICALL_MAX: u64 = 1 << 16;

/// `multicall(list, nr)`: runs each entry in order, storing its result in the entry. Stops
/// early when the domain shuts down or the vCPU leaves kernel mode (XSA-213); nested multicalls
/// and `iret` are refused per entry with `-EINVAL`.
fn multicall(c: &mut Call<'_, '_>, list: u64, nr: u64) -> HcResult {
    if nr > MULTICALL_MAX {
        return Err(Errno::EINVAL);
    }
    for i in 0..nr {
        let at = list
            .checked_add(i * MulticallEntry::SIZE as u64)
            .ok_or(Errno::EFAULT)?;
        let entry: MulticallEntry = c.gm().read_wire(at).map_err(|_| Errno::EFAULT)?;
        let mut args = [0u64; 5];
        args.copy_from_slice(&entry.args[..MULTICALL_ARGS_USED]);
        c.nested = true;
        let out = call(c, entry.op, args);
        c.nested = false;
        let result = match out {
            Outcome::Ret(r) => r,
            Outcome::Resumed => 0,
        };
        c.gm()
            .write_u64(at + MULTICALL_RESULT_OFFSET as u64, result as u64)
            .map_err(|_| Errno::EFAULT)?;
        if c.dom.shutdown_reason().is_some() || !c.vcpu.kernel_mode {
            break;
        }
    }
    Ok(0)
}

/// The calling domain's view of `domid` (`DOMID_SELF` or its own id): `Ok` if it is itself.
pub fn is_self(dom: &Domain, domid: u16) -> bool {
    domid == abi::domid::DOMID_SELF || domid == dom.id
}
