//! A scenario's `[sweep]`: the keys it varies and how their values combine.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
