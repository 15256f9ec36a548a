//! `index.html` of a reports folder: every run in it, newest first, with its
//! status, how many hypotheses held and headline figures.

use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::Value;
use serde::Serialize;

use crate::run_folder;

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

/// Writes `index.html` in `reports`: every run folder in it with a
/// `summary.json`, newest first.
pub fn write_index(reports: &Path) -> anyhow::Result<PathBuf> {
    let mut entries = Vec::new();
    let listing =
        std::fs::read_dir(reports).with_context(|| format!("cannot list {}", reports.display()))?;
    for entry in listing.flatten() {
        let dir = entry.path();
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
            link: Value::from_safe_string(
                format!("{}/report.html", entry.file_name().to_string_lossy())
                    .replace('&', "&amp;")
                    .replace('"', "&quot;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;"),
            ),
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
    let html = super::environment()
        .get_template("index.html")?
        .render(minijinja::context! { runs => entries, version => faultline_services::VERSION })?;
    let path = reports.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
