//! `cargo xtask xen`: boots the guest kernel as dom0 of real Xen 4.17 under QEMU TCG, judges its
//! suite from the serial log, then runs the same image and suite on Argon and compares the two
//! test by test (`xen_compare`), for differential conformance (DESIGN §1, §9.4).
//!
//! | file | owns |
//! |---|---|
//! | `xen.rs` | options, building the guest, the Xen run ([`run_xen`]) and the command |
//! | `xen_fetch.rs` | fetching and unpacking Debian's Xen 4.17 into `target/xen/` |
//! | `xen_report.rs` | the guest's verdict lines, parsed ([`GuestReport`]) |
//! | `xen_compare.rs` | the Argon run, the per-test comparison, the justified differences |
//!
//! - The guest is built with `cargo build --release -p guest --target x86_64-unknown-none`.
//! - Firmware: qboot first (`--bios auto`); Xen 4.17 triple-faults in early boot under qboot
//!   (QEMU exits 0 with no output), so a run that prints no `(XEN)` line is repeated with QEMU's
//!   default SeaBIOS.
//! - Xen cannot write isa-debug-exit, so the run ends on Xen's `Hardware Dom0 …` line (or a
//!   Xen panic) and is judged by the guest's verdict lines ([`GuestReport`], the contract of
//!   `guest/src/harness.rs`). It passes only with `guest: done`, a summary with 0 failed that
//!   matches the PASS lines, no FAIL or PANIC line, and Xen's `Hardware Dom0 halted` (the
//!   guest's poweroff). A timeout, a crash or a missing line is a failure.
//! - The command then fails on any verdict that differs between Argon and Xen unless
//!   `guest/README.md` justifies it, and on a failed Argon run (`--no-argon` skips that part).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::qemu::{self, Boot, Outcome};
use crate::xen_compare::{self, Justified};
use crate::xen_fetch::xen_image;
use crate::xen_report::{GuestReport, Verdict};
use crate::{Result, prereq, root, run_status};

/// Xen's command line: serial console on COM1, everything logged, 64 MiB dom0, halt on dom0 exit.
pub const XEN_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=64M loglvl=all guest_loglvl=all noreboot";
/// Xen's line when dom0 powered off cleanly.
pub const DOM0_HALTED: &str = "Hardware Dom0 halted";
/// Serial markers after which nothing more will come (dom0 gone or Xen dead).
const STOP_MARKERS: [&str; 3] = ["Hardware Dom0", "Panic on CPU", "Manual reset required"];

const USAGE: &str = "usage: cargo xtask xen [options] [-- extra Xen options]
  --suite NAME              guest suite (default tests)
  --smp N                   CPUs (default 1)
  --timeout SECS            stop QEMU after this long (default 300)
  --bios auto|qboot|seabios firmware (default auto: qboot, then SeaBIOS)
  --guest PATH              boot this PV ELF instead of building guest/
  --no-argon                Xen only: no Argon run, no per-test comparison
  --quiet                   do not stream the serial console";

/// Which firmware boots Xen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// qboot, and SeaBIOS when Xen prints nothing under qboot.
    Auto,
    Qboot,
    SeaBios,
}

/// One Xen run.
#[derive(Debug, Clone)]
pub struct XenOptions {
    pub suite: String,
    pub smp: u32,
    pub timeout: Duration,
    pub bios: Firmware,
    /// A prebuilt guest image; `None` builds `guest/`.
    pub guest: Option<PathBuf>,
    /// Appended to [`XEN_CMDLINE`].
    pub extra: Vec<String>,
    pub echo: bool,
}

impl Default for XenOptions {
    fn default() -> Self {
        XenOptions {
            suite: "tests".into(),
            smp: 1,
            timeout: Duration::from_secs(300),
            bios: Firmware::Auto,
            guest: None,
            extra: Vec::new(),
            echo: true,
        }
    }
}

