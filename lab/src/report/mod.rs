//! The run's report: one model built from the run folder's files (summary,
//! scenario, manifest, charts), rendered twice by minijinja: a
//! self-contained `report.html` (charts inline, no network) and a
//! `report.md` whose charts are the SVG files in `charts/` beside it.
//! Also `reports/index.html` (every run of a folder, [`index`]) and the
//! terminal's headline table. The charts are [`charts`], one method each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::{Environment, Value};
use serde::Serialize;

pub mod answer;
pub mod charts;
pub mod index;
pub mod poc;

pub use index::write_index;

use crate::analyze::{Analysis, RunFiles};
use crate::chart;
use crate::experiment::{ArchitectureSettings, Mode, Pool, RateShape, Span, Workload};
use crate::run_folder::summary::{
    ArchitectureSummary, Capacity, CapacityStep, DrainRate, ProcessCpu,
};
use crate::run_folder::{self, Manifest, Summary};

const MARKDOWN: &str = include_str!("../../templates/report.md.j2");
const HTML: &str = include_str!("../../templates/report.html.j2");
const INDEX: &str = include_str!("../../templates/index.html.j2");
const SWEEP_MARKDOWN: &str = include_str!("../../templates/sweep.md.j2");
const SWEEP_HTML: &str = include_str!("../../templates/sweep.html.j2");
const STYLE: &str = include_str!("../../templates/style.css");

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template("report.md", MARKDOWN)
        .expect("the Markdown template parses");
    env.add_template("report.html", HTML)
        .expect("the HTML template parses");
    env.add_template("index.html", INDEX)
        .expect("the index template parses");
    env.add_template("sweep.md", SWEEP_MARKDOWN)
        .expect("the sweep's Markdown template parses");
    env.add_template("sweep.html", SWEEP_HTML)
        .expect("the sweep's HTML template parses");
    env.add_global("style", Value::from_safe_string(STYLE.to_string()));
    // Generated sentences with Markdown emphasis, for the HTML report:
    // escaped, then `**x**` as <strong>x</strong> and `` `x` `` as <code>x</code>.
    env.add_filter("strong", |text: String| {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let html = wrap_between(&wrap_between(&escaped, "**", "strong"), "`", "code");
        Value::from_safe_string(html)
    });
    // Text from the scenario in Markdown: HTML in it is shown, not rendered.
    env.add_filter("md", |text: String| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    });
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
    env.add_function("times", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("×{v:.2}"))
    });
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

fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// A number as the reports print it: whole numbers without decimals, others with two.
pub fn num(v: Option<f64>) -> String {
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

/// An architecture in words, with every setting that shapes what it does
/// (pool timeouts, batches, breaker, its clients' retries), as the
/// scenario set them or as their defaults.
fn describe_architecture(a: &ArchitectureSettings, workload: &Workload) -> String {
    let pool = |pool: &Pool| {
        format!(
            "pool of {} (connect timeout {}, wait for a connection {}, statement timeout {}, \
             idle connections closed after {})",
            pool.size,
            pool.connect_timeout,
            pool.acquire_timeout,
            pool.statement_timeout,
            pool.idle_timeout
        )
    };
    let retries = a.retries(workload);
    let clients = if retries.max_retries == 0 {
        "clients do not retry".to_string()
    } else {
        format!(
            "clients retry a failure up to {} times, waiting {} doubling to at most {} \
             (the last attempt {} after the first, timeouts aside)",
            retries.max_retries,
            retries.backoff,
            retries.max_backoff,
            Span(retries.total_wait())
        )
    };
    match a {
        ArchitectureSettings::Rest {
            pool: p,
            group_commit,
            ..
        } => format!(
            "REST: POST → INSERT into PostgreSQL → 201{}; {}; {clients}",
            match group_commit {
                Some(group) => format!(
                    " after a group commit of up to {} rows (waiting at most {})",
                    group.max_rows, group.max_wait
                ),
                None => ", one commit per request".to_string(),
            },
            pool(p)
        ),
        ArchitectureSettings::Kafka {
            consumer,
            breaker,
            batch_size,
            batch_linger,
            delivery_timeout,
            pool: p,
            ..
        } => format!(
            "Kafka: POST → produce (acks=all, delivery timeout {delivery_timeout}) → 202; {} \
             consumer in batches of up to {batch_size} (linger {batch_linger}), breaker opens \
             after {} failures for {} and closes after {} successes{}; consumer {}; {clients}",
            match consumer {
                Mode::Buffered => "buffered",
                Mode::Drop => "drop",
            },
            breaker.failures,
            breaker.open_for,
            breaker.successes,
            match consumer {
                Mode::Buffered => ", pausing its partitions while open (nothing dropped)",
                Mode::Drop =>
                    ", dropping what fails and what arrives while open (the original policy)",
            },
            pool(p)
        ),
    }
}

/// Every chart a report draws (backlog, breaker and freshness only when an
/// architecture has a consumer or stored events), in order; each is
/// `charts/<name>.svg`.
pub const CHARTS: [&str; 10] = [
    "timeline",
    "answers",
    "fates",
    "errors",
    "latency",
    "backlog",
    "breaker",
    "freshness",
    "audit",
    "cost_by_budget",
];

/// The chart a stepped rate adds (`charts/capacity.svg`), beside
/// [`CHARTS`].
pub const CAPACITY_CHART: &str = "capacity";

/// One architecture as the templates see it.
#[derive(Serialize)]
struct ArchitectureView<'a> {
    name: &'a str,
    colour: String,
    description: String,
    s: &'a ArchitectureSummary,
}

/// A chart as the templates see it.
#[derive(Serialize)]
pub(crate) struct ChartView {
    pub title: String,
    /// Its SVG file, relative to the report.
    pub file: String,
    #[serde(skip)]
    pub svg: String,
    /// The SVG, inline, for the HTML report.
    inline: Value,
}

impl ChartView {
    pub fn new(title: String, file: String, svg: String) -> Self {
        Self {
            title,
            file,
            inline: Value::from_safe_string(svg.clone()),
            svg,
        }
    }
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
    /// Where one architecture's cost crosses another's as the staleness
    /// budget grows, in words.
    budget_break_even: Vec<String>,
    /// The report's first paragraph, in sentences (Markdown emphasis).
    answer: Vec<String>,
    /// Latency rises after the fault, explained (Markdown emphasis).
    latency_notes: Vec<String>,
    /// Each step of a stepped rate, per architecture.
    capacity: Vec<CapacityRow>,
    /// Each architecture's knee, in words (Markdown emphasis).
    capacity_notes: Vec<String>,
    /// How fast each consumer stored its backlog, in words.
    drain_notes: Vec<String>,
    /// The bounds a step must meet, in words.
    capacity_bounds: String,
    /// What each process of the stack spent per request.
    cpu: Vec<CpuView>,
    /// The services' CPU per request beside PostgreSQL's, in words.
    cpu_note: Option<String>,
    duration: String,
    rate: String,
    client_timeout: String,
    repetitions: u32,
    /// A control repetition (the same load, no fault) ran.
    control: bool,
    seed: u64,
    manifest: &'a Manifest,
    broker_durable: Option<bool>,
    /// The scenario as written, passwords redacted.
    scenario_toml: String,
    charts: BTreeMap<&'static str, ChartView>,
    version: &'static str,
}

/// One step of a stepped rate, as the report's capacity table shows it.
#[derive(Serialize)]
pub struct CapacityRow {
    architecture: String,
    offered: String,
    ok_per_s: String,
    errors: String,
    p50: String,
    p99: String,
    held: bool,
    /// The cores every sampled process kept busy, of the machine's.
    busy: String,
    /// CPU per request of each process, `process µs` joined.
    cpu: String,
}

