//! `summary.json`: every headline figure of a run, machine-readable. Other
//! tools read it; fields may be added, none is renamed or removed within a
//! schema version. `docs/summary.schema.json` is generated from these types
//! (`faultline schema --summary`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::manifest::Status;
use crate::experiment::{Metric, Phase};

/// The version of the format; a reader refuses another.
pub const SCHEMA: u32 = 1;

/// faultline summary.json, schema 1: every headline figure of a run. Times are
/// seconds from the run's start; latencies milliseconds. Fields may be added;
/// none is removed or renamed within schema 1.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[schemars(title = "faultline summary.json")]
pub struct Summary {
    /// The version of this format.
    pub schema: u32,
    /// The scenario's name.
    pub experiment: String,
    pub run_id: String,
    pub status: Status,
    /// Repetitions that ran.
    pub repetitions: usize,
    /// How the 95 % intervals over the repetitions are computed: `t`
    /// (Student-t, below 10 repetitions) or `bootstrap` (older summaries,
    /// without the field, used the bootstrap).
    #[serde(default = "bootstrap")]
    pub interval_method: String,
    /// Seconds from the start whose requests are left out of the latency
    /// figures (start-up); they count in every other figure.
    #[serde(default)]
    pub warmup_s: f64,
    /// Each fault of each repetition, as planned and as it happened.
    pub faults: Vec<FaultSummary>,
    /// Figures per architecture, by name.
    pub architectures: BTreeMap<String, ArchitectureSummary>,
    /// Each hypothesis of the scenario, judged.
    pub hypotheses: Vec<HypothesisResult>,
    /// What each process of the stack spent on the CPU, per request (runs
    /// before this field have none).
    #[serde(default)]
    pub cpu: Vec<ProcessCpu>,
    /// For every pair of architectures, which costs less per outage at
    /// each staleness budget from 1 s to 10 min, exact from every stored
    /// event's delay: the ranges and where they cross.
    #[serde(default)]
    pub budget_break_even: Vec<BudgetBreakEven>,
    /// Figures followed through seconds with no fault at constant load (the
    /// controls' whole run, else the faulted runs' seconds before the
    /// first fault): how each moved from the first fifth to the last.
    #[serde(default)]
    pub drift: Vec<Drift>,
    /// The repetition under way when the runner was killed outright, up to
    /// its last flush (`null` for a run that ended its repetitions).
    #[serde(default)]
    pub incomplete: Option<Incomplete>,
}

/// The repetition a killed runner never ended, up to its last flush: what
/// users saw. Its events were never drained nor audited, so it has no
/// figure of loss, freshness or cost and no verdict; none of its rows is
/// in the run's other figures.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Incomplete {
    pub repetition: u32,
    /// The latest intended send time among its requests.
    pub sent_until_s: f64,
    /// Its faults as they stood: one still under way has no actual end.
    pub faults: Vec<FaultSummary>,
    /// What users saw, per architecture, by name.
    pub architectures: BTreeMap<String, Answered>,
}

/// The answers of an architecture's requests in a repetition that was cut
/// short, over all its seconds and per phase.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Answered {
    pub totals: Answers,
    pub phases: BTreeMap<Phase, Answers>,
    /// The highest consumer backlog scraped (architectures with one), over
    /// all its seconds and per phase.
    pub backlog_peak: Option<f64>,
    pub backlog_peaks: BTreeMap<Phase, f64>,
}

/// Requests, answers and latency of a set of requests whose events were
/// not audited.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Answers {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub error_rate: f64,
    /// Latency of the successful requests.
    pub latency_ms: Option<Latency>,
    /// Failed requests by class, as in [`PhaseSummary::failures`].
    pub failures: BTreeMap<String, u64>,
}

impl From<PhaseSummary> for Answers {
    fn from(p: PhaseSummary) -> Self {
        Self {
            requests: p.requests,
            ok: p.ok,
            failed: p.failed,
            error_rate: p.error_rate,
            latency_ms: p.latency_ms,
            failures: p.failures,
        }
    }
}

/// One figure through seconds with no fault: its value in the first and
/// the last fifth of them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Drift {
    /// `latency_p99_ms` (the median over the seconds of each second's p99
    /// of an architecture's successful requests),
    /// `produce_ack_ms` (its producer's mean acknowledgement) or
    /// `cpu_cores` (a process).
    pub figure: String,
    /// The architecture, or the process (`architecture/process` for an
    /// architecture's own).
    pub subject: String,
    /// `control` (the control repetitions) or `before` (the faulted runs
    /// before their first fault).
    pub source: String,
    /// Seconds from the start the first fifth starts and the last ends.
    pub from_s: f64,
    pub to_s: f64,
    pub first: f64,
    pub last: f64,
    /// Moved by half or more (`last / first` ≥ 1.5 or ≤ 1/1.5): drift.
    pub drifted: bool,
}

