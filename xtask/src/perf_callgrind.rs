//! The callgrind part of `cargo xtask perf`: valgrind (installed through apt when root and
//! missing), the bench's fixed `--callgrind` workload per design and variant at two sizes,
//! instructions per update from the totals, and the per-function breakdown of Argon's `rw` path.
//!
//! Instructions per update are exact: every callgrind workload runs the same setup, so two runs
//! of `a` and `b` updates give `(Ir(b) − Ir(a)) / (b − a)` with the setup cancelled out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::perf::{shell, target_dir};
use crate::{Result, run_status};

const DESIGNS: [&str; 3] = ["argon", "global_lock", "per_table_lock"];
const VARIANTS: [&str; 2] = ["rw", "ro"];
/// Functions listed in RESULTS.md's per-update callgrind breakdown.
const TOP_FUNCTIONS: usize = 12;

/// valgrind present, or installed through apt when we are root on Debian/Ubuntu.
pub(crate) fn ensure_valgrind() -> std::result::Result<(), String> {
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
pub(crate) fn run_callgrind(
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
}
