//! Flushes as tokens: the TLB commands of `mmuext_op` (spec §4.2, §5.1), `MMUEXT_SET_LDT` and
//! the cache flush, plus the helpers `update_va_mapping` shares.
//!
//! Target sets: LOCAL = this CPU; ALL = the caller's dirty mask (which keeps CPUs that switched
//! lazily to idle, spec case 81); MULTI = the CPUs currently holding the selected vCPUs (vCPUs
//! loaded nowhere contribute nothing, case 80). Single-address flushes of an address that fails
//! the check are dropped without error: the guest-address check for ALL / MULTI (XSA-279), the
//! canonical check for LOCAL. Every token is handed to [`HcEnv::flush`] at once, in command order
//! (Xen no longer batches guest-requested flushes, spec §5.4); empty ones are discharged here.

use abi::mmuext::{MMUEXT_SET_LDT_MAX_ENTS, MmuextCmd, MmuextOp};

use super::decode::vcpus_to_cpus;
use super::env::{HcEnv, Ldt, guest_addr_ok, is_canonical};
use super::error::{HcError, Invalid};
use crate::domain::DomainCtx;
use crate::flush::{CpuMask, FlushKind, FlushToken, MAX_CPUS};

/// Hand `token` to the environment unless it names no CPU.
pub(crate) fn emit<E: HcEnv + ?Sized>(env: &mut E, token: FlushToken) {
    if token.is_empty() {
        // Discharged: no CPU can hold a stale translation that this flush would remove.
        let _ = token.into_parts();
    } else {
        env.flush(token);
    }
}

/// The set holding only the CPU this hypercall runs on.
pub(crate) fn local<E: HcEnv + ?Sized>(env: &E) -> CpuMask {
    let mut mask = CpuMask::new();
    let cpu = env.this_cpu();
    if cpu < MAX_CPUS {
        mask.set(cpu);
    }
    mask
}

/// TLB_FLUSH_LOCAL … INVLPG_ALL. The caller has checked that FD is the caller. An unreadable
/// vCPU bitmap is `-EINVAL` here (not `-EFAULT`, spec case 62).
pub(crate) fn tlb_command<E: HcEnv + ?Sized>(
    env: &mut E,
    cmd: MmuextCmd,
    op: &MmuextOp,
) -> Result<(), HcError> {
    let caller = env.caller();
    let va = op.linear_addr();
    let multi = |env: &E| {
        vcpus_to_cpus(env, caller, op.vcpumask()).map_err(|_| HcError::Invalid(Invalid::VcpuMask))
    };
    let token = match cmd {
        MmuextCmd::TlbFlushLocal => FlushToken::new(local(env), FlushKind::Full),
        MmuextCmd::InvlpgLocal if is_canonical(va) => {
            FlushToken::new(local(env), FlushKind::va(va))
        }
        MmuextCmd::TlbFlushMulti => FlushToken::new(multi(env)?, FlushKind::Full),
        MmuextCmd::InvlpgMulti => {
            let targets = multi(env)?;
            if !guest_addr_ok(va) {
                return Ok(());
            }
            FlushToken::new(targets, FlushKind::va(va))
        }
        MmuextCmd::TlbFlushAll => FlushToken::new(env.dirty_mask(caller), FlushKind::Full),
        MmuextCmd::InvlpgAll if guest_addr_ok(va) => {
            FlushToken::new(env.dirty_mask(caller), FlushKind::va(va))
        }
        // INVLPG_LOCAL / INVLPG_ALL of a bad address: silently nothing (XSA-279).
        _ => return Ok(()),
    };
    emit(env, token);
    Ok(())
}

/// MMUEXT_SET_LDT (spec §4.2): validate, then record if changed; a local flush if shadow LDT
/// mappings were dropped.
pub(crate) fn set_ldt<E: HcEnv + ?Sized>(env: &mut E, op: &MmuextOp) -> Result<(), HcError> {
    let ents = op.nr_ents();
    let base = if ents == 0 { 0 } else { op.linear_addr() };
    if base & 0xFFF != 0 {
        return Err(Invalid::LdtMisaligned.into());
    }
    if !guest_addr_ok(base) {
        return Err(Invalid::LdtAddress.into());
    }
    if ents > MMUEXT_SET_LDT_MAX_ENTS {
        return Err(Invalid::LdtTooLarge.into());
    }
    let ldt = Ldt { base, ents };
    if env.ldt() != ldt && env.set_ldt(ldt) {
        let token = FlushToken::new(local(env), FlushKind::Full);
        emit(env, token);
    }
    Ok(())
}

/// MMUEXT_FLUSH_CACHE / FLUSH_CACHE_GLOBAL: only with I/O capabilities (`-EACCES`).
pub(crate) fn flush_cache<E: HcEnv + ?Sized>(env: &mut E) -> Result<(), HcError> {
    let caller = env.caller();
    if !env.domain(caller).is_some_and(|d| d.has_io_caps()) {
        return Err(HcError::NoCacheControl);
    }
    env.flush_cache();
    Ok(())
}
