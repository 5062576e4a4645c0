//! `cargo xtask perf`, in-guest part: reading the `mmu-stress` lines of one boot (their format
//! is documented in `guest/src/suites/stress.rs`) and Argon's `bench ipi:` line
//! (`src/cpu/bench.rs`) into a [`BootResult`], and the per-point medians over repetitions
//! ([`points`]). The files and RESULTS.md's section are `perf_guest_out`'s. Nothing is asserted.

use std::collections::BTreeMap;
use std::time::Duration;

/// Which hypervisor a boot ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hv {
    Argon,
    Xen,
}

impl Hv {
    pub fn name(self) -> &'static str {
        match self {
            Hv::Argon => "Argon",
            Hv::Xen => "Xen 4.17",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Hv::Argon => "argon",
            Hv::Xen => "xen",
        }
    }
}

/// The layouts, in the guest's order.
pub const MODES: [&str; 3] = ["disjoint", "shared", "hot"];

/// One repetition of one layout (all vCPUs together).
#[derive(Debug, Clone, PartialEq)]
pub struct Rep {
    pub mode: String,
    pub rep: u32,
    pub batch: u32,
    pub updates: u64,
    /// TSC ticks from the first vCPU's start to the last one's end.
    pub wall: u64,
    /// TSC ticks inside `mmu_update`, summed over vCPUs.
    pub hc: u64,
}

/// One vCPU's share of one repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct VcpuRow {
    pub mode: String,
    pub rep: u32,
    pub id: u32,
    pub updates: u64,
    /// TSC ticks inside `mmu_update`, and from its start to its end.
    pub hc: u64,
    pub wall: u64,
}

/// Shootdowns to `k` spinning vCPUs: TSC ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub k: u32,
    pub flushes: u32,
    pub median: u64,
    pub p10: u64,
    pub p90: u64,
}

/// Argon's IPI round trip in ticks, `[median, p10, p90]` with targets halted and spinning.
#[derive(Debug, Clone, PartialEq)]
pub struct Ipi {
    pub halted: [u64; 3],
    pub spinning: [u64; 3],
}

/// Everything one boot produced.
#[derive(Debug, Clone)]
pub struct BootResult {
    pub hv: Hv,
    pub vcpus: u32,
    pub reps: Vec<Rep>,
    pub vcpu_rows: Vec<VcpuRow>,
    pub flushes: Vec<Flush>,
    pub ipi: Option<Ipi>,
    /// TSC ticks and host seconds between the `config` and `end` lines.
    pub tsc_check: Option<(u64, f64)>,
    pub tsc_pair: Option<u64>,
    /// Median ticks of the guest's null hypercall.
    pub null_hc: Option<u64>,
    pub failure: Option<String>,
    /// Other processes' CPU use during the boot, in CPUs (`perf_guest::watched`).
    pub others: Option<f64>,
    /// Boots it took (more than one when earlier ones were disturbed).
    pub attempts: u32,
}

impl BootResult {
    pub fn failed(hv: Hv, vcpus: u32, why: String) -> BootResult {
        parse_boot(hv, vcpus, "", &[], Some(why))
    }
}

/// The run's conditions, for the section's head.
pub struct Setup {
    pub tsc_ghz: f64,
    pub vcpus: u32,
    pub cores: u32,
    pub args: String,
    /// Boots per (hypervisor, vCPUs).
    pub rounds: u32,
    pub qemu: String,
    pub load: [String; 2],
}

/// `key=value` words after the first word of `rest`.
fn kv(rest: &str) -> BTreeMap<&str, u64> {
    rest.split_whitespace()
        .filter_map(|w| {
            let (k, v) = w.split_once('=')?;
            Some((k, v.parse().ok()?))
        })
        .collect()
}

