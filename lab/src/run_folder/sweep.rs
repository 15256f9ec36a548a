//! A sweep folder's own files: its copy of the scenario, `points.parquet`,
//! `sweep.json` (one type, [`SweepSummary`]) and the point's run folders
//! under `runs/`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Status;
use super::summary::{BudgetCost, Estimate, RepetitionFigures};
use crate::crossing::BreakEven;
use crate::experiment::SweepMode;

/// The sweep folder's copy of the scenario, exactly as given.
pub const SWEEP_TOML: &str = "sweep.toml";
/// One row per point × architecture × repetition.
pub const POINTS: &str = "points.parquet";
/// Per point × architecture: each headline figure's mean and interval.
pub const SWEEP_JSON: &str = "sweep.json";
/// The run folders of the points.
pub const RUNS: &str = "runs";

/// The version of `sweep.json`.
pub const SCHEMA: u32 = 1;

/// `sweep.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct SweepSummary {
    pub schema: u32,
    /// The scenario's name.
    pub experiment: String,
    pub mode: SweepMode,
    /// The swept keys, as written.
    pub parameters: Vec<String>,
    /// Whether each parameter's values are durations (its numbers are
    /// then seconds).
    pub durations: Vec<bool>,
    pub architectures: Vec<String>,
    pub repetitions: u32,
    pub points: Vec<PointSummary>,
    /// Where one architecture's cost or loss crosses another's.
    pub break_even: Vec<BreakEven>,
}

impl SweepSummary {
    /// Points that ran to completion.
    pub fn complete(&self) -> usize {
        self.points
            .iter()
            .filter(|p| p.status == Some(Status::Complete))
            .count()
    }

    /// When the first point started.
    pub fn started_at(&self) -> Option<&str> {
        self.points
            .iter()
            .filter_map(|p| p.started_at.as_deref())
            .min()
    }

    /// Hypotheses that failed, over every point.
    pub fn failed_hypotheses(&self) -> usize {
        self.points.iter().map(|p| p.failed_hypotheses).sum()
    }
}

/// One point of the sweep.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PointSummary {
    /// 1-based.
    pub point: usize,
    /// Its run folder, under `runs/`.
    pub folder: String,
    /// Each parameter's value, as written.
    pub values: Vec<String>,
    /// Each parameter's value as a number (durations in seconds), if it is one.
    pub numbers: Vec<Option<f64>>,
    /// `None` when the point has not run.
    pub status: Option<Status>,
    pub failed_hypotheses: usize,
    /// When the point's run started.
    pub started_at: Option<String>,
    /// Wall time of the point's run.
    pub wall_s: Option<f64>,
    /// Wall time beyond the load and the drain: stack up, teardown, audit,
    /// analysis.
    pub overhead_s: Option<f64>,
    /// Per architecture, per figure: mean and interval over the repetitions.
    pub figures: BTreeMap<String, BTreeMap<String, Option<Estimate>>>,
    /// Per architecture: cost per outage against the staleness budget.
    pub cost_by_budget: BTreeMap<String, Vec<BudgetCost>>,
    /// Per architecture, each repetition's figures.
    #[serde(skip)]
    pub repetitions: BTreeMap<String, Vec<RepetitionFigures>>,
}
