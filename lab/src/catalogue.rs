//! The headline figures, one entry each: the one place that says what a
//! figure is called, how it reads, and where it comes from. `compare`, the
//! sweep's table and charts, the hypotheses' [`Metric`] and the
//! repetitions' estimates in `summary.json` are all derived from
//! [`FIGURES`].
//!
//! How to add a figure is the crate's recipe (`lib.rs`, "Recipes").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::experiment::{Metric, Phase};
use crate::run_folder::summary::{ArchitectureSummary, Estimate, RepetitionFigures, Repetitions};
use crate::stats::{estimate, ratio};

/// How a figure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Share,
    Count,
    Ms,
    Seconds,
    Money,
}

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// The finest step a figure is measured in: its interval is never drawn
/// narrower than this.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resolution {
    /// A fixed step in the figure's unit (a second of scraping, an event,
    /// a cent).
    Step(f64),
    /// A share of the value (an HDR histogram's significant digits).
    Relative(f64),
}

impl Resolution {
    /// The step at `value`.
    pub fn at(self, value: f64) -> f64 {
        match self {
            Self::Step(step) => step,
            Self::Relative(share) => share * value.abs(),
        }
    }
}

/// A headline figure.
pub struct Figure {
    /// Its key in `summary.json`'s `per_repetition` and `repetitions`, in
    /// `points.parquet` and `sweep.json`.
    pub name: &'static str,
    /// What a reader is told it is.
    pub label: &'static str,
    pub unit: Unit,
    pub better: Better,
    /// The finest step it is measured in.
    pub resolution: Resolution,
    /// The hypothesis metric that names it, with its phase.
    pub metric: Metric,
    pub phase: Option<Phase>,
    /// Its value in one repetition.
    pub of_repetition: fn(&RepetitionFigures) -> Option<f64>,
    /// Its estimate over the repetitions.
    pub estimate: fn(&Repetitions) -> Option<&Estimate>,
    estimate_slot: fn(&mut Repetitions) -> &mut Option<Estimate>,
}

/// The name of revenue lost per outage, the figure break-even points are
/// found for first.
pub const REVENUE_LOST: &str = "revenue_lost";
/// The name of acknowledged events lost.
pub const LOST: &str = "lost";

