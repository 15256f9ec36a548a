//! `faultline compare`: the headline figures of two runs side by side, and
//! whether each change exceeds the noise of their repetitions.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::analyze;
use crate::report::num;
use crate::run_folder::summary::{ArchitectureSummary, Estimate};

/// The change of one headline figure between two runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub architecture: String,
    pub figure: &'static str,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `beyond noise`, `within noise`, or `unknown noise` without
    /// repetitions on both sides.
    pub verdict: &'static str,
}

/// Compares the headline figures of two runs, architecture by
/// architecture. A change is beyond noise when the two runs' 95 % intervals
/// do not overlap (both need repetitions).
pub fn compare(baseline: &Path, candidate: &Path) -> anyhow::Result<Vec<Change>> {
    let a = analyze::analyze(baseline)
        .with_context(|| format!("could not analyze {}", baseline.display()))?
        .summary;
    let b = analyze::analyze(candidate)
        .with_context(|| format!("could not analyze {}", candidate.display()))?
        .summary;
    type Pick = fn(&ArchitectureSummary) -> (Option<f64>, Option<&Estimate>);
    let figures: [(&str, Pick); 7] = [
        ("error rate", |s| {
            (Some(s.totals.error_rate), s.repetitions.error_rate.as_ref())
        }),
        ("error rate during faults", |s| {
            (
                s.phases.get("during").map(|p| p.error_rate),
                s.repetitions.error_rate_during.as_ref(),
            )
        }),
        ("lost events", |s| {
            (
                Some(s.lost as f64 / s.repetitions.count.max(1) as f64),
                s.repetitions.lost.as_ref(),
            )
        }),
        ("latency p99 ms", |s| {
            (
                s.totals.latency_ms.as_ref().map(|l| l.p99),
                s.repetitions.latency_p99_ms.as_ref(),
            )
        }),
        ("recovery s", |s| {
            (s.recovery_s, s.repetitions.recovery_s.as_ref())
        }),
        ("drain s", |s| (s.drain_s, s.repetitions.drain_s.as_ref())),
        ("revenue lost per outage", |s| {
            (Some(s.cost.per_outage), s.repetitions.revenue_lost.as_ref())
        }),
    ];
    let mut changes = Vec::new();
    for (name, x) in &a.architectures {
        let Some(y) = b.architectures.get(name) else {
            continue;
        };
        for (figure, pick) in figures {
            let ((va, ea), (vb, eb)) = (pick(x), pick(y));
            if va.is_none() && vb.is_none() {
                // Not a figure of this architecture (e.g. REST has no drain).
                continue;
            }
            let interval = |e: Option<&Estimate>| Some((e?.low?, e?.high?));
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
                figure,
                baseline: va,
                candidate: vb,
                verdict,
            });
        }
    }
    Ok(changes)
}

impl Change {
    /// Worse in the candidate beyond the noise of the repetitions: every
    /// figure compared is better lower.
    pub fn regressed(&self) -> bool {
        self.verdict == "beyond noise"
            && matches!((self.baseline, self.candidate), (Some(a), Some(b)) if b > a)
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
            c.figure,
            num(c.baseline.map(|v| (v * 10_000.0).round() / 10_000.0)),
            num(c.candidate.map(|v| (v * 10_000.0).round() / 10_000.0)),
            change,
            c.verdict
        ));
    }
    out.push_str(
        "\nA change is beyond noise when the runs' 95 % intervals do not overlap; \
         runs without repetitions cannot tell.\n",
    );
    out
}
