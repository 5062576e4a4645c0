//! The small hypercalls a PV kernel needs: `console_io`, `xen_version`, `vm_assist`, `sched_op`,
//! the `memory_op` subset, and Argon's audit hypercall.
//!
//! Each reads its arguments through the checked accessor and answers with a value or an
//! `Errno`; none touches page tables. Argon reports the ABI of Xen 4.17 (`xen_version` says
//! 4.17, capabilities `xen-3.0-x86_64`), because that is the contract guests are built against.

use abi::Errno;
use abi::console_io::{CONSOLEIO_READ, CONSOLEIO_WRITE};
use abi::domid::DomId;
use abi::memory::{
    E820_RAM, E820Entry, MEMOP_CMD_MASK, XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_GPFN,
    XENMEM_MAXIMUM_RAM_PAGE, XENMEM_MAXIMUM_RESERVATION, XENMEM_MEMORY_MAP, XenMemoryMap,
};
use abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_REMOTE_SHUTDOWN, SCHEDOP_SHUTDOWN, SCHEDOP_SHUTDOWN_CODE, SCHEDOP_YIELD,
    SHUTDOWN_MAX, SchedRemoteShutdown, SchedShutdown,
};
use abi::version::{
    XENFEAT_DOM0, XENVER_CAPABILITIES, XENVER_CHANGESET, XENVER_COMPILE_INFO, XENVER_EXTRAVERSION,
    XENVER_GET_FEATURES, XENVER_GUEST_HANDLE, XENVER_PAGESIZE, XENVER_PLATFORM_PARAMETERS,
    XENVER_VERSION, XenCompileInfo, XenFeatureInfo, XenPlatformParameters, xenver_version,
};
use abi::vm_assist::{VMASST_CMD_DISABLE, VMASST_CMD_ENABLE, vmasst_valid_pv64};

use super::hypercall::{Call, HcResult, is_self};
use crate::domain::live;
use crate::domain::vcpu::Request;

const EFAULT: Errno = Errno::EFAULT;
/// Most bytes one `console_io` write may carry.
const CONSOLE_WRITE_MAX: u64 = 64 * 1024;

/// `console_io(cmd, count, buffer)`: writes go to the console as `(dN) ` lines; reads return 0
/// (there is no console input).
pub fn console_io(c: &mut Call<'_, '_>, cmd: u64, count: u64, buf: u64) -> HcResult {
    match cmd as u32 {
        CONSOLEIO_WRITE => {
            let count = count & 0xFFFF_FFFF;
            if count > CONSOLE_WRITE_MAX {
                return Err(Errno::EINVAL);
            }
            let mut chunk = [0u8; 128];
            let mut done = 0u64;
            while done < count {
                let n = (count - done).min(chunk.len() as u64) as usize;
                let at = buf.checked_add(done).ok_or(EFAULT)?;
                c.gm().read(at, &mut chunk[..n]).map_err(|_| EFAULT)?;
                let id = c.dom.id;
                c.vcpu().console_write(id, &chunk[..n]);
                done += n as u64;
            }
            Ok(0)
        }
        CONSOLEIO_READ => Ok(0),
        _ => Err(Errno::ENOSYS),
    }
}

/// Copies a NUL-padded string into a fixed-size guest buffer.
fn put_str<const N: usize>(c: &Call<'_, '_>, at: u64, s: &str) -> HcResult {
    let mut b = [0u8; N];
    let n = s.len().min(N - 1);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    c.gm().write(at, &b).map_err(|_| EFAULT)?;
    Ok(0)
}

