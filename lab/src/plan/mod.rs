//! A scenario lowered to what a run does: the stack with every service's
//! flags, the fault timeline, the load schedule, the driver's settings and
//! the seed of each repetition. Pure: no I/O, printable as JSON
//! (`faultline plan FILE`), consumed by the runner and by both drivers.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use faultline_services::consumer::Mode;
use faultline_stack::BrokerTarget;
use serde::{Serialize, Serializer};

pub mod grid;
pub mod rate;

pub use rate::{RateSegment, schedule_of};

use crate::experiment::service::{
    AuditSettings, MetricsSettings, Ready, RequestSettings, TopicSpec,
};
use crate::experiment::{
    ArchitectureSettings, DatabaseChoice, DriverSetting, Experiment, FaultKind, Pool, Retries,
    Span, seconds,
};
use crate::secrets::expanded;

/// Serialises a duration that may be absent as seconds.
fn optional_seconds<S: Serializer>(d: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serializer.serialize_f64(d.as_secs_f64()),
        None => serializer.serialize_none(),
    }
}

fn broker_name<S: Serializer>(target: &BrokerTarget, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(target)
}

/// How a driver sends.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DriverSettings {
    /// Longest wait for one answer.
    #[serde(rename = "timeout_ms", serialize_with = "crate::experiment::millis")]
    pub timeout: Duration,
    /// Most requests in flight; a due request beyond it is counted as not sent.
    pub max_in_flight: usize,
    /// Most connections, each carrying one request at a time; a request
    /// due while all are busy waits for one. `None`: one per request in
    /// flight.
    pub connections: Option<usize>,
    /// Distinct drivers the events are spread over.
    pub drivers: u32,
    /// Seed of the event stream.
    pub seed: u64,
    /// Retries of a retriable failure, with the same event id.
    pub retries: crate::experiment::Retries,
}

/// Everything one run of a scenario does, decided before anything starts.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The scenario's name.
    pub experiment: String,
    /// How long load is offered.
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    pub repetitions: u32,
    /// Repetitions with no fault (controls), numbered after the faulted
    /// ones and run among them ([`Plan::order`]).
    pub controls: u32,
    /// Longest wait after the load for consumers to store what they took.
    #[serde(rename = "drain_timeout_s", serialize_with = "seconds")]
    pub drain_timeout: Duration,
    pub stack: StackPlan,
    /// Before each repetition's load, how long PostgreSQL alone stores rows
    /// each way, the capacity's references (measured by `reference.rs`).
    #[serde(
        rename = "reference_s",
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_seconds"
    )]
    pub reference: Option<Duration>,
    /// The fault timeline, in the scenario's order, as written.
    pub faults: Vec<FaultSpec>,
    /// How far each faulted repetition's faults move from the times
    /// written (`fault_jitter`), in milliseconds; zero without one.
    pub fault_offsets_ms: Vec<i64>,
    /// How much longer (or shorter) each faulted repetition's faults last
    /// than written (`fault_length_jitter`), in milliseconds.
    pub fault_length_offsets_ms: Vec<i64>,
    pub load: LoadPlan,
}

impl Plan {
    /// Lowers a validated scenario; `driver` overrides the scenario's.
    pub fn of(experiment: &Experiment, driver: Option<DriverSetting>) -> Self {
        Self {
            experiment: experiment.name.clone(),
            duration: experiment.duration.0,
            repetitions: experiment.repetitions,
            controls: experiment.control.0,
            drain_timeout: experiment.drain_timeout.0,
            stack: StackPlan::of(experiment),
            reference: experiment.capacity.reference.as_ref().map(|r| r.0),
            faults: experiment
                .faults
                .iter()
                .enumerate()
                .map(|(i, fault)| FaultSpec {
                    seed: experiment.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    kind: fault.kind.clone(),
                    start: fault.at.0,
                    duration: fault.duration.0,
                })
                .collect(),
            fault_offsets_ms: (0..experiment.repetitions)
                .map(|r| fault_offset_ms(experiment, r))
                .collect(),
            fault_length_offsets_ms: (0..experiment.repetitions)
                .map(|r| fault_length_offset_ms(experiment, r))
                .collect(),
            load: LoadPlan::of(experiment, driver),
        }
    }

    /// Repetitions to run, the control included.
    pub fn runs(&self) -> u32 {
        self.repetitions + self.controls
    }

