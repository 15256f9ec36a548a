//! Verdicts: each hypothesis of the scenario held against the figure it
//! names. Pure.

use std::collections::BTreeMap;

use crate::experiment::Hypothesis;
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
                .and_then(|a| h.metric.of(a, h.phase));
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
