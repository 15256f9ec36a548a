//! The join stage: every request with the database audit and its
//! repetition's start, in lazy Polars plans (per-second buckets, the rows
//! the figures need, the audit's own counts) run as one query; and the
//! scraped consumer state.

use std::collections::{BTreeMap, HashMap};

use faultline_services::metrics::names;
use polars::prelude::*;

use crate::experiment::Phase;
use crate::run_folder::RunFiles;
use crate::run_folder::frames::{MetricColumns, column, flags, numbers, strings};

/// The columns the join adds to the request rows, and those of its
/// per-second aggregates.
pub mod joined {
    /// Each repetition's start, Unix microseconds.
    pub const T0_UNIX_US: &str = "t0_unix_us";
    /// Intended send → last attempt's end.
    pub const LATENCY_US: &str = "latency_us";
    /// A failed request's class: its HTTP status or `timeout`, `refused`,
    /// `connection`, `not_sent`.
    pub const FAILURE: &str = "failure";
    /// Intended send → stored, of acknowledged events that were stored.
    pub const FRESHNESS_US: &str = "freshness_us";
    /// Acknowledged and never stored.
    pub const LOST: &str = "lost";
    /// Intended send → first attempt's send, of requests that were
    /// written (an attempt made): the driver's own delay, a wait for a
    /// connection included.
    pub const SENT_LATE_US: &str = "sent_late_us";
    /// The whole second of the intended send time.
    pub const SECOND: &str = "second";
    /// Requests due in a second.
    pub const OFFERED: &str = "offered";
    /// Acknowledged events of a second stored later than the budget.
    pub const LATE: &str = "late";
    /// Failures of one class in a second.
    pub const N: &str = "n";
    /// A stored event that was acknowledged.
    pub const ACKED: &str = "acked";
    /// Stored rows of an architecture and repetition.
    pub const STORED: &str = "stored";
    /// Stored rows nobody was told about.
    pub const UNACKNOWLEDGED: &str = "unacknowledged";
    pub const OK_P50_MS: &str = "ok_p50_ms";
    pub const OK_P99_MS: &str = "ok_p99_ms";
    pub const FAILED_P50_MS: &str = "failed_p50_ms";
    pub const FAILED_P99_MS: &str = "failed_p99_ms";
    pub const FRESHNESS_P50_MS: &str = "freshness_p50_ms";
    pub const FRESHNESS_P99_MS: &str = "freshness_p99_ms";
}

/// One request after the audit join.
pub struct Request {
    pub repetition: u32,
    pub intended_s: f64,
    pub latency_us: u64,
    pub ok: bool,
    /// The failure class of a failed request.
    pub failure: Option<String>,
    /// Sent (the intended send time: when the user acted) → stored, for
    /// acknowledged events that were stored. A client's retries count: an
    /// event acknowledged on its fifth attempt is as late as the wait.
    pub freshness_us: Option<u64>,
    pub lost: bool,
    /// How late the driver sent it after its intended time; `None` if it
    /// was never sent.
    pub sent_late_us: Option<u64>,
}

/// Per (architecture, repetition) and second: the last backlog and the
/// highest breaker state scraped.
pub type Scraped = HashMap<(String, u32), BTreeMap<u32, (Option<f64>, Option<f64>)>>;

/// Joins every request with the audit: `latency_us`, `failure`,
/// `freshness_us` (sent → stored, for acknowledged events), `lost`, `second`.
pub fn joined(
    (requests, stored): (&DataFrame, &DataFrame),
    t0: &HashMap<u32, i64>,
) -> PolarsResult<LazyFrame> {
    let (reps, starts): (Vec<u32>, Vec<i64>) = t0.iter().map(|(r, t)| (*r, *t)).unzip();
    let t0 = DataFrame::new(
        reps.len(),
        vec![
            Series::new(column::REPETITION.into(), reps).into(),
            Series::new(joined::T0_UNIX_US.into(), starts).into(),
        ],
    )?;
    let keys = [
        col(column::REPETITION),
        col(column::ARCHITECTURE),
        col(column::EVENT_ID),
    ];
    let stored = stored
        .clone()
        .lazy()
        .select([
            col(column::REPETITION),
            col(column::ARCHITECTURE),
            col(column::EVENT_ID),
            col(column::STORED_AT_US),
        ])
        .unique(None, UniqueKeepStrategy::First);
    let sent_at = col(joined::T0_UNIX_US) + col(column::INTENDED_US);
    let delay = col(column::STORED_AT_US) - sent_at;
    Ok(requests
        .clone()
        .lazy()
        .join(stored, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .join(
            t0.lazy(),
            [col(column::REPETITION)],
            [col(column::REPETITION)],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            when(col(column::FINISHED_US).gt(col(column::INTENDED_US)))
                .then(col(column::FINISHED_US) - col(column::INTENDED_US))
                .otherwise(lit(0i64))
                .alias(joined::LATENCY_US),
            when(col(column::OK))
                .then(lit(Null {}).cast(DataType::String))
                .when(col(column::STATUS).gt(lit(0)))
                .then(col(column::STATUS).cast(DataType::String))
                .otherwise(col(column::ERROR))
                .alias(joined::FAILURE),
            when(col(column::OK).and(col(column::STORED_AT_US).is_not_null()))
                .then(
                    when(delay.clone().gt(lit(0i64)))
                        .then(delay)
                        .otherwise(lit(0i64)),
                )
                .otherwise(lit(Null {}).cast(DataType::Int64))
                .alias(joined::FRESHNESS_US),
            col(column::OK)
                .and(col(column::STORED_AT_US).is_null())
                .alias(joined::LOST),
            // Whole seconds (intended times are never negative).
            (col(column::INTENDED_US).cast(DataType::Float64) / lit(1e6))
                .cast(DataType::Int64)
                .alias(joined::SECOND),
        ]))
}

