//! The markdown summary printed to stdout (and embedded in `perf/RESULTS.md` by
//! `cargo xtask perf`): throughput and ratios, ticks per update, the measured floors, the
//! distance from them, and the targets — reported, never asserted.

use std::fmt::Write as _;

use crate::cycles::{BATCHES, CycleRow};
use crate::floors::Floors;
use crate::output::{point_efficiency, point_ratio};
use crate::scaling::{Point, find};
use crate::stats::ratio;
use crate::svg::si;
use crate::world::{Design, Mode, Variant};

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|", header.join(" | "));
    for _ in header {
        s.push_str("---|");
    }
    s.push('\n');
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Updates/s of a point, starred when other work disturbed every repetition of it.
fn rate(p: &Point) -> String {
    let mark = if p.disturbed() { "*" } else { "" };
    format!("{}{mark}", si(p.median()))
}

fn throughput(points: &[Point]) -> String {
    let mut rows = Vec::new();
    for p in points.iter().filter(|p| p.design == Design::Argon) {
        let get = |d| find(points, p.mode, p.variant, d, p.threads);
        let eff = |d| get(d).and_then(|q| point_efficiency(points, q));
        rows.push(vec![
            p.mode.name().into(),
            p.variant.name().into(),
            p.threads.to_string(),
            rate(p),
            get(Design::GlobalLock).map_or("–".into(), rate),
            get(Design::PerTableLock).map_or("–".into(), rate),
            opt(point_ratio(points, p, Design::GlobalLock), 2),
            opt(point_ratio(points, p, Design::PerTableLock), 2),
            opt(eff(Design::Argon), 2),
            opt(eff(Design::GlobalLock), 2),
            opt(eff(Design::PerTableLock), 2),
        ]);
    }
    table(
        &[
            "mode",
            "variant",
            "threads",
            "argon/s",
            "global/s",
            "per-table/s",
            "×global",
            "×per-table",
            "eff argon",
            "eff global",
            "eff per-table",
        ],
        &rows,
    )
}

fn cycles(rows: &[CycleRow]) -> String {
    let mut out = Vec::new();
    for design in Design::ALL {
        for variant in Variant::ALL {
            let mut r = vec![design.name().to_string(), variant.name().to_string()];
            for b in BATCHES {
                let c = rows
                    .iter()
                    .find(|c| c.design == design && c.variant == variant && c.batch == b);
                r.push(c.map_or("–".into(), |c| {
                    let s = c.per_update;
                    let mark = if c.disturbed() { "*" } else { "" };
                    format!("{:.0} [{:.0}–{:.0}]{mark}", s.median, s.p10, s.p90)
                }));
            }
            out.push(r);
        }
    }
    table(
        &[
            "design",
            "variant",
            "batch 1",
            "batch 8",
            "batch 64",
            "batch 512",
        ],
        &out,
    )
}

fn ticks(rows: &[CycleRow], design: Design, variant: Variant, batch: u64) -> Option<f64> {
    rows.iter()
        .find(|c| c.design == design && c.variant == variant && c.batch == batch)
        .map(|c| c.per_update.median)
}

