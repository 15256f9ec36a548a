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
use serde::{Deserialize, Serialize, Serializer};

mod controls;
pub mod defaults;
mod fault;
mod hypothesis;
pub mod service;
mod sweep;

pub use controls::Controls;
pub use fault::*;
pub use hypothesis::{Hypothesis, Metric, Phase};
pub use sweep::{Sweep, SweepMode, SweepParameter};

/// Serialises a duration as seconds (`90.0`), for JSON a program reads.
pub(crate) fn seconds<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// Serialises a duration as whole milliseconds (`5000`).
pub(crate) fn millis<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(d.as_millis() as u64)
}

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
    /// Control repetitions: the same load on a fresh stack with no fault,
    /// `true` for one or how many, run interleaved with the faulted ones.
    /// The report compares each phase's change in the faulted runs with the
    /// same seconds' change in the controls (difference in differences), so
    /// what the fault did is told apart from drift (a stack that slows over
    /// a run anyway), and looks for drift in the controls themselves.
    #[serde(default)]
    pub control: Controls,
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
    /// Moves every fault of each repetition by one offset within ± this,
    /// drawn from the seed, e.g. "5s": repetitions then sample the faults'
    /// timing (against the breaker's window, the load's own rhythm)
    /// instead of replaying one, and their intervals cover it. Unset: every
    /// repetition's faults at the times written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_jitter: Option<Span>,
    /// Makes every fault of each repetition longer or shorter by one
    /// offset within ± this, drawn from the seed apart from
    /// `fault_jitter`'s, e.g. "10s": what hangs on an outage's exact length
    /// (a breaker whose window divides it, a retry schedule) is sampled
    /// instead of replayed. Must be shorter than every fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_length_jitter: Option<Span>,
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
    /// The folder the scenario was read from (not written in it): a
    /// `service` architecture's relative paths start there, and its
    /// processes run there.
    #[serde(skip)]
    #[schemars(skip)]
    pub folder: Option<std::path::PathBuf>,
}

impl Experiment {
    /// The warm-up excluded from headline latency: the scenario's
    /// `workload.warmup`, else 5 s, or less when the first fault or a tenth
    /// of the run comes sooner.
    pub fn warmup(&self) -> Duration {
        if let Some(set) = self.workload.warmup {
            return set.0;
        }
        let jitter = self.fault_jitter.map_or(Duration::ZERO, |j| j.0);
        let first_fault = self
            .faults
            .iter()
            .map(|f| f.at.0.saturating_sub(jitter))
            .min();
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
    /// `"sasl.password"`. Values of keys naming (in any case) a password,
    /// secret, key, token, JAAS or OAUTHBEARER configuration or credential
    /// are kept out of every file of the run folder, and out of messages.
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
    /// Most connections the driver keeps to each architecture, each
    /// carrying one request at a time (as wrk2's connections, k6's virtual
    /// users): a request due while all are busy waits for the first free
    /// one, at most the client timeout (then it is a timeout never sent),
    /// its latency still counted from its intended time. Unset: a
    /// connection per request in flight, so that no request waits for the
    /// driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
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
            connections: None,
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
    /// Your own service: processes started from their commands, the
    /// request each event becomes, the query that finds what was stored.
    Service {
        /// Name used in the report and in hypotheses.
        name: String,
        /// SQL applied to the lab's database before the processes start,
        /// each repetition (a file; a relative path is from the scenario's
        /// folder).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        setup_sql: Option<String>,
        /// Topics created before the processes start.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        topics: Vec<service::TopicSpec>,
        /// Its processes, started in order, each ready before the next.
        processes: Vec<service::ProcessSettings>,
        /// The request each event becomes.
        request: service::RequestSettings,
        /// How the lab finds what was stored.
        audit: service::AuditSettings,
        /// This architecture's clients' retries, in place of
        /// `workload.retries`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retries: Option<Retries>,
    },
}

impl ArchitectureSettings {
    pub fn name(&self) -> &str {
        match self {
            ArchitectureSettings::Rest { name, .. }
            | ArchitectureSettings::Kafka { name, .. }
            | ArchitectureSettings::Service { name, .. } => name,
        }
    }

    /// Its clients' retries: its own, else the workload's.
    pub fn retries<'a>(&'a self, workload: &'a Workload) -> &'a Retries {
        match self {
            ArchitectureSettings::Rest { retries, .. }
            | ArchitectureSettings::Kafka { retries, .. }
            | ArchitectureSettings::Service { retries, .. } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_the_fault_windows() {
        let windows = [(10.0, 20.0), (30.0, 40.0)];
        assert_eq!(Phase::of(&windows, 5.0), Some(Phase::Before));
        assert_eq!(Phase::of(&windows, 10.0), Some(Phase::During));
        assert_eq!(Phase::of(&windows, 25.0), Some(Phase::Between));
        assert_eq!(Phase::of(&windows, 40.0), Some(Phase::After));
        assert_eq!(Phase::of(&[], 5.0), None);
    }

    #[test]
    fn a_phase_is_named_as_the_summary_and_scenarios_spell_it() {
        for phase in Phase::ALL {
            let json = serde_json::to_value(phase).unwrap();
            assert_eq!(json.as_str(), Some(phase.name()));
            assert_eq!(phase.to_string(), phase.name());
        }
    }

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
        assert_eq!(FaultKind::names().count(), 12);
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