/// Reads one boot's serial log (`line_times`: when each line arrived on the host).
pub fn parse_boot(
    hv: Hv,
    vcpus: u32,
    serial: &str,
    line_times: &[Duration],
    failure: Option<String>,
) -> BootResult {
    let mut b = BootResult {
        hv,
        vcpus,
        reps: Vec::new(),
        vcpu_rows: Vec::new(),
        flushes: Vec::new(),
        ipi: None,
        tsc_check: None,
        tsc_pair: None,
        null_hc: None,
        failure,
        others: None,
        attempts: 1,
    };
    let mut first: Option<(u64, Duration)> = None;
    for (i, line) in serial.lines().enumerate() {
        let at = line_times.get(i).copied();
        if let Some((_, rest)) = line.split_once("bench ipi: ") {
            let m = kv(rest);
            let get = |s: &str| {
                let q = |q: &str| m.get(format!("{s}_{q}").as_str()).copied();
                Some([q("median")?, q("p10")?, q("p90")?])
            };
            if let (Some(halted), Some(spinning)) = (get("halted"), get("spinning")) {
                b.ipi = Some(Ipi { halted, spinning });
            }
            continue;
        }
        let Some((_, rest)) = line.split_once("guest: stress: ") else {
            continue;
        };
        let (kind, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let m = kv(tail);
        let mode = tail
            .split_whitespace()
            .find_map(|w| w.strip_prefix("mode="))
            .unwrap_or_default();
        let g = |k: &str| m.get(k).copied();
        match kind {
            "config" => {
                b.tsc_pair = g("tsc_pair");
                first = g("tsc").zip(at);
            }
            "null_hypercall" => b.null_hc = g("median"),
            "end" => {
                if let (Some((t0, h0)), Some(t1), Some(h1)) = (first, g("tsc"), at) {
                    b.tsc_check = Some((t1.wrapping_sub(t0), (h1 - h0).as_secs_f64()));
                }
            }
            "run" => {
                let r = (|| {
                    Some(Rep {
                        mode: mode.to_string(),
                        rep: g("rep")? as u32,
                        batch: g("batch")? as u32,
                        updates: g("updates")?,
                        wall: g("wall")?,
                        hc: g("hc")?,
                    })
                })();
                b.reps.extend(r);
            }
            "vcpu" => {
                let r = (|| {
                    Some(VcpuRow {
                        mode: mode.to_string(),
                        rep: g("rep")? as u32,
                        id: g("id")? as u32,
                        updates: g("updates")?,
                        hc: g("hc")?,
                        wall: g("wall")?,
                    })
                })();
                b.vcpu_rows.extend(r);
            }
            "shootdown" => {
                let f = (|| {
                    Some(Flush {
                        k: g("k")? as u32,
                        flushes: g("flushes")? as u32,
                        median: g("median")?,
                        p10: g("p10")?,
                        p90: g("p90")?,
                    })
                })();
                b.flushes.extend(f);
            }
            _ => {}
        }
    }
    b
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One (hypervisor, layout, vCPUs) point: medians over the repetitions of every boot of that
/// hypervisor at that vCPU count, with the lowest and highest repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub hv: Hv,
    pub mode: String,
    pub vcpus: u32,
    pub batch: u32,
    /// Repetitions pooled.
    pub reps: usize,
    /// Updates per second, all vCPUs together.
    pub per_s: f64,
    /// TSC ticks inside `mmu_update` per update, as the issuing vCPU saw them: median, lowest
    /// and highest repetition.
    pub ticks: f64,
    pub ticks_range: (f64, f64),
}

/// The (hypervisor, vCPUs) pairs that have boots, in order.
pub fn pairs(boots: &[BootResult]) -> Vec<(Hv, u32)> {
    let mut v: Vec<(Hv, u32)> = boots.iter().map(|b| (b.hv, b.vcpus)).collect();
    v.sort();
    v.dedup();
    v
}

/// The boots of one hypervisor at one vCPU count.
pub fn boots_of(boots: &[BootResult], hv: Hv, vcpus: u32) -> impl Iterator<Item = &BootResult> {
    boots.iter().filter(move |b| b.hv == hv && b.vcpus == vcpus)
}

/// The points of every (hypervisor, vCPUs) pair, layout by layout.
pub fn points(boots: &[BootResult], tsc_ghz: f64) -> Vec<Point> {
    let mut out = Vec::new();
    for (hv, vcpus) in pairs(boots) {
        for mode in MODES {
            let reps: Vec<&Rep> = boots_of(boots, hv, vcpus)
                .flat_map(|b| b.reps.iter())
                .filter(|r| r.mode == mode)
                .collect();
            let per_s = reps
                .iter()
                .map(|r| r.updates as f64 * tsc_ghz * 1e9 / r.wall.max(1) as f64);
            let ticks: Vec<f64> = reps
                .iter()
                .map(|r| r.hc as f64 / r.updates.max(1) as f64)
                .collect();
            let lo = ticks.iter().copied().fold(f64::MAX, f64::min);
            let hi = ticks.iter().copied().fold(0.0, f64::max);
            if let (Some(per_s), Some(t)) = (median(per_s.collect()), median(ticks)) {
                out.push(Point {
                    hv,
                    mode: mode.to_string(),
                    vcpus,
                    batch: reps[0].batch,
                    reps: reps.len(),
                    per_s,
                    ticks: t,
                    ticks_range: (lo, hi),
                });
            }
        }
    }
    out
}

/// Shootdowns to `k` vCPUs at `vcpus`: the median over boots of each boot's median, p10 and
/// p90 (TSC ticks), and how many boots had it.
pub fn flush_point(boots: &[BootResult], hv: Hv, vcpus: u32, k: u32) -> Option<([f64; 3], usize)> {
    let fs: Vec<&Flush> = boots_of(boots, hv, vcpus)
        .filter_map(|b| b.flushes.iter().find(|f| f.k == k))
        .collect();
    let q = |f: fn(&Flush) -> u64| median(fs.iter().map(|x| f(x) as f64).collect());
    Some(([q(|f| f.median)?, q(|f| f.p10)?, q(|f| f.p90)?], fs.len()))
}

/// Argon's IPI round trip at `vcpus` (median over boots of each boot's median): halted,
/// spinning, in TSC ticks.
pub fn ipi_point(boots: &[BootResult], vcpus: u32) -> Option<(f64, f64)> {
    let ipis: Vec<&Ipi> = boots_of(boots, Hv::Argon, vcpus)
        .filter_map(|b| b.ipi.as_ref())
        .collect();
    let q = |f: fn(&Ipi) -> u64| median(ipis.iter().map(|x| f(x) as f64).collect());
    Some((q(|i| i.halted[0])?, q(|i| i.spinning[0])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARGON: &str = "argon: bench ipi: targets=1 samples=512 halted_median=700 \
        halted_p10=600 halted_p90=900 spinning_median=500 spinning_p10=400 spinning_p90=800 \
        (TSC ticks; medians 270 ns halted, 190 ns spinning)\n\
        (d0) guest: stress: config vcpus=2 batch=64 iters=10 reps=2 flushes=5 tsc_pair=1 tsc=1000\n\
        (d0) guest: stress: null_hypercall samples=256 median=321\n\
        (d0) guest: stress: vcpu mode=disjoint rep=0 id=0 updates=640 hc=6400 wall=7000\n\
        (d0) guest: stress: run mode=disjoint vcpus=2 rep=0 batch=64 updates=1280 wall=2000 hc=12800\n\
        (d0) guest: stress: run mode=disjoint vcpus=2 rep=1 batch=64 updates=1280 wall=4000 hc=25600\n\
        (d0) guest: stress: shootdown vcpus=2 k=1 flushes=5 median=30 p10=20 p90=40 min=10\n\
        (d0) guest: stress: end tsc=3001000\n";

    #[test]
    fn parses_a_boot_and_takes_medians() {
        let times: Vec<Duration> = (0..8).map(|i| Duration::from_millis(i * 100)).collect();
        let b = parse_boot(Hv::Argon, 2, ARGON, &times, None);
        assert_eq!(b.reps.len(), 2);
        assert_eq!(b.vcpu_rows.len(), 1);
        assert_eq!((b.vcpu_rows[0].hc, b.vcpu_rows[0].wall), (6400, 7000));
        assert_eq!(b.reps[1].wall, 4000);
        assert_eq!(b.flushes[0].median, 30);
        assert_eq!(b.ipi.as_ref().unwrap().spinning, [500, 400, 800]);
        assert_eq!((b.tsc_pair, b.null_hc), (Some(1), Some(321)));
        // 3,000,000 ticks in the 0.6 s between the config line (1) and the end line (7).
        let (ticks, secs) = b.tsc_check.unwrap();
        assert_eq!(ticks, 3_000_000);
        assert!((secs - 0.6).abs() < 1e-9);
        let boots = [b.clone(), BootResult::failed(Hv::Xen, 2, "x".into())];
        assert_eq!(
            flush_point(&boots, Hv::Argon, 2, 1),
            Some(([30.0, 20.0, 40.0], 1))
        );
        assert_eq!(flush_point(&boots, Hv::Xen, 2, 1), None);
        assert_eq!(ipi_point(&boots, 2), Some((700.0, 500.0)));
        let p = points(&[b], 1.0);
        assert_eq!(p.len(), 1);
        // 1280 updates in 2000 and 4000 ticks at 1 GHz: 640M/s and 320M/s, median 480M/s.
        assert!((p[0].per_s - 480e6).abs() < 1.0);
        assert!((p[0].ticks - 15.0).abs() < 1e-9);
        assert_eq!((p[0].reps, p[0].ticks_range), (2, (10.0, 20.0)));
    }

    #[test]
    fn medians_and_failed_boots() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0]), Some(2.5));
        let f = BootResult::failed(Hv::Xen, 1, "no".into());
        assert!(f.reps.is_empty() && f.failure.as_deref() == Some("no"));
    }
}