/// `xen_version(cmd, arg)`.
pub fn xen_version(c: &mut Call<'_, '_>, cmd: u64, arg: u64) -> HcResult {
    match cmd as u32 {
        XENVER_VERSION => Ok(i64::from(xenver_version(4, 17))),
        XENVER_EXTRAVERSION => put_str::<16>(c, arg, ".0-argon"),
        XENVER_COMPILE_INFO => {
            let mut info = XenCompileInfo::default();
            info.compiler[..5].copy_from_slice(b"rustc");
            info.compile_by[..5].copy_from_slice(b"argon");
            c.gm().write_wire(arg, &info).map_err(|_| EFAULT)?;
            Ok(0)
        }
        XENVER_CAPABILITIES => put_str::<1024>(c, arg, "xen-3.0-x86_64 "),
        XENVER_CHANGESET => put_str::<64>(c, arg, env!("ARGON_GIT")),
        XENVER_PLATFORM_PARAMETERS => {
            let p = XenPlatformParameters {
                virt_start: abi::layout::HYPERVISOR_VIRT_START,
            };
            c.gm().write_wire(arg, &p).map_err(|_| EFAULT)?;
            Ok(0)
        }
        XENVER_GET_FEATURES => {
            let mut fi: XenFeatureInfo = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if fi.submap_idx != 0 {
                return Err(Errno::EINVAL);
            }
            fi.submap = if c.dom.privileged {
                1 << XENFEAT_DOM0
            } else {
                0
            };
            c.gm().write_wire(arg, &fi).map_err(|_| EFAULT)?;
            Ok(0)
        }
        XENVER_PAGESIZE => Ok(4096),
        XENVER_GUEST_HANDLE => {
            c.gm().write(arg, &[0u8; 16]).map_err(|_| EFAULT)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `vm_assist(cmd, type)`: the type is checked first (`-EINVAL`), then the command (`-ENOSYS`).
pub fn vm_assist(c: &mut Call<'_, '_>, cmd: u64, kind: u64) -> HcResult {
    let kind = u32::try_from(kind).map_err(|_| Errno::EINVAL)?;
    if !vmasst_valid_pv64(kind) {
        return Err(Errno::EINVAL);
    }
    match u32::try_from(cmd) {
        Ok(VMASST_CMD_ENABLE) => c.dom.set_vm_assist(kind, true),
        Ok(VMASST_CMD_DISABLE) => c.dom.set_vm_assist(kind, false),
        _ => return Err(Errno::ENOSYS),
    }
    Ok(0)
}

/// Name of a shutdown reason, for the log.
pub fn reason_name(reason: u32) -> &'static str {
    match reason {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "unknown",
    }
}

/// `sched_op(cmd, arg)`. `yield` and `block` take effect when the hypercall returns (the run
/// loop hands the CPU on, `domain::sched`); `block` re-enables event delivery first and, with no
/// event sources yet, wakes at the next scheduling decision (a spurious wake-up the ABI allows).
pub fn sched_op(c: &mut Call<'_, '_>, cmd: u64, arg: u64) -> HcResult {
    match cmd as u32 {
        SCHEDOP_YIELD => {
            c.vcpu().request = Request::Yield;
            Ok(0)
        }
        SCHEDOP_BLOCK => {
            c.dom.set_upcall_mask(c.v, false);
            c.vcpu().request = Request::Block;
            Ok(0)
        }
        SCHEDOP_SHUTDOWN => {
            let s: SchedShutdown = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            if c.dom.shut_down(s.reason) {
                info!("d{}: shutdown: {}", c.dom.id, reason_name(s.reason));
            }
            Ok(0)
        }
        SCHEDOP_SHUTDOWN_CODE => {
            let s: SchedShutdown = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            c.dom.set_shutdown_code(s.reason);
            Ok(0)
        }
        SCHEDOP_REMOTE_SHUTDOWN => {
            let s: SchedRemoteShutdown = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if !c.dom.privileged {
                return Err(Errno::EPERM);
            }
            if s.reason > SHUTDOWN_MAX {
                return Err(Errno::EINVAL);
            }
            if s.domain_id == c.dom.id {
                if c.dom.shut_down(s.reason) {
                    info!("d{}: shutdown: {}", c.dom.id, reason_name(s.reason));
                }
                return Ok(0);
            }
            let me = crate::cpu::percpu::this_index();
            let own = c.dom.sched_slot as usize;
            let (slot, target) = live::attach_id(me, s.domain_id, own).ok_or(Errno::ESRCH)?;
            if target.shut_down(s.reason) {
                let (by, why) = (c.dom.id, reason_name(s.reason));
                info!("d{}: shutdown by d{by}: {why}", target.id);
            }
            live::detach(me, slot);
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Reads the `domid_t` argument of a reservation query and checks it names the caller.
fn own_domid(c: &Call<'_, '_>, arg: u64) -> Result<(), Errno> {
    let mut b = [0u8; 2];
    c.gm().read(arg, &mut b).map_err(|_| EFAULT)?;
    let domid: DomId = u16::from_le_bytes(b);
    if is_self(c.dom, domid) {
        Ok(())
    } else {
        Err(Errno::ESRCH)
    }
}

/// `memory_op(cmd, arg)`: reservation queries and the pseudo-physical memory map. Changing a
/// reservation (increase/decrease/populate/exchange) is not supported yet: `-ENOSYS`.
pub fn memory_op(c: &mut Call<'_, '_>, cmd: u64, arg: u64) -> HcResult {
    let nr_pages = c.dom.nr_pages as i64;
    match (cmd as u32) & MEMOP_CMD_MASK {
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => {
            own_domid(c, arg)?;
            Ok(nr_pages)
        }
        XENMEM_MAXIMUM_GPFN => {
            own_domid(c, arg)?;
            Ok(nr_pages - 1)
        }
        XENMEM_MAXIMUM_RAM_PAGE => Ok(c.hv.ft.len() as i64),
        XENMEM_MEMORY_MAP => {
            let mut map: XenMemoryMap = c.gm().read_wire(arg).map_err(|_| EFAULT)?;
            if map.nr_entries < 1 {
                return Err(Errno::EINVAL);
            }
            let ram = E820Entry {
                addr: 0,
                size: c.dom.nr_pages * 4096,
                kind: E820_RAM,
            };
            c.gm().write_wire(map.buffer, &ram).map_err(|_| EFAULT)?;
            map.nr_entries = 1;
            c.gm().write_wire(arg, &map).map_err(|_| EFAULT)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Argon's audit hypercall: the number of frame-table discrepancies (0 = consistent). Only a
/// privileged domain may ask (`-EPERM`); one audit runs at a time (a second waits for the
/// first). The count is only meaningful while the domain's other vCPUs make no MMU hypercalls.
/// While other domains run, only discrepancies on the caller's own frames count (`Scope::Own`).
pub fn argon_audit(c: &mut Call<'_, '_>) -> HcResult {
    if !c.dom.privileged {
        return Err(Errno::EPERM);
    }
    let found = c.hv.audit(Some(c.dom), false, c.hv.scope_for_one());
    Ok(found as i64)
}
