//! The repetition a killed runner never ended, as far as it got: what users
//! saw (answers, failures, latency, per phase of its faults as they stood)
//! and the consumers' backlog, up to its last flush, from the run folder's
//! `*.partial.parquet` files. Its events were never drained nor audited:
//! no row of it is taken for stored or lost, and none enters the run's
//! other figures.

use std::collections::{BTreeMap, HashMap};

use super::figures::{self, phase_summary};
use super::join;
use super::series::{self, PerSecond};
use crate::experiment::{Experiment, Phase};
use crate::run_folder::frames::{MetricColumns, STORED};
use crate::run_folder::parts;
use crate::run_folder::summary::{Answered, Incomplete, windows_of};
use crate::run_folder::{PartialFiles, frames};

/// The figures and per-second series of the repetition a killed runner
/// never ended (`None` when it flushed no request).
pub fn analyse(
    experiment: &Experiment,
    partial: &PartialFiles,
) -> anyhow::Result<Option<(Incomplete, Vec<PerSecond>)>> {
    let requests = &partial.requests;
    let Some(repetition) = frames::numbers(requests, frames::column::REPETITION)?
        .first()
        .copied()
        .flatten()
        .map(|r| r as u32)
    else {
        return Ok(None);
    };
    // Nothing of it was audited: joined with no stored row, and every
    // figure of the audit left out below.
    let unaudited = parts::empty(&STORED)?;
    let joined = join::joined((requests, &unaudited), &HashMap::from([(repetition, 0)]))?;
    let [counts, failures] = join::per_second(joined.clone(), 0);
    let [counts, failures, rows] =
        join::collect_all([counts, failures, join::request_rows(joined)])?;
    let mut by_architecture = join::requests(&rows)?;
    let faults = figures::faults(&partial.faults)?;
    let windows = windows_of(&faults, repetition);
    let (scraped, backlog) = join::scraped(&MetricColumns::of(&partial.metrics)?)?;
    let sent_until_s = by_architecture
        .values()
        .flatten()
        .map(|r| r.intended_s)
        .fold(0.0, f64::max);
    let warmup_s = experiment.warmup().as_secs_f64();
    let mut architectures = BTreeMap::new();
    for name in experiment.architectures.iter().map(|a| a.name()) {
        let Some(rows) = by_architecture.remove(name) else {
            continue;
        };
        let mut phases: BTreeMap<Phase, Vec<&join::Request>> = BTreeMap::new();
        for row in &rows {
            if let Some(phase) = Phase::of(&windows, row.intended_s) {
                phases.entry(phase).or_default().push(row);
            }
        }
        let answers = |rows: &[&join::Request]| {
            phase_summary(rows.iter().copied(), warmup_s, u64::MAX).into()
        };
        let all: Vec<&join::Request> = rows.iter().collect();
        let backlog = backlog
            .get(&(name.to_string(), repetition))
            .map_or(&[][..], Vec::as_slice);
        let mut backlog_peaks: BTreeMap<Phase, f64> = BTreeMap::new();
        for (t, value) in backlog {
            if let Some(phase) = Phase::of(&windows, *t) {
                let peak = backlog_peaks.entry(phase).or_insert(*value);
                *peak = peak.max(*value);
            }
        }
        architectures.insert(
            name.to_string(),
            Answered {
                totals: answers(&all),
                phases: phases
                    .iter()
                    .map(|(phase, rows)| (*phase, answers(rows)))
                    .collect(),
                backlog_peak: backlog.iter().map(|p| p.1).reduce(f64::max),
                backlog_peaks,
            },
        );
    }
    let series = series::build_series(&counts, &failures, &scraped, sent_until_s as u32 + 1)?
        .into_iter()
        .map(unaudited_series)
        .collect();
    Ok(Some((
        Incomplete {
            repetition,
            sent_until_s,
            faults,
            architectures,
        },
        series,
    )))
}

/// A series of requests never audited: no second of it says lost or late.
fn unaudited_series(mut series: PerSecond) -> PerSecond {
    for second in &mut series.seconds {
        second.lost = 0;
        second.late = 0;
        second.freshness_p50_ms = None;
        second.freshness_p99_ms = None;
    }
    series
}
