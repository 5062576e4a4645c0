//! The frame commands of `mmuext_op`: pin / unpin (spec §4.2), the page-table bases
//! (spec §4.3, Xen's `new_guest_cr3`), and clear / copy page.
//!
//! References owned here: a base pointer holds one general and one L4 type reference on its frame,
//! from the moment this module takes them until it drops them after the base was replaced
//! ([`HcEnv::set_base`] has then stopped using the old table). Dropping a base or a pin that was a
//! table's last reference hands its de-validation to the vCPU (`deferred`). Pins are the frame
//! table's (`FrameTable::pin`/`unpin`). Clear and copy hold a transient writable type reference on
//! the destination and a general reference on the source for the duration of the copy. Every frame
//! is checked to be in machine memory before `PhysMem` is asked to touch it.
//!
//! Frames are owned by FD (`foreigndom`); its context must be known to the environment
//! (`DOMID_IO` / `DOMID_XEN` only if the hypervisor exposes them), else `-EINVAL`.

use abi::layout::M2P_L4_SLOT;

use super::deferred;
use super::env::{Base, HcEnv};
use super::error::{HcError, Invalid};
use crate::domain::DomId;
use crate::frame::{Level, MmError, PageType, owned};
use crate::mem::{Mfn, PhysMem};

/// FD's context, or `-EINVAL` (its frames cannot be named).
fn owner_ctx<E: HcEnv + ?Sized>(env: &E, fd: DomId) -> Result<&E::Dom, HcError> {
    env.domain(fd).ok_or(HcError::Mm(MmError::WrongOwner))
}

/// `mfn` is a frame of machine memory.
fn in_memory<E: HcEnv + ?Sized>(env: &E, mfn: Mfn) -> Result<(), HcError> {
    if mfn.index().is_some_and(|i| i < env.mem().frames()) {
        Ok(())
    } else {
        Err(Invalid::BadFrame.into())
    }
}

/// MMUEXT_PIN_L1_TABLE … PIN_L4_TABLE: type (validating if needed) and pin FD's frame. A second
/// pin fails with `-EINVAL` and gives back the extra reference it took.
pub(crate) fn pin<E: HcEnv + ?Sized>(
    env: &E,
    fd: DomId,
    mfn: Mfn,
    level: Level,
) -> Result<(), HcError> {
    let ctx = owner_ctx(env, fd)?;
    Ok(env.frames().pin(env.mem(), ctx, mfn, level)?)
}

/// MMUEXT_UNPIN_TABLE: the table's de-validation, if this was its last reference, is the
/// vCPU's (spec §4.2; `deferred`).
pub(crate) fn unpin<E: HcEnv + ?Sized>(env: &mut E, fd: DomId, mfn: Mfn) -> Result<(), HcError> {
    let ctx = owner_ctx(env, fd)?;
    if let Some(begun) = env.frames().unpin_deferred(env.mem(), ctx, mfn)? {
        deferred::defer(env, begun);
    }
    Ok(())
}

/// Take the base-pointer references (G + L4 type) on the caller's frame `mfn`.
fn take_base<E: HcEnv + ?Sized>(env: &E, mfn: Mfn) -> Result<(), HcError> {
    let ctx = env.domain(env.caller()).ok_or(HcError::NoSuchDomain)?;
    Ok(env
        .frames()
        .get_page_and_type(env.mem(), ctx, mfn, PageType::L4)?)
}

/// Drop a replaced base's references; its de-validation, if they were the last, is the
/// vCPU's (`deferred`).
fn release_base<E: HcEnv + ?Sized>(env: &mut E, mfn: Mfn) {
    match env.frames().put_page_and_type_deferred(env.mem(), mfn) {
        Ok(Some(begun)) => deferred::defer(env, begun),
        r => owned(r),
    }
}

/// Write L4 slot 256 (the read-only M2P) of the held L4 `mfn`.
fn set_m2p_slot<E: HcEnv + ?Sized>(env: &E, mfn: Mfn, val: u64) {
    let mem = env.mem();
    if M2P_L4_SLOT < mem.entries_per_frame() {
        mem.write_entry(mfn, M2P_L4_SLOT, val);
    }
}

/// MMUEXT_NEW_BASEPTR (spec §4.3), also the emulation of a guest's `mov %reg,%cr3`. The current
/// base again: reload only (no reference moves).
pub fn new_baseptr<E: HcEnv + ?Sized>(env: &mut E, mfn: Mfn) -> Result<(), HcError> {
    let old = env.base(Base::Kernel);
    if old == Some(mfn) {
        env.set_base(Base::Kernel, old);
        return Ok(());
    }
    take_base(env, mfn)?;
    if !env.m2p_strict() {
        set_m2p_slot(env, mfn, env.ro_m2p_l4e());
    }
    env.set_base(Base::Kernel, Some(mfn));
    if let Some(old) = old {
        release_base(env, old);
    }
    Ok(())
}

/// MMUEXT_NEW_USER_BASEPTR (spec §4.3): frame 0 removes the user base; the current one is a
/// no-op.
pub(crate) fn new_user_baseptr<E: HcEnv + ?Sized>(env: &mut E, arg: u64) -> Result<(), HcError> {
    let new = (arg != 0).then_some(Mfn(arg));
    let old = env.base(Base::User);
    if old == new {
        return Ok(());
    }
    if let Some(mfn) = new {
        take_base(env, mfn)?;
        if env.m2p_strict() {
            set_m2p_slot(env, mfn, 0);
        }
    }
    env.set_base(Base::User, new);
    if let Some(old) = old {
        release_base(env, old);
    }
    Ok(())
}

/// MMUEXT_CLEAR_PAGE: zero FD's frame under a transient writable type reference.
pub(crate) fn clear_page<E: HcEnv + ?Sized>(env: &E, fd: DomId, mfn: Mfn) -> Result<(), HcError> {
    let ctx = owner_ctx(env, fd)?;
    in_memory(env, mfn)?;
    let (ft, mem) = (env.frames(), env.mem());
    ft.get_page_and_type(mem, ctx, mfn, PageType::Writable)?;
    mem.zero_page(mfn);
    owned(ft.put_page_and_type(mem, mfn));
    Ok(())
}

/// MMUEXT_COPY_PAGE: copy FD's `src` (any type; a general reference suffices) into FD's `dst`
/// (transient writable type reference).
pub(crate) fn copy_page<E: HcEnv + ?Sized>(
    env: &E,
    fd: DomId,
    dst: Mfn,
    src: Mfn,
) -> Result<(), HcError> {
    let ctx = owner_ctx(env, fd)?;
    in_memory(env, src)?;
    in_memory(env, dst)?;
    let (ft, mem) = (env.frames(), env.mem());
    ft.get_page(src, fd)?;
    if let Err(e) = ft.get_page_and_type(mem, ctx, dst, PageType::Writable) {
        owned(ft.put_page(src));
        return Err(e.into());
    }
    mem.copy_page(dst, src);
    owned(ft.put_page_and_type(mem, dst));
    owned(ft.put_page(src));
    Ok(())
}
