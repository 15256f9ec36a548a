//! The headline figures of a set of requests (one repetition, or all
//! pooled): answers and latency per phase, the loss audit, freshness, time
//! to recover and to drain. Pure functions of the joined rows.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use super::join::Request;
use super::{flags, numbers, strings};
use crate::run_folder::summary::{FaultSummary, Freshness, PhaseSummary};
use crate::stats::{latency, ratio};

/// The headline figures of a set of requests (one repetition or all).
pub struct Figures {
    pub totals: PhaseSummary,
    pub phases: BTreeMap<String, PhaseSummary>,
    pub acknowledged: u64,
    pub stored: u64,
    pub lost: u64,
    /// Set by the caller: deliveries of events already stored.
    pub redelivered: u64,
    pub stored_unacknowledged: u64,
    pub stale: u64,
    pub freshness: Option<Freshness>,
    pub recovery_s: Option<f64>,
    /// Set by the caller: see [`data_recovery`].
    pub data_recovery_s: Option<f64>,
    pub drain_s: Option<f64>,
}

impl Figures {
    /// The figures of `rows`; the latency of requests intended before
    /// `warmup_s` is left out (they count everywhere else). Recovery, data
    /// recovery and drain are left for the caller.
    pub fn of(
        rows: &[&Request],
        windows: &HashMap<u32, Vec<(f64, f64)>>,
        (stored, stored_unacknowledged): (u64, u64),
        budget_us: u64,
        warmup_s: f64,
    ) -> Self {
        let mut phases: BTreeMap<&str, Vec<&Request>> = BTreeMap::new();
        for row in rows {
            let windows = windows.get(&row.repetition).map_or(&[][..], Vec::as_slice);
            if let Some(phase) = phase_of(windows, row.intended_s) {
                phases.entry(phase).or_default().push(row);
            }
        }
        let delays = || rows.iter().filter_map(|r| r.freshness_us);
        let stale = delays().filter(|d| *d > budget_us).count() as u64;
        let fresh_count = delays().count() as u64;
        let acknowledged = rows.iter().filter(|r| r.ok).count() as u64;
        Self {
            totals: phase_summary(rows.iter().copied(), warmup_s, budget_us),
            phases: phases
                .into_iter()
                .map(|(phase, rows)| {
                    (
                        phase.to_string(),
                        phase_summary(rows.into_iter(), warmup_s, budget_us),
                    )
                })
                .collect(),
            acknowledged,
            stored,
            lost: rows.iter().filter(|r| r.lost).count() as u64,
            redelivered: 0,
            stored_unacknowledged,
            stale,
            freshness: latency(delays()).map(|l| Freshness {
                p50: l.p50,
                p90: l.p90,
                p99: l.p99,
                max: l.max,
                stale_share: ratio(stale, fresh_count),
                on_time_share: ratio(fresh_count - stale, acknowledged),
            }),
            recovery_s: None,
            data_recovery_s: None,
            drain_s: None,
        }
    }

    /// Failed, lost and too-late events: what the cost model charges.
    pub fn failed_events(&self) -> u64 {
        self.totals.failed + self.lost + self.stale
    }
}

/// Answers, latency and the fate of what was acknowledged, of a set of
/// requests; the latency leaves out the requests intended before
/// `warmup_s`, an event stored later than `budget_us` is late.
pub fn phase_summary<'a>(
    rows: impl Iterator<Item = &'a Request> + Clone,
    warmup_s: f64,
    budget_us: u64,
) -> PhaseSummary {
    let requests = rows.clone().count() as u64;
    let ok = rows.clone().filter(|r| r.ok).count() as u64;
    let mut failures = BTreeMap::new();
    for class in rows.clone().filter_map(|r| r.failure.as_ref()) {
        *failures.entry(class.clone()).or_default() += 1;
    }
    PhaseSummary {
        requests,
        ok,
        failed: requests - ok,
        error_rate: ratio(requests - ok, requests),
        lost_events: rows.clone().filter(|r| r.lost).count() as u64,
        late_events: rows
            .clone()
            .filter(|r| r.freshness_us.is_some_and(|f| f > budget_us))
            .count() as u64,
        latency_ms: latency(
            rows.filter(|r| r.ok && r.intended_s >= warmup_s)
                .map(|r| r.latency_us),
        ),
        failures,
    }
}

/// The phase of a request intended at `t` among fault `windows`.
pub fn phase_of(windows: &[(f64, f64)], t: f64) -> Option<&'static str> {
    if windows.is_empty() {
        return None;
    }
    let first = windows.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
    let last = windows
        .iter()
        .map(|w| w.1)
        .fold(f64::NEG_INFINITY, f64::max);
    Some(if windows.iter().any(|(s, e)| t >= *s && t < *e) {
        "during"
    } else if t < first {
        "before"
    } else if t >= last {
        "after"
    } else {
        "between"
    })
}

/// The faults of `faults.parquet`, as the summary lists them.
pub fn faults(frame: &DataFrame) -> anyhow::Result<Vec<FaultSummary>> {
    let repetition = numbers(frame, "repetition")?;
    let kind = strings(frame, "kind")?;
    let target = strings(frame, "target")?;
    let planned_start = numbers(frame, "planned_start_s")?;
    let planned_end = numbers(frame, "planned_end_s")?;
    let actual_start = numbers(frame, "actual_start_s")?;
    let actual_end = numbers(frame, "actual_end_s")?;
    let verified = flags(frame, "verified")?;
    let effect = numbers(frame, "effect_ms")?;
    let recovery = numbers(frame, "recovery_ms")?;
    Ok((0..frame.height())
        .map(|i| FaultSummary {
            repetition: repetition[i].unwrap_or(0.0) as u32,
            kind: kind[i].clone(),
            target: target[i].clone(),
            planned_start_s: planned_start[i],
            planned_end_s: planned_end[i],
            actual_start_s: actual_start[i],
            actual_end_s: actual_end[i],
            verified: verified[i],
            effect_ms: effect[i],
            recovery_ms: recovery[i],
        })
        .collect())
}

