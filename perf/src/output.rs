//! The files a run writes under the results directory: `host_scaling.csv`, `host_cycles.csv`,
//! `host_floors.csv` and one `host_scaling_<mode>.svg` per mode. (`host_callgrind.csv` is
//! written by `cargo xtask perf`, which runs valgrind.)

use std::path::Path;

use crate::csv::{Csv, num};
use crate::cycles::CycleRow;
use crate::floors::Floors;
use crate::scaling::{Point, find};
use crate::stats::{efficiency, ratio};
use crate::svg::{Plot, Series, render};
use crate::world::{Design, Mode, Variant};

/// Scaling efficiency of `p` against its own design's one-thread point.
pub fn point_efficiency(points: &[Point], p: &Point) -> Option<f64> {
    let one = find(points, p.mode, p.variant, p.design, 1)?;
    efficiency(p.median(), p.threads, one.median())
}

/// `p`'s throughput over `baseline`'s at the same mode, variant and thread count.
pub fn point_ratio(points: &[Point], p: &Point, baseline: Design) -> Option<f64> {
    let b = find(points, p.mode, p.variant, baseline, p.threads)?;
    ratio(p.median(), b.median())
}

/// `host_scaling.csv`.
pub fn scaling_csv(points: &[Point], window_ms: u64) -> Csv {
    let mut c = Csv::new(&[
        "mode",
        "variant",
        "design",
        "threads",
        "reps",
        "window_ms",
        "updates_per_s_median",
        "updates_per_s_min",
        "updates_per_s_max",
        "efficiency",
        "vs_global_lock",
        "vs_per_table_lock",
        "clean_reps",
        "others_cpu_max",
    ]);
    for p in points {
        let min = p.reps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = p.reps.iter().copied().fold(0.0, f64::max);
        c.row([
            p.mode.name().to_string(),
            p.variant.name().to_string(),
            p.design.name().to_string(),
            p.threads.to_string(),
            p.reps.len().to_string(),
            window_ms.to_string(),
            num(Some(p.median()), 0),
            num(Some(min), 0),
            num(Some(max), 0),
            num(point_efficiency(points, p), 3),
            num(point_ratio(points, p, Design::GlobalLock), 3),
            num(point_ratio(points, p, Design::PerTableLock), 3),
            p.clean_reps().to_string(),
            num(p.others_max(), 2),
        ]);
    }
    c
}

/// `host_cycles.csv`.
pub fn cycles_csv(rows: &[CycleRow], tsc_ghz: f64) -> Csv {
    let mut c = Csv::new(&[
        "design",
        "variant",
        "batch",
        "batches",
        "ticks_per_update_median",
        "ticks_per_update_p10",
        "ticks_per_update_p90",
        "ticks_per_update_mean",
        "tsc_ghz",
        "ns_per_update_median",
        "others_cpu",
    ]);
    for r in rows {
        let s = r.per_update;
        c.row([
            r.design.name().to_string(),
            r.variant.name().to_string(),
            r.batch.to_string(),
            s.n.to_string(),
            num(Some(s.median), 1),
            num(Some(s.p10), 1),
            num(Some(s.p90), 1),
            num(Some(s.mean), 1),
            num(Some(tsc_ghz), 3),
            num(ratio(s.median, tsc_ghz), 2),
            num(r.others, 2),
        ]);
    }
    c
}

/// `host_floors.csv`.
pub fn floors_csv(f: &Floors) -> Csv {
    let mut c = Csv::new(&["quantity", "threads", "value", "unit"]);
    c.row(["tsc_rate", "1", &num(Some(f.tsc_ghz), 3), "GHz"]);
    c.row(["timer_pair", "1", &num(Some(f.timer_ticks), 1), "ticks"]);
    c.row(["tsc_step", "1", &f.tsc_step.to_string(), "ticks"]);
    c.row(["uncontended_cas", "1", &num(Some(f.cas_ticks), 1), "ticks"]);
    c.row([
        "update_floor_2cas",
        "1",
        &num(Some(2.0 * f.cas_ticks), 1),
        "ticks",
    ]);
    for &(n, r) in &f.contended {
        c.row([
            "shared_line_rmw_rate",
            &n.to_string(),
            &num(Some(r), 0),
            "ops/s",
        ]);
    }
    let runs = [
        ("private_line_rmw_rate", &f.private),
        ("private_line_rmw_rate_end", &f.private_end),
    ];
    for (name, rates) in runs {
        for &(n, r) in rates {
            c.row([name, &n.to_string(), &num(Some(r), 0), "ops/s"]);
        }
    }
    for n in f.private.iter().map(|(n, _)| *n) {
        let e = num(f.parallel_efficiency(n), 3);
        c.row([
            "machine_scaling_efficiency_min",
            &n.to_string(),
            &e,
            "ratio",
        ]);
    }
    c
}

fn color(d: Design) -> &'static str {
    match d {
        Design::Argon => "#1f77b4",
        Design::GlobalLock => "#d62728",
        Design::PerTableLock => "#2ca02c",
    }
}

/// The updates/s-against-threads plot of `mode`: one line per design and variant (RO dashed),
/// and the ideal-scaling line of argon rw (grey).
pub fn scaling_plot(points: &[Point], mode: Mode) -> Plot {
    let mut series = Vec::new();
    for variant in Variant::ALL {
        for design in Design::ALL {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.mode == mode && p.variant == variant && p.design == design)
                .map(|p| (p.threads as f64, p.median()))
                .collect();
            series.push(Series {
                name: format!("{} {}", design.name(), variant.name()),
                color: color(design),
                dashed: variant == Variant::Ro,
                points: pts,
            });
        }
    }
    let one = find(points, mode, Variant::Rw, Design::Argon, 1).map_or(0.0, Point::median);
    let max = points.iter().map(|p| p.threads).max().unwrap_or(1);
    series.push(Series {
        name: "ideal (argon rw)".into(),
        color: "#999999",
        dashed: true,
        points: (1..=max).map(|n| (n as f64, n as f64 * one)).collect(),
    });
    Plot {
        title: format!("mod_entry on L1 entries, mode {}", mode.name()),
        x_label: "threads".into(),
        y_label: "updates/s (total)".into(),
        series,
    }
}

/// Write every file into `dir` (created if missing); returns the paths written.
pub fn write_all(
    dir: &Path,
    points: &[Point],
    window_ms: u64,
    cycles: &[CycleRow],
    floors: &Floors,
) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut files = vec![
        (
            "host_scaling.csv".to_string(),
            scaling_csv(points, window_ms).as_str().to_string(),
        ),
        (
            "host_cycles.csv".to_string(),
            cycles_csv(cycles, floors.tsc_ghz).as_str().to_string(),
        ),
        (
            "host_floors.csv".to_string(),
            floors_csv(floors).as_str().to_string(),
        ),
    ];
    for mode in Mode::ALL {
        let svg = render(&scaling_plot(points, mode));
        files.push((format!("host_scaling_{}.svg", mode.name()), svg));
    }
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        written.push(path.display().to_string());
    }
    Ok(written)
}
