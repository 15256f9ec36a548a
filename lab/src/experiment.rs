//! The scenario format: what a person writes in TOML.
//!
//! Every struct denies unknown fields, every field is documented (the docs
//! become the JSON Schema's descriptions), durations are human strings
//! (`"90s"`, `"2m"`, `"250ms"`) and rates carry their unit in the name. The
//! defaults, in one place here, reproduce the original proof of concept:
//! 50 req/s for 300 s, both architectures at once, the database crashed at
//! 90 s for 120 s, a 5 s client timeout, a pool of 10, breaker 5 / 60 s / 3.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use faultline_services::consumer::Mode;
pub use faultline_stack::BrokerChoice;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration written as a human string: `"90s"`, `"2m"`, `"250ms"`, `"1h 30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

impl Span {
    pub const fn secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    pub const fn millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(Span).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"90s\", \"2m\" or \"250ms\""
            ))
        })
    }
}

impl JsonSchema for Span {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration: a number and a unit (ms, s, m, h), e.g. \"90s\", \"2m\", \"250ms\".",
            "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|secs|m|min|mins|h|hr|hrs)(\\s*[0-9]+(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|secs|m|min|mins|h|hr|hrs))*\\s*$"
        })
    }
}

/// A faultline scenario: the load, the architectures under test, the faults
/// and what counts as passing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short name, used in the run folder's name: letters, digits, `-`, `_`.
    pub name: String,
    /// One-line title for the report.
    #[serde(default)]
    pub title: String,
    /// What the scenario shows, in a few sentences.
    #[serde(default)]
    pub description: String,
    /// How long load is offered, e.g. "300s".
    #[serde(default = "defaults::duration")]
    pub duration: Span,
    /// Seed of the event stream (drivers, coordinates); the same seed gives
    /// the same stream.
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    /// How many times the scenario runs, each on a fresh stack.
    #[serde(default = "defaults::repetitions")]
    pub repetitions: u32,
    /// Also run one control repetition: the same load on a fresh stack with
    /// no fault, after the others. The report shows each phase's figures
    /// beside the control's over the same seconds, so what the fault did is
    /// told apart from drift (a stack that slows down over a run anyway).
    #[serde(default)]
    pub control: bool,
    /// Longest wait after the load for consumers to store what they were
    /// given, e.g. "120s".
    #[serde(default = "defaults::drain_timeout")]
    pub drain_timeout: Span,
    /// The infrastructure.
    #[serde(default)]
    pub stack: StackSettings,
    /// The load.
    #[serde(default)]
    pub workload: Workload,
    /// The architectures under test, all driven at once on one clock.
    #[serde(default = "defaults::architectures")]
    pub architectures: Vec<ArchitectureSettings>,
    /// Faults on the run's clock.
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Claims checked against the results.
    #[serde(default)]
    pub hypotheses: Vec<Hypothesis>,
    /// What failures cost.
    #[serde(default)]
    pub economics: Economics,
    /// What a rate must meet to be held, for the capacity table of a
    /// stepped rate (`workload.rate.shape = "steps"`).
    #[serde(default)]
    pub capacity: CapacityBounds,
    /// What-if runs: the scenario again with some of its values changed
    /// (`faultline sweep`); `faultline run` runs the scenario as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

impl Experiment {
    /// The warm-up excluded from headline latency: the scenario's
    /// `workload.warmup`, else 5 s, or less when the first fault or a tenth
    /// of the run comes sooner.
    pub fn warmup(&self) -> Duration {
        if let Some(set) = self.workload.warmup {
            return set.0;
        }
        let first_fault = self.faults.iter().map(|f| f.at.0).min();
        [
            Some(defaults::warmup().0),
            first_fault,
            Some(self.duration.0 / 10),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_default()
    }
}

/// A grid of what-if runs over this scenario.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Each parameter: a key of this scenario and the values it takes.
    pub parameters: Vec<SweepParameter>,
    /// `grid` (every combination of the values) or `zip` (the first values
    /// together, then the second, …; every list the same length).
    #[serde(default)]
    pub mode: SweepMode,
}

/// One swept key.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepParameter {
    /// A key path into the scenario, e.g. `faults[0].duration`,
    /// `workload.rate.rps`, `economics.staleness_budget` or
    /// `architectures.kafka-drop.breaker.open_for` (an architecture by its
    /// name). Keys left at their defaults can be swept too.
    pub key: String,
    /// The values it takes, each written as it would be at that key, e.g.
    /// `["30s", "120s"]` or `[50, 500]`.
    pub values: Vec<serde_json::Value>,
}

/// How the values of several parameters combine.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SweepMode {
    /// Every combination (the cartesian product).
    #[default]
    Grid,
    /// The i-th value of every parameter together.
    Zip,
}

/// Which broker and database to use.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StackSettings {
    /// `auto` (Apache Kafka if on PATH, else nisshi), `kafka`, `nisshi`, or
    /// `external` (then `bootstrap_servers` is required).
    #[serde(default)]
    pub broker: BrokerChoice,
    /// Bootstrap servers of an external Kafka cluster.
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// `local` (an ephemeral cluster per run) or `external` (then
    /// `database_url` is required, and db-crash, db-stop and db-freeze are
    /// refused).
    #[serde(default)]
    pub database: DatabaseChoice,
    /// URL of an external PostgreSQL database, e.g.
    /// "postgres://app:${PGPASSWORD}@db.example:5432/lab?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem".
    /// With TLS (`sslmode` prefer, require, verify-ca or verify-full) the
    /// server's certificate and host name are always checked.
    #[serde(default)]
    pub database_url: Option<String>,
    /// Partitions of each topic.
    #[serde(default = "defaults::partitions")]
    pub partitions: u32,
    /// Replicas of each topic. Unset: 1 on the lab's own broker, 3 on an
    /// external cluster (where acks=all with one replica protects nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    /// `min.insync.replicas` of each topic. Unset: 1 on the lab's own
    /// broker, 2 on an external cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<u32>,
    /// librdkafka properties for every Kafka client, the services' and the
    /// lab's own, e.g. a managed cluster's `"security.protocol" =
    /// "SASL_SSL"`, `"sasl.mechanism" = "PLAIN"`, `"sasl.username"`,
    /// `"sasl.password"`. Values of keys naming a password, secret or key
    /// are kept out of every file of the run folder.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka: BTreeMap<String, String>,
}

