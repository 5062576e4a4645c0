//! `cargo xtask test`: every tier, one summary line.
//!
//! Tiers: host unit/property tests (`cargo test` over the workspace), then the QEMU boot tests.
//! Each QEMU case names its expected exit status and the serial text that must appear; the
//! harness never counts status 0, a timeout or a signal as a pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::qemu::{self, Boot, EXIT_FAILURE, EXIT_SUCCESS};
use crate::symbols::Symbols;
use crate::{Result, prereq, root};

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, result: std::result::Result<(), String>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name}");
            }
            Err(why) => {
                self.failed += 1;
                println!("FAIL {name}: {why}");
                self.failures.push(name.to_string());
            }
        }
    }
}

/// One QEMU boot test.
pub struct Case {
    pub name: &'static str,
    pub smp: u32,
    /// QEMU `-cpu` model under TCG: `max`, or `max,-x2apic` for the xAPIC fallback.
    pub cpu: &'static str,
    pub cmdline: &'static str,
    pub modules: Vec<(PathBuf, String)>,
    pub status: i32,
    /// Boot through SeaBIOS (QEMU's default firmware) instead of qboot.
    pub seabios: bool,
    /// Every one of these must appear in the (symbolised) serial log; the last is the final marker.
    pub expect: Vec<&'static str>,
}

fn boot_cases(fixtures: &Path) -> Vec<Case> {
    let case = |name, cmdline, status, expect: Vec<&'static str>| Case {
        name,
        smp: 1,
        cpu: "max",
        cmdline,
        modules: Vec::new(),
        status,
        seabios: false,
        expect,
    };
    let mut v = vec![
        case(
            "boot/plain",
            "",
            EXIT_SUCCESS,
            vec![
                "argon: Argon ",
                "argon: command line: ''",
                "argon: boot complete",
                "argon: exit: success",
            ],
        ),
        case(
            "boot/cmdline-warnings",
            "loglvl=debug bogus=1 dom0_mem=notasize",
            EXIT_SUCCESS,
            vec![
                "unknown option 'bogus'",
                "dom0_mem",
                "argon: debug:",
                "argon: exit: success",
            ],
        ),
        case(
            "boot/memory-and-frame-table",
            "",
            EXIT_SUCCESS,
            vec![
                "memory: ",
                "frame table: ",
                "frame allocator: ",
                "argon: exit: success",
            ],
        ),
        case(
            "selftest/frame-allocator",
            "argon.test=alloc",
            EXIT_SUCCESS,
            vec!["self-test alloc: passed", "argon: exit: success"],
        ),
        case(
            "selftest/invalid-opcode-dump",
            "argon.test=ud",
            EXIT_FAILURE,
            vec![
                "FATAL EXCEPTION #UD",
                "rip: 0x",
                "<argon::selftest::invalid_opcode",
                "halting",
            ],
        ),
        case(
            "selftest/page-fault-dump",
            "argon.test=pf",
            EXIT_FAILURE,
            vec![
                "FATAL EXCEPTION #PF",
                "cr2: 0x00005ead0000beef",
                "selftest",
                "halting",
            ],
        ),
        case(
            "selftest/panic",
            "argon.test=panic",
            EXIT_FAILURE,
            vec!["PANIC", "self-test panic", "backtrace:"],
        ),
        case(
            "selftest/unknown-name",
            "argon.test=nosuchtest",
            EXIT_FAILURE,
            vec!["unknown self-test 'nosuchtest'", "argon: exit: failure"],
        ),
    ];
    let mut m = case(
        "boot/modules",
        "",
        EXIT_SUCCESS,
        vec![
            "dom0.img at 0x",
            "command line 'vcpus=2 mem=16M console=hvc0'",
            "module 0: vcpus=2 mem=16384 KiB args 'console=hvc0'",
            "domu.img at 0x",
            "module 1: vcpus=1 mem=0 KiB args 'quiet'",
            "argon: exit: success",
        ],
    );
    m.modules = vec![
        (
            fixtures.join("dom0.img"),
            "vcpus=2 mem=16M console=hvc0".into(),
        ),
        (fixtures.join("domu.img"), "quiet".into()),
    ];
    v.push(m);
    for smp in [2, 4, 8] {
        let mut c = case("", "", EXIT_SUCCESS, vec!["argon: exit: success"]);
        c.name = match smp {
            2 => "boot/smp2",
            4 => "boot/smp4",
            _ => "boot/smp8",
        };
        c.smp = smp;
        v.push(c);
    }
    let mut x = case(
        "boot/xapic-cpu",
        "",
        EXIT_SUCCESS,
        vec!["argon: exit: success"],
    );
    x.cpu = "max,-x2apic";
    v.push(x);
    v.extend(crate::tests_smp::cases());
    v
}

