//! From a run folder's raw rows to `summary.json`: every headline figure,
//! computed from that run's data only.
//!
//! Polars joins each request with the database audit (was it stored, when)
//! and buckets the joined rows into per-second series; the headline figures
//! are then computed per architecture, over all repetitions and over each
//! repetition apart:
//! - requests, answers, failures by error class, latency percentiles of
//!   successes (from the intended send time, HDR histograms), per phase
//!   (before / during / after the faults, from their *actual* times);
//! - the loss audit: acknowledged, stored, lost, duplicates, stored without
//!   acknowledgement; freshness (acknowledged → stored) and staleness;
//! - time to recover, time to drain, peak backlog; the cost model;
//! - across repetitions, means with 95 % bootstrap confidence intervals;
//! - the scenario's hypotheses, each to a value, a limit and a verdict.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use polars::prelude::*;
use serde::Serialize;

use crate::experiment::{Experiment, Metric, Phase};
use crate::run_folder::summary::{
    ArchitectureSummary, Cost, CostInputs, FaultSummary, Freshness, HypothesisResult, PhaseSummary,
    Repetitions, windows_of,
};
use crate::run_folder::{self, FolderError, Manifest, Summary};
use crate::stats::{estimate, fnv, latency, ratio};
use faultline_services::breaker::BreakerState;
use faultline_services::metrics::names;

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

/// A run analysed: `summary.json` and the series the report draws.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub summary: Summary,
    /// Per second, per architecture and repetition.
    pub series: Vec<PerSecond>,
    /// Freshness distribution per architecture: (milliseconds, share of
    /// stored acknowledged events at most that late).
    pub freshness_cdf: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Analysis {
    /// The series of `architecture` in `repetition`.
    pub fn series_of(&self, architecture: &str, repetition: u32) -> Option<&PerSecond> {
        self.series
            .iter()
            .find(|s| s.architecture == architecture && s.repetition == repetition)
    }
}

/// The files of a run folder, read.
pub struct RunFiles {
    pub experiment: Experiment,
    pub experiment_text: String,
    pub manifest: Manifest,
    pub requests: DataFrame,
    pub stored: DataFrame,
    pub metrics: DataFrame,
    pub faults: DataFrame,
}

impl RunFiles {
    pub fn read(dir: &Path) -> Result<Self, FolderError> {
        let (experiment, experiment_text) = run_folder::read_experiment(dir)?;
        Ok(Self {
            experiment,
            experiment_text,
            manifest: run_folder::read_manifest(dir)?,
            requests: run_folder::REQUESTS.read(dir)?,
            stored: run_folder::STORED.read(dir)?,
            metrics: run_folder::METRICS.read(dir)?,
            faults: run_folder::FAULTS.read(dir)?,
        })
    }
}

fn strings(frame: &DataFrame, name: &str) -> anyhow::Result<Vec<String>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

fn numbers(frame: &DataFrame, name: &str) -> anyhow::Result<Vec<Option<f64>>> {
    let column = frame.column(name)?.cast(&DataType::Float64)?;
    Ok(column.f64()?.iter().collect())
}

fn flags(frame: &DataFrame, name: &str) -> anyhow::Result<Vec<bool>> {
    Ok(frame
        .column(name)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}

/// Per (architecture, repetition) and second: the last backlog and the
/// highest breaker state scraped.
type Scraped = HashMap<(String, u32), BTreeMap<u32, (Option<f64>, Option<f64>)>>;

/// One request after the audit join.
struct Request {
    repetition: u32,
    intended_s: f64,
    latency_us: u64,
    ok: bool,
    /// The failure class of a failed request.
    failure: Option<String>,
    /// Acknowledged → stored, for acknowledged events that were stored.
    freshness_us: Option<u64>,
    lost: bool,
}

impl PhaseSummary {
    fn of<'a>(rows: impl Iterator<Item = &'a Request> + Clone) -> Self {
        let requests = rows.clone().count() as u64;
        let ok = rows.clone().filter(|r| r.ok).count() as u64;
        let mut failures = BTreeMap::new();
        for class in rows.clone().filter_map(|r| r.failure.as_ref()) {
            *failures.entry(class.clone()).or_default() += 1;
        }
        Self {
            requests,
            ok,
            failed: requests - ok,
            error_rate: ratio(requests - ok, requests),
            latency_ms: latency(rows.filter(|r| r.ok).map(|r| r.latency_us)),
            failures,
        }
    }
}