/// A figure's change from before the fault to after it, in the faulted
/// runs and in the controls over the same seconds: the fault's own change
/// is the one beyond the controls' (a difference in differences, taken on
/// a log scale, so a ratio).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ChangeBeyondControl {
    /// Each faulted repetition's after ÷ before.
    pub faulted: Vec<f64>,
    /// Each control's after ÷ before, over the same seconds.
    pub control: Vec<f64>,
    /// Geometric mean of `faulted` ÷ that of `control`: the fault's own
    /// change.
    pub ratio: f64,
    /// 95 % interval of `ratio` (Welch's t on the logarithms); `None` with
    /// fewer than two of either.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl ChangeBeyondControl {
    /// Whether the interval leaves out 1: a change the controls' drift
    /// does not account for. `None` without an interval.
    pub fn beyond_drift(&self) -> Option<bool> {
        Some(self.low? > 1.0 || self.high? < 1.0)
    }
}

/// How an architecture held each step of a stepped rate, and its knee.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Capacity {
    /// The bounds a step must meet (the scenario's `capacity`).
    pub max_p99_ms: f64,
    pub max_error_rate: f64,
    /// Each step, in the order of its rate.
    pub steps: Vec<CapacityStep>,
    /// The highest rate that it and every lower step met; `None` if the
    /// lowest did not.
    pub knee_rps: Option<f64>,
    /// The lowest rate that missed a bound; `None` if every step met them.
    pub first_missed_rps: Option<f64>,
    /// What PostgreSQL committed alone in the same run, and the knee as a
    /// ratio to it; absent unless the scenario asks for the reference
    /// (`capacity.reference`).
    #[serde(default)]
    pub reference: Option<CapacityReference>,
    /// The machine's cores, which the steps' `cpu_cores` fill.
    #[serde(default)]
    pub machine_cores: u32,
}

/// How fast a consumer stored the backlog of the last fault once the fault
/// was over, from the audit's stored times: the backlog is the events
/// acknowledged before the fault was over and stored after it, timed from
/// the first of them stored to the last, counting every event stored
/// meanwhile. The means over the repetitions whose backlog held at least
/// 1,000 events stored over at least 0.2 s (a smaller one is a batch or two).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DrainRate {
    /// Events stored a second while the backlog was stored.
    pub events_per_s: f64,
    /// Events in the backlog.
    pub backlog_events: f64,
    /// From its first event stored to its last.
    pub seconds: f64,
    /// How many repetitions timed one.
    pub repetitions: u32,
    /// Rows a second PostgreSQL alone took by COPY before the load in the
    /// same run (`capacity.reference`), the mean of the repetitions.
    pub copy_rows_per_s: Option<f64>,
    /// `events_per_s` over `copy_rows_per_s`.
    pub copy_ratio: Option<f64>,
}

/// PostgreSQL alone, measured before each repetition's load: single-row
/// commits from several connections into a table like the events'.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CapacityReference {
    /// Single-row commits a second, the mean over the repetitions that
    /// measured it.
    pub commits_per_s: f64,
    /// Connections that committed at once.
    pub clients: u32,
    /// How long they committed, in each repetition.
    pub seconds: f64,
    /// How many repetitions measured it.
    pub repetitions: u32,
    /// The knee over `commits_per_s`; `None` without a knee.
    pub knee_ratio: Option<f64>,
    /// Rows a second in commits of `rows_per_commit` rows from as many
    /// connections, the mean over the repetitions that measured it.
    #[serde(default)]
    pub multi_row_rows_per_s: Option<f64>,
    #[serde(default)]
    pub rows_per_commit: u32,
    /// Rows a second by `COPY ... FROM STDIN BINARY` of `copy_rows` rows
    /// per transaction from one connection, the mean as above.
    #[serde(default)]
    pub copy_rows_per_s: Option<f64>,
    #[serde(default)]
    pub copy_rows: u32,
}

