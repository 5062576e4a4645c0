//! In-hypervisor self-tests, selected with `argon.test=<name>` by the QEMU test tier.
//!
//! The fault tests exist to prove the crash path: each must end the run with a register dump (or
//! a panic report) and the failure exit code, which is what the harness expects of them.

use crate::mem::BootMemory;

/// Runs the self-test `name`. `Ok` means it passed and Argon should exit with success.
pub fn run(name: &str, mem: &mut BootMemory) -> Result<(), &'static str> {
    if let Some(result) = crate::cpu::selftest(name) {
        return result;
    }
    match name {
        "ud" => invalid_opcode(),
        "pf" => page_fault(),
        "panic" => panic!("self-test panic (argon.test=panic)"),
        "alloc" => frame_allocator(mem),
        _ => {
            error!("unknown self-test '{name}' (known: alloc, ud, pf, panic)");
            Err("unknown self-test")
        }
    }
}

#[inline(never)]
fn invalid_opcode() -> ! {
    // SAFETY: `ud2` raises #UD, which the hypervisor's handler turns into a dump and an exit.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}

#[inline(never)]
fn page_fault() -> ! {
    let addr = 0x0000_5ead_0000_beef_u64 as *const u64;
    // SAFETY: deliberately not sound: the address is unmapped, so the read raises #PF, which the
    // handler reports with CR2 before ending the run. It never returns.
    let value = unsafe { core::ptr::read_volatile(addr) };
    panic!("read of an unmapped address returned {value:#x}");
}

/// Allocates every free frame, threading them into a list through their own first word (via
/// the direct map), checks each is inside RAM, frees them all by walking the list, and checks the
/// allocator is back where it started and refuses a double free.
fn frame_allocator(mem: &mut BootMemory) -> Result<(), &'static str> {
    let before = mem.alloc.free_count();
    let mut head: Option<u64> = None;
    let mut count = 0u64;
    while let Some(mfn) = mem.alloc.alloc() {
        if mfn >= mem.max_frame {
            return Err("allocator returned a frame beyond RAM");
        }
        let link = mem
            .frame_ptr(mfn)
            .ok_or("allocated frame outside the direct map")?;
        // SAFETY: the frame was just allocated to us, so nothing else uses it, and the direct map
        // covers it (frame_ptr checked).
        unsafe { link.write(head.unwrap_or(u64::MAX)) };
        head = Some(mfn);
        count += 1;
    }
    if count != before as u64 || mem.alloc.free_count() != 0 {
        return Err("allocated count differs from the free count");
    }
    let mut freed = 0u64;
    let mut cur = head;
    while let Some(mfn) = cur {
        let link = mem
            .frame_ptr(mfn)
            .ok_or("list frame outside the direct map")?;
        // SAFETY: written above for this allocated frame; still ours until freed just below.
        let next = unsafe { link.read() };
        mem.alloc
            .free(mfn)
            .map_err(|_| "free of an allocated frame failed")?;
        freed += 1;
        cur = (next != u64::MAX).then_some(next);
    }
    if freed != count || mem.alloc.free_count() != before {
        return Err("free count not restored");
    }
    if let Some(mfn) = head {
        if mem.alloc.free(mfn).is_ok() {
            return Err("double free was not refused");
        }
    }
    info!("self-test alloc: passed ({count} frames allocated and freed)");
    Ok(())
}
