//! Decoding hypercall arguments that name domains or point into guest memory.
//!
//! * [`pg_owner`]: FD, the owner of the frames a request names (Xen's `get_pg_owner`).
//! * `pt_owner`: PFD, the owner of the page tables `mmu_update` writes (spec §3.2 step 5).
//! * `permitted`: the default XSM policy (caller acts on FD / PFD).
//! * `read_elem` / `read_u32` / `write_u32`: fixed-size guest reads and writes through
//!   [`GuestMem`], with the guest-address check on the whole range first.
//! * `vcpus_to_cpus`: a guest vCPU bitmap to the physical CPUs holding those vCPUs (Xen's
//!   `vcpumask_to_pcpumask`), bounded by the domain's vCPU count.
//!
//! Guest-supplied numbers are data: every address computation is checked and every loop is
//! bounded by a hypervisor-provided count.

use abi::domid::{DOMID_IO, DOMID_SELF, DOMID_XEN, is_real_domid};
use abi::wire::Wire;

use super::env::{GuestMem, HcEnv, guest_range_ok};
use super::error::{HcError, Invalid};
use crate::domain::DomId;
use crate::flush::{CpuMask, MAX_CPUS};

/// Resolve FD (Xen's `get_pg_owner`): `DOMID_SELF` is the caller; the caller's own numeric id is
/// refused ("cannot specify itself"); `DOMID_IO` / `DOMID_XEN` name the pseudo-domains; any other
/// id must be a live domain. Errors: [`HcError::NoSuchDomain`].
pub fn pg_owner<E: HcEnv + ?Sized>(env: &E, fd: DomId) -> Result<DomId, HcError> {
    let caller = env.caller();
    match fd {
        DOMID_SELF => Ok(caller),
        id if id == caller => Err(HcError::NoSuchDomain),
        DOMID_IO | DOMID_XEN => Ok(fd),
        id if is_real_domid(id) && env.domain(id).is_some() => Ok(id),
        _ => Err(HcError::NoSuchDomain),
    }
}

/// Resolve PFD from the `foreigndom` field (`None` = the caller): an exact, real, live domain
/// id (`DOMID_SELF` is not accepted here); a domain other than the caller must have a vCPU 0.
pub(crate) fn pt_owner<E: HcEnv + ?Sized>(env: &E, pfd: Option<DomId>) -> Result<DomId, HcError> {
    let caller = env.caller();
    match pfd {
        None => Ok(caller),
        Some(id) if id == caller => Ok(id),
        Some(id) if !is_real_domid(id) || env.domain(id).is_none() => Err(HcError::NoSuchDomain),
        Some(id) if env.max_vcpus(id) == 0 => Err(Invalid::NoVcpu0.into()),
        Some(id) => Ok(id),
    }
}

/// Default XSM (`XSM_TARGET`): may the caller act on `target`? Refusal: `NotPermitted`.
pub(crate) fn permitted<E: HcEnv + ?Sized>(env: &E, target: DomId) -> Result<(), HcError> {
    let caller = env.caller();
    if target == caller || env.is_privileged_over(caller, target) {
        Ok(())
    } else {
        Err(HcError::NotPermitted)
    }
}

/// Largest ABI element read through [`read_elem`].
const MAX_ELEM: usize = 32;

/// Guest address of element `index` of an array of `size`-byte elements at `base`.
pub(crate) fn elem_addr(base: u64, index: u32, size: usize) -> Option<u64> {
    u64::from(index)
        .checked_mul(size as u64)
        .and_then(|off| base.checked_add(off))
}

/// Read guest bytes after checking that the whole range is guest-accessible.
fn read_bytes<G: GuestMem + ?Sized>(guest: &G, va: u64, buf: &mut [u8]) -> Result<(), HcError> {
    if !guest_range_ok(va, buf.len()) {
        return Err(HcError::Fault);
    }
    guest.read(va, buf).map_err(|_| HcError::Fault)
}

/// Read one ABI structure from guest address `va`.
pub(crate) fn read_elem<T: Wire, G: GuestMem + ?Sized>(guest: &G, va: u64) -> Result<T, HcError> {
    let mut buf = [0u8; MAX_ELEM];
    let bytes = buf.get_mut(..T::SIZE).ok_or(HcError::Fault)?;
    read_bytes(guest, va, bytes)?;
    T::read_from(bytes).map_err(|_| HcError::Fault)
}

/// Read a `u32` (an `unsigned int` of the C ABI) from guest address `va`.
pub(crate) fn read_u32<G: GuestMem + ?Sized>(guest: &G, va: u64) -> Result<u32, HcError> {
    let mut buf = [0u8; 4];
    read_bytes(guest, va, &mut buf)?;
    Ok(u32::from_le_bytes(buf))
}

/// Write a `u32` to guest address `va`.
pub(crate) fn write_u32<G: GuestMem + ?Sized>(guest: &G, va: u64, val: u32) -> Result<(), HcError> {
    if !guest_range_ok(va, 4) {
        return Err(HcError::Fault);
    }
    guest
        .write(va, &val.to_le_bytes())
        .map_err(|_| HcError::Fault)
}

/// The physical CPUs holding the vCPUs of `dom` selected by the guest bitmap at `ptr` (an array
/// of 64-bit words, bit n = vCPU n, read until `max_vcpus` is covered; higher bits ignored).
/// vCPUs loaded nowhere contribute nothing (spec §5.1). An unreadable word is `Fault`.
pub(crate) fn vcpus_to_cpus<E: HcEnv + ?Sized>(
    env: &E,
    dom: DomId,
    ptr: u64,
) -> Result<CpuMask, HcError> {
    let max = env.max_vcpus(dom);
    let mut mask = CpuMask::new();
    let words = max.div_ceil(64);
    for word in 0..words {
        let va = elem_addr(ptr, word, 8).ok_or(HcError::Fault)?;
        let mut buf = [0u8; 8];
        read_bytes(env.guest(), va, &mut buf)?;
        let mut bits = u64::from_le_bytes(buf);
        while bits != 0 {
            let bit = bits.trailing_zeros();
            bits &= bits - 1;
            let vcpu = word * 64 + bit;
            if vcpu >= max {
                break;
            }
            if let Some(cpu) = env.vcpu_dirty_cpu(dom, vcpu).filter(|&c| c < MAX_CPUS) {
                mask.set(cpu);
            }
        }
    }
    Ok(mask)
}