/// The result of one Xen run.
#[derive(Debug)]
pub struct XenRun {
    pub report: GuestReport,
    pub outcome: Outcome,
    /// The firmware that booted it ("qboot" or "seabios").
    pub bios: &'static str,
    /// From QEMU's start to the guest's first line (Xen's boot and dom0 build).
    pub boot_time: Option<Duration>,
    /// From the guest's first line to `guest: done`.
    pub suite_time: Option<Duration>,
}

impl XenRun {
    /// Why the run failed, or `None` if it passed.
    pub fn failure(&self) -> Option<String> {
        if let Some(why) = self.report.failure() {
            let end = match (&self.outcome.stopped_on, self.outcome.timed_out) {
                (_, true) => format!("timed out after {:.0}s", self.outcome.elapsed.as_secs_f64()),
                (Some(_), _) => last_line_with(&self.outcome.serial, "Hardware Dom0")
                    .or_else(|| last_line_with(&self.outcome.serial, "Panic"))
                    .unwrap_or_default(),
                (None, false) => format!("QEMU exited with {:?}", self.outcome.status),
            };
            return Some(format!("{why}; {end}"));
        }
        if !self.outcome.serial.contains(DOM0_HALTED) {
            return Some(format!(
                "the guest passed but Xen never printed {DOM0_HALTED:?}"
            ));
        }
        None
    }
}

fn last_line_with(serial: &str, what: &str) -> Option<String> {
    serial
        .lines()
        .rev()
        .find(|l| l.contains(what))
        .map(|l| l.trim().to_string())
}

/// Builds the guest kernel (release, bare metal) and returns its path.
pub fn build_guest() -> Result<PathBuf> {
    prereq::ensure_target()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root()).args([
        "build",
        "--release",
        "-p",
        "guest",
        "--target",
        "x86_64-unknown-none",
    ]);
    run_status(&mut cmd)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root().join(target)
    };
    Ok(target.join("x86_64-unknown-none/release/guest"))
}

/// Boots `opts.suite` on Xen 4.17 and parses the guest's verdicts. An `Err` means the run could
/// not be set up; a run that went wrong is an `Ok` whose [`XenRun::failure`] says why.
pub fn run_xen(opts: &XenOptions) -> Result<XenRun> {
    prereq::ensure_all()?;
    let guest = match &opts.guest {
        Some(p) => p.clone(),
        None => build_guest()?,
    };
    let xen = xen_image()?;
    let mut boot = Boot::new(&xen);
    boot.smp = opts.smp;
    boot.memory_mb = 512;
    boot.timeout = opts.timeout;
    boot.cmdline = std::iter::once(XEN_CMDLINE.to_string())
        .chain(opts.extra.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    boot.modules = vec![(guest, opts.suite.clone())];
    boot.stop_on = STOP_MARKERS.iter().map(|m| m.to_string()).collect();
    let tries: &[(&'static str, Option<PathBuf>)] = match opts.bios {
        Firmware::Auto => &[
            ("qboot", Some(PathBuf::from(qemu::QBOOT))),
            ("seabios", None),
        ],
        Firmware::Qboot => &[("qboot", Some(PathBuf::from(qemu::QBOOT)))],
        Firmware::SeaBios => &[("seabios", None)],
    };
    let mut last = None;
    for (name, bios) in tries {
        boot.bios = bios.clone();
        eprintln!("xtask: {}", boot.describe());
        let outcome =
            qemu::run(&boot, None, opts.echo).map_err(|e| format!("starting QEMU: {e}"))?;
        let xen_spoke = outcome.serial.contains("(XEN)");
        last = Some((name, outcome));
        if xen_spoke {
            break;
        }
        eprintln!("xtask: Xen printed nothing with {name}");
    }
    let (bios, outcome) = last.expect("at least one firmware is tried");
    let report = GuestReport::parse(&outcome.serial);
    let time_of = |pred: &dyn Fn(&str) -> bool| {
        outcome
            .serial
            .lines()
            .zip(&outcome.line_times)
            .find(|(l, _)| pred(l))
            .map(|(_, t)| *t)
    };
    let first = time_of(&|l: &str| l.contains("guest: "));
    let done = time_of(&|l: &str| l.contains("guest: done"));
    let suite_time = first.zip(done).map(|(a, b)| b.saturating_sub(a));
    Ok(XenRun {
        report,
        outcome,
        bios,
        boot_time: first,
        suite_time,
    })
}

/// vCPUs Xen gives dom0: one per CPU unless the extra options say `dom0_max_vcpus=N`.
pub fn dom0_vcpus(opts: &XenOptions) -> u32 {
    opts.extra
        .iter()
        .find_map(|o| o.strip_prefix("dom0_max_vcpus=")?.parse().ok())
        .unwrap_or(opts.smp)
}

fn parse_args(args: &[String]) -> Result<Option<(XenOptions, bool)>> {
    let mut opts = XenOptions::default();
    let mut argon = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--suite" => opts.suite = value("--suite")?,
            "--smp" => opts.smp = value("--smp")?.parse().map_err(|e| format!("--smp: {e}"))?,
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            "--bios" => {
                opts.bios = match value("--bios")?.as_str() {
                    "auto" => Firmware::Auto,
                    "qboot" => Firmware::Qboot,
                    "seabios" => Firmware::SeaBios,
                    other => return Err(format!("--bios: unknown firmware '{other}'\n{USAGE}")),
                }
            }
            "--guest" => opts.guest = Some(PathBuf::from(value("--guest")?)),
            "--no-argon" => argon = false,
            "--quiet" => opts.echo = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--" => opts.extra.extend(it.by_ref().cloned()),
            other => return Err(format!("unknown xen option '{other}'\n{USAGE}")),
        }
    }
    Ok(Some((opts, argon)))
}

