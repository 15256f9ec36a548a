//! The run's report: one model built from the run folder's files (summary,
//! scenario, manifest, charts), rendered twice by minijinja: a
//! self-contained `report.html` (charts inline, no network) and a
//! `report.md` whose charts are the SVG files in `charts/` beside it.
//! Also `reports/index.html` (every run of a folder) and the comparison of
//! two runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::analyze::{self, Analysis, RunFiles};
use crate::chart::{self, LineChart};
use crate::experiment::{ArchitectureSettings, Experiment, Metric, Mode, RateShape};
use crate::run_folder::summary::{ArchitectureSummary, Estimate};
use crate::run_folder::{self, Manifest, Summary};

const MARKDOWN: &str = include_str!("../templates/report.md.j2");
const HTML: &str = include_str!("../templates/report.html.j2");
const INDEX: &str = include_str!("../templates/index.html.j2");
const STYLE: &str = include_str!("../templates/style.css");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template("report.md", MARKDOWN)
        .expect("the Markdown template parses");
    env.add_template("report.html", HTML)
        .expect("the HTML template parses");
    env.add_template("index.html", INDEX)
        .expect("the index template parses");
    env.add_global("style", Value::from_safe_string(STYLE.to_string()));
    env.add_function("pct", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v))
    });
    env.add_function("ms", |v: Option<f64>| ms(v));
    env.add_function("secs", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{v:.1} s"))
    });
    env.add_function("money", |v: Option<f64>| {
        v.map_or("-".into(), |v| {
            let whole = format!("{:.0}", v.abs());
            let mut grouped = String::new();
            for (i, c) in whole.chars().enumerate() {
                if i > 0 && (whole.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(c);
            }
            format!("{}{grouped}", if v < 0.0 { "-" } else { "" })
        })
    });
    env.add_function("num", |v: Option<f64>| num(v));
    env.add_function("ci", |e: Option<Value>, kind: String| -> String {
        let Some(e) = e.filter(|e| !e.is_none()) else {
            return "-".into();
        };
        let get = |k: &str| e.get_attr(k).ok().and_then(|v| f64::try_from(v).ok());
        let show = |v: Option<f64>| match kind.as_str() {
            "pct" => v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v)),
            "ms" => ms(v),
            "s" => v.map_or("-".into(), |v| format!("{v:.1} s")),
            _ => num(v),
        };
        match (get("low"), get("high")) {
            (Some(low), Some(high)) => {
                format!(
                    "{} [{} – {}]",
                    show(get("mean")),
                    show(Some(low)),
                    show(Some(high))
                )
            }
            _ => show(get("mean")),
        }
    });
    env
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) => format!("{v:.1} ms"),
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn describe_rate(rate: &RateShape) -> String {
    match rate {
        RateShape::Constant { rps } => format!("{rps} req/s per architecture"),
        RateShape::Ramp { from_rps, to_rps } => {
            format!("{from_rps} → {to_rps} req/s per architecture")
        }
        RateShape::Steps { steps } => format!("{} rate steps per architecture", steps.len()),
        RateShape::Spike {
            base_rps, peak_rps, ..
        } => {
            format!("{base_rps} req/s with a spike to {peak_rps} req/s per architecture")
        }
    }
}

fn describe_architecture(a: &ArchitectureSettings) -> String {
    match a {
        ArchitectureSettings::Rest { pool, .. } => format!(
            "REST: POST → INSERT into PostgreSQL → 201; pool of {}, statement timeout {}",
            pool.size, pool.statement_timeout
        ),
        ArchitectureSettings::Kafka {
            consumer,
            breaker,
            batch_size,
            ..
        } => format!(
            "Kafka: POST → produce (acks=all) → 202; {} consumer in batches of {batch_size}, \
             breaker opens after {} failures for {}{}",
            match consumer {
                Mode::Buffered => "buffered",
                Mode::Drop => "drop",
            },
            breaker.failures,
            breaker.open_for,
            match consumer {
                Mode::Buffered => ", pausing its partitions while open (nothing dropped)",
                Mode::Drop =>
                    ", dropping what fails and what arrives while open (the original policy)",
            }
        ),
    }
}

