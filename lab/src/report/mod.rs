//! The run's report: one model built from the run folder's files (summary,
//! scenario, manifest, charts), rendered twice by minijinja: a
//! self-contained `report.html` (charts inline, no network) and a
//! `report.md` whose charts are the SVG files in `charts/` beside it.
//! Also `reports/index.html` (every run of a folder, [`index`]) and the
//! terminal's headline table. The charts are [`charts`], one method each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use minijinja::Value;
use serde::Serialize;

pub mod answer;
pub mod capacity;
pub mod charts;
pub mod cpu;
mod database;
mod describe;
pub mod format;
mod incomplete;
pub mod index;
mod latency;
pub mod poc;
pub mod readme;
mod repetitions;

use capacity::{CapacityRow, capacity_note, drain_note};
use cpu::{CpuView, cpu_note};
use describe::{describe_architecture, describe_rate};
pub use format::num;
use format::{environment, ms, pct};
pub use index::write_index;

use crate::analyze::Analysis;
use crate::chart;
use crate::experiment::Phase;
use crate::run_folder::RunFiles;
use crate::run_folder::summary::ArchitectureSummary;
use crate::run_folder::{self, Manifest, Summary};

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

/// The chart of a repetition a killed runner never ended
/// (`charts/incomplete.svg`).
pub const INCOMPLETE_CHART: &str = "incomplete";

/// One architecture as the templates see it.
#[derive(Serialize)]
struct ArchitectureView<'a> {
    name: &'a str,
    colour: String,
    description: String,
    /// It has a consumer backlog (a drain time applies).
    backlog: bool,
    /// Its own service offers no backlog gauge: "not measured", not "n/a".
    backlog_unmeasured: bool,
    /// Its own service offers no breaker gauge.
    breaker_unmeasured: bool,
    /// The run had a fault (the times after it apply).
    faulted: bool,
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
    /// With `fault_jitter`: how far each repetition's faults moved, from
    /// the faults as they were planned.
    fault_jitter: Option<String>,
    /// After the header of a column that adds up every repetition, with
    /// more than one: ` (all 3 repetitions)`.
    totals: String,
    /// Where one architecture's cost crosses another's as the staleness
    /// budget grows, in words.
    budget_break_even: Vec<&'a str>,
    /// The report's first paragraph, in sentences (Markdown emphasis).
    answer: Vec<String>,
    /// Latency rises after the fault, explained (Markdown emphasis).
    latency_notes: Vec<String>,
    /// The repetition a killed runner never ended, up to its last flush.
    incomplete: Option<incomplete::IncompleteView>,
    /// The method section's number (the sections before it are left out
    /// when no repetition ended).
    method_section: usize,
    /// Each architecture's database writes per phase.
    database: Vec<database::DatabaseRow>,
    /// Where a rate stored fell short, why (Markdown emphasis).
    database_notes: Vec<String>,
    /// The fewest writes that give a pool's bound.
    few_writes: u64,
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
    /// The driver's bound on connections, said where it is set.
    connections: Option<u32>,
    repetitions: u32,
    /// Control repetitions (the same load, no fault) that ran.
    controls: usize,
    /// The order the repetitions ran in, when controls ran among them.
    run_order: String,
    /// The fault's own change beyond the controls'.
    changes: Vec<latency::ChangeRow>,
    /// Figures followed with no fault, and the sentence on them.
    drift: Vec<latency::DriftRow>,
    drift_note: Option<String>,
    /// How late the driver sent the requests, in words.
    sent_late_note: Option<String>,
    seed: u64,
    manifest: &'a Manifest,
    broker_durable: Option<bool>,
    /// The scenario as written, passwords redacted.
    scenario_toml: String,
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
    let order: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    let architectures = experiment
        .architectures
        .iter()
        .enumerate()
        .filter_map(|(index, a)| {
            Some(ArchitectureView {
                name: a.name(),
                colour: chart::colour(index),
                description: describe_architecture(a, &experiment.workload),
                backlog: a.has_backlog(),
                backlog_unmeasured: a.unmeasured().0,
                breaker_unmeasured: a.unmeasured().1,
                faulted: !summary.faults.is_empty(),
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
        phases: Phase::ALL.map(Phase::name).to_vec(),
        economics: &experiment.economics,
        staleness: experiment.economics.staleness_budget.to_string(),
        fault_jitter: repetitions::faults_varied(experiment, summary),
        totals: if summary.repetitions > 1 {
            format!(" (all {} repetitions)", summary.repetitions)
        } else {
            String::new()
        },
        budget_break_even: summary
            .budget_break_even
            .iter()
            .map(|b| b.sentence.as_str())
            .collect(),
        latency_notes: latency::notes(summary, &order)
            .into_iter()
            .chain(latency::driver_behind_note(
                summary,
                &order,
                experiment.workload.connections,
            ))
            .collect(),
        incomplete: summary
            .incomplete
            .as_ref()
            .map(|i| incomplete::view(i, &order)),
        method_section: match (summary.architectures.is_empty(), experiment.repetitions) {
            (true, _) => 1,
            (false, 1) => 9,
            (false, _) => 10,
        },
        database: database::rows(summary, &order),
        database_notes: database::notes(summary, &order),
        few_writes: crate::analyze::database::FEW_WRITES as u64,
        answer: answer::answer(
            summary,
            &order,
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
        connections: experiment.workload.connections,
        repetitions: experiment.repetitions,
        controls: files
            .manifest
            .repetitions
            .iter()
            .filter(|r| r.control)
            .count(),
        run_order: repetitions::run_order(&files.manifest),
        changes: latency::change_rows(summary, &order),
        drift: latency::drift_rows(summary),
        drift_note: latency::drift_note(summary),
        sent_late_note: latency::sent_late_note(summary, &order, experiment.workload.connections),
        seed: experiment.seed,
        manifest: &files.manifest,
        broker_durable: files.manifest.repetitions.first().map(|r| r.broker_durable),
        scenario_toml: crate::secrets::redact_scenario(
            files.experiment_text.trim_end(),
            experiment,
        ),
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

/// The documented example run's summary, for the report's unit tests.
#[cfg(test)]
fn example_summary() -> Summary {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/example-run/summary.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
            database: None,
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
            ("driver", 0.7),
            ("lab", 0.05),
        ]
        .map(|(p, c)| (p.to_string(), c))
        .into();
        let note = capacity_note("rest", &full);
        assert!(
            note.contains(
                "at 2000 req/s: p99 168.0 ms, 0.00 % failed. There the processes the lab samples \
                 kept **1.8 of the machine's 2 cores** busy (the lab's load driver 0.70, the REST \
                 service 0.60, PostgreSQL 0.40, the rest of the lab 0.05, the fault proxies 0.05): \
                 the machine was full, so \
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
