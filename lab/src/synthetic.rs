//! Run folders with known answers, written without a stack: for the
//! analysis tests and the analysis benchmark.
//!
//! Two architectures at a constant rate with one fault window:
//! - `rest` fails every request due during the window with a 503
//!   (`rest_unacknowledged_stored` of those failures are stored anyway);
//!   every success is stored `fresh_ms` after its answer.
//! - `kafka` answers every request; the events due during the window are
//!   stored `late_s` after the window ends, except every `lost_every`-th,
//!   which is never stored. Its backlog grows during the window and reads zero
//!   `drain_s` after it; its breaker reads open during the window. With
//!   `stalled_s`, what is due in that long after the window is stored only
//!   at its end (data-path recovery `stalled_s`).
//! - Each service counts `redelivered` deliveries of events already stored,
//!   the consumer's counter restarting from zero half-way (a restarted
//!   process).

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::experiment::DriverSetting;
use crate::run_folder::frames::{faults_frame, metrics_frame, requests_frame, stored_frame};
use crate::run_folder::rows::{FaultRecord, MetricRow, Outcome, Row, Sample, StoredRow};
use crate::run_folder::{self, Host, Manifest, RepetitionSummary, Status, Versions};

/// What the synthetic run contains.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub rps: u32,
    pub seconds: u32,
    pub repetitions: u32,
    /// The fault window, whole seconds.
    pub fault: (u32, u32),
    pub latency_ms: u64,
    pub fresh_ms: u64,
    pub late_s: u64,
    pub lost_every: u64,
    /// Deliveries of an already stored event that each service counts
    /// (`events_duplicate_total`): REST's, then the consumer's.
    pub redelivered: (u64, u64),
    /// Events the consumer found stored before with another payload
    /// (`events_conflict_total`), from half the run on.
    pub conflicts: u64,
    pub rest_unacknowledged_stored: usize,
    pub drain_s: u32,
    /// Kafka events due in the first `stalled_s` seconds after the window
    /// are stored only at its end (a consumer whose breaker is still open).
    pub stalled_s: u32,
    /// Requests due in the first `slow_start.0` seconds take `slow_start.1`
    /// milliseconds (start-up).
    pub slow_start: (u32, u64),
    /// `workload.warmup` in whole seconds, when the scenario sets it.
    pub warmup_s: Option<u32>,
    /// The database is back this long after the fault's end (its verified
    /// recovery); REST fails until then.
    pub db_back_ms: u64,
    /// REST fails this much longer still (a pool reconnecting).
    pub rest_slow_ms: u64,
    /// The consumer's breaker reads open this many seconds after the
    /// window too.
    pub breaker_extra_s: u32,
    /// A control repetition after the others: the same load, no fault
    /// (everything answered, everything stored `fresh_ms` after its answer),
    /// with `control_latency_ms` for every answer.
    pub control: Option<u64>,
    /// How many controls run when `control` is set.
    pub controls: u32,
    /// Requests due from `slow_after.0` seconds on take `slow_after.1`
    /// milliseconds; in the control too when `control_drifts`.
    pub slow_after: Option<(u32, u64)>,
    pub control_drifts: bool,
    /// The consumer's gauge after the fault: `Some(v)` reads `v` (0: the
    /// restarted consumer that did not know; −1: one that says so) instead
    /// of the true backlog, which the lab's own measure then carries.
    pub consumer_gauge_after: Option<f64>,
    /// The fault's kind as recorded (`db-crash` by default).
    pub fault_kind: &'static str,
    /// Kafka events due in the last `lost_before` tenths of a second before
    /// the fault are never stored.
    pub lost_before: u64,
    /// Repetition `r`'s fault ends `r % (vary_fault_s + 1)` seconds later:
    /// repetitions that differ, as real ones do.
    pub vary_fault_s: u32,
    /// `Some(j)`: the scenario sets `fault_jitter = "{j}s"`, and repetition
    /// `r`'s fault starts and ends `r` seconds later (`r` ≤ `j`).
    pub jitter_s: Option<u32>,
    /// `Some(j)`: the scenario sets `fault_length_jitter = "{j}s"`, and
    /// repetition `r`'s fault lasts `r` seconds longer (`r` ≤ `j`).
    pub length_jitter_s: Option<u32>,
    /// Every tenth request of the second architecture is sent this late
    /// after its intended time (the driver's own delay).
    pub sent_late_us: u64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self {
            rps: 10,
            seconds: 30,
            repetitions: 1,
            fault: (10, 20),
            latency_ms: 2,
            fresh_ms: 5,
            late_s: 70,
            lost_every: 4,
            redelivered: (2, 5),
            conflicts: 0,
            rest_unacknowledged_stored: 2,
            drain_s: 3,
            stalled_s: 0,
            slow_start: (0, 0),
            warmup_s: None,
            db_back_ms: 0,
            rest_slow_ms: 0,
            breaker_extra_s: 0,
            control: None,
            controls: 1,
            slow_after: None,
            control_drifts: false,
            consumer_gauge_after: None,
            fault_kind: "db-crash",
            lost_before: 0,
            vary_fault_s: 0,
            jitter_s: None,
            length_jitter_s: None,
            sent_late_us: 0,
        }
    }
}