/// One step of a stepped rate, from its second second to its end (the
/// first is the change of rate), over every repetition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CapacityStep {
    /// The offered rate.
    pub rps: f64,
    pub from_s: f64,
    pub to_s: f64,
    pub requests: u64,
    /// Successful answers per second.
    pub ok_per_s: f64,
    pub error_rate: f64,
    /// Successful requests' latency, from the intended send time.
    pub latency_ms: Option<Latency>,
    /// CPU microseconds per request of each process that served it
    /// (`rest`, `producer`, `consumer`; shared ones per request of every
    /// architecture: `postgresql`, `broker`, `proxy`, `lab`).
    pub cpu_us_per_request: BTreeMap<String, f64>,
    /// The cores each sampled process kept busy during the step, every
    /// architecture's: together, how full the machine was.
    #[serde(default)]
    pub cpu_cores: BTreeMap<String, f64>,
    /// What bounded its database writes during the step (its offered rate
    /// the step's); `None` where its services export no pool histograms.
    #[serde(default)]
    pub database: Option<DatabaseTime>,
    /// Both bounds met.
    pub held: bool,
}

/// The CPU time one process of the stack used while the lab sampled it
/// (each second, from `/proc`), over every repetition, and per request
/// sent meanwhile: to its architecture, or to every architecture for a
/// process they share (PostgreSQL, the broker, the runner).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ProcessCpu {
    /// `rest`, `producer`, `consumer`, `postgresql` (the cluster: its
    /// postmaster and backends), `broker`, `proxy` (the runner's fault
    /// proxies, on a thread of their own) or `lab` (the rest of the runner:
    /// load driver, scraping).
    pub process: String,
    /// The architecture it serves alone; `None` when shared.
    pub architecture: Option<String>,
    /// CPU seconds used (user and system).
    pub cpu_s: f64,
    /// Seconds it was sampled.
    pub sampled_s: f64,
    /// Requests sent meanwhile (its architecture's, or every one's).
    pub requests: u64,
    /// CPU microseconds per request.
    pub us_per_request: Option<f64>,
    /// Cores it kept busy on average (`cpu_s / sampled_s`).
    pub cores: f64,
}

impl Summary {
    /// Fault windows of `repetition`: see [`windows_of`].
    pub fn windows(&self, repetition: u32) -> Vec<(f64, f64)> {
        windows_of(&self.faults, repetition)
    }

    /// Hypotheses that did not hold.
    pub fn failed_hypotheses(&self) -> usize {
        self.hypotheses.iter().filter(|h| !h.passed).count()
    }
}

/// What summaries written before `interval_method` existed used.
fn bootstrap() -> String {
    "bootstrap".into()
}

/// Fault windows of `repetition`, as they acted: from the injection (its
/// actual time where known) to the moment the probe saw the component
/// back (the restore's actual time plus its verified recovery, e.g. the
/// database accepting queries again after crash recovery). A failure
/// before the component was back is the fault's, not the architecture's
/// slowness to recover. The start is the injection itself: the effect
/// probe's own round trips would only delay it.
pub fn windows_of(faults: &[FaultSummary], repetition: u32) -> Vec<(f64, f64)> {
    faults
        .iter()
        .filter(|f| f.repetition == repetition)
        .map(|f| {
            let start = f.actual_start_s.or(f.planned_start_s).unwrap_or(0.0);
            let end = f.actual_end_s.or(f.planned_end_s).unwrap_or(start);
            let back = f.recovery_ms.filter(|ms| ms.is_finite() && *ms > 0.0);
            (start, end + back.unwrap_or(0.0) / 1000.0)
        })
        .collect()
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Requests, answers and latency of a set of requests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PhaseSummary {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub error_rate: f64,
    /// Acknowledged events of these requests absent from the database.
    #[serde(default)]
    pub lost_events: u64,
    /// Acknowledged events of these requests stored later than the
    /// staleness budget.
    #[serde(default)]
    pub late_events: u64,
    /// Latency of the successful requests.
    pub latency_ms: Option<Latency>,
    /// Failed requests by class: an HTTP status (`503`), `timeout`,
    /// `refused`, `connection` or `not_sent`.
    pub failures: BTreeMap<String, u64>,
}

/// Sent → stored delay of the acknowledged events that were stored, in
/// milliseconds: from the intended send time (when the user acted), so a
/// client's retries and the answer's own latency count.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Freshness {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    /// Share of the stored acknowledged events later than the staleness budget.
    pub stale_share: f64,
    /// Share of the *acknowledged* events stored within the staleness
    /// budget: a lost event is not on time, so dropping late events does not
    /// look fresh.
    #[serde(default)]
    pub on_time_share: f64,
}