fn run_case(image: &Path, syms: Option<&Symbols>, c: &Case) -> std::result::Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = c.smp;
    boot.cpu = c.cpu.to_string();
    boot.cmdline = c.cmdline.to_string();
    boot.modules = c.modules.clone();
    boot.timeout = Duration::from_secs(60);
    if c.seabios {
        boot.bios = None;
    }
    let out = qemu::run(&boot, syms, false).map_err(|e| format!("starting QEMU: {e}"))?;
    let last = c.expect.last().copied().unwrap_or("argon: exit");
    let missing = c.expect.iter().find(|m| !out.serial.contains(*m));
    let why = out
        .verdict(c.status, last)
        .or(missing.map(|m| format!("serial lacks {m:?}")));
    match why {
        None => Ok(()),
        Some(why) => {
            let tail: Vec<&str> = out.serial.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{why}\n  command: {}\n  serial (last lines):\n    {}",
                boot.describe(),
                tail.join("\n    ")
            ))
        }
    }
}

/// Runs `cargo test` for the host crates and adds libtest's counts.
fn host_tier(t: &mut Tally) {
    println!("== host tests (cargo test --workspace) ==");
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["test", "--workspace", "--no-fail-fast", "--color", "never"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => return t.record("host/cargo-test", Err(format!("cannot run cargo: {e}"))),
    };
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let (mut passed, mut failed, mut suites) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            suites += 1;
            let num = |key: &str| {
                rest.split(';')
                    .find_map(|p| {
                        p.trim().strip_suffix(key).map(|n| {
                            n.trim()
                                .trim_start_matches("ok.")
                                .trim_start_matches("FAILED.")
                                .trim()
                                .parse::<usize>()
                                .unwrap_or(0)
                        })
                    })
                    .unwrap_or(0)
            };
            passed += num(" passed");
            failed += num(" failed");
        }
        if line.starts_with("test ") && line.ends_with("FAILED") {
            println!("FAIL host/{}", &line[5..line.len() - 9]);
            t.failures
                .push(format!("host/{}", &line[5..line.len() - 9]));
        }
    }
    if !out.status.success() && failed == 0 {
        // A build failure: no test ran.
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("error"))
            .take(10)
            .collect();
        return t.record("host/build", Err(errors.join("\n")));
    }
    println!("host: {passed} passed, {failed} failed in {suites} suites");
    t.passed += passed;
    t.failed += failed;
}

/// The guest's suites on real Xen 4.17 (the differential reference) and on Argon, compared
/// test by test (`xen_compare::tier`): one result per guest test, plus each run itself.
fn xen_tier(t: &mut Tally, image: &Path, guest: &Path) {
    println!("== guest suites on Xen 4.17 and Argon, verdict by verdict (TCG) ==");
    for (name, result) in crate::xen_compare::tier(image, guest) {
        t.record(&name, result);
    }
}

pub fn cmd_test(args: &[String]) -> Result<()> {
    let mut filter = None;
    let mut skip_host = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--filter" => filter = it.next().cloned(),
            "--skip-host" => skip_host = true,
            other => return Err(format!("unknown test option '{other}'")),
        }
    }
    let started = Instant::now();
    prereq::ensure_all()?;
    let mut t = Tally::default();
    if !skip_host && filter.is_none() {
        host_tier(&mut t);
    }
    if !skip_host && filter.is_none() {
        println!(
            "== loom models and mutants (LOOM_MAX_PREEMPTIONS={}) ==",
            crate::loom::MAX_PREEMPTIONS
        );
        for (name, v) in crate::loom::run_tier(true) {
            t.record(&name, v);
        }
    }
    println!("== QEMU boot tests (TCG) ==");
    let image = crate::build_image()?;
    let syms = Symbols::load(&image);
    let fixtures = root().join("target/xtask/fixtures");
    std::fs::create_dir_all(&fixtures).map_err(|e| format!("{}: {e}", fixtures.display()))?;
    for (name, body) in [
        ("dom0.img", "not a kernel yet\n"),
        ("domu.img", "nor this\n"),
    ] {
        std::fs::write(fixtures.join(name), body).map_err(|e| format!("fixture {name}: {e}"))?;
    }
    let guest = crate::xen::build_guest()?;
    let mut cases = boot_cases(&fixtures);
    cases.extend(crate::tests_guest::cases(&guest));
    for c in cases {
        if filter.as_deref().is_some_and(|f| !c.name.contains(f)) {
            continue;
        }
        let r = run_case(&image, syms.as_ref(), &c);
        t.record(c.name, r);
    }
    if filter
        .as_deref()
        .is_none_or(|f| "xen/".contains(f) || f.starts_with("xen"))
    {
        xen_tier(&mut t, &image, &guest);
    }
    println!("(wall time {:.0}s)", started.elapsed().as_secs_f64());
    if !t.failures.is_empty() {
        println!("failed: {}", t.failures.join(", "));
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    // The summary must stay the last line, so a failing run exits here without another message.
    if t.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