    /// The order the repetitions run in: the controls spread among the
    /// faulted ones (`0 C 1 C 2` …, each after the faulted repetition
    /// nearest its share), so whatever drifts over a session of runs
    /// reaches both alike.
    pub fn order(&self) -> Vec<u32> {
        let (faulted, controls) = (u64::from(self.repetitions), u64::from(self.controls));
        let mut order = Vec::with_capacity(self.runs() as usize);
        let mut placed = 0;
        for i in 0..faulted {
            order.push(i as u32);
            let due = (2 * (i + 1) * controls + faulted) / (2 * faulted.max(1));
            while placed < due.min(controls) {
                order.push((faulted + placed) as u32);
                placed += 1;
            }
        }
        order.extend((faulted + placed..faulted + controls).map(|n| n as u32));
        order
    }

    /// Whether repetition `number` is a control (no fault).
    pub fn is_control(&self, number: u32) -> bool {
        number >= self.repetitions
    }

    /// The faults of repetition `number`, moved by its offset: none for
    /// a control.
    pub fn faults_of(&self, number: u32) -> Vec<FaultSpec> {
        if self.is_control(number) {
            return Vec::new();
        }
        let offset = self
            .fault_offsets_ms
            .get(number as usize)
            .copied()
            .unwrap_or(0);
        let longer = self
            .fault_length_offsets_ms
            .get(number as usize)
            .copied()
            .unwrap_or(0);
        self.faults
            .iter()
            .map(|fault| FaultSpec {
                start: shifted(fault.start, offset),
                duration: shifted(fault.duration, longer),
                ..fault.clone()
            })
            .collect()
    }

    /// The architectures' names, in the scenario's order: the index of one
    /// is its number in the load driver's rows.
    pub fn architectures(&self) -> Vec<String> {
        self.stack
            .architectures
            .iter()
            .map(|a| a.name().to_string())
            .collect()
    }

    /// The architectures that have a consumer to drain.
    pub fn kafka_architectures(&self) -> Vec<String> {
        self.stack
            .architectures
            .iter()
            .filter(|a| matches!(a, Architecture::Kafka { .. }))
            .map(|a| a.name().to_string())
            .collect()
    }
}

/// The load every architecture is offered.
#[derive(Debug, Clone, Serialize)]
pub struct LoadPlan {
    pub driver: DriverSetting,
    /// The rate over time, lowered to linear segments.
    pub segments: Vec<RateSegment>,
    /// Requests each architecture is sent in one repetition.
    pub requests: usize,
    /// The highest rate of any segment, per second.
    pub peak_rps: f64,
    /// Everything the native driver needs but the seed.
    pub settings: DriverSettings,
    /// The seed of the event stream of each repetition.
    pub seeds: Vec<u64>,
    /// Each architecture's clients' retries, in the scenario's order.
    pub retries: Vec<Retries>,
}

impl LoadPlan {
    fn of(experiment: &Experiment, driver: Option<DriverSetting>) -> Self {
        let workload = &experiment.workload;
        let segments = workload.rate.segments(experiment.duration.0);
        let peak_rps = segments
            .iter()
            .map(|s| s.from_rps.max(s.to_rps))
            .fold(0.0, f64::max);
        let retries: Vec<Retries> = experiment
            .architectures
            .iter()
            .map(|a| a.retries(workload).clone())
            .collect();
        // Outstanding per request at worst: every attempt waits its whole
        // timeout, and every backoff between.
        let busy = retries
            .iter()
            .map(|r| workload.client_timeout.0 * (r.max_retries + 1) + r.total_wait())
            .max()
            .unwrap_or(workload.client_timeout.0);
        Self {
            driver: driver.unwrap_or(workload.driver),
            requests: schedule_of(&segments).len(),
            peak_rps,
            segments,
            settings: DriverSettings {
                timeout: workload.client_timeout.0,
                max_in_flight: max_in_flight(peak_rps, busy),
                connections: workload.connections.map(|n| n as usize),
                drivers: workload.drivers,
                seed: experiment.seed,
                retries: workload.retries.clone(),
            },
            retries,
            seeds: (0..experiment.repetitions + experiment.control.0)
                .map(|r| repetition_seed(experiment.seed, r))
                .collect(),
        }
    }

    /// The send times of every request, from the repetition's start.
    pub fn schedule(&self) -> Vec<Duration> {
        schedule_of(&self.segments)
    }

    /// The native driver's settings for architecture number `architecture`
    /// in `repetition`.
    pub fn settings_of(&self, repetition: u32, architecture: usize) -> DriverSettings {
        DriverSettings {
            seed: self.seeds[repetition as usize],
            retries: self.retries[architecture].clone(),
            ..self.settings.clone()
        }
    }
}

/// The seed of repetition `r`'s event stream: repetitions differ, the same
/// scenario gives the same streams.
pub fn repetition_seed(seed: u64, repetition: u32) -> u64 {
    seed ^ u64::from(repetition).wrapping_mul(0x9E37_79B9)
}