/// Every chart a report draws (backlog, breaker and freshness only when an
/// architecture has a consumer or stored events), in order; each is
/// `charts/<name>.svg`.
pub const CHARTS: [&str; 8] = [
    "timeline",
    "answers",
    "errors",
    "latency",
    "backlog",
    "breaker",
    "freshness",
    "audit",
];

/// One architecture as the templates see it.
#[derive(Serialize)]
struct ArchitectureView<'a> {
    name: &'a str,
    colour: String,
    description: String,
    s: &'a ArchitectureSummary,
}

/// A chart and where its data come from.
#[derive(Serialize)]
struct ChartView {
    title: String,
    file: String,
    #[serde(skip)]
    svg: String,
    /// The SVG, inline, for the HTML report.
    inline: Value,
}

/// Everything the templates use: built once, rendered as HTML and as Markdown.
#[derive(Serialize)]
pub struct Model<'a> {
    title: String,
    description: &'a str,
    summary: &'a Summary,
    architectures: Vec<ArchitectureView<'a>>,
    phases: Vec<&'static str>,
    economics: &'a crate::experiment::Economics,
    staleness: String,
    duration: String,
    rate: String,
    client_timeout: String,
    repetitions: u32,
    seed: u64,
    manifest: &'a Manifest,
    broker_durable: Option<bool>,
    scenario_toml: &'a str,
    charts: BTreeMap<&'static str, ChartView>,
    version: &'static str,
}

impl Model<'_> {
    /// The model as JSON without the chart bodies, to debug a template.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// Builds the report's model of an analysed run.
pub fn model<'a>(analysis: &'a Analysis, files: &'a RunFiles) -> anyhow::Result<Model<'a>> {
    let summary = &analysis.summary;
    let experiment = &files.experiment;
    let architectures = experiment
        .architectures
        .iter()
        .enumerate()
        .filter_map(|(index, a)| {
            Some(ArchitectureView {
                name: a.name(),
                colour: chart::colour(index),
                description: describe_architecture(a),
                s: summary.architectures.get(a.name())?,
            })
        })
        .collect();
    let charts = charts(analysis, experiment)?
        .into_iter()
        .map(|(name, title, svg)| {
            (
                name,
                ChartView {
                    title,
                    file: format!("charts/{name}.svg"),
                    inline: Value::from_safe_string(svg.clone()),
                    svg,
                },
            )
        })
        .collect();
    let title = if experiment.title.is_empty() {
        experiment.name.clone()
    } else {
        experiment.title.clone()
    };
    Ok(Model {
        title,
        description: experiment.description.trim(),
        summary,
        architectures,
        phases: vec!["before", "during", "between", "after"],
        economics: &experiment.economics,
        staleness: experiment.economics.staleness_budget.to_string(),
        duration: experiment.duration.to_string(),
        rate: describe_rate(&experiment.workload.rate),
        client_timeout: experiment.workload.client_timeout.to_string(),
        repetitions: experiment.repetitions,
        seed: experiment.seed,
        manifest: &files.manifest,
        broker_durable: files.manifest.repetitions.first().map(|r| r.broker_durable),
        scenario_toml: files.experiment_text.trim_end(),
        charts,
        version: faultline_services::VERSION,
    })
}

/// Renders the model as (Markdown, HTML).
pub fn render(model: &Model) -> anyhow::Result<(String, String)> {
    let env = environment();
    let markdown = env
        .get_template("report.md")?
        .render(model)
        .context("rendering report.md")?;
    let html = env
        .get_template("report.html")?
        .render(model)
        .context("rendering report.html")?;
    Ok((markdown, html))
}

