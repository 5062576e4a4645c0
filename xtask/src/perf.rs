//! `cargo xtask perf`: the host bench end to end, then the in-guest part (`perf_guest`:
//! `mmu-stress` on Argon and Xen 4.17 under QEMU; `--vcpus N`, `--no-guest`, `--no-xen`).
//!
//! Builds `perf` in release, runs it (forwarding `--quick`, `--threads N`, `--reps N`,
//! `--window-ms MS`), runs its fixed `--callgrind` workload under `valgrind --tool=callgrind`
//! (installing valgrind through apt when root and missing, like `prereq` does for QEMU), derives
//! instructions per update from callgrind's totals, and writes `perf/results/host_callgrind.csv`
//! and `perf/RESULTS.md` (tables, machine, exact commands, date). `--no-callgrind` skips
//! valgrind. Nothing here judges a timing: numbers are reported, never asserted.
//!
//! Instructions per update are exact: every callgrind workload runs the same setup, so two runs
//! of `a` and `b` updates give `(Ir(b) − Ir(a)) / (b − a)` with the setup cancelled out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Result, fail, root, run_status};

const DESIGNS: [&str; 3] = ["argon", "global_lock", "per_table_lock"];
const VARIANTS: [&str; 2] = ["rw", "ro"];
/// Functions listed in RESULTS.md's per-update callgrind breakdown.
const TOP_FUNCTIONS: usize = 12;

