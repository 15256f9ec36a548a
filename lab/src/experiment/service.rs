//! A `service` architecture: the user's own processes, started from their
//! commands, sent a request the scenario shapes, and audited by a query on
//! their own table. What its templates may name is [`vars`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ArchitectureSettings, Span};

/// The variables a `service` architecture's templates may name, and only
/// these: `{{ db.host }}` and so on.
pub mod vars {
    /// The database's host, as a process reaches it (the fault proxy).
    pub const DB_HOST: &str = "db.host";
    /// The database's port, as a process reaches it (the fault proxy).
    pub const DB_PORT: &str = "db.port";
    pub const DB_USER: &str = "db.user";
    /// A secret: only in `env`, never in a command line.
    pub const DB_PASSWORD: &str = "db.password";
    /// The database's name.
    pub const DB_NAME: &str = "db.name";
    /// A `postgres://` URL through the fault proxy; holds the password, so
    /// only in `env`.
    pub const DB_URL: &str = "db.url";
    /// The broker's bootstrap servers, through its fault proxy.
    pub const BROKER_BOOTSTRAP: &str = "broker.bootstrap";
    /// The process's own port, on 127.0.0.1.
    pub const PORT: &str = "port";
    /// The run's id, in the characters a topic name allows.
    pub const RUN_ID: &str = "run.id";
    /// The event's id (a UUID): the request must carry it.
    pub const EVENT_ID: &str = "event.id";
    /// The driver the event is about, e.g. `driver_17`.
    pub const EVENT_DRIVER_ID: &str = "event.driver_id";
    pub const EVENT_LAT: &str = "event.lat";
    pub const EVENT_LNG: &str = "event.lng";
    /// When the event was sent, RFC 3339 in UTC.
    pub const EVENT_SENT_AT: &str = "event.sent_at";

    /// What a process's `command` and `env` may name.
    pub const PROCESS: [&str; 9] = [
        DB_HOST,
        DB_PORT,
        DB_USER,
        DB_PASSWORD,
        DB_NAME,
        DB_URL,
        BROKER_BOOTSTRAP,
        PORT,
        RUN_ID,
    ];
    /// What may not appear on a command line, where `ps` shows it.
    pub const SECRET: [&str; 2] = [DB_PASSWORD, DB_URL];
    /// What the request's `path` and `body` may name.
    pub const EVENT: [&str; 5] = [
        EVENT_ID,
        EVENT_DRIVER_ID,
        EVENT_LAT,
        EVENT_LNG,
        EVENT_SENT_AT,
    ];
    /// Those that need the broker.
    pub const BROKER: [&str; 1] = [BROKER_BOOTSTRAP];
}

/// What an architecture needs of the stack and measures, `service` ones
/// by what they declare.
impl ArchitectureSettings {
    /// Whether it needs a broker: a Kafka path, or a service that asks for
    /// topics or names the broker in a template.
    pub fn uses_broker(&self) -> bool {
        match self {
            ArchitectureSettings::Rest { .. } => false,
            ArchitectureSettings::Kafka { .. } => true,
            ArchitectureSettings::Service {
                topics, processes, ..
            } => !topics.is_empty() || processes.iter().any(ProcessSettings::names_broker),
        }
    }

    /// Whether it has a backlog the lab measures: a Kafka path's consumer,
    /// or a service process that maps its own backlog gauge.
    pub fn has_backlog(&self) -> bool {
        match self {
            ArchitectureSettings::Rest { .. } => false,
            ArchitectureSettings::Kafka { .. } => true,
            ArchitectureSettings::Service { processes, .. } => processes
                .iter()
                .any(|p| p.metrics.as_ref().is_some_and(|m| m.backlog.is_some())),
        }
    }

    /// For a `service`, whether its backlog and its breaker go unmeasured
    /// (no process maps a gauge for them); the built-in ones measure both
    /// where they have them.
    pub fn unmeasured(&self) -> (bool, bool) {
        let ArchitectureSettings::Service { processes, .. } = self else {
            return (false, false);
        };
        let maps = |which: fn(&MetricsSettings) -> bool| {
            processes
                .iter()
                .any(|p| p.metrics.as_ref().is_some_and(which))
        };
        (
            !maps(|m| m.backlog.is_some()),
            !maps(|m| m.breaker.is_some()),
        )
    }
}

/// One process of a `service` architecture.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProcessSettings {
    /// Its name in the report, in faults (`process-kill`) and in the run
    /// folder.
    pub name: String,
    /// The program and its arguments, each a template, e.g.
    /// `["node", "server.js", "--port", "{{ port }}"]`. It runs in the
    /// scenario's folder. A program named without a `/` is looked for
    /// beside `faultline`, then on PATH; a relative path is from the
    /// scenario's folder.
    pub command: Vec<String>,
    /// Its environment, on top of the lab's own: each value a template,
    /// e.g. `PGPASSWORD = "{{ db.password }}"` (the environment is the place
    /// for secrets: `ps` does not show it).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// When it is ready for load; unset, when its port accepts a
    /// connection.
    #[serde(default)]
    pub ready: Ready,
    /// Its Prometheus endpoint, scraped each second into
    /// `metrics.parquet`; unset, not scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSettings>,
}

