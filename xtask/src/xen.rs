//! `cargo xtask xen`: boots the guest kernel as dom0 of real Xen 4.17 under QEMU TCG and judges
//! its suite from the serial log, for differential conformance against Argon (DESIGN §1, §9.4).
//!
//! - The guest is built with `cargo build --release -p guest --target x86_64-unknown-none`.
//! - Xen comes from Debian's `xen-hypervisor-4.17-amd64`, fetched with `apt-get download` into
//!   `target/xen/`, unpacked with `dpkg-deb -x` and gunzipped to a multiboot ELF: never
//!   installed.
//! - Firmware: qboot first (`--bios auto`); Xen 4.17 triple-faults in early boot under qboot
//!   (QEMU exits 0 with no output), so a run that prints no `(XEN)` line is repeated with QEMU's
//!   default SeaBIOS.
//! - Xen cannot write isa-debug-exit, so the run ends on Xen's `Hardware Dom0 …` line (or a
//!   Xen panic) and is judged by the guest's verdict lines ([`GuestReport`], the contract of
//!   `guest/src/harness.rs`). It passes only with `guest: done`, a summary with 0 failed that
//!   matches the PASS lines, no FAIL or PANIC line, and Xen's `Hardware Dom0 halted` (the
//!   guest's poweroff). A timeout, a crash or a missing line is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::qemu::{self, Boot, Outcome};
use crate::{Result, fail, prereq, root, run_status};

/// The Debian package that carries the hypervisor.
pub const XEN_PACKAGE: &str = "xen-hypervisor-4.17-amd64";
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

/// One test's verdict as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The guest's reason.
    Fail(String),
}

/// Everything the guest said, parsed from `guest: …` lines (any prefix before `guest: ` is
/// ignored, so the same parser reads Argon's and Xen's consoles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    pub suite: Option<String>,
    /// (test name, verdict), in the order printed.
    pub verdicts: Vec<(String, Verdict)>,
    /// `<n> passed, <m> failed`.
    pub summary: Option<(u32, u32)>,
    pub done: bool,
    /// The guest's panic message, if it panicked.
    pub panic: Option<String>,
}

impl GuestReport {
    pub fn parse(serial: &str) -> GuestReport {
        let mut r = GuestReport::default();
        for line in serial.lines() {
            let Some(at) = line.find("guest: ") else {
                continue;
            };
            let msg = line[at + "guest: ".len()..].trim_end();
            if let Some(name) = msg.strip_prefix("PASS ") {
                r.verdicts.push((name.trim().to_string(), Verdict::Pass));
            } else if let Some(rest) = msg.strip_prefix("FAIL ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                r.verdicts
                    .push((name.trim().to_string(), Verdict::Fail(why.to_string())));
            } else if let Some(rest) = msg.strip_prefix("suite ") {
                r.suite = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(rest) = msg.strip_prefix("PANIC ") {
                r.panic = Some(rest.to_string());
            } else if msg == "done" {
                r.done = true;
            } else if let Some(s) = parse_summary(msg) {
                r.summary = Some(s);
            }
        }
        r
    }

    pub fn passed(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(_, v)| *v == Verdict::Pass)
            .count()
    }

    pub fn failed(&self) -> Vec<&(String, Verdict)> {
        self.verdicts
            .iter()
            .filter(|(_, v)| *v != Verdict::Pass)
            .collect()
    }

    /// Why the guest's own account is not a clean pass, or `None` if it is.
    pub fn failure(&self) -> Option<String> {
        if let Some(p) = &self.panic {
            return Some(format!("guest panicked: {p}"));
        }
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            return Some(format!(
                "{} test(s) failed: {}",
                failed.len(),
                names.join(", ")
            ));
        }
        if !self.done {
            return Some("no `guest: done` line (the guest hung or crashed)".into());
        }
        match self.summary {
            None => Some("no `guest: <n> passed, <m> failed` summary".into()),
            Some((_, f)) if f != 0 => Some(format!("summary reports {f} failed")),
            Some((0, _)) => Some("no test ran".into()),
            Some((p, _)) if p as usize != self.passed() => Some(format!(
                "summary says {p} passed but {} PASS lines",
                self.passed()
            )),
            Some(_) => None,
        }
    }
}

/// Parses `<n> passed, <m> failed`.
fn parse_summary(msg: &str) -> Option<(u32, u32)> {
    let (p, f) = msg.split_once(" passed, ")?;
    Some((
        p.trim().parse().ok()?,
        f.strip_suffix(" failed")?.trim().parse().ok()?,
    ))
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

/// The uncompressed Xen 4.17 image, fetched and unpacked into `target/xen/` on first use.
pub fn xen_image() -> Result<PathBuf> {
    let dir = root().join("target/xen");
    let image = dir.join("xen-4.17-amd64");
    if is_elf(&image) {
        return Ok(image);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let deb = match find_deb(&dir) {
        Some(deb) => deb,
        None => download_deb(&dir)?,
    };
    eprintln!("xtask: unpacking {} (not installing it)", deb.display());
    let pkg = dir.join("pkg");
    run_status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&pkg))?;
    let gz = find_hypervisor_gz(&pkg.join("boot"))
        .ok_or_else(|| format!("no boot/xen-4.17*.gz in {}", deb.display()))?;
    let out = Command::new("gunzip")
        .arg("-c")
        .arg(&gz)
        .output()
        .map_err(|e| format!("cannot run gunzip: {e}"))?;
    if !out.status.success() {
        return fail(&format!(
            "gunzip {} failed: {}",
            gz.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    fs::write(&image, &out.stdout).map_err(|e| format!("writing {}: {e}", image.display()))?;
    if !is_elf(&image) {
        return fail(&format!("{} is not an ELF image", image.display()));
    }
    eprintln!("xtask: Xen image {}", image.display());
    Ok(image)
}

fn is_elf(path: &Path) -> bool {
    fs::read(path)
        .map(|b| b.starts_with(b"\x7fELF"))
        .unwrap_or(false)
}

fn find_deb(dir: &Path) -> Option<PathBuf> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.starts_with(XEN_PACKAGE) && name.ends_with(".deb")
        })
        .collect();
    debs.sort();
    debs.pop()
}