/// The cost model's result with every input beside it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Cost {
    pub currency: String,
    /// Failed requests, lost events and events stored later than the
    /// staleness budget, over all repetitions.
    pub failed_events: u64,
    pub orders_lost: f64,
    pub revenue_lost: f64,
    /// Revenue lost in one outage (one repetition), on average.
    pub per_outage: f64,
    /// One outage scaled to the production rate, times the outages a year.
    pub per_year: f64,
    /// Revenue lost under the original proof of concept's formula: failed
    /// requests only, so an acknowledged event that is lost or late costs
    /// nothing; over all repetitions.
    #[serde(default)]
    pub poc_revenue_lost: f64,
    /// The same in one outage (one repetition), on average: what sits
    /// beside `per_outage`.
    #[serde(default)]
    pub poc_per_outage: f64,
    pub inputs: CostInputs,
}

/// Two architectures' costs per outage against the staleness budget.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct BudgetBreakEven {
    pub a: String,
    pub b: String,
    /// The budgets, in seconds, at which the cheaper one changes (a
    /// stretch of equal cost between two sides counts once, at its end).
    pub crossings_s: Vec<f64>,
    /// The budgets shown, split where the cheaper one changes.
    pub ranges: Vec<BudgetRange>,
    pub sentence: String,
}

/// A range of staleness budgets over which one architecture costs less.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct BudgetRange {
    /// From this budget (inclusive), in seconds.
    pub from_s: f64,
    /// To this one (exclusive, but for the last range), in seconds.
    pub to_s: f64,
    /// The cheaper architecture; `None` where both cost the same.
    pub cheaper: Option<String>,
}

/// The cost of one outage had the staleness budget been another, computed
/// from each event's freshness without running again.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct BudgetCost {
    pub staleness_budget_s: f64,
    /// Acknowledged events stored later than this budget, all repetitions.
    pub stale: u64,
    /// Revenue lost in one outage (one repetition), on average.
    pub per_outage: f64,
}

/// The headline figures of one repetition.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct RepetitionFigures {
    pub repetition: u32,
    pub requests: u64,
    pub error_rate: f64,
    /// Error rate of the requests sent during a fault.
    pub error_rate_during: Option<f64>,
    pub acknowledged: u64,
    pub lost: u64,
    /// Lost / acknowledged.
    pub lost_share: f64,
    /// Share of the stored acknowledged events later than the staleness budget.
    pub stale_share: Option<f64>,
    /// Share of the acknowledged events stored within the staleness budget.
    #[serde(default)]
    pub on_time_share: Option<f64>,
    pub freshness_p99_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub recovery_s: Option<f64>,
    /// Fault end → the database stores the events as fast as they are
    /// acknowledged again.
    #[serde(default)]
    pub data_recovery_s: Option<f64>,
    /// Fault end → every event stored from then on within the staleness
    /// budget.
    #[serde(default)]
    pub data_current_s: Option<f64>,
    pub drain_s: Option<f64>,
    /// Revenue lost in this repetition's outage.
    pub revenue_lost: f64,
    /// The same under the original proof of concept's formula.
    pub poc_revenue_lost: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct CostInputs {
    pub order_value: f64,
    pub orders_lost_per_failed_event: f64,
    pub production_rps: f64,
    /// The rate this run offered to the architecture, on average.
    pub run_rps: f64,
    pub outages_per_year: f64,
    pub staleness_budget_s: f64,
}

/// A figure over the repetitions: its mean and a 95 % interval of it
/// (Student-t below 10 repetitions, bootstrap from 10; `None` with a
/// single repetition), kept within what the figure can be (never below 0,
/// a share never above 1).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub values: Vec<f64>,
}

/// The headline figures of each repetition, summarised: one estimate per
/// figure of the catalogue (`catalogue.rs`), under its name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct Repetitions {
    pub count: usize,
    pub error_rate: Option<Estimate>,
    pub error_rate_during: Option<Estimate>,
    pub lost: Option<Estimate>,
    #[serde(default)]
    pub lost_share: Option<Estimate>,
    pub latency_p99_ms: Option<Estimate>,
    #[serde(default)]
    pub freshness_p99_ms: Option<Estimate>,
    #[serde(default)]
    pub stale_share: Option<Estimate>,
    #[serde(default)]
    pub on_time_share: Option<Estimate>,
    pub recovery_s: Option<Estimate>,
    #[serde(default)]
    pub data_recovery_s: Option<Estimate>,
    #[serde(default)]
    pub data_current_s: Option<Estimate>,
    pub drain_s: Option<Estimate>,
    pub revenue_lost: Option<Estimate>,
    #[serde(default)]
    pub poc_revenue_lost: Option<Estimate>,
}

