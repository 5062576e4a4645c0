//! Differential conformance: the same guest image and suite on Argon and on Xen 4.17, compared
//! test by test (DESIGN §1, §9.4).
//!
//! [`run_argon`] boots the guest as Argon's domain 0 with as many vCPUs as Xen gives dom0 (one
//! per CPU) and parses its verdicts with the same [`GuestReport`] parser as the Xen run.
//! [`compare`] pairs the verdicts by test name (Xen's order first, then tests only Argon ran):
//! a row is *same* when both passed or both failed, and *differs* otherwise, a test one side
//! never reported included (a crash part-way leaves the rest missing). A difference is accepted
//! only if its test is listed, with a reason, in the table under `## Justified differences` in
//! `guest/README.md` ([`Justified`]); every other difference fails `cargo xtask xen` and the Xen
//! tier of `cargo xtask test`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::qemu::{self, Boot, EXIT_SUCCESS, Outcome};
use crate::symbols::Symbols;
use crate::xen_report::{GuestReport, Verdict};
use crate::{Result, root};

/// The heading of the justified-differences table in `guest/README.md`.
pub const JUSTIFIED_HEADING: &str = "## Justified differences";

/// One run of a guest suite on Argon.
#[derive(Debug)]
pub struct ArgonRun {
    pub report: GuestReport,
    pub outcome: Outcome,
}

impl ArgonRun {
    /// Why the run failed (the guest's own account, then the exit status), or `None`.
    pub fn failure(&self) -> Option<String> {
        self.report
            .failure()
            .or_else(|| self.outcome.verdict(EXIT_SUCCESS, "argon: exit: success"))
    }
}

/// Boots Argon (`image`) with `guest` as domain 0 running `suite` on `smp` CPUs and vCPUs.
pub fn run_argon(
    image: &Path,
    guest: &Path,
    suite: &str,
    smp: u32,
    timeout: Duration,
    echo: bool,
) -> Result<ArgonRun> {
    let mut boot = Boot::new(image);
    boot.smp = smp;
    boot.timeout = timeout;
    boot.modules = vec![(guest.to_path_buf(), format!("vcpus={smp} {suite}"))];
    eprintln!("xtask: {}", boot.describe());
    let syms = Symbols::load(image);
    let outcome =
        qemu::run(&boot, syms.as_ref(), echo).map_err(|e| format!("starting QEMU: {e}"))?;
    Ok(ArgonRun {
        report: GuestReport::parse(&outcome.serial),
        outcome,
    })
}

/// The tests whose verdicts may differ, with the reason, from `guest/README.md`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Justified(pub BTreeMap<String, String>);

impl Justified {
    /// Reads the table from `guest/README.md` (an error if the file or heading is missing).
    pub fn load() -> Result<Justified> {
        let path = root().join("guest/README.md");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Justified::parse(&text).ok_or_else(|| {
            format!(
                "{} has no {JUSTIFIED_HEADING:?} section (the table may be empty)",
                path.display()
            )
        })
    }

    /// The rows `| test | why |` between [`JUSTIFIED_HEADING`] and the next `## ` heading; the
    /// table's header and separator rows are skipped, backticks around names dropped.
    /// `None` without the heading.
    pub fn parse(readme: &str) -> Option<Justified> {
        let mut lines = readme.lines().skip_while(|l| l.trim() != JUSTIFIED_HEADING);
        lines.next()?;
        let mut map = BTreeMap::new();
        for line in lines.take_while(|l| !l.starts_with("## ")) {
            let Some(row) = line.trim().strip_prefix('|') else {
                continue;
            };
            let mut cells = row.split('|').map(str::trim);
            let (Some(name), Some(why)) = (cells.next(), cells.next()) else {
                continue;
            };
            let name = name.trim_matches('`');
            let is_rule = name.chars().all(|c| c == '-' || c == ':');
            if name.is_empty() || is_rule || name == "test" || why.is_empty() {
                continue;
            }
            map.insert(name.to_string(), why.to_string());
        }
        Some(Justified(map))
    }
}