/// How far repetition `repetition`'s faults move: a whole number of
/// milliseconds drawn evenly from ± `fault_jitter` by the scenario's seed
/// (SplitMix64 of the repetition's seed); 0 without a jitter.
pub fn fault_offset_ms(experiment: &Experiment, repetition: u32) -> i64 {
    draw_ms(experiment.seed, repetition, experiment.fault_jitter, 0xFA17)
}

/// How much longer repetition `repetition`'s faults last, drawn as
/// [`fault_offset_ms`] from ± `fault_length_jitter`, apart from it.
pub fn fault_length_offset_ms(experiment: &Experiment, repetition: u32) -> i64 {
    draw_ms(
        experiment.seed,
        repetition,
        experiment.fault_length_jitter,
        0x001E_967E,
    )
}

/// A whole number of milliseconds in ± `jitter`, from the repetition's
/// seed and `salt` (one per quantity drawn).
fn draw_ms(seed: u64, repetition: u32, jitter: Option<Span>, salt: u64) -> i64 {
    let span = jitter.map_or(0, |j| j.0.as_millis() as u64);
    if span == 0 {
        return 0;
    }
    let mut x = repetition_seed(seed, repetition).wrapping_add(0x9E37_79B9_7F4A_7C15) ^ salt;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % (2 * span + 1)) as i64 - span as i64
}

/// `at` moved by `offset_ms`, never below zero.
fn shifted(at: Duration, offset_ms: i64) -> Duration {
    let ms = at.as_millis() as i64 + offset_ms;
    Duration::from_millis(ms.max(0) as u64)
}

/// The most requests one driver keeps in flight: twice what the peak rate
/// can have outstanding when each request is `busy` that long (every
/// attempt waits its whole timeout, and every backoff between), and at
/// least 1,000. A request can only be refused by this bound when the driver
/// itself falls behind, never because the system under test is slow.
pub fn max_in_flight(peak_rps: f64, busy: Duration) -> usize {
    let outstanding = peak_rps * busy.as_secs_f64();
    (2.0 * outstanding).ceil().max(1000.0) as usize
}

/// What to bring up.
#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    #[serde(serialize_with = "database_name")]
    pub database: DatabaseTarget,
    #[serde(serialize_with = "broker_name")]
    pub broker: BrokerTarget,
    pub partitions: i32,
    pub replication_factor: i32,
    pub min_insync_replicas: i32,
    /// The keys of the scenario's Kafka client properties (their values
    /// may be secrets).
    pub kafka_properties: Vec<String>,
    pub architectures: Vec<Architecture>,
}

impl StackPlan {
    /// The scenario's stack: database and broker choices, and each
    /// architecture with the service flags its settings become.
    pub fn of(experiment: &Experiment) -> Self {
        let stack = &experiment.stack;
        Self {
            database: DatabaseTarget {
                choice: stack.database,
                url: stack.database_url.as_deref().map(expanded),
            },
            broker: BrokerTarget {
                choice: stack.broker,
                bootstrap_servers: stack.bootstrap_servers.as_deref().map(expanded),
                properties: stack
                    .kafka
                    .iter()
                    .map(|(k, v)| (k.clone(), expanded(v)))
                    .collect(),
            },
            partitions: stack.partitions as i32,
            replication_factor: stack.replication().0 as i32,
            min_insync_replicas: stack.replication().1 as i32,
            kafka_properties: stack.kafka.keys().cloned().collect(),
            architectures: experiment
                .architectures
                .iter()
                .map(|a| Architecture::of(a, experiment.folder.as_deref().unwrap_or(Path::new(""))))
                .collect(),
        }
    }

    /// REST plus one Kafka path per consumer mode, with the services'
    /// own defaults.
    pub fn standard(modes: &[Mode], partitions: i32) -> Self {
        let mut architectures = vec![Architecture::Rest {
            name: "rest".into(),
            args: Vec::new(),
        }];
        for mode in modes {
            architectures.push(Architecture::Kafka {
                name: format!("kafka-{}", mode_name(*mode)),
                mode: *mode,
                producer_args: Vec::new(),
                consumer_args: Vec::new(),
            });
        }
        Self {
            database: DatabaseTarget::default(),
            broker: BrokerTarget::default(),
            partitions,
            replication_factor: 1,
            min_insync_replicas: 1,
            kafka_properties: Vec::new(),
            architectures,
        }
    }
}