/// The figures of one architecture, all repetitions pooled.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ArchitectureSummary {
    /// Requests, answers, error rate and latency over the whole run.
    #[serde(flatten)]
    pub totals: PhaseSummary,
    pub phases: BTreeMap<Phase, PhaseSummary>,
    pub acknowledged: u64,
    pub stored: u64,
    pub lost: u64,
    /// Of the lost events, those acknowledged before a `broker-kill` of a
    /// broker that kept its log in memory: lost with the broker, not by the
    /// consumer.
    #[serde(default)]
    pub lost_with_broker: u64,
    /// Deliveries of an event already stored, absorbed because the event id
    /// is the table's key: a client's retry of a request whose first
    /// attempt was stored (REST's "already stored" answers), or a message
    /// the consumer read twice. From the services' `events_duplicate_total`.
    #[serde(default)]
    pub redelivered: u64,
    /// The older name of `redelivered`, the same value (no event is ever
    /// stored twice: the event id is the table's key).
    pub duplicates: u64,
    /// Events whose id was already stored with another driver, position
    /// or time: refused (REST's 409) or left alone by the consumer, and not
    /// counted as redeliveries. From the services' `events_conflict_total`.
    #[serde(default)]
    pub conflicts: u64,
    pub stored_unacknowledged: u64,
    /// Acknowledged events stored later than the staleness budget.
    pub stale: u64,
    pub freshness_ms: Option<Freshness>,
    /// Fault over (the component back, see `faults[].recovery_ms`) → the
    /// first successful request after the last failure that kept the error
    /// rate above the baseline + 1 point, with the next 5 s within it: from
    /// the request rows, to the request (the worst repetition).
    pub recovery_s: Option<f64>,
    /// Fault end → the database stores this architecture's events as fast
    /// as they are acknowledged again (90 % or more, 3 s in a row), from
    /// the audit rows; the worst repetition. A path that answers but drops
    /// or holds back what it acknowledged has not recovered. A rate, not a
    /// freshness: see `data_current_s`.
    #[serde(default)]
    pub data_recovery_s: Option<f64>,
    /// Fault end → the moment from which every event stored was stored
    /// within the staleness budget of when it was sent: the data current
    /// again (the last store of a stale event after the fault; 0 when there
    /// is none); the worst repetition.
    #[serde(default)]
    pub data_current_s: Option<f64>,
    /// Fault end → consumer backlog back to its level before the fault
    /// (the worst repetition).
    pub drain_s: Option<f64>,
    /// Load end → everything acknowledged stored (the runner's drain wait).
    pub settle_s: Option<f64>,
    /// Rows a `service` architecture's audit query found with an id the
    /// lab never sent it (every repetition but the control), counted and
    /// not joined; `None` for the built-in architectures.
    #[serde(default)]
    pub foreign_rows: Option<u64>,
    pub peak_backlog: Option<f64>,
    /// How fast the backlog of the last fault was stored once the fault
    /// was over; `None` without one large enough to time.
    #[serde(default)]
    pub drain_rate: Option<DrainRate>,
    /// Seconds whose scraped breaker state read open (the worst
    /// repetition); `None` without a breaker.
    pub breaker_open_s: Option<f64>,
    /// Fault over → the breaker reads closed and stays closed, to the
    /// second of its scrape (the worst repetition); `None` without a
    /// breaker, or if it was still open at the last reading.
    #[serde(default)]
    pub breaker_closed_s: Option<f64>,
    /// How it held each step of a stepped rate (`workload.rate.shape =
    /// "steps"`), and its knee; `None` for another rate shape.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// The mean time the broker took to acknowledge a produce, per phase,
    /// in milliseconds (the producer's `kafka_produce_duration_seconds`,
    /// scraped); empty without a producer.
    #[serde(default)]
    pub produce_ack_ms: BTreeMap<Phase, f64>,
    /// What bounded its database writes, per phase; empty where its
    /// services export no pool histograms (a `service` of your own, runs of
    /// older versions) or the run had no fault.
    #[serde(default)]
    pub database: BTreeMap<Phase, DatabaseTime>,
    /// What bounded its database writes over the whole run, in a run
    /// without faults or steps (which split it by phase or by step);
    /// `None` otherwise, or where its services export no pool histograms.
    #[serde(default)]
    pub database_run: Option<DatabaseTime>,
    /// How late the lab's driver sent this architecture's requests after
    /// their intended times: its own delay, part of every latency (which
    /// counts from the intended time). `None` without a request sent, and
    /// with k6, which does not say when it meant to send one.
    #[serde(default)]
    pub sent_late_ms: Option<SentLate>,
    pub cost: Cost,
    /// Cost per outage against the staleness budget, from 1 s to 10 min.
    #[serde(default)]
    pub cost_by_staleness_budget: Vec<BudgetCost>,
    pub repetitions: Repetitions,
    /// Each repetition's headline figures, in order.
    #[serde(default)]
    pub per_repetition: Vec<RepetitionFigures>,
    /// The control repetitions' figures (the same load, no fault), pooled,
    /// their phases over the same seconds as the faulted runs'; `None`
    /// without a control. Not pooled into any figure above.
    #[serde(default)]
    pub control: Option<ControlSummary>,
}

