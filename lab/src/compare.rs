//! `faultline compare`: the headline figures of two runs side by side, and
//! whether each change exceeds the noise of their repetitions.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::analyze;
use crate::catalogue::{Better, FIGURES};
use crate::report::num;
use crate::run_folder::summary::Estimate;

/// The change of one headline figure between two runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub architecture: String,
    /// The figure's name in the catalogue (`error_rate`).
    pub figure: &'static str,
    /// What a reader is told it is.
    pub label: &'static str,
    pub better: Better,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `beyond noise`, `within noise`, or `unknown noise` without an
    /// interval of some width on both sides (one repetition, or repetitions
    /// that all gave the same value).
    pub verdict: &'static str,
}

/// Compares every headline figure of the catalogue of two runs,
/// architecture by architecture: each run's mean over its repetitions
/// (a run's figure when it has one). A change is beyond noise when the
/// two runs' 95 % intervals do not overlap (both need repetitions).
pub fn compare(baseline: &Path, candidate: &Path) -> anyhow::Result<Vec<Change>> {
    let a = analyze::analyze(baseline)
        .with_context(|| format!("could not analyze {}", baseline.display()))?
        .summary;
    let b = analyze::analyze(candidate)
        .with_context(|| format!("could not analyze {}", candidate.display()))?
        .summary;
    let mut changes = Vec::new();
    for (name, x) in &a.architectures {
        let Some(y) = b.architectures.get(name) else {
            continue;
        };
        for figure in &FIGURES {
            let (ea, eb) = (
                (figure.estimate)(&x.repetitions),
                (figure.estimate)(&y.repetitions),
            );
            let (va, vb) = (ea.map(|e| e.mean), eb.map(|e| e.mean));
            if va.is_none() && vb.is_none() {
                // Not a figure of this architecture (e.g. REST has no drain).
                continue;
            }
            // Repetitions that all agree replayed one timing: their
            // interval (no wider than the figure's resolution) says nothing
            // of the noise between runs.
            let interval = |e: Option<&Estimate>| {
                let e = e?;
                let spread = e.values.iter().any(|v| *v != e.values[0]);
                Some((e.low?, e.high?)).filter(|(l, h)| spread && h > l)
            };
            let verdict = match (interval(ea), interval(eb)) {
                (Some((la, ha)), Some((lb, hb))) => {
                    if ha < lb || hb < la {
                        "beyond noise"
                    } else {
                        "within noise"
                    }
                }
                _ => "unknown noise",
            };
            changes.push(Change {
                architecture: name.clone(),
                figure: figure.name,
                label: figure.label,
                better: figure.better,
                baseline: va,
                candidate: vb,
                verdict,
            });
        }
    }
    Ok(changes)
}

impl Change {
    /// Worse in the candidate beyond the noise of the repetitions.
    pub fn regressed(&self) -> bool {
        let worse = |a: f64, b: f64| match self.better {
            Better::Lower => b > a,
            Better::Higher => b < a,
        };
        self.verdict == "beyond noise"
            && matches!((self.baseline, self.candidate), (Some(a), Some(b)) if worse(a, b))
    }
}

/// The comparison as a Markdown table.
pub fn compare_markdown(baseline: &Path, candidate: &Path, changes: &[Change]) -> String {
    let mut out = format!(
        "# {} → {}\n\n| architecture | figure | baseline | candidate | change | noise |\n|---|---|---:|---:|---:|---|\n",
        baseline.display(),
        candidate.display()
    );
    for c in changes {
        let change = match (c.baseline, c.candidate) {
            (Some(a), Some(b)) if a != 0.0 => format!("{:+.1} %", 100.0 * (b - a) / a.abs()),
            (Some(a), Some(b)) => format!("{:+}", num(Some(b - a))),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.architecture,
            c.label,
            num(c.baseline.map(|v| (v * 10_000.0).round() / 10_000.0)),
            num(c.candidate.map(|v| (v * 10_000.0).round() / 10_000.0)),
            change,
            c.verdict
        ));
    }
    out.push_str(
        "\nA change is beyond noise when the runs' 95 % intervals do not overlap; \
         runs without repetitions, or whose repetitions all gave the same value (an interval \
         of no width: one timing replayed), cannot tell.\n",
    );
    out
}