/// The per-second series of one repetition as chart points, up to second
/// `until` (the load's end for request figures; the scraped series go on
/// through the drain).
fn points_of(
    analysis: &Analysis,
    name: &str,
    repetition: u32,
    until: f64,
    f: impl Fn(&analyze::Second) -> Option<f64>,
) -> Vec<(f64, f64)> {
    analysis
        .series_of(name, repetition)
        .map(|s| {
            s.seconds
                .iter()
                .filter(|second| f64::from(second.t) < until)
                .filter_map(|second| Some((f64::from(second.t), f(second)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The first repetition's points.
fn points(
    analysis: &Analysis,
    name: &str,
    until: f64,
    f: impl Fn(&analyze::Second) -> Option<f64>,
) -> Vec<(f64, f64)> {
    points_of(analysis, name, 0, until, f)
}

/// Limits of the scenario's hypotheses on `metrics`, as chart rules; one
/// rule per limit, naming every architecture held to it.
fn thresholds(experiment: &Experiment, metrics: &[Metric], scale: f64) -> Vec<(String, f64)> {
    let mut rules: Vec<(String, f64, Vec<&str>)> = Vec::new();
    for h in experiment
        .hypotheses
        .iter()
        .filter(|h| metrics.contains(&h.metric))
    {
        let (sign, limit) = match (h.max, h.min) {
            (Some(max), _) => ("≤", max),
            (None, Some(min)) => ("≥", min),
            (None, None) => continue,
        };
        let label = format!("{sign} {}", num(Some(limit * scale)));
        match rules.iter_mut().find(|r| r.0 == label) {
            Some(rule) => rule.2.push(&h.architecture),
            None => rules.push((label, limit * scale, vec![&h.architecture])),
        }
    }
    rules
        .into_iter()
        .map(|(label, value, names)| (format!("limit {label} ({})", names.join(", ")), value))
        .collect()
}

/// The report's charts: (name, title, SVG).
fn charts(
    analysis: &Analysis,
    experiment: &Experiment,
) -> anyhow::Result<Vec<(&'static str, String, String)>> {
    let summary = &analysis.summary;
    let names: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    let faults = summary.windows(0);
    let x_max = experiment.duration.0.as_secs_f64();
    let first = if summary.repetitions > 1 {
        " (first repetition)"
    } else {
        ""
    };
    let mut out = Vec::new();

    // Timeline strip: the offered load and the faults.
    let offered = names
        .first()
        .map(|name| points(analysis, name, x_max, |s| Some(s.offered as f64)))
        .unwrap_or_default();
    let named: Vec<(f64, f64, String)> = summary
        .faults
        .iter()
        .filter(|f| f.repetition == 0)
        .zip(&faults)
        .map(|(f, w)| (w.0, w.1, f.kind.clone()))
        .collect();
    out.push((
        "timeline",
        "Offered load per architecture and fault periods".to_string(),
        chart::strip(&offered, &named, x_max)?,
    ));

    // Answers per second, one panel per architecture.
    let panels: Vec<(String, Vec<chart::Line>)> = names
        .iter()
        .map(|name| {
            (
                name.to_string(),
                vec![
                    (
                        "ok/s".to_string(),
                        1,
                        points(analysis, name, x_max, |s| Some(s.ok as f64)),
                    ),
                    (
                        "failed/s".to_string(),
                        2,
                        points(analysis, name, x_max, |s| Some(s.failed as f64)),
                    ),
                ],
            )
        })
        .collect();
    let title = format!("Successful and failed requests per second{first}");
    out.push((
        "answers",
        title.clone(),
        chart::panels(&title, "requests/s", &panels, &faults, x_max)?,
    ));

    let over_time =
        |title: &'static str, y: &'static str| LineChart::over_time(title, y, &faults, x_max);
    let lines = |until: f64, f: &dyn Fn(&analyze::Second) -> Option<f64>| -> Vec<chart::Line> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.to_string(), i, points(analysis, name, until, f)))
            .filter(|(_, _, p)| !p.is_empty())
            .collect()
    };
    // The other repetitions, drawn faintly behind the first.
    let others = |until: f64, f: &dyn Fn(&analyze::Second) -> Option<f64>| -> Vec<chart::Line> {
        (1..summary.repetitions as u32)
            .flat_map(|r| {
                names.iter().enumerate().map(move |(i, name)| {
                    (name.to_string(), i, points_of(analysis, name, r, until, f))
                })
            })
            .filter(|(_, _, p)| !p.is_empty())
            .collect()
    };

    let mut latency = over_time(
        "Latency p99 of successful requests, per second (ms, log scale)",
        "ms",
    );
    latency.series = lines(x_max, &|s| s.ok_p99_ms);
    latency.faint = others(x_max, &|s| s.ok_p99_ms);
    latency.log_y = true;
    latency.thresholds = thresholds(experiment, &[Metric::LatencyP99Ms], 1.0);
    out.push((
        "latency",
        latency.title.to_string(),
        chart::lines(&latency)?,
    ));

    let mut errors = over_time(
        if summary.repetitions > 1 {
            "Error rate per second (%); other repetitions faint"
        } else {
            "Error rate per second (%)"
        },
        "% failed",
    );
    let error_rate = |s: &analyze::Second| (s.offered > 0).then_some(100.0 * s.error_rate);
    errors.series = lines(x_max, &error_rate);
    errors.faint = others(x_max, &error_rate);
    errors.thresholds = thresholds(experiment, &[Metric::ErrorRate], 100.0);
    out.push(("errors", errors.title.to_string(), chart::lines(&errors)?));

    let backlog_lines = lines(f64::INFINITY, &|s| s.backlog);
    if !backlog_lines.is_empty() {
        // The scrapes go on while the consumers drain after the load.
        let x_max = backlog_lines
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|p| p.0 + 1.0))
            .fold(x_max, f64::max);
        let over_time =
            |title: &'static str, y: &'static str| LineChart::over_time(title, y, &faults, x_max);
        let mut backlog = over_time(
            "Consumer backlog: events on the topic not yet stored",
            "messages",
        );
        backlog.series = backlog_lines;
        backlog.faint = others(f64::INFINITY, &|s| s.backlog);
        out.push((
            "backlog",
            backlog.title.to_string(),
            chart::lines(&backlog)?,
        ));
        let mut breaker = over_time("Circuit breaker: 0 closed, 1 half-open, 2 open", "state");
        breaker.series = lines(f64::INFINITY, &|s| s.breaker);
        breaker.height = 200;
        out.push((
            "breaker",
            breaker.title.to_string(),
            chart::lines(&breaker)?,
        ));
    }

    let cdf: Vec<chart::Line> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let points = analysis.freshness_cdf.get(*name)?;
            (!points.is_empty()).then(|| {
                (
                    name.to_string(),
                    i,
                    points
                        .iter()
                        .map(|(ms, share)| (*ms, 100.0 * share))
                        .collect(),
                )
            })
        })
        .collect();
    if !cdf.is_empty() {
        let budget_ms = experiment.economics.staleness_budget.0.as_secs_f64() * 1000.0;
        let slowest = cdf
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|p| p.0))
            .fold(budget_ms, f64::max);
        let fastest = cdf
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|p| p.0))
            .fold(f64::INFINITY, f64::min)
            .max(0.1);
        let freshness = LineChart {
            title: "Freshness: share of acknowledged events stored within x ms (log scale)",
            x_label: "acknowledged → stored, ms",
            y_label: "% of events",
            series: cdf,
            faults: &[],
            x_range: (fastest * 0.8, slowest * 1.25),
            thresholds: Vec::new(),
            markers: vec![(
                format!("staleness budget {}", experiment.economics.staleness_budget),
                budget_ms,
            )],
            faint: Vec::new(),
            log_x: true,
            log_y: false,
            legend: plotters::prelude::SeriesLabelPosition::LowerRight,
            height: 280,
        };
        out.push((
            "freshness",
            freshness.title.to_string(),
            chart::lines(&freshness)?,
        ));
    }

    let groups: Vec<(String, Vec<(String, f64)>)> = names
        .iter()
        .filter_map(|name| {
            let a = summary.architectures.get(*name)?;
            Some((
                name.to_string(),
                vec![
                    ("acknowledged".to_string(), a.acknowledged as f64),
                    ("stored".to_string(), a.stored as f64),
                    ("lost".to_string(), a.lost as f64),
                    (
                        format!("stale (> {})", experiment.economics.staleness_budget),
                        a.stale as f64,
                    ),
                    ("failed requests".to_string(), a.totals.failed as f64),
                ],
            ))
        })
        .collect();
    out.push((
        "audit",
        "Loss audit: what each architecture acknowledged, stored, lost".to_string(),
        chart::bars(
            "Loss audit: acknowledged, stored, lost, stale, failed",
            &groups,
        )?,
    ));
    Ok(out)
}