/// One side's verdict on one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Pass,
    Fail(String),
    /// The side printed no verdict for the test.
    Missing,
}

impl Seen {
    fn of(report: &GuestReport, test: &str) -> Seen {
        match report.verdicts.iter().find(|(n, _)| n == test) {
            Some((_, Verdict::Pass)) => Seen::Pass,
            Some((_, Verdict::Fail(why))) => Seen::Fail(why.clone()),
            None => Seen::Missing,
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            Seen::Pass => "PASS",
            Seen::Fail(_) => "FAIL",
            Seen::Missing => "-",
        }
    }
}

/// Argon's and Xen's verdicts on one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub test: String,
    pub argon: Seen,
    pub xen: Seen,
    /// The README's reason, if the test is in the justified-differences table.
    pub justified: Option<String>,
}

impl Row {
    /// Both passed or both failed.
    pub fn same(&self) -> bool {
        matches!(
            (&self.argon, &self.xen),
            (Seen::Pass, Seen::Pass) | (Seen::Fail(_), Seen::Fail(_))
        )
    }

    /// Why this row fails the comparison: an unjustified difference. `None` if it is fine.
    pub fn problem(&self) -> Option<String> {
        if self.same() || self.justified.is_some() {
            return None;
        }
        let why = |s: &Seen| match s {
            Seen::Fail(w) => format!(" ({w})"),
            _ => String::new(),
        };
        Some(format!(
            "Argon {}{}, Xen {}{}; not in guest/README.md's justified differences",
            self.argon.word(),
            why(&self.argon),
            self.xen.word(),
            why(&self.xen)
        ))
    }
}