/// The phase of a request intended at `t` among fault `windows`.
fn phase_of(windows: &[(f64, f64)], t: f64) -> Option<&'static str> {
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

/// Joins every request with the audit: `latency_us`, `failure`,
/// `freshness_us` (acknowledged → stored), `lost`, `second`.
fn joined(files: &RunFiles, t0: &HashMap<u32, i64>) -> PolarsResult<LazyFrame> {
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
    let acked_at = col("t0_unix_us") + col("finished_us");
    let delay = col("stored_at_us") - acked_at;
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

/// Per architecture, repetition and second: counts and percentiles.
fn per_second(joined: LazyFrame) -> PolarsResult<(DataFrame, DataFrame)> {
    let q = |e: Expr, q: f64| e.quantile(lit(q), QuantileMethod::Linear);
    let ms = |e: Expr| e.cast(DataType::Float64) / lit(1000.0);
    let keys = [col("architecture"), col("repetition"), col("second")];
    let counts = joined
        .clone()
        .group_by(keys.clone())
        .agg([
            len().alias("offered"),
            col("ok").cast(DataType::UInt64).sum().alias("ok"),
            q(ms(col("latency_us")).filter(col("ok")), 0.5).alias("ok_p50_ms"),
            q(ms(col("latency_us")).filter(col("ok")), 0.99).alias("ok_p99_ms"),
            q(ms(col("latency_us")).filter(col("ok").not()), 0.5).alias("failed_p50_ms"),
            q(ms(col("latency_us")).filter(col("ok").not()), 0.99).alias("failed_p99_ms"),
            q(ms(col("freshness_us")), 0.5).alias("freshness_p50_ms"),
            q(ms(col("freshness_us")), 0.99).alias("freshness_p99_ms"),
        ])
        .collect()?;
    let failures = joined
        .filter(col("failure").is_not_null())
        .group_by([
            col("architecture"),
            col("repetition"),
            col("second"),
            col("failure"),
        ])
        .agg([len().alias("n")])
        .collect()?;
    Ok((counts, failures))
}

/// Reads the run folder at `dir` and analyses it.
pub fn analyze(dir: &Path) -> anyhow::Result<Analysis> {
    summarize(&RunFiles::read(dir)?)
}

/// Analyses a run's files.
pub fn summarize(files: &RunFiles) -> anyhow::Result<Analysis> {
    let experiment = &files.experiment;
    let manifest = &files.manifest;
    let repetitions = &manifest.repetitions;
    let t0_of: HashMap<u32, i64> = repetitions
        .iter()
        .map(|r| (r.repetition, r.t0_unix_us))
        .collect();
    let repetition_count = repetitions.len().max(1);

    let faults = faults(&files.faults)?;
    let windows: HashMap<u32, Vec<(f64, f64)>> = (0..repetition_count as u32)
        .map(|r| (r, windows_of(&faults, r)))
        .collect();

    // Requests joined with the audit.
    let joined = joined(files, &t0_of)?;
    let (per_second_counts, per_second_failures) = per_second(joined.clone())?;
    let rows = joined
        .select([
            col("architecture"),
            col("repetition"),
            col("intended_us"),
            col("latency_us"),
            col("ok"),
            col("failure"),
            col("freshness_us"),
            col("lost"),
        ])
        .collect()?;
    let mut by_arch: HashMap<String, Vec<Request>> = HashMap::new();
    {
        let arch = strings(&rows, "architecture")?;
        let rep = numbers(&rows, "repetition")?;
        let intended = numbers(&rows, "intended_us")?;
        let latency_us = numbers(&rows, "latency_us")?;
        let ok = flags(&rows, "ok")?;
        let failure = rows.column("failure")?.str()?.clone();
        let freshness = numbers(&rows, "freshness_us")?;
        let lost = flags(&rows, "lost")?;
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
    }

    // The audit's side: stored rows, duplicates and stored rows nobody was
    // told about, per architecture and repetition.
    let acked = files.requests.clone().lazy().filter(col("ok")).select([
        col("repetition"),
        col("architecture"),
        col("event_id"),
        lit(true).alias("acked"),
    ]);
    let keys = [col("repetition"), col("architecture"), col("event_id")];
    let audit = files
        .stored
        .clone()
        .lazy()
        .join(acked, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .group_by([col("architecture"), col("repetition")])
        .agg([
            len().alias("stored"),
            (col("copies").cast(DataType::Int64) - lit(1i64))
                .sum()
                .alias("duplicates"),
            col("acked")
                .is_null()
                .cast(DataType::UInt64)
                .sum()
                .alias("unacknowledged"),
        ])
        .collect()?;
    let mut audit_of: HashMap<(String, u32), (u64, u64, u64)> = HashMap::new();
    {
        let arch = strings(&audit, "architecture")?;
        let rep = numbers(&audit, "repetition")?;
        let stored = numbers(&audit, "stored")?;
        let duplicates = numbers(&audit, "duplicates")?;
        let unacknowledged = numbers(&audit, "unacknowledged")?;
        for (i, arch) in arch.into_iter().enumerate() {
            let n = |v: &[Option<f64>]| v[i].unwrap_or(0.0).max(0.0) as u64;
            audit_of.insert(
                (arch, rep[i].unwrap_or(0.0) as u32),
                (n(&stored), n(&duplicates), n(&unacknowledged)),
            );
        }
    }

    // Scraped consumer state: backlog and breaker, per second.
    let mut scraped: Scraped = HashMap::new();
    let mut backlog_points: HashMap<(String, u32), Vec<(f64, f64)>> = HashMap::new();
    {
        let m = &files.metrics;
        let arch = strings(m, "architecture")?;
        let metric = strings(m, "metric")?;
        let value = numbers(m, "value")?;
        let rep = numbers(m, "repetition")?;
        let t = numbers(m, "t_s")?;
        for i in 0..m.height() {
            let is_backlog = metric[i] == names::CONSUMER_BACKLOG_MESSAGES;
            if !is_backlog && metric[i] != names::CIRCUIT_BREAKER_STATE {
                continue;
            }
            let (Some(t), Some(value)) = (t[i], value[i]) else {
                continue;
            };
            let key = (arch[i].clone(), rep[i].unwrap_or(0.0) as u32);
            let slot = scraped
                .entry(key.clone())
                .or_default()
                .entry(t.max(0.0) as u32)
                .or_default();
            if is_backlog {
                slot.0 = Some(value);
                backlog_points.entry(key).or_default().push((t, value));
            } else {
                slot.1 = Some(slot.1.map_or(value, |b: f64| b.max(value)));
            }
        }
    }
    for points in backlog_points.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }

    let series = build_series(
        &per_second_counts,
        &per_second_failures,
        &scraped,
        experiment.duration.0.as_secs_f64().ceil() as u32,
    )?;

    let economics = &experiment.economics;
    let budget_us = economics.staleness_budget.0.as_micros() as u64;
    let mut architectures = BTreeMap::new();
    let mut freshness_cdf = BTreeMap::new();
    for name in experiment
        .architectures
        .iter()
        .map(|a| a.name().to_string())
    {
        let rows = by_arch.remove(&name).unwrap_or_default();
        let audit = |reps: &[u32]| {
            reps.iter().fold((0, 0, 0), |acc, r| {
                let a = audit_of
                    .get(&(name.clone(), *r))
                    .copied()
                    .unwrap_or_default();
                (acc.0 + a.0, acc.1 + a.1, acc.2 + a.2)
            })
        };
        let all: Vec<&Request> = rows.iter().collect();
        let reps: Vec<u32> = (0..repetition_count as u32).collect();
        let each: Vec<Figures> = reps
            .iter()
            .map(|r| {
                let rows: Vec<&Request> =
                    all.iter().copied().filter(|q| q.repetition == *r).collect();
                let recovery = recovery(rows.iter().copied(), &windows[r]);
                let drain = drain(backlog_points.get(&(name.clone(), *r)), &windows[r]);
                Figures::of(&rows, &windows, audit(&[*r]), budget_us, recovery, drain)
            })
            .collect();
        // Recovery and drain over all repetitions: the worst one's, if every
        // repetition got there.
        let worst = |f: fn(&Figures) -> Option<f64>| {
            each.iter()
                .map(f)
                .try_fold(None, |acc: Option<f64>, v| {
                    v.map(|v| Some(acc.map_or(v, |a| a.max(v))))
                })
                .flatten()
        };
        let pooled = Figures::of(
            &all,
            &windows,
            audit(&reps),
            budget_us,
            worst(|f| f.recovery_s),
            worst(|f| f.drain_s),
        );

        let mut delays: Vec<u64> = rows.iter().filter_map(|r| r.freshness_us).collect();
        delays.sort_unstable();
        freshness_cdf.insert(name.clone(), cdf(&delays));

        let run_rps = rows.len() as f64
            / (experiment.duration.0.as_secs_f64() * repetition_count as f64).max(1e-9);
        let cost_of = |failed_events: u64, repetitions: usize| {
            let orders_lost = failed_events as f64 * economics.orders_lost_per_failed_event;
            let revenue_lost = orders_lost * economics.order_value;
            let per_outage = revenue_lost / repetitions.max(1) as f64;
            let scale = if run_rps > 0.0 {
                economics.production_rps / run_rps
            } else {
                0.0
            };
            Cost {
                currency: economics.currency.clone(),
                failed_events,
                orders_lost,
                revenue_lost,
                per_outage,
                per_year: per_outage * scale * economics.outages_per_year,
                inputs: CostInputs {
                    order_value: economics.order_value,
                    orders_lost_per_failed_event: economics.orders_lost_per_failed_event,
                    production_rps: economics.production_rps,
                    run_rps,
                    outages_per_year: economics.outages_per_year,
                    staleness_budget_s: economics.staleness_budget.0.as_secs_f64(),
                },
            }
        };
        let seed = experiment.seed ^ fnv(&name);
        let estimate = |f: &dyn Fn(&Figures) -> Option<f64>| {
            estimate(&each.iter().filter_map(f).collect::<Vec<_>>(), seed)
        };
        let repetitions_summary = Repetitions {
            count: each.len(),
            error_rate: estimate(&|f| Some(f.totals.error_rate)),
            error_rate_during: estimate(&|f| f.phases.get("during").map(|p| p.error_rate)),
            lost: estimate(&|f| Some(f.lost as f64)),
            latency_p99_ms: estimate(&|f| f.totals.latency_ms.as_ref().map(|l| l.p99)),
            recovery_s: estimate(&|f| f.recovery_s),
            drain_s: estimate(&|f| f.drain_s),
            revenue_lost: estimate(&|f| Some(cost_of(f.failed_events(), 1).revenue_lost)),
        };
        let settle_s = repetitions
            .iter()
            .filter_map(|r| r.drain_s.get(&name).copied().flatten())
            .reduce(f64::max);
        let peak_backlog = reps
            .iter()
            .filter_map(|r| backlog_points.get(&(name.clone(), *r)))
            .flat_map(|points| points.iter().map(|p| p.1))
            .reduce(f64::max);
        // Seconds the breaker read open, in the worst repetition that has one.
        let breaker_open_s = reps
            .iter()
            .filter_map(|r| {
                let seconds = scraped.get(&(name.clone(), *r))?;
                let states = || seconds.values().filter_map(|(_, breaker)| *breaker);
                let open = |b: &f64| BreakerState::from_code(*b) == Some(BreakerState::Open);
                (states().count() > 0).then(|| states().filter(open).count() as f64)
            })
            .reduce(f64::max);
        architectures.insert(
            name.clone(),
            ArchitectureSummary {
                cost: cost_of(pooled.failed_events(), repetition_count),
                totals: pooled.totals,
                phases: pooled.phases,
                acknowledged: pooled.acknowledged,
                stored: pooled.stored,
                lost: pooled.lost,
                duplicates: pooled.duplicates,
                stored_unacknowledged: pooled.stored_unacknowledged,
                stale: pooled.stale,
                freshness_ms: pooled.freshness,
                recovery_s: pooled.recovery_s,
                drain_s: pooled.drain_s,
                settle_s,
                peak_backlog,
                breaker_open_s,
                repetitions: repetitions_summary,
            },
        );
    }
    let hypotheses = experiment
        .hypotheses
        .iter()
        .map(|h| {
            let value = architectures
                .get(&h.architecture)
                .and_then(|a| figure(a, h.metric, h.phase));
            let (limit, passed) = match (h.max, h.min) {
                (Some(max), _) => (format!("≤ {max}"), value.is_some_and(|v| v <= max)),
                (None, Some(min)) => (format!("≥ {min}"), value.is_some_and(|v| v >= min)),
                (None, None) => ("none".into(), false),
            };
            HypothesisResult {
                title: h.title.clone(),
                architecture: h.architecture.clone(),
                metric: h.metric,
                phase: h.phase,
                limit,
                value,
                passed,
            }
        })
        .collect();
    Ok(Analysis {
        summary: Summary {
            schema: run_folder::summary::SCHEMA,
            experiment: experiment.name.clone(),
            run_id: manifest.run_id.clone(),
            status: manifest.status,
            repetitions: repetitions.len(),
            faults,
            architectures,
            hypotheses,
        },
        series,
        freshness_cdf,
    })
}

/// The headline figures of a set of requests (one repetition or all).
struct Figures {
    totals: PhaseSummary,
    phases: BTreeMap<String, PhaseSummary>,
    acknowledged: u64,
    stored: u64,
    lost: u64,
    duplicates: u64,
    stored_unacknowledged: u64,
    stale: u64,
    freshness: Option<Freshness>,
    recovery_s: Option<f64>,
    drain_s: Option<f64>,
}

impl Figures {
    fn of(
        rows: &[&Request],
        windows: &HashMap<u32, Vec<(f64, f64)>>,
        (stored, duplicates, stored_unacknowledged): (u64, u64, u64),
        budget_us: u64,
        recovery_s: Option<f64>,
        drain_s: Option<f64>,
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
        Self {
            totals: PhaseSummary::of(rows.iter().copied()),
            phases: phases
                .into_iter()
                .map(|(phase, rows)| (phase.to_string(), PhaseSummary::of(rows.into_iter())))
                .collect(),
            acknowledged: rows.iter().filter(|r| r.ok).count() as u64,
            stored,
            lost: rows.iter().filter(|r| r.lost).count() as u64,
            duplicates,
            stored_unacknowledged,
            stale,
            freshness: latency(delays()).map(|l| Freshness {
                p50: l.p50,
                p90: l.p90,
                p99: l.p99,
                max: l.max,
                stale_share: ratio(stale, fresh_count),
            }),
            recovery_s,
            drain_s,
        }
    }

    /// Failed, lost and too-late events: what the cost model charges.
    fn failed_events(&self) -> u64 {
        self.totals.failed + self.lost + self.stale
    }
}

fn faults(frame: &DataFrame) -> anyhow::Result<Vec<FaultSummary>> {
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

/// Assembles the per-second frames and the scraped state into series, one
/// entry per second of load (seconds without requests are zero).
fn build_series(
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
        let arch = strings(counts, "architecture")?;
        let rep = numbers(counts, "repetition")?;
        let second = numbers(counts, "second")?;
        let offered = numbers(counts, "offered")?;
        let ok = numbers(counts, "ok")?;
        let columns = [
            "ok_p50_ms",
            "ok_p99_ms",
            "failed_p50_ms",
            "failed_p99_ms",
            "freshness_p50_ms",
            "freshness_p99_ms",
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
            (s.ok_p50_ms, s.ok_p99_ms) = (a[i], b[i]);
            (s.failed_p50_ms, s.failed_p99_ms) = (c[i], d[i]);
            (s.freshness_p50_ms, s.freshness_p99_ms) = (e[i], f[i]);
        }
    }
    {
        let arch = strings(failures, "architecture")?;
        let rep = numbers(failures, "repetition")?;
        let second = numbers(failures, "second")?;
        let class = strings(failures, "failure")?;
        let n = numbers(failures, "n")?;
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
fn cdf(delays: &[u64]) -> Vec<(f64, f64)> {
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

/// Seconds from the end of the last fault of a repetition to the first
/// second from which, for 5 s (or to the end of the load), every second's
/// error rate is within the baseline (the error rate before the first fault)
/// plus one percentage point. `None` without faults or if that never came.
fn recovery<'a>(rows: impl Iterator<Item = &'a Request>, windows: &[(f64, f64)]) -> Option<f64> {
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
    for row in rows {
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
    (0..good.len())
        .find(|&i| good[i..(i + HOLD).min(good.len())].iter().all(|g| g.1))
        .map(|i| good[i].0 as f64)
}

/// Seconds from the end of the last fault until the scraped backlog is back
/// to its level before the first fault (the 95th percentile of its readings
/// then: a few messages are always in flight); `None` without faults,
/// without a backlog, or if it never got back.
fn drain(points: Option<&Vec<(f64, f64)>>, windows: &[(f64, f64)]) -> Option<f64> {
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

/// The figure a hypothesis names.
fn figure(a: &ArchitectureSummary, metric: Metric, phase: Option<Phase>) -> Option<f64> {
    let phase = phase.map(|p| match p {
        Phase::Before => "before",
        Phase::During => "during",
        Phase::After => "after",
    });
    let (error_rate, latency) = match phase {
        Some(p) => {
            let s = a.phases.get(p)?;
            (s.error_rate, s.latency_ms.as_ref())
        }
        None => (a.totals.error_rate, a.totals.latency_ms.as_ref()),
    };
    match metric {
        Metric::ErrorRate => Some(error_rate),
        Metric::LostEvents => Some(a.lost as f64),
        Metric::Duplicates => Some(a.duplicates as f64),
        Metric::LatencyP50Ms => latency.map(|l| l.p50),
        Metric::LatencyP99Ms => latency.map(|l| l.p99),
        Metric::FreshnessP99Ms => a.freshness_ms.as_ref().map(|f| f.p99),
        Metric::RecoveryS => a.recovery_s,
        Metric::DrainS => a.drain_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_fault_windows() {
        let windows = [(10.0, 20.0), (30.0, 40.0)];
        assert_eq!(phase_of(&windows, 5.0), Some("before"));
        assert_eq!(phase_of(&windows, 10.0), Some("during"));
        assert_eq!(phase_of(&windows, 25.0), Some("between"));
        assert_eq!(phase_of(&windows, 40.0), Some("after"));
        assert_eq!(phase_of(&[], 5.0), None);
    }

    #[test]
    fn drain_ends_when_the_backlog_is_back_to_its_usual_level() {
        // A few messages in flight before the fault, one stray spike.
        let mut points: Vec<(f64, f64)> = (0..20).map(|t| (f64::from(t) + 0.5, 3.0)).collect();
        points[5].1 = 45.0;
        points.extend([
            (20.5, 500.0),
            (29.5, 900.0),
            (31.5, 40.0),
            (32.5, 2.0),
            (33.5, 0.0),
        ]);
        assert_eq!(drain(Some(&points), &[(20.0, 30.0)]), Some(2.5));
        assert_eq!(drain(Some(&points), &[]), None);
        assert_eq!(drain(None, &[(20.0, 30.0)]), None);
        points.truncate(22);
        assert_eq!(drain(Some(&points), &[(20.0, 30.0)]), None, "never drained");
    }

    #[test]
    fn the_distribution_ends_at_the_slowest_event() {
        let delays: Vec<u64> = (1..=1000).map(|d| d * 1000).collect();
        let points = cdf(&delays);
        assert_eq!(points.len(), 200);
        assert_eq!(points.last(), Some(&(1000.0, 1.0)));
        assert_eq!(points[0], (5.0, 0.005));
    }
}