/// Writes the report of an analysed run into its folder `dir`:
/// `report.md`, `charts/*.svg`, `charts/seconds.csv` and `report.html`.
pub fn write(dir: &Path, files: &RunFiles, analysis: &Analysis) -> anyhow::Result<()> {
    let model = model(analysis, files)?;
    let (markdown, html) = render(&model)?;
    let charts = dir.join(run_folder::CHARTS);
    std::fs::create_dir_all(&charts)
        .with_context(|| format!("cannot create {}", charts.display()))?;
    let write = |path: PathBuf, text: &str| {
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for (name, chart) in &model.charts {
        write(charts.join(format!("{name}.svg")), &chart.svg)?;
    }
    write(charts.join("seconds.csv"), &seconds_csv(analysis))?;
    write(dir.join(run_folder::REPORT_MD), &markdown)?;
    write(dir.join(run_folder::REPORT_HTML), &html)?;
    if std::env::var_os("FAULTLINE_REPORT_MODEL").is_some() {
        write(dir.join("report-model.json"), &model.to_json()?)?;
    }
    Ok(())
}

/// The per-second series behind the charts, every architecture and
/// repetition, as CSV.
pub fn seconds_csv(analysis: &Analysis) -> String {
    let mut out = String::from(
        "architecture,repetition,t,offered,ok,failed,error_rate,failures,ok_p50_ms,ok_p99_ms,\
         failed_p50_ms,failed_p99_ms,backlog,breaker,freshness_p50_ms,freshness_p99_ms\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for series in &analysis.series {
        for s in &series.seconds {
            let failures: Vec<String> =
                s.failures.iter().map(|(k, n)| format!("{k}:{n}")).collect();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                series.architecture,
                series.repetition,
                s.t,
                s.offered,
                s.ok,
                s.failed,
                s.error_rate,
                failures.join(";"),
                opt(s.ok_p50_ms),
                opt(s.ok_p99_ms),
                opt(s.failed_p50_ms),
                opt(s.failed_p99_ms),
                opt(s.backlog),
                opt(s.breaker),
                opt(s.freshness_p50_ms),
                opt(s.freshness_p99_ms),
            ));
        }
    }
    out
}

