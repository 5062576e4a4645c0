//! `cargo xtask perf`, in-guest part's outputs: `perf/results/guest_*.csv` and `guest_*.svg`
//! ([`write`]), and RESULTS.md's section: the run's conditions (QEMU version, accelerator,
//! firmware, host cores, TSC rate, load), Argon's and Xen's throughput and time per update per
//! layout and vCPU count with their ratios, the target "in-guest time per update ≤ 0.5× Xen's"
//! (reported, never asserted), shootdown latency against k beside Argon's bare IPI round trip
//! from the same boot, per-boot checks, and the plots.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use crate::Result;
use crate::perf_guest::{DISTURBED, limit};
use crate::perf_guest_report::{
    BootResult, Hv, MODES, Point, Setup, flush_point, ipi_point, points,
};
use crate::svg::{Plot, Series, render, si};

/// The target: Argon's in-guest time per update at most this fraction of Xen's.
const TARGET: f64 = 0.5;

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes the CSV and SVG files into `results` and returns the markdown section.
pub fn write(setup: &Setup, boots: &[BootResult], results: &Path) -> Result<String> {
    fs::create_dir_all(results).map_err(|e| format!("creating {}: {e}", results.display()))?;
    let pts = points(boots, setup.tsc_ghz);
    let mut csv = String::from("hypervisor,mode,vcpus,rep,batch,updates,wall_ticks,hc_ticks\n");
    let mut fl = String::from("hypervisor,vcpus,k,flushes,median_ticks,p10_ticks,p90_ticks\n");
    let mut ipi = String::from("vcpus,state,median_ticks,p10_ticks,p90_ticks\n");
    let mut per_vcpu = String::from("hypervisor,mode,vcpus,rep,id,updates,hc_ticks,wall_ticks\n");
    for b in boots {
        for r in &b.vcpu_rows {
            let (hv, v) = (b.hv.key(), b.vcpus);
            let _ = writeln!(
                per_vcpu,
                "{hv},{},{v},{},{},{},{},{}",
                r.mode, r.rep, r.id, r.updates, r.hc, r.wall
            );
        }
        for r in &b.reps {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{},{},{}",
                b.hv.key(),
                r.mode,
                b.vcpus,
                r.rep,
                r.batch,
                r.updates,
                r.wall,
                r.hc
            );
        }
        for f in &b.flushes {
            let (hv, v) = (b.hv.key(), b.vcpus);
            let _ = writeln!(
                fl,
                "{hv},{v},{},{},{},{},{}",
                f.k, f.flushes, f.median, f.p10, f.p90
            );
        }
        if let Some(i) = &b.ipi {
            for (state, [m, p10, p90]) in [("halted", i.halted), ("spinning", i.spinning)] {
                let _ = writeln!(ipi, "{},{state},{m},{p10},{p90}", b.vcpus);
            }
        }
    }
    write_file(&results.join("guest_scaling.csv"), &csv)?;
    write_file(&results.join("guest_shootdown.csv"), &fl)?;
    write_file(&results.join("guest_ipi.csv"), &ipi)?;
    write_file(&results.join("guest_vcpus.csv"), &per_vcpu)?;
    for mode in MODES {
        let series = [(Hv::Argon, "#1f77b4", false), (Hv::Xen, "#d62728", true)]
            .into_iter()
            .map(|(hv, color, dashed)| Series {
                name: hv.name().into(),
                color,
                dashed,
                points: pts
                    .iter()
                    .filter(|p| p.hv == hv && p.mode == mode)
                    .map(|p| (f64::from(p.vcpus), p.per_s))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        let plot = Plot {
            title: format!("mmu-stress {mode}: updates/s under QEMU TCG"),
            x_label: "vCPUs (= QEMU CPUs)".into(),
            y_label: "updates/s (all vCPUs)".into(),
            series,
        };
        write_file(
            &results.join(format!("guest_scaling_{mode}.svg")),
            &render(&plot),
        )?;
    }
    write_file(
        &results.join("guest_shootdown.svg"),
        &render(&shootdown_plot(boots, setup.tsc_ghz)),
    )?;
    eprintln!("xtask: wrote perf/results/guest_*.csv and guest_*.svg");
    Ok(section(setup, boots, &pts))
}

/// Shootdown latency against k at the largest vCPU count, with Argon's IPI round trip.
fn shootdown_plot(boots: &[BootResult], ghz: f64) -> Plot {
    let top = boots.iter().map(|b| b.vcpus).max().unwrap_or(1);
    let us = |t: f64| t / ghz / 1e3;
    let mut series = Vec::new();
    for (hv, color, dashed) in [(Hv::Argon, "#1f77b4", false), (Hv::Xen, "#d62728", true)] {
        let points: Vec<(f64, f64)> = (0..top)
            .filter_map(|k| Some((f64::from(k), us(flush_point(boots, hv, top, k)?.0[0]))))
            .collect();
        series.push(Series {
            name: format!("{} flush", hv.name()),
            color,
            dashed,
            points,
        });
    }
    if let Some((_, spin)) = ipi_point(boots, top) {
        series.push(Series {
            name: "Argon IPI (spin)".into(),
            color: "#2ca02c",
            dashed: true,
            points: (1..top).map(|k| (f64::from(k), us(spin))).collect(),
        });
    }
    series.retain(|s| !s.points.is_empty());
    Plot {
        title: format!("TLB_FLUSH_MULTI to k spinning vCPUs ({top} vCPUs), median"),
        x_label: "k (target vCPUs; 0 = own vCPU only)".into(),
        y_label: "µs (host TSC)".into(),
        series,
    }
}

/// Ticks per update with the repetitions' range.
fn range(p: Option<&Point>) -> String {
    p.map_or("–".into(), |p| {
        let (lo, hi) = p.ticks_range;
        format!("{:.0} [{lo:.0}–{hi:.0}]", p.ticks)
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("–".into(), f)
}

fn section(s: &Setup, boots: &[BootResult], pts: &[Point]) -> String {
    let mut md = String::from("## In-guest scaling and Xen side by side (QEMU TCG)\n\n");
    let _ = writeln!(
        md,
        "The guest kernel's `mmu-stress` workload (`guest/src/suites/stress.rs`): the same ELF \
         image as domain 0 (64 MiB) of Argon and of Xen 4.17 (Debian's \
         `xen-hypervisor-4.17-amd64`), at 1..={} vCPUs on as many QEMU CPUs.\n",
        s.vcpus
    );
    let _ = writeln!(
        md,
        "- QEMU: {}; accelerator **TCG** (`-accel tcg -cpu max`), 512 MiB. Firmware: SeaBIOS \
         (QEMU's default) for both; it only runs before the hypervisor.\n- Guest command \
         line: `{}` (plus `vcpus=N` in Argon's module line; `dom0_max_vcpus=N` on Xen's).\n\
         - Boots: {} per hypervisor and vCPU count, in the order Argon, Xen, Argon, Xen, … \
         so that changes in the machine's speed hit both; figures pool every repetition of \
         every boot.\n- Host: {} core(s) available. Runs with more vCPUs than \
         host cores are **oversubscribed** (QEMU's vCPU threads share the cores) and marked †.\n\
         - Time: TSC ticks read by the guest with `rdtsc` (under TCG the host's TSC on both \
         hypervisors), turned into seconds at the host's {:.3} GHz measured against the OS \
         clock (per-boot check below).\n- Load average before / after: {} / {}.\n- TCG \
         translates both hypervisors' code, so absolute times are emulator times; the ratios \
         between Argon and Xen are the figure (DESIGN.md §10).\n",
        s.qemu, s.args, s.rounds, s.cores, s.tsc_ghz, s.load[0], s.load[1]
    );
    let failed: Vec<&BootResult> = boots.iter().filter(|b| b.failure.is_some()).collect();
    if !failed.is_empty() {
        md.push_str("**Failed boots** (their figures are missing or partial):\n\n");
        for b in failed {
            let why = b.failure.as_deref().unwrap_or_default();
            let why = why.lines().next().unwrap_or_default();
            let _ = writeln!(md, "- {} at {} vCPU(s): {why}", b.hv.name(), b.vcpus);
        }
        md.push('\n');
    }
    let mark = |v: u32| if v > s.cores { "†" } else { "" };
    let _ = writeln!(
        md,
        "### `mmu_update` throughput and time per update (median over repetitions)\n\n\
         `updates/s`: every vCPU's updates over the time from the first vCPU's start to the \
         last one's end. `ticks/update`: TSC ticks a vCPU spends inside `mmu_update` per \
         request, over all vCPUs [lowest–highest repetition]; `reps`: repetitions pooled \
         (Argon / Xen). Argon ÷ Xen above 1 means Argon is faster in throughput, \
         below 1 that it needs less time per update. `eff`: updates/s at v vCPUs ÷ (v × \
         updates/s at 1 vCPU).\n"
    );
    md.push_str(
        "| layout | vCPUs | batch | reps | Argon updates/s | Xen updates/s | Argon ÷ Xen (throughput) \
         | Argon ticks/update | Xen ticks/update | Argon ÷ Xen (time) | eff Argon | eff Xen |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let get = |hv, mode: &str, v| {
        pts.iter()
            .find(|p| p.hv == hv && p.mode == mode && p.vcpus == v)
    };
    let mut verdicts = Vec::new();
    for mode in MODES {
        for v in 1..=s.vcpus {
            let (a, x) = (get(Hv::Argon, mode, v), get(Hv::Xen, mode, v));
            if a.is_none() && x.is_none() {
                continue;
            }
            let eff = |hv| {
                let one = get(hv, mode, 1)?.per_s;
                Some(get(hv, mode, v)?.per_s / (f64::from(v) * one))
            };
            let per_s = |p: Option<&Point>| p.map(|p| p.per_s);
            let ticks = |p: Option<&Point>| p.map(|p| p.ticks);
            let batch = a.or(x).map_or(0, |p| p.batch);
            let _ = writeln!(
                md,
                "| {mode} | {v}{} | {batch} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                mark(v),
                a.map_or(0, |p| p.reps),
                x.map_or(0, |p| p.reps),
                opt(per_s(a), si),
                opt(per_s(x), si),
                ratio(per_s(a), per_s(x)),
                range(a),
                range(x),
                ratio(ticks(a), ticks(x)),
                opt(eff(Hv::Argon), |e| format!("{e:.2}")),
                opt(eff(Hv::Xen), |e| format!("{e:.2}")),
            );
            if let (Some(a), Some(x)) = (a, x) {
                verdicts.push((mode, v, a.ticks, x.ticks));
            }
        }
    }
    let met = verdicts
        .iter()
        .filter(|(_, _, a, x)| a / x <= TARGET)
        .count();
    let _ = writeln!(
        md,
        "\n### Target: in-guest time per update ≤ {TARGET}× Xen's (reported, never asserted)\n\n\
         Met in {met} of {} points (time = TSC ticks inside `mmu_update` per update, as the \
         guest measures it; the same image and QEMU on both).\n\n\
         | layout | vCPUs | Argon ÷ Xen (time per update) | verdict |\n|---|---|---|---|",
        verdicts.len()
    );
    for (mode, v, a, x) in &verdicts {
        let verdict = if a / x <= TARGET { "met" } else { "not met" };
        let _ = writeln!(
            md,
            "| {mode} | {v}{} | {:.2} | {verdict} |",
            mark(*v),
            a / x
        );
    }
    shootdowns(&mut md, s, boots);
    checks(&mut md, s, boots);
    md.push_str("\n### Plots\n\n");
    for mode in MODES {
        let _ = writeln!(md, "![{mode}](results/guest_scaling_{mode}.svg)");
    }
    md.push_str("![shootdown](results/guest_shootdown.svg)\n");
    md
}

/// Shootdown latency per k, with Argon's IPI round trip from the same boots.
fn shootdowns(md: &mut String, s: &Setup, boots: &[BootResult]) {
    let us = |t: f64| t / s.tsc_ghz / 1e3;
    let flushes = boots
        .iter()
        .find_map(|b| b.flushes.first())
        .map_or(0, |f| f.flushes);
    let _ = writeln!(
        md,
        "\n### Shootdown latency: `MMUEXT_TLB_FLUSH_MULTI` to k spinning vCPUs\n\n\
         vCPU 0 flushes the TLBs of vCPUs 1..=k (k = 0: its own only) while they spin in the \
         guest on their own CPUs. Each boot times {flushes} flushes per k; the table gives the \
         median over boots of each boot's median [p10–p90], in µs. Beside it, Argon's bare \
         IPI round trip from the same boots (`argon.bench=ipi`: the BSP pings each other CPU, \
         whose handler only acknowledges; 512 round trips per boot, targets halted in the idle \
         loop and spinning in the hypervisor; median over boots).\n\n\
         | vCPUs | k | Argon | Xen | Argon ÷ Xen | Argon IPI round trip: halted / spinning |\n\
         |---|---|---|---|---|---|"
    );
    let top = boots.iter().map(|b| b.vcpus).max().unwrap_or(0);
    for v in 1..=top {
        for k in 0..v {
            let (a, x) = (
                flush_point(boots, Hv::Argon, v, k),
                flush_point(boots, Hv::Xen, v, k),
            );
            if a.is_none() && x.is_none() {
                continue;
            }
            let show = |c: Option<([f64; 3], usize)>| {
                c.map_or("–".into(), |([m, lo, hi], _)| {
                    format!("{:.1} [{:.1}–{:.1}]", us(m), us(lo), us(hi))
                })
            };
            let ipi = match (k, ipi_point(boots, v)) {
                (1.., Some((h, sp))) => format!("{:.1} / {:.1}", us(h), us(sp)),
                _ => "–".into(),
            };
            let mark = if v > s.cores { "†" } else { "" };
            let _ = writeln!(
                md,
                "| {v}{mark} | {k} | {} | {} | {} | {ipi} |",
                show(a),
                show(x),
                ratio(a.map(|c| c.0[0]), x.map(|c| c.0[0]))
            );
        }
    }
}

/// Per boot: result, the TSC rate the guest saw against the host's clock, rdtsc's resolution.
fn checks(md: &mut String, s: &Setup, boots: &[BootResult]) {
    let _ = writeln!(
        md,
        "\n### Per-boot checks\n\n`guest TSC rate`: TSC ticks between the guest's first and \
         last `stress:` lines ÷ the host-clock time between their arrival on the serial console \
         (it should match the host's {:.3} GHz). `rdtsc pair`: the cheapest of 64 back-to-back \
         `rdtsc` pairs in the guest. `null hypercall`: median round trip of \
         `xen_version` from the guest, the floor every `mmu_update` batch pays once. `others`: other processes' CPU use during the boot (CPUs' \
         worth). Above the cores the boot's vCPUs leave free plus {DISTURBED}, the boot was \
         repeated, up to 3 boots, and the least disturbed kept (* = every boot disturbed; \
         `boots`: how many were made).\n\n\
         | hypervisor | vCPUs | result | guest TSC rate | rdtsc pair (ticks) | null hypercall \
         (ticks) | others | boots |\n|---|---|---|---|---|---|---|---|",
        s.tsc_ghz
    );
    for b in boots {
        let rate = b
            .tsc_check
            .filter(|(_, secs)| *secs > 0.0)
            .map_or("–".into(), |(t, secs)| {
                format!("{:.3} GHz over {secs:.2} s", t as f64 / secs / 1e9)
            });
        let result = if b.failure.is_some() { "FAILED" } else { "ok" };
        let pair = b.tsc_pair.map_or("–".into(), |p| p.to_string());
        let others = b.others.map_or("–".into(), |o| {
            format!("{o:.2}{}", if o > limit(b.vcpus) { "*" } else { "" })
        });
        let null = b.null_hc.map_or("–".into(), |t| t.to_string());
        let _ = writeln!(
            md,
            "| {} | {} | {result} | {rate} | {pair} | {null} | {others} | {} |",
            b.hv.name(),
            b.vcpus,
            b.attempts
        );
    }
}