impl Synthetic {
    /// Requests per architecture and repetition.
    pub fn requests(&self) -> u64 {
        u64::from(self.rps) * u64::from(self.seconds)
    }

    /// Requests per architecture and repetition due during the fault.
    pub fn during(&self) -> u64 {
        u64::from(self.rps) * u64::from(self.fault.1 - self.fault.0)
    }

    /// Kafka events lost per repetition.
    pub fn lost(&self) -> u64 {
        self.during().div_ceil(self.lost_every)
    }

    /// The scenario of the run.
    pub fn scenario(&self) -> String {
        format!(
            "name = \"synthetic\"\ntitle = \"Synthetic run\"\nduration = \"{}s\"\nseed = 7\nrepetitions = {}\ncontrol = {}\n{}\
             [workload]\nrate = {{ shape = \"constant\", rps = {} }}\n{}\
             [[architectures]]\nkind = \"rest\"\nname = \"rest\"\n\
             [[architectures]]\nkind = \"kafka\"\nname = \"kafka\"\n\
             [[faults]]\nkind = \"db-crash\"\nat = \"{}s\"\nduration = \"{}s\"\n\
             [[hypotheses]]\ntitle = \"REST fails at most half its requests during the fault\"\n\
             architecture = \"rest\"\nmetric = \"error_rate\"\nphase = \"during\"\nmax = 0.5\n\
             [[hypotheses]]\ntitle = \"Kafka loses nothing\"\narchitecture = \"kafka\"\nmetric = \"lost_events\"\nmax = 0\n\
             [economics]\ncurrency = \"EUR\"\norder_value = 25.0\norders_lost_per_failed_event = 0.05\n\
             production_rps = {}\noutages_per_year = 4\nstaleness_budget = \"60s\"\n",
            self.seconds,
            self.repetitions,
            self.control.map_or(0, |_| self.controls),
            self.jitter_s
                .map(|j| format!("fault_jitter = \"{j}s\"\n"))
                .into_iter()
                .chain(
                    self.length_jitter_s
                        .map(|j| format!("fault_length_jitter = \"{j}s\"\n"))
                )
                .collect::<String>(),
            self.rps,
            self.warmup_s
                .map(|s| format!("warmup = \"{s}s\"\n"))
                .unwrap_or_default(),
            self.fault.0,
            self.fault.1 - self.fault.0,
            self.rps * 10,
        )
    }