/// A few lines of headline figures per architecture, for the terminal.
pub fn headline(summary: &Summary) -> String {
    let mut out = format!(
        "{:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>12} {:>12}\n",
        "architecture", "requests", "failed", "errors", "stored", "lost", "fresh p99", "lost value"
    );
    for (name, a) in &summary.architectures {
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
            "{} {} ({} {}: {} {})\n",
            if h.passed { "PASS" } else { "FAIL" },
            h.title,
            h.architecture,
            h.metric.name(),
            h.value.map_or("n/a".to_string(), |v| format!("{v}")),
            h.limit
        ));
    }
    out
}

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
    let html = environment()
        .get_template("index.html")?
        .render(minijinja::context! { runs => entries, version => faultline_services::VERSION })?;
    let path = reports.join("index.html");
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The change of one headline figure between two runs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub architecture: String,
    pub figure: &'static str,
    pub baseline: Option<f64>,
    pub candidate: Option<f64>,
    /// `beyond noise`, `within noise`, or `unknown noise` without
    /// repetitions on both sides.
    pub verdict: &'static str,
}

/// Compares the headline figures of two runs, architecture by
/// architecture. A change is beyond noise when the two runs' 95 % intervals
/// do not overlap (both need repetitions).
pub fn compare(baseline: &Path, candidate: &Path) -> anyhow::Result<Vec<Change>> {
    let a = analyze::analyze(baseline)
        .with_context(|| format!("could not analyze {}", baseline.display()))?
        .summary;
    let b = analyze::analyze(candidate)
        .with_context(|| format!("could not analyze {}", candidate.display()))?
        .summary;
    type Pick = fn(&ArchitectureSummary) -> (Option<f64>, Option<&Estimate>);
    let figures: [(&str, Pick); 7] = [
        ("error rate", |s| {
            (Some(s.totals.error_rate), s.repetitions.error_rate.as_ref())
        }),
        ("error rate during faults", |s| {
            (
                s.phases.get("during").map(|p| p.error_rate),
                s.repetitions.error_rate_during.as_ref(),
            )
        }),
        ("lost events", |s| {
            (
                Some(s.lost as f64 / s.repetitions.count.max(1) as f64),
                s.repetitions.lost.as_ref(),
            )
        }),
        ("latency p99 ms", |s| {
            (
                s.totals.latency_ms.as_ref().map(|l| l.p99),
                s.repetitions.latency_p99_ms.as_ref(),
            )
        }),
        ("recovery s", |s| {
            (s.recovery_s, s.repetitions.recovery_s.as_ref())
        }),
        ("drain s", |s| (s.drain_s, s.repetitions.drain_s.as_ref())),
        ("revenue lost per outage", |s| {
            (Some(s.cost.per_outage), s.repetitions.revenue_lost.as_ref())
        }),
    ];
    let mut changes = Vec::new();
    for (name, x) in &a.architectures {
        let Some(y) = b.architectures.get(name) else {
            continue;
        };
        for (figure, pick) in figures {
            let ((va, ea), (vb, eb)) = (pick(x), pick(y));
            if va.is_none() && vb.is_none() {
                // Not a figure of this architecture (e.g. REST has no drain).
                continue;
            }
            let interval = |e: Option<&Estimate>| Some((e?.low?, e?.high?));
            let verdict = match (interval(ea), interval(eb)) {
                (Some((la, ha)), Some((lb, hb))) => {
                    if ha < lb || hb < la {
                        "beyond noise"
                    } else {
                        "within noise"
                    }
                }
                _ => "unknown noise",
            };
            changes.push(Change {
                architecture: name.clone(),
                figure,
                baseline: va,
                candidate: vb,
                verdict,
            });
        }
    }
    Ok(changes)
}

/// The comparison as a Markdown table.
pub fn compare_markdown(baseline: &Path, candidate: &Path, changes: &[Change]) -> String {
    let mut out = format!(
        "# {} → {}\n\n| architecture | figure | baseline | candidate | change | noise |\n|---|---|---:|---:|---:|---|\n",
        baseline.display(),
        candidate.display()
    );
    for c in changes {
        let change = match (c.baseline, c.candidate) {
            (Some(a), Some(b)) if a != 0.0 => format!("{:+.1} %", 100.0 * (b - a) / a.abs()),
            (Some(a), Some(b)) => format!("{:+}", num(Some(b - a))),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            c.architecture,
            c.figure,
            num(c.baseline.map(|v| (v * 10_000.0).round() / 10_000.0)),
            num(c.candidate.map(|v| (v * 10_000.0).round() / 10_000.0)),
            change,
            c.verdict
        ));
    }
    out.push_str(
        "\nA change is beyond noise when the runs' 95 % bootstrap intervals do not overlap; \
         runs without repetitions cannot tell.\n",
    );
    out
}
