//! Host benchmark harness: `hvcore`'s lock-free page-table update path (`mod_entry` on L1
//! entries) against two lock-based baselines built into the same binary — one global spin lock,
//! and a Xen-style spin lock per page-table frame — in three layouts (disjoint tables, one
//! shared table, one hot target frame). Writes CSV and SVG under `perf/results/` and prints a
//! markdown summary. `--callgrind` runs a fixed single-thread workload for
//! `valgrind --tool=callgrind`. Nothing here asserts a timing; `cargo xtask perf` drives it.
//!
//! Modules: `world` (layout, designs, the update loop), `lock` (the baselines' spin lock),
//! `scaling` (threaded throughput), `cycles` (ticks per update by batch size), `floors` (CAS
//! and cache-line-transfer floors), `tsc` (timestamps), `stats`, `csv`, `svg`, `output` (files),
//! `report` (markdown), `quiet` (other processes' CPU use during a run), `cli`.

mod cli;
mod csv;
mod cycles;
mod floors;
mod lock;
mod output;
mod quiet;
mod report;
mod scaling;
mod stats;
mod svg;
mod tsc;
mod world;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cli::{BenchOpts, Command};
use world::{Design, Mode, Variant, World};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let result = match cli::parse(&args, cores) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Ok(Command::Callgrind {
            design,
            variant,
            updates,
        }) => callgrind(design, variant, updates),
        Ok(Command::Bench(o)) => bench(&o, cores),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perf: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The fixed workload: setup, then `updates` updates of one thread on its own table. Setup is
/// the same for every `updates`, so two runs give the per-update instruction count exactly.
fn callgrind(design: Design, variant: Variant, updates: u64) -> Result<(), String> {
    let world = World::new(Mode::Disjoint, variant, 1).map_err(|e| format!("setup: {e:?}"))?;
    let mut k = world.first_update(0);
    world
        .run(design, 0, &mut k, updates)
        .map_err(|e| format!("update failed: {e:?}"))?;
    world.audit_clean()?;
    println!(
        "callgrind workload: {} {} {updates} updates",
        design.name(),
        variant.name()
    );
    Ok(())
}

fn bench(o: &BenchOpts, cores: usize) -> Result<(), String> {
    if o.threads > cores {
        eprintln!(
            "perf: note: {} threads on {cores} core(s): oversubscribed points",
            o.threads
        );
    }
    eprintln!("perf: measuring floors");
    let mut floors = floors::Floors::measure(o.threads, Duration::from_millis(o.floor_ms));
    eprintln!("perf: throughput, threads 1..={}", o.threads);
    let window = Duration::from_millis(o.window_ms);
    let points = scaling::run_all(o.threads, o.reps, window)?;
    eprintln!("perf: ticks per update");
    let mut rows = Vec::new();
    for design in Design::ALL {
        for variant in Variant::ALL {
            for batch in cycles::BATCHES {
                rows.push(cycles::measure(design, variant, batch, o.cycle_updates)?);
            }
        }
    }
    floors.recheck(o.threads, Duration::from_millis(o.floor_ms));
    let files = output::write_all(Path::new(&o.out), &points, o.window_ms, &rows, &floors)?;
    let summary = report::summary(
        &points,
        &rows,
        &floors,
        o.threads,
        cores,
        o.reps,
        o.window_ms,
    );
    print!("{summary}");
    for f in files {
        eprintln!("perf: wrote {f}");
    }
    Ok(())
}
