//! The statistics the reports use: order statistics of samples, scaling efficiency and ratios.
//! Pure functions over `f64` slices; NaN never enters (callers pass measured finite values).

/// The `q`-quantile (0 ≤ q ≤ 1) of `samples` by linear interpolation between closest ranks;
/// `None` for no samples.
pub fn quantile(samples: &[f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    Some(v[lo] + (v[hi] - v[lo]) * frac)
}

/// The median of `samples`.
pub fn median(samples: &[f64]) -> Option<f64> {
    quantile(samples, 0.5)
}

/// The arithmetic mean of `samples`.
pub fn mean(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        None
    } else {
        Some(samples.iter().sum::<f64>() / samples.len() as f64)
    }
}

/// Scaling efficiency: `throughput(n) / (n × throughput(1))`; 1.0 is perfect scaling.
pub fn efficiency(throughput_n: f64, n: usize, throughput_1: f64) -> Option<f64> {
    let denom = n as f64 * throughput_1;
    (n > 0 && denom > 0.0).then(|| throughput_n / denom)
}

/// `a / b`, or `None` when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Summary of a set of samples: the figures the cycle table reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Median.
    pub median: f64,
    /// 10th percentile.
    pub p10: f64,
    /// 90th percentile.
    pub p90: f64,
    /// Mean.
    pub mean: f64,
}

impl Summary {
    /// Summarise `samples`; `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        Some(Summary {
            n: samples.len(),
            median: median(samples)?,
            p10: quantile(samples, 0.1)?,
            p90: quantile(samples, 0.9)?,
            mean: mean(samples)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_and_ignore_order() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&v), Some(3.0));
        assert_eq!(quantile(&v, 0.0), Some(1.0));
        assert_eq!(quantile(&v, 1.0), Some(5.0));
        assert_eq!(quantile(&v, 0.1), Some(1.4));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn efficiency_and_ratio() {
        assert_eq!(efficiency(200.0, 2, 100.0), Some(1.0));
        assert_eq!(efficiency(150.0, 2, 100.0), Some(0.75));
        assert_eq!(efficiency(1.0, 0, 1.0), None);
        assert_eq!(efficiency(1.0, 2, 0.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
    }

    #[test]
    fn summary_of_samples() {
        let s = Summary::of(&[10.0, 20.0, 30.0, 40.0]).unwrap();
        assert_eq!((s.n, s.median, s.mean), (4, 25.0, 25.0));
        assert_eq!(s.p10, 13.0);
        assert_eq!(s.p90, 37.0);
        assert!(Summary::of(&[]).is_none());
    }
}
