//! `faultline run`: one scenario from TOML to a run folder of raw data.
//!
//! For each repetition: bring up a fresh stack, drive every architecture on
//! one clock while the faults play out and the metrics are scraped, drain,
//! audit the database, tear down. Rows go to the Parquet files of the run
//! folder as they are collected; `manifest.json` says how it went.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use faultline_services::consumer::Mode;
use faultline_stack::BrokerChoice;
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collect::{self, Latest, MetricRow, ParquetSink, ScrapeTarget, StoredRow};
use crate::experiment::{
    ArchitectureSettings, BrokerSetting, ConsumerSetting, DatabaseSetting, DriverSetting,
    Experiment, FaultSetting, Pool,
};
use crate::fault::{self, FaultKind, FaultRecord, FaultSpec};
use crate::load::{self, Counters, DriverSettings, Row};
use crate::stack::{Architecture, DatabaseChoice, LabStack, StackPlan};

/// How a run is shown and where it goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Parent of the run folder.
    pub out: PathBuf,
    /// Overrides the scenario's driver.
    pub driver: Option<DriverSetting>,
    /// No progress lines.
    pub quiet: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Incomplete,
    Failed,
}

/// What one repetition found besides its rows.
#[derive(Debug, Clone, Serialize)]
pub struct RepetitionSummary {
    pub repetition: u32,
    pub status: Status,
    pub reasons: Vec<String>,
    pub stack_startup_s: f64,
    pub load_end_s: f64,
    /// Seconds from the end of the load until each Kafka architecture had
    /// stored what it acknowledged (or had nothing left to read); `None` if
    /// the drain timed out.
    pub drain_s: HashMap<String, Option<f64>>,
    /// The run's start, as a Unix time in microseconds.
    pub t0_unix_us: i64,
    pub broker: String,
    pub broker_durable: bool,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub schema: u32,
    pub experiment: String,
    pub run_id: String,
    pub status: Status,
    pub reasons: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub seed: u64,
    pub driver: DriverSetting,
    pub architectures: Vec<String>,
    pub versions: Versions,
    pub host: Host,
    pub repetitions: Vec<RepetitionSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Versions {
    pub faultline: String,
    pub rustc: String,
    pub postgres: String,
    pub broker: String,
    pub k6: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub hostname: String,
}

fn host() -> Host {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    Host {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
        kernel: read("/proc/sys/kernel/osrelease"),
        hostname: read("/proc/sys/kernel/hostname"),
    }
}

fn command_version(program: &Path, arg: &str) -> String {
    std::process::Command::new(program)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// The scenario's stack: database and broker choices, and each architecture
/// with the service flags its settings become.
pub fn stack_plan(experiment: &Experiment) -> StackPlan {
    let pool_args = |pool: &Pool| {
        vec![
            format!("--pool-size={}", pool.size),
            format!(
                "--acquire-timeout-ms={}",
                pool.acquire_timeout.0.as_millis()
            ),
            format!(
                "--connect-timeout-ms={}",
                pool.connect_timeout.0.as_millis()
            ),
            format!(
                "--statement-timeout-ms={}",
                pool.statement_timeout.0.as_millis()
            ),
            format!("--idle-timeout-ms={}", pool.idle_timeout.0.as_millis()),
        ]
    };
    let architectures = experiment
        .architectures
        .iter()
        .map(|architecture| match architecture {
            ArchitectureSettings::Rest { name, pool } => {
                let mut args = pool_args(pool);
                args.push(format!("--stored-by={name}"));
                Architecture::Rest {
                    name: name.clone(),
                    args,
                }
            }
            ArchitectureSettings::Kafka {
                name,
                consumer,
                delivery_timeout,
                batch_size,
                batch_linger,
                breaker,
                pool,
            } => {
                let mut consumer_args = pool_args(pool);
                consumer_args.extend([
                    format!("--stored-by={name}"),
                    format!("--batch-size={batch_size}"),
                    format!("--batch-linger-ms={}", batch_linger.0.as_millis()),
                    format!("--breaker-failures={}", breaker.failures),
                    format!("--breaker-open-ms={}", breaker.open_for.0.as_millis()),
                    format!("--breaker-successes={}", breaker.successes),
                ]);
                Architecture::Kafka {
                    name: name.clone(),
                    mode: match consumer {
                        ConsumerSetting::Buffered => Mode::Buffered,
                        ConsumerSetting::Drop => Mode::Drop,
                    },
                    producer_args: vec![format!(
                        "--delivery-timeout-ms={}",
                        delivery_timeout.0.as_millis()
                    )],
                    consumer_args,
                }
            }
        })
        .collect();
    let stack = &experiment.stack;
    StackPlan {
        database: match stack.database {
            DatabaseSetting::Local => DatabaseChoice::Local,
            DatabaseSetting::External => {
                DatabaseChoice::External(stack.database_url.clone().unwrap_or_default())
            }
        },
        broker: match stack.broker {
            BrokerSetting::Auto => BrokerChoice::Auto,
            BrokerSetting::Kafka => BrokerChoice::Kafka,
            BrokerSetting::Nisshi => BrokerChoice::Nisshi,
            BrokerSetting::External => {
                BrokerChoice::External(stack.bootstrap_servers.clone().unwrap_or_default())
            }
        },
        partitions: stack.partitions as i32,
        architectures,
    }
}

/// The scenario's faults on the lab's fault timeline.
pub fn fault_specs(experiment: &Experiment) -> Vec<FaultSpec> {
    experiment
        .faults
        .iter()
        .map(|fault| FaultSpec {
            kind: match &fault.kind {
                FaultSetting::DbCrash => FaultKind::DbCrash,
                FaultSetting::DbStop => FaultKind::DbStop,
                FaultSetting::DbFreeze => FaultKind::DbFreeze,
                FaultSetting::DbLatency { delay, jitter } => FaultKind::DbLatency {
                    delay: delay.0,
                    jitter: jitter.0,
                },
                FaultSetting::DbBlackhole => FaultKind::DbBlackhole,
                FaultSetting::BrokerKill => FaultKind::BrokerKill,
                FaultSetting::ConsumerKill => FaultKind::ConsumerKill,
            },
            start: fault.at.0,
            duration: fault.duration.0,
        })
        .collect()
}

/// The Parquet files of a run folder.
struct Sinks {
    requests: ParquetSink,
    stored: ParquetSink,
    metrics: ParquetSink,
    faults: ParquetSink,
}

impl Sinks {
    fn create(dir: &Path) -> anyhow::Result<Self> {
        let sink = |name: &str| {
            ParquetSink::create(&dir.join(name)).with_context(|| format!("could not create {name}"))
        };
        Ok(Self {
            requests: sink("requests.parquet")?,
            stored: sink("stored.parquet")?,
            metrics: sink("metrics.parquet")?,
            faults: sink("faults.parquet")?,
        })
    }

    fn finish(self, architectures: &[String]) -> anyhow::Result<()> {
        self.requests
            .finish(collect::requests_frame(0, architectures, &[])?)?;
        self.stored.finish(collect::stored_frame(0, 0, &[])?)?;
        self.metrics.finish(collect::metrics_frame(0, &[])?)?;
        self.faults.finish(collect::faults_frame(0, &[])?)?;
        Ok(())
    }
}

/// Prints progress to stderr: a line a second on a terminal (rewritten in
/// place), one every ten seconds otherwise, none when quiet.
#[derive(Clone)]
struct Progress {
    quiet: bool,
    terminal: bool,
}

impl Progress {
    fn say(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r\x1b[K");
        }
        eprintln!("faultline: {line}");
    }

    fn status(&self, tick: u64, line: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else if tick.is_multiple_of(10) {
            eprintln!("{line}");
        }
    }
}

/// Creates the run folder `out/<id>`, or `out/<id>-2`, `-3`, … when a run
/// of the same scenario started in the same second; returns its id and path.
fn create_run_dir(out: &Path, id: &str) -> anyhow::Result<(String, PathBuf)> {
    let unwritable = |dir: &Path| {
        format!(
            "cannot write the run folder {}: choose a folder you can write to with --out DIR \
             (the default is ./reports)",
            dir.display()
        )
    };
    std::fs::create_dir_all(out).with_context(|| unwritable(&out.join(id)))?;
    for n in 1.. {
        let run_id = if n == 1 {
            id.to_string()
        } else {
            format!("{id}-{n}")
        };
        let dir = out.join(&run_id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((run_id, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| unwritable(&dir)),
        }
    }
    unreachable!("the loop returns")
}

/// Runs the scenario at `path`; returns the run folder.
pub async fn run(
    path: &Path,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<PathBuf> {
    let (experiment, text) = match crate::validate::load(path) {
        Ok(loaded) => loaded,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            anyhow::bail!("the scenario is invalid:\n{}", list.join("\n"));
        }
    };
    let progress = Progress {
        quiet: options.quiet,
        terminal: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let driver = options.driver.unwrap_or(experiment.workload.driver);
    let k6 = match driver {
        DriverSetting::K6 => Some(crate::k6::find().context(
            "the k6 driver needs k6: run scripts/setup, use the Nix dev shell, or put k6 on PATH",
        )?),
        DriverSetting::Native => None,
    };
    let started_at = chrono::Utc::now();
    let (run_id, dir) = create_run_dir(
        &options.out,
        &format!(
            "{}-{}",
            started_at.format("%Y%m%dT%H%M%SZ"),
            experiment.name
        ),
    )?;
    let dir = std::path::absolute(&dir)?;
    std::fs::write(dir.join("experiment.toml"), &text)?;
    let architectures: Vec<String> = experiment
        .architectures
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    let postgres_bin = faultline_stack::postgres::find_binaries().ok();
    let mut manifest = Manifest {
        schema: 1,
        experiment: experiment.name.clone(),
        run_id: run_id.clone(),
        status: Status::Incomplete,
        reasons: vec!["the run is in progress".into()],
        started_at: started_at.to_rfc3339(),
        finished_at: None,
        seed: experiment.seed,
        driver,
        architectures: architectures.clone(),
        versions: Versions {
            faultline: faultline_services::VERSION.to_string(),
            rustc: env!("FAULTLINE_RUSTC").to_string(),
            postgres: postgres_bin
                .map(|bin| command_version(&bin.join("postgres"), "--version"))
                .unwrap_or_default(),
            broker: String::new(),
            k6: crate::k6::find().map(|k6| command_version(&k6, "version")),
        },
        host: host(),
        repetitions: Vec::new(),
    };
    let write_manifest = |manifest: &Manifest| -> anyhow::Result<()> {
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_string_pretty(manifest)?,
        )?;
        Ok(())
    };
    write_manifest(&manifest)?;
    progress.say(&format!("run {run_id} → {}", dir.display()));

    let mut sinks = Sinks::create(&dir)?;
    let mut reasons = Vec::new();
    let mut failed = false;
    for repetition in 0..experiment.repetitions {
        if shutdown.is_cancelled() {
            reasons.push(format!("interrupted before repetition {repetition}"));
            break;
        }
        match run_once(
            &experiment,
            repetition,
            k6.as_deref(),
            &dir,
            &mut sinks,
            &progress,
            &shutdown,
        )
        .await
        {
            Ok(summary) => {
                manifest.versions.broker.clone_from(&summary.broker);
                reasons.extend(
                    summary
                        .reasons
                        .iter()
                        .map(|r| format!("repetition {repetition}: {r}")),
                );
                manifest.repetitions.push(summary);
            }
            Err(error) => {
                reasons.push(format!("repetition {repetition} failed: {error:#}"));
                failed = true;
                break;
            }
        }
        write_manifest(&manifest)?;
    }
    sinks.finish(&architectures)?;
    manifest.status = if failed {
        Status::Failed
    } else if reasons.is_empty()
        && manifest.repetitions.len() == experiment.repetitions as usize
        && manifest
            .repetitions
            .iter()
            .all(|r| r.status == Status::Complete)
    {
        Status::Complete
    } else {
        Status::Incomplete
    };
    manifest.reasons = reasons;
    manifest.finished_at = Some(chrono::Utc::now().to_rfc3339());
    write_manifest(&manifest)?;
    match crate::report::write(&dir) {
        Ok(summary) => {
            if !options.quiet {
                eprint!("{}", crate::analyze::headline(&summary));
            }
        }
        Err(error) => progress.say(&format!("could not analyze the run: {error:#}")),
    }
    if let Err(error) = crate::report::write_index(&options.out) {
        progress.say(&format!("could not write the index of runs: {error:#}"));
    }
    progress.say(&format!(
        "run {}{}",
        serde_json::to_value(manifest.status)?
            .as_str()
            .unwrap_or_default(),
        if manifest.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", manifest.reasons.join("; "))
        }
    ));
    Ok(dir)
}

#[allow(clippy::too_many_arguments)]
async fn run_once(
    experiment: &Experiment,
    repetition: u32,
    k6: Option<&Path>,
    run_dir: &Path,
    sinks: &mut Sinks,
    progress: &Progress,
    shutdown: &CancellationToken,
) -> anyhow::Result<RepetitionSummary> {
    let plan = stack_plan(experiment);
    let specs = fault_specs(experiment);
    let label = format!("[{}/{}]", repetition + 1, experiment.repetitions);
    // The stack's processes and data live outside the run folder, which
    // keeps only what the report needs.
    // The runner's pid keeps two runners' stacks apart.
    let stack_dir = PathBuf::from(crate::WORK_DIR).join("runs").join(format!(
        "{}-{}-{repetition}",
        run_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run"),
        std::process::id()
    ));
    let stack_dir = std::path::absolute(&stack_dir)?;
    progress.say(&format!("{label} bringing the stack up"));
    let mut stack = LabStack::up(&plan, &stack_dir, |line| {
        progress.say(&format!("{label} {line}"))
    })
    .await
    .context("could not bring the stack up")?;
    fault::check(&specs, &stack).map_err(|e| anyhow::anyhow!(e))?;
    let broker = stack
        .broker
        .as_ref()
        .map(|b| (b.version(), b.kind().durable()))
        .unwrap_or_default();
    progress.say(&format!(
        "{label} stack ready in {:.1} s; load for {}",
        stack.startup.as_secs_f64(),
        experiment.duration
    ));

    // Targets, one per architecture, in the scenario's order.
    let names: Vec<String> = experiment
        .architectures
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    let mut urls = Vec::new();
    let mut scrape_targets = Vec::new();
    for name in &names {
        if let Some(rest) = stack.rest.iter().find(|r| &r.name == name) {
            urls.push(rest.service.url("/events"));
            scrape_targets.push(ScrapeTarget {
                architecture: name.clone(),
                service: "rest".into(),
                addr: rest.service.addr(),
            });
        } else if let Some(kafka) = stack.kafka.iter().find(|k| &k.name == name) {
            urls.push(kafka.producer.url("/events"));
            for (service, addr) in [
                ("producer", kafka.producer.addr()),
                ("consumer", kafka.consumer.addr()),
            ] {
                scrape_targets.push(ScrapeTarget {
                    architecture: name.clone(),
                    service: service.into(),
                    addr,
                });
            }
        }
    }
    let kafka_names: Vec<String> = stack.kafka.iter().map(|k| k.name.clone()).collect();

    let schedule = Arc::new(experiment.workload.rate.schedule(experiment.duration.0));
    let settings = DriverSettings {
        timeout: experiment.workload.client_timeout.0,
        max_in_flight: 50_000,
        drivers: experiment.workload.drivers,
        seed: experiment.seed ^ u64::from(repetition).wrapping_mul(0x9E37_79B9),
        max_retries: experiment.workload.retries.max_retries,
        backoff: experiment.workload.retries.backoff.0,
    };
    let load_cancel = shutdown.child_token();
    let scrape_cancel = CancellationToken::new();
    let counters: Vec<Arc<Counters>> = names.iter().map(|_| Arc::default()).collect();
    let metric_rows = Arc::new(Mutex::new(Vec::<MetricRow>::new()));
    let latest: Latest = Arc::default();
    let active_faults = Arc::new(Mutex::new(Vec::<String>::new()));

    let t0 = Instant::now();
    let t0_unix_us = chrono::Utc::now().timestamp_micros();
    // The load: the native drivers, or one k6 process for all architectures.
    let load: tokio::task::JoinHandle<Result<Vec<Row>, String>> = match k6 {
        None => {
            let (rows_tx, collector) = load::collector();
            let mut drivers = tokio::task::JoinSet::new();
            for (i, url) in urls.iter().enumerate() {
                drivers.spawn(load::drive(
                    i as u16,
                    url.clone(),
                    schedule.clone(),
                    settings.clone(),
                    t0,
                    load_cancel.clone(),
                    rows_tx.clone(),
                    counters[i].clone(),
                ));
            }
            drop(rows_tx);
            tokio::spawn(async move {
                while drivers.join_next().await.is_some() {}
                collector.await.map_err(|e| e.to_string())
            })
        }
        Some(k6) => {
            let targets: Vec<(String, String)> =
                names.iter().cloned().zip(urls.iter().cloned()).collect();
            let script = stack_dir.join("load.js");
            std::fs::write(&script, crate::k6::script(experiment, &targets))?;
            let csv = stack_dir.join("k6.csv");
            let (k6, names, cancel) = (k6.to_path_buf(), names.clone(), load_cancel.clone());
            tokio::spawn(async move {
                crate::k6::drive(&k6, &script, &csv, cancel).await?;
                crate::k6::rows(&csv, &names, t0_unix_us / 1000)
            })
        }
    };
    let scraper = tokio::spawn(collect::scrape(
        scrape_targets,
        t0,
        scrape_cancel.clone(),
        metric_rows.clone(),
        latest.clone(),
    ));
    let ticker = tokio::spawn(show_progress(
        progress.clone(),
        label.clone(),
        experiment.duration.0,
        names.clone(),
        counters.clone(),
        latest.clone(),
        active_faults.clone(),
        t0,
        scrape_cancel.clone(),
    ));

    // The faults play out in this task, which owns the stack.
    let (fault_records, faults_finished) = {
        let active = active_faults.clone();
        let progress = progress.clone();
        let label = label.clone();
        fault::run_timeline(
            &mut stack,
            &specs,
            t0.into_std(),
            shutdown,
            move |record, started| {
                let mut active = active.lock().expect("faults lock");
                if started {
                    active.push(record.kind.clone());
                } else {
                    active.retain(|k| k != &record.kind);
                }
                let verified = if started {
                    record.verified_start
                } else {
                    record.verified_end
                };
                let at = if started {
                    record.actual_start_s
                } else {
                    record.actual_end_s
                };
                progress.say(&format!(
                    "{label} fault {} {} at {:.1} s{}",
                    record.kind,
                    if started { "injected" } else { "ended" },
                    at.unwrap_or_default(),
                    if verified {
                        ", verified"
                    } else {
                        ", NOT verified"
                    }
                ));
            },
        )
        .await
    };
    let rows = load
        .await
        .context("the load driver failed")?
        .map_err(|e| anyhow::anyhow!("the load driver failed: {e}"))?;
    let load_end_s = t0.elapsed().as_secs_f64();
    let mut reasons = Vec::new();
    if !faults_finished || shutdown.is_cancelled() {
        reasons.push("interrupted".to_string());
    }
    for record in fault_records.iter().filter(|r| !r.verified) {
        reasons.push(if record.actual_start_s.is_none() {
            format!("fault {} never started", record.kind)
        } else {
            format!("fault {} not verified: {}", record.kind, record.detail)
        });
    }

    // Drain: wait until every Kafka architecture stored what it acknowledged,
    // or has nothing left to read.
    let database_url = stack.database.url();
    let mut drain_s: HashMap<String, Option<f64>> =
        kafka_names.iter().map(|n| (n.clone(), None)).collect();
    if !kafka_names.is_empty() && !shutdown.is_cancelled() {
        progress.say(&format!(
            "{label} load done; draining (at most {})",
            experiment.drain_timeout
        ));
        let mut acked: HashMap<&str, u64> = names.iter().map(|n| (n.as_str(), 0)).collect();
        for row in rows.iter().filter(|r| r.outcome.ok()) {
            *acked
                .entry(names[usize::from(row.architecture)].as_str())
                .or_default() += 1;
        }
        let deadline = Instant::now() + experiment.drain_timeout.0;
        let mut idle: HashMap<String, u32> = HashMap::new();
        loop {
            let stored = collect::stored_counts(&database_url)
                .await
                .unwrap_or_default();
            let latest = latest.lock().expect("latest lock").clone();
            for name in &kafka_names {
                if drain_s[name].is_some() {
                    continue;
                }
                let all_stored =
                    stored.get(name).copied().unwrap_or(0) as u64 >= acked[name.as_str()];
                let value = |metric: &str| {
                    latest
                        .get(&(name.clone(), "consumer".into(), metric.into()))
                        .copied()
                };
                let nothing_left = value("consumer_backlog_messages") == Some(0.0)
                    && value("kafka_consumer_lag_seconds") == Some(0.0);
                let count = idle.entry(name.clone()).or_default();
                *count = if nothing_left { *count + 1 } else { 0 };
                if all_stored || *count >= 3 {
                    drain_s.insert(name.clone(), Some(t0.elapsed().as_secs_f64() - load_end_s));
                }
            }
            if drain_s.values().all(Option::is_some)
                || Instant::now() > deadline
                || shutdown.is_cancelled()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        for (name, drained) in &drain_s {
            if drained.is_none() {
                reasons.push(format!(
                    "{name} did not drain within {}",
                    experiment.drain_timeout
                ));
            }
        }
    }
    scrape_cancel.cancel();
    let _ = scraper.await;
    let _ = ticker.await;
    progress.say(&format!("{label} auditing the database"));
    let stored: Vec<StoredRow> = match collect::audit(&database_url).await {
        Ok(stored) => stored,
        Err(error) => {
            reasons.push(format!("audit failed: {error}"));
            Vec::new()
        }
    };
    let startup = stack.startup.as_secs_f64();
    drop(stack);
    let _ = std::fs::remove_dir_all(&stack_dir);

    let metric_rows = std::mem::take(&mut *metric_rows.lock().expect("rows lock"));
    collect::write_batched(&mut sinks.requests, &rows, |chunk| {
        collect::requests_frame(repetition, &names, chunk)
    })?;
    collect::write_batched(&mut sinks.stored, &stored, |chunk| {
        collect::stored_frame(repetition, t0_unix_us, chunk)
    })?;
    collect::write_batched(&mut sinks.metrics, &metric_rows, |chunk| {
        collect::metrics_frame(repetition, chunk)
    })?;
    collect::write_batched(
        &mut sinks.faults,
        &fault_records,
        |chunk: &[FaultRecord]| collect::faults_frame(repetition, chunk),
    )?;
    let ok = rows.iter().filter(|r| r.outcome.ok()).count();
    progress.say(&format!(
        "{label} {} requests ({} ok), {} events stored, {} metric samples",
        rows.len(),
        ok,
        stored.len(),
        metric_rows.len()
    ));
    Ok(RepetitionSummary {
        repetition,
        status: if reasons.is_empty() {
            Status::Complete
        } else {
            Status::Incomplete
        },
        reasons,
        stack_startup_s: startup,
        load_end_s,
        drain_s,
        t0_unix_us,
        broker: broker.0,
        broker_durable: broker.1,
    })
}

/// One status line a second: elapsed time, active faults, and per
/// architecture the last second's ok/failed counts, breaker and backlog.
#[allow(clippy::too_many_arguments)]
async fn show_progress(
    progress: Progress,
    label: String,
    duration: Duration,
    names: Vec<String>,
    counters: Vec<Arc<Counters>>,
    latest: Latest,
    active: Arc<Mutex<Vec<String>>>,
    t0: Instant,
    stop: CancellationToken,
) {
    let mut last: Vec<(u64, u64)> = vec![(0, 0); names.len()];
    let mut tick = tokio::time::interval_at(t0 + Duration::from_secs(1), Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => break,
        }
        n += 1;
        let elapsed = t0.elapsed();
        let phase = if elapsed <= duration { "load" } else { "drain" };
        let faults = active.lock().expect("faults lock").join(",");
        let latest = latest.lock().expect("latest lock").clone();
        let mut parts = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let ok = counters[i].ok.load(Ordering::Relaxed);
            let failed = counters[i].failed.load(Ordering::Relaxed);
            let (last_ok, last_failed) = last[i];
            last[i] = (ok, failed);
            let mut part = format!(
                "{name} ok {}/s fail {}/s",
                ok - last_ok,
                failed - last_failed
            );
            let value = |metric: &str| {
                latest
                    .get(&(name.clone(), "consumer".into(), metric.into()))
                    .copied()
            };
            if let Some(state) = value("circuit_breaker_state") {
                let state = match state as i64 {
                    0 => "closed",
                    1 => "half-open",
                    _ => "open",
                };
                part.push_str(&format!(" breaker {state}"));
            }
            if let Some(backlog) = value("consumer_backlog_messages") {
                part.push_str(&format!(" backlog {backlog:.0}"));
            }
            parts.push(part);
        }
        progress.status(
            n,
            &format!(
                "{label} {phase} {:>4.0}s/{}s{} | {}",
                elapsed.as_secs_f64(),
                duration.as_secs(),
                if faults.is_empty() {
                    String::new()
                } else {
                    format!(" [{faults}]")
                },
                parts.join(" | ")
            ),
        );
    }
    if progress.terminal && !progress.quiet {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_their_own_folders() {
        let out = std::env::temp_dir().join(format!("faultline-run-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let id = "20261125T000000Z-quick";
        let first = create_run_dir(&out, id).unwrap();
        let second = create_run_dir(&out, id).unwrap();
        assert_eq!(first, (id.to_string(), out.join(id)));
        assert_eq!(second.0, format!("{id}-2"));
        assert!(second.1.is_dir());
        let _ = std::fs::remove_dir_all(&out);
    }
}
