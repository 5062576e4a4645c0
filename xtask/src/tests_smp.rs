//! QEMU test cases for SMP bring-up, IPIs and time (the `smp/` crate and `src/cpu/`), and the
//! multi-vCPU guest cases ([`guest_cases`]: vCPUs scheduled on every CPU, shootdowns, and a
//! short run of the `mmu-stress` perf workload with `argon.bench=ipi`).
//!
//! Every bring-up case asserts the boot line `argon: N CPUs online (x2apic|xapic) in ` with N
//! equal to the CPUs QEMU was given (so a missing AP fails the case), then a self-test's own
//! pass line and the final marker. Guest cases assert every test's PASS line, the audits and
//! the exit status. Timeouts are the harness's (60 s); nothing asserts on latency.

use std::path::Path;

use super::tests::Case;
use crate::qemu::{EXIT_FAILURE, EXIT_SUCCESS};

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
        seabios: false,
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

/// `(CPUs, vCPUs, rounds)` of the `smp` matrix. Each case takes 3–12 s under TCG on two busy
/// host cores (8 CPUs and 16 vCPUs the longest), well inside the harness's 60 s timeout.
const SMP_MATRIX: [(u32, u32, u32); 6] = [
    (2, 2, 256),
    (2, 4, 256),
    (4, 4, 128),
    (4, 8, 128),
    (8, 8, 96),
    (8, 16, 96),
];

/// The `smp` suite's tests, in order (each must print its PASS line).
const SMP_TESTS: [&str; 18] = [
    "initialise_gdt_refused",
    "vcpus_up",
    "own_batches",
    "long_batches",
    "shared_l1",
    "pin_vs_map",
    "preemption_without_yield",
    "remote_down_up",
    "sched_block",
    "state_survives_switches",
    "secondary_gdt_selector",
    "selectors_survive_switches",
    "shootdown_uvmf",
    "shootdown_flush_multi",
    "stale_writable_retyped",
    "hostile_batches",
    "vcpus_down",
    "audit",
];

/// The multi-vCPU guest cases: the `smp` suite over [`SMP_MATRIX`] (x2APIC) and once on
/// xAPIC, the 4-vCPU `demo`, and a domain killed by a fault on a secondary vCPU.
pub fn guest_cases(guest_elf: &Path) -> Vec<Case> {
    let mut v = Vec::new();
    let xapic = (4, 6, 64, "max,-x2apic", "-xapic");
    let matrix = SMP_MATRIX.map(|(smp, vcpus, rounds)| (smp, vcpus, rounds, "max", ""));
    for (smp, vcpus, rounds, cpu, suffix) in matrix.into_iter().chain([xapic]) {
        let mut expect = vec![
            leak(format!("argon: {smp} CPUs online")),
            leak(format!("d0: privileged, 64 MiB, {vcpus} vCPU(s)")),
            "(d0) guest: suite smp",
            leak(format!(
                "guest: info {vcpus} vCPUs up, {rounds} rounds per job"
            )),
        ];
        expect.extend(SMP_TESTS.map(|t| leak(format!("guest: PASS {t}"))));
        expect.extend([
            ", 0 failed",
            "argon: d0: shutdown: poweroff",
            "argon: d0: audit at shutdown: 0 discrepancies",
            "argon: audit: 0 discrepancies",
            "argon: flush: ",
            "argon: exit: success",
        ]);
        let mut c = guest_case(
            leak(format!("guest/smp-{smp}cpu-{vcpus}vcpu{suffix}")),
            smp,
            guest_elf,
            format!("vcpus={vcpus} smp rounds={rounds}"),
            EXIT_SUCCESS,
            expect,
        );
        c.cpu = cpu;
        v.push(c);
    }
    v.push(guest_case(
        "guest/demo-4vcpu",
        4,
        guest_elf,
        "vcpus=4 demo".into(),
        EXIT_SUCCESS,
        vec![
            "argon: 4 CPUs online",
            "guest: demo: 4 vCPUs",
            "guest: demo: vCPU 3: ",
            " cycles/update",
            "guest: PASS mmu_update_batches",
            "guest: PASS audit",
            "argon: d0: audit at shutdown: 0 discrepancies",
            "shootdowns sent",
            "argon: exit: success",
        ],
    ));
    // The perf workload stays runnable: a short `mmu-stress` in every layout and the shootdown
    // timings at 2 vCPUs, with Argon's IPI bench at boot. Judged on function only (the lines
    // exist, the batches passed, the audits are clean); no figure is looked at.
    let mut stress = guest_case(
        "guest/mmu-stress-2vcpu",
        2,
        guest_elf,
        "vcpus=2 mmu-stress batch=16 iters=20 reps=1 flushes=10".into(),
        EXIT_SUCCESS,
        vec![
            "argon: bench ipi: targets=1 samples=",
            "guest: stress: run mode=disjoint vcpus=2 ",
            "guest: stress: run mode=shared vcpus=2 ",
            "guest: stress: run mode=hot vcpus=2 ",
            "guest: stress: shootdown vcpus=2 k=1 ",
            "guest: PASS mmu_stress",
            "guest: PASS audit",
            "argon: d0: audit at shutdown: 0 discrepancies",
            "argon: exit: success",
        ],
    );
    stress.cmdline = "argon.bench=ipi";
    v.push(stress);
    // A secondary vCPU faults with no handler while the others are in page-table hypercalls:
    // the domain dies, the hypervisor audits, destroys and reports the crash.
    v.push(guest_case(
        "guest/smp-secondary-crash",
        2,
        guest_elf,
        "vcpus=3 crash".into(),
        EXIT_FAILURE,
        vec![
            "(d0) guest: suite crash",
            "argon: d0: crashed: #PF page fault in guest kernel mode",
            "cr2 0x40000000",
            "d0 vCPU 2 registers:",
            "argon: d0: audit at shutdown: 0 discrepancies",
            "argon: audit: 0 discrepancies",
            "argon: exit: failure (d0 crash)",
        ],
    ));
    v
}

fn guest_case(
    name: &'static str,
    smp: u32,
    guest_elf: &Path,
    args: String,
    status: i32,
    expect: Vec<&'static str>,
) -> Case {
    Case {
        name,
        smp,
        cpu: "max",
        cmdline: "",
        modules: vec![(guest_elf.to_path_buf(), args)],
        status,
        seabios: false,
        expect,
    }
}
