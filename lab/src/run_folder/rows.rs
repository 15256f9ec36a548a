//! The rows of the run folder's Parquet files, one type per file, as the
//! lab's stages produce them: [`Row`] (`requests.parquet`, from a load
//! driver), [`MetricRow`] (`metrics.parquet`, scraped), [`StoredRow`]
//! (`stored.parquet`, the database audit) and [`FaultRecord`]
//! (`faults.parquet`). The writers depend on these types, never the
//! reverse; `frames.rs` names their columns.

use serde::Serialize;

/// One stored event, as the database audit reads it back.
pub use faultline_services::store::AuditRow as StoredRow;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// A 2xx answer that a `service` architecture's `ok` list does not
    /// count as acknowledging the event.
    NotAcknowledged(u16),
    /// No answer within the client timeout.
    Timeout,
    /// The connection was refused.
    Refused,
    /// The connection broke or could not be made for another reason.
    Connection,
    /// Not sent: too many requests were already in flight.
    NotSent,
}

impl Outcome {
    pub fn ok(self) -> bool {
        matches!(self, Outcome::Status(200..=299))
    }

    /// Worth retrying: the server or the network failed, not the request.
    pub(crate) fn retriable(self) -> bool {
        matches!(
            self,
            Outcome::Status(500..=599) | Outcome::Timeout | Outcome::Refused | Outcome::Connection
        )
    }

    /// `http`, `timeout`, `refused`, `connection` or `not_sent`.
    pub fn class(self) -> &'static str {
        match self {
            Outcome::Status(_) | Outcome::NotAcknowledged(_) => "http",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Connection => "connection",
            Outcome::NotSent => "not_sent",
        }
    }

    /// The HTTP status, 0 when there was none.
    pub fn status(self) -> u16 {
        match self {
            Outcome::Status(status) | Outcome::NotAcknowledged(status) => status,
            _ => 0,
        }
    }
}

/// One logical request, times in microseconds from `t0`.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// Index of the architecture in the run's list.
    pub architecture: u16,
    pub seq: u64,
    pub intended_us: u64,
    /// When the first attempt was sent.
    pub sent_us: u64,
    /// When the last attempt ended.
    pub finished_us: u64,
    /// The last attempt's outcome.
    pub outcome: Outcome,
    pub attempts: u32,
    pub event_id: uuid::Uuid,
}

/// One sample of an OpenMetrics exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: String,
    /// `key="value",...` as exposed, without braces.
    pub labels: String,
    pub value: f64,
}

/// One scraped value.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub t_s: f64,
    pub architecture: String,
    pub service: String,
    pub sample: Sample,
}

/// What happened to one fault, times in seconds from the run's start.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: String,
    pub target: String,
    pub planned_start_s: f64,
    pub planned_end_s: f64,
    pub actual_start_s: Option<f64>,
    pub actual_end_s: Option<f64>,
    /// The probe saw the fault take effect.
    pub verified_start: bool,
    /// The probe saw the fault end.
    pub verified_end: bool,
    /// From injection to the probe seeing the effect.
    pub effect_ms: Option<f64>,
    /// From the end action to the probe seeing the system back.
    pub recovery_ms: Option<f64>,
    /// Both verified.
    pub verified: bool,
    /// What went wrong, if anything.
    pub detail: String,
}

/// A process whose CPU time the lab samples, as `metrics.parquet`'s
/// `service` column names it: each architecture's services, then what
/// every architecture shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Process {
    Rest,
    Producer,
    Consumer,
    /// PostgreSQL with every backend.
    Postgresql,
    Broker,
    /// The lab's thread for the fault proxies.
    Proxy,
    /// The lab's threads for the load driver.
    Driver,
    /// The rest of the lab: scraping, sampling, the live view.
    Lab,
}

impl Process {
    /// Every process, in the order reports list them.
    pub const ALL: [Process; 8] = [
        Process::Rest,
        Process::Producer,
        Process::Consumer,
        Process::Postgresql,
        Process::Broker,
        Process::Proxy,
        Process::Driver,
        Process::Lab,
    ];

    /// Its name in the run folder (`postgresql`).
    pub fn name(self) -> &'static str {
        match self {
            Process::Rest => "rest",
            Process::Producer => "producer",
            Process::Consumer => "consumer",
            Process::Postgresql => "postgresql",
            Process::Broker => "broker",
            Process::Proxy => "proxy",
            Process::Driver => "driver",
            Process::Lab => "lab",
        }
    }

    /// The process a run folder names `name`.
    pub fn of(name: &str) -> Option<Process> {
        Process::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What a table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Process::Rest => "REST service",
            Process::Producer => "producer",
            Process::Consumer => "consumer",
            Process::Postgresql => "PostgreSQL (every backend)",
            Process::Broker => "broker",
            Process::Proxy => "fault proxies (the lab's thread for them)",
            Process::Driver => "load driver (the lab's threads for it)",
            Process::Lab => "the rest of the lab (scraping, sampling)",
        }
    }

    /// What a sentence calls it.
    pub fn in_sentence(self) -> &'static str {
        match self {
            Process::Rest => "the REST service",
            Process::Producer => "the producer",
            Process::Consumer => "the consumer",
            Process::Postgresql => "PostgreSQL",
            Process::Broker => "the broker",
            Process::Proxy => "the fault proxies",
            Process::Driver => "the lab's load driver",
            Process::Lab => "the rest of the lab",
        }
    }
}
