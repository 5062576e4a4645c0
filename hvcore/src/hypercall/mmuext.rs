//! `HYPERVISOR_mmuext_op` (hypercall 26): entry checks and command dispatch (spec §4.1–4.2).
//!
//! Entry: the final-return call and the continuation flag as for `mmu_update`; then the start
//! address of `ops` (`-EFAULT`), FD = the low 16 bits of `foreigndom` (`-ESRCH`) and XSM: the
//! caller must be FD or privileged over it (`-EPERM`, spec case 12). Unlike `mmu_update`, these
//! early failures return without writing `*pdone` (as Xen's `do_mmuext_op` does). The batch loop,
//! `*pdone` and continuations are `batch`'s.
//!
//! Per command: PIN / UNPIN / CLEAR / COPY act on FD's frames (`tables`; an UNPIN that drops a
//! table's last reference leaves its de-validation to the caller's vCPU, `deferred`); NEW_BASEPTR,
//! NEW_USER_BASEPTR, the TLB commands, FLUSH_CACHE and SET_LDT only for FD = the caller (`-EPERM`);
//! MARK_SUPER / UNMARK_SUPER `-EOPNOTSUPP`; 14 and ≥ 21 `-ENOSYS`.

use abi::mmuext::{MmuextCmd, MmuextOp};

use super::batch::{self, BatchArgs, Prologue};
use super::decode::{permitted, pg_owner};
use super::env::{HcEnv, guest_addr_ok};
use super::error::HcError;
use super::{HcResult, tables, tlb};
use crate::domain::DomId;
use crate::frame::Level;
use crate::mem::Mfn;

/// `mmuext_op(ops, count, pdone, foreigndom)`: apply the `mmuext_op_t` array at guest address
/// `ops` (spec §4). `count` and `foreigndom` are the 32-bit register values.
pub fn mmuext_op<E: HcEnv + ?Sized>(
    env: &mut E,
    ops: u64,
    count: u32,
    pdone: u64,
    foreigndom: u32,
) -> HcResult {
    let args = BatchArgs {
        ops,
        count,
        pdone,
        foreigndom,
    };
    let (count, done) = match batch::prologue(env, &args) {
        Prologue::Again(c) => return HcResult::Continue(c),
        Prologue::Final(v) => return HcResult::Done(Ok(v)),
        Prologue::Run { count, done } => (count, done),
    };
    let fd = if guest_addr_ok(ops) {
        // FD is a `domid_t`: the low 16 bits of the argument.
        pg_owner(env, foreigndom as u16).and_then(|fd| permitted(env, fd).map(|()| fd))
    } else {
        Err(HcError::Fault)
    };
    let fd = match fd {
        Ok(fd) => fd,
        Err(e) => return HcResult::Done(Err(e)),
    };
    let progress = batch::run(env, ops, count, |env, op: MmuextOp| apply(env, fd, &op));
    batch::finish(env, &args, count, done, MmuextOp::SIZE, progress)
}

/// One command.
fn apply<E: HcEnv + ?Sized>(env: &mut E, fd: DomId, op: &MmuextOp) -> Result<(), HcError> {
    let cmd = op.command().ok_or(HcError::UnknownCommand)?;
    let mfn = Mfn(op.mfn());
    let is_caller = fd == env.caller();
    let own = || {
        if is_caller {
            Ok(())
        } else {
            Err(HcError::NotPermitted)
        }
    };
    match cmd {
        MmuextCmd::PinL1Table => tables::pin(env, fd, mfn, Level::L1),
        MmuextCmd::PinL2Table => tables::pin(env, fd, mfn, Level::L2),
        MmuextCmd::PinL3Table => tables::pin(env, fd, mfn, Level::L3),
        MmuextCmd::PinL4Table => tables::pin(env, fd, mfn, Level::L4),
        MmuextCmd::UnpinTable => tables::unpin(env, fd, mfn),
        MmuextCmd::NewBaseptr => {
            own()?;
            tables::new_baseptr(env, mfn)
        }
        MmuextCmd::NewUserBaseptr => {
            own()?;
            tables::new_user_baseptr(env, op.mfn())
        }
        MmuextCmd::TlbFlushLocal
        | MmuextCmd::InvlpgLocal
        | MmuextCmd::TlbFlushMulti
        | MmuextCmd::InvlpgMulti
        | MmuextCmd::TlbFlushAll
        | MmuextCmd::InvlpgAll => {
            own()?;
            tlb::tlb_command(env, cmd, op)
        }
        MmuextCmd::FlushCache | MmuextCmd::FlushCacheGlobal => {
            own()?;
            tlb::flush_cache(env)
        }
        MmuextCmd::SetLdt => {
            own()?;
            tlb::set_ldt(env, op)
        }
        MmuextCmd::ClearPage => tables::clear_page(env, fd, mfn),
        MmuextCmd::CopyPage => tables::copy_page(env, fd, mfn, Mfn(op.src_mfn())),
        MmuextCmd::MarkSuper | MmuextCmd::UnmarkSuper => Err(HcError::NotSupported),
    }
}
