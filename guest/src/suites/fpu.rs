//! x87/SSE state under the hypervisor: SSE is usable (CR4.OSFXSR), `fpu_taskswitch` sets a
//! virtual CR0.TS that makes the next SSE instruction raise #NM once (Xen clears the virtual TS
//! as it delivers the #NM), and every vCPU keeps its own registers across switches — with more
//! vCPUs than CPUs, a hypervisor that does not save and restore them hands one vCPU's (or one
//! domain's) XMM registers to another.
//!
//! The kernel is built soft-float, so the compiler never uses these registers: the tests set
//! and read them with explicit instructions only.

use abi::TrapInfo;
use abi::hypercall::Hypercall;
use abi::selectors::FLAT_KERNEL_CS64;

use crate::env::Env;
use crate::harness::{Fail, Outcome, ensure_eq};
use crate::{hypercall, smp};

core::arch::global_asm!(
    r#"
    .section .text, "ax"

    .global fpu_nm_probe
fpu_nm_probe:                       /* u64 (void): 1 if the SSE instruction raised #NM */
    xor %eax, %eax
fpu_nm_probe_insn:
    pxor %xmm15, %xmm15
    ret

fpu_nm_resume:
    mov $1, %eax
    ret

    .global fpu_trap_nm
fpu_trap_nm:                        /* bounce frame: rcx, r11, rip, cs, rflags, rsp, ss */
    pop %rcx
    pop %r11
    push %rdx
    push %rax                       /* 0 rax, 8 rdx, 16 rip */
    lea fpu_nm_probe_insn(%rip), %rdx
    cmp %rdx, 16(%rsp)
    jne 1f
    lea fpu_nm_resume(%rip), %rdx
    mov %rdx, 16(%rsp)              /* resume at fpu_nm_resume */
    incq fpu_nm_count(%rip)
    pop %rax
    pop %rdx
    push $0
    jmp hypercall_page + 23 * 32
1:  pop %rax                        /* unexpected: the kernel's report */
    pop %rdx
    mov $7, %edi
    mov (%rsp), %rsi
    and $-16, %rsp
    call guest_bad_trap
    ud2

    .section .bss, "aw", @nobits
    .balign 8
    .global fpu_nm_count
fpu_nm_count:
    .skip 8

    .section .text, "ax"
"#,
    options(att_syntax)
);

unsafe extern "C" {
    fn fpu_nm_probe() -> u64;
    fn fpu_trap_nm();
    /// #NMs caught at the probe (written by `fpu_trap_nm` only).
    static fpu_nm_count: u64;
}

/// #NMs caught at the probe so far.
fn nm_count() -> u64 {
    // SAFETY: a .bss word written only by `fpu_trap_nm` on this vCPU; a volatile load.
    unsafe { core::ptr::read_volatile(&raw const fpu_nm_count) }
}

/// Runs one SSE instruction: 1 if it raised #NM (caught by `fpu_trap_nm`), else 0.
fn nm_probe() -> u64 {
    // SAFETY: the probe executes one `pxor` of xmm15 (unused by compiled code); a #NM there is
    // caught by `fpu_trap_nm`, which resumes the probe returning 1.
    unsafe { fpu_nm_probe() }
}

/// `fpu_taskswitch(set)`.
fn taskswitch(set: bool) -> i64 {
    // SAFETY: it only sets or clears this vCPU's virtual CR0.TS.
    unsafe { hypercall::hypercall5(Hypercall::FpuTaskswitch.nr(), u64::from(set), 0, 0, 0, 0) }
}

/// Writes `base + i` into XMM register `i` for every `i` below 16.
fn set_xmm(base: u64) {
    // SAFETY: only XMM registers change, which no compiled code of this soft-float kernel uses.
    unsafe {
        core::arch::asm!(
            "movq xmm0, {v}", "inc {v}", "movq xmm1, {v}", "inc {v}",
            "movq xmm2, {v}", "inc {v}", "movq xmm3, {v}", "inc {v}",
            "movq xmm4, {v}", "inc {v}", "movq xmm5, {v}", "inc {v}",
            "movq xmm6, {v}", "inc {v}", "movq xmm7, {v}", "inc {v}",
            "movq xmm8, {v}", "inc {v}", "movq xmm9, {v}", "inc {v}",
            "movq xmm10, {v}", "inc {v}", "movq xmm11, {v}", "inc {v}",
            "movq xmm12, {v}", "inc {v}", "movq xmm13, {v}", "inc {v}",
            "movq xmm14, {v}", "inc {v}", "movq xmm15, {v}",
            v = inout(reg) base => _,
            options(nomem, nostack),
        );
    }
}

