//! The headline figures of a set of requests (one repetition, or all
//! pooled): answers and latency per phase, the loss audit, freshness, time
//! to recover and to drain. Pure functions of the joined rows.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;

use super::join::Request;
use crate::experiment::Phase;
use crate::run_folder::Reference;
use crate::run_folder::frames::{column, flags, numbers, strings};
use crate::run_folder::summary::{DrainRate, FaultSummary, Freshness, PhaseSummary, SentLate};
use crate::stats::{latency, ratio};

/// The headline figures of a set of requests (one repetition or all).
pub struct Figures {
    pub totals: PhaseSummary,
    pub phases: BTreeMap<Phase, PhaseSummary>,
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
    /// Set by the caller: see [`data_current`].
    pub data_current_s: Option<f64>,
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
        let mut phases: BTreeMap<Phase, Vec<&Request>> = BTreeMap::new();
        for row in rows {
            let windows = windows.get(&row.repetition).map_or(&[][..], Vec::as_slice);
            if let Some(phase) = Phase::of(windows, row.intended_s) {
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
                .map(|(phase, rows)| (phase, phase_summary(rows.into_iter(), warmup_s, budget_us)))
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
            data_current_s: None,
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

/// The faults of `faults.parquet`, as the summary lists them.
pub fn faults(frame: &DataFrame) -> anyhow::Result<Vec<FaultSummary>> {
    let repetition = numbers(frame, column::REPETITION)?;
    let kind = strings(frame, column::KIND)?;
    let target = strings(frame, column::TARGET)?;
    let planned_start = numbers(frame, column::PLANNED_START_S)?;
    let planned_end = numbers(frame, column::PLANNED_END_S)?;
    let actual_start = numbers(frame, column::ACTUAL_START_S)?;
    let actual_end = numbers(frame, column::ACTUAL_END_S)?;
    let verified = flags(frame, column::VERIFIED)?;
    let effect = numbers(frame, column::EFFECT_MS)?;
    let recovery = numbers(frame, column::RECOVERY_MS)?;
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

/// Seconds in a row the database must keep up for the data path to count
/// as recovered.
pub const KEPT_UP_S: usize = 3;

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

/// Fault end → the moment from which every event stored was stored within
/// `budget_us` of its intended send time: the data is current again, not
/// only flowing ([`data_recovery`] is a rate; the events stored then may
/// still be minutes old). From the audit rows: the last store of a stale
/// event after the fault, 0 when there is none. `None` without a fault.
pub fn data_current<'a>(
    rows: impl Iterator<Item = &'a Request>,
    windows: &[(f64, f64)],
    budget_us: u64,
) -> Option<f64> {
    let end = windows.iter().map(|w| w.1).reduce(f64::max)?;
    let last_stale = rows
        .filter_map(|r| {
            let freshness = r.freshness_us?;
            (freshness > budget_us).then(|| r.intended_s + freshness as f64 / 1e6)
        })
        .reduce(f64::max);
    Some(last_stale.map_or(0.0, |stored| (stored - end).max(0.0)))
}

/// Seconds from the end of the last fault until the scraped backlog is back
/// to its level before the first fault (the 95th percentile of its readings
/// then: a few messages are always in flight); `None` without faults,
/// without a backlog, or if it never got back.
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

/// The fewest events a backlog must hold, and the shortest time its storing
/// must take, to give a drain rate: a smaller one is stored in a batch or
/// two, and its rate would time a single commit.
pub const DRAIN_MIN_EVENTS: usize = 1_000;
pub const DRAIN_MIN_S: f64 = 0.2;

/// How fast the backlog of the last fault was stored once it was over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drained {
    /// Events stored a second from the first to the last stored event of
    /// the backlog (every event stored meanwhile counts, new ones too).
    pub events_per_s: f64,
    /// The backlog: events acknowledged before the fault was over and
    /// stored after.
    pub backlog: usize,
    /// From the first to the last stored event of the backlog.
    pub seconds: f64,
}

/// The rate at which the events acknowledged before the end of the last
/// fault window and stored after it were stored, from the audit's stored
/// times; `None` without a window, or with a backlog too small to time
/// ([`DRAIN_MIN_EVENTS`], [`DRAIN_MIN_S`]).
pub fn drain_rate<'a>(
    rows: impl Iterator<Item = &'a Request> + Clone,
    windows: &[(f64, f64)],
) -> Option<Drained> {
    let end = windows.iter().map(|w| w.1).reduce(f64::max)?;
    let end_us = (end * 1e6).round() as i64;
    // (answered, stored), in µs from the run's start, of stored events.
    let stored = rows.filter(|r| r.ok).filter_map(|r| {
        let sent = (r.intended_s * 1e6).round() as i64;
        Some((sent + r.latency_us as i64, sent + r.freshness_us? as i64))
    });
    let backlog: Vec<i64> = stored
        .clone()
        .filter(|(answered, stored)| *answered < end_us && *stored > end_us)
        .map(|(_, stored)| stored)
        .collect();
    let first = *backlog.iter().min()?;
    let last = *backlog.iter().max()?;
    let seconds = (last - first) as f64 / 1e6;
    if backlog.len() < DRAIN_MIN_EVENTS || seconds < DRAIN_MIN_S {
        return None;
    }
    let meanwhile = stored
        .filter(|(_, stored)| (first..=last).contains(stored))
        .count();
    Some(Drained {
        events_per_s: meanwhile as f64 / seconds,
        backlog: backlog.len(),
        seconds,
    })
}

/// The means of the repetitions' drains; `None` without one.
pub fn drain_summary(drained: &[Drained]) -> Option<DrainRate> {
    let n = drained.len() as f64;
    let mean = |f: fn(&Drained) -> f64| drained.iter().map(f).sum::<f64>() / n;
    (!drained.is_empty()).then(|| DrainRate {
        events_per_s: mean(|d| d.events_per_s),
        backlog_events: mean(|d| d.backlog as f64),
        seconds: mean(|d| d.seconds),
        repetitions: drained.len() as u32,
        copy_rows_per_s: None,
        copy_ratio: None,
    })
}

/// Sets `drain` beside the COPY rate the repetitions measured alone, when
/// they did (the mean of those that did).
pub fn compare_with_copy(drain: &mut DrainRate, references: &[Reference]) {
    let copies: Vec<f64> = references
        .iter()
        .filter_map(|r| r.copy_rows_per_s)
        .collect();
    if copies.is_empty() {
        return;
    }
    let copy = copies.iter().sum::<f64>() / copies.len() as f64;
    drain.copy_rows_per_s = Some(copy);
    drain.copy_ratio = (copy > 0.0).then(|| drain.events_per_s / copy);
}

/// How late the driver sent `rows` after their intended times; `None`
/// if none was sent.
pub fn sent_late(rows: &[&Request]) -> Option<SentLate> {
    let mut histogram = crate::stats::histogram();
    for late in rows.iter().filter_map(|r| r.sent_late_us) {
        histogram.saturating_record(late);
    }
    let ms = |us: u64| us as f64 / 1000.0;
    (!histogram.is_empty()).then(|| SentLate {
        p50: ms(histogram.value_at_quantile(0.5)),
        p99: ms(histogram.value_at_quantile(0.99)),
        max: ms(histogram.max()),
        sent: histogram.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acknowledged event sent at `sent_s`, answered 1 ms later and
    /// stored at `stored_s`.
    fn stored(sent_s: f64, stored_s: f64) -> Request {
        Request {
            repetition: 0,
            intended_s: sent_s,
            latency_us: 1_000,
            ok: true,
            failure: None,
            freshness_us: Some(((stored_s - sent_s) * 1e6).round() as u64),
            lost: false,
            sent_late_us: Some(0),
        }
    }

    #[test]
    fn a_drain_rate_times_the_backlog_of_the_last_fault_from_its_stored_rows() {
        let mut rows = Vec::new();
        // Before the fault, stored at once: not backlog.
        rows.extend(
            (0..500).map(|i| stored(1.0 + f64::from(i) * 0.01, 1.0 + f64::from(i) * 0.01 + 0.002)),
        );
        // 2,000 acknowledged during the fault (10–20 s), stored from 21 s
        // one every 0.5 ms, with 500 new events among them.
        rows.extend(
            (0..2000).map(|i| stored(10.0 + f64::from(i) * 0.005, 21.0 + f64::from(i) * 0.0005)),
        );
        rows.extend(
            (0..500).map(|i| stored(20.5 + f64::from(i) * 0.001, 21.0 + f64::from(i) * 0.0019)),
        );
        // A failed request is no event stored.
        rows.push(Request {
            ok: false,
            freshness_us: None,
            ..stored(15.0, 15.0)
        });
        let rate = drain_rate(rows.iter(), &[(10.0, 20.0)]).unwrap();
        assert_eq!(rate.backlog, 2000);
        assert!((rate.seconds - 0.9995).abs() < 1e-6, "{rate:?}");
        assert!(
            (rate.events_per_s - 2500.0 / 0.9995).abs() < 1e-6,
            "{rate:?}"
        );
        // The rate moves with the pace of the stored rows: twice as slow.
        let slower: Vec<Request> = (0..2000)
            .map(|i| stored(10.0 + f64::from(i) * 0.005, 21.0 + f64::from(i) * 0.001))
            .collect();
        let rate = drain_rate(slower.iter(), &[(10.0, 20.0)]).unwrap();
        assert!(
            (rate.events_per_s - 2000.0 / 1.999).abs() < 1e-6,
            "{rate:?}"
        );
        // Without a fault, or with a backlog too small to time, no rate.
        assert!(drain_rate(rows.iter(), &[]).is_none());
        assert!(drain_rate(rows[..1000].iter(), &[(10.0, 20.0)]).is_none());
        let at_once: Vec<Request> = (0..5000)
            .map(|i| stored(10.0 + f64::from(i) * 0.001, 21.0 + f64::from(i) * 0.00001))
            .collect();
        assert!(drain_rate(at_once.iter(), &[(10.0, 20.0)]).is_none());
    }

    #[test]
    fn a_drain_is_the_mean_of_the_repetitions_and_set_beside_copy_when_measured() {
        let drained = |events_per_s, backlog| Drained {
            events_per_s,
            backlog,
            seconds: 1.0,
        };
        assert!(drain_summary(&[]).is_none());
        let mut drain = drain_summary(&[drained(1000.0, 3000), drained(3000.0, 5000)]).unwrap();
        assert_eq!(
            (drain.events_per_s, drain.backlog_events, drain.repetitions),
            (2000.0, 4000.0, 2)
        );
        let reference = |copy_rows_per_s| Reference {
            commits_per_s: 100.0,
            clients: 8,
            seconds: 5.0,
            multi_row_rows_per_s: None,
            copy_rows_per_s,
        };
        compare_with_copy(&mut drain, &[reference(None)]);
        assert_eq!((drain.copy_rows_per_s, drain.copy_ratio), (None, None));
        compare_with_copy(
            &mut drain,
            &[reference(Some(3000.0)), reference(Some(5000.0))],
        );
        assert_eq!(drain.copy_rows_per_s, Some(4000.0));
        assert_eq!(drain.copy_ratio, Some(0.5));
    }
}