impl StackPlan {
    /// How each architecture's topic is created.
    pub fn topics(&self) -> faultline_stack::broker::TopicSettings {
        faultline_stack::broker::TopicSettings {
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            min_insync_replicas: self.min_insync_replicas,
        }
    }
}

/// A consumer mode's name, as the consumer's `--mode` flag takes it.
pub fn mode_name(mode: Mode) -> String {
    clap::ValueEnum::to_possible_value(&mode)
        .expect("every mode has a name")
        .get_name()
        .to_string()
}

/// One architecture under test, with the flags of its services.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Architecture {
    /// The REST service writing straight to PostgreSQL.
    Rest { name: String, args: Vec<String> },
    /// A producer, a topic and a consumer in `mode`.
    Kafka {
        name: String,
        mode: Mode,
        producer_args: Vec<String>,
        consumer_args: Vec<String>,
    },
    /// The user's own processes.
    Service(Box<ServicePlan>),
}

/// A `service` architecture as it is brought up: its settings, with
/// `${VAR}` in its environment expanded.
#[derive(Debug, Clone, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub setup_sql: Option<String>,
    pub topics: Vec<TopicSpec>,
    pub processes: Vec<ProcessPlan>,
    pub request: RequestSettings,
    pub audit: AuditSettings,
    /// Whether it asks for topics or names the broker.
    pub needs_broker: bool,
    /// The scenario's folder: relative paths start there, and the
    /// processes run there.
    pub folder: std::path::PathBuf,
}

/// One process of a `service` architecture.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessPlan {
    pub name: String,
    pub command: Vec<String>,
    /// Shown by name only: a value may be a secret.
    #[serde(serialize_with = "keys")]
    pub env: BTreeMap<String, String>,
    pub ready: Ready,
    pub metrics: Option<MetricsSettings>,
}

fn keys<S: Serializer>(map: &BTreeMap<String, String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(map.keys())
}

impl ServicePlan {
    /// The process the load is sent to.
    pub fn target(&self) -> usize {
        self.request
            .process
            .as_ref()
            .and_then(|name| self.processes.iter().position(|p| &p.name == name))
            .unwrap_or(0)
    }
}

impl Architecture {
    pub fn name(&self) -> &str {
        match self {
            Architecture::Rest { name, .. } | Architecture::Kafka { name, .. } => name,
            Architecture::Service(service) => &service.name,
        }
    }

    /// Whether it needs a broker: a Kafka path, or a service that asks
    /// for topics or names the broker.
    pub fn needs_broker(&self) -> bool {
        match self {
            Architecture::Rest { .. } => false,
            Architecture::Kafka { .. } => true,
            Architecture::Service(service) => service.needs_broker,
        }
    }

    fn of(settings: &ArchitectureSettings, folder: &std::path::Path) -> Self {
        let ms = |span: Span| span.0.as_millis();
        let pool_args = |pool: &Pool| {
            vec![
                format!("--pool-size={}", pool.size),
                format!("--acquire-timeout-ms={}", ms(pool.acquire_timeout)),
                format!("--connect-timeout-ms={}", ms(pool.connect_timeout)),
                format!("--statement-timeout-ms={}", ms(pool.statement_timeout)),
                format!("--idle-timeout-ms={}", ms(pool.idle_timeout)),
            ]
        };
        match settings {
            ArchitectureSettings::Rest {
                name,
                pool,
                group_commit,
                ..
            } => {
                let mut args = pool_args(pool);
                args.push(format!("--stored-by={name}"));
                if let Some(group) = group_commit {
                    args.push(format!("--group-commit-max-rows={}", group.max_rows));
                    args.push(format!("--group-commit-max-wait-ms={}", ms(group.max_wait)));
                }
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
                ..
            } => {
                let mut consumer_args = pool_args(pool);
                consumer_args.extend([
                    format!("--stored-by={name}"),
                    format!("--batch-size={batch_size}"),
                    format!("--batch-linger-ms={}", ms(*batch_linger)),
                    format!("--breaker-failures={}", breaker.failures),
                    format!("--breaker-open-ms={}", ms(breaker.open_for)),
                    format!("--breaker-successes={}", breaker.successes),
                ]);
                Architecture::Kafka {
                    name: name.clone(),
                    mode: *consumer,
                    producer_args: vec![format!("--delivery-timeout-ms={}", ms(*delivery_timeout))],
                    consumer_args,
                }
            }
            ArchitectureSettings::Service {
                name,
                setup_sql,
                topics,
                processes,
                request,
                audit,
                ..
            } => Architecture::Service(Box::new(ServicePlan {
                name: name.clone(),
                setup_sql: setup_sql.clone(),
                topics: topics.clone(),
                processes: processes
                    .iter()
                    .map(|p| ProcessPlan {
                        name: p.name.clone(),
                        command: p.command.clone(),
                        env: p
                            .env
                            .iter()
                            .map(|(k, v)| (k.clone(), expanded(v)))
                            .collect(),
                        ready: p.ready.clone(),
                        metrics: p.metrics.clone(),
                    })
                    .collect(),
                request: request.clone(),
                audit: audit.clone(),
                needs_broker: settings.uses_broker(),
                folder: folder.to_path_buf(),
            })),
        }
    }
}

