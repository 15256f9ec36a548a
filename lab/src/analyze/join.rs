//! The join stage: every request with the database audit and its
//! repetition's start, in lazy Polars plans (per-second buckets, the rows
//! the figures need, the audit's own counts) run as one query; and the
//! scraped consumer state.

use std::collections::{BTreeMap, HashMap};

use faultline_services::metrics::names;
use polars::prelude::*;

use super::{RunFiles, flags, numbers, strings};
use crate::experiment::Phase;

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
}

/// Per (architecture, repetition) and second: the last backlog and the
/// highest breaker state scraped.
pub type Scraped = HashMap<(String, u32), BTreeMap<u32, (Option<f64>, Option<f64>)>>;

/// Joins every request with the audit: `latency_us`, `failure`,
/// `freshness_us` (sent → stored, for acknowledged events), `lost`, `second`.
pub fn joined(files: &RunFiles, t0: &HashMap<u32, i64>) -> PolarsResult<LazyFrame> {
    let (reps, starts): (Vec<u32>, Vec<i64>) = t0.iter().map(|(r, t)| (*r, *t)).unzip();
    let t0 = DataFrame::new(
        reps.len(),
        vec![
            Series::new("repetition".into(), reps).into(),
            Series::new("t0_unix_us".into(), starts).into(),
        ],
    )?;
    let keys = [col("repetition"), col("architecture"), col("event_id")];
    let stored = files
        .stored
        .clone()
        .lazy()
        .select([
            col("repetition"),
            col("architecture"),
            col("event_id"),
            col("stored_at_us"),
        ])
        .unique(None, UniqueKeepStrategy::First);
    let sent_at = col("t0_unix_us") + col("intended_us");
    let delay = col("stored_at_us") - sent_at;
    Ok(files
        .requests
        .clone()
        .lazy()
        .join(stored, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .join(
            t0.lazy(),
            [col("repetition")],
            [col("repetition")],
            JoinArgs::new(JoinType::Left),
        )
        .with_columns([
            when(col("finished_us").gt(col("intended_us")))
                .then(col("finished_us") - col("intended_us"))
                .otherwise(lit(0i64))
                .alias("latency_us"),
            when(col("ok"))
                .then(lit(Null {}).cast(DataType::String))
                .when(col("status").gt(lit(0)))
                .then(col("status").cast(DataType::String))
                .otherwise(col("error"))
                .alias("failure"),
            when(col("ok").and(col("stored_at_us").is_not_null()))
                .then(
                    when(delay.clone().gt(lit(0i64)))
                        .then(delay)
                        .otherwise(lit(0i64)),
                )
                .otherwise(lit(Null {}).cast(DataType::Int64))
                .alias("freshness_us"),
            col("ok").and(col("stored_at_us").is_null()).alias("lost"),
            // Whole seconds (intended times are never negative).
            (col("intended_us").cast(DataType::Float64) / lit(1e6))
                .cast(DataType::Int64)
                .alias("second"),
        ]))
}

/// Per architecture, repetition and second: counts (offered, ok, lost,
/// late) and percentiles, and failures by class.
/// `budget_us` is the staleness budget: an acknowledged event stored later
/// than that counts as late.
pub fn per_second(joined: LazyFrame, budget_us: u64) -> [LazyFrame; 2] {
    let q = |e: Expr, q: f64| e.quantile(lit(q), QuantileMethod::Linear);
    let ms = |e: Expr| e.cast(DataType::Float64) / lit(1000.0);
    let keys = [col("architecture"), col("repetition"), col("second")];
    let counts = joined.clone().group_by(keys.clone()).agg([
        len().alias("offered"),
        col("ok").cast(DataType::UInt64).sum().alias("ok"),
        col("lost").cast(DataType::UInt64).sum().alias("lost"),
        col("freshness_us")
            .gt(lit(budget_us as i64))
            .cast(DataType::UInt64)
            .sum()
            .alias("late"),
        q(ms(col("latency_us")).filter(col("ok")), 0.5).alias("ok_p50_ms"),
        q(ms(col("latency_us")).filter(col("ok")), 0.99).alias("ok_p99_ms"),
        q(ms(col("latency_us")).filter(col("ok").not()), 0.5).alias("failed_p50_ms"),
        q(ms(col("latency_us")).filter(col("ok").not()), 0.99).alias("failed_p99_ms"),
        q(ms(col("freshness_us")), 0.5).alias("freshness_p50_ms"),
        q(ms(col("freshness_us")), 0.99).alias("freshness_p99_ms"),
    ]);
    let failures = joined
        .filter(col("failure").is_not_null())
        .group_by([
            col("architecture"),
            col("repetition"),
            col("second"),
            col("failure"),
        ])
        .agg([len().alias("n")]);
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
    joined.select([
        col("architecture"),
        col("repetition"),
        col("intended_us"),
        col("latency_us"),
        col("ok"),
        col("failure"),
        col("freshness_us"),
        col("lost"),
    ])
}

/// The joined rows, one [`Request`] each, grouped by architecture.
pub fn requests(rows: &DataFrame) -> anyhow::Result<HashMap<String, Vec<Request>>> {
    let arch = strings(rows, "architecture")?;
    let rep = numbers(rows, "repetition")?;
    let intended = numbers(rows, "intended_us")?;
    let latency_us = numbers(rows, "latency_us")?;
    let ok = flags(rows, "ok")?;
    let failure = rows.column("failure")?.str()?.clone();
    let freshness = numbers(rows, "freshness_us")?;
    let lost = flags(rows, "lost")?;
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
    let acked = files.requests.clone().lazy().filter(col("ok")).select([
        col("repetition"),
        col("architecture"),
        col("event_id"),
        lit(true).alias("acked"),
    ]);
    let keys = [col("repetition"), col("architecture"), col("event_id")];
    files
        .stored
        .clone()
        .lazy()
        .join(acked, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .group_by([col("architecture"), col("repetition")])
        .agg([
            len().alias("stored"),
            col("acked")
                .is_null()
                .cast(DataType::UInt64)
                .sum()
                .alias("unacknowledged"),
        ])
}

/// [`AuditCounts`] from the result of [`audit_plan`].
pub fn audit(audit: &DataFrame) -> anyhow::Result<AuditCounts> {
    let arch = strings(audit, "architecture")?;
    let rep = numbers(audit, "repetition")?;
    let stored = numbers(audit, "stored")?;
    let unacknowledged = numbers(audit, "unacknowledged")?;
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
pub fn redelivered(metrics: &DataFrame) -> anyhow::Result<HashMap<(String, u32), u64>> {
    let counter = format!("{}_total", names::EVENTS_DUPLICATE);
    let arch = strings(metrics, "architecture")?;
    let service = strings(metrics, "service")?;
    let metric = strings(metrics, "metric")?;
    let value = numbers(metrics, "value")?;
    let rep = numbers(metrics, "repetition")?;
    let t = numbers(metrics, "t_s")?;
    let mut readings: BTreeMap<(String, u32, String), Vec<(f64, f64)>> = BTreeMap::new();
    for i in (0..metrics.height()).filter(|i| metric[*i] == counter) {
        if let (Some(t), Some(value)) = (t[i], value[i]) {
            let key = (
                arch[i].clone(),
                rep[i].unwrap_or(0.0) as u32,
                service[i].clone(),
            );
            readings.entry(key).or_default().push((t, value));
        }
    }
    let mut out: HashMap<(String, u32), u64> = HashMap::new();
    for ((arch, rep, _), mut points) in readings {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The first reading is the count before the repetition's load.
        let increase: f64 = points
            .windows(2)
            .map(|w| {
                if w[1].1 >= w[0].1 {
                    w[1].1 - w[0].1
                } else {
                    w[1].1
                }
            })
            .sum();
        *out.entry((arch, rep)).or_default() += increase.round() as u64;
    }
    Ok(out)
}

/// The increases of a scraped histogram's `_sum` and `_count` per
/// (architecture, repetition) and phase of the fault `windows`: each
/// increase between two readings goes to the phase of the later one (none
/// before `warmup_s`); a drop is a restarted process counting from zero.
pub type PhaseSums = HashMap<(String, u32), BTreeMap<Phase, (f64, f64)>>;

pub fn histogram_by_phase(
    metrics: &DataFrame,
    family: &str,
    windows: &HashMap<u32, Vec<(f64, f64)>>,
    warmup_s: f64,
) -> anyhow::Result<PhaseSums> {
    let (sum, count) = (format!("{family}_sum"), format!("{family}_count"));
    let arch = strings(metrics, "architecture")?;
    let service = strings(metrics, "service")?;
    let metric = strings(metrics, "metric")?;
    let value = numbers(metrics, "value")?;
    let rep = numbers(metrics, "repetition")?;
    let t = numbers(metrics, "t_s")?;
    type Key = (String, u32, String, bool);
    let mut readings: BTreeMap<Key, Vec<(f64, f64)>> = BTreeMap::new();
    for i in 0..metrics.height() {
        let is_sum = metric[i] == sum;
        if !is_sum && metric[i] != count {
            continue;
        }
        if let (Some(t), Some(value)) = (t[i], value[i]) {
            let key = (
                arch[i].clone(),
                rep[i].unwrap_or(0.0) as u32,
                service[i].clone(),
                is_sum,
            );
            readings.entry(key).or_default().push((t, value));
        }
    }
    let mut out = PhaseSums::new();
    for ((arch, rep, _, is_sum), mut points) in readings {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let windows = windows.get(&rep).map_or(&[][..], Vec::as_slice);
        for w in points.windows(2).filter(|w| w[0].0 >= warmup_s) {
            let Some(phase) = Phase::of(windows, w[1].0) else {
                continue;
            };
            let increase = if w[1].1 >= w[0].1 {
                w[1].1 - w[0].1
            } else {
                w[1].1
            };
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
pub fn scraped(metrics: &DataFrame) -> anyhow::Result<(Scraped, BacklogPoints)> {
    let mut scraped: Scraped = HashMap::new();
    let arch = strings(metrics, "architecture")?;
    let metric = strings(metrics, "metric")?;
    let value = numbers(metrics, "value")?;
    let rep = numbers(metrics, "repetition")?;
    let t = numbers(metrics, "t_s")?;
    // (lab readings, consumer readings) per architecture and repetition.
    let mut readings: HashMap<(String, u32), LabAndGauge> = HashMap::new();
    for i in 0..metrics.height() {
        let (Some(t), Some(value)) = (t[i], value[i]) else {
            continue;
        };
        let key = (arch[i].clone(), rep[i].unwrap_or(0.0) as u32);
        if metric[i] == crate::collect::LAB_BACKLOG {
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
