//! Statistics shared by the load driver and the analysis: HDR histograms of
//! microseconds, percentiles, ratios and intervals over repetitions. Pure
//! functions of their inputs.

use hdrhistogram::Histogram;

use crate::run_folder::summary::{Estimate, Latency};

/// A histogram of microseconds from 0 to one hour at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Percentiles of microsecond values, in milliseconds.
pub fn latency(values_us: impl Iterator<Item = u64>) -> Option<Latency> {
    let mut histogram = histogram();
    for value in values_us {
        histogram.saturating_record(value);
    }
    if histogram.is_empty() {
        return None;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Some(Latency {
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        p999: ms(0.999),
        max: histogram.max() as f64 / 1000.0,
    })
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// FNV-1a, to derive a per-architecture bootstrap seed.
pub fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Below this many values, intervals are Student-t; from it, bootstrap (a
/// percentile bootstrap of 2–9 values is little more than their range).
pub const BOOTSTRAP_FROM: usize = 10;

/// How the intervals of `repetitions` repetitions are computed: `"t"` or
/// `"bootstrap"`.
pub fn interval_method(repetitions: usize) -> &'static str {
    if repetitions < BOOTSTRAP_FROM {
        "t"
    } else {
        "bootstrap"
    }
}

/// The 97.5th percentile of Student's t with 1 to 30 degrees of freedom.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 97.5th percentile of Student's t with `df` degrees of freedom,
/// rounded down (wider), and 1.96 from 120 on (2.0 between 31 and 119).
fn t_975(df: f64) -> f64 {
    match df.floor() as usize {
        0 | 1 => T_975[0],
        n @ 2..=30 => T_975[n - 1],
        31..=119 => 2.0,
        _ => 1.96,
    }
}

/// The difference of the means of `a` and `b` and its 95 % interval by
/// Welch's t (unequal variances); `None` with fewer than two of either.
pub fn welch(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let moments = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let variance = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance / n)
    };
    let ((ma, va), (mb, vb)) = (moments(a), moments(b));
    let difference = ma - mb;
    let se2 = va + vb;
    if se2 == 0.0 {
        return Some((difference, difference, difference));
    }
    let df =
        se2.powi(2) / (va.powi(2) / (a.len() as f64 - 1.0) + vb.powi(2) / (b.len() as f64 - 1.0));
    let half = t_975(df) * se2.sqrt();
    Some((difference, difference - half, difference + half))
}

/// Mean and 95 % interval of the mean: Student-t below
/// [`BOOTSTRAP_FROM`] values, else a percentile bootstrap (2,000
/// resamples, deterministic for a seed); no interval for one value.
pub fn estimate(values: &[f64], seed: u64) -> Option<Estimate> {
    const RESAMPLES: usize = 2000;
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(Estimate {
            mean,
            low: None,
            high: None,
            values: values.to_vec(),
        });
    }
    if n < BOOTSTRAP_FROM {
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = T_975[n - 2] * (variance / n as f64).sqrt();
        return Some(Estimate {
            mean,
            low: Some(mean - half),
            high: Some(mean + half),
            values: values.to_vec(),
        });
    }
    let mut state = seed | 1;
    let mut next = || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            (0..n)
                .map(|_| values[(next() % n as u64) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Some(Estimate {
        mean,
        low: Some(means[(RESAMPLES as f64 * 0.025) as usize]),
        high: Some(means[(RESAMPLES as f64 * 0.975) as usize - 1]),
        values: values.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welchs_interval_widens_with_spread_and_needs_two_of_each() {
        assert_eq!(welch(&[1.0], &[1.0, 2.0]), None);
        // Equal spreads of 1 (variance 1), 3 values each: se² = 2/3,
        // df = (2/3)² / (2 × (1/3)² / 2) = 4, t = 2.776.
        let (d, low, high) = welch(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(d, 3.0);
        let half = 2.776 * (2.0f64 / 3.0).sqrt();
        assert!((low - (3.0 - half)).abs() < 1e-12 && (high - (3.0 + half)).abs() < 1e-12);
        let (_, wide_low, _) = welch(&[2.0, 5.0, 8.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!(wide_low < low);
    }

    #[test]
    fn few_values_get_a_student_t_interval() {
        // Mean 2, standard deviation 1, t(2 df) = 4.303: ±4.303/√3.
        let e = estimate(&[1.0, 2.0, 3.0], 7).unwrap();
        assert_eq!(e.mean, 2.0);
        let half = 4.303 / 3f64.sqrt();
        assert!((e.low.unwrap() - (2.0 - half)).abs() < 1e-12, "{e:?}");
        assert!((e.high.unwrap() - (2.0 + half)).abs() < 1e-12, "{e:?}");
        // Wider than the values' range, as an honest interval of three is.
        assert!(e.low.unwrap() < 1.0 && e.high.unwrap() > 3.0);
        assert_eq!(interval_method(3), "t");
        let single = estimate(&[3.0], 7).unwrap();
        assert_eq!((single.mean, single.low, single.high), (3.0, None, None));
        assert!(estimate(&[], 7).is_none());
    }

    #[test]
    fn many_values_get_a_reproducible_bootstrap_interval() {
        let values = [
            0.40, 0.42, 0.39, 0.41, 0.45, 0.43, 0.40, 0.44, 0.42, 0.41, 0.38, 0.46,
        ];
        let a = estimate(&values, 7).unwrap();
        assert_eq!(a, estimate(&values, 7).unwrap());
        let (low, high) = (a.low.unwrap(), a.high.unwrap());
        assert!(low <= a.mean && a.mean <= high, "{a:?}");
        assert!(low >= 0.38 && high <= 0.46 && high > low, "{a:?}");
        assert_eq!(interval_method(values.len()), "bootstrap");
    }
}