/// A process's Prometheus endpoint, and which of its series the report
/// reads as the architecture's backlog, breaker and database pool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// The path on its port, e.g. "/metrics".
    #[serde(default = "metrics_path")]
    pub path: String,
    /// A gauge without labels that is its backlog in messages, e.g.
    /// "orders_queue_depth": the report's backlog chart and figures read
    /// it. Unset: the backlog is not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<String>,
    /// A gauge without labels of its circuit breaker's state, 0 closed,
    /// 1 half-open, 2 open. Unset: the breaker is not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<String>,
    /// A histogram or summary without labels of the time a write waited
    /// for a pooled database connection, in seconds, by its family's name
    /// (its `_sum` and `_count` are read), e.g.
    /// "hikaricp_connections_acquire_seconds".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_wait: Option<String>,
    /// A histogram or summary without labels of the time a write held its
    /// pooled connection, in seconds, by its family's name, e.g.
    /// "hikaricp_connections_usage_seconds". With `rows`, the report's
    /// "What bounded the database writes" covers this architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_held: Option<String>,
    /// A gauge without labels of the most connections its pool opens, e.g.
    /// "hikaricp_connections_max".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_max: Option<String>,
    /// A counter without labels of the rows it stored, by its series' full
    /// name, e.g. "orders_created_total".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
}

fn metrics_path() -> String {
    "/metrics".into()
}

impl MetricsSettings {
    /// Whether it names the backlog or the breaker: the process is then its
    /// architecture's consumer, for the report and the progress line.
    pub fn consumer(&self) -> bool {
        self.backlog.is_some() || self.breaker.is_some()
    }
}

impl ProcessSettings {
    /// Whether a template of its names the broker.
    pub fn names_broker(&self) -> bool {
        self.command
            .iter()
            .chain(self.env.values())
            .filter_map(|text| crate::template::Template::parse(text).ok())
            .any(|template| vars::BROKER.iter().any(|name| template.uses(name)))
    }
}

/// When a process counts as ready: `{ http = "/health" }` (a GET answers
/// 2xx), `{ tcp = true }` (its port accepts a connection) or
/// `{ wait = "2s" }` (still running after the wait: a worker with no port).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A path on its port that answers 2xx once it is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Ready once its port accepts a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<bool>,
    /// Ready if still running after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<Span>,
    /// Longest wait for readiness, e.g. "30s".
    #[serde(default = "ready_timeout")]
    pub timeout: Span,
}

fn ready_timeout() -> Span {
    Span::secs(30)
}

impl Default for Ready {
    fn default() -> Self {
        Self {
            http: None,
            tcp: Some(true),
            wait: None,
            timeout: ready_timeout(),
        }
    }
}

/// The request each event becomes.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestSettings {
    /// The process the load is sent to; unset, the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// `POST`, `PUT` or `PATCH`.
    #[serde(default = "post")]
    pub method: String,
    /// The path, a template, e.g. `/orders`.
    pub path: String,
    /// The body, a template that carries `{{ event.id }}` somewhere, e.g.
    /// `'{"ref": "{{ event.id }}", "lat": {{ event.lat }}}'`.
    pub body: String,
    /// Its `content-type`.
    #[serde(default = "json")]
    pub content_type: String,
    /// The statuses that acknowledge an event; any other is a failure.
    #[serde(default = "acknowledging")]
    pub ok: Vec<u16>,
}

fn post() -> String {
    "POST".into()
}

fn json() -> String {
    "application/json".into()
}

fn acknowledging() -> Vec<u16> {
    vec![200, 201, 202, 204]
}

/// How the lab finds what the service stored.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// A `SELECT` whose rows are the stored events, with the columns
    /// `event_id` (text or uuid: the id the request carried) and
    /// `stored_at` (timestamp or timestamptz), e.g.
    /// `SELECT order_ref AS event_id, created_at AS stored_at FROM orders`.
    pub query: String,
    /// After the load, the audit waits until every acknowledged event is
    /// stored, or until the count of stored events has not moved for this
    /// long (at most the drain timeout), e.g. "10s". Longer than any pause
    /// of the service's own (a breaker's open time), or what it stores
    /// after the pause counts as lost.
    #[serde(default = "settle")]
    pub settle: Span,
}

fn settle() -> Span {
    Span::secs(10)
}

/// A topic created before the architecture's processes start.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Its name, as the service has it (a template: `{{ run.id }}` makes it
    /// the run's own).
    pub name: String,
    /// Its partitions; unset, the stack's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
}

/// The most processes one architecture may declare.
pub const MAX_PROCESSES: usize = 16;
/// The most arguments of a command, and variables of an environment.
pub const MAX_ARGUMENTS: usize = 256;
/// The most topics one architecture may ask for.
pub const MAX_TOPICS: usize = 64;
/// The longest template (a body, a command argument, a query) in bytes.
pub const MAX_TEMPLATE: usize = 64 * 1024;
/// The largest setup file, in bytes.
pub const MAX_SETUP_SQL: u64 = 10 * 1024 * 1024;
