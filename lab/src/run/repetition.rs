//! One repetition of a run, as a struct with one method per stage:
//! `up` → `reference` (when the scenario asks for it) → `drive` → `drain`
//! → `audit` → `down` → `record`.
//! The stack always goes down, whatever a stage in between returned.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use faultline_services::metrics::names;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Sinks;
use super::drain::{Drain, Poll};
use super::progress::{Progress, Ticker, backlog_value, consumer_value};
use crate::collect::{self, Latest, ScrapeTarget};
use crate::fault;
use crate::load::{self, Counters};
use crate::plan::Plan;
use crate::reference;
use crate::run_folder::Reference;
use crate::run_folder::rows::{FaultRecord, MetricRow, Row, StoredRow};
use crate::run_folder::{FAULTS, METRICS, REQUESTS, STORED, parts};
use crate::run_folder::{RepetitionSummary, Status, frames};
use crate::shutdown::Shutdown;
use crate::stack::LabStack;

/// One repetition: a fresh stack, the load and the faults on one clock,
/// the drain, the audit, the teardown and the rows written.
pub struct Repetition<'a> {
    pub plan: &'a Plan,
    pub number: u32,
    /// The k6 binary when k6 drives the load.
    pub k6: Option<&'a Path>,
    /// Where the stack's processes and data live: outside the run folder,
    /// which keeps only what the report needs.
    pub stack_dir: PathBuf,
    pub progress: &'a Progress,
    pub shutdown: &'a Shutdown,
    /// The live view (`--dashboard`).
    pub live: Option<std::sync::Arc<crate::live::Live>>,
    /// The run folder, where the request rows are flushed as they come.
    pub run_dir: PathBuf,
}

/// The services' metrics, scraped each second from the load's start until
/// the audit, and the status line fed by them.
struct Scraping {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    rows: Arc<Mutex<Vec<MetricRow>>>,
    latest: Latest,
}

impl Scraping {
    async fn stop(self) -> Vec<MetricRow> {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        std::mem::take(&mut *self.rows.lock().expect("rows lock"))
    }
}

/// Writes the metric samples that came since the last flush every
/// [`parts::FLUSH`], until `stop`.
async fn journal_metrics(
    journal: parts::Journal,
    rows: Arc<Mutex<Vec<MetricRow>>>,
    stop: CancellationToken,
) {
    let (mut flushed, mut n) = (0, 0);
    loop {
        tokio::select! {
            () = tokio::time::sleep(parts::FLUSH) => {}
            () = stop.cancelled() => return,
        }
        let new = {
            let rows = rows.lock().expect("rows lock");
            rows.get(flushed..)
                .map(<[MetricRow]>::to_vec)
                .unwrap_or_default()
        };
        if !new.is_empty() {
            flushed += new.len();
            journal.metrics(n, new);
            n += 1;
        }
    }
}

/// What the load stage leaves for the stages after it.
struct Driven {
    rows: Vec<Row>,
    faults: Vec<FaultRecord>,
    reasons: Vec<String>,
    t0: Instant,
    t0_unix_us: i64,
    load_end_s: f64,
    scraping: Scraping,
}

/// Everything measured, ready to be written.
struct Measured {
    /// Per `service` architecture, the rows its audit found with an id the
    /// lab never sent it.
    foreign_rows: BTreeMap<String, u64>,
    rows: Vec<Row>,
    faults: Vec<FaultRecord>,
    stored: Vec<StoredRow>,
    metrics: Vec<MetricRow>,
    reasons: Vec<String>,
    t0_unix_us: i64,
    load_end_s: f64,
    drain_s: BTreeMap<String, Option<f64>>,
}

