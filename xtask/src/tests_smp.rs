//! QEMU test cases for SMP bring-up, IPIs and time (the `smp/` crate and `src/cpu/`).
//!
//! Every case asserts the boot line `argon: N CPUs online (x2apic|xapic) in ` with N equal to
//! the CPUs QEMU was given (so a missing AP fails the case), then a self-test's own pass line and
//! the final marker. Timeouts are the harness's (60 s); nothing asserts on latency.

use super::tests::Case;
use crate::qemu::EXIT_SUCCESS;

/// IPIs each CPU sends each other CPU in `argon.test=ipi-storm` (`STORM_ROUNDS` in
/// src/cpu/selftests.rs).
const STORM_ROUNDS: u32 = 32;

/// `(cpu model, the mode Argon must pick)`.
const MODES: [(&str, &str); 2] = [("max", "x2apic"), ("max,-x2apic", "xapic")];

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn case(
    name: String,
    smp: u32,
    cpu: &'static str,
    cmdline: &'static str,
    expect: Vec<&'static str>,
) -> Case {
    let mut all = expect;
    all.push("argon: exit: success");
    Case {
        name: leak(name),
        smp,
        cpu,
        cmdline,
        modules: Vec::new(),
        status: EXIT_SUCCESS,
        expect: all,
    }
}

fn online(n: u32, mode: &str) -> &'static str {
    leak(format!("argon: {n} CPUs online ({mode}) in "))
}

pub fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    // The matrix: all CPUs online in both APIC modes, and each one answers a cross-CPU call
    // (from the BSP and from its neighbour in a ring), and all-but-self / set IPIs reach them.
    for (cpu, mode) in MODES {
        for smp in [1, 2, 4, 8] {
            v.push(case(
                format!("smp/online-call-{smp}cpu-{mode}"),
                smp,
                cpu,
                "argon.test=smp-call",
                vec![
                    online(smp, mode),
                    leak(format!("smp-call: ring of {smp} CPU-to-CPU calls answered")),
                    "self-test smp-call: passed",
                ],
            ));
        }
    }
    // All-to-all IPI storm: exact per-CPU counts.
    for (smp, (cpu, mode)) in [(8, MODES[0]), (8, MODES[1]), (2, MODES[0])] {
        let per_cpu = STORM_ROUNDS * (smp - 1);
        v.push(case(
            format!("smp/ipi-storm-{smp}cpu-{mode}"),
            smp,
            cpu,
            "argon.test=ipi-storm",
            vec![
                online(smp, mode),
                leak(format!(
                    "ipi-storm: CPU {} received {per_cpu} of {per_cpu} messages",
                    smp - 1
                )),
                "0 timeouts, 0 protocol errors",
                "self-test ipi-storm: passed",
            ],
        ));
    }
    // One-shot APIC timer on every CPU.
    for (smp, (cpu, mode)) in [(4, MODES[0]), (2, MODES[1])] {
        v.push(case(
            format!("smp/timer-{smp}cpu-{mode}"),
            smp,
            cpu,
            "argon.test=timer",
            vec![
                online(smp, mode),
                leak(format!("timer: CPU {} one-shot", smp - 1)),
                "self-test timer: passed",
            ],
        ));
    }
    // A CPU that never answers INIT-SIPI-SIPI is reported and left out, never fatal.
    v.push(case(
        "smp/ap-timeout-left-out".into(),
        2,
        "max",
        "argon.test=ap-timeout",
        vec![
            "(APIC ID 240) left out: NeverStarted",
            online(2, "x2apic"),
            "self-test ap-timeout: passed",
        ],
    ));
    // Command-line controls: forcing xAPIC on an x2APIC CPU, and capping the CPU count.
    v.push(case(
        "smp/apic=xapic-forced".into(),
        4,
        "max",
        "apic=xapic argon.test=smp-call",
        vec![online(4, "xapic"), "self-test smp-call: passed"],
    ));
    v.push(case(
        "smp/maxcpus=3-of-4".into(),
        4,
        "max",
        "maxcpus=3",
        vec!["1 left out", online(3, "x2apic")],
    ));
    v
}
