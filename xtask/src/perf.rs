//! `cargo xtask perf`: the host bench end to end, then the in-guest part (`perf_guest`:
//! `mmu-stress` on Argon and Xen 4.17 under QEMU; `--vcpus N`, `--no-guest`, `--no-xen`).
//!
//! Builds `perf` in release, runs it (forwarding `--quick`, `--threads N`, `--reps N`,
//! `--window-ms MS`), runs its fixed `--callgrind` workload under valgrind (`perf_callgrind`;
//! `--no-callgrind` skips it), and writes `perf/RESULTS.md` (tables, machine, exact commands,
//! date). Nothing here judges a timing: numbers are reported, never asserted.

use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Result, fail, perf_callgrind, root, run_status};


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
        match perf_callgrind::ensure_valgrind() {
            Ok(()) => perf_callgrind::run_callgrind(&bin, &results, quick, &mut commands)?,
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
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// A command as one shell line (for RESULTS.md); cargo by name, with `CARGO_TARGET_DIR`.
pub(crate) fn shell(cmd: &Command) -> String {
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
    fn shell_quotes_arguments_with_spaces() {
        let mut c = Command::new("perf");
        c.args(["--out", "a b", "--quick"]);
        assert_eq!(shell(&c), "perf --out 'a b' --quick");
    }
}
