//! The guest kernel's verdict lines, parsed ([`GuestReport`]): the output contract of
//! `guest/src/harness.rs`, read the same way from Argon's console (`(d0) guest: …`) and from
//! Xen's (`guest: …`), since anything before `guest: ` on a line is ignored.

/// One test's verdict as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The guest's reason.
    Fail(String),
}

/// Everything the guest said, parsed from `guest: …` lines (any prefix before `guest: ` is
/// ignored, so the same parser reads Argon's and Xen's consoles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestReport {
    pub suite: Option<String>,
    /// (test name, verdict), in the order printed.
    pub verdicts: Vec<(String, Verdict)>,
    /// `<n> passed, <m> failed`.
    pub summary: Option<(u32, u32)>,
    pub done: bool,
    /// The guest's panic message, if it panicked.
    pub panic: Option<String>,
}

impl GuestReport {
    pub fn parse(serial: &str) -> GuestReport {
        let mut r = GuestReport::default();
        for line in serial.lines() {
            let Some(at) = line.find("guest: ") else {
                continue;
            };
            let msg = line[at + "guest: ".len()..].trim_end();
            if let Some(name) = msg.strip_prefix("PASS ") {
                r.verdicts.push((name.trim().to_string(), Verdict::Pass));
            } else if let Some(rest) = msg.strip_prefix("FAIL ") {
                let (name, why) = rest.split_once(": ").unwrap_or((rest, ""));
                r.verdicts
                    .push((name.trim().to_string(), Verdict::Fail(why.to_string())));
            } else if let Some(rest) = msg.strip_prefix("suite ") {
                r.suite = rest.split_whitespace().next().map(str::to_string);
            } else if let Some(rest) = msg.strip_prefix("PANIC ") {
                r.panic = Some(rest.to_string());
            } else if msg == "done" {
                r.done = true;
            } else if let Some(s) = parse_summary(msg) {
                r.summary = Some(s);
            }
        }
        r
    }

    pub fn passed(&self) -> usize {
        self.verdicts
            .iter()
            .filter(|(_, v)| *v == Verdict::Pass)
            .count()
    }

    pub fn failed(&self) -> Vec<&(String, Verdict)> {
        self.verdicts
            .iter()
            .filter(|(_, v)| *v != Verdict::Pass)
            .collect()
    }

    /// Why the guest's own account is not a clean pass, or `None` if it is.
    pub fn failure(&self) -> Option<String> {
        if let Some(p) = &self.panic {
            return Some(format!("guest panicked: {p}"));
        }
        let failed = self.failed();
        if !failed.is_empty() {
            let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
            return Some(format!(
                "{} test(s) failed: {}",
                failed.len(),
                names.join(", ")
            ));
        }
        if !self.done {
            return Some("no `guest: done` line (the guest hung or crashed)".into());
        }
        match self.summary {
            None => Some("no `guest: <n> passed, <m> failed` summary".into()),
            Some((_, f)) if f != 0 => Some(format!("summary reports {f} failed")),
            Some((0, _)) => Some("no test ran".into()),
            Some((p, _)) if p as usize != self.passed() => Some(format!(
                "summary says {p} passed but {} PASS lines",
                self.passed()
            )),
            Some(_) => None,
        }
    }
}

/// Parses `<n> passed, <m> failed`.
fn parse_summary(msg: &str) -> Option<(u32, u32)> {
    let (p, f) = msg.split_once(" passed, ")?;
    Some((
        p.trim().parse().ok()?,
        f.strip_suffix(" failed")?.trim().parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "(XEN) Freed 656kB init memory\n\
        guest: Argon-test 0.1.0 up\n\
        guest: suite tests (3 tests)\n\
        guest: PASS start_info_magic\n\
        guest: info xen_version 4.17\n\
        (d0) guest: FAIL mmuext_unknown_cmds: rc for cmd 14: got -22, want -38\n\
        guest: PASS xen_version_sane\n\
        guest: 2 passed, 1 failed\n\
        guest: done\n\
        (XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.\n";

    #[test]
    fn parses_verdicts_summary_and_done() {
        let r = GuestReport::parse(LOG);
        assert_eq!(r.suite.as_deref(), Some("tests"));
        assert_eq!(
            r.verdicts,
            vec![
                ("start_info_magic".to_string(), Verdict::Pass),
                (
                    "mmuext_unknown_cmds".to_string(),
                    Verdict::Fail("rc for cmd 14: got -22, want -38".into())
                ),
                ("xen_version_sane".to_string(), Verdict::Pass),
            ]
        );
        assert_eq!(r.summary, Some((2, 1)));
        assert!(r.done);
        assert!(r.failure().unwrap().contains("mmuext_unknown_cmds"));
    }

    #[test]
    fn clean_log_passes_and_gaps_fail() {
        let clean = "guest: PASS a\nguest: PASS b\nguest: 2 passed, 0 failed\nguest: done\n";
        assert_eq!(GuestReport::parse(clean).failure(), None);
        let no_done = "guest: PASS a\nguest: 1 passed, 0 failed\n";
        assert!(
            GuestReport::parse(no_done)
                .failure()
                .unwrap()
                .contains("done")
        );
        let no_summary = "guest: PASS a\nguest: done\n";
        assert!(
            GuestReport::parse(no_summary)
                .failure()
                .unwrap()
                .contains("summary")
        );
        let mismatch = "guest: PASS a\nguest: 2 passed, 0 failed\nguest: done\n";
        assert!(
            GuestReport::parse(mismatch)
                .failure()
                .unwrap()
                .contains("PASS lines")
        );
        let none_ran = "guest: 0 passed, 0 failed\nguest: done\n";
        assert!(GuestReport::parse(none_ran).failure().is_some());
        let panic =
            "guest: PASS a\nguest: PANIC at x.rs:1\nguest: 0 passed, 1 failed\nguest: done\n";
        assert!(
            GuestReport::parse(panic)
                .failure()
                .unwrap()
                .contains("panicked")
        );
    }

    #[test]
    fn summary_parser() {
        assert_eq!(parse_summary("14 passed, 0 failed"), Some((14, 0)));
        assert_eq!(parse_summary("x passed, 0 failed"), None);
        assert_eq!(parse_summary("Argon-test 0.1.0 up"), None);
    }
}