/// Per architecture, repetition and second: counts (offered, ok, lost,
/// late) and percentiles, and failures by class.
/// `budget_us` is the staleness budget: an acknowledged event stored later
/// than that counts as late.
pub fn per_second(joined: LazyFrame, budget_us: u64) -> [LazyFrame; 2] {
    let q = |e: Expr, q: f64| e.quantile(lit(q), QuantileMethod::Linear);
    let ms = |e: Expr| e.cast(DataType::Float64) / lit(1000.0);
    let keys = [
        col(column::ARCHITECTURE),
        col(column::REPETITION),
        col(joined::SECOND),
    ];
    let counts = joined.clone().group_by(keys.clone()).agg([
        len().alias(joined::OFFERED),
        col(column::OK)
            .cast(DataType::UInt64)
            .sum()
            .alias(column::OK),
        col(joined::LOST)
            .cast(DataType::UInt64)
            .sum()
            .alias(joined::LOST),
        col(joined::FRESHNESS_US)
            .gt(lit(budget_us as i64))
            .cast(DataType::UInt64)
            .sum()
            .alias(joined::LATE),
        q(ms(col(joined::LATENCY_US)).filter(col(column::OK)), 0.5).alias(joined::OK_P50_MS),
        q(ms(col(joined::LATENCY_US)).filter(col(column::OK)), 0.99).alias(joined::OK_P99_MS),
        q(
            ms(col(joined::LATENCY_US)).filter(col(column::OK).not()),
            0.5,
        )
        .alias(joined::FAILED_P50_MS),
        q(
            ms(col(joined::LATENCY_US)).filter(col(column::OK).not()),
            0.99,
        )
        .alias(joined::FAILED_P99_MS),
        q(ms(col(joined::FRESHNESS_US)), 0.5).alias(joined::FRESHNESS_P50_MS),
        q(ms(col(joined::FRESHNESS_US)), 0.99).alias(joined::FRESHNESS_P99_MS),
    ]);
    let failures = joined
        .filter(col(joined::FAILURE).is_not_null())
        .group_by([
            col(column::ARCHITECTURE),
            col(column::REPETITION),
            col(joined::SECOND),
            col(joined::FAILURE),
        ])
        .agg([len().alias(joined::N)]);
    [counts, failures]
}

/// Runs every plan in one query, so that what they share (the join) is
/// computed once.
pub fn collect_all<const N: usize>(plans: [LazyFrame; N]) -> PolarsResult<[DataFrame; N]> {
    let flags = plans
        .first()
        .map(LazyFrame::get_current_optimizations)
        .unwrap_or_default();
    let plans = plans.into_iter().map(|p| p.logical_plan).collect();
    let frames = LazyFrame::collect_all_with_engine(plans, Engine::Auto, flags)?;
    frames.try_into().map_err(|frames: Vec<DataFrame>| {
        polars_err!(ComputeError: "{} results for {N} plans", frames.len())
    })
}

/// The columns of the joined rows that become [`Request`]s.
pub fn request_rows(joined: LazyFrame) -> LazyFrame {
    let late = col(column::SENT_US) - col(column::INTENDED_US);
    // Never written: not sent, or no connection came free in time.
    let not_sent = col(column::ATTEMPTS).eq(lit(0u32)).fill_null(lit(false));
    joined.select([
        col(column::ARCHITECTURE),
        col(column::REPETITION),
        col(column::INTENDED_US),
        col(joined::LATENCY_US),
        col(column::OK),
        col(joined::FAILURE),
        col(joined::FRESHNESS_US),
        col(joined::LOST),
        when(not_sent)
            .then(lit(Null {}).cast(DataType::Int64))
            .when(late.clone().gt(lit(0i64)))
            .then(late)
            .otherwise(lit(0i64))
            .alias(joined::SENT_LATE_US),
    ])
}