/// What bounded an architecture's database writes in one phase, from its
/// services' pool histograms (`db_pool_wait_seconds`,
/// `db_connection_held_seconds`, `db_pool_max_connections`, and the rows
/// of `events_stored_total` and `events_duplicate_total`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct DatabaseTime {
    /// Writes: statements or transactions that held a pooled connection
    /// (0 in a phase where every one got none).
    pub writes: u64,
    /// Rows each write carried, on average (1 for one commit per request;
    /// 0 without a write).
    pub rows_per_write: f64,
    /// How long a write held its connection, on average: its round trips
    /// (0 without a write).
    pub held_ms: f64,
    /// How long a write waited for a connection, on average (to the
    /// acquire timeout when it got none).
    pub waited_ms: Option<f64>,
    /// Writes that waited and got no connection: the waits counted beyond
    /// the writes (a database that refused connections, or a wait that
    /// timed out). Writes in flight at a phase's edge can move it by a few;
    /// a pool whose waits count only those that got one reads 0.
    #[serde(default)]
    pub no_connection: u64,
    /// The most connections its pool opens.
    pub connections: u32,
    /// Connections its writes held at once, on average (time held ÷ the
    /// phase's seconds): its pool is the bound when this nears
    /// `connections`, else the writer sends fewer writes at once (a
    /// consumer writes one batch at a time).
    pub busy_connections: f64,
    /// The most rows a second the pool could store at that hold time:
    /// connections × rows per write ÷ time held; none from fewer than 30
    /// writes.
    pub bound_rows_per_s: Option<f64>,
    /// Rows it stored (or found stored) a second.
    pub rows_per_s: f64,
    /// Requests offered to the architecture a second.
    pub offered_per_s: Option<f64>,
}

/// How late requests were sent after their intended times, in
/// milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SentLate {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    /// The requests sent.
    pub sent: u64,
}

/// The figures of the control repetitions: the same load with no fault.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct ControlSummary {
    /// Requests, answers, error rate and latency over the whole run.
    #[serde(flatten)]
    pub totals: PhaseSummary,
    /// Over the seconds of the faulted runs' phases.
    pub phases: BTreeMap<Phase, PhaseSummary>,
    pub lost: u64,
    pub freshness_ms: Option<Freshness>,
    /// As `produce_ack_ms` of the faulted runs.
    #[serde(default)]
    pub produce_ack_ms: BTreeMap<Phase, f64>,
    /// How many control repetitions these figures pool.
    #[serde(default = "one")]
    pub repetitions: u32,
    /// Latency p99 after the fault ÷ before, against the controls'.
    #[serde(default)]
    pub latency_p99_change: Option<ChangeBeyondControl>,
    /// Produce acknowledgement time after ÷ before, against the controls'.
    #[serde(default)]
    pub produce_ack_change: Option<ChangeBeyondControl>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct HypothesisResult {
    pub title: String,
    pub architecture: String,
    pub metric: Metric,
    pub phase: Option<Phase>,
    /// `≤ x` or `≥ x`.
    pub limit: String,
    pub value: Option<f64>,
    pub passed: bool,
}

/// One fault as planned and as it happened.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FaultSummary {
    pub repetition: u32,
    pub kind: String,
    pub target: String,
    pub planned_start_s: Option<f64>,
    pub planned_end_s: Option<f64>,
    pub actual_start_s: Option<f64>,
    pub actual_end_s: Option<f64>,
    pub verified: bool,
    pub effect_ms: Option<f64>,
    pub recovery_ms: Option<f64>,
}