    /// The requests of one repetition starting at `t0` (Unix µs), and the
    /// rows the audit finds stored.
    fn rows(&self, repetition: u32, t0: i64, names: &[String]) -> (Vec<Row>, Vec<StoredRow>) {
        let (f0, f1) = (
            u64::from(self.fault.0) * 1_000_000,
            u64::from(self.fault.1) * 1_000_000,
        );
        let mut rows = Vec::new();
        let mut stored_rows = Vec::new();
        let mut unacknowledged = 0;
        let mut during_kafka = 0u64;
        let n = self.requests();
        for seq in 0..n {
            let intended_us = seq * 1_000_000 / u64::from(self.rps);
            let in_fault = (f0..f1).contains(&intended_us);
            let rest_down =
                (f0..f1 + (self.db_back_ms + self.rest_slow_ms) * 1000).contains(&intended_us);
            for (architecture, name) in names.iter().enumerate() {
                let event_id = uuid::Uuid::from_u64_pair(
                    u64::from(repetition) << 32 | architecture as u64,
                    seq,
                );
                let latency_ms = match self.slow_after {
                    _ if intended_us < u64::from(self.slow_start.0) * 1_000_000 => {
                        self.slow_start.1
                    }
                    Some((from, ms)) if intended_us >= u64::from(from) * 1_000_000 => ms,
                    _ => self.latency_ms,
                };
                let finished_us = intended_us + latency_ms * 1000;
                let rest = architecture == 0;
                let ok = !(rest && rest_down);
                rows.push(Row {
                    architecture: architecture as u16,
                    seq,
                    intended_us,
                    sent_us: intended_us
                        + if architecture == 1 && seq.is_multiple_of(10) {
                            self.sent_late_us
                        } else {
                            0
                        },
                    finished_us,
                    outcome: Outcome::Status(match (rest, ok) {
                        (true, true) => 201,
                        (true, false) => 503,
                        _ => 202,
                    }),
                    attempts: 1,
                    event_id,
                });
                let acked_at = t0 + finished_us as i64;
                let stored_at = if rest {
                    if ok {
                        Some(acked_at + self.fresh_ms as i64 * 1000)
                    } else if unacknowledged < self.rest_unacknowledged_stored {
                        unacknowledged += 1;
                        Some(acked_at)
                    } else {
                        None
                    }
                } else if intended_us < f0 && intended_us + self.lost_before * 100_000 >= f0 {
                    None
                } else if in_fault {
                    during_kafka += 1;
                    (!(during_kafka - 1).is_multiple_of(self.lost_every))
                        .then_some(t0 + f1 as i64 + self.late_s as i64 * 1_000_000)
                } else if intended_us < f1 + u64::from(self.stalled_s) * 1_000_000
                    && intended_us >= f1
                {
                    Some(t0 + (f1 + u64::from(self.stalled_s) * 1_000_000) as i64)
                } else {
                    Some(acked_at + self.fresh_ms as i64 * 1000)
                };
                if let Some(stored_at_us) = stored_at {
                    stored_rows.push(StoredRow {
                        event_id,
                        stored_by: name.clone(),
                        sent_at_us: t0 + intended_us as i64,
                        stored_at_us,
                    });
                }
            }
        }
        (rows, stored_rows)
    }

