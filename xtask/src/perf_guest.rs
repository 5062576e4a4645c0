//! `cargo xtask perf`, in-guest part: the guest kernel's `mmu-stress` workload at 1..=N vCPUs
//! (QEMU CPUs = vCPUs) on Argon and, with the very same image, on Xen 4.17 as dom0 under the
//! same QEMU (TCG, `-cpu max`, 512 MiB, SeaBIOS, dom0 64 MiB); Argon's boot-time IPI round trip
//! (`argon.bench=ipi`) in every Argon run. Boots alternate Argon, Xen, Argon, … so that drift
//! in the machine's load hits both. This file owns the options and the runs; parsing and
//! figures are `perf_guest_report`'s, the files and the RESULTS.md section `perf_guest_out`'s.
//! Nothing here judges a time.
//!
//! Time: the guest reports TSC ticks (`rdtsc`). Under TCG the guest's TSC is the host's on both
//! hypervisors, so ticks become seconds at the host's TSC rate, measured here against the OS
//! clock; every run also checks the rate the guest saw against the arrival times of its first
//! and last lines on the host's clock.
//!
//! Disturbance: QEMU's vCPU threads need the host's cores, which other work on a shared machine
//! takes. Every boot is watched like the host bench's repetitions (`/proc/stat` busy time minus
//! our own and our children's, i.e. QEMU's, CPU time); a boot during which others used more
//! than the cores its vCPUs leave free plus [`DISTURBED`] CPUs' worth ([`limit`]) is repeated,
//! up to [`ATTEMPTS`] boots, and the least disturbed one is kept (marked in RESULTS.md when all
//! were disturbed).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::perf_guest_out;
use crate::perf_guest_report::{self as report, BootResult, Hv};
use crate::qemu::{self, Boot, EXIT_SUCCESS};
use crate::xen::{self, Firmware, XenOptions};
use crate::{Result, fail};

/// The in-guest part's options (`cargo xtask perf` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest vCPU count (`--vcpus N`; default: the host's available cores).
    pub vcpus: u32,
    /// `--no-guest` turns the whole part off.
    pub enabled: bool,
    /// `--no-xen` skips the Xen runs.
    pub xen: bool,
}

impl Default for Options {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        Options {
            vcpus: cores.max(1),
            enabled: true,
            xen: true,
        }
    }
}

