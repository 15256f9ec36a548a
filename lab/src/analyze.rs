//! From a run folder's raw rows to `summary.json`: every headline figure,
//! computed from that run's data only.
//!
//! Per architecture: requests, answers and errors, latency percentiles of
//! successful requests (from the intended send time), the same per phase
//! (before / during / after the faults), the database audit (acknowledged,
//! stored, lost, duplicates, stored without acknowledgement), freshness
//! (acknowledged → stored), recovery after the last fault, drain time, peak
//! backlog, and the cost model; then the scenario's hypotheses.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::Context;
use polars::prelude::*;
use serde::Serialize;
use serde_json::Value as Json;

use crate::experiment::{Experiment, Metric, Phase};

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseSummary {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub error_rate: f64,
    pub latency_ms: Option<Latency>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Freshness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cost {
    pub currency: String,
    /// Failed requests, lost events and events stored later than the
    /// staleness budget.
    pub failed_events: u64,
    pub orders_lost: f64,
    pub revenue_lost: f64,
    /// Scaled to the production rate and the outages per year.
    pub per_year: f64,
}

impl PhaseSummary {
    fn of<'a>(rows: impl Iterator<Item = &'a Request> + Clone) -> Self {
        let requests = rows.clone().count() as u64;
        let ok = rows.clone().filter(|r| r.ok).count() as u64;
        Self {
            requests,
            ok,
            failed: requests - ok,
            error_rate: if requests == 0 {
                0.0
            } else {
                (requests - ok) as f64 / requests as f64
            },
            latency_ms: latency(rows.filter(|r| r.ok).map(|r| r.latency_us)),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ArchitectureSummary {
    /// Requests, answers, error rate and latency over the whole run.
    #[serde(flatten)]
    pub totals: PhaseSummary,
    pub phases: HashMap<String, PhaseSummary>,
    pub acknowledged: u64,
    pub stored: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub stored_unacknowledged: u64,
    pub stale: u64,
    pub freshness_ms: Option<Freshness>,
    pub recovery_s: Option<f64>,
    pub drain_s: Option<f64>,
    pub peak_backlog: Option<f64>,
    pub cost: Cost,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HypothesisResult {
    pub title: String,
    pub architecture: String,
    pub metric: Metric,
    pub phase: Option<Phase>,
    /// `≤ x` or `≥ x`.
    pub limit: String,
    pub value: Option<f64>,
    pub passed: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schema: u32,
    pub experiment: String,
    pub run_id: String,
    pub status: Json,
    pub faults: Vec<Json>,
    pub architectures: HashMap<String, ArchitectureSummary>,
    pub hypotheses: Vec<HypothesisResult>,
    /// Per-second series of the first repetition, for the report's charts.
    #[serde(skip)]
    pub timeline: Timeline,
}

/// Per-second series of one repetition.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// Requests per second by intended send time: (ok, failed), per architecture.
    pub requests: HashMap<String, Vec<(u64, u64)>>,
    /// Scraped consumer backlog: (seconds, messages), per architecture.
    pub backlog: HashMap<String, Vec<(f64, f64)>>,
    /// Fault windows, in seconds.
    pub faults: Vec<(f64, f64)>,
    /// Seconds of load.
    pub seconds: usize,
}

fn read(dir: &Path, file: &str) -> anyhow::Result<DataFrame> {
    let handle =
        std::fs::File::open(dir.join(file)).with_context(|| format!("cannot open {file}"))?;
    ParquetReader::new(handle)
        .finish()
        .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))
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

/// Percentiles of microsecond values, in milliseconds.
fn latency(values_us: impl Iterator<Item = u64>) -> Option<Latency> {
    let mut histogram = crate::load::histogram();
    for value in values_us {
        histogram.saturating_record(value);
    }
    if histogram.is_empty() {
        return None;
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Some(Latency {
        p50: ms(0.5),
        p90: ms(0.9),
        p99: ms(0.99),
        p999: ms(0.999),
        max: histogram.max() as f64 / 1000.0,
    })
}

struct Request {
    repetition: u32,
    intended_s: f64,
    latency_us: u64,
    finished_us: i64,
    ok: bool,
    event_id: String,
}

/// Reads the run folder at `dir` and computes its summary.
pub fn analyze(dir: &Path) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(dir.join("experiment.toml"))
        .context("cannot read experiment.toml")?;
    let experiment: Experiment =
        crate::validate::parse(&text, "experiment.toml").map_err(|problems| {
            anyhow::anyhow!(
                "experiment.toml is invalid: {}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let repetitions = manifest["repetitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let t0_of: HashMap<u32, i64> = repetitions
        .iter()
        .filter_map(|r| Some((r["repetition"].as_u64()? as u32, r["t0_unix_us"].as_i64()?)))
        .collect();

    // Fault windows per repetition, actual times where known.
    let faults = read(dir, "faults.parquet")?;
    let fault_rep = numbers(&faults, "repetition")?;
    let (planned_start, planned_end) = (
        numbers(&faults, "planned_start_s")?,
        numbers(&faults, "planned_end_s")?,
    );
    let (actual_start, actual_end) = (
        numbers(&faults, "actual_start_s")?,
        numbers(&faults, "actual_end_s")?,
    );
    let fault_kind = strings(&faults, "kind")?;
    let fault_verified = flags(&faults, "verified")?;
    let mut windows: HashMap<u32, Vec<(f64, f64)>> = HashMap::new();
    let mut fault_json = Vec::new();
    for i in 0..faults.height() {
        let repetition = fault_rep[i].unwrap_or(0.0) as u32;
        let start = actual_start[i].or(planned_start[i]).unwrap_or(0.0);
        let end = actual_end[i].or(planned_end[i]).unwrap_or(start);
        windows.entry(repetition).or_default().push((start, end));
        fault_json.push(serde_json::json!({
            "repetition": repetition,
            "kind": fault_kind[i],
            "planned_start_s": planned_start[i],
            "planned_end_s": planned_end[i],
            "actual_start_s": actual_start[i],
            "actual_end_s": actual_end[i],
            "verified": fault_verified[i],
        }));
    }
    let phase_of = |repetition: u32, t: f64| -> Option<&'static str> {
        let windows = windows.get(&repetition)?;
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
    };

    // Requests by architecture.
    let requests = read(dir, "requests.parquet")?;
    let (r_rep, r_arch, r_id) = (
        numbers(&requests, "repetition")?,
        strings(&requests, "architecture")?,
        strings(&requests, "event_id")?,
    );
    let (r_intended, r_finished, r_ok) = (
        numbers(&requests, "intended_us")?,
        numbers(&requests, "finished_us")?,
        flags(&requests, "ok")?,
    );
    let mut by_arch: HashMap<String, Vec<Request>> = HashMap::new();
    let seconds = experiment.duration.0.as_secs_f64().ceil() as usize;
    let mut timeline = Timeline {
        faults: windows.get(&0).cloned().unwrap_or_default(),
        seconds,
        ..Timeline::default()
    };
    for i in 0..requests.height() {
        let intended = r_intended[i].unwrap_or(0.0);
        let finished = r_finished[i].unwrap_or(intended);
        if r_rep[i] == Some(0.0) {
            let buckets = timeline
                .requests
                .entry(r_arch[i].clone())
                .or_insert_with(|| vec![(0, 0); seconds.max(1)]);
            let bucket = &mut buckets[((intended / 1e6) as usize).min(seconds.max(1) - 1)];
            if r_ok[i] {
                bucket.0 += 1;
            } else {
                bucket.1 += 1;
            }
        }
        by_arch.entry(r_arch[i].clone()).or_default().push(Request {
            repetition: r_rep[i].unwrap_or(0.0) as u32,
            intended_s: intended / 1e6,
            latency_us: (finished - intended).max(0.0) as u64,
            finished_us: finished as i64,
            ok: r_ok[i],
            event_id: r_id[i].clone(),
        });
    }

    // The audit: (repetition, event id) → stored time, per architecture.
    let stored = read(dir, "stored.parquet")?;
    let (s_rep, s_arch, s_id) = (
        numbers(&stored, "repetition")?,
        strings(&stored, "architecture")?,
        strings(&stored, "event_id")?,
    );
    let (s_at, s_copies) = (
        numbers(&stored, "stored_at_us")?,
        numbers(&stored, "copies")?,
    );
    let mut audit: HashMap<String, HashMap<(u32, String), i64>> = HashMap::new();
    let mut duplicates: HashMap<String, u64> = HashMap::new();
    for i in 0..stored.height() {
        audit.entry(s_arch[i].clone()).or_default().insert(
            (s_rep[i].unwrap_or(0.0) as u32, s_id[i].clone()),
            s_at[i].unwrap_or(0.0) as i64,
        );
        *duplicates.entry(s_arch[i].clone()).or_default() +=
            (s_copies[i].unwrap_or(1.0) as u64).saturating_sub(1);
    }

    // Peak backlog from the scraped metrics.
    let metrics = read(dir, "metrics.parquet")?;
    let (m_arch, m_name, m_value) = (
        strings(&metrics, "architecture")?,
        strings(&metrics, "metric")?,
        numbers(&metrics, "value")?,
    );
    let (m_rep, m_t) = (numbers(&metrics, "repetition")?, numbers(&metrics, "t_s")?);
    let mut peak_backlog: HashMap<String, f64> = HashMap::new();
    for i in 0..metrics.height() {
        if m_name[i] == faultline_services::metrics::names::CONSUMER_BACKLOG_MESSAGES {
            if m_rep[i] == Some(0.0) {
                timeline
                    .backlog
                    .entry(m_arch[i].clone())
                    .or_default()
                    .push((m_t[i].unwrap_or(0.0), m_value[i].unwrap_or(0.0)));
            }
            let peak = peak_backlog.entry(m_arch[i].clone()).or_insert(0.0);
            *peak = peak.max(m_value[i].unwrap_or(0.0));
        }
    }

    let economics = &experiment.economics;
    let budget_us = economics.staleness_budget.0.as_micros() as i64;
    let offered_rps =
        |n: usize| n as f64 / (experiment.duration.as_secs_f64() * repetitions.len().max(1) as f64);
    let mut architectures = HashMap::new();
    for name in experiment
        .architectures
        .iter()
        .map(|a| a.name().to_string())
    {
        let rows = by_arch.remove(&name).unwrap_or_default();
        let empty = HashMap::new();
        let stored_here = audit.get(&name).unwrap_or(&empty);
        let ok = rows.iter().filter(|r| r.ok).count() as u64;
        let requests = rows.len() as u64;
        let mut phases: HashMap<String, Vec<&Request>> = HashMap::new();
        for row in &rows {
            if let Some(phase) = phase_of(row.repetition, row.intended_s) {
                phases.entry(phase.to_string()).or_default().push(row);
            }
        }
        let phase_summaries = phases
            .into_iter()
            .map(|(phase, rows)| (phase, PhaseSummary::of(rows.into_iter())))
            .collect();
        let acked: HashSet<(u32, &str)> = rows
            .iter()
            .filter(|r| r.ok)
            .map(|r| (r.repetition, r.event_id.as_str()))
            .collect();
        let lost = acked
            .iter()
            .filter(|(rep, id)| !stored_here.contains_key(&(*rep, id.to_string())))
            .count() as u64;
        let stored_unacknowledged = stored_here
            .keys()
            .filter(|(rep, id)| !acked.contains(&(*rep, id.as_str())))
            .count() as u64;
        // Freshness: from the acknowledgement to the row in the database.
        let delays: Vec<i64> = rows
            .iter()
            .filter(|r| r.ok)
            .filter_map(|r| {
                let stored_at = stored_here.get(&(r.repetition, r.event_id.clone()))?;
                let acked_at = t0_of.get(&r.repetition)? + r.finished_us;
                Some((stored_at - acked_at).max(0))
            })
            .collect();
        let stale = delays.iter().filter(|d| **d > budget_us).count() as u64;
        let freshness = latency(delays.iter().map(|d| *d as u64)).map(|l| Freshness {
            p50: l.p50,
            p99: l.p99,
            max: l.max,
        });
        let recovery_s = recovery(&rows, &windows);
        let drain_s = repetitions
            .iter()
            .filter_map(|r| r["drain_s"][&name].as_f64())
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            });
        let failed_events = (requests - ok) + lost + stale;
        let orders_lost = failed_events as f64 * economics.orders_lost_per_failed_event;
        let revenue_lost = orders_lost * economics.order_value;
        let scale = if requests == 0 {
            0.0
        } else {
            economics.production_rps / offered_rps(rows.len())
        };
        architectures.insert(
            name.clone(),
            ArchitectureSummary {
                totals: PhaseSummary::of(rows.iter()),
                phases: phase_summaries,
                acknowledged: ok,
                stored: stored_here.len() as u64,
                lost,
                duplicates: duplicates.get(&name).copied().unwrap_or(0),
                stored_unacknowledged,
                stale,
                freshness_ms: freshness,
                recovery_s,
                drain_s,
                peak_backlog: peak_backlog.get(&name).copied(),
                cost: Cost {
                    currency: economics.currency.clone(),
                    failed_events,
                    orders_lost,
                    revenue_lost,
                    per_year: revenue_lost / repetitions.len().max(1) as f64
                        * scale
                        * economics.outages_per_year,
                },
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
    Ok(Summary {
        schema: 1,
        experiment: experiment.name.clone(),
        run_id: manifest["run_id"].as_str().unwrap_or_default().to_string(),
        status: manifest["status"].clone(),
        faults: fault_json,
        architectures,
        hypotheses,
        timeline,
    })
}

/// Seconds from the end of the last fault to the first whole second whose
/// requests failed at most 1 %; `None` without faults or if that never came.
fn recovery(rows: &[Request], windows: &HashMap<u32, Vec<(f64, f64)>>) -> Option<f64> {
    let mut worst: Option<f64> = None;
    for (repetition, windows) in windows {
        let end = windows
            .iter()
            .map(|w| w.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut seconds: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
        for row in rows
            .iter()
            .filter(|r| r.repetition == *repetition && r.intended_s >= end)
        {
            let bucket = seconds
                .entry(((row.intended_s - end).floor()) as i64)
                .or_default();
            bucket.0 += 1;
            bucket.1 += u64::from(!row.ok);
        }
        let recovered = seconds
            .iter()
            .find(|(_, (n, failed))| *n > 0 && (*failed as f64) <= 0.01 * *n as f64)
            .map(|(second, _)| *second as f64)?;
        worst = Some(worst.map_or(recovered, |w| w.max(recovered)));
    }
    worst
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

/// Analyzes the run folder and writes its `summary.json`.
pub fn write_summary(dir: &Path) -> anyhow::Result<Summary> {
    let summary = analyze(dir)?;
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// A few lines of headline figures per architecture, for the terminal.
pub fn headline(summary: &Summary) -> String {
    let mut names: Vec<&String> = summary.architectures.keys().collect();
    names.sort();
    let mut out = format!(
        "{:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>12} {:>12}\n",
        "architecture", "requests", "failed", "errors", "stored", "lost", "fresh p99", "lost value"
    );
    for name in names {
        let a = &summary.architectures[name];
        out.push_str(&format!(
            "{:<16} {:>9} {:>9} {:>7.2}% {:>9} {:>9} {:>12} {:>12}\n",
            name,
            a.totals.requests,
            a.totals.failed,
            100.0 * a.totals.error_rate,
            a.stored,
            a.lost,
            a.freshness_ms
                .as_ref()
                .map_or("-".to_string(), |f| format!("{:.1} s", f.p99 / 1000.0)),
            format!("{:.2} {}", a.cost.revenue_lost, a.cost.currency),
        ));
    }
    for h in &summary.hypotheses {
        out.push_str(&format!(
            "{} {} ({} {:?}: {} {})\n",
            if h.passed { "PASS" } else { "FAIL" },
            h.title,
            h.architecture,
            h.metric,
            h.value.map_or("n/a".to_string(), |v| format!("{v}")),
            h.limit
        ));
    }
    out
}
