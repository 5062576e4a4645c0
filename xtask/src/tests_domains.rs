//! QEMU test cases with several domains running at once: isolation (an unprivileged domain's
//! `tests` suite starts with the `isolation` tests against domain 0, which runs beside it and
//! waits for it to end), and a crashing domain beside a running one.
//!
//! A domain's suite passes only if it powers off (`argon: dN: shutdown: poweroff`): the guest
//! crashes itself when any test fails. The isolation tests themselves fail when they find no
//! frames of another domain, so their passing shows domain 0 was alive meanwhile.

use std::path::Path;

use super::tests::Case;
use crate::qemu::EXIT_SUCCESS;

/// The isolation tests (`guest/src/suites/isolation.rs`), each of which must pass in domain 1.
const ISOLATION_TESTS: [&str; 8] = [
    "map_foreign_frame_ebusy",
    "map_with_fd_dom0_eperm",
    "update_in_foreign_frame_einval",
    "machphys_foreign_einval",
    "pin_foreign_refused",
    "baseptr_foreign_einval",
    "update_va_mapping_foreign_ebusy",
    "remote_shutdown_and_audit_eperm",
];

fn case(name: &'static str, modules: Vec<(&Path, &str)>, expect: Vec<&'static str>) -> Case {
    Case {
        name,
        smp: 2,
        cpu: "max",
        cmdline: "",
        modules: modules
            .into_iter()
            .map(|(p, a)| (p.to_path_buf(), a.to_string()))
            .collect(),
        status: EXIT_SUCCESS,
        seabios: false,
        expect,
    }
}

/// The cases; `guest` is the guest kernel.
pub fn cases(guest: &Path) -> Vec<Case> {
    let dom0_outlives = [
        "argon: d0: privileged, 64 MiB",
        "argon: d0: shutdown: poweroff",
        "argon: d0: audit at shutdown: 0 discrepancies",
        "argon: audit: 0 discrepancies",
    ];
    let mut isolation: Vec<&'static str> = ISOLATION_TESTS
        .iter()
        .map(|t| &*Box::leak(format!("(d1) guest: PASS {t}").into_boxed_str()))
        .collect();
    isolation.extend([
        "(d1) guest: info isolation: ",
        "(d1) guest: info audit unavailable (-1)",
        "argon: d1: shutdown: poweroff",
        "argon: d1: audit at shutdown: 0 discrepancies",
    ]);
    isolation.extend(dom0_outlives);
    isolation.push("argon: exit: success");
    // SeaBIOS leaves the 8259s programmed (IRQ 0 at vector 8, unmasked): the PIT tick reached
    // the CPU as a "double fault" as soon as a guest ran with interrupts on, until Argon masked
    // and remapped the PICs (`smp::pic`).
    let seabios = vec![
        "(d0) guest: suite tests",
        "argon: d0: shutdown: poweroff",
        "argon: d1: shutdown: poweroff",
        "argon: audit: 0 discrepancies",
        "argon: exit: success",
    ];
    let mut crash = vec![
        "(d1) guest: suite crash",
        "argon: d1: crashed: ",
        "argon: d1: audit at shutdown: 0 discrepancies",
    ];
    crash.extend(dom0_outlives);
    crash.push("argon: exit: success");
    vec![
        case(
            "domains/isolation-tests-tests",
            vec![(guest, "tests"), (guest, "tests")],
            isolation,
        ),
        case(
            "domains/crash-beside-running",
            vec![(guest, "tests"), (guest, "crash vcpus=2")],
            crash,
        ),
        Case {
            seabios: true,
            ..case(
                "domains/seabios-two-domains",
                vec![(guest, "tests"), (guest, "tests")],
                seabios,
            )
        },
    ]
}
