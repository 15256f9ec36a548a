//! `index.html` of a reports folder: every sweep and every run in it, newest
//! first, with its status, how many hypotheses held and headline figures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::Value;
use serde::Serialize;

use crate::catalogue;
use crate::run_folder;

/// What marks an index the lab wrote, which it may replace.
const GENERATOR: &str = r#"<meta name="generator" content="faultline">"#;

/// One run in `reports/index.html`.
#[derive(Serialize)]
struct IndexEntry {
    /// Relative link, attribute-escaped already (minijinja would also
    /// escape its slashes).
    link: Value,
    run_id: String,
    started_at: String,
    experiment: String,
    status: String,
    /// Hypotheses that held, of all.
    passed: usize,
    hypotheses: usize,
    architectures: Vec<(String, IndexFigures)>,
}

#[derive(Serialize)]
struct IndexFigures {
    error_rate: f64,
    lost: u64,
    revenue_lost: f64,
    currency: String,
}

/// One sweep in `reports/index.html`.
#[derive(Serialize)]
struct SweepEntry {
    link: Value,
    started_at: String,
    experiment: String,
    parameters: Vec<String>,
    points: usize,
    complete: usize,
    failed_hypotheses: usize,
    break_even: Vec<String>,
}

/// A relative link, attribute-escaped already (minijinja would also escape
/// its slashes).
fn link_to(folder: &std::ffi::OsStr) -> Value {
    Value::from_safe_string(
        format!("{}/report.html", folder.to_string_lossy())
            .replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
    )
}

/// The sweep folder at `dir`, if it is one with a readable `sweep.json`.
fn sweep_entry(dir: &Path) -> Option<SweepEntry> {
    let path = dir.join(run_folder::sweep::SWEEP_JSON);
    if !path.is_file() {
        return None;
    }
    let summary: run_folder::sweep::SweepSummary = match run_folder::load(&path) {
        Ok(summary) => summary,
        Err(error) => {
            tracing::warn!(%error, "Left a sweep out of the index.");
            return None;
        }
    };
    Some(SweepEntry {
        link: link_to(dir.file_name()?),
        started_at: summary.started_at().unwrap_or_default().to_string(),
        experiment: summary.experiment.clone(),
        parameters: summary.parameters.clone(),
        points: summary.points.len(),
        complete: summary.complete(),
        failed_hypotheses: summary.failed_hypotheses(),
        break_even: summary
            .break_even
            .iter()
            .filter(|b| b.figure == catalogue::REVENUE_LOST && !b.at.is_empty())
            .map(|b| b.sentence.clone())
            .collect(),
    })
}

/// Writes `index.html` in `reports`: every sweep folder and every run
/// folder in it with a `summary.json`, newest first. An `index.html` the
/// lab did not write is left alone, and said so.
pub fn write_index(reports: &Path) -> anyhow::Result<PathBuf> {
    let mut entries = Vec::new();
    let mut sweeps = Vec::new();
    let listing =
        std::fs::read_dir(reports).with_context(|| format!("cannot list {}", reports.display()))?;
    for entry in listing.flatten() {
        let dir = entry.path();
        if let Some(sweep) = sweep_entry(&dir) {
            sweeps.push(sweep);
            continue;
        }
        if !dir.join(run_folder::SUMMARY).is_file() {
            continue;
        }
        // A folder that is not a readable run is left out, and said so.
        let (summary, manifest) = match run_folder::read_summary(&dir)
            .and_then(|s| Ok((s, run_folder::read_manifest(&dir)?)))
        {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, "Left a run out of the index.");
                continue;
            }
        };
        let architectures = summary
            .architectures
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    IndexFigures {
                        error_rate: a.totals.error_rate,
                        lost: a.lost,
                        revenue_lost: a.cost.revenue_lost,
                        currency: a.cost.currency.clone(),
                    },
                )
            })
            .collect();
        entries.push(IndexEntry {
            link: link_to(&entry.file_name()),
            passed: summary.hypotheses.len() - summary.failed_hypotheses(),
            hypotheses: summary.hypotheses.len(),
            run_id: summary.run_id,
            started_at: manifest.started_at,
            experiment: summary.experiment,
            status: summary.status.to_string(),
            architectures,
        });
    }
    entries.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    sweeps.sort_by(|a, b| b.started_at.cmp(&a.started_at));
    let html = super::environment().get_template("index.html")?.render(
        minijinja::context! { runs => entries, sweeps => sweeps, version => faultline_services::VERSION },
    )?;
    let path = reports.join("index.html");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.contains(GENERATOR)
        && !existing.contains("Generated by faultline")
    {
        anyhow::bail!(
            "{} was not written by faultline: it is left as it is (choose another --out to get \
             an index of runs)",
            path.display()
        );
    }
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