fn floors(f: &Floors, points: &[Point], rows: &[CycleRow], n: usize) -> String {
    let mut r = vec![
        vec!["TSC rate".into(), format!("{:.3} GHz", f.tsc_ghz)],
        vec![
            "timing pair (in batch-1 figures)".into(),
            format!("{:.0} ticks", f.timer_ticks),
        ],
        vec![
            "timestamp resolution".into(),
            format!("{} ticks", f.tsc_step),
        ],
        vec![
            "one uncontended CAS".into(),
            format!("{:.1} ticks", f.cas_ticks),
        ],
        vec![
            "update floor: 2 uncontended CAS".into(),
            format!("{:.1} ticks", 2.0 * f.cas_ticks),
        ],
    ];
    for &(t, rate) in &f.contended {
        r.push(vec![
            format!("RMWs on one shared line, {t} thread(s)"),
            format!("{}/s ({:.1} ns each)", si(rate), 1e9 / rate),
        ]);
    }
    for (when, rates) in [("start", &f.private), ("end", &f.private_end)] {
        for &(t, rate) in rates {
            let [a, b] = f.parallel_efficiency_at(t);
            let e = if when == "start" { a } else { b };
            r.push(vec![
                format!("RMWs on private lines, {t} thread(s), run {when} (parallel ceiling)"),
                format!("{}/s, machine scaling efficiency {}", si(rate), opt(e, 2)),
            ]);
        }
    }
    for (when, load) in ["start", "end"].into_iter().zip(&f.loadavg) {
        let load = load.as_deref().unwrap_or("–");
        r.push(vec![format!("load average, run {when}"), load.to_string()]);
    }
    let mut s = table(&["floor (measured in this run)", "value"], &r);
    let mut d = Vec::new();
    for v in Variant::ALL {
        let t = ticks(rows, Design::Argon, v, 512);
        d.push(vec![
            format!("argon {} ticks/update, batch 512", v.name()),
            format!(
                "{} = {}× the 2-CAS floor = {} uncontended-CAS equivalents",
                opt(t, 0),
                opt(t.and_then(|t| ratio(t, 2.0 * f.cas_ticks)), 1),
                opt(t.and_then(|t| ratio(t, f.cas_ticks)), 1)
            ),
        ]);
    }
    for v in Variant::ALL {
        let hot = find(points, Mode::HotFrame, v, Design::Argon, n).map(Point::median);
        let ceiling = f.shared_rate(n).map(|r| r / 2.0);
        d.push(vec![
            format!(
                "argon {} hot_frame x{n} vs ceiling (shared-line RMW rate / 2)",
                v.name()
            ),
            format!(
                "{} of {} = {}",
                opt(hot.map(|h| h / 1e6), 2) + "M/s",
                opt(ceiling.map(|c| c / 1e6), 2) + "M/s",
                opt(hot.zip(ceiling).and_then(|(h, c)| ratio(h, c)), 2)
            ),
        ]);
        let shared = find(points, Mode::SharedTable, v, Design::Argon, n).map(Point::median);
        let disjoint = find(points, Mode::Disjoint, v, Design::Argon, n).map(Point::median);
        d.push(vec![
            format!(
                "argon {} shared_table x{n} vs disjoint x{n} (no shared line needed)",
                v.name()
            ),
            opt(shared.zip(disjoint).and_then(|(s, d)| ratio(s, d)), 2),
        ]);
    }
    s.push('\n');
    s.push_str(&table(&["distance from the floor", "measured"], &d));
    s
}

/// Verdict of a measured value against a target; `inconclusive` when the machine itself cannot
/// run the threads the target needs at once.
fn verdict(v: Option<f64>, ok: impl Fn(f64) -> bool, inconclusive: Option<String>) -> String {
    match (v, inconclusive) {
        (None, _) => "n/a".into(),
        (Some(_), Some(why)) => format!("inconclusive here ({why})"),
        (Some(v), None) if ok(v) => "met".into(),
        (Some(_), None) => "not met".into(),
    }
}

/// Why the scaling points behind a target cannot be judged, if they cannot: the machine did
/// not run `n` threads at once, or other work disturbed every repetition of a point used.
fn scaling_doubt(f: &Floors, n: usize, used: &[Option<&Point>]) -> Option<String> {
    if let Some(e) = weak_machine(f, n) {
        return Some(format!("machine ceiling {e:.2}"));
    }
    let bad = used.iter().flatten().filter(|p| p.disturbed()).count();
    (bad > 0).then(|| format!("{bad} point(s) disturbed by other work"))
}

/// The machine's parallel efficiency at `n` if it is too low for thread-scaling verdicts.
fn weak_machine(f: &Floors, n: usize) -> Option<f64> {
    f.parallel_efficiency(n).filter(|e| *e < MACHINE_OK)
}

/// Below this parallel efficiency of the bare machine, scaling verdicts are not drawn.
const MACHINE_OK: f64 = 0.9;

