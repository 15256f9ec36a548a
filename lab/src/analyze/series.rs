//! Per-second series of each architecture and repetition, and the
//! freshness distribution: what the report's charts draw.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Serialize;

use super::join::{Scraped, joined};
use crate::run_folder::frames::{column, numbers, strings};
use crate::stats::ratio;

/// One second of one architecture in one repetition.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Second {
    pub t: u32,
    /// Requests whose intended send time fell in this second.
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub error_rate: f64,
    /// Acknowledged events of this second absent from the database.
    pub lost: u64,
    /// Acknowledged events of this second stored later than the staleness
    /// budget.
    pub late: u64,
    pub ok_p50_ms: Option<f64>,
    pub ok_p99_ms: Option<f64>,
    pub failed_p50_ms: Option<f64>,
    pub failed_p99_ms: Option<f64>,
    /// Last scraped consumer backlog in this second.
    pub backlog: Option<f64>,
    /// Highest scraped breaker state: 0 closed, 1 half-open, 2 open.
    pub breaker: Option<f64>,
    pub freshness_p50_ms: Option<f64>,
    pub freshness_p99_ms: Option<f64>,
}

/// The per-second series of one architecture in one repetition.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PerSecond {
    pub architecture: String,
    pub repetition: u32,
    pub seconds: Vec<Second>,
}

/// Assembles the per-second frames and the scraped state into series, one
/// entry per second of load (seconds without requests are zero).
pub fn build_series(
    counts: &DataFrame,
    failures: &DataFrame,
    scraped: &Scraped,
    seconds: u32,
) -> anyhow::Result<Vec<PerSecond>> {
    type Seconds = BTreeMap<(String, u32), Vec<Second>>;
    fn slot<'a>(series: &'a mut Seconds, arch: &str, rep: u32, t: u32) -> &'a mut Second {
        let list = series.entry((arch.to_string(), rep)).or_default();
        if list.len() <= t as usize {
            let from = list.len() as u32;
            list.extend((from..=t).map(|t| Second {
                t,
                ..Second::default()
            }));
        }
        &mut list[t as usize]
    }
    let mut series = Seconds::new();
    {
        let arch = strings(counts, column::ARCHITECTURE)?;
        let rep = numbers(counts, column::REPETITION)?;
        let second = numbers(counts, joined::SECOND)?;
        let offered = numbers(counts, joined::OFFERED)?;
        let ok = numbers(counts, column::OK)?;
        let lost = numbers(counts, joined::LOST)?;
        let late = numbers(counts, joined::LATE)?;
        let columns = [
            joined::OK_P50_MS,
            joined::OK_P99_MS,
            joined::FAILED_P50_MS,
            joined::FAILED_P99_MS,
            joined::FRESHNESS_P50_MS,
            joined::FRESHNESS_P99_MS,
        ]
        .map(|c| numbers(counts, c));
        let [a, b, c, d, e, f] = columns;
        let (a, b, c, d, e, f) = (a?, b?, c?, d?, e?, f?);
        for i in 0..counts.height() {
            let s = slot(
                &mut series,
                &arch[i],
                rep[i].unwrap_or(0.0) as u32,
                second[i].unwrap_or(0.0).max(0.0) as u32,
            );
            s.offered = offered[i].unwrap_or(0.0) as u64;
            s.ok = ok[i].unwrap_or(0.0) as u64;
            s.failed = s.offered - s.ok;
            s.error_rate = ratio(s.failed, s.offered);
            s.lost = lost[i].unwrap_or(0.0) as u64;
            s.late = late[i].unwrap_or(0.0) as u64;
            (s.ok_p50_ms, s.ok_p99_ms) = (a[i], b[i]);
            (s.failed_p50_ms, s.failed_p99_ms) = (c[i], d[i]);
            (s.freshness_p50_ms, s.freshness_p99_ms) = (e[i], f[i]);
        }
    }
    {
        let arch = strings(failures, column::ARCHITECTURE)?;
        let rep = numbers(failures, column::REPETITION)?;
        let second = numbers(failures, joined::SECOND)?;
        let class = strings(failures, joined::FAILURE)?;
        let n = numbers(failures, joined::N)?;
        for i in 0..failures.height() {
            slot(
                &mut series,
                &arch[i],
                rep[i].unwrap_or(0.0) as u32,
                second[i].unwrap_or(0.0).max(0.0) as u32,
            )
            .failures
            .insert(class[i].clone(), n[i].unwrap_or(0.0) as u64);
        }
    }
    for ((arch, rep), by_second) in scraped {
        for (t, (backlog, breaker)) in by_second {
            let s = slot(&mut series, arch, *rep, *t);
            s.backlog = backlog.or(s.backlog);
            s.breaker = breaker.or(s.breaker);
        }
    }
    if seconds > 0 {
        let keys: Vec<(String, u32)> = series.keys().cloned().collect();
        for (arch, rep) in keys {
            slot(&mut series, &arch, rep, seconds - 1);
        }
    }
    Ok(series
        .into_iter()
        .map(|((architecture, repetition), seconds)| PerSecond {
            architecture,
            repetition,
            seconds,
        })
        .collect())
}

/// Up to 200 points of the distribution of sorted microsecond `delays`,
/// as (milliseconds, share at most that late).
pub fn cdf(delays: &[u64]) -> Vec<(f64, f64)> {
    if delays.is_empty() {
        return Vec::new();
    }
    let n = delays.len();
    let steps = n.min(200);
    (1..=steps)
        .map(|k| {
            let index = (k * n).div_ceil(steps) - 1;
            (delays[index] as f64 / 1000.0, (index + 1) as f64 / n as f64)
        })
        .collect()
}