fn database_name<S: Serializer>(target: &DatabaseTarget, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(target)
}

/// A database to bring up or reach: which, and where an external one is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatabaseTarget {
    pub choice: DatabaseChoice,
    /// The URL of an external database.
    pub url: Option<String>,
}

/// `local` or `external:postgres://USER@HOST:PORT/DB`.
impl fmt::Display for DatabaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.choice {
            DatabaseChoice::Local => f.write_str("local"),
            // The URL may hold a password: it is not printed.
            DatabaseChoice::External => f.write_str("external"),
        }
    }
}

/// `local` or `external:postgres://USER@HOST:PORT/DB`.
impl FromStr for DatabaseTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "local" => Ok(Self::default()),
            other => match other.strip_prefix("external:") {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Ok(Self {
                        choice: DatabaseChoice::External,
                        url: Some(url.into()),
                    })
                }
                _ => Err(format!(
                    "unknown database {other:?}; expected local or \
                     external:postgres://USER@HOST:PORT/DB"
                )),
            },
        }
    }
}

/// A fault with its place on the run's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultSpec {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// From the run's start.
    #[serde(rename = "start_s", serialize_with = "seconds")]
    pub start: Duration,
    #[serde(rename = "duration_s", serialize_with = "seconds")]
    pub duration: Duration,
    /// Seeds the fault's randomness (a delay's jitter), from the
    /// scenario's seed.
    #[serde(skip)]
    pub seed: u64,
}

impl FaultSpec {
    /// When it is planned to end, from the run's start.
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}+{}",
            self.kind.name(),
            humantime::format_duration(self.start),
            humantime::format_duration(self.duration)
        )
    }
}

/// `KIND@START+DURATION`, e.g. `db-crash@90s+120s` or
/// `db-latency:200ms:50ms@10s+30s` (delay, then jitter).
impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "expected KIND@START+DURATION, e.g. db-crash@90s+120s";
        let (kind, timing) = text.split_once('@').ok_or(usage)?;
        let (start, duration) = timing.split_once('+').ok_or(usage)?;
        let parse = |what: &str, value: &str| {
            humantime::parse_duration(value).map_err(|e| format!("{what} {value:?}: {e}"))
        };
        let mut parts = kind.split(':');
        let name = parts.next().unwrap_or_default();
        // A latency's `:DELAY:JITTER`, each defaulting to the kind's own.
        let mut latency = |delay: Span, jitter: Span| -> Result<(Span, Span), String> {
            Ok((
                parts
                    .next()
                    .map_or(Ok(delay), |d| parse("delay", d).map(Span))?,
                parts
                    .next()
                    .map_or(Ok(jitter), |j| parse("jitter", j).map(Span))?,
            ))
        };
        let kind = match FaultKind::ALL.into_iter().find(|k| k.name() == name) {
            Some(FaultKind::DbLatency { delay, jitter }) => {
                let (delay, jitter) = latency(delay, jitter)?;
                FaultKind::DbLatency { delay, jitter }
            }
            Some(FaultKind::BrokerLatency { delay, jitter }) => {
                let (delay, jitter) = latency(delay, jitter)?;
                FaultKind::BrokerLatency { delay, jitter }
            }
            Some(FaultKind::Command(_)) => {
                return Err("a command fault is written in a scenario, with its commands".into());
            }
            Some(FaultKind::ProcessKill { .. }) => {
                let (Some(architecture), Some(process)) = (parts.next(), parts.next()) else {
                    return Err("write a process-kill as process-kill:ARCHITECTURE:PROCESS".into());
                };
                FaultKind::ProcessKill {
                    architecture: architecture.to_string(),
                    process: process.to_string(),
                }
            }
            Some(kind) => kind,
            None => {
                return Err(format!(
                    "unknown fault {name:?}; known: {}",
                    FaultKind::names().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        let duration = parse("duration", duration)?;
        if duration.is_zero() {
            return Err("a fault's duration must be more than zero".into());
        }
        Ok(Self {
            kind,
            start: parse("start", start)?,
            duration,
            seed: 0,
        })
    }
}

#[cfg(test)]
mod tests;