/// The joined rows, one [`Request`] each, grouped by architecture.
pub fn requests(rows: &DataFrame) -> anyhow::Result<HashMap<String, Vec<Request>>> {
    let arch = strings(rows, column::ARCHITECTURE)?;
    let rep = numbers(rows, column::REPETITION)?;
    let intended = numbers(rows, column::INTENDED_US)?;
    let latency_us = numbers(rows, joined::LATENCY_US)?;
    let ok = flags(rows, column::OK)?;
    let failure = rows.column(joined::FAILURE)?.str()?.clone();
    let freshness = numbers(rows, joined::FRESHNESS_US)?;
    let lost = flags(rows, joined::LOST)?;
    let sent_late = numbers(rows, joined::SENT_LATE_US)?;
    let mut by_arch: HashMap<String, Vec<Request>> = HashMap::new();
    for (i, arch) in arch.into_iter().enumerate() {
        by_arch.entry(arch).or_default().push(Request {
            repetition: rep[i].unwrap_or(0.0) as u32,
            intended_s: intended[i].unwrap_or(0.0) / 1e6,
            latency_us: latency_us[i].unwrap_or(0.0) as u64,
            ok: ok[i],
            failure: failure.get(i).map(str::to_string),
            freshness_us: freshness[i].map(|f| f as u64),
            lost: lost[i],
            sent_late_us: sent_late[i].map(|l| l as u64),
        });
    }
    Ok(by_arch)
}

/// The audit's side per (architecture, repetition): stored rows, and
/// stored rows nobody was told about.
pub type AuditCounts = HashMap<(String, u32), (u64, u64)>;

