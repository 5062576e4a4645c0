//! `cargo xtask`: build, run and test Argon.
//!
//! - `cargo xtask build`            build the hypervisor image (and guests) for bare metal
//! - `cargo xtask run [flags] [-- hypervisor options]`
//!                                  boot Argon under QEMU and stream its console
//! - `cargo xtask test`             every test tier; ends with `N passed, N failed`
//! - `cargo xtask loom`             the loom models and their mutants alone
//! - `cargo xtask xen`              boot the guest image on Xen 4.17 (downloaded, never installed)
//! - `cargo xtask perf [--quick]`   host bench, then `mmu-stress` on Argon and on Xen 4.17
//!
//! Each command first installs what it lacks (see `prereq`).

mod loom;
mod perf;
mod perf_callgrind;
mod perf_guest;
mod perf_guest_out;
mod perf_guest_report;
mod prereq;
mod qemu;
/// The host bench's SVG writer, shared with the in-guest part.
#[path = "../../perf/src/svg.rs"]
mod svg;
mod symbols;
mod tests;
mod tests_domains;
mod tests_guest;
mod tests_smp;
mod xen;
mod xen_compare;
mod xen_fetch;
mod xen_report;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

pub type Result<T> = std::result::Result<T, String>;

pub fn fail<T>(msg: &str) -> Result<T> {
    Err(msg.to_string())
}

/// Runs a command, turning a non-zero exit into an error naming it.
pub fn run_status(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .into()
}

/// Builds the bare-metal hypervisor image and returns its path.
pub fn build_image() -> Result<PathBuf> {
    prereq::ensure_target()?;
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(root())
        .args([
            "build",
            "--release",
            "-p",
            "argon",
            "--target",
            "x86_64-unknown-none",
        ])
        // Frame pointers give crash reports a backtrace.
        .env("RUSTFLAGS", "-C force-frame-pointers=yes");
    run_status(&mut cmd)?;
    Ok(root().join("target/x86_64-unknown-none/release/argon"))
}

const USAGE: &str = "usage: cargo xtask <build|run|test|loom|xen|perf> [options]

run options:
  --smp N            CPUs (default 4)
  --memory MB        guest RAM of the machine (default 256)
  --accel tcg|kvm    accelerator (default tcg; kvm is a boot smoke test only on kvm_pvm hosts)
  --cpu MODEL        QEMU -cpu model under TCG (default max; e.g. max,-x2apic)
  --guest NAME|PATH  a domain per use (repeatable; the first is domain 0): NAME is a suite of the
                     built test kernel (demo, tests), PATH any PV ELF image (default: demo)
  --vcpus N          vCPUs of each --guest domain (default 4)
  --no-guest         boot with no domain at all
  --module PATH[:ARGS]  add a raw boot module (repeatable)
  --timeout SECS     stop QEMU after this long (default 120)
  --gdb              wait for gdb on localhost:1234
  -- ARGS...         extra hypervisor command line (e.g. loglvl=debug)

xen options:
  --suite NAME --smp N --timeout SECS --bios auto|qboot|seabios --guest PATH --quiet -- XEN-OPTIONS

test options:
  --filter TEXT      run only tests whose name contains TEXT
  --skip-host        skip the host test tier
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build_image().map(|p| println!("{}", p.display())),
        Some("run") => cmd_run(&args[1..]),
        Some("test") => tests::cmd_test(&args[1..]),
        Some("loom") => loom::cmd_loom(&args[1..]),
        Some("xen") => xen::cmd_xen(&args[1..]),
        Some("perf") => perf::cmd_perf(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command '{other}'\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cmd_run(args: &[String]) -> Result<()> {
    let mut smp = 4;
    let mut memory = 256;
    let mut accel = qemu::Accel::Tcg;
    let mut cpu = "max".to_string();
    let mut modules = Vec::new();
    let mut timeout = 120;
    let mut gdb = false;
    let mut extra = Vec::new();
    let mut guests: Vec<String> = Vec::new();
    let mut vcpus = 4u32;
    let mut no_guest = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--smp" => smp = value("--smp")?.parse().map_err(|e| format!("--smp: {e}"))?,
            "--memory" => {
                memory = value("--memory")?
                    .parse()
                    .map_err(|e| format!("--memory: {e}"))?
            }
            "--accel" => {
                accel = match value("--accel")?.as_str() {
                    "tcg" => qemu::Accel::Tcg,
                    "kvm" => qemu::Accel::Kvm,
                    other => return Err(format!("--accel: unknown accelerator '{other}'")),
                }
            }
            "--cpu" => cpu = value("--cpu")?,
            "--module" => {
                let v = value("--module")?;
                let (path, margs) = v.split_once(':').unwrap_or((&v, ""));
                modules.push((PathBuf::from(path), margs.to_string()));
            }
            "--timeout" => {
                timeout = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?
            }
            "--gdb" => gdb = true,
            "--guest" => guests.push(value("--guest")?),
            "--vcpus" => {
                vcpus = value("--vcpus")?
                    .parse()
                    .map_err(|e| format!("--vcpus: {e}"))?
            }
            "--no-guest" => no_guest = true,
            "--" => {
                extra.extend(it.by_ref().cloned());
            }
            other => return Err(format!("unknown run option '{other}'\n{USAGE}")),
        }
    }
    prereq::ensure_all()?;
    let image = build_image()?;
    if guests.is_empty() && modules.is_empty() && !no_guest {
        guests.push("demo".into());
    }
    let mut domains = Vec::new();
    for g in &guests {
        let vcpu_arg = if vcpus > 1 {
            format!("vcpus={vcpus} ")
        } else {
            String::new()
        };
        if g.contains('/') || std::path::Path::new(g).exists() {
            domains.push((PathBuf::from(g), vcpu_arg.trim_end().to_string()));
        } else {
            let kernel = xen::build_guest()?;
            domains.push((kernel, format!("{vcpu_arg}{g}")));
        }
    }
    domains.extend(modules);
    let modules = domains;
    let mut boot = qemu::Boot::new(&image);
    boot.smp = smp;
    boot.memory_mb = memory;
    boot.accel = accel;
    boot.cpu = cpu;
    boot.modules = modules;
    boot.cmdline = extra.join(" ");
    boot.timeout = Duration::from_secs(timeout);
    boot.gdb = gdb;
    if accel == qemu::Accel::Kvm {
        eprintln!(
            "xtask: note: KVM is a boot smoke test only on hosts like kvm_pvm, where ring-3 \
             syscall is broken; functional runs use TCG"
        );
    }
    eprintln!("xtask: {}", boot.describe());
    let syms = symbols::Symbols::load(&image);
    let out = qemu::run(&boot, syms.as_ref(), true).map_err(|e| format!("starting QEMU: {e}"))?;
    match out.verdict(qemu::EXIT_SUCCESS, "argon: exit") {
        None => Ok(()),
        Some(why) => Err(format!("run failed: {why}")),
    }
}
