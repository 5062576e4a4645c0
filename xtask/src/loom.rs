//! `cargo xtask loom`: the loom tier.
//!
//! Runs every model in `loom-tests/` under `--cfg loom` in release mode with a bounded number of
//! preemptions, then every mutant listed in `loom-tests/MUTANTS` (one per line:
//! `<mutant> <test-filter>`), each built with `--cfg loom_mutant="<mutant>"`; a mutant passes only
//! when loom *finds* its bug (the filtered model fails).

use std::process::Command;
use std::time::Instant;

use crate::{Result, root};

/// Loom's preemption bound for every model (LOOM_MAX_PREEMPTIONS). Two preemptions find every
/// bug the mutants plant while keeping the tier well inside its time budget.
pub const MAX_PREEMPTIONS: &str = "2";

/// One result line of the tier: (name, Ok or why not).
pub type Verdict = (String, std::result::Result<(), String>);

fn cargo_loom(mutant: Option<&str>, filter: Option<&str>) -> Command {
    let mut flags = String::from("--cfg loom");
    if let Some(m) = mutant {
        flags.push_str(&format!(" --cfg loom_mutant=\"{m}\""));
    }
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(root())
        .args(["test", "--release", "-p", "loom-tests", "--color", "never"])
        .env("RUSTFLAGS", flags)
        .env("CARGO_TARGET_DIR", root().join("target/loom"))
        .env("LOOM_MAX_PREEMPTIONS", MAX_PREEMPTIONS);
    if let Some(f) = filter {
        c.args(["--", f]);
    }
    c
}

/// Reads `loom-tests/MUTANTS`.
pub fn mutants() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("loom-tests/MUTANTS")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// Runs the models and the mutants; returns one verdict per model test and per mutant.
pub fn run_tier(echo: bool) -> Vec<Verdict> {
    let mut out = Vec::new();
    let started = Instant::now();
    match cargo_loom(None, None).output() {
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            let mut any = false;
            for line in text.lines() {
                let Some(rest) = line.strip_prefix("test ") else {
                    continue;
                };
                let Some((name, result)) = rest.rsplit_once(" ... ") else {
                    continue;
                };
                any = true;
                let v = if result.trim() == "ok" {
                    Ok(())
                } else {
                    Err(result.trim().to_string())
                };
                out.push((format!("loom/{name}"), v));
            }
            if !any {
                let errs: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("error"))
                    .take(8)
                    .collect();
                out.push((
                    "loom/build".into(),
                    Err(format!("no loom test ran\n{}", errs.join("\n"))),
                ));
            }
        }
        Err(e) => out.push(("loom/build".into(), Err(format!("cannot run cargo: {e}")))),
    }
    if echo {
        println!("loom models: {:.0}s", started.elapsed().as_secs_f64());
    }
    for (mutant, filter) in mutants() {
        let t = Instant::now();
        let name = format!("loom-mutant/{mutant}");
        let v = match cargo_loom(Some(&mutant), Some(&filter)).output() {
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                let ran = text
                    .lines()
                    .any(|l| l.starts_with("test ") && l.contains(" ... "));
                if !ran {
                    Err(format!(
                        "the mutant build ran no test for filter '{filter}'"
                    ))
                } else if o.status.success() {
                    Err(format!(
                        "loom did not catch the mutant (model '{filter}' passed)"
                    ))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(format!("cannot run cargo: {e}")),
        };
        if echo {
            println!("  {name}: {:.0}s", t.elapsed().as_secs_f64());
        }
        out.push((name, v));
    }
    out
}

pub fn cmd_loom(_args: &[String]) -> Result<()> {
    let started = Instant::now();
    let verdicts = run_tier(true);
    let mut failed = 0;
    for (name, v) in &verdicts {
        match v {
            Ok(()) => println!("PASS {name}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!(
        "(loom tier wall time {:.0}s)",
        started.elapsed().as_secs_f64()
    );
    println!("{} passed, {} failed", verdicts.len() - failed, failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