impl CapacityRow {
    fn all(name: &str, capacity: &Capacity) -> Vec<Self> {
        capacity
            .steps
            .iter()
            .map(|s| Self {
                architecture: name.to_string(),
                offered: format!("{:.0}", s.rps),
                ok_per_s: format!("{:.0}", s.ok_per_s),
                errors: pct(s.error_rate),
                p50: ms(s.latency_ms.as_ref().map(|l| l.p50)),
                p99: ms(s.latency_ms.as_ref().map(|l| l.p99)),
                held: s.held,
                busy: if s.cpu_cores.is_empty() {
                    "-".into()
                } else {
                    format!(
                        "{:.2} of {}",
                        s.cpu_cores.values().sum::<f64>(),
                        capacity.machine_cores
                    )
                },
                cpu: s
                    .cpu_us_per_request
                    .iter()
                    .map(|(process, us)| format!("{process} {us:.0} µs"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .collect()
    }
}

/// An architecture's knee, what the step past it looked like, and the knee
/// as a ratio to what PostgreSQL committed alone in the same run.
fn capacity_note(name: &str, capacity: &Capacity) -> String {
    let knee = knee_note(name, capacity);
    let Some(reference) = &capacity.reference else {
        return knee;
    };
    let commits = format!(
        "the {} single-row commits a second PostgreSQL made alone before the load \
         ({} connections, {:.0} s{})",
        answer::count(reference.commits_per_s.round() as u64),
        reference.clients,
        reference.seconds,
        if reference.repetitions > 1 {
            format!(", the mean of {} repetitions", reference.repetitions)
        } else {
            String::new()
        }
    );
    // Every step held: the knee lies at the highest step or above.
    let at_least = if capacity.first_missed_rps.is_none() {
        "at least "
    } else {
        ""
    };
    let note = match reference.knee_ratio {
        Some(ratio) => format!(
            "{knee} Its knee is {at_least}**{ratio:.2}×** {commits}, a ratio that carries to \
             another machine."
        ),
        None => format!("{knee} For comparison, {commits}."),
    };
    let mut ways = Vec::new();
    if let Some(multi) = reference.multi_row_rows_per_s.filter(|r| *r > 0.0) {
        ways.push(format!(
            "{} rows a second in commits of {} rows{}",
            answer::count(multi.round() as u64),
            reference.rows_per_commit,
            capacity
                .knee_rps
                .map(|knee| format!(" (the knee is {at_least}**{:.2}×** that)", knee / multi))
                .unwrap_or_default()
        ));
    }
    if let Some(copy) = reference.copy_rows_per_s {
        ways.push(format!(
            "{} rows a second by COPY of {} rows a transaction from one connection",
            answer::count(copy.round() as u64),
            answer::count(u64::from(reference.copy_rows))
        ));
    }
    if ways.is_empty() {
        note
    } else {
        format!("{note} Alone, it also stored {}.", ways.join(", and "))
    }
}

/// How fast an architecture stored its backlog, beside PostgreSQL's own
/// COPY rate when the run measured it.
fn drain_note(name: &str, drain: &DrainRate) -> String {
    use answer::count;
    let stored = format!(
        "**{name}** stored the backlog of the fault ({} events acknowledged before it was over) \
         at **{} events a second** over {:.2} s{}",
        count(drain.backlog_events.round() as u64),
        count(drain.events_per_s.round() as u64),
        drain.seconds,
        if drain.repetitions > 1 {
            format!(", the mean of {} repetitions", drain.repetitions)
        } else {
            String::new()
        }
    );
    match (drain.copy_ratio, drain.copy_rows_per_s) {
        (Some(ratio), Some(copy)) => format!(
            "{stored}: **{ratio:.2}×** the {} rows a second PostgreSQL took alone by COPY before \
             the load, a ratio that carries to another machine.",
            count(copy.round() as u64)
        ),
        _ => format!(
            "{stored}. With `capacity = {{ reference = \"5s\" }}` the run also measures how \
             fast PostgreSQL alone takes rows by COPY, to set this beside."
        ),
    }
}

/// An architecture's knee, and what the step past it looked like.
fn knee_note(name: &str, capacity: &Capacity) -> String {
    let step = |rps: f64| capacity.steps.iter().find(|s| s.rps == rps);
    let how = |s: &CapacityStep| {
        format!(
            "p99 {}, {} failed",
            ms(s.latency_ms.as_ref().map(|l| l.p99)),
            pct(s.error_rate)
        )
    };
    let held = match capacity.knee_rps.and_then(step) {
        Some(knee) => format!(
            "**{name}** held up to **{:.0} req/s** ({})",
            knee.rps,
            how(knee)
        ),
        None => format!("**{name}** held none of the steps"),
    };
    let Some(missed) = capacity.first_missed_rps.and_then(step) else {
        return format!("{held}, the highest step offered: its knee lies higher.");
    };
    let mut missed_at = format!("{held}; at {:.0} req/s: {}.", missed.rps, how(missed));
    if let Some(full) = full_machine(name, missed, capacity.machine_cores) {
        missed_at = format!("{missed_at} {full}");
    }
    // A higher step held again (the steps are in rising order): the miss
    // may have been a passing stall.
    match capacity
        .steps
        .iter()
        .rev()
        .find(|s| s.held && s.rps > missed.rps)
    {
        Some(again) => format!(
            "{missed_at} Yet a higher step held: {:.0} req/s ({}); the miss may be a passing stall \
             (a checkpoint, a pause of the machine), not the limit; one run cannot tell, \
             repetitions can.",
            again.rps,
            how(again)
        ),
        None => missed_at,
    }
}

/// The share of the machine's cores the sampled processes keep busy from
/// which a step's miss is the machine's: the kernel's own work and every
/// process not sampled take the rest.
const FULL_MACHINE: f64 = 0.85;

/// A sentence saying the machine was full at `step`, and what filled it,
/// when the sampled processes kept [`FULL_MACHINE`] of its cores busy.
fn full_machine(name: &str, step: &CapacityStep, machine_cores: u32) -> Option<String> {
    let busy: f64 = step.cpu_cores.values().sum();
    if machine_cores == 0 || busy < FULL_MACHINE * f64::from(machine_cores) {
        return None;
    }
    let mut parts: Vec<(&f64, &String)> = step.cpu_cores.iter().map(|(p, c)| (c, p)).collect();
    parts.sort_by(|a, b| b.0.total_cmp(a.0));
    let parts: Vec<String> = parts
        .into_iter()
        .filter(|(cores, _)| **cores >= 0.05)
        .map(|(cores, process)| format!("{} {cores:.2}", short_process(process)))
        .collect();
    let lab = step.cpu_cores.get("lab").copied().unwrap_or(0.0);
    Some(format!(
        "There the processes the lab samples kept **{busy:.1} of the machine's {machine_cores} \
         cores** busy ({}): the machine was full, so this knee is the machine's as much as \
         {name}'s{}.",
        parts.join(", "),
        if lab >= 0.25 * busy {
            "; the lab's own load driver took a large share, and a driver on another machine \
             would leave it to the stack"
        } else {
            ""
        }
    ))
}

/// A process's name in a sentence.
fn short_process(process: &str) -> &str {
    match process {
        "rest" => "the REST service",
        "postgresql" => "PostgreSQL",
        "proxy" => "the fault proxies",
        "lab" => "the lab's load driver",
        other => other,
    }
}

/// One process's CPU, as the report's table shows it.
#[derive(Serialize)]
pub struct CpuView {
    process: &'static str,
    architecture: String,
    cpu_s: String,
    cores: String,
    requests: u64,
    per_request: String,
    /// Per request, beside PostgreSQL's per request.
    to_postgresql: String,
}

impl CpuView {
    fn new(cpu: &ProcessCpu, all: &[ProcessCpu]) -> Self {
        let postgresql = all
            .iter()
            .find(|c| c.process == "postgresql")
            .and_then(|c| c.us_per_request)
            .filter(|us| *us > 0.0);
        Self {
            process: process_label(&cpu.process),
            architecture: cpu
                .architecture
                .clone()
                .unwrap_or_else(|| "every one".into()),
            cpu_s: format!("{:.1} s", cpu.cpu_s),
            cores: format!("{:.2}", cpu.cores),
            requests: cpu.requests,
            per_request: cpu
                .us_per_request
                .map_or("-".into(), |us| format!("{us:.0} µs")),
            to_postgresql: match (cpu.us_per_request, postgresql) {
                (Some(us), Some(pg)) => format!("×{:.2}", us / pg),
                _ => "-".into(),
            },
        }
    }
}

fn process_label(process: &str) -> &'static str {
    match process {
        "rest" => "REST service",
        "producer" => "producer",
        "consumer" => "consumer",
        "postgresql" => "PostgreSQL (every backend)",
        "broker" => "broker",
        "proxy" => "fault proxies (the lab's thread for them)",
        "lab" => "the lab (load driver, scraping)",
        _ => "other",
    }
}

/// Each service's CPU per request beside PostgreSQL's, in one sentence.
fn cpu_note(cpu: &[ProcessCpu]) -> Option<String> {
    let postgresql = cpu
        .iter()
        .find(|c| c.process == "postgresql")?
        .us_per_request
        .filter(|us| *us > 0.0)?;
    let services: Vec<String> = cpu
        .iter()
        .filter_map(|c| {
            let us = c.us_per_request?;
            let whose = match (c.architecture.as_deref(), c.process.as_str()) {
                (Some(architecture), "rest") => format!("{architecture}'s service"),
                (Some(architecture), process) => format!("{architecture}'s {process}"),
                (None, "proxy") if us > 0.0 => "the fault proxies".to_string(),
                (None, _) => return None,
            };
            Some(format!("**×{:.2}** for {whose}", us / postgresql))
        })
        .collect();
    (!services.is_empty()).then(|| {
        format!(
            "Per request, beside the {postgresql:.0} µs PostgreSQL spent: {}. Machines differ twofold in speed; these ratios, measured on one machine in one run, travel better than the microseconds.",
            services.join(", ")
        )
    })
}

impl Model<'_> {
    /// The model as JSON without the chart bodies, to debug a template.
    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}

/// For every pair of architectures, where their costs cross as the
/// staleness budget grows (or that they do not).
fn budget_break_even(experiment: &crate::experiment::Experiment, summary: &Summary) -> Vec<String> {
    use crate::sweep::crossing::{Subject, Value, break_even};
    let show = |s: f64| {
        if s >= 120.0 {
            format!("{:.1} min", s / 60.0)
        } else {
            format!("{s:.1} s")
        }
    };
    let subject = Subject {
        parameter: "staleness budget",
        show: &show,
        less: "costs less than",
        same: "cost the same",
        article: "a ",
        joiner: " of ",
        range: "the budgets shown",
    };
    let curves: Vec<(&str, Vec<(f64, Value)>)> = experiment
        .architectures
        .iter()
        .filter_map(|a| {
            let costs = &summary
                .architectures
                .get(a.name())?
                .cost_by_staleness_budget;
            let values = costs
                .iter()
                .map(|c| {
                    let value = Value {
                        mean: c.per_outage,
                        interval: None,
                    };
                    (c.staleness_budget_s, value)
                })
                .collect();
            Some((a.name(), values))
        })
        .collect();
    let mut sentences = Vec::new();
    for (i, (a, a_curve)) in curves.iter().enumerate() {
        for (b, b_curve) in &curves[i + 1..] {
            let xs: Vec<f64> = a_curve.iter().map(|p| p.0).collect();
            let values = |curve: &[(f64, Value)]| curve.iter().map(|p| p.1).collect::<Vec<_>>();
            let (_, _, sentence) =
                break_even(&subject, &xs, (a, &values(a_curve)), (b, &values(b_curve)));
            sentences.push(sentence);
        }
    }
    sentences
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
                description: describe_architecture(a, &experiment.workload),
                s: summary.architectures.get(a.name())?,
            })
        })
        .collect();
    let charts = charts::Charts::new(analysis, experiment)
        .draw()?
        .into_iter()
        .map(|(name, title, svg)| {
            (
                name,
                ChartView::new(title, format!("charts/{name}.svg"), svg),
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
        budget_break_even: budget_break_even(experiment, summary),
        latency_notes: answer::notes(
            summary,
            &experiment
                .architectures
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>(),
        ),
        answer: answer::answer(
            summary,
            &experiment
                .architectures
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>(),
            &experiment.economics.staleness_budget.to_string(),
        ),
        cpu: summary
            .cpu
            .iter()
            .map(|c| CpuView::new(c, &summary.cpu))
            .collect(),
        cpu_note: cpu_note(&summary.cpu),
        capacity: experiment
            .architectures
            .iter()
            .filter_map(|a| {
                let capacity = summary.architectures.get(a.name())?.capacity.as_ref()?;
                Some(CapacityRow::all(a.name(), capacity))
            })
            .flatten()
            .collect(),
        capacity_notes: experiment
            .architectures
            .iter()
            .filter_map(|a| {
                let capacity = summary.architectures.get(a.name())?.capacity.as_ref()?;
                Some(capacity_note(a.name(), capacity))
            })
            .collect(),
        drain_notes: experiment
            .architectures
            .iter()
            .filter_map(|a| {
                let drain = summary.architectures.get(a.name())?.drain_rate.as_ref()?;
                Some(drain_note(a.name(), drain))
            })
            .collect(),
        capacity_bounds: format!(
            "at most {} of the requests failed and a p99 of at most {}",
            pct(experiment.capacity.max_error_rate),
            ms(Some(experiment.capacity.max_p99.0.as_secs_f64() * 1000.0))
        ),
        duration: experiment.duration.to_string(),
        rate: describe_rate(&experiment.workload.rate),
        client_timeout: experiment.workload.client_timeout.to_string(),
        repetitions: experiment.repetitions,
        control: summary.architectures.values().any(|a| a.control.is_some()),
        seed: experiment.seed,
        manifest: &files.manifest,
        broker_durable: files.manifest.repetitions.first().map(|r| r.broker_durable),
        scenario_toml: crate::plan::redact(
            files.experiment_text.trim_end(),
            &crate::plan::secrets(experiment),
        ),
        charts,
        version: faultline_services::VERSION,
    })
}

