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
//! - the loss audit: acknowledged, stored, lost, stored without
//!   acknowledgement; redeliveries absorbed (scraped counters); freshness (sent → stored) and staleness;
//! - time to recover, time to drain, peak backlog; the cost model;
//! - across repetitions, means with 95 % bootstrap confidence intervals;
//! - the scenario's hypotheses, each to a value, a limit and a verdict.

pub mod capacity;
mod control;
pub mod cost;
pub mod cpu;
pub mod database;
mod drift;
pub mod figures;
pub mod incomplete;
pub mod join;
pub mod series;
pub mod verdicts;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use faultline_services::breaker::BreakerState;

use crate::experiment::{Experiment, Phase};
use crate::run_folder::frames::MetricColumns;
use crate::run_folder::summary::{
    ArchitectureSummary, ControlSummary, RepetitionFigures, Repetitions, windows_of,
};
use crate::run_folder::{self, Manifest, RunFiles, Summary};
use crate::stats::{fnv, ratio};
use figures::Figures;
pub use series::{PerSecond, Second};

/// A run analysed: `summary.json` and the series the report draws.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub summary: Summary,
    /// Per second, per architecture and repetition.
    pub series: Vec<PerSecond>,
    /// Freshness distribution per architecture: (milliseconds, share of
    /// stored acknowledged events at most that late).
    pub freshness_cdf: BTreeMap<String, Vec<(f64, f64)>>,
    /// Per second, per architecture, of the repetition a killed runner
    /// never ended (`summary.incomplete`).
    pub incomplete_series: Vec<PerSecond>,
}

impl Analysis {
    /// The series of `architecture` in `repetition`.
    pub fn series_of(&self, architecture: &str, repetition: u32) -> Option<&PerSecond> {
        self.series
            .iter()
            .find(|s| s.architecture == architecture && s.repetition == repetition)
    }
}

/// Reads the run folder at `dir` and analyses it.
pub fn analyze(dir: &Path) -> anyhow::Result<Analysis> {
    summarize(&RunFiles::read(dir)?)
}

