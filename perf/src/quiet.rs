//! Is anyone else using the CPUs? A measurement on a shared machine is only as good as the
//! CPU time it really got, so each timed run takes a [`Snapshot`] before and after and reports
//! how many CPUs' worth of time *other* processes used meanwhile (Linux `/proc/stat` minus this
//! process's `/proc/self/stat`). Elsewhere the figure is unknown (`None`) and nothing is flagged.

/// Above this many CPUs' worth of other work during a run, the run counts as disturbed.
pub const DISTURBED: f64 = 0.1;

/// System-wide and own CPU time at one instant (clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    busy: u64,
    total: u64,
    ours: u64,
    cpus: usize,
}

impl Snapshot {
    /// Read the counters now; `None` where `/proc` is not available.
    pub fn now() -> Option<Snapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        let (busy, total) = parse_stat(&stat)?;
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        Some(Snapshot {
            busy,
            total,
            ours: parse_self(&own)?,
            cpus,
        })
    }

    /// CPUs' worth of time used by other processes between `self` and `later`.
    pub fn others_since(&self, later: &Snapshot) -> f64 {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        let busy = later.busy.saturating_sub(self.busy);
        let ours = later.ours.saturating_sub(self.ours);
        busy.saturating_sub(ours) as f64 / total * self.cpus.max(1) as f64
    }
}

/// `(busy, total)` ticks from the aggregate `cpu` line of `/proc/stat` (guest time is already
/// inside user time, so only the first eight fields count).
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v.try_into().ok()?;
    let busy = user + nice + system + irq + softirq + steal;
    Some((busy, busy + idle + iowait))
}

/// utime + stime of this process from `/proc/self/stat` (fields 14 and 15; the command name
/// in parentheses may contain spaces, so fields are counted after the last `)`).
pub fn parse_self(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is f[0], so field n is f[n - 3].
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Time `f`, returning its value and the other processes' CPU use meanwhile (if known).
pub fn watched<T>(f: impl FnOnce() -> T) -> (T, Option<f64>) {
    let a = Snapshot::now();
    let r = f();
    let others = a.zip(Snapshot::now()).map(|(a, b)| a.others_since(&b));
    (r, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 5 50 800 10 1 2 3 0 0\ncpu0 50 2 25 400 5 0 1 1 0 0\n";
        assert_eq!(parse_stat(stat), Some((161, 971)));
        let own = "1234 (perf (x) y) R 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0 1 0";
        assert_eq!(parse_self(own), Some(100));
        assert_eq!(parse_self("garbage"), None);
    }

    #[test]
    fn others_exclude_our_own_time() {
        let a = Snapshot {
            busy: 0,
            total: 0,
            ours: 0,
            cpus: 2,
        };
        // 200 ticks elapsed over 2 CPUs; 150 busy, 100 of them ours: 50 others = 0.5 CPU.
        let b = Snapshot {
            busy: 150,
            total: 200,
            ours: 100,
            cpus: 2,
        };
        assert_eq!(a.others_since(&b), 0.5);
    }
}