/// `text` with every second stretch between `mark`s wrapped in `<tag>`:
/// `a **b** c` → `a <strong>b</strong> c`.
fn wrap_between(text: &str, mark: &str, tag: &str) -> String {
    text.split(mark)
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<{tag}>{part}</{tag}>")
            } else {
                part.to_string()
            }
        })
        .collect()
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
         failed_p50_ms,failed_p99_ms,backlog,breaker,freshness_p50_ms,freshness_p99_ms,lost,late\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for series in &analysis.series {
        for s in &series.seconds {
            let failures: Vec<String> =
                s.failures.iter().map(|(k, n)| format!("{k}:{n}")).collect();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
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
                s.lost,
                s.late,
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

#[cfg(test)]
mod tests {
    use super::{capacity_note, cpu_note, describe_architecture, drain_note};
    use crate::run_folder::summary::{
        Capacity, CapacityReference, CapacityStep, DrainRate, Latency, ProcessCpu,
    };

    #[test]
    fn a_capacity_note_names_the_knee_and_a_step_held_again_above_a_miss() {
        let step = |rps: f64, p99: f64| CapacityStep {
            rps,
            from_s: 0.0,
            to_s: 1.0,
            requests: 100,
            ok_per_s: rps,
            error_rate: 0.0,
            latency_ms: Some(Latency {
                p50: 1.0,
                p90: 1.0,
                p99,
                p999: p99,
                max: p99,
            }),
            cpu_us_per_request: Default::default(),
            cpu_cores: Default::default(),
            held: p99 <= 100.0,
        };
        let capacity = |p99s: [f64; 4]| Capacity {
            max_p99_ms: 100.0,
            max_error_rate: 0.01,
            steps: [1000.0, 2000.0, 3000.0, 4000.0]
                .into_iter()
                .zip(p99s)
                .map(|(rps, p99)| step(rps, p99))
                .collect(),
            knee_rps: None,
            first_missed_rps: None,
            reference: None,
            machine_cores: 2,
        };
        let mut stall = capacity([5.0, 168.0, 9.0, 12.0]);
        (stall.knee_rps, stall.first_missed_rps) = (Some(1000.0), Some(2000.0));
        let note = capacity_note("rest", &stall);
        assert!(
            note.starts_with("**rest** held up to **1000 req/s**"),
            "{note}"
        );
        assert!(note.contains("at 2000 req/s: p99 168"), "{note}");
        assert!(
            note.contains("Yet a higher step held: 4000 req/s (p99 12"),
            "{note}"
        );
        let mut limit = capacity([5.0, 168.0, 300.0, 900.0]);
        (limit.knee_rps, limit.first_missed_rps) = (Some(1000.0), Some(2000.0));
        let note = capacity_note("rest", &limit);
        assert!(!note.contains("higher step"), "{note}");
        assert!(!note.contains("PostgreSQL alone"), "{note}");
        assert!(!note.contains("machine was full"), "{note}");

        // The first missed step filled the machine: the note says so, and
        // whether the lab's driver took a large share of it.
        let mut full = limit.clone();
        full.steps[1].cpu_cores = [
            ("rest", 0.6),
            ("postgresql", 0.4),
            ("proxy", 0.05),
            ("lab", 0.75),
        ]
        .map(|(p, c)| (p.to_string(), c))
        .into();
        let note = capacity_note("rest", &full);
        assert!(
            note.contains(
                "at 2000 req/s: p99 168.0 ms, 0.00 % failed. There the processes the lab samples \
                 kept **1.8 of the machine's 2 cores** busy (the lab's load driver 0.75, the REST \
                 service 0.60, PostgreSQL 0.40, the fault proxies 0.05): the machine was full, so \
                 this knee is the machine's as much as rest's; the lab's own load driver took a \
                 large share"
            ),
            "{note}"
        );
        full.steps[1].cpu_cores = [("rest", 1.0), ("postgresql", 0.6), ("lab", 0.2)]
            .map(|(p, c)| (p.to_string(), c))
            .into();
        let note = capacity_note("rest", &full);
        assert!(
            note.contains("machine was full") && !note.contains("load driver took"),
            "{note}"
        );
        full.steps[1].cpu_cores.insert("rest".into(), 0.8);
        assert!(!capacity_note("rest", &full).contains("machine was full"));

        // With the same run's reference: the knee as a ratio to it.
        limit.reference = Some(CapacityReference {
            commits_per_s: 800.0,
            clients: 8,
            seconds: 5.0,
            repetitions: 2,
            knee_ratio: Some(1.25),
            multi_row_rows_per_s: None,
            rows_per_commit: 50,
            copy_rows_per_s: None,
            copy_rows: 10_000,
        });
        let note = capacity_note("rest", &limit);
        assert!(
            note.ends_with(
                "Its knee is **1.25×** the 800 single-row commits a second PostgreSQL made \
                 alone before the load (8 connections, 5 s, the mean of 2 repetitions), a \
                 ratio that carries to another machine."
            ),
            "{note}"
        );
        // The other ways PostgreSQL stored rows alone, when measured.
        let mut both = limit.clone();
        both.reference.as_mut().unwrap().multi_row_rows_per_s = Some(4000.0);
        both.reference.as_mut().unwrap().copy_rows_per_s = Some(20_000.0);
        let note = capacity_note("rest", &both);
        assert!(
            note.ends_with(
                "a ratio that carries to another machine. Alone, it also stored 4,000 rows a \
                 second in commits of 50 rows (the knee is **0.25×** that), and 20,000 rows a \
                 second by COPY of 10,000 rows a transaction from one connection."
            ),
            "{note}"
        );
        let mut all = capacity([5.0, 6.0, 7.0, 8.0]);
        all.knee_rps = Some(4000.0);
        all.reference = limit.reference.clone();
        let note = capacity_note("rest", &all);
        assert!(
            note.contains("Its knee is at least **1.25×** the 800"),
            "{note}"
        );
        let mut never = capacity([500.0, 600.0, 700.0, 800.0]);
        never.first_missed_rps = Some(1000.0);
        never.reference = limit.reference.clone().map(|r| CapacityReference {
            knee_ratio: None,
            repetitions: 1,
            ..r
        });
        let note = capacity_note("rest", &never);
        assert!(
            note.ends_with(
                "For comparison, the 800 single-row commits a second PostgreSQL made alone \
                 before the load (8 connections, 5 s)."
            ),
            "{note}"
        );
    }

    #[test]
    fn a_drain_note_sets_the_rate_beside_copy_when_the_run_measured_it() {
        let mut drain = DrainRate {
            events_per_s: 45_123.4,
            backlog_events: 60_000.0,
            seconds: 1.5,
            repetitions: 1,
            copy_rows_per_s: None,
            copy_ratio: None,
        };
        let note = drain_note("kafka", &drain);
        assert!(
            note.starts_with(
                "**kafka** stored the backlog of the fault (60,000 events acknowledged before it \
                 was over) at **45,123 events a second** over 1.50 s. With `capacity"
            ),
            "{note}"
        );
        (drain.copy_rows_per_s, drain.copy_ratio) = (Some(90_000.0), Some(0.5));
        drain.repetitions = 2;
        assert_eq!(
            drain_note("kafka", &drain),
            "**kafka** stored the backlog of the fault (60,000 events acknowledged before it was \
             over) at **45,123 events a second** over 1.50 s, the mean of 2 repetitions: \
             **0.50×** the 90,000 rows a second PostgreSQL took alone by COPY before the load, \
             a ratio that carries to another machine."
        );
    }

    #[test]
    fn the_cpu_note_sets_each_service_and_the_fault_proxies_beside_postgresql() {
        let process = |process: &str, architecture: Option<&str>, us: f64| ProcessCpu {
            process: process.into(),
            architecture: architecture.map(Into::into),
            cpu_s: us,
            sampled_s: 10.0,
            requests: 1_000_000,
            us_per_request: Some(us),
            cores: us / 10.0,
        };
        let cpu = [
            process("rest", Some("rest"), 50.0),
            process("consumer", Some("kafka"), 10.0),
            process("postgresql", None, 200.0),
            process("proxy", None, 40.0),
            process("lab", None, 100.0),
        ];
        let note = cpu_note(&cpu).unwrap();
        assert!(
            note.starts_with(
                "Per request, beside the 200 µs PostgreSQL spent: **×0.25** for rest's \
                 service, **×0.05** for kafka's consumer, **×0.20** for the fault proxies."
            ),
            "{note}"
        );
        // Without PostgreSQL's figure there is nothing to set beside.
        assert!(cpu_note(&cpu[..1]).is_none());
    }

    #[test]
    fn an_architecture_is_labelled_with_what_the_scenario_set() {
        let experiment = crate::validate::parse(
            "name = \"l\"\n\
             [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
             pool = { size = 10, connect_timeout = \"3s\", idle_timeout = \"5s\" }\n\
             [[architectures]]\nkind = \"rest\"\nname = \"rest-retry\"\n\
             retries = { max_retries = 3, backoff = \"1s\", max_backoff = \"3s\" }\n",
            "l.toml",
        )
        .unwrap();
        let [rest, retry] = [0, 1]
            .map(|i| describe_architecture(&experiment.architectures[i], &experiment.workload));
        assert!(rest.contains("connect timeout 3s"), "{rest}");
        assert!(rest.contains("idle connections closed after 5s"), "{rest}");
        assert!(rest.contains("clients do not retry"), "{rest}");
        assert!(
            retry.contains(
                "retry a failure up to 3 times, waiting 1s doubling to at most 3s \
                 (the last attempt 6s after the first"
            ),
            "{retry}"
        );
    }
}