    /// The consumer's scraped backlog and breaker state, each second.
    fn scraped(&self) -> Vec<MetricRow> {
        let mut scraped = Vec::new();
        for t in 0..self.seconds + 5 {
            let (backlog, breaker) = if t < self.fault.0 {
                (0.0, 0.0)
            } else if t < self.fault.1 {
                (f64::from((t - self.fault.0 + 1) * self.rps), 2.0)
            } else if t < self.fault.1 + self.drain_s {
                (f64::from(self.rps * (self.fault.1 + self.drain_s - t)), 0.0)
            } else {
                (0.0, 0.0)
            };
            let breaker = if t >= self.fault.1 && t < self.fault.1 + self.breaker_extra_s {
                2.0
            } else {
                breaker
            };
            let gauge = match self.consumer_gauge_after {
                Some(reading) if t >= self.fault.1 => reading,
                _ => backlog,
            };
            if self.consumer_gauge_after.is_some() {
                scraped.push(MetricRow {
                    t_s: f64::from(t) + 0.5,
                    architecture: "kafka".into(),
                    service: "lab".into(),
                    sample: Sample {
                        metric: faultline_services::metrics::names::LAB_BACKLOG.into(),
                        labels: String::new(),
                        value: backlog,
                    },
                });
            }
            for (metric, value) in [
                (
                    faultline_services::metrics::names::CONSUMER_BACKLOG_MESSAGES,
                    gauge,
                ),
                (
                    faultline_services::metrics::names::CIRCUIT_BREAKER_STATE,
                    breaker,
                ),
            ] {
                scraped.push(MetricRow {
                    t_s: f64::from(t) + 0.5,
                    architecture: "kafka".into(),
                    service: "consumer".into(),
                    sample: Sample {
                        metric: metric.into(),
                        labels: String::new(),
                        value,
                    },
                });
            }
        }
        // Redeliveries: REST's counter climbs to its total; the consumer's
        // counts some, restarts from zero mid-run, and counts the rest.
        let (rest, consumer) = self.redelivered;
        let half = self.seconds / 2;
        for t in 0..self.seconds + 5 {
            let rest_value = if t < half { 0 } else { rest };
            let consumer_value = match t {
                t if t < 2 => 0,
                t if t < half => consumer / 2,
                t if t == half => 0,
                _ => consumer - consumer / 2,
            };
            for (architecture, service, value) in [
                ("rest", "rest", rest_value),
                ("kafka", "consumer", consumer_value),
            ] {
                scraped.push(MetricRow {
                    t_s: f64::from(t) + 0.25,
                    architecture: architecture.into(),
                    service: service.into(),
                    sample: Sample {
                        metric: format!(
                            "{}_total",
                            faultline_services::metrics::names::EVENTS_DUPLICATE
                        ),
                        labels: String::new(),
                        value: value as f64,
                    },
                });
            }
            scraped.push(MetricRow {
                t_s: f64::from(t) + 0.25,
                architecture: "kafka".into(),
                service: "consumer".into(),
                sample: Sample {
                    metric: format!(
                        "{}_total",
                        faultline_services::metrics::names::EVENTS_CONFLICT
                    ),
                    labels: String::new(),
                    value: if t < half { 0.0 } else { self.conflicts as f64 },
                },
            });
        }
        // CPU time, growing while the load runs: the REST service 100 µs
        // per request of its own, PostgreSQL 200 µs per request of both
        // architectures.
        for t in 0..self.seconds + 5 {
            let t_s = f64::from(t) + 0.5;
            let loaded = t_s.min(f64::from(self.seconds)) * f64::from(self.rps);
            for (architecture, service, value) in [
                ("rest", "rest", loaded * 100e-6),
                ("", "postgresql", 2.0 * loaded * 200e-6),
            ] {
                scraped.push(MetricRow {
                    t_s,
                    architecture: architecture.into(),
                    service: service.into(),
                    sample: Sample {
                        metric: crate::collect::LAB_CPU.into(),
                        labels: String::new(),
                        value,
                    },
                });
            }
        }
        scraped
    }

    /// The fault, as it happened in every repetition.
    fn fault_record(&self) -> FaultRecord {
        FaultRecord {
            kind: self.fault_kind.into(),
            target: "postgres".into(),
            planned_start_s: f64::from(self.fault.0),
            planned_end_s: f64::from(self.fault.1),
            actual_start_s: Some(f64::from(self.fault.0)),
            actual_end_s: Some(f64::from(self.fault.1)),
            verified_start: true,
            verified_end: true,
            effect_ms: Some(15.0),
            recovery_ms: Some(self.db_back_ms as f64),
            verified: true,
            detail: String::new(),
        }
    }

    /// The manifest of a complete run of `repetitions`.
    fn manifest(&self, names: Vec<String>, repetitions: Vec<RepetitionSummary>) -> Manifest {
        Manifest {
            schema: run_folder::summary::SCHEMA,
            experiment: "synthetic".into(),
            run_id: "20261125T000000Z-synthetic".into(),
            status: Status::Complete,
            reasons: Vec::new(),
            started_at: "2026-11-25T00:00:00Z".into(),
            finished_at: Some("2026-11-25T00:01:00Z".into()),
            seed: 7,
            driver: DriverSetting::Native,
            architectures: names,
            versions: Versions {
                faultline: faultline_services::VERSION.into(),
                rustc: "rustc".into(),
                postgres: "17".into(),
                broker: "synthetic".into(),
                k6: None,
            },
            host: Host {
                cores: 2,
                memory_bytes: 1 << 34,
                kernel: "linux".into(),
                hostname: "synthetic".into(),
            },
            repetitions,
        }
    }