impl StackSettings {
    /// Replicas and `min.insync.replicas` of each topic, with the defaults
    /// of where the broker is.
    pub fn replication(&self) -> (u32, u32) {
        let external = self.broker == BrokerChoice::External;
        let replicas = self
            .replication_factor
            .unwrap_or(if external { 3 } else { 1 });
        let min_insync = self
            .min_insync_replicas
            .unwrap_or(if external { 2 } else { 1 })
            .min(replicas);
        (replicas, min_insync)
    }
}

impl Default for StackSettings {
    fn default() -> Self {
        Self {
            broker: BrokerChoice::Auto,
            bootstrap_servers: None,
            database: DatabaseChoice::Local,
            database_url: None,
            partitions: defaults::partitions(),
            replication_factor: None,
            min_insync_replicas: None,
            kafka: BTreeMap::new(),
        }
    }
}

/// Which database to use: the one list, for the scenario format, the
/// command line and the stack.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseChoice {
    /// An ephemeral cluster per run, owned by the lab.
    #[default]
    Local,
    /// A server the lab does not own, at `database_url`.
    External,
}

/// The load offered to every architecture.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// Arrival rate per architecture over time.
    #[serde(default)]
    pub rate: RateShape,
    /// How long a client waits for an answer, e.g. "5s".
    #[serde(default = "defaults::client_timeout")]
    pub client_timeout: Span,
    /// Distinct drivers the events are spread over (`driver_0` ...).
    #[serde(default = "defaults::drivers")]
    pub drivers: u32,
    /// Client retries of failed requests; off by default, as in the original.
    #[serde(default)]
    pub retries: Retries,
    /// The load generator: `native` (open model, latency from the intended
    /// send time) or `k6`.
    #[serde(default)]
    pub driver: DriverSetting,
    /// Start-up time excluded from the headline latency figures (its
    /// requests stay in the raw rows and its seconds are shaded on the
    /// charts), e.g. "5s"; "0s" keeps every request. Unset: 5 s, or less
    /// when the first fault or a tenth of the run comes sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Span>,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            rate: RateShape::default(),
            client_timeout: defaults::client_timeout(),
            drivers: defaults::drivers(),
            retries: Retries::default(),
            driver: DriverSetting::Native,
            warmup: None,
        }
    }
}

/// The load generator.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Default, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DriverSetting {
    /// The lab's own open-model driver: latency from the intended send time.
    #[default]
    Native,
    /// k6, fed the same plan.
    K6,
}

/// An arrival rate over time; every shape is lowered to a list of steps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "shape", rename_all = "lowercase", deny_unknown_fields)]
pub enum RateShape {
    /// The same rate throughout.
    Constant {
        /// Requests per second.
        rps: f64,
    },
    /// A linear ramp from one rate to another over the whole run.
    Ramp {
        /// Requests per second at the start.
        from_rps: f64,
        /// Requests per second at the end.
        to_rps: f64,
    },
    /// Rates that change at given times.
    Steps {
        /// Each step holds from its `at` until the next step.
        steps: Vec<Step>,
    },
    /// A base rate with one burst.
    Spike {
        /// Requests per second outside the burst.
        base_rps: f64,
        /// Requests per second during the burst.
        peak_rps: f64,
        /// When the burst starts, e.g. "60s".
        at: Span,
        /// How long the burst lasts, e.g. "30s".
        lasts: Span,
    },
}

impl Default for RateShape {
    fn default() -> Self {
        RateShape::Constant { rps: 50.0 }
    }
}

