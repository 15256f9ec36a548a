//! `manifest.json`: how a run went (versions, host, seed, times, status),
//! written at the start, after each repetition and at the end.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::experiment::DriverSetting;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Complete,
    Incomplete,
    Failed,
}

/// What one repetition found besides its rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RepetitionSummary {
    pub repetition: u32,
    pub status: Status,
    pub reasons: Vec<String>,
    pub stack_startup_s: f64,
    pub load_end_s: f64,
    /// Seconds from the end of the load until each Kafka architecture had
    /// stored what it acknowledged (or had nothing left to read); `None` if
    /// the drain timed out.
    pub drain_s: BTreeMap<String, Option<f64>>,
    /// Per `service` architecture, the rows its audit query found with an
    /// id the lab never sent it: counted, not joined.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub foreign_rows: BTreeMap<String, u64>,
    /// The run's start, as a Unix time in microseconds.
    pub t0_unix_us: i64,
    pub broker: String,
    pub broker_durable: bool,
    /// The control repetition: the same load, no fault.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub control: bool,
    /// What PostgreSQL committed alone before the load, when the scenario
    /// asks for the capacity's reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
}

/// Connections that commit at once, as `pgbench -c 8` would.
pub const CLIENTS: u32 = 8;

/// Rows in each commit of the multi-row reference.
pub const ROWS_PER_COMMIT: usize = 50;

/// Rows in each `COPY` of the COPY reference, a drain's batch.
pub const COPY_ROWS: usize = 10_000;

/// What PostgreSQL stored alone, each way for the same length.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Reference {
    /// Single-row commits a second, all connections together.
    pub commits_per_s: f64,
    /// Connections that committed at once.
    pub clients: u32,
    /// How long each way was measured.
    pub seconds: f64,
    /// Rows a second in commits of [`ROWS_PER_COMMIT`] rows, from
    /// [`CLIENTS`] connections; absent in runs of versions that did not
    /// measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_row_rows_per_s: Option<f64>,
    /// Rows a second by `COPY` of [`COPY_ROWS`] rows per transaction, from
    /// one connection; absent as above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_rows_per_s: Option<f64>,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema: u32,
    pub experiment: String,
    pub run_id: String,
    pub status: Status,
    pub reasons: Vec<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub seed: u64,
    pub driver: DriverSetting,
    pub architectures: Vec<String>,
    pub versions: Versions,
    pub host: Host,
    pub repetitions: Vec<RepetitionSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Versions {
    pub faultline: String,
    pub rustc: String,
    pub postgres: String,
    pub broker: String,
    pub k6: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Host {
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    pub hostname: String,
}

/// This machine.
pub fn host() -> Host {
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    Host {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
        kernel: read("/proc/sys/kernel/osrelease"),
        hostname: read("/proc/sys/kernel/hostname"),
    }
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Incomplete => "incomplete",
            Status::Failed => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
