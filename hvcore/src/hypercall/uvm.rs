//! `update_va_mapping` (hypercall 14) and `update_va_mapping_otherdomain` (22), spec §4.4.
//!
//! 1. FD: the caller, or `domid` resolved like `foreigndom` (`-ESRCH`). XSM only for a present
//!    new entry (Xen's `xsm_update_va_mapping`): the caller must be FD or privileged (`-EPERM`).
//! 2. Locate the L1 entry of `va` by walking the caller's current kernel tables by machine
//!    address (never through a linear window, so XSA-286's stale-window class cannot arise):
//!    `va` must pass the guest-address check, the L4 / L3 / L2 entries must be present and the
//!    L3 / L2 ones not PSE (`-EINVAL`). The L1 itself must be the caller's validated L1:
//!    `mod_entry` checks that (`-EINVAL`).
//! 3. Update the entry with FD's rules (`leaf`). Any error returns at once, with no flush
//!    (XSA-279: `va` may be bad).
//! 4. Flush per `flags`: type `& 3` none / full / one VA / (3 = none); target LOCAL, ALL (dirty
//!    mask) or MULTI (vCPU bitmap pointer). An unreadable bitmap is `-EFAULT`, with the entry
//!    already changed.

use abi::uvmf::{UvmfFlags, UvmfFlush, UvmfTarget};

use super::decode::{permitted, pg_owner, vcpus_to_cpus};
use super::env::{Base, HcEnv, guest_addr_ok};
use super::error::{HcError, Invalid};
use super::{HcResult, leaf, tlb};
use crate::domain::DomId;
use crate::flush::{FlushKind, FlushToken};
use crate::frame::Level;
use crate::mem::{Mfn, PhysMem};
use crate::pt::{PTE_PSE, frame_of, present};

/// `update_va_mapping(va, val, flags)`: set the caller's L1 entry for `va` to `val`, then flush
/// per `flags`.
pub fn update_va_mapping<E: HcEnv + ?Sized>(
    env: &mut E,
    va: u64,
    val: u64,
    flags: u64,
) -> HcResult {
    let caller = env.caller();
    HcResult::Done(update(env, va, val, flags, caller).map(|()| 0))
}

/// `update_va_mapping_otherdomain(va, val, flags, domid)`: as [`update_va_mapping`], with the
/// frame `val` maps owned by `domid` (FD); the L1 is still the caller's.
pub fn update_va_mapping_otherdomain<E: HcEnv + ?Sized>(
    env: &mut E,
    va: u64,
    val: u64,
    flags: u64,
    domid: DomId,
) -> HcResult {
    HcResult::Done(
        pg_owner(env, domid)
            .and_then(|fd| update(env, va, val, flags, fd))
            .map(|()| 0),
    )
}

fn update<E: HcEnv + ?Sized>(
    env: &mut E,
    va: u64,
    val: u64,
    flags: u64,
    fd: DomId,
) -> Result<(), HcError> {
    let caller = env.caller();
    if present(val) {
        permitted(env, fd)?;
    }
    let (table, index) = locate_l1e(env, va)?;
    let owner = env.domain(caller).ok_or(HcError::NoSuchDomain)?;
    // An L1 change: the guest's `flags` decide the flush (spec §5.3), so the update's own flush
    // requirement (none for L1) is not needed.
    let _l1_update = leaf::update(&*env, owner, fd, table, index, val, false)?;
    let flags = UvmfFlags::decode(flags);
    let kind = match flags.flush {
        UvmfFlush::None => return Ok(()),
        UvmfFlush::TlbFlush => FlushKind::Full,
        UvmfFlush::Invlpg => FlushKind::va(va),
    };
    let targets = match flags.target {
        UvmfTarget::Local => tlb::local(env),
        UvmfTarget::All => env.dirty_mask(caller),
        UvmfTarget::Multi(ptr) => vcpus_to_cpus(env, caller, ptr)?,
    };
    tlb::emit(env, FlushToken::new(targets, kind));
    Ok(())
}

/// The L1 table and index mapping `va` in the caller's kernel page tables (Xen's
/// `map_guest_l1e`), read by machine address.
fn locate_l1e<E: HcEnv + ?Sized>(env: &E, va: u64) -> Result<(Mfn, usize), HcError> {
    if !guest_addr_ok(va) {
        return Err(Invalid::NoL1Entry.into());
    }
    let l4 = env.base(Base::Kernel).ok_or(Invalid::NoL1Entry)?;
    let mem = env.mem();
    let l3 = next_table(mem, l4, Level::L4, slot(va, 39))?;
    let l2 = next_table(mem, l3, Level::L3, slot(va, 30))?;
    let l1 = next_table(mem, l2, Level::L2, slot(va, 21))?;
    let index = slot(va, 12);
    if index >= mem.entries_per_frame() {
        return Err(Invalid::NoL1Entry.into());
    }
    Ok((l1, index))
}

/// The 9-bit table index of `va` at `shift`.
fn slot(va: u64, shift: u32) -> usize {
    ((va >> shift) & 0x1FF) as usize
}

/// The table entry `index` of `table` (a table of `level`) points at: present, not a superpage.
fn next_table<M: PhysMem + ?Sized>(
    mem: &M,
    table: Mfn,
    level: Level,
    index: usize,
) -> Result<Mfn, HcError> {
    if table.index().is_none_or(|i| i >= mem.frames()) || index >= mem.entries_per_frame() {
        return Err(Invalid::NoL1Entry.into());
    }
    let e = mem.read_entry(table, index);
    if !present(e) || (level != Level::L4 && e & PTE_PSE != 0) {
        return Err(Invalid::NoL1Entry.into());
    }
    Ok(Mfn(frame_of(e)))
}