/// The low quadword of every XMM register.
fn get_xmm() -> [u64; 16] {
    let mut out = [0u64; 16];
    // SAFETY: the stores write the 16 words of `out`, a live local array.
    unsafe {
        core::arch::asm!(
            "movq [{o}], xmm0", "movq [{o} + 8], xmm1", "movq [{o} + 16], xmm2",
            "movq [{o} + 24], xmm3", "movq [{o} + 32], xmm4", "movq [{o} + 40], xmm5",
            "movq [{o} + 48], xmm6", "movq [{o} + 56], xmm7", "movq [{o} + 64], xmm8",
            "movq [{o} + 72], xmm9", "movq [{o} + 80], xmm10", "movq [{o} + 88], xmm11",
            "movq [{o} + 96], xmm12", "movq [{o} + 104], xmm13", "movq [{o} + 112], xmm14",
            "movq [{o} + 120], xmm15",
            o = in(reg) out.as_mut_ptr(),
            options(nostack),
        );
    }
    out
}

fn check_xmm(base: u64, what: &str) -> Outcome {
    let got = get_xmm();
    for (i, &g) in got.iter().enumerate() {
        let want = base + i as u64;
        if g != want {
            return Err(Fail::new(format_args!(
                "{what}: xmm{i} = {g:#x}, want {want:#x}"
            )));
        }
    }
    Ok(())
}

/// SSE instructions run (the hypervisor enabled CR4.OSFXSR) and the registers hold values
/// across hypercalls.
pub fn sse_registers_usable(_env: &Env) -> Outcome {
    let base = 0x5EED_0000_0000_0100;
    set_xmm(base);
    check_xmm(base, "right after writing")?;
    ensure_eq!(hypercall::xen_version() > 0, true, "xen_version");
    check_xmm(base, "after a hypercall")
}

/// `fpu_taskswitch(1)`: the next SSE instruction raises #NM, bounced to the kernel, and the
/// virtual TS is then clear (no second #NM); `fpu_taskswitch(0)` clears it without a fault.
pub fn fpu_taskswitch_nm_once(_env: &Env) -> Outcome {
    let handler = [
        TrapInfo {
            vector: 7,
            flags: 0,
            cs: FLAT_KERNEL_CS64,
            address: fpu_trap_nm as *const () as u64,
        },
        TrapInfo::default(),
    ];
    // SAFETY: a terminated trap_info array; the handler only resumes its own probe and reports
    // any other #NM. It stays installed (a zero address ends the list, so it cannot be removed).
    let rc = unsafe {
        hypercall::hypercall5(
            Hypercall::SetTrapTable.nr(),
            handler.as_ptr() as u64,
            0,
            0,
            0,
            0,
        )
    };
    ensure_eq!(rc, 0, "installing the #NM handler");
    let before = nm_count();
    ensure_eq!(taskswitch(true), 0, "fpu_taskswitch(1)");
    ensure_eq!(
        nm_probe(),
        1,
        "first SSE instruction after fpu_taskswitch(1)"
    );
    ensure_eq!(nm_count(), before + 1, "#NMs caught");
    ensure_eq!(nm_probe(), 0, "second SSE instruction (virtual TS cleared)");
    ensure_eq!(taskswitch(true), 0, "fpu_taskswitch(1) again");
    ensure_eq!(taskswitch(false), 0, "fpu_taskswitch(0)");
    ensure_eq!(nm_probe(), 0, "SSE instruction after fpu_taskswitch(0)");
    ensure_eq!(nm_count(), before + 1, "#NMs caught in all");
    Ok(())
}

/// Yields per vCPU in [`state_survives_switches`].
const ROUNDS: u32 = 40;

/// Every vCPU fills its XMM registers with its own values, then yields again and again: with
/// more vCPUs than CPUs others run on its CPU meanwhile, and its values must survive.
pub fn state_survives_switches(_env: &Env) -> Outcome {
    smp::run_on_all(|id, _| {
        let base = 0x5EED_0000_0000_0000 | ((id as u64) << 32);
        set_xmm(base);
        for r in 0..ROUNDS {
            hypercall::sched_yield();
            check_xmm(base, "after a yield").map_err(|f| {
                smp::fail(Fail::new(format_args!(
                    "vCPU {id} round {r}: {}",
                    f.as_str()
                )))
            })?;
        }
        Ok(())
    })
}