/// Seconds from the end of the last fault of a repetition until the
/// answers are back: first the whole second from which, for 5 s (or to the
/// end of the load), every second's error rate is within the baseline (the
/// error rate before the first fault) plus one percentage point; then, to
/// the request, the first success after the last failure before that
/// second. `None` without faults or if that never came.
pub fn recovery<'a>(
    rows: impl Iterator<Item = &'a Request> + Clone,
    windows: &[(f64, f64)],
) -> Option<f64> {
    const HOLD: usize = 5;
    if windows.is_empty() {
        return None;
    }
    let first = windows.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
    let end = windows
        .iter()
        .map(|w| w.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut baseline = (0u64, 0u64);
    let mut seconds: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for row in rows.clone() {
        if row.intended_s < first {
            baseline.0 += 1;
            baseline.1 += u64::from(!row.ok);
        } else if row.intended_s >= end {
            let bucket = seconds
                .entry((row.intended_s - end).floor() as i64)
                .or_default();
            bucket.0 += 1;
            bucket.1 += u64::from(!row.ok);
        }
    }
    let limit = ratio(baseline.1, baseline.0) + 0.01;
    let good: Vec<(i64, bool)> = seconds
        .iter()
        .map(|(s, (n, failed))| (*s, *n > 0 && ratio(*failed, *n) <= limit))
        .collect();
    let second = (0..good.len())
        .find(|&i| good[i..(i + HOLD).min(good.len())].iter().all(|g| g.1))
        .map(|i| good[i].0 as f64)?;
    // To the request: the first success after the last failure before
    // that second.
    let from = end + second;
    let last_failure = rows
        .clone()
        .filter(|r| !r.ok && r.intended_s >= end && r.intended_s < from)
        .map(|r| r.intended_s)
        .reduce(f64::max);
    let Some(last_failure) = last_failure else {
        return Some(second);
    };
    rows.filter(|r| r.ok && r.intended_s > last_failure)
        .map(|r| r.intended_s)
        .reduce(f64::min)
        .map(|t| (t - end).clamp(0.0, second))
}

/// Seconds from the end of the last fault until the scraped backlog is back
/// to its level before the first fault (the 95th percentile of its readings
/// then: a few messages are always in flight); `None` without faults,
/// without a backlog, or if it never got back.
/// Seconds in a row the database must keep up for the data path to count
/// as recovered.
const KEPT_UP_S: usize = 3;

/// Fault end → the first second from which the database stores this
/// architecture's events as fast as they are acknowledged (90 % or more,
/// [`KEPT_UP_S`] seconds in a row), from the audit rows. A path that
/// answers but drops (or holds back) what it acknowledged has not
/// recovered, whatever its HTTP answers say. `None` without a fault, or if
/// the load ended first.
pub fn data_recovery<'a>(
    rows: impl Iterator<Item = &'a Request>,
    windows: &[(f64, f64)],
) -> Option<f64> {
    let end = windows.iter().map(|w| w.1).reduce(f64::max)?;
    let mut acknowledged: BTreeMap<i64, u64> = BTreeMap::new();
    let mut stored: BTreeMap<i64, u64> = BTreeMap::new();
    // In whole microseconds, so that an event stored on a second's edge
    // falls in that second.
    let second = |us: i64| us.div_euclid(1_000_000);
    for row in rows.filter(|r| r.ok) {
        let sent = (row.intended_s * 1e6).round() as i64;
        let answered = sent + row.latency_us as i64;
        *acknowledged.entry(second(answered)).or_default() += 1;
        if let Some(freshness) = row.freshness_us {
            *stored.entry(second(sent + freshness as i64)).or_default() += 1;
        }
    }
    let last = *acknowledged.keys().next_back()?;
    let kept_up = |second: i64| {
        let acked = acknowledged.get(&second).copied().unwrap_or(0);
        acked > 0 && stored.get(&second).copied().unwrap_or(0) as f64 >= 0.9 * acked as f64
    };
    (end.floor() as i64..=last - KEPT_UP_S as i64 + 1)
        .find(|&second| (second..second + KEPT_UP_S as i64).all(kept_up))
        .map(|second| (second as f64 - end).max(0.0))
}

pub fn drain(points: Option<&Vec<(f64, f64)>>, windows: &[(f64, f64)]) -> Option<f64> {
    let first = windows.iter().map(|w| w.0).reduce(f64::min)?;
    let end = windows.iter().map(|w| w.1).reduce(f64::max)?;
    let points = points?;
    let mut before: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t < first)
        .map(|(_, backlog)| *backlog)
        .collect();
    before.sort_by(f64::total_cmp);
    let baseline = if before.is_empty() {
        0.0
    } else {
        before[(before.len() * 95).div_ceil(100) - 1].max(0.0)
    };
    points
        .iter()
        .find(|(t, backlog)| *t >= end && *backlog <= baseline)
        .map(|(t, _)| t - end)
}
