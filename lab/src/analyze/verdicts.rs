//! Verdicts: each hypothesis of the scenario held against the figure it
//! names. Pure.

use std::collections::BTreeMap;

use crate::experiment::{Hypothesis, Metric, Phase};
use crate::run_folder::summary::{ArchitectureSummary, HypothesisResult};

/// Judges every hypothesis against the figures of `architectures`; a
/// hypothesis about a figure the run does not have fails.
pub fn judge(
    hypotheses: &[Hypothesis],
    architectures: &BTreeMap<String, ArchitectureSummary>,
) -> Vec<HypothesisResult> {
    hypotheses
        .iter()
        .map(|h| {
            let value = architectures
                .get(&h.architecture)
                .and_then(|a| figure(a, h.metric, h.phase));
            let (limit, passed) = match (h.max, h.min) {
                (Some(max), _) => (format!("≤ {max}"), value.is_some_and(|v| v <= max)),
                (None, Some(min)) => (format!("≥ {min}"), value.is_some_and(|v| v >= min)),
                (None, None) => ("none".into(), false),
            };
            HypothesisResult {
                title: h.title.clone(),
                architecture: h.architecture.clone(),
                metric: h.metric,
                phase: h.phase,
                limit,
                value,
                passed,
            }
        })
        .collect()
}

/// The figure a hypothesis names.
pub fn figure(a: &ArchitectureSummary, metric: Metric, phase: Option<Phase>) -> Option<f64> {
    let phase = phase.map(|p| match p {
        Phase::Before => "before",
        Phase::During => "during",
        Phase::After => "after",
    });
    let (error_rate, latency) = match phase {
        Some(p) => {
            let s = a.phases.get(p)?;
            (s.error_rate, s.latency_ms.as_ref())
        }
        None => (a.totals.error_rate, a.totals.latency_ms.as_ref()),
    };
    match metric {
        Metric::ErrorRate => Some(error_rate),
        Metric::LostEvents => Some(a.lost as f64),
        Metric::Duplicates | Metric::Redelivered => Some(a.redelivered as f64),
        Metric::LatencyP50Ms => latency.map(|l| l.p50),
        Metric::LatencyP99Ms => latency.map(|l| l.p99),
        Metric::FreshnessP99Ms => a.freshness_ms.as_ref().map(|f| f.p99),
        Metric::RecoveryS => a.recovery_s,
        Metric::DataRecoveryS => a.data_recovery_s,
        Metric::DrainS => a.drain_s,
    }
}
