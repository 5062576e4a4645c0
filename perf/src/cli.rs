//! Command-line options of the `perf` binary.

use crate::world::{Design, Variant};

/// Usage text.
pub const USAGE: &str =
    "usage: perf [--quick] [--threads N] [--reps N] [--window-ms MS] [--out DIR]
       perf --callgrind [--design argon|global_lock|per_table_lock] [--variant rw|ro] [--updates N]

  --quick          smoke run: 1 repetition of 100 ms per point, fewer timed batches
  --threads N      measure 1..=N threads (default: available cores)
  --reps N         repetitions per point, median reported (default 3)
  --window-ms MS   wall-clock window of one throughput run (default 500)
  --out DIR        results directory (default: perf/results)
  --callgrind      run a fixed single-thread workload and exit (run it under valgrind)
";

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// The full bench.
    Bench(BenchOpts),
    /// The fixed callgrind workload.
    Callgrind {
        /// Design.
        design: Design,
        /// Entry variant.
        variant: Variant,
        /// Timed updates after setup.
        updates: u64,
    },
    /// Print usage.
    Help,
}

/// Options of a bench run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOpts {
    /// Largest thread count.
    pub threads: usize,
    /// Repetitions per point.
    pub reps: usize,
    /// Window of one throughput run (ms).
    pub window_ms: u64,
    /// Updates timed per cycle-table row.
    pub cycle_updates: u64,
    /// Window of one contended-RMW floor point (ms).
    pub floor_ms: u64,
    /// Results directory.
    pub out: String,
    /// `--quick` was given.
    pub quick: bool,
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<&String>) -> Result<T, String> {
    let v = v.ok_or(format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
}

/// Parse `args` (without the program name); `cores` is the default thread count.
pub fn parse(args: &[String], cores: usize) -> Result<Command, String> {
    let mut o = BenchOpts {
        threads: cores.max(1),
        reps: 3,
        window_ms: 500,
        cycle_updates: 200_000,
        floor_ms: 200,
        out: concat!(env!("CARGO_MANIFEST_DIR"), "/results").into(),
        quick: false,
    };
    let (mut reps, mut window) = (None, None);
    let mut callgrind = false;
    let (mut design, mut variant, mut updates) = (Design::Argon, Variant::Rw, 10_000);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--threads" => o.threads = number("--threads", it.next())?,
            "--reps" => reps = Some(number("--reps", it.next())?),
            "--window-ms" => window = Some(number("--window-ms", it.next())?),
            "--out" => o.out = it.next().ok_or("--out needs a value")?.clone(),
            "--callgrind" => callgrind = true,
            "--design" => {
                let v = it.next().ok_or("--design needs a value")?;
                design = Design::parse(v).ok_or(format!("--design: unknown design {v}"))?;
            }
            "--variant" => {
                variant = match it.next().map(String::as_str) {
                    Some("rw") => Variant::Rw,
                    Some("ro") => Variant::Ro,
                    other => return Err(format!("--variant: expected rw or ro, got {other:?}")),
                }
            }
            "--updates" => updates = number("--updates", it.next())?,
            "-h" | "--help" => return Ok(Command::Help),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if callgrind {
        return Ok(Command::Callgrind {
            design,
            variant,
            updates,
        });
    }
    if o.threads == 0 || reps == Some(0) || window == Some(0) {
        return Err("--threads, --reps and --window-ms must be positive".into());
    }
    if o.quick {
        (o.reps, o.window_ms, o.cycle_updates, o.floor_ms) = (1, 100, 20_000, 50);
    }
    o.reps = reps.unwrap_or(o.reps);
    o.window_ms = window.unwrap_or(o.window_ms);
    Ok(Command::Bench(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_quick_and_overrides() {
        let Ok(Command::Bench(o)) = parse(&[], 2) else {
            panic!()
        };
        assert_eq!(
            (o.threads, o.reps, o.window_ms, o.quick),
            (2, 3, 500, false)
        );
        let Ok(Command::Bench(q)) = parse(&args("--quick --threads 4 --reps 2"), 2) else {
            panic!()
        };
        assert_eq!((q.threads, q.reps, q.window_ms, q.quick), (4, 2, 100, true));
    }

    #[test]
    fn callgrind_and_errors() {
        let c = parse(
            &args("--callgrind --design per_table_lock --variant ro --updates 7"),
            2,
        );
        assert_eq!(
            c,
            Ok(Command::Callgrind {
                design: Design::PerTableLock,
                variant: Variant::Ro,
                updates: 7
            })
        );
        assert!(parse(&args("--threads x"), 2).is_err());
        assert!(parse(&args("--threads 0"), 2).is_err());
        assert!(parse(&args("--design nope --callgrind"), 2).is_err());
        assert!(parse(&args("--bogus"), 2).is_err());
    }
}
