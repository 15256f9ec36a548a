//! The controls against the faulted runs: how a figure changed from before
//! the fault to after it in each, and the fault's own change beyond the
//! controls' (a difference in differences on a log scale).

use std::collections::HashMap;

use crate::experiment::Phase;
use crate::run_folder::summary::ChangeBeyondControl;

use super::join::Request;

/// Each repetition's after ÷ before of a figure, from its value in the two
/// phases; repetitions missing either, or with a value of zero, are left
/// out.
pub fn ratios(values: impl IntoIterator<Item = (Option<f64>, Option<f64>)>) -> Vec<f64> {
    values
        .into_iter()
        .filter_map(|(before, after)| {
            let (before, after) = (before?, after?);
            (before > 0.0 && after > 0.0).then(|| after / before)
        })
        .collect()
}

/// The fault's own change: the faulted runs' ratios against the controls'.
pub fn beyond(faulted: Vec<f64>, control: Vec<f64>) -> Option<ChangeBeyondControl> {
    if faulted.is_empty() || control.is_empty() {
        return None;
    }
    let logs = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<f64>>();
    let (f, c) = (logs(&faulted), logs(&control));
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let interval = crate::stats::welch(&f, &c);
    Some(ChangeBeyondControl {
        ratio: (mean(&f) - mean(&c)).exp(),
        low: interval.map(|(_, low, _)| low.exp()),
        high: interval.map(|(_, _, high)| high.exp()),
        faulted,
        control,
    })
}

/// The p99 of the successful requests of repetition `repetition` in
/// `phase`, of those intended from `warmup_s` on, in milliseconds.
pub fn p99_in(
    rows: &[&Request],
    repetition: u32,
    windows: &HashMap<u32, Vec<(f64, f64)>>,
    phase: Phase,
    warmup_s: f64,
) -> Option<f64> {
    let windows = windows.get(&repetition).map_or(&[][..], Vec::as_slice);
    crate::stats::latency(
        rows.iter()
            .filter(|r| r.repetition == repetition && r.ok && r.intended_s >= warmup_s)
            .filter(|r| Phase::of(windows, r.intended_s) == Some(phase))
            .map(|r| r.latency_us),
    )
    .map(|l| l.p99)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_faults_own_change_is_the_faulted_ratio_over_the_controls() {
        // Faulted runs doubled, controls rose by half: the fault's own ×1.33.
        let change = beyond(vec![2.0, 2.0, 2.0], vec![1.5, 1.5]).unwrap();
        assert!((change.ratio - 2.0 / 1.5).abs() < 1e-12);
        // No spread: a zero-width interval, beyond drift.
        assert_eq!(change.beyond_drift(), Some(true));
        // Controls that moved as much as the faulted runs: within drift.
        let drift = beyond(vec![1.8, 2.2, 2.0], vec![1.7, 2.3]).unwrap();
        assert!((drift.ratio - 1.0).abs() < 0.05, "{drift:?}");
        assert_eq!(drift.beyond_drift(), Some(false));
        // One of either: a ratio, no interval, no verdict.
        let one = beyond(vec![2.0], vec![1.0]).unwrap();
        assert_eq!((one.ratio, one.low, one.beyond_drift()), (2.0, None, None));
        assert_eq!(beyond(vec![2.0], Vec::new()), None);
        assert_eq!(
            ratios([
                (Some(2.0), Some(4.0)),
                (None, Some(1.0)),
                (Some(0.0), Some(1.0))
            ]),
            [2.0]
        );
    }
}