/// One step of a stepped rate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// When the step starts, e.g. "30s".
    pub at: Span,
    /// Requests per second from then on.
    pub rps: f64,
}

/// Client retries of a failed request (a 5xx, a timeout, a refused or
/// broken connection), with the same event id: the services store an id
/// once, so a retry of a request whose first attempt was stored is
/// absorbed (and counted as `redelivered`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Extra attempts after a failed one (0 = no retries).
    #[serde(default)]
    pub max_retries: u32,
    /// Wait before the first retry, doubled each time, e.g. "200ms".
    #[serde(default = "defaults::retry_backoff")]
    pub backoff: Span,
    /// The longest wait between two attempts, e.g. "30s".
    #[serde(default = "defaults::retry_max_backoff")]
    pub max_backoff: Span,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            max_retries: 0,
            backoff: defaults::retry_backoff(),
            max_backoff: defaults::retry_max_backoff(),
        }
    }
}

impl Retries {
    /// The wait after failed attempt `attempt` (1 for the first).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff
            .0
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        doubled.min(self.max_backoff.0)
    }

    /// Every wait of a request that fails every attempt, added up.
    pub fn total_wait(&self) -> Duration {
        (1..=self.max_retries).map(|a| self.wait_after(a)).sum()
    }
}

/// One architecture under test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ArchitectureSettings {
    /// POST → insert into PostgreSQL → answer.
    Rest {
        /// Name used in the report and in hypotheses.
        name: String,
        /// The database connection pool.
        #[serde(default)]
        pool: Pool,
        /// This architecture's clients' retries, in place of
        /// `workload.retries`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<Retries>,
        /// Group commit: concurrent requests share one multi-row insert and
        /// one commit, each answered after the commit that holds its row.
        /// Unset: every request commits its own row, as the original does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group_commit: Option<GroupCommit>,
    },
    /// POST → produce (202 after acks=all) → consumer → PostgreSQL.
    Kafka {
        /// Name used in the report and in hypotheses.
        name: String,
        /// `buffered` (keep, pause, retry: loses nothing) or `drop` (the
        /// original policy: give up on what fails).
        #[serde(default)]
        consumer: Mode,
        /// Longest wait for the broker's acknowledgement, e.g. "5s".
        #[serde(default = "defaults::delivery_timeout")]
        delivery_timeout: Span,
        /// Most events written in one transaction (the original wrote one at
        /// a time).
        #[serde(default = "defaults::batch_size")]
        batch_size: u32,
        /// Longest wait to fill a batch, e.g. "10ms".
        #[serde(default = "defaults::batch_linger")]
        batch_linger: Span,
        /// The circuit breaker around the database.
        #[serde(default)]
        breaker: Breaker,
        /// The consumer's database connection pool.
        #[serde(default)]
        pool: Pool,
        /// This architecture's clients' retries, in place of
        /// `workload.retries`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<Retries>,
    },
}

impl ArchitectureSettings {
    pub fn name(&self) -> &str {
        match self {
            ArchitectureSettings::Rest { name, .. } | ArchitectureSettings::Kafka { name, .. } => {
                name
            }
        }
    }

    /// Its clients' retries: its own, else the workload's.
    pub fn retries<'a>(&'a self, workload: &'a Workload) -> &'a Retries {
        match self {
            ArchitectureSettings::Rest { retries, .. }
            | ArchitectureSettings::Kafka { retries, .. } => {
                retries.as_ref().unwrap_or(&workload.retries)
            }
        }
    }
}

/// REST's group commit: at most `max_rows` rows per commit, and no request
/// waits more than `max_wait` for its group to fill.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupCommit {
    /// Most rows in one commit, e.g. 50.
    pub max_rows: u32,
    /// Longest a request waits for its group to fill, e.g. "2ms".
    #[serde(default = "defaults::group_commit_max_wait")]
    pub max_wait: Span,
}

/// A bounded connection pool. The defaults are the original's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    /// Most connections.
    #[serde(default = "defaults::pool_size")]
    pub size: u32,
    /// Longest wait for a free connection, e.g. "2s".
    #[serde(default = "defaults::acquire_timeout")]
    pub acquire_timeout: Span,
    /// Longest wait to open a connection, e.g. "2s".
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: Span,
    /// Longest a statement may run, e.g. "2s".
    #[serde(default = "defaults::statement_timeout")]
    pub statement_timeout: Span,
    /// Idle connections older than this are closed, e.g. "5s".
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: Span,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            size: defaults::pool_size(),
            acquire_timeout: defaults::acquire_timeout(),
            connect_timeout: defaults::connect_timeout(),
            statement_timeout: defaults::statement_timeout(),
            idle_timeout: defaults::idle_timeout(),
        }
    }
}