pub fn cmd_xen(args: &[String]) -> Result<()> {
    let Some((mut opts, argon)) = parse_args(args)? else {
        return Ok(());
    };
    prereq::ensure_all()?;
    let guest = match &opts.guest {
        Some(p) => p.clone(),
        None => build_guest()?,
    };
    opts.guest = Some(guest.clone());
    let run = run_xen(&opts)?;
    let secs =
        |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{:.2}s", d.as_secs_f64()));
    eprintln!(
        "xtask: xen: suite {} on Xen 4.17 ({}, smp {}): {} passed, {} failed; boot to dom0 {}, \
         suite {}, total {:.1}s",
        run.report.suite.as_deref().unwrap_or(&opts.suite),
        run.bios,
        opts.smp,
        run.report.passed(),
        run.report.failed().len(),
        secs(run.boot_time),
        secs(run.suite_time),
        run.outcome.elapsed.as_secs_f64()
    );
    for (name, v) in run.report.failed() {
        if let Verdict::Fail(why) = v {
            eprintln!("xtask: xen: FAIL {name}: {why}");
        }
    }
    let mut problems: Vec<String> = run
        .failure()
        .map(|why| format!("xen run failed: {why}"))
        .into_iter()
        .collect();
    if argon {
        problems.extend(compare_with_argon(&opts, &guest, &run.report)?);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Runs the suite on Argon, prints the side-by-side table and returns what is wrong: a failed
/// Argon run and every unjustified difference.
fn compare_with_argon(
    opts: &XenOptions,
    guest: &std::path::Path,
    xen: &GuestReport,
) -> Result<Vec<String>> {
    let justified = Justified::load()?;
    let image = crate::build_image()?;
    let vcpus = dom0_vcpus(opts);
    let argon = xen_compare::run_argon(&image, guest, &opts.suite, vcpus, opts.timeout, opts.echo)?;
    let rows = xen_compare::compare(&argon.report, xen, &justified);
    xen_compare::print_table(&opts.suite, &rows);
    let mut problems: Vec<String> = argon
        .failure()
        .map(|why| format!("argon run failed: {why}"))
        .into_iter()
        .collect();
    for r in &rows {
        if let Some(why) = r.problem() {
            problems.push(format!("{}: {why}", r.test));
        }
    }
    Ok(problems)
}