/// Analyses a run's files: join, figures per architecture, verdicts.
pub fn summarize(files: &RunFiles) -> anyhow::Result<Analysis> {
    let experiment = &files.experiment;
    let manifest = &files.manifest;
    let cut = match &files.partial {
        Some(partial) => incomplete::analyse(experiment, partial)?,
        None => None,
    };
    if manifest.repetitions.is_empty() {
        return Ok(cut_short(experiment, manifest, cut));
    }
    let (incomplete, incomplete_series) = cut.unzip();
    let t0_of: HashMap<u32, i64> = manifest
        .repetitions
        .iter()
        .map(|r| (r.repetition, r.t0_unix_us))
        .collect();
    let faults = figures::faults(&files.faults)?;
    let controls: Vec<u32> = manifest
        .repetitions
        .iter()
        .filter(|r| r.control)
        .map(|r| r.repetition)
        .collect();
    let repetitions = (manifest.repetitions.len() - controls.len()).max(1) as u32;
    // A control's phases are the first repetition's seconds.
    let windows: HashMap<u32, Vec<(f64, f64)>> = (0..repetitions)
        .map(|r| (r, windows_of(&faults, r)))
        .chain(controls.iter().map(|r| (*r, windows_of(&faults, 0))))
        .collect();

    let joined = join::joined((&files.requests, &files.stored), &t0_of)?;
    let budget_us = experiment.economics.staleness_budget.0.as_micros() as u64;
    let [counts, failures] = join::per_second(joined.clone(), budget_us);
    let [counts, failures, rows, audit] = join::collect_all([
        counts,
        failures,
        join::request_rows(joined),
        join::audit_plan(files),
    ])?;
    let mut requests = join::requests(&rows)?;
    let metrics = MetricColumns::of(&files.metrics)?;
    let cpu_readings = cpu::readings(&metrics);
    let users = cpu::Users::from_scenario(experiment);
    let faulted: Vec<u32> = (0..repetitions).collect();
    let cpu = cpu::per_process(&cpu_readings, &requests, &users, &faulted);
    let mut capacity = capacity::per_architecture(
        experiment,
        &requests,
        (&cpu_readings, &users, &metrics),
        &faulted,
        manifest.host.cores as u32,
    );
    let references: Vec<_> = manifest
        .repetitions
        .iter()
        .filter_map(|r| r.reference)
        .collect();
    capacity::with_reference(&mut capacity, &references);
    let order: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    let drift = drift::Quiet::of(
        &controls,
        &faulted,
        &windows,
        experiment.warmup().as_secs_f64(),
        experiment.duration.0.as_secs_f64(),
    )
    .map(|quiet| drift::drift(&quiet, &order, &requests, &cpu_readings, &metrics))
    .unwrap_or_default();
    let (scraped, backlog) = join::scraped(&metrics)?;
    let produce_ack = join::histogram_by_phase(
        &metrics,
        faultline_services::metrics::names::KAFKA_PRODUCE_DURATION,
        &windows,
        experiment.warmup().as_secs_f64(),
    )?;
    let database = database::sums(&metrics, &windows, experiment.warmup().as_secs_f64());
    let context = Context {
        experiment,
        manifest,
        windows,
        audit: join::audit(&audit)?,
        scraped: &scraped,
        backlog,
        redelivered: join::redelivered(&metrics)?,
        conflicts: join::conflicts(&metrics)?,
        produce_ack,
        database,
        database_run: database::run_sums(&metrics, experiment),
        memory_broker_killed: memory_broker_kills(&faults, manifest),
        repetitions,
    };
    let series = series::build_series(
        &counts,
        &failures,
        &scraped,
        experiment.duration.0.as_secs_f64().ceil() as u32,
    )?;
    let mut architectures = BTreeMap::new();
    let mut freshness_cdf = BTreeMap::new();
    let mut delays_of = Vec::new();
    for architecture in &experiment.architectures {
        let name = architecture.name();
        let (rows, control): (Vec<join::Request>, Vec<join::Request>) = requests
            .remove(name)
            .unwrap_or_default()
            .into_iter()
            .partition(|r| !controls.contains(&r.repetition));
        let mut delays: Vec<u64> = rows.iter().filter_map(|r| r.freshness_us).collect();
        delays.sort_unstable();
        freshness_cdf.insert(name.to_string(), series::cdf(&delays));
        let mut figures = context.architecture(name, &rows, &delays);
        figures.capacity = capacity.remove(name);
        if let Some(drain) = &mut figures.drain_rate {
            figures::compare_with_copy(drain, &references);
        }
        figures.control = (!controls.is_empty())
            .then(|| context.control(name, (&rows, &faulted), (&control, &controls)));
        architectures.insert(name.to_string(), figures);
        delays_of.push((name, delays));
    }
    let hypotheses = verdicts::judge(&experiment.hypotheses, &architectures);
    let budget_break_even = budget_break_even(
        &experiment.economics,
        &architectures,
        &delays_of,
        repetitions as usize,
    );
    Ok(Analysis {
        summary: Summary {
            schema: run_folder::summary::SCHEMA,
            experiment: experiment.name.clone(),
            run_id: manifest.run_id.clone(),
            status: manifest.status,
            repetitions: repetitions as usize,
            interval_method: crate::stats::interval_method(repetitions as usize).to_string(),
            warmup_s: experiment.warmup().as_secs_f64(),
            faults,
            architectures,
            hypotheses,
            cpu,
            budget_break_even,
            drift,
            incomplete,
        },
        series,
        freshness_cdf,
        incomplete_series: incomplete_series.unwrap_or_default(),
    })
}

/// The analysis of a run whose runner was killed before any repetition
/// ended: only the repetition it cut short.
fn cut_short(
    experiment: &Experiment,
    manifest: &Manifest,
    cut: Option<(run_folder::summary::Incomplete, Vec<PerSecond>)>,
) -> Analysis {
    let (incomplete, incomplete_series) = cut.unzip();
    Analysis {
        summary: Summary {
            schema: run_folder::summary::SCHEMA,
            experiment: experiment.name.clone(),
            run_id: manifest.run_id.clone(),
            status: manifest.status,
            repetitions: 0,
            interval_method: crate::stats::interval_method(0).to_string(),
            warmup_s: experiment.warmup().as_secs_f64(),
            faults: Vec::new(),
            architectures: BTreeMap::new(),
            hypotheses: Vec::new(),
            cpu: Vec::new(),
            budget_break_even: Vec::new(),
            drift: Vec::new(),
            incomplete,
        },
        series: Vec::new(),
        freshness_cdf: BTreeMap::new(),
        incomplete_series: incomplete_series.unwrap_or_default(),
    }
}