/// The circuit breaker. The defaults are the original's.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    /// Consecutive failures that open it.
    #[serde(default = "defaults::breaker_failures")]
    pub failures: u32,
    /// How long it stays open, e.g. "60s".
    #[serde(default = "defaults::breaker_open_for")]
    pub open_for: Span,
    /// Consecutive successes in half-open that close it.
    #[serde(default = "defaults::breaker_successes")]
    pub successes: u32,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: defaults::breaker_failures(),
            open_for: defaults::breaker_open_for(),
            successes: defaults::breaker_successes(),
        }
    }
}

/// A fault on the run's clock.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(from = "RawFault", into = "RawFault")]
pub struct Fault {
    /// What breaks.
    pub kind: FaultKind,
    /// When it starts, from the run's start.
    pub at: Span,
    /// How long it lasts.
    pub duration: Span,
}

/// What a fault breaks: the one list of fault kinds, used by the scenario,
/// the plan, the command line (`stack up --fault`) and the fault code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL to every PostgreSQL process; restart with crash recovery.
    DbCrash,
    /// Fast shutdown of PostgreSQL; restart.
    DbStop,
    /// SIGSTOP to every PostgreSQL process; SIGCONT at the end.
    DbFreeze,
    /// Latency (± jitter, seeded from the scenario's seed) on the link
    /// between the services and PostgreSQL: every chunk, each way, leaves
    /// the fault proxy that long after it arrived, order kept (Toxiproxy's
    /// semantics), so a round trip costs twice the delay and a large result
    /// the delay plus its transfer.
    DbLatency { delay: Span, jitter: Span },
    /// Traffic between the services and PostgreSQL silently dropped.
    DbBlackhole,
    /// SIGKILL to the broker; restart.
    BrokerKill,
    /// Latency (± jitter, seeded) on the link between every Kafka client
    /// (producers, consumers) and the broker, through the fault proxy the
    /// broker advertises: Toxiproxy's semantics, as `db-latency`.
    BrokerLatency { delay: Span, jitter: Span },
    /// Traffic between every Kafka client and the broker silently dropped.
    BrokerBlackhole,
    /// Traffic between the consumers and the broker silently dropped, the
    /// producers' link untouched (the link proxy knows each connection's
    /// Kafka `client.id`): a network partition of the consumers alone.
    ConsumerPartition,
    /// SIGKILL to the consumers; restart.
    ConsumerKill,
    /// Shell commands on the run's clock: any chaos tool as a fault.
    Command(CommandFault),
}

/// A fault carried out by shell commands (`sh -c`), with the stack in
/// their environment (`FAULTLINE_DATABASE_URL`, `FAULTLINE_POSTGRES_PID`,
/// `FAULTLINE_POSTGRES_DATA`, `FAULTLINE_BOOTSTRAP_SERVERS`,
/// `FAULTLINE_STACK_DIR`, where every service's pid file is); each is
/// killed, with everything it started, past `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommandFault {
    /// Starts the fault.
    pub start: String,
    /// Ends it; run at the fault's end, and at cleanup whatever happened
    /// (Ctrl-C included).
    pub end: String,
    /// Succeeds while the system is healthy: the fault is verified when it
    /// fails after `start`, and over when it succeeds again after `end`.
    /// Without it, only the commands' exit statuses are checked.
    pub verify: Option<String>,
    /// The longest any one command may run.
    pub timeout: Span,
}

impl FaultKind {
    /// Every kind (settings at their defaults).
    pub const ALL: [FaultKind; 11] = [
        FaultKind::DbCrash,
        FaultKind::DbStop,
        FaultKind::DbFreeze,
        FaultKind::DbLatency {
            delay: Span::millis(100),
            jitter: Span::millis(0),
        },
        FaultKind::DbBlackhole,
        FaultKind::BrokerKill,
        FaultKind::BrokerLatency {
            delay: Span::millis(100),
            jitter: Span::millis(0),
        },
        FaultKind::BrokerBlackhole,
        FaultKind::ConsumerPartition,
        FaultKind::ConsumerKill,
        FaultKind::Command(CommandFault {
            start: String::new(),
            end: String::new(),
            verify: None,
            timeout: Span::secs(30),
        }),
    ];

    /// The kind's name, as written in a scenario.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::DbCrash => "db-crash",
            FaultKind::DbStop => "db-stop",
            FaultKind::DbFreeze => "db-freeze",
            FaultKind::DbLatency { .. } => "db-latency",
            FaultKind::DbBlackhole => "db-blackhole",
            FaultKind::BrokerKill => "broker-kill",
            FaultKind::BrokerLatency { .. } => "broker-latency",
            FaultKind::BrokerBlackhole => "broker-blackhole",
            FaultKind::ConsumerPartition => "consumer-partition",
            FaultKind::ConsumerKill => "consumer-kill",
            FaultKind::Command(_) => "command",
        }
    }

    /// Every kind's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.map(|kind| kind.name()).into_iter()
    }

    /// What it acts on, as recorded in `faults.parquet`.
    pub fn target(&self) -> &'static str {
        match self {
            FaultKind::DbCrash | FaultKind::DbStop | FaultKind::DbFreeze => "postgres",
            FaultKind::DbLatency { .. } | FaultKind::DbBlackhole => "postgres-link",
            FaultKind::BrokerKill => "broker",
            FaultKind::BrokerLatency { .. } | FaultKind::BrokerBlackhole => "broker-link",
            FaultKind::ConsumerPartition => "consumer-link",
            FaultKind::ConsumerKill => "consumers",
            FaultKind::Command(_) => "command",
        }
    }

    /// Whether it needs the database's process (not only its link).
    pub fn needs_local_database(&self) -> bool {
        matches!(
            self,
            FaultKind::DbCrash | FaultKind::DbStop | FaultKind::DbFreeze
        )
    }
}

