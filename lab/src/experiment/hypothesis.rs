//! Hypotheses: claims about one figure of one architecture, in one phase
//! of the run.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Acknowledged events absent from the database after the drain, per
    /// repetition (on average over several).
    LostEvents,
    /// Lost / acknowledged events.
    LostShare,
    /// The older name of `redelivered`: the same figure.
    Duplicates,
    /// Deliveries of an event already stored, absorbed because the event id
    /// is the table's key: a client's retry or a message read twice; per
    /// repetition (on average over several).
    Redelivered,
    /// Latency percentiles of successful requests, in ms.
    LatencyP50Ms,
    LatencyP99Ms,
    /// Sent → stored, of acknowledged events, 99th percentile, in ms.
    FreshnessP99Ms,
    /// Share of the stored acknowledged events later than the staleness
    /// budget.
    StaleShare,
    /// Share of the acknowledged events stored within the staleness budget
    /// (a lost event is not on time).
    OnTimeShare,
    /// Seconds from the end of the last fault until the error rate is back
    /// within the baseline for 5 s.
    RecoveryS,
    /// Seconds from the end of the last fault until the consumer backlog is
    /// back to its level before the fault.
    DrainS,
    /// Seconds from the end of the last fault until the database stores
    /// the architecture's events as fast as they are acknowledged again.
    DataRecoveryS,
    /// Seconds from the end of the last fault until every event stored is
    /// stored within the staleness budget again: the data current, not only
    /// flowing.
    DataCurrentS,
    /// Revenue lost in one outage (one repetition), on average.
    RevenueLost,
    /// The same under the original proof of concept's formula: failed
    /// requests only.
    PocRevenueLost,
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

/// A part of a run relative to its faults, as the requests intended in it
/// are grouped: the one name of a phase in scenarios, the summary's keys
/// and the report.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the first fault.
    Before,
    /// While a fault is on.
    During,
    /// After one fault ended and before the next began.
    Between,
    /// After the last fault ended.
    After,
}

impl Phase {
    /// Every phase, in the order of a run.
    pub const ALL: [Phase; 4] = [Phase::Before, Phase::During, Phase::Between, Phase::After];

    /// The phase of a request intended at `t` among fault `windows`
    /// (start, end), in seconds; `None` without faults.
    pub fn of(windows: &[(f64, f64)], t: f64) -> Option<Phase> {
        if windows.is_empty() {
            return None;
        }
        let first = windows.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
        let last = windows
            .iter()
            .map(|w| w.1)
            .fold(f64::NEG_INFINITY, f64::max);
        Some(if windows.iter().any(|(s, e)| t >= *s && t < *e) {
            Phase::During
        } else if t < first {
            Phase::Before
        } else if t >= last {
            Phase::After
        } else {
            Phase::Between
        })
    }

    /// The name a scenario and the summary give it (`during`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::Between => "between",
            Phase::After => "after",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