fn targets(points: &[Point], rows: &[CycleRow], f: &Floors, n: usize) -> String {
    let mut r = Vec::new();
    for v in Variant::ALL {
        let at = |d, t| find(points, Mode::Disjoint, v, d, t);
        let p = at(Design::Argon, 2);
        let vs_pt = p.and_then(|p| point_ratio(points, p, Design::PerTableLock));
        let vs_gl = p.and_then(|p| point_ratio(points, p, Design::GlobalLock));
        let e = at(Design::Argon, n)
            .filter(|_| n > 1)
            .and_then(|p| point_efficiency(points, p));
        let doubt_pt = scaling_doubt(f, 2, &[p, at(Design::PerTableLock, 2)]);
        let doubt_gl = scaling_doubt(f, 2, &[p, at(Design::GlobalLock, 2)]);
        let doubt_e = scaling_doubt(f, n, &[at(Design::Argon, 1), at(Design::Argon, n)]);
        let t = ticks(rows, Design::Argon, v, 512);
        let row = rows
            .iter()
            .find(|c| c.design == Design::Argon && c.variant == v && c.batch == 512);
        let p10 = row.map(|c| c.per_update.p10);
        let doubt_t = row
            .filter(|c| c.disturbed())
            .map(|_| "disturbed by other work".to_string());
        let name = v.name();
        r.push(vec![
            format!("≥ 1.3× per-table lock, disjoint x2, {name}"),
            opt(vs_pt, 2),
            verdict(vs_pt, |x| x >= 1.3, doubt_pt),
        ]);
        r.push(vec![
            format!("≥ 3× global lock, disjoint x2, {name}"),
            opt(vs_gl, 2),
            verdict(vs_gl, |x| x >= 3.0, doubt_gl),
        ]);
        r.push(vec![
            format!("efficiency ≥ 0.95, disjoint x{n}, {name}"),
            opt(e, 2),
            verdict(e, |x| x >= 0.95, doubt_e),
        ]);
        r.push(vec![
            format!("≤ 60 cycles/update, batch 512, {name} (TSC ticks)"),
            format!("{} (p10 {})", opt(t, 0), opt(p10, 0)),
            verdict(t, |x| x <= 60.0, doubt_t),
        ]);
    }
    table(
        &["target (reported, not asserted)", "measured", "verdict"],
        &r,
    )
}

/// The whole summary. `n` is the largest thread count measured.
pub fn summary(
    points: &[Point],
    rows: &[CycleRow],
    f: &Floors,
    n: usize,
    cores: usize,
    reps: usize,
    window_ms: u64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Host bench: hvcore `mod_entry` on L1 entries (full slow path)\n"
    );
    let _ = writeln!(
        s,
        "{cores} core(s) available; threads 1..={n}; {reps} run(s) of {window_ms} ms per point \
         (more when other work disturbed them all), median of the undisturbed ones.\n"
    );
    let bad = points.iter().filter(|p| p.disturbed()).count();
    let _ = writeln!(
        s,
        "Other processes' CPU use is watched during every repetition: {bad} of {} points were \
         disturbed in every repetition (starred; medians elsewhere use undisturbed repetitions \
         only).\n",
        points.len()
    );
    if let Some(e) = weak_machine(f, n) {
        let _ = writeln!(
            s,
            "**Warning: this run did not get {n} CPUs' worth of parallel work.** {n} threads on \
             private cache lines reached only {e:.2} of {n}× the one-thread rate (start or end of \
             the run; see Floors): other work on the machine, or vCPUs not backed by free cores. \
             The multi-thread figures below are unreliable and the scaling targets are marked \
             inconclusive.\n"
        );
    }
    let _ = writeln!(
        s,
        "### Throughput (updates/s, all threads together; * = every repetition disturbed by \
         other work)\n\n{}",
        throughput(points)
    );
    let _ = writeln!(
        s,
        "### Single-thread TSC ticks per update (median [p10–p90]; {:.2} GHz TSC; * = disturbed \
         by other work)\n\n{}",
        f.tsc_ghz,
        cycles(rows)
    );
    let _ = writeln!(s, "### Floors\n\n{}", floors(f, points, rows, n));
    let _ = writeln!(s, "### Targets\n\n{}", targets(points, rows, f, n));
    s
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn verdicts() {
        use super::verdict;
        assert_eq!(verdict(Some(1.4), |x| x >= 1.3, None), "met");
        assert_eq!(verdict(Some(1.2), |x| x >= 1.3, None), "not met");
        assert_eq!(verdict(None, |x| x >= 1.3, None), "n/a");
        let v = verdict(Some(2.0), |x| x >= 1.3, Some("why".into()));
        assert_eq!(v, "inconclusive here (why)");
    }

    #[test]
    fn markdown_table_shape() {
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
    }
}