/// A fault as written: its kind, its time, and the kind's own settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawFault {
    /// SIGKILL to every PostgreSQL process; restart with crash recovery.
    DbCrash {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Fast shutdown of PostgreSQL; restart.
    DbStop {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGSTOP to every PostgreSQL process; SIGCONT at the end.
    DbFreeze {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Delay on the link to PostgreSQL.
    DbLatency {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Each chunk, each way, leaves this long after it arrived, e.g. "200ms".
        delay: Span,
        /// Random spread around the delay, e.g. "50ms".
        #[serde(default)]
        jitter: Span,
    },
    /// Traffic to PostgreSQL silently dropped.
    DbBlackhole {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGKILL to the broker; restart.
    BrokerKill {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Delay on the link between every Kafka client and the broker.
    BrokerLatency {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Each chunk, each way, leaves this long after it arrived, e.g. "200ms".
        delay: Span,
        /// Random spread around the delay, e.g. "50ms".
        #[serde(default)]
        jitter: Span,
    },
    /// Traffic between every Kafka client and the broker silently dropped.
    BrokerBlackhole {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Traffic between the consumers and the broker silently dropped; the
    /// producers still reach it.
    ConsumerPartition {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// SIGKILL to the consumers; restart.
    ConsumerKill {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
    },
    /// Shell commands (`sh -c`) that start and end the fault: any chaos
    /// tool as a fault. The stack is in their environment:
    /// FAULTLINE_DATABASE_URL, FAULTLINE_POSTGRES_PID, FAULTLINE_POSTGRES_DATA,
    /// FAULTLINE_BOOTSTRAP_SERVERS, FAULTLINE_STACK_DIR (the services' pid
    /// files are in services/NAME/). Their output is kept in faults.parquet.
    Command {
        /// When it starts, from the run's start, e.g. "90s".
        at: Span,
        /// How long it lasts, e.g. "120s".
        duration: Span,
        /// Starts the fault, e.g. "kubectl apply -f delay.yaml".
        start: String,
        /// Ends it, at the fault's end and at cleanup whatever happened
        /// (Ctrl-C included), e.g. "kubectl delete -f delay.yaml".
        end: String,
        /// Succeeds while the system is healthy: the fault is verified when
        /// it fails after `start` and over when it succeeds again after
        /// `end`, e.g. "pg_isready -h db -t 1".
        #[serde(default)]
        verify: Option<String>,
        /// The longest any one command may run, e.g. "30s".
        #[serde(default = "defaults::command_timeout")]
        timeout: Span,
    },
}

impl From<RawFault> for Fault {
    fn from(raw: RawFault) -> Self {
        let (kind, at, duration) = match raw {
            RawFault::DbCrash { at, duration } => (FaultKind::DbCrash, at, duration),
            RawFault::DbStop { at, duration } => (FaultKind::DbStop, at, duration),
            RawFault::DbFreeze { at, duration } => (FaultKind::DbFreeze, at, duration),
            RawFault::DbLatency {
                at,
                duration,
                delay,
                jitter,
            } => (FaultKind::DbLatency { delay, jitter }, at, duration),
            RawFault::DbBlackhole { at, duration } => (FaultKind::DbBlackhole, at, duration),
            RawFault::BrokerKill { at, duration } => (FaultKind::BrokerKill, at, duration),
            RawFault::BrokerLatency {
                at,
                duration,
                delay,
                jitter,
            } => (FaultKind::BrokerLatency { delay, jitter }, at, duration),
            RawFault::BrokerBlackhole { at, duration } => {
                (FaultKind::BrokerBlackhole, at, duration)
            }
            RawFault::ConsumerPartition { at, duration } => {
                (FaultKind::ConsumerPartition, at, duration)
            }
            RawFault::ConsumerKill { at, duration } => (FaultKind::ConsumerKill, at, duration),
            RawFault::Command {
                at,
                duration,
                start,
                end,
                verify,
                timeout,
            } => (
                FaultKind::Command(CommandFault {
                    start,
                    end,
                    verify,
                    timeout,
                }),
                at,
                duration,
            ),
        };
        Self { kind, at, duration }
    }
}

impl From<Fault> for RawFault {
    fn from(fault: Fault) -> Self {
        let (at, duration) = (fault.at, fault.duration);
        match fault.kind {
            FaultKind::DbCrash => RawFault::DbCrash { at, duration },
            FaultKind::DbStop => RawFault::DbStop { at, duration },
            FaultKind::DbFreeze => RawFault::DbFreeze { at, duration },
            FaultKind::DbLatency { delay, jitter } => RawFault::DbLatency {
                at,
                duration,
                delay,
                jitter,
            },
            FaultKind::DbBlackhole => RawFault::DbBlackhole { at, duration },
            FaultKind::BrokerKill => RawFault::BrokerKill { at, duration },
            FaultKind::BrokerLatency { delay, jitter } => RawFault::BrokerLatency {
                at,
                duration,
                delay,
                jitter,
            },
            FaultKind::BrokerBlackhole => RawFault::BrokerBlackhole { at, duration },
            FaultKind::ConsumerPartition => RawFault::ConsumerPartition { at, duration },
            FaultKind::ConsumerKill => RawFault::ConsumerKill { at, duration },
            FaultKind::Command(CommandFault {
                start,
                end,
                verify,
                timeout,
            }) => RawFault::Command {
                at,
                duration,
                start,
                end,
                verify,
                timeout,
            },
        }
    }
}

/// A claim about one figure of one architecture.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hypothesis {
    /// What the claim says, in words.
    pub title: String,
    /// The architecture's `name`.
    pub architecture: String,
    /// The figure.
    pub metric: Metric,
    /// Restrict to a phase of the run relative to the faults.
    #[serde(default)]
    pub phase: Option<Phase>,
    /// The claim holds if the figure is at most this.
    #[serde(default)]
    pub max: Option<f64>,
    /// The claim holds if the figure is at least this.
    #[serde(default)]
    pub min: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Failed requests / requests.
    ErrorRate,
    /// Acknowledged events absent from the database after the drain.
    LostEvents,
    /// The older name of `redelivered`: the same figure.
    Duplicates,
    /// Deliveries of an event already stored, absorbed because the event id
    /// is the table's key: a client's retry or a message read twice.
    Redelivered,
    /// Latency percentiles of successful requests, in ms.
    LatencyP50Ms,
    LatencyP99Ms,
    /// Sent → stored, of acknowledged events, 99th percentile, in ms.
    FreshnessP99Ms,
    /// Seconds from the end of the last fault until the error rate is back
    /// within the baseline for 5 s.
    RecoveryS,
    /// Seconds from the end of the last fault until the consumer backlog is
    /// back to its level before the fault.
    DrainS,
    /// Seconds from the end of the last fault until the database stores
    /// the architecture's events as fast as they are acknowledged again.
    DataRecoveryS,
}

impl Metric {
    /// The name a scenario gives it (`lost_events`).
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Before,
    During,
    After,
}

/// What failures cost. Printed beside every money figure.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Economics {
    /// Currency code of the figures.
    #[serde(default = "defaults::currency")]
    pub currency: String,
    /// Value of one order (the original: a $25 ride).
    #[serde(default = "defaults::order_value")]
    pub order_value: f64,
    /// Share of an order lost per failed event (the original: 0.05).
    #[serde(default = "defaults::orders_lost_per_failed_event")]
    pub orders_lost_per_failed_event: f64,
    /// Production request rate the figures are scaled to, per second.
    #[serde(default = "defaults::production_rps")]
    pub production_rps: f64,
    /// Outages like this one per year, for the yearly figure.
    #[serde(default = "defaults::outages_per_year")]
    pub outages_per_year: f64,
    /// An event stored later than this after it was acknowledged counts as
    /// failed, e.g. "60s".
    #[serde(default = "defaults::staleness_budget")]
    pub staleness_budget: Span,
}

impl Default for Economics {
    fn default() -> Self {
        Self {
            currency: defaults::currency(),
            order_value: defaults::order_value(),
            orders_lost_per_failed_event: defaults::orders_lost_per_failed_event(),
            production_rps: defaults::production_rps(),
            outages_per_year: defaults::outages_per_year(),
            staleness_budget: defaults::staleness_budget(),
        }
    }
}

/// What a rate must meet to count as held: the capacity table of a stepped
/// rate finds each architecture's knee, the highest step it and every step
/// below it meet.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CapacityBounds {
    /// The highest 99th percentile of successful requests' latency (from
    /// the intended send time), e.g. "100ms".
    #[serde(default = "defaults::capacity_max_p99")]
    pub max_p99: Span,
    /// The highest share of failed requests, e.g. 0.01.
    #[serde(default = "defaults::capacity_max_error_rate")]
    pub max_error_rate: f64,
    /// Before the load, PostgreSQL alone stores rows like the events' in a
    /// scratch table three ways, each for this long, e.g. "5s": single-row
    /// commits and commits of 50 rows from 8 connections, and COPY of
    /// 10,000 rows from one. The report quotes each knee as a ratio to
    /// those rates, references measured in the same run that carry to
    /// another machine. Absent: no reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Span>,
}

impl Default for CapacityBounds {
    fn default() -> Self {
        Self {
            max_p99: defaults::capacity_max_p99(),
            max_error_rate: defaults::capacity_max_error_rate(),
            reference: None,
        }
    }
}

/// Every default, in one place. They reproduce the original proof of
/// concept; the services' settings come from `faultline_services::defaults`.
pub mod defaults {
    use super::*;
    use faultline_services::defaults as service;

    pub fn duration() -> Span {
        Span::secs(300)
    }
    pub fn seed() -> u64 {
        1
    }
    pub fn repetitions() -> u32 {
        1
    }
    pub fn drain_timeout() -> Span {
        Span::secs(120)
    }
    pub fn partitions() -> u32 {
        1
    }
    pub fn group_commit_max_wait() -> Span {
        Span(Duration::from_millis(2))
    }
    pub fn client_timeout() -> Span {
        Span::secs(5)
    }
    pub fn drivers() -> u32 {
        5000
    }
    pub fn command_timeout() -> Span {
        Span::secs(30)
    }
    pub fn warmup() -> Span {
        Span::secs(5)
    }
    pub fn retry_backoff() -> Span {
        Span::millis(200)
    }
    pub fn retry_max_backoff() -> Span {
        Span::secs(30)
    }
    pub fn delivery_timeout() -> Span {
        Span::millis(service::DELIVERY_TIMEOUT_MS)
    }
    pub fn batch_size() -> u32 {
        service::BATCH_SIZE as u32
    }
    pub fn batch_linger() -> Span {
        Span::millis(service::BATCH_LINGER_MS)
    }
    pub fn pool_size() -> u32 {
        service::POOL_SIZE as u32
    }
    pub fn acquire_timeout() -> Span {
        Span::millis(service::ACQUIRE_TIMEOUT_MS)
    }
    pub fn connect_timeout() -> Span {
        Span::millis(service::CONNECT_TIMEOUT_MS)
    }
    pub fn statement_timeout() -> Span {
        Span::millis(service::STATEMENT_TIMEOUT_MS)
    }
    pub fn idle_timeout() -> Span {
        Span::millis(service::IDLE_TIMEOUT_MS)
    }
    pub fn breaker_failures() -> u32 {
        service::BREAKER_FAILURES
    }
    pub fn breaker_open_for() -> Span {
        Span::millis(service::BREAKER_OPEN_MS)
    }
    pub fn breaker_successes() -> u32 {
        service::BREAKER_SUCCESSES
    }
    pub fn currency() -> String {
        "USD".into()
    }
    pub fn order_value() -> f64 {
        25.0
    }
    pub fn orders_lost_per_failed_event() -> f64 {
        0.05
    }
    pub fn production_rps() -> f64 {
        50.0
    }
    pub fn outages_per_year() -> f64 {
        12.0
    }
    pub fn staleness_budget() -> Span {
        Span::secs(60)
    }
    pub fn capacity_max_p99() -> Span {
        Span(Duration::from_millis(100))
    }
    pub fn capacity_max_error_rate() -> f64 {
        0.01
    }
    /// The original's two architectures, and its drop policy as a baseline.
    pub fn architectures() -> Vec<ArchitectureSettings> {
        let kafka = |name: &str, consumer| ArchitectureSettings::Kafka {
            name: name.into(),
            consumer,
            delivery_timeout: delivery_timeout(),
            batch_size: batch_size(),
            batch_linger: batch_linger(),
            breaker: Breaker::default(),
            pool: Pool::default(),
            retries: None,
        };
        vec![
            ArchitectureSettings::Rest {
                name: "rest".into(),
                pool: Pool::default(),
                retries: None,
                group_commit: None,
            },
            kafka("kafka-buffered", Mode::Buffered),
            kafka("kafka-drop", Mode::Drop),
        ]
    }
}

/// One segment of the lowered rate: from `start` (inclusive) to `end`
/// (exclusive) the rate goes linearly from `from_rps` to `to_rps`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSegment {
    #[serde(rename = "start_s", serialize_with = "crate::plan::seconds")]
    pub start: Duration,
    #[serde(rename = "end_s", serialize_with = "crate::plan::seconds")]
    pub end: Duration,
    pub from_rps: f64,
    pub to_rps: f64,
}

impl RateShape {
    /// Lowers the shape to segments covering `[0, duration)`.
    pub fn segments(&self, duration: Duration) -> Vec<RateSegment> {
        let flat = |start, end, rps| RateSegment {
            start,
            end,
            from_rps: rps,
            to_rps: rps,
        };
        match self {
            RateShape::Constant { rps } => vec![flat(Duration::ZERO, duration, *rps)],
            RateShape::Ramp { from_rps, to_rps } => vec![RateSegment {
                start: Duration::ZERO,
                end: duration,
                from_rps: *from_rps,
                to_rps: *to_rps,
            }],
            RateShape::Steps { steps } => {
                let mut steps = steps.clone();
                steps.sort_by_key(|s| s.at);
                let mut segments = Vec::new();
                let first = steps.first().map_or(Duration::ZERO, |s| s.at.0);
                if first > Duration::ZERO {
                    segments.push(flat(Duration::ZERO, first.min(duration), 0.0));
                }
                for (i, step) in steps.iter().enumerate() {
                    let end = steps
                        .get(i + 1)
                        .map_or(duration, |next| next.at.0)
                        .min(duration);
                    if step.at.0 < end {
                        segments.push(flat(step.at.0, end, step.rps));
                    }
                }
                segments
            }
            RateShape::Spike {
                base_rps,
                peak_rps,
                at,
                lasts,
            } => {
                let start = at.0.min(duration);
                let end = (at.0 + lasts.0).min(duration);
                vec![
                    flat(Duration::ZERO, start, *base_rps),
                    flat(start, end, *peak_rps),
                    flat(end, duration, *base_rps),
                ]
                .into_iter()
                .filter(|s| s.start < s.end)
                .collect()
            }
        }
    }

    /// About how many requests the shape sends in `duration`, without
    /// building the schedule.
    pub fn requests(&self, duration: Duration) -> f64 {
        self.segments(duration)
            .iter()
            .map(|s| (s.from_rps + s.to_rps) / 2.0 * (s.end - s.start).as_secs_f64())
            .sum()
    }

    /// The highest rate it reaches, in requests a second.
    pub fn peak_rps(&self) -> f64 {
        match self {
            RateShape::Constant { rps } => *rps,
            RateShape::Ramp { from_rps, to_rps } => from_rps.max(*to_rps),
            RateShape::Steps { steps } => steps.iter().map(|s| s.rps).fold(0.0, f64::max),
            RateShape::Spike {
                base_rps, peak_rps, ..
            } => base_rps.max(*peak_rps),
        }
    }

    /// The send times of every request, from the run's start, in order.
    pub fn schedule(&self, duration: Duration) -> Vec<Duration> {
        schedule_of(&self.segments(duration))
    }
}

/// The send times of every request of lowered rate `segments`, in order.
pub fn schedule_of(segments: &[RateSegment]) -> Vec<Duration> {
    let mut times = Vec::new();
    for segment in segments {
        let length = (segment.end - segment.start).as_secs_f64();
        let (a, b) = (segment.from_rps, segment.to_rps);
        // Requests due by time t into the segment: a t + (b - a) t² / 2L.
        let total = (a + b) / 2.0 * length;
        let count = total.floor() as u64;
        for i in 0..count {
            let n = i as f64;
            let t = if (b - a).abs() < 1e-9 {
                n / a
            } else {
                // Solve (b - a)/(2L) t² + a t - n = 0 for t.
                let k = (b - a) / (2.0 * length);
                (-a + (a * a + 4.0 * k * n).max(0.0).sqrt()) / (2.0 * k)
            };
            if t.is_finite() && t >= 0.0 && t < length {
                times.push(segment.start + Duration::from_secs_f64(t));
            }
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_kind_is_named_once() {
        for kind in FaultKind::ALL {
            let json = serde_json::to_value(&kind).unwrap();
            assert_eq!(json["kind"], kind.name());
            let raw = serde_json::to_value(RawFault::from(Fault {
                kind: kind.clone(),
                at: Span::secs(1),
                duration: Span::secs(1),
            }))
            .unwrap();
            assert_eq!(raw["kind"], kind.name());
        }
        assert_eq!(FaultKind::names().count(), 11);
    }

    #[test]
    fn the_default_rate_is_the_originals_15000_requests() {
        let times = RateShape::default().schedule(Duration::from_secs(300));
        assert_eq!(times.len(), 15_000);
        assert_eq!(times[1] - times[0], Duration::from_millis(20));
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn shapes_lower_to_the_right_counts() {
        let d = Duration::from_secs(100);
        let ramp = RateShape::Ramp {
            from_rps: 0.0,
            to_rps: 100.0,
        };
        let n = ramp.schedule(d).len() as i64;
        assert!((n - 5000).abs() <= 1, "{n}");
        let steps = RateShape::Steps {
            steps: vec![
                Step {
                    at: Span::secs(50),
                    rps: 20.0,
                },
                Step {
                    at: Span::secs(0),
                    rps: 10.0,
                },
            ],
        };
        assert_eq!(steps.schedule(d).len(), 500 + 1000);
        let spike = RateShape::Spike {
            base_rps: 10.0,
            peak_rps: 100.0,
            at: Span::secs(40),
            lasts: Span::secs(10),
        };
        assert_eq!(spike.schedule(d).len(), 900 + 1000);
        let late = RateShape::Steps {
            steps: vec![Step {
                at: Span::secs(10),
                rps: 5.0,
            }],
        };
        let times = late.schedule(d);
        assert_eq!(times.len(), 450);
        assert_eq!(times[0], Duration::from_secs(10));
    }
}