fn download_deb(dir: &Path) -> Result<PathBuf> {
    eprintln!(
        "xtask: fetching {XEN_PACKAGE} with apt-get download into {}",
        dir.display()
    );
    let get = || {
        Command::new("apt-get")
            .args(["download", "-q", XEN_PACKAGE])
            .current_dir(dir)
            .status()
    };
    let ok = matches!(get(), Ok(s) if s.success());
    if !ok {
        eprintln!("xtask: apt-get download failed; refreshing the package lists (apt-get update)");
        run_status(Command::new("apt-get").args(["update", "-qq"]))
            .map_err(|e| format!("{e}; as root run: apt-get update, then rerun"))?;
        if !matches!(get(), Ok(s) if s.success()) {
            return fail(&format!(
                "apt-get download {XEN_PACKAGE} failed; this needs a Debian bookworm apt source \
                 (the package is in bookworm and bookworm-security)"
            ));
        }
    }
    find_deb(dir).ok_or_else(|| {
        format!(
            "apt-get download left no {XEN_PACKAGE}*.deb in {}",
            dir.display()
        )
    })
}

fn find_hypervisor_gz(boot: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(boot)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            name.starts_with("xen-4.17") && name.ends_with(".gz")
        })
        .collect();
    found.sort();
    found.pop()
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

pub fn cmd_xen(args: &[String]) -> Result<()> {
    let mut opts = XenOptions::default();
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
            "--quiet" => opts.echo = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--" => opts.extra.extend(it.by_ref().cloned()),
            other => return Err(format!("unknown xen option '{other}'\n{USAGE}")),
        }
    }
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
    match run.failure() {
        None => Ok(()),
        Some(why) => Err(format!("xen run failed: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "(XEN) Freed 656kB init memory\n\
        guest: Argon-test 0.1.0 up\n\
        guest: suite tests (3 tests)\n\
        guest: PASS start_info_magic\n\
        guest: info xen_version 4.17\n\
        (d0) guest: FAIL mmuext_unknown_cmds: rc for cmd 14: got -22, want -38\n\
        guest: PASS xen_version_sane\n\
        guest: 2 passed, 1 failed\n\
        guest: done\n\
        (XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.\n";

    #[test]
    fn parses_verdicts_summary_and_done() {
        let r = GuestReport::parse(LOG);
        assert_eq!(r.suite.as_deref(), Some("tests"));
        assert_eq!(
            r.verdicts,
            vec![
                ("start_info_magic".to_string(), Verdict::Pass),
                (
                    "mmuext_unknown_cmds".to_string(),
                    Verdict::Fail("rc for cmd 14: got -22, want -38".into())
                ),
                ("xen_version_sane".to_string(), Verdict::Pass),
            ]
        );
        assert_eq!(r.summary, Some((2, 1)));
        assert!(r.done);
        assert!(r.failure().unwrap().contains("mmuext_unknown_cmds"));
    }

    #[test]
    fn clean_log_passes_and_gaps_fail() {
        let clean = "guest: PASS a\nguest: PASS b\nguest: 2 passed, 0 failed\nguest: done\n";
        assert_eq!(GuestReport::parse(clean).failure(), None);
        let no_done = "guest: PASS a\nguest: 1 passed, 0 failed\n";
        assert!(
            GuestReport::parse(no_done)
                .failure()
                .unwrap()
                .contains("done")
        );
        let no_summary = "guest: PASS a\nguest: done\n";
        assert!(
            GuestReport::parse(no_summary)
                .failure()
                .unwrap()
                .contains("summary")
        );
        let mismatch = "guest: PASS a\nguest: 2 passed, 0 failed\nguest: done\n";
        assert!(
            GuestReport::parse(mismatch)
                .failure()
                .unwrap()
                .contains("PASS lines")
        );
        let none_ran = "guest: 0 passed, 0 failed\nguest: done\n";
        assert!(GuestReport::parse(none_ran).failure().is_some());
        let panic =
            "guest: PASS a\nguest: PANIC at x.rs:1\nguest: 0 passed, 1 failed\nguest: done\n";
        assert!(
            GuestReport::parse(panic)
                .failure()
                .unwrap()
                .contains("panicked")
        );
    }

    #[test]
    fn summary_parser() {
        assert_eq!(parse_summary("14 passed, 0 failed"), Some((14, 0)));
        assert_eq!(parse_summary("x passed, 0 failed"), None);
        assert_eq!(parse_summary("Argon-test 0.1.0 up"), None);
    }
}