/// The headline figures, in the order reports show them; a sweep's report
/// charts the first [`CHARTED`].
pub const FIGURES: [Figure; 14] = [
    Figure {
        name: REVENUE_LOST,
        label: "revenue lost per outage",
        unit: Unit::Money,
        better: Better::Lower,
        resolution: Resolution::Step(0.01),
        metric: Metric::RevenueLost,
        phase: None,
        of_repetition: |f| Some(f.revenue_lost),
        estimate: |r| r.revenue_lost.as_ref(),
        estimate_slot: |r| &mut r.revenue_lost,
    },
    Figure {
        name: LOST,
        label: "acknowledged events lost",
        unit: Unit::Count,
        better: Better::Lower,
        resolution: Resolution::Step(1.0),
        metric: Metric::LostEvents,
        phase: None,
        of_repetition: |f| Some(f.lost as f64),
        estimate: |r| r.lost.as_ref(),
        estimate_slot: |r| &mut r.lost,
    },
    Figure {
        name: "error_rate_during",
        label: "error rate during the fault",
        unit: Unit::Share,
        better: Better::Lower,
        resolution: Resolution::Step(0.0),
        metric: Metric::ErrorRate,
        phase: Some(Phase::During),
        of_repetition: |f| f.error_rate_during,
        estimate: |r| r.error_rate_during.as_ref(),
        estimate_slot: |r| &mut r.error_rate_during,
    },
    Figure {
        name: "stale_share",
        label: "share of stored events later than the staleness budget",
        unit: Unit::Share,
        better: Better::Lower,
        resolution: Resolution::Step(0.0),
        metric: Metric::StaleShare,
        phase: None,
        of_repetition: |f| f.stale_share,
        estimate: |r| r.stale_share.as_ref(),
        estimate_slot: |r| &mut r.stale_share,
    },
    Figure {
        name: "on_time_share",
        label: "share of acknowledged events stored within the staleness budget",
        unit: Unit::Share,
        better: Better::Higher,
        resolution: Resolution::Step(0.0),
        metric: Metric::OnTimeShare,
        phase: None,
        of_repetition: |f| f.on_time_share,
        estimate: |r| r.on_time_share.as_ref(),
        estimate_slot: |r| &mut r.on_time_share,
    },
    Figure {
        name: "freshness_p99_ms",
        label: "freshness p99 (sent → stored)",
        unit: Unit::Ms,
        better: Better::Lower,
        resolution: Resolution::Relative(0.001),
        metric: Metric::FreshnessP99Ms,
        phase: None,
        of_repetition: |f| f.freshness_p99_ms,
        estimate: |r| r.freshness_p99_ms.as_ref(),
        estimate_slot: |r| &mut r.freshness_p99_ms,
    },
    Figure {
        name: "recovery_s",
        label: "recovery after the fault",
        unit: Unit::Seconds,
        better: Better::Lower,
        resolution: Resolution::Step(0.001),
        metric: Metric::RecoveryS,
        phase: None,
        of_repetition: |f| f.recovery_s,
        estimate: |r| r.recovery_s.as_ref(),
        estimate_slot: |r| &mut r.recovery_s,
    },
    Figure {
        name: "data_recovery_s",
        label: "data-path recovery after the fault",
        unit: Unit::Seconds,
        better: Better::Lower,
        resolution: Resolution::Step(1.0),
        metric: Metric::DataRecoveryS,
        phase: None,
        of_repetition: |f| f.data_recovery_s,
        estimate: |r| r.data_recovery_s.as_ref(),
        estimate_slot: |r| &mut r.data_recovery_s,
    },
    Figure {
        name: "data_current_s",
        label: "data current again after the fault (every event stored within the staleness budget)",
        unit: Unit::Seconds,
        better: Better::Lower,
        resolution: Resolution::Step(0.001),
        metric: Metric::DataCurrentS,
        phase: None,
        of_repetition: |f| f.data_current_s,
        estimate: |r| r.data_current_s.as_ref(),
        estimate_slot: |r| &mut r.data_current_s,
    },
    Figure {
        name: "drain_s",
        label: "backlog drain after the fault",
        unit: Unit::Seconds,
        better: Better::Lower,
        resolution: Resolution::Step(1.0),
        metric: Metric::DrainS,
        phase: None,
        of_repetition: |f| f.drain_s,
        estimate: |r| r.drain_s.as_ref(),
        estimate_slot: |r| &mut r.drain_s,
    },
    Figure {
        name: "poc_revenue_lost",
        label: "revenue lost per outage under the original's formula (failed requests only)",
        unit: Unit::Money,
        better: Better::Lower,
        resolution: Resolution::Step(0.01),
        metric: Metric::PocRevenueLost,
        phase: None,
        of_repetition: |f| Some(f.poc_revenue_lost),
        estimate: |r| r.poc_revenue_lost.as_ref(),
        estimate_slot: |r| &mut r.poc_revenue_lost,
    },
    Figure {
        name: "error_rate",
        label: "error rate over the whole run",
        unit: Unit::Share,
        better: Better::Lower,
        resolution: Resolution::Step(0.0),
        metric: Metric::ErrorRate,
        phase: None,
        of_repetition: |f| Some(f.error_rate),
        estimate: |r| r.error_rate.as_ref(),
        estimate_slot: |r| &mut r.error_rate,
    },
    Figure {
        name: "lost_share",
        label: "share of acknowledged events lost",
        unit: Unit::Share,
        better: Better::Lower,
        resolution: Resolution::Step(0.0),
        metric: Metric::LostShare,
        phase: None,
        of_repetition: |f| Some(f.lost_share),
        estimate: |r| r.lost_share.as_ref(),
        estimate_slot: |r| &mut r.lost_share,
    },
    Figure {
        name: "latency_p99_ms",
        label: "latency p99 of successful requests",
        unit: Unit::Ms,
        better: Better::Lower,
        resolution: Resolution::Relative(0.001),
        metric: Metric::LatencyP99Ms,
        phase: None,
        of_repetition: |f| f.latency_p99_ms,
        estimate: |r| r.latency_p99_ms.as_ref(),
        estimate_slot: |r| &mut r.latency_p99_ms,
    },
];

/// How many of [`FIGURES`] a sweep's report draws a chart of.
pub const CHARTED: usize = 11;

impl Figure {
    /// The estimate of this figure over `values` (one per repetition), its
    /// bootstrap drawn from `seed`; its interval never narrower than the
    /// figure's resolution (repetitions that agree to the second of a
    /// once-a-second scrape do not know it to a tenth), widened evenly
    /// about the mean, then kept within what the figure can be: never
    /// below 0, a share never above 1 (a Student-t interval of few values
    /// otherwise reaches past them).
    pub fn estimate_of(&self, values: &[f64], seed: u64) -> Option<Estimate> {
        let mut found = estimate(values, seed)?;
        let step = self.resolution.at(found.mean);
        if let (Some(low), Some(high)) = (found.low, found.high)
            && high - low < step
        {
            found.low = Some(low.min(found.mean - step / 2.0));
            found.high = Some(high.max(found.mean + step / 2.0));
        }
        let top = if self.unit == Unit::Share {
            1.0
        } else {
            f64::INFINITY
        };
        found.low = found.low.map(|low| low.clamp(0.0, top));
        found.high = found.high.map(|high| high.clamp(0.0, top));
        Some(found)
    }
}

/// The figure called `name`.
pub fn figure(name: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.name == name)
}

impl Repetitions {
    /// Each figure's estimate over `per_repetition`, its bootstrap drawn
    /// from `seed`.
    pub fn of(per_repetition: &[RepetitionFigures], seed: u64) -> Self {
        let mut repetitions = Repetitions {
            count: per_repetition.len(),
            ..Repetitions::default()
        };
        for figure in &FIGURES {
            let values: Vec<f64> = per_repetition
                .iter()
                .filter_map(figure.of_repetition)
                .collect();
            *(figure.estimate_slot)(&mut repetitions) = figure.estimate_of(&values, seed);
        }
        repetitions
    }
}