/// Per architecture and repetition: rows stored, and rows stored without an
/// acknowledgement.
pub fn audit_plan(files: &RunFiles) -> LazyFrame {
    let acked = files
        .requests
        .clone()
        .lazy()
        .filter(col(column::OK))
        .select([
            col(column::REPETITION),
            col(column::ARCHITECTURE),
            col(column::EVENT_ID),
            lit(true).alias(joined::ACKED),
        ]);
    let keys = [
        col(column::REPETITION),
        col(column::ARCHITECTURE),
        col(column::EVENT_ID),
    ];
    files
        .stored
        .clone()
        .lazy()
        .join(acked, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .group_by([col(column::ARCHITECTURE), col(column::REPETITION)])
        .agg([
            len().alias(joined::STORED),
            col(joined::ACKED)
                .is_null()
                .cast(DataType::UInt64)
                .sum()
                .alias(joined::UNACKNOWLEDGED),
        ])
}

/// [`AuditCounts`] from the result of [`audit_plan`].
pub fn audit(audit: &DataFrame) -> anyhow::Result<AuditCounts> {
    let arch = strings(audit, column::ARCHITECTURE)?;
    let rep = numbers(audit, column::REPETITION)?;
    let stored = numbers(audit, joined::STORED)?;
    let unacknowledged = numbers(audit, joined::UNACKNOWLEDGED)?;
    let mut counts = AuditCounts::new();
    for (i, arch) in arch.into_iter().enumerate() {
        let n = |v: &[Option<f64>]| v[i].unwrap_or(0.0).max(0.0) as u64;
        counts.insert(
            (arch, rep[i].unwrap_or(0.0) as u32),
            (n(&stored), n(&unacknowledged)),
        );
    }
    Ok(counts)
}

/// Deliveries of events already stored per (architecture, repetition):
/// the increase of every service's `events_duplicate_total` over the
/// repetition, a drop in a counter read as a restarted process counting
/// from zero (as Prometheus's `increase` does).
pub fn redelivered(metrics: &MetricColumns) -> anyhow::Result<HashMap<(String, u32), u64>> {
    increase_of(metrics, names::EVENTS_DUPLICATE)
}

/// Events whose id was already stored with another payload, per
/// (architecture, repetition): the increase of `events_conflict_total`.
pub fn conflicts(metrics: &MetricColumns) -> anyhow::Result<HashMap<(String, u32), u64>> {
    increase_of(metrics, names::EVENTS_CONFLICT)
}

/// The increase of the counter `family` over each repetition, per
/// (architecture, repetition), summed over the services of each.
fn increase_of(
    metrics: &MetricColumns,
    family: &str,
) -> anyhow::Result<HashMap<(String, u32), u64>> {
    let counter = format!("{family}_total");
    let mut out: HashMap<(String, u32), u64> = HashMap::new();
    for ((arch, _, rep, ()), points) in metrics.readings_of(|m| (m == counter).then_some(())) {
        // The first reading is the count before the repetition's load.
        let increase: f64 = points
            .windows(2)
            .map(|w| counter_increase(w[0].1, w[1].1))
            .sum();
        *out.entry((arch, rep)).or_default() += increase.round() as u64;
    }
    Ok(out)
}

/// How much a counter read `before`, then `after`, went up: a drop is a
/// restarted process counting from zero (as Prometheus's `increase` reads
/// it).
pub(crate) fn counter_increase(before: f64, after: f64) -> f64 {
    if after >= before {
        after - before
    } else {
        after
    }
}

/// The increases of a scraped histogram's `_sum` and `_count` per
/// (architecture, repetition) and phase of the fault `windows`: each
/// increase between two readings goes to the phase of the later one (none
/// before `warmup_s`); a drop is a restarted process counting from zero.
pub type PhaseSums = HashMap<(String, u32), BTreeMap<Phase, (f64, f64)>>;

pub fn histogram_by_phase(
    metrics: &MetricColumns,
    family: &str,
    windows: &HashMap<u32, Vec<(f64, f64)>>,
    warmup_s: f64,
) -> anyhow::Result<PhaseSums> {
    let readings = sum_and_count(metrics, family);
    let mut out = PhaseSums::new();
    for ((arch, _, rep, is_sum), points) in readings {
        let windows = windows.get(&rep).map_or(&[][..], Vec::as_slice);
        for w in points.windows(2).filter(|w| w[0].0 >= warmup_s) {
            let Some(phase) = Phase::of(windows, w[1].0) else {
                continue;
            };
            let increase = counter_increase(w[0].1, w[1].1);
            let slot = out
                .entry((arch.clone(), rep))
                .or_default()
                .entry(phase)
                .or_default();
            if is_sum {
                slot.0 += increase;
            } else {
                slot.1 += increase;
            }
        }
    }
    Ok(out)
}

/// The readings of a histogram `family`'s `_sum` (keyed `true`) and
/// `_count` (keyed `false`) series.
pub fn sum_and_count(
    metrics: &MetricColumns,
    family: &str,
) -> crate::run_folder::frames::ScrapedSeries<bool> {
    let (sum, count) = (format!("{family}_sum"), format!("{family}_count"));
    metrics.readings_of(|m| {
        if m == sum {
            Some(true)
        } else if m == count {
            Some(false)
        } else {
            None
        }
    })
}

/// Backlog readings per (architecture, repetition), in time order.
pub type BacklogPoints = HashMap<(String, u32), Vec<(f64, f64)>>;

/// Backlog readings of one consumer: the lab's, then the consumer's gauge.
type LabAndGauge = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// The scraped consumer state: backlog and breaker per second, and every
/// backlog reading. The backlog is the lab's own measure from outside the
/// consumer (`lab_backlog_messages`: the topic's end offsets minus the
/// consumer's position) wherever it has one, else the consumer's gauge (e.g.
/// while the database is down and a stored position cannot be read); a
/// negative gauge is a consumer that does not know yet (no partitions),
/// never taken for an empty backlog.
pub fn scraped(metrics: &MetricColumns) -> anyhow::Result<(Scraped, BacklogPoints)> {
    let mut scraped: Scraped = HashMap::new();
    let MetricColumns {
        repetition: rep,
        t_s: t,
        architecture: arch,
        metric,
        value,
        ..
    } = metrics;
    // (lab readings, consumer readings) per architecture and repetition.
    let mut readings: HashMap<(String, u32), LabAndGauge> = HashMap::new();
    for i in 0..metrics.len() {
        let (Some(t), Some(value)) = (t[i], value[i]) else {
            continue;
        };
        let key = (arch[i].clone(), rep[i]);
        if metric[i] == faultline_services::metrics::names::LAB_BACKLOG {
            readings.entry(key).or_default().0.push((t, value));
        } else if metric[i] == names::CONSUMER_BACKLOG_MESSAGES {
            if value >= 0.0 {
                readings.entry(key).or_default().1.push((t, value));
            }
        } else if metric[i] == names::CIRCUIT_BREAKER_STATE {
            let slot = scraped
                .entry(key)
                .or_default()
                .entry(t.max(0.0) as u32)
                .or_default();
            slot.1 = Some(slot.1.map_or(value, |b: f64| b.max(value)));
        }
    }
    let mut backlog_points: BacklogPoints = HashMap::new();
    for (key, (lab, consumer)) in readings {
        let near_lab = |t: f64| lab.iter().any(|(at, _)| (at - t).abs() < 1.0);
        let mut points: Vec<(f64, f64)> = consumer
            .into_iter()
            .filter(|(t, _)| !near_lab(*t))
            .chain(lab.iter().copied())
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (t, value) in &points {
            scraped
                .entry(key.clone())
                .or_default()
                .entry(t.max(0.0) as u32)
                .or_default()
                .0 = Some(*value);
        }
        backlog_points.insert(key, points);
    }
    Ok((scraped, backlog_points))
}