    /// What the manifest says of repetition `repetition`, started at `t0`.
    fn repetition_summary(&self, repetition: u32, t0: i64, control: bool) -> RepetitionSummary {
        RepetitionSummary {
            repetition,
            status: Status::Complete,
            reasons: Vec::new(),
            stack_startup_s: 1.0,
            load_end_s: f64::from(self.seconds),
            drain_s: BTreeMap::from([("kafka".to_string(), Some(0.5))]),
            foreign_rows: BTreeMap::new(),
            t0_unix_us: t0,
            broker: "synthetic".into(),
            broker_durable: false,
            control,
            reference: None,
        }
    }

    /// Writes the run folder at `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("experiment.toml"), self.scenario())?;
        let names = vec!["rest".to_string(), "kafka".to_string()];
        let t0_base: i64 = 1_764_000_000_000_000;
        let mut requests = Vec::new();
        let mut stored = Vec::new();
        let mut metrics = Vec::new();
        let mut faults = Vec::new();
        let mut repetitions = Vec::new();
        for repetition in 0..self.repetitions {
            let moved = self.jitter_s.map_or(0, |j| repetition.min(j));
            let longer = self.length_jitter_s.map_or(0, |j| repetition.min(j));
            let this = Synthetic {
                fault: (
                    self.fault.0 + moved,
                    self.fault.1 + moved + longer + repetition % (self.vary_fault_s + 1),
                ),
                ..self.clone()
            };
            let t0 = t0_base + i64::from(repetition) * 1_000_000_000;
            let (rows, stored_rows) = this.rows(repetition, t0, &names);
            metrics.push(metrics_frame(repetition, &this.scraped())?);
            faults.push(faults_frame(repetition, &[this.fault_record()])?);
            requests.push(requests_frame(repetition, &names, &rows)?);
            stored.push(stored_frame(repetition, t0, &stored_rows)?);
            repetitions.push(this.repetition_summary(repetition, t0, false));
        }
        if let Some(latency_ms) = self.control {
            // The same run with its fault window moved past the end.
            let control = Synthetic {
                fault: (self.seconds, self.seconds),
                latency_ms,
                stalled_s: 0,
                db_back_ms: 0,
                rest_slow_ms: 0,
                slow_start: (0, 0),
                slow_after: self.slow_after.filter(|_| self.control_drifts),
                ..self.clone()
            };
            for repetition in self.repetitions..self.repetitions + self.controls {
                let t0 = t0_base + i64::from(repetition) * 1_000_000_000;
                let (rows, stored_rows) = control.rows(repetition, t0, &names);
                metrics.push(metrics_frame(repetition, &control.scraped())?);
                requests.push(requests_frame(repetition, &names, &rows)?);
                stored.push(stored_frame(repetition, t0, &stored_rows)?);
                repetitions.push(self.repetition_summary(repetition, t0, true));
            }
        }
        for (frame, frames) in [
            (&run_folder::REQUESTS, requests),
            (&run_folder::STORED, stored),
            (&run_folder::METRICS, metrics),
            (&run_folder::FAULTS, faults),
        ] {
            frame.write(dir, &mut concat_frames(frames)?)?;
        }
        let manifest = self.manifest(names, repetitions);
        run_folder::save(&manifest, &dir.join(run_folder::MANIFEST))?;
        Ok(())
    }
}

fn concat_frames(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut frames = frames.into_iter();
    let mut first = frames.next().unwrap_or_default();
    for frame in frames {
        first.vstack_mut(&frame)?;
    }
    Ok(first)
}