impl Metric {
    /// The figure this metric names over a whole run: rates and
    /// percentiles of all repetitions pooled, counts and money per outage
    /// (per repetition, on average), so that a limit means the same with
    /// any number of repetitions; in `phase` where the figure has phases
    /// (error rate, latency); `None` where the run does not have it.
    pub fn of(self, a: &ArchitectureSummary, phase: Option<Phase>) -> Option<f64> {
        let (error_rate, latency) = match phase {
            Some(p) => {
                let s = a.phases.get(&p)?;
                (s.error_rate, s.latency_ms.as_ref())
            }
            None => (a.totals.error_rate, a.totals.latency_ms.as_ref()),
        };
        let freshness = a.freshness_ms.as_ref();
        let outages = a.repetitions.count.max(1) as f64;
        match self {
            Metric::ErrorRate => Some(error_rate),
            Metric::LostEvents => Some(a.lost as f64 / outages),
            Metric::LostShare => Some(ratio(a.lost, a.acknowledged)),
            Metric::Duplicates | Metric::Redelivered => Some(a.redelivered as f64 / outages),
            Metric::LatencyP50Ms => latency.map(|l| l.p50),
            Metric::LatencyP99Ms => latency.map(|l| l.p99),
            Metric::FreshnessP99Ms => freshness.map(|f| f.p99),
            Metric::StaleShare => freshness.map(|f| f.stale_share),
            Metric::OnTimeShare => freshness.map(|f| f.on_time_share),
            Metric::RecoveryS => a.recovery_s,
            Metric::DataRecoveryS => a.data_recovery_s,
            Metric::DataCurrentS => a.data_current_s,
            Metric::DrainS => a.drain_s,
            Metric::RevenueLost => Some(a.cost.per_outage),
            Metric::PocRevenueLost => Some(a.cost.poc_revenue_lost / outages),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_named_once() {
        for (i, f) in FIGURES.iter().enumerate() {
            assert!(
                FIGURES[i + 1..].iter().all(|g| g.name != f.name),
                "{} twice",
                f.name
            );
            assert_eq!(figure(f.name).map(|g| g.label), Some(f.label));
        }
        assert!(CHARTED <= FIGURES.len());
    }

    /// Repetitions that agree to the second of a once-a-second scrape: the
    /// interval is a second wide, not zero; a p99 known to three digits is
    /// never known closer.
    #[test]
    fn an_interval_is_never_narrower_than_its_figures_resolution() {
        let drain = figure("drain_s").unwrap();
        let same = drain.estimate_of(&[10.0, 10.0, 10.0], 1).unwrap();
        assert_eq!((same.low, same.high), (Some(9.5), Some(10.5)));
        let close = drain.estimate_of(&[10.0, 10.02, 10.01], 1).unwrap();
        assert!(
            close.high.unwrap() - close.low.unwrap() >= 1.0 - 1e-9,
            "{close:?}"
        );
        // Wider than the resolution already: as computed.
        let wide = drain.estimate_of(&[10.0, 20.0, 30.0], 1).unwrap();
        assert!(wide.high.unwrap() - wide.low.unwrap() > 20.0);
        // Lost events that agree at zero: [0, 0.5], clamped at zero.
        let lost = figure(LOST).unwrap().estimate_of(&[0.0, 0.0], 1).unwrap();
        assert_eq!((lost.low, lost.high), (Some(0.0), Some(0.5)));
        let p99 = figure("latency_p99_ms").unwrap();
        let same = p99.estimate_of(&[200.0, 200.0], 1).unwrap();
        assert!(
            (same.high.unwrap() - same.low.unwrap() - 0.2).abs() < 1e-9,
            "{same:?}"
        );
        // One value: no interval to widen.
        assert_eq!(drain.estimate_of(&[10.0], 1).unwrap().low, None);
    }

    /// Three repetitions far apart: the Student-t interval would reach
    /// below zero and, for a share, above one.
    #[test]
    fn an_interval_stays_within_what_its_figure_can_be() {
        let share = figure("lost_share").unwrap();
        let wide = share.estimate_of(&[0.0, 0.0, 0.9], 1).unwrap();
        assert_eq!((wide.low, wide.high), (Some(0.0), Some(1.0)));
        assert!((wide.mean - 0.3).abs() < 1e-12);
        let count = figure(LOST).unwrap();
        let wide = count.estimate_of(&[0.0, 0.0, 9.0], 1).unwrap();
        assert_eq!(wide.low, Some(0.0));
        assert!(wide.high.unwrap() > 9.0);
        // Close values: the interval is the plain one.
        let plain = count.estimate_of(&[10.0, 11.0, 12.0], 1).unwrap();
        assert!(plain.low.unwrap() > 0.0 && plain.low.unwrap() < 10.0);
    }
}