impl Repetition<'_> {
    fn label(&self) -> String {
        if self.plan.is_control(self.number) {
            format!(
                "[control {}/{}, no fault]",
                self.number - self.plan.repetitions + 1,
                self.plan.controls
            )
        } else {
            format!("[{}/{}]", self.number + 1, self.plan.repetitions)
        }
    }

    fn say(&self, line: &str) {
        self.progress.say(&format!("{} {line}", self.label()));
    }

    /// Runs every stage; appends the rows to `sinks`.
    pub async fn run(self, sinks: &mut Sinks) -> anyhow::Result<RepetitionSummary> {
        if let Some(live) = &self.live {
            live.start(
                self.number,
                &self.label(),
                self.plan.is_control(self.number),
            );
        }
        let mut stack = self.up().await?;
        let startup_s = stack.startup.as_secs_f64();
        let broker = stack
            .broker
            .as_ref()
            .map(|b| (b.version(), b.durable()))
            .unwrap_or_default();
        let reference = match self.plan.reference {
            Some(length) => self.reference(&stack, length).await,
            None => None,
        };
        let measured = self.measure(&mut stack).await;
        self.down(stack).await;
        let measured = measured?;
        self.record(sinks, &measured)?;
        Ok(RepetitionSummary {
            repetition: self.number,
            status: if measured.reasons.is_empty() {
                Status::Complete
            } else {
                Status::Incomplete
            },
            reasons: measured.reasons,
            stack_startup_s: startup_s,
            load_end_s: measured.load_end_s,
            drain_s: measured.drain_s,
            foreign_rows: measured.foreign_rows,
            t0_unix_us: measured.t0_unix_us,
            broker: broker.0,
            broker_durable: broker.1,
            control: self.plan.is_control(self.number),
            reference,
        })
    }

    /// The capacity's reference: what PostgreSQL commits alone, before the
    /// load ([`crate::reference`]). A failure is said and leaves the run
    /// without it; the load goes on. Stopping the run ends it at once (the
    /// scratch table of an external database is dropped by the next one).
    pub async fn reference(&self, stack: &LabStack, length: Duration) -> Option<Reference> {
        self.say(&format!(
            "PostgreSQL alone, three ways for {} each",
            humantime::format_duration(length)
        ));
        let url = stack.database.url();
        let say = |line: &str| self.say(&format!("PostgreSQL alone: {line}"));
        let measured = tokio::select! {
            measured = reference::postgresql_alone(&url, length, say) => measured,
            () = self.shutdown.graceful.cancelled() => return None,
        };
        match measured {
            Ok(measured) => Some(measured),
            Err(error) => {
                self.say(&format!(
                    "PostgreSQL alone could not be measured, the report has no reference: {error:#}"
                ));
                None
            }
        }
    }

    /// Brings the stack up and checks that every fault can act on it.
    pub async fn up(&self) -> anyhow::Result<LabStack> {
        self.say("bringing the stack up");
        let stack = LabStack::up(&self.plan.stack, &self.stack_dir, |line| self.say(line))
            .await
            .context("could not bring the stack up")?;
        if let Err(problem) = fault::check(&self.plan.faults_of(self.number), &stack) {
            self.down(stack).await;
            anyhow::bail!("{problem}");
        }
        self.say(&format!(
            "stack ready in {:.1} s; load for {}",
            stack.startup.as_secs_f64(),
            humantime::format_duration(self.plan.duration)
        ));
        Ok(stack)
    }

    async fn measure(&self, stack: &mut LabStack) -> anyhow::Result<Measured> {
        let driven = self.drive(stack).await?;
        let mut reasons = driven.reasons;
        let waited = !self.shutdown.graceful.is_cancelled();
        let drain_s = self
            .drain(
                stack,
                &driven.rows,
                driven.t0,
                driven.load_end_s,
                &driven.scraping.latest,
            )
            .await;
        for (name, drained) in drain_s.iter().filter(|_| waited) {
            if drained.is_none() {
                reasons.push(format!(
                    "{name} did not drain within {}",
                    humantime::format_duration(self.plan.drain_timeout)
                ));
            }
        }
        reasons.extend(stack.services_that_died());
        let metrics = driven.scraping.stop().await;
        let (stored, foreign_rows) = match self.audit(stack, &driven.rows, driven.t0_unix_us).await
        {
            Ok(found) => found,
            Err(error) => {
                reasons.push(format!("audit failed: {error}"));
                Default::default()
            }
        };
        Ok(Measured {
            foreign_rows,
            rows: driven.rows,
            faults: driven.faults,
            stored,
            metrics,
            reasons,
            t0_unix_us: driven.t0_unix_us,
            load_end_s: driven.load_end_s,
            drain_s,
        })
    }

    /// Targets, one per architecture in the plan's order: the URL the load
    /// goes to (with a `service`'s own request), and the services to
    /// scrape.
    fn targets(&self, stack: &LabStack) -> (Vec<Target>, Vec<ScrapeTarget>) {
        let mut targets = Vec::new();
        let names = self.plan.architectures();
        for name in &names {
            if let Some(rest) = stack.rest.iter().find(|r| &r.name == name) {
                targets.push((rest.service.url("/events"), None));
            } else if let Some(kafka) = stack.kafka.iter().find(|k| &k.name == name) {
                targets.push((kafka.producer.url("/events"), None));
            } else if let Some(parts) = stack.services.iter().find(|s| &s.name == name) {
                let own = load::OwnRequest::of(&parts.plan.request)
                    .expect("the request was checked by validation");
                targets.push((parts.target().url(""), Some(Arc::new(own))));
            }
        }
        (targets, stack.scrape_targets(&names))
    }

    /// Drives every architecture on one clock while the faults play out
    /// and the metrics are scraped; returns when the load has ended.
    async fn drive(&self, stack: &mut LabStack) -> anyhow::Result<Driven> {
        let names = self.plan.architectures();
        let (targets, scrape_targets) = self.targets(stack);
        if let Some(live) = &self.live {
            live.scraped_from(&scrape_targets);
        }
        let load_cancel = self.shutdown.graceful.child_token();
        let counters: Vec<Arc<Counters>> = names.iter().map(|_| Arc::default()).collect();
        for counter in &counters {
            counter
                .keep_latencies
                .store(self.live.is_some(), std::sync::atomic::Ordering::Relaxed);
        }
        let active_faults = Arc::new(Mutex::new(Vec::<String>::new()));
        let t0 = Instant::now();
        let t0_unix_us = chrono::Utc::now().timestamp_micros();
        let load = self.start_load(&names, &targets, &counters, t0, t0_unix_us, &load_cancel)?;
        let mut scraping =
            self.start_scraping(scrape_targets, &names, &counters, &active_faults, t0);
        // The consumers' backlog, measured from outside them.
        let measuring = tokio::spawn(collect::measure_backlog(
            backlog_targets(stack),
            backlog_source(stack),
            t0,
            scraping.stop.clone(),
            scraping.rows.clone(),
            scraping.latest.clone(),
        ));
        scraping.tasks.push(measuring);
        // What each process of the stack spends, from /proc.
        scraping.tasks.push(tokio::spawn(collect::sample_cpu(
            stack.cpu_targets(),
            t0,
            scraping.stop.clone(),
            scraping.rows.clone(),
        )));

        // The faults play out in this task, which owns the stack.
        let label = self.label();
        let journal = self.journal();
        let (faults, finished) = fault::run_timeline(
            stack,
            &self.plan.faults_of(self.number),
            t0.into_std(),
            &self.shutdown.graceful,
            |records, i, started| {
                let record = &records[i];
                journal.faults(records.to_vec());
                let mut active = active_faults.lock().expect("faults lock");
                if started {
                    active.push(record.kind.clone());
                } else {
                    active.retain(|k| k != &record.kind);
                }
                let (verified, at) = if started {
                    (record.verified_start, record.actual_start_s)
                } else {
                    (record.verified_end, record.actual_end_s)
                };
                self.progress.say(&format!(
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
        .await;
        let rows = match load.await {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                scraping.stop().await;
                return Err(error.context("the load driver failed"));
            }
            Err(error) => {
                scraping.stop().await;
                return Err(error).context("the load driver failed");
            }
        };
        let load_end_s = t0.elapsed().as_secs_f64();
        let mut reasons = Vec::new();
        if !finished || self.shutdown.graceful.is_cancelled() {
            reasons.push("interrupted".to_string());
        }
        for record in faults.iter().filter(|r| !r.verified) {
            reasons.push(if record.actual_start_s.is_none() {
                format!("fault {} never started", record.kind)
            } else {
                format!("fault {} not verified: {}", record.kind, record.detail)
            });
        }
        Ok(Driven {
            rows,
            faults,
            reasons,
            t0,
            t0_unix_us,
            load_end_s,
            scraping,
        })
    }

    /// The load: the native drivers, one per architecture, or one k6
    /// process for all of them.
    fn start_load(
        &self,
        names: &[String],
        targets: &[Target],
        counters: &[Arc<Counters>],
        t0: Instant,
        t0_unix_us: i64,
        cancel: &CancellationToken,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<Row>>>> {
        let Some(k6) = self.k6 else {
            let schedule = Arc::new(self.plan.load.schedule());

            let (rows_tx, collector) = load::collector(Some(self.journal()));
            let mut drivers = tokio::task::JoinSet::new();
            for (i, (url, own)) in targets.iter().enumerate() {
                let driver = load::Driver {
                    architecture: i as u16,
                    url: url.clone(),
                    own: own.clone(),
                    schedule: schedule.clone(),
                    settings: self.plan.load.settings_of(self.number, i),
                    counters: counters[i].clone(),
                };
                drivers.spawn(driver.run(t0, cancel.clone(), rows_tx.clone()));
            }
            drop(rows_tx);
            return Ok(tokio::spawn(async move {
                while drivers.join_next().await.is_some() {}
                collector.await.context("the row collector failed")
            }));
        };
        if targets.iter().any(|(_, own)| own.is_some()) {
            anyhow::bail!(
                "k6 sends the built-in services' event only: drive `service` architectures with the native driver"
            );
        }
        let targets: Vec<(String, String)> = names
            .iter()
            .cloned()
            .zip(targets.iter().map(|(url, _)| url.clone()))
            .collect();
        let script = self.stack_dir.join("load.js");
        std::fs::write(&script, crate::k6::script(self.plan, &targets))
            .with_context(|| format!("could not write {}", script.display()))?;
        // k6 writes its CSV every second with the run folder's parts, where
        // a runner killed outright leaves it for the watchdog to keep.
        let (csv, sidecar) = crate::k6::live_csv(&self.run_dir, self.number);
        let salvage = crate::k6::Salvage {
            repetition: self.number,
            architectures: names.to_vec(),
            t0_unix_ms: t0_unix_us / 1000,
        };
        std::fs::create_dir_all(csv.parent().expect("in the parts folder"))
            .and_then(|()| std::fs::write(&sidecar, serde_json::to_vec(&salvage).expect("JSON")))
            .with_context(|| format!("could not write {}", sidecar.display()))?;
        let pid_file = self.stack_dir.join("k6.pid");
        let (k6, names, cancel) = (k6.to_path_buf(), names.to_vec(), cancel.clone());
        Ok(tokio::spawn(async move {
            crate::k6::drive(&k6, &script, &csv, &pid_file, cancel).await?;
            let rows = crate::k6::rows(&csv, &names, t0_unix_us / 1000)?;
            let _ = std::fs::remove_file(&pid_file);
            let _ = std::fs::remove_file(&csv);
            let _ = std::fs::remove_file(&sidecar);
            Ok(rows)
        }))
    }

    /// Where this repetition's rows are written as they come.
    fn journal(&self) -> parts::Journal {
        parts::Journal {
            dir: self.run_dir.clone(),
            repetition: self.number,
            architectures: self.plan.architectures(),
        }
    }

    fn start_scraping(
        &self,
        targets: Vec<ScrapeTarget>,
        names: &[String],
        counters: &[Arc<Counters>],
        active_faults: &Arc<Mutex<Vec<String>>>,
        t0: Instant,
    ) -> Scraping {
        let stop = CancellationToken::new();
        let rows = Arc::new(Mutex::new(Vec::new()));
        let latest: Latest = Arc::default();
        let scraper = tokio::spawn(collect::scrape(
            targets,
            t0,
            stop.clone(),
            rows.clone(),
            latest.clone(),
        ));
        let ticker = Ticker {
            progress: self.progress.clone(),
            label: self.label(),
            duration: self.plan.duration,
            names: names.to_vec(),
            counters: counters.to_vec(),
            latest: latest.clone(),
            active_faults: active_faults.clone(),
            t0,
            live: self.live.clone(),
        };
        let ticker = tokio::spawn(ticker.run(stop.clone()));
        let journal = tokio::spawn(journal_metrics(self.journal(), rows.clone(), stop.clone()));
        Scraping {
            stop,
            tasks: vec![scraper, ticker, journal],
            rows,
            latest,
        }
    }

    /// Waits, at most the plan's drain timeout, until every Kafka
    /// architecture has drained (see [`Drain::poll`]); seconds from the
    /// load's end until each did, `None` for those that did not.
    async fn drain(
        &self,
        stack: &LabStack,
        rows: &[Row],
        t0: Instant,
        load_end_s: f64,
        latest: &Latest,
    ) -> BTreeMap<String, Option<f64>> {
        let mut draining = self.plan.kafka_architectures();
        draining.extend(stack.services.iter().map(|s| s.name.clone()));
        let mut drains: BTreeMap<String, Drain> = draining
            .iter()
            .map(|n| (n.clone(), Drain::default()))
            .collect();
        if draining.is_empty() || self.shutdown.graceful.is_cancelled() {
            return draining.into_iter().map(|n| (n, None)).collect();
        }
        self.say(&format!(
            "load done; draining (at most {})",
            humantime::format_duration(self.plan.drain_timeout)
        ));
        let names = self.plan.architectures();
        let mut acknowledged: BTreeMap<&str, u64> = BTreeMap::new();
        for row in rows.iter().filter(|r| r.outcome.ok()) {
            *acknowledged
                .entry(names[usize::from(row.architecture)].as_str())
                .or_default() += 1;
        }
        let database_url = stack.database.url();
        let deadline = Instant::now() + self.plan.drain_timeout;
        loop {
            let mut stored = collect::stored_counts(&database_url)
                .await
                .unwrap_or_default();
            let mut settle: BTreeMap<&str, f64> = BTreeMap::new();
            for parts in &stack.services {
                let audit = &parts.plan.audit;
                if let Ok(count) = collect::audit_count(&database_url, &audit.query).await {
                    stored.insert(parts.name.clone(), count as i64);
                }
                settle.insert(&parts.name, audit.settle.0.as_secs_f64());
            }
            let at_s = t0.elapsed().as_secs_f64() - load_end_s;
            let mut all = true;
            for (name, drain) in &mut drains {
                let value = |metric| consumer_value(latest, name, metric);
                all &= drain.poll(
                    at_s,
                    Poll {
                        acknowledged: acknowledged.get(name.as_str()).copied().unwrap_or(0),
                        stored: stored.get(name).copied().unwrap_or(0).max(0) as u64,
                        backlog: backlog_value(latest, name),
                        lag_s: value(names::KAFKA_CONSUMER_LAG_SECONDS),
                        settle_s: settle.get(name.as_str()).copied(),
                    },
                );
            }
            if all || Instant::now() > deadline || self.shutdown.graceful.is_cancelled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        drains
            .into_iter()
            .map(|(name, drain)| (name, drain.drained_after_s))
            .collect()
    }

    /// Every event the database holds after the drain: the built-in
    /// services' table, and what each `service` architecture's audit query
    /// finds of the events it was sent (rows with another id are counted,
    /// not joined).
    async fn audit(
        &self,
        stack: &LabStack,
        rows: &[Row],
        t0_unix_us: i64,
    ) -> Result<(Vec<StoredRow>, BTreeMap<String, u64>), collect::AuditError> {
        self.say("auditing the database");
        let url = stack.database.url();
        // The built-in services' table, their rows only: a `service` may
        // store into the same table, and is audited by its own query.
        let built_in: Vec<&str> = (stack.rest.iter().map(|r| r.name.as_str()))
            .chain(stack.kafka.iter().map(|k| k.name.as_str()))
            .collect();
        let mut stored = if built_in.is_empty() {
            Vec::new()
        } else {
            let mut rows = collect::audit(&url).await?;
            rows.retain(|row| built_in.contains(&row.stored_by.as_str()));
            rows
        };
        let names = self.plan.architectures();
        let mut foreign_rows = BTreeMap::new();
        for parts in &stack.services {
            let Some(index) = names.iter().position(|n| n == &parts.name) else {
                continue;
            };
            let sent: HashMap<uuid::Uuid, u64> = rows
                .iter()
                .filter(|r| usize::from(r.architecture) == index)
                .map(|r| (r.event_id, r.intended_us))
                .collect();
            let found = collect::audit_query(&url, &parts.plan.audit.query).await?;
            let total = found.len();
            let mut foreign = 0;
            for (id, stored_at_us) in found {
                let known = uuid::Uuid::parse_str(id.trim())
                    .ok()
                    .and_then(|id| sent.get(&id).map(|intended| (id, *intended)));
                match known {
                    Some((event_id, intended_us)) => stored.push(StoredRow {
                        event_id,
                        stored_by: parts.name.clone(),
                        sent_at_us: t0_unix_us + intended_us as i64,
                        stored_at_us,
                    }),
                    None => foreign += 1,
                }
            }
            self.say(&format!(
                "{}: its audit query found {total} rows, {foreign} of them with an id the lab never sent it",
                parts.name
            ));
            foreign_rows.insert(parts.name.clone(), foreign);
        }
        Ok((stored, foreign_rows))
    }

    /// Tears the stack down off the async workers: services first, each
    /// given its grace unless a second Ctrl-C asks for haste.
    pub async fn down(&self, stack: LabStack) {
        let force = self.shutdown.force.clone();
        let stack_dir = self.stack_dir.clone();
        let teardown = tokio::task::spawn_blocking(move || {
            // The link to the run folder goes first: once the stack is down
            // its runner.pid is gone, and a `clean` of another process that
            // still found the link would take the run for a killed one and
            // close its folder under it. (A runner killed from here on
            // leaves a run folder that says "in progress", not "failed".)
            let _ = std::fs::remove_file(stack_dir.join(crate::run_folder::RUN_FOLDER_LINK));
            let took = stack.down(&|| force.is_cancelled());
            // FAULTLINE_KEEP_STACK keeps the services' and the broker's logs
            // for a look afterwards (`faultline clean` removes them).
            if std::env::var_os("FAULTLINE_KEEP_STACK").is_none() {
                let _ = std::fs::remove_dir_all(&stack_dir);
            }
            took
        });
        match teardown.await {
            Ok(took) => tracing::debug!(?took, "Stack down."),
            Err(error) => tracing::error!(%error, "The teardown panicked."),
        }
    }

    /// Appends this repetition's rows to the run folder's Parquet files.
    fn record(&self, sinks: &mut Sinks, measured: &Measured) -> anyhow::Result<()> {
        if let Some(live) = &self.live {
            live.finish(&measured.rows, &measured.faults);
        }
        let names = self.plan.architectures();
        let number = self.number;
        let batches = |n: usize| (0..n).step_by(frames::BATCH_ROWS);
        let end = |i: usize, n: usize| (i + frames::BATCH_ROWS).min(n);
        let (rows, stored) = (&measured.rows, &measured.stored);
        parts::write(
            &sinks.part(&REQUESTS, number),
            &REQUESTS,
            batches(rows.len())
                .map(|i| frames::requests_frame(number, &names, &rows[i..end(i, rows.len())])),
        )?;
        parts::write(
            &sinks.part(&STORED, number),
            &STORED,
            batches(stored.len()).map(|i| {
                frames::stored_frame(
                    number,
                    measured.t0_unix_us,
                    &stored[i..end(i, stored.len())],
                )
            }),
        )?;
        let metrics = &measured.metrics;
        parts::write(
            &sinks.part(&METRICS, number),
            &METRICS,
            batches(metrics.len())
                .map(|i| frames::metrics_frame(number, &metrics[i..end(i, metrics.len())])),
        )?;
        parts::write(
            &sinks.part(&FAULTS, number),
            &FAULTS,
            [frames::faults_frame(number, &measured.faults)],
        )?;
        // Its own part is whole: the rows flushed while it ran go.
        parts::remove_live(sinks.dir(), number);
        let ok = measured.rows.iter().filter(|r| r.outcome.ok()).count();
        self.say(&format!(
            "{} requests ({ok} ok), {} events stored, {} metric samples",
            measured.rows.len(),
            measured.stored.len(),
            measured.metrics.len()
        ));
        Ok(())
    }
}

/// Where one architecture's load goes: a URL, and a `service`'s own
/// request.
type Target = (String, Option<Arc<load::OwnRequest>>);

/// Every consumer, with where its position is read: a buffered one's from
/// the database, a drop one's from the consumer.
fn backlog_targets(stack: &LabStack) -> Vec<collect::BacklogTarget> {
    use faultline_services::consumer::Mode;
    stack
        .kafka
        .iter()
        .map(|k| collect::BacklogTarget {
            architecture: k.name.clone(),
            topic: k.topic.clone(),
            partitions: stack.topics.partitions,
            position: match k.mode {
                Mode::Buffered => collect::PositionFrom::Stored {
                    group: k.group.clone(),
                },
                Mode::Drop => collect::PositionFrom::Reported(k.consumer.addr()),
            },
            producer: Some(k.producer.addr()),
        })
        .collect()
}

/// The broker, past its link, and the database, directly.
fn backlog_source(stack: &LabStack) -> collect::BacklogSource {
    let (bootstrap, properties) = match &stack.broker {
        Some(broker) => (
            match broker.link() {
                Some(_) => format!("127.0.0.1:{}", broker.port()),
                None => broker.bootstrap(),
            },
            broker.properties().to_vec(),
        ),
        None => (String::new(), Vec::new()),
    };
    collect::BacklogSource {
        bootstrap,
        properties,
        database_url: stack.database.url(),
    }
}