impl Options {
    /// Takes `flag` (and its value from `rest`) if it is one of this part's; `Ok(false)` if not.
    pub fn take<'a>(
        &mut self,
        flag: &str,
        rest: &mut impl Iterator<Item = &'a String>,
    ) -> Result<bool> {
        match flag {
            "--vcpus" => {
                let v = rest.next().ok_or("--vcpus needs a value")?;
                self.vcpus = v.parse().map_err(|e| format!("--vcpus: {e}"))?;
                if !(1..=32).contains(&self.vcpus) {
                    return fail("--vcpus must be 1..=32");
                }
            }
            "--no-guest" => self.enabled = false,
            "--no-xen" => self.xen = false,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The workload's size: `(iters, reps, flushes)` per boot, and boots per point.
pub fn sizes(quick: bool) -> (u64, u64, u64, u32) {
    if quick {
        (200, 1, 50, 1)
    } else {
        (2000, 3, 200, 3)
    }
}

/// Batch size of every run.
pub const BATCH: u32 = 64;
/// Machine memory of every boot (Xen's runner uses 512 MiB; Argon's runs match it).
const MEMORY_MB: u32 = 512;
/// Other processes' CPU use (in CPUs) beyond the cores a boot's vCPUs leave free, above which
/// the boot counts as disturbed.
pub const DISTURBED: f64 = 0.1;
/// Boots per point at most, while they are disturbed.
const ATTEMPTS: u32 = 3;

/// What the part produced: RESULTS.md's section, and how many boots failed.
pub struct GuestPart {
    pub md: String,
    pub failures: usize,
}

/// Runs the part; `commands` gets every command line it ran.
pub fn run(
    opts: &Options,
    quick: bool,
    results: &Path,
    commands: &mut Vec<String>,
) -> Result<GuestPart> {
    if !opts.enabled {
        return Ok(GuestPart {
            md: "## In-guest scaling and Xen side by side\n\nNot run (--no-guest).\n".into(),
            failures: 0,
        });
    }
    crate::prereq::ensure_all()?;
    let image = crate::build_image()?;
    let guest = xen::build_guest()?;
    let (iters, reps, flushes, rounds) = sizes(quick);
    let args = format!("mmu-stress batch={BATCH} iters={iters} reps={reps} flushes={flushes}");
    let tsc_ghz = host_tsc_ghz();
    eprintln!(
        "xtask: perf: host TSC {tsc_ghz:.4} GHz; in-guest runs at 1..={} vCPUs",
        opts.vcpus
    );
    let load_before = load_average();
    let mut boots = Vec::new();
    for v in 1..=opts.vcpus {
        let limit = limit(v);
        for _ in 0..rounds {
            let argon = || argon_boot(&image, &guest, v, &args, commands);
            boots.push(watched(limit, argon));
            if opts.xen {
                boots.push(watched(limit, || xen_boot(&guest, v, &args, commands)));
            }
        }
    }
    let failures = boots.iter().filter(|b| b.failure.is_some()).count();
    for b in boots.iter().filter(|b| b.failure.is_some()) {
        eprintln!(
            "xtask: perf: {} at {} vCPUs failed: {}",
            b.hv.name(),
            b.vcpus,
            b.failure.as_deref().unwrap_or_default()
        );
    }
    let setup = report::Setup {
        tsc_ghz,
        vcpus: opts.vcpus,
        cores: Options::default().vcpus,
        args,
        rounds,
        qemu: qemu_version(),
        load: [load_before, load_average()],
    };
    let md = perf_guest_out::write(&setup, &boots, results)?;
    Ok(GuestPart { md, failures })
}

/// One Argon boot of the workload at `v` vCPUs on `v` CPUs.
fn argon_boot(
    image: &Path,
    guest: &Path,
    v: u32,
    args: &str,
    commands: &mut Vec<String>,
) -> BootResult {
    let mut boot = Boot::new(image);
    // SeaBIOS (QEMU's default), as for Xen: both hypervisors boot from the same firmware.
    boot.bios = None;
    boot.smp = v;
    boot.memory_mb = MEMORY_MB;
    boot.cmdline = "argon.bench=ipi".into();
    boot.modules = vec![(guest.to_path_buf(), format!("vcpus={v} {args}"))];
    boot.timeout = timeout(v);
    commands.push(boot.describe());
    eprintln!("xtask: perf: Argon, {v} vCPU(s): {}", boot.describe());
    let out = match qemu::run(&boot, None, false) {
        Ok(o) => o,
        Err(e) => return BootResult::failed(Hv::Argon, v, format!("starting QEMU: {e}")),
    };
    let failure = out
        .verdict(EXIT_SUCCESS, "argon: exit: success")
        .or_else(|| guest_failure(&out.serial));
    report::parse_boot(Hv::Argon, v, &out.serial, &out.line_times, failure)
}

/// One Xen boot of the workload at `v` vCPUs on `v` CPUs (SeaBIOS: Xen 4.17 triple-faults
/// under qboot, see `xen.rs`).
fn xen_boot(guest: &Path, v: u32, args: &str, commands: &mut Vec<String>) -> BootResult {
    let opts = XenOptions {
        suite: args.to_string(),
        smp: v,
        timeout: timeout(v),
        bios: Firmware::SeaBios,
        guest: Some(PathBuf::from(guest)),
        extra: vec![format!("dom0_max_vcpus={v}")],
        echo: false,
    };
    commands.push(format!(
        "cargo xtask xen --smp {v} --bios seabios --guest {} --suite '{args}' \
         -- dom0_max_vcpus={v}",
        guest.display()
    ));
    eprintln!("xtask: perf: Xen 4.17, {v} vCPU(s)");
    match xen::run_xen(&opts) {
        Ok(run) => {
            let failure = run.failure();
            let o = &run.outcome;
            report::parse_boot(Hv::Xen, v, &o.serial, &o.line_times, failure)
        }
        Err(e) => BootResult::failed(Hv::Xen, v, e),
    }
}

/// Other processes' CPU use a boot of `vcpus` vCPUs tolerates: the cores its vCPU threads
/// leave free, plus [`DISTURBED`].
pub fn limit(vcpus: u32) -> f64 {
    f64::from(Options::default().vcpus.saturating_sub(vcpus)) + DISTURBED
}

/// Why the guest's own account of an Argon boot is not a pass (its `PASS mmu_stress`, a clean
/// audit, no `FAIL` line), or `None`.
fn guest_failure(serial: &str) -> Option<String> {
    if let Some(l) = serial.lines().find(|l| l.contains("guest: FAIL")) {
        return Some(l.trim().to_string());
    }
    ["guest: PASS mmu_stress", "guest: PASS audit", "guest: done"]
        .into_iter()
        .find(|m| !serial.contains(m))
        .map(|m| format!("the guest never printed {m:?}"))
}

/// Boots with `boot` until one is undisturbed (or failed), at most [`ATTEMPTS`] times; keeps
/// the least disturbed, with the number of boots made.
fn watched(limit: f64, mut boot: impl FnMut() -> BootResult) -> BootResult {
    let mut best: Option<BootResult> = None;
    let mut made = 0;
    for attempt in 1..=ATTEMPTS {
        made = attempt;
        let before = Cpu::now();
        let mut b = boot();
        b.others = before.zip(Cpu::now()).map(|(a, z)| a.others_until(&z));
        let quiet = b.others.is_none_or(|o| o <= limit);
        if let Some(o) = b.others.filter(|_| !quiet) {
            eprintln!("xtask: perf: others used {o:.2} CPUs during that boot (limit {limit:.2})");
        }
        let better = best.as_ref().is_none_or(|x| {
            b.others.unwrap_or(0.0) < x.others.unwrap_or(0.0) || x.failure.is_some()
        });
        if better {
            best = Some(b);
        }
        if quiet || best.as_ref().is_some_and(|x| x.failure.is_some()) {
            break;
        }
    }
    let mut b = best.expect("ATTEMPTS >= 1");
    b.attempts = made;
    b
}

/// System-wide busy time and ours (with waited-for children: QEMU and its `timeout`), in
/// clock ticks, from `/proc`.
struct Cpu {
    busy: u64,
    total: u64,
    ours: u64,
    cpus: u64,
}

impl Cpu {
    fn now() -> Option<Cpu> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        let [user, nice, system, idle, iowait, irq, softirq, steal] = v.try_into().ok()?;
        let busy = user + nice + system + irq + softirq + steal;
        // Fields 14–17 (utime, stime, cutime, cstime), counted after the command's ')'.
        let f: Vec<u64> = own[own.rfind(')')? + 1..]
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|x| x.parse().ok())
            .collect();
        Some(Cpu {
            busy,
            total: busy + idle + iowait,
            ours: f.iter().sum(),
            cpus: stat
                .lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .count() as u64,
        })
    }

    /// CPUs' worth of other processes' time between `self` and `later`.
    fn others_until(&self, later: &Cpu) -> f64 {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.ours.saturating_sub(self.ours);
        busy.saturating_sub(ours) as f64 / total * self.cpus.max(1) as f64
    }
}

/// Generous: an oversubscribed 8-vCPU run under TCG on two cores takes minutes.
fn timeout(vcpus: u32) -> Duration {
    Duration::from_secs(120 + 60 * u64::from(vcpus))
}

/// The host's TSC rate in GHz, against the OS clock over 200 ms.
fn host_tsc_ghz() -> f64 {
    let rdtsc = || {
        // SAFETY: rdtsc only reads the time-stamp counter (every x86-64 CPU has one).
        unsafe { core::arch::x86_64::_rdtsc() }
    };
    let (i0, t0) = (Instant::now(), rdtsc());
    std::thread::sleep(Duration::from_millis(200));
    let (t1, ns) = (rdtsc(), i0.elapsed().as_nanos() as f64);
    t1.wrapping_sub(t0) as f64 / ns
}

/// `qemu-system-x86_64 --version`'s first line.
fn qemu_version() -> String {
    std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            text.lines().next().unwrap_or("unknown").trim().to_string()
        })
        .unwrap_or_else(|_| "unknown".into())
}

/// /proc/loadavg's first three fields.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