pub fn cmd_perf(args: &[String]) -> Result<()> {
    let mut forward = Vec::new();
    let (mut quick, mut callgrind) = (false, true);
    let mut guest = crate::perf_guest::Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--no-callgrind" => callgrind = false,
            "--quick" => {
                quick = true;
                forward.push(a.clone());
            }
            "--threads" | "--reps" | "--window-ms" => {
                forward.push(a.clone());
                forward.push(it.next().ok_or(format!("{a} needs a value"))?.clone());
            }
            other if guest.take(other, &mut it)? => {}
            other => {
                return fail(&format!(
                    "unknown perf option '{other}' (--quick, --threads N, --reps N, \
                     --window-ms MS, --no-callgrind, --vcpus N, --no-guest, --no-xen)"
                ));
            }
        }
    }
    let commit = git_describe();
    let results = root().join("perf/results");
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(root())
        .args(["build", "--release", "-p", "perf"]);
    let mut commands = vec![shell(&build)];
    run_status(&mut build)?;
    let bin = target_dir().join("release/perf");
    let mut bench = Command::new(&bin);
    bench
        .current_dir(root())
        .args(&forward)
        .arg("--out")
        .arg(&results);
    commands.push(shell(&bench));
    eprintln!("xtask: {}", shell(&bench));
    let out = bench
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("starting perf: {e}"))?;
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    print!("{summary}");
    if !out.status.success() {
        return fail(&format!("perf failed with {}", out.status));
    }
    let cg_md = if !callgrind {
        "callgrind not run: skipped (--no-callgrind)\n".to_string()
    } else {
        match ensure_valgrind() {
            Ok(()) => run_callgrind(&bin, &results, quick, &mut commands)?,
            Err(why) => format!("callgrind not run: {why}\n"),
        }
    };
    print!("{cg_md}");
    let part = crate::perf_guest::run(&guest, quick, &results, &mut commands)?;
    print!("{}", part.md);
    let md = results_md(&summary, &cg_md, &commands, args, &commit) + "\n" + &part.md;
    let path = root().join("perf/RESULTS.md");
    fs::write(&path, md).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {} and perf/results/", path.display());
    match part.failures {
        0 => Ok(()),
        n => fail(&format!("{n} in-guest boot(s) failed (see RESULTS.md)")),
    }
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`, relative to the workspace root).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// A command as one shell line (for RESULTS.md); cargo by name, with `CARGO_TARGET_DIR`.
fn shell(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().to_string();
    if s == env!("CARGO") {
        s = match std::env::var("CARGO_TARGET_DIR") {
            Ok(d) => format!("CARGO_TARGET_DIR={d} cargo"),
            Err(_) => "cargo".into(),
        };
    }
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.contains([' ', '"', '\'']) {
            s.push_str(&format!("'{a}'"))
        } else {
            s.push_str(&a)
        }
    }
    s
}

/// valgrind present, or installed through apt when we are root on Debian/Ubuntu.
fn ensure_valgrind() -> std::result::Result<(), String> {
    let ok = || {
        Command::new("valgrind")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok() {
        return Ok(());
    }
    eprintln!("xtask: valgrind not found");
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err("valgrind is missing and apt-get is not available; install valgrind".into());
    }
    if !is_root {
        return Err(
            "valgrind is missing; run: sudo apt-get update && sudo apt-get install -y valgrind"
                .into(),
        );
    }
    eprintln!("xtask: installing valgrind: apt-get update && apt-get install -y valgrind");
    let install = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null";
    run_status(Command::new("sh").args(["-c", install]))?;
    if ok() {
        Ok(())
    } else {
        Err("valgrind was installed but does not run".into())
    }
}

/// One callgrind measurement: a design and variant at two workload sizes.
#[derive(Debug, Clone)]
struct CgRow {
    design: &'static str,
    variant: &'static str,
    updates: [u64; 2],
    ir: [u64; 2],
}

impl CgRow {
    fn per_update(&self) -> Option<f64> {
        let du = self.updates[1]
            .checked_sub(self.updates[0])
            .filter(|d| *d > 0)?;
        Some(self.ir[1].checked_sub(self.ir[0])? as f64 / du as f64)
    }
}

/// Runs every design/variant under callgrind; returns the markdown section.
fn run_callgrind(
    bin: &Path,
    results: &Path,
    quick: bool,
    commands: &mut Vec<String>,
) -> Result<String> {
    let sizes: [u64; 2] = if quick {
        [2_000, 4_000]
    } else {
        [10_000, 20_000]
    };
    let raw = target_dir().join("perf-callgrind");
    fs::create_dir_all(&raw).map_err(|e| format!("creating {}: {e}", raw.display()))?;
    let mut rows = Vec::new();
    let mut breakdown = String::new();
    for design in DESIGNS {
        for variant in VARIANTS {
            let mut row = CgRow {
                design,
                variant,
                updates: sizes,
                ir: [0; 2],
            };
            let mut files = Vec::new();
            for (i, n) in sizes.into_iter().enumerate() {
                let file = raw.join(format!("{design}-{variant}-{n}.out"));
                let mut cmd = Command::new("valgrind");
                cmd.arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", file.display()))
                    .arg(bin)
                    .args([
                        "--callgrind",
                        "--design",
                        design,
                        "--variant",
                        variant,
                        "--updates",
                        &n.to_string(),
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                commands.push(shell(&cmd));
                run_status(&mut cmd)?;
                let text = fs::read_to_string(&file)
                    .map_err(|e| format!("reading {}: {e}", file.display()))?;
                row.ir[i] =
                    callgrind_total(&text).ok_or(format!("no totals in {}", file.display()))?;
                files.push(file);
            }
            if design == "argon" && variant == "rw" {
                breakdown = per_function(&files, sizes).unwrap_or_default();
            }
            rows.push(row);
        }
    }
    let mut csv = String::from("design,variant,updates_a,updates_b,ir_a,ir_b,ir_per_update\n");
    let mut md = String::from("### Instructions per update (callgrind, single thread)\n\n");
    md.push_str("| design | variant | Ir per update | vs argon |\n|---|---|---|---|\n");
    for r in &rows {
        let per = r.per_update().map_or(String::new(), |p| format!("{p:.1}"));
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{per}",
            r.design, r.variant, r.updates[0], r.updates[1], r.ir[0], r.ir[1]
        );
        let argon = rows
            .iter()
            .find(|a| a.design == "argon" && a.variant == r.variant)
            .and_then(CgRow::per_update);
        let vs = r
            .per_update()
            .zip(argon)
            .map_or("–".into(), |(p, a)| format!("{:.2}×", p / a));
        let _ = writeln!(md, "| {} | {} | {per} | {vs} |", r.design, r.variant);
    }
    let _ = writeln!(
        md,
        "\n(Ir(b) − Ir(a)) / (b − a) with a = {}, b = {} updates: setup cancels out.\n",
        sizes[0], sizes[1]
    );
    md.push_str(&breakdown);
    let path = results.join("host_callgrind.csv");
    fs::write(&path, csv).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(md)
}

/// The `totals:` (or `summary:`) line of a callgrind output file: total Ir.
fn callgrind_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("totals:"))
        .or_else(|| text.lines().find(|l| l.starts_with("summary:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Self Ir per function from `callgrind_annotate --auto=no` output
/// ("1,234 (5.0%)  file:function [object]"); the file (the source line's, which differs for
/// inlined code) and the object are dropped, so callers sum a function's lines.
fn annotate_functions(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let (num, rest) = l.split_once(' ')?;
            let ir: u64 = num.replace(',', "").parse().ok()?;
            let name = rest
                .trim_start()
                .strip_prefix('(')?
                .split_once(')')?
                .1
                .trim();
            let name = name.split(" [").next()?;
            let name = name.split_once(':').map_or(name, |(_, f)| f).to_string();
            (!name.contains("PROGRAM TOTALS")).then_some((name, ir))
        })
        .collect()
}

/// Per-update self Ir of the top functions, from the difference of the two runs' annotations.
fn per_function(files: &[PathBuf], sizes: [u64; 2]) -> Option<String> {
    let annotate = |f: &PathBuf| {
        let o = Command::new("callgrind_annotate")
            .args(["--auto=no", "--threshold=100"])
            .arg(f)
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| annotate_functions(&String::from_utf8_lossy(&o.stdout)))
    };
    let (a, b) = (annotate(files.first()?)?, annotate(files.get(1)?)?);
    let du = (sizes[1] - sizes[0]) as f64;
    let mut by_fn: BTreeMap<String, f64> = BTreeMap::new();
    for (sign, runs) in [(1.0, b), (-1.0, a)] {
        for (name, ir) in runs {
            *by_fn.entry(name).or_default() += sign * ir as f64 / du;
        }
    }
    let mut per: Vec<(f64, String)> = by_fn.into_iter().map(|(n, p)| (p, n)).collect();
    per.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut md = String::from(
        "Where argon rw's instructions go (self Ir per update by function, inlined code \
         counted in its caller; from the same two runs):\n\n",
    );
    md.push_str("| Ir/update | function |\n|---|---|\n");
    for (p, n) in per.into_iter().take(TOP_FUNCTIONS) {
        let _ = writeln!(md, "| {p:.1} | `{n}` |");
    }
    md.push('\n');
    Some(md)
}

/// CPU model and count from /proc/cpuinfo.
fn machine() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| {
        l.strip_prefix("model name")?
            .split_once(':')
            .map(|x| x.1.trim().to_string())
    });
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let virt = if info.contains(" hypervisor") {
        ", virtual machine"
    } else {
        ""
    };
    let avail = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} — {cpus} logical CPU(s) in /proc/cpuinfo, {avail} available to this process{virt}",
        model.unwrap_or_else(|| "unknown CPU".into())
    )
}

/// The tree about to be built and measured (`-dirty`: with uncommitted changes).
fn git_describe() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn results_md(
    summary: &str,
    callgrind: &str,
    commands: &[String],
    args: &[String],
    commit: &str,
) -> String {
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut md = String::from("# Bench results\n\nWritten by `cargo xtask perf");
    for a in args {
        md.push(' ');
        md.push_str(a);
    }
    let _ = writeln!(md, "`; see `perf/README.md` for how to read it.\n");
    let _ = writeln!(
        md,
        "- Date: {date}\n- Commit: {commit}\n- Machine: {}\n- Toolchain: {rustc}\n",
        machine()
    );
    md.push_str("Commands run:\n\n```sh\n");
    for c in commands {
        let _ = writeln!(md, "{c}");
    }
    md.push_str("```\n\n");
    md.push_str(summary);
    md.push('\n');
    md.push_str(callgrind);
    md.push_str("\n### Plots\n\n");
    for mode in ["disjoint", "shared_table", "hot_frame"] {
        let _ = writeln!(md, "![{mode}](results/host_scaling_{mode}.svg)");
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callgrind_totals_and_per_update() {
        assert_eq!(
            callgrind_total("events: Ir\nsummary: 42\ntotals: 42\n"),
            Some(42)
        );
        assert_eq!(callgrind_total("summary: 7\n"), Some(7));
        assert_eq!(callgrind_total("events: Ir\n"), None);
        let r = CgRow {
            design: "argon",
            variant: "rw",
            updates: [10, 20],
            ir: [1_500, 2_500],
        };
        assert_eq!(r.per_update(), Some(100.0));
        let bad = CgRow {
            updates: [10, 10],
            ..r.clone()
        };
        assert_eq!(bad.per_update(), None);
    }

    #[test]
    fn parses_annotate_lines() {
        let text = "20,794,495 (100.0%)  PROGRAM TOTALS\n\
                    1,760,572 ( 8.47%)  /x/state.rs:hvcore::frame::decode\n\
                    1,740,688 ( 8.37%)  /x/update.rs:mod_entry [/tmp/perf]\n\
                    Ir  file:function\n";
        let f = annotate_functions(text);
        let want = [
            ("hvcore::frame::decode", 1_760_572),
            ("mod_entry", 1_740_688),
        ];
        assert_eq!(f, want.map(|(n, x)| (n.to_string(), x)));
    }

    #[test]
    fn shell_quotes_arguments_with_spaces() {
        let mut c = Command::new("perf");
        c.args(["--out", "a b", "--quick"]);
        assert_eq!(shell(&c), "perf --out 'a b' --quick");
    }
}