/// Pairs the two reports' verdicts by test name: Xen's order, then tests only Argon reported.
pub fn compare(argon: &GuestReport, xen: &GuestReport, justified: &Justified) -> Vec<Row> {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in xen.verdicts.iter().chain(&argon.verdicts) {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    names
        .into_iter()
        .map(|n| Row {
            test: n.to_string(),
            argon: Seen::of(argon, n),
            xen: Seen::of(xen, n),
            justified: justified.0.get(n).cloned(),
        })
        .collect()
}

/// `(same, differ, justified differences)` over `rows`.
pub fn counts(rows: &[Row]) -> (usize, usize, usize) {
    let same = rows.iter().filter(|r| r.same()).count();
    let justified = rows
        .iter()
        .filter(|r| !r.same() && r.justified.is_some())
        .count();
    (same, rows.len() - same, justified)
}

/// Prints the side-by-side table and the `N same, M differ` summary (to stderr, prefixed).
pub fn print_table(suite: &str, rows: &[Row]) {
    let width = rows.iter().map(|r| r.test.len()).max().unwrap_or(4).max(4);
    eprintln!("xtask: xen: suite {suite}: {:width$}  argon  xen", "test");
    for r in rows {
        let note = match (&r.justified, r.same()) {
            (_, true) => String::new(),
            (Some(why), false) => format!("  differ, justified: {why}"),
            (None, false) => "  DIFFER".to_string(),
        };
        eprintln!(
            "xtask: xen: suite {suite}: {:width$}  {:5}  {:4}{note}",
            r.test,
            r.argon.word(),
            r.xen.word()
        );
    }
    let (same, differ, justified) = counts(rows);
    eprintln!("xtask: xen: suite {suite}: {same} same, {differ} differ ({justified} justified)");
}

/// One counted case of the Xen tier: its name and result.
pub type TierCase = (String, std::result::Result<(), String>);

/// The Xen tier of `cargo xtask test`: each suite on Xen 4.17 and on Argon (`image`), one case
/// `<prefix>/<test>` per test — it passes when Xen passed it and Argon's verdict is the same, or
/// when the difference is justified — plus `<prefix>/run` (the Xen run as a whole) and
/// `<prefix>/argon-run`.
pub fn tier(image: &Path, guest: &Path) -> Vec<TierCase> {
    let mut out = Vec::new();
    let justified = match Justified::load() {
        Ok(j) => j,
        Err(e) => return vec![("xen/justified-differences".into(), Err(e))],
    };
    // The conformance suite on one CPU, and the SMP suite on 4 vCPUs / 4 CPUs.
    for (prefix, suite, smp) in [("xen", "tests", 1), ("xen-smp", "smp", 4)] {
        let opts = crate::xen::XenOptions {
            echo: false,
            suite: suite.into(),
            smp,
            timeout: Duration::from_secs(180),
            guest: Some(guest.to_path_buf()),
            ..Default::default()
        };
        let xen = match crate::xen::run_xen(&opts) {
            Ok(run) => {
                out.push((format!("{prefix}/run"), run.failure().map_or(Ok(()), Err)));
                run.report
            }
            Err(e) => {
                out.push((format!("{prefix}/run"), Err(e)));
                continue;
            }
        };
        let argon = match run_argon(image, guest, suite, smp, opts.timeout, false) {
            Ok(run) => {
                let r = run.failure().map_or(Ok(()), Err);
                out.push((format!("{prefix}/argon-run"), r));
                run.report
            }
            Err(e) => {
                out.push((format!("{prefix}/argon-run"), Err(e)));
                GuestReport::default()
            }
        };
        let rows = compare(&argon, &xen, &justified);
        let (same, differ, just) = counts(&rows);
        println!("{prefix}: suite {suite}: {same} same, {differ} differ ({just} justified)");
        for r in rows {
            let result = match (r.problem(), &r.xen) {
                (Some(p), _) => Err(p),
                (None, Seen::Fail(why)) if r.justified.is_none() => {
                    Err(format!("failed on Xen and on Argon: {why}"))
                }
                _ => Ok(()),
            };
            out.push((format!("{prefix}/{}", r.test), result));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# guest\n\n## Justified differences\n\n\
        | test | why |\n|---|---|\n| `audit` | Argon only |\n| flaky | because |\n\n\
        ## Spec cases left out\n\n| 6 | needs a domU |\n";

    fn report(lines: &str) -> GuestReport {
        GuestReport::parse(lines)
    }

    #[test]
    fn justified_table_is_read_up_to_the_next_heading() {
        let j = Justified::parse(README).unwrap();
        assert_eq!(j.0.len(), 2);
        assert_eq!(j.0.get("audit").map(String::as_str), Some("Argon only"));
        assert!(j.0.contains_key("flaky"));
        assert!(!j.0.contains_key("6"));
        assert_eq!(Justified::parse("# no table\n"), None);
        let empty = "## Justified differences\n\n| test | why |\n|---|---|\n";
        assert_eq!(Justified::parse(empty), Some(Justified::default()));
    }

    #[test]
    fn rows_pair_by_name_and_flag_unjustified_differences() {
        let argon = report(
            "(d0) guest: PASS a\n(d0) guest: FAIL b: x\n(d0) guest: PASS c\n\
             (d0) guest: PASS audit\n",
        );
        let xen = report("guest: PASS a\nguest: FAIL b: y\nguest: FAIL c: z\nguest: PASS d\n");
        let j = Justified::parse(README).unwrap();
        let rows = compare(&argon, &xen, &j);
        let names: Vec<&str> = rows.iter().map(|r| r.test.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "audit"]);
        assert_eq!(counts(&rows), (2, 3, 1));
        assert!(rows[0].problem().is_none() && rows[1].problem().is_none());
        assert!(
            rows[2]
                .problem()
                .unwrap()
                .contains("Argon PASS, Xen FAIL (z)")
        );
        assert_eq!(rows[3].argon, Seen::Missing);
        assert!(rows[3].problem().is_some());
        assert_eq!(rows[4].xen, Seen::Missing);
        assert_eq!(rows[4].problem(), None, "audit is justified");
    }
}