/// When a broker that kept its log in memory was first killed, per
/// repetition.
fn memory_broker_kills(
    faults: &[crate::run_folder::summary::FaultSummary],
    manifest: &Manifest,
) -> HashMap<u32, f64> {
    faults
        .iter()
        .filter(|f| f.kind == "broker-kill")
        .filter(|f| {
            !manifest
                .repetitions
                .iter()
                .any(|r| r.repetition == f.repetition && r.broker_durable)
        })
        .filter_map(|f| Some((f.repetition, f.actual_start_s?)))
        .fold(HashMap::new(), |mut first, (r, at)| {
            let slot = first.entry(r).or_insert(at);
            *slot = slot.min(at);
            first
        })
}

/// Which architecture costs less at each staleness budget, for every pair:
/// each one's failed and lost events (from its figures) and the delays of
/// its stored events (`delays_of`, sorted), over `outages` repetitions.
fn budget_break_even(
    economics: &crate::experiment::Economics,
    architectures: &BTreeMap<String, ArchitectureSummary>,
    delays_of: &[(&str, Vec<u64>)],
    outages: usize,
) -> Vec<crate::run_folder::summary::BudgetBreakEven> {
    let curves: Vec<cost::BudgetCurve> = delays_of
        .iter()
        .filter_map(|(name, delays)| {
            let a = architectures.get(*name)?;
            Some(cost::BudgetCurve {
                name,
                failed_and_lost: a.totals.failed + a.lost,
                delays_us: delays,
                outages,
            })
        })
        .collect();
    cost::break_even_by_budget(economics, &curves)
}

/// What every architecture's figures are computed against.
struct Context<'a> {
    experiment: &'a Experiment,
    manifest: &'a Manifest,
    /// Fault windows per repetition.
    windows: HashMap<u32, Vec<(f64, f64)>>,
    audit: join::AuditCounts,
    scraped: &'a join::Scraped,
    backlog: join::BacklogPoints,
    redelivered: HashMap<(String, u32), u64>,
    /// Events whose id was already stored with another payload.
    conflicts: HashMap<(String, u32), u64>,
    /// The producers' acknowledgement time, summed per phase.
    produce_ack: join::PhaseSums,
    /// The writers' pool figures, summed per phase.
    database: database::DatabaseSums,
    /// The same over the whole run, for a run without faults or steps.
    database_run: Option<database::DatabaseSums<()>>,
    /// When a broker that kept its log in memory was first killed, per
    /// repetition.
    memory_broker_killed: HashMap<u32, f64>,
    repetitions: u32,
}

impl Context<'_> {
    /// The stored and unacknowledged counts of `name` over `reps`.
    fn audit_of(&self, name: &str, reps: &[u32]) -> (u64, u64) {
        reps.iter().fold((0, 0), |acc, r| {
            let a = self
                .audit
                .get(&(name.to_string(), *r))
                .copied()
                .unwrap_or_default();
            (acc.0 + a.0, acc.1 + a.1)
        })
    }

    /// The mean time the broker took to acknowledge a produce of `name`
    /// over `reps`, per phase, in milliseconds.
    fn produce_ack_ms(&self, name: &str, reps: &[u32]) -> BTreeMap<Phase, f64> {
        let mut sums: BTreeMap<Phase, (f64, f64)> = BTreeMap::new();
        for r in reps {
            for (phase, (sum, count)) in self
                .produce_ack
                .get(&(name.to_string(), *r))
                .into_iter()
                .flatten()
            {
                let slot = sums.entry(*phase).or_default();
                slot.0 += sum;
                slot.1 += count;
            }
        }
        sums.into_iter()
            .filter(|(_, (_, count))| *count > 0.0)
            .map(|(phase, (sum, count))| (phase, 1000.0 * sum / count))
            .collect()
    }

    /// The runner's drain wait of `name`: the longest of the faulted
    /// repetitions', if every one drained.
    fn settle_s(&self, name: &str) -> Option<f64> {
        self.manifest
            .repetitions
            .iter()
            .filter(|r| !r.control)
            .filter_map(|r| r.drain_s.get(name).copied().flatten())
            .reduce(f64::max)
    }

    /// Rows `name`'s audit query found with an id the lab never sent it,
    /// over the faulted repetitions; `None` for a built-in architecture.
    fn foreign_rows(&self, name: &str) -> Option<u64> {
        self.manifest
            .repetitions
            .iter()
            .filter(|r| !r.control)
            .filter_map(|r| r.foreign_rows.get(name).copied())
            .reduce(|a, b| a + b)
    }

    /// What bounded `name`'s database writes over `reps`, per phase, beside
    /// the requests of its `phases`.
    fn database_of(
        &self,
        name: &str,
        reps: &[u32],
        phases: &BTreeMap<Phase, crate::run_folder::summary::PhaseSummary>,
    ) -> BTreeMap<Phase, crate::run_folder::summary::DatabaseTime> {
        let offered = phases
            .iter()
            .map(|(phase, p)| (*phase, p.requests))
            .collect();
        database::figures(
            &self.database,
            name,
            reps,
            &offered,
            &self.phase_seconds(reps),
        )
    }

    /// What bounded `name`'s database writes over `reps` in a run without
    /// faults or steps, beside the rate of its `requests`.
    fn database_run_of(
        &self,
        name: &str,
        reps: &[u32],
        requests: u64,
    ) -> Option<crate::run_folder::summary::DatabaseTime> {
        let sums = database::pooled(self.database_run.as_ref()?, name, reps);
        let seconds = self.offered_s();
        sums.get(&())?
            .figures((seconds > 0.0).then(|| requests as f64 / seconds))
    }

    /// Seconds of each phase of the fault over the repetitions `reps`, up
    /// to each one's load's end (in steps of 10 ms).
    fn phase_seconds(&self, reps: &[u32]) -> BTreeMap<Phase, f64> {
        let duration = self.experiment.duration.0.as_secs_f64();
        let mut seconds = BTreeMap::new();
        for r in reps {
            let windows = self.windows.get(r).map_or(&[][..], Vec::as_slice);
            let end = self
                .manifest
                .repetitions
                .iter()
                .find(|m| m.repetition == *r)
                .filter(|m| m.status != run_folder::Status::Complete && m.load_end_s > 0.0)
                .map_or(duration, |m| m.load_end_s.min(duration));
            let steps = (end * 100.0).round() as u64;
            for step in 0..steps {
                if let Some(phase) = Phase::of(windows, (step as f64 + 0.5) / 100.0) {
                    *seconds.entry(phase).or_insert(0.0) += 0.01;
                }
            }
        }
        seconds
    }

    /// Seconds of load the faulted repetitions offered: each its duration,
    /// or, for one that did not complete, up to its load's end, so that an
    /// interrupted repetition does not thin the run's rate.
    fn offered_s(&self) -> f64 {
        let duration = self.experiment.duration.0.as_secs_f64();
        let faulted = self.manifest.repetitions.iter().filter(|r| !r.control);
        let (seconds, counted) = faulted.fold((0.0, 0u32), |(s, n), r| {
            let stopped = r.status != run_folder::Status::Complete && r.load_end_s > 0.0;
            let offered = if stopped {
                r.load_end_s.min(duration)
            } else {
                duration
            };
            (s + offered, n + 1)
        });
        // Repetitions the manifest does not list ran their whole duration.
        seconds + duration * f64::from(self.repetitions.saturating_sub(counted))
    }

    /// Deliveries of events already stored, of `name` over `reps`.
    fn redelivered_of(&self, name: &str, reps: &[u32]) -> u64 {
        reps.iter()
            .filter_map(|r| self.redelivered.get(&(name.to_string(), *r)))
            .sum()
    }

    /// Events of `name` over `reps` whose id was already stored with
    /// another payload.
    fn conflicts_of(&self, name: &str, reps: &[u32]) -> u64 {
        reps.iter()
            .filter_map(|r| self.conflicts.get(&(name.to_string(), *r)))
            .sum()
    }

    /// The figures of architecture `name` from its joined `rows` and the
    /// freshness of its stored events, sorted.
    fn architecture(
        &self,
        name: &str,
        rows: &[join::Request],
        delays: &[u64],
    ) -> ArchitectureSummary {
        let economics = &self.experiment.economics;
        let budget_us = economics.staleness_budget.0.as_micros() as u64;
        let warmup_s = self.experiment.warmup().as_secs_f64();
        let key = |r: u32| (name.to_string(), r);
        let all: Vec<&join::Request> = rows.iter().collect();
        let reps: Vec<u32> = (0..self.repetitions).collect();
        let each: Vec<Figures> = reps
            .iter()
            .map(|r| {
                let rows: Vec<&join::Request> =
                    all.iter().copied().filter(|q| q.repetition == *r).collect();
                let audit = self.audit_of(name, &[*r]);
                let mut figures = Figures::of(&rows, &self.windows, audit, budget_us, warmup_s);
                figures.recovery_s = figures::recovery(rows.iter().copied(), &self.windows[r]);
                figures.drain_s = figures::drain(self.backlog.get(&key(*r)), &self.windows[r]);
                figures.data_recovery_s =
                    figures::data_recovery(rows.iter().copied(), &self.windows[r]);
                figures.data_current_s =
                    figures::data_current(rows.iter().copied(), &self.windows[r], budget_us);
                figures.redelivered = self.redelivered_of(name, &[*r]);
                figures
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
        let mut pooled = Figures::of(
            &all,
            &self.windows,
            self.audit_of(name, &reps),
            budget_us,
            warmup_s,
        );
        pooled.recovery_s = worst(|f| f.recovery_s);
        pooled.drain_s = worst(|f| f.drain_s);
        pooled.data_recovery_s = worst(|f| f.data_recovery_s);
        pooled.data_current_s = worst(|f| f.data_current_s);
        pooled.redelivered = self.redelivered_of(name, &reps);
        let run_rps = rows.len() as f64 / self.offered_s().max(1e-9);
        let cost_of = |f: &Figures, outages| {
            cost::of(
                economics,
                f.failed_events(),
                f.totals.failed,
                outages,
                run_rps,
            )
        };
        let per_repetition: Vec<RepetitionFigures> = reps
            .iter()
            .zip(&each)
            .map(|(r, f)| RepetitionFigures {
                repetition: *r,
                requests: f.totals.requests,
                error_rate: f.totals.error_rate,
                error_rate_during: f.phases.get(&Phase::During).map(|p| p.error_rate),
                acknowledged: f.acknowledged,
                lost: f.lost,
                lost_share: ratio(f.lost, f.acknowledged),
                stale_share: f.freshness.as_ref().map(|x| x.stale_share),
                on_time_share: f.freshness.as_ref().map(|x| x.on_time_share),
                freshness_p99_ms: f.freshness.as_ref().map(|x| x.p99),
                latency_p99_ms: f.totals.latency_ms.as_ref().map(|l| l.p99),
                recovery_s: f.recovery_s,
                data_recovery_s: f.data_recovery_s,
                data_current_s: f.data_current_s,
                drain_s: f.drain_s,
                revenue_lost: cost_of(f, 1).revenue_lost,
                poc_revenue_lost: cost_of(f, 1).poc_revenue_lost,
            })
            .collect();
        let repetitions = Repetitions::of(&per_repetition, self.experiment.seed ^ fnv(name));
        let cost_by_staleness_budget = cost::by_budget(
            economics,
            pooled.totals.failed + pooled.lost,
            delays,
            self.repetitions as usize,
        );
        ArchitectureSummary {
            capacity: None,
            drain_rate: self.drain_rate_of(&all, &reps),
            cost: cost_of(&pooled, self.repetitions as usize),
            cost_by_staleness_budget,
            settle_s: self.settle_s(name),
            foreign_rows: self.foreign_rows(name),
            peak_backlog: reps
                .iter()
                .filter_map(|r| self.backlog.get(&key(*r)))
                .flat_map(|points| points.iter().map(|p| p.1))
                .reduce(f64::max),
            breaker_open_s: self.breaker_open_s(name),
            breaker_closed_s: self.breaker_closed_s(name),
            produce_ack_ms: self.produce_ack_ms(name, &reps),
            database: self.database_of(name, &reps, &pooled.phases),
            database_run: self.database_run_of(name, &reps, pooled.totals.requests),
            sent_late_ms: (self.manifest.driver == crate::experiment::DriverSetting::Native)
                .then(|| figures::sent_late(&all))
                .flatten(),
            totals: pooled.totals,
            phases: pooled.phases,
            acknowledged: pooled.acknowledged,
            stored: pooled.stored,
            lost: pooled.lost,
            redelivered: pooled.redelivered,
            duplicates: pooled.redelivered,
            lost_with_broker: all
                .iter()
                .filter(|q| q.lost)
                .filter(|q| {
                    self.memory_broker_killed
                        .get(&q.repetition)
                        .is_some_and(|kill| q.intended_s + q.latency_us as f64 / 1e6 < *kill)
                })
                .count() as u64,
            stored_unacknowledged: pooled.stored_unacknowledged,
            conflicts: self.conflicts_of(name, &reps),
            stale: pooled.stale,
            freshness_ms: pooled.freshness,
            recovery_s: pooled.recovery_s,
            data_recovery_s: pooled.data_recovery_s,
            data_current_s: pooled.data_current_s,
            drain_s: pooled.drain_s,
            repetitions,
            per_repetition,
            control: None,
        }
    }

    /// How fast the backlog of each repetition's last fault was stored,
    /// over the repetitions `reps` of the rows `all`.
    fn drain_rate_of(
        &self,
        all: &[&join::Request],
        reps: &[u32],
    ) -> Option<run_folder::summary::DrainRate> {
        let drained: Vec<figures::Drained> = reps
            .iter()
            .filter_map(|r| {
                let rows = all.iter().copied().filter(|q| q.repetition == *r);
                figures::drain_rate(rows, &self.windows[r])
            })
            .collect();
        figures::drain_summary(&drained)
    }

    /// The figures of the control repetitions `reps` of `name`, and the
    /// faulted runs' changes (rows `faulted.0` of repetitions `faulted.1`)
    /// against theirs.
    fn control(
        &self,
        name: &str,
        faulted: (&[join::Request], &[u32]),
        (rows, reps): (&[join::Request], &[u32]),
    ) -> ControlSummary {
        let rows: Vec<&join::Request> = rows.iter().collect();
        let warmup_s = self.experiment.warmup().as_secs_f64();
        let figures = Figures::of(
            &rows,
            &self.windows,
            self.audit_of(name, reps),
            self.experiment.economics.staleness_budget.0.as_micros() as u64,
            warmup_s,
        );
        let faulted_rows: Vec<&join::Request> = faulted.0.iter().collect();
        let p99_ratios = |rows: &[&join::Request], reps: &[u32]| {
            control::ratios(reps.iter().map(|r| {
                let p99 = |phase| control::p99_in(rows, *r, &self.windows, phase, warmup_s);
                (p99(Phase::Before), p99(Phase::After))
            }))
        };
        let ack_ratios = |reps: &[u32]| {
            control::ratios(reps.iter().map(|r| {
                let ack = self.produce_ack_ms(name, &[*r]);
                (
                    ack.get(&Phase::Before).copied(),
                    ack.get(&Phase::After).copied(),
                )
            }))
        };
        ControlSummary {
            totals: figures.totals,
            phases: figures.phases,
            lost: figures.lost,
            freshness_ms: figures.freshness,
            produce_ack_ms: self.produce_ack_ms(name, reps),
            repetitions: reps.len() as u32,
            latency_p99_change: control::beyond(
                p99_ratios(&faulted_rows, faulted.1),
                p99_ratios(&rows, reps),
            ),
            produce_ack_change: control::beyond(ack_ratios(faulted.1), ack_ratios(reps)),
        }
    }

    /// Fault over → the breaker of `name` reads closed for good, in the
    /// worst repetition; `None` without a breaker or if one never closed.
    fn breaker_closed_s(&self, name: &str) -> Option<f64> {
        let each = (0..self.repetitions).filter_map(|r| {
            let seconds = self.scraped.get(&(name.to_string(), r))?;
            let end = self.windows[&r].iter().map(|w| w.1).reduce(f64::max)?;
            let states: Vec<(u32, f64)> = seconds
                .iter()
                .filter_map(|(t, (_, breaker))| Some((*t, (*breaker)?)))
                .collect();
            let (last_t, last) = *states.last()?;
            if BreakerState::from_code(last) != Some(BreakerState::Closed) {
                return Some(None);
            }
            // The last second that did not read closed, from the fault on.
            let last_open = states
                .iter()
                .filter(|(t, b)| {
                    f64::from(*t) + 1.0 > end
                        && BreakerState::from_code(*b) != Some(BreakerState::Closed)
                })
                .map(|(t, _)| *t)
                .next_back();
            debug_assert!(last_open.is_none_or(|t| t < last_t));
            Some(Some(
                last_open.map_or(0.0, |t| (f64::from(t) + 1.0 - end).max(0.0)),
            ))
        });
        each.reduce(|a, b| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        })
        .flatten()
    }

    /// Seconds the breaker of `name` read open, in the worst repetition
    /// that has a breaker; `None` without one.
    fn breaker_open_s(&self, name: &str) -> Option<f64> {
        (0..self.repetitions)
            .filter_map(|r| {
                let seconds = self.scraped.get(&(name.to_string(), r))?;
                let states = || seconds.values().filter_map(|(_, breaker)| *breaker);
                let open = |b: &f64| BreakerState::from_code(*b) == Some(BreakerState::Open);
                (states().count() > 0).then(|| states().filter(open).count() as f64)
            })
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::figures::drain;
    use super::series::cdf;

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
