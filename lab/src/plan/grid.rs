//! A scenario's `[sweep]` lowered to its grid of points, each an ordinary
//! scenario. Pure: validation checks every point with it before a
//! sweep starts, and `faultline sweep` runs them.

use std::fmt;
use std::str::FromStr;

use serde_json::Value as Json;

use crate::experiment::{Experiment, Sweep, SweepMode};

/// More points than this is refused: a sweep that would run for weeks is a
/// typo.
pub const MAX_POINTS: usize = 500;

/// One step of a key path: a table's key or a list's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A key path into a scenario as written in `[sweep]`:
/// `faults[0].duration`, `architectures.kafka-drop.breaker.open_for`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Step>);

impl FromStr for KeyPath {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut steps = Vec::new();
        for segment in text.split('.') {
            let (name, mut rest) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            if name.is_empty() || name.contains(']') {
                return Err(format!(
                    "{text:?} is not a key path: each part between dots needs a key"
                ));
            }
            steps.push(Step::Key(name.to_string()));
            while !rest.is_empty() {
                let close = rest.find(']').filter(|_| rest.starts_with('['));
                let index = close.and_then(|close| rest[1..close].parse::<usize>().ok());
                let (Some(close), Some(index)) = (close, index) else {
                    return Err(format!(
                        "{text:?} is not a key path: a list index is written `[0]`"
                    ));
                };
                steps.push(Step::Index(index));
                rest = &rest[close + 1..];
            }
        }
        Ok(Self(steps))
    }
}

impl fmt::Display for KeyPath {
    /// The form the validator names keys with: `architectures[2].pool.size`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => write!(f, "{key}")?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Why a key path does not lead anywhere in the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub message: String,
    pub hint: Option<String>,
}

impl KeyPath {
    /// The path with every architecture name replaced by its index, checked
    /// against `document`: every step but the last must exist; the last may
    /// be a key the scenario leaves out (the validator then says whether
    /// the format has it).
    pub fn locate(&self, document: &Json) -> Result<KeyPath, PathError> {
        let mut node = document;
        let mut located = Vec::new();
        for (i, step) in self.0.iter().enumerate() {
            let last = i + 1 == self.0.len();
            let here = KeyPath(located.clone()).to_string();
            let next = match (node, step) {
                (Json::Array(items), Step::Key(name)) => {
                    let names: Vec<&str> =
                        items.iter().filter_map(|i| i["name"].as_str()).collect();
                    let Some(index) = names.iter().position(|n| n == name) else {
                        return Err(PathError {
                            message: format!("`{here}` has no entry named {name:?}"),
                            hint: Some(if names.is_empty() {
                                format!("its entries have no names; write `{here}[0]`")
                            } else {
                                format!("its names: {}", names.join(", "))
                            }),
                        });
                    };
                    located.push(Step::Index(index));
                    &items[index]
                }
                (Json::Array(items), Step::Index(index)) => {
                    let Some(item) = items.get(*index) else {
                        return Err(PathError {
                            message: format!(
                                "`{here}` has {} entr{}; `{here}[{index}]` is not one",
                                items.len(),
                                if items.len() == 1 { "y" } else { "ies" }
                            ),
                            hint: None,
                        });
                    };
                    located.push(step.clone());
                    item
                }
                (Json::Object(table), Step::Key(key)) => {
                    located.push(step.clone());
                    match table.get(key) {
                        Some(value) => value,
                        None if last => return Ok(KeyPath(located)),
                        None => {
                            let path = KeyPath(located).to_string();
                            return Err(PathError {
                                message: format!("`{path}` is not a key of the scenario"),
                                hint: crate::spelling::closest_key(key, table.keys())
                                    .map(|k| format!("did you mean `{k}`?")),
                            });
                        }
                    }
                }
                (_, step) => {
                    return Err(PathError {
                        message: format!(
                            "`{here}` is a single value; it has no {}",
                            match step {
                                Step::Key(key) => format!("key `{key}`"),
                                Step::Index(index) => format!("entry [{index}]"),
                            }
                        ),
                        hint: None,
                    });
                }
            };
            node = next;
        }
        Ok(KeyPath(located))
    }

    /// Sets the value at this (located) path in `document`.
    fn set(&self, document: &mut Json, value: Json) {
        let mut node = document;
        for step in &self.0 {
            node = match step {
                Step::Key(key) => {
                    let table = node.as_object_mut().expect("a located path");
                    table.entry(key.clone()).or_insert(Json::Null)
                }
                Step::Index(index) => &mut node[*index],
            };
        }
        *node = value;
    }

    /// The last key, for short labels: `duration`, `open_for`.
    pub fn leaf(&self) -> &str {
        self.0
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Index(_) => None,
            })
            .unwrap_or_default()
    }
}

/// The scenario as a document with every default written out and no
/// `[sweep]`: what key paths are resolved against.
pub fn document(experiment: &Experiment) -> Json {
    let mut base = experiment.clone();
    base.sweep = None;
    let mut document = serde_json::to_value(&base).expect("a scenario is JSON");
    drop_nulls(&mut document);
    document
}

/// TOML has no null: a key left unset is left out.
fn drop_nulls(value: &mut Json) {
    match value {
        Json::Object(table) => {
            table.retain(|_, v| !v.is_null());
            table.values_mut().for_each(drop_nulls);
        }
        Json::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A value as a person wrote it: `15s`, `500`, `drop`.
pub fn written(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A value as a sweep's folder names, messages and tables show it: as
/// written, any password in it (an address swept) replaced by `****`.
pub fn shown(value: &Json) -> String {
    let text = written(value);
    crate::secrets::redact(&text, &crate::secrets::passwords_in(&text))
}

/// A value as a number for a chart's axis: durations in seconds.
pub fn numeric(value: &Json) -> Option<f64> {
    match value {
        Json::Number(n) => n.as_f64(),
        Json::String(text) => humantime::parse_duration(text)
            .ok()
            .map(|d| d.as_secs_f64()),
        _ => None,
    }
}

/// One point of a sweep: which value of each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// 0-based, in the sweep's order.
    pub index: usize,
    /// The value of each parameter, in the parameters' order.
    pub values: Vec<Json>,
}

impl Point {
    /// Its run folder's name under `runs/`: `p03-duration-60s`.
    pub fn folder(&self, grid: &Grid) -> String {
        let label: Vec<String> = grid
            .keys
            .iter()
            .zip(&self.values)
            .map(|(key, value)| format!("{}-{}", key.leaf(), shown(value)))
            .collect();
        let name: String = format!("p{:02}-{}", self.index + 1, label.join("_"))
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name
    }

    /// `faults[0].duration = 60s, workload.rate.rps = 500`.
    pub fn describe(&self, grid: &Grid) -> String {
        grid.written
            .iter()
            .zip(&self.values)
            .map(|(key, value)| format!("{key} = {}", shown(value)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A sweep's points and the scenario each one runs.
#[derive(Debug, Clone)]
pub struct Grid {
    /// Each parameter's key as written.
    pub written: Vec<String>,
    /// Each parameter's key located in the scenario.
    pub keys: Vec<KeyPath>,
    pub points: Vec<Point>,
    base: Json,
}

/// A sweep that cannot be expanded, with the parameter it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridProblem {
    /// `sweep.parameters[1].key`, or `sweep` for the whole.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Grid {
    /// The points of `experiment`'s sweep (none without one), or every
    /// problem of its keys and lists.
    pub fn of(experiment: &Experiment) -> Result<Self, Vec<GridProblem>> {
        let base = document(experiment);
        let Some(sweep) = &experiment.sweep else {
            return Ok(Self {
                written: Vec::new(),
                keys: Vec::new(),
                points: Vec::new(),
                base,
            });
        };
        let mut problems = Vec::new();
        let mut keys = Vec::new();
        if sweep.parameters.is_empty() {
            problems.push(GridProblem {
                path: "sweep.parameters".into(),
                message: "a sweep needs at least one parameter".into(),
                hint: Some(
                    "e.g. parameters = [{ key = \"faults[0].duration\", values = [\"30s\", \"120s\"] }]"
                        .into(),
                ),
            });
        }
        for (i, parameter) in sweep.parameters.iter().enumerate() {
            let at = format!("sweep.parameters[{i}]");
            if parameter.values.is_empty() {
                problems.push(GridProblem {
                    path: format!("{at}.values"),
                    message: "a parameter needs at least one value".into(),
                    hint: None,
                });
            }
            match locate(&parameter.key, &base, &keys) {
                Ok(key) => keys.push(key),
                Err(error) => problems.push(GridProblem {
                    path: format!("{at}.key"),
                    message: error.message,
                    hint: error.hint,
                }),
            }
        }
        let lengths: Vec<usize> = sweep.parameters.iter().map(|p| p.values.len()).collect();
        if sweep.mode == SweepMode::Zip && lengths.windows(2).any(|w| w[0] != w[1]) {
            problems.push(GridProblem {
                path: "sweep.mode".into(),
                message: format!(
                    "`zip` takes the i-th value of every parameter together, but the lists have {} values",
                    lengths
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                hint: Some("give every parameter as many values, or use mode = \"grid\"".into()),
            });
        }
        let count = points_in(sweep);
        if count > MAX_POINTS {
            let count = if count == usize::MAX {
                "more than 18 quintillion".to_string()
            } else {
                count.to_string()
            };
            problems.push(GridProblem {
                path: "sweep.parameters".into(),
                message: format!("the sweep has {count} points; at most {MAX_POINTS} are run"),
                hint: Some("fewer values, or mode = \"zip\"".into()),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            written: sweep.parameters.iter().map(|p| p.key.clone()).collect(),
            keys,
            points: combinations(sweep)
                .into_iter()
                .enumerate()
                .map(|(index, values)| Point { index, values })
                .collect(),
            base,
        })
    }

    /// The scenario of `point` as TOML: the base scenario, every default
    /// written out, the point's values set, no `[sweep]`.
    pub fn scenario(&self, point: &Point) -> String {
        let mut document = self.base.clone();
        for (key, value) in self.keys.iter().zip(&point.values) {
            key.set(&mut document, value.clone());
        }
        toml::to_string_pretty(&document).expect("a scenario without nulls is TOML")
    }
}

/// The swept key `written`, located in the scenario `base`: neither the
/// name nor the sweep, and not one of the `earlier` keys again.
fn locate(written: &str, base: &Json, earlier: &[KeyPath]) -> Result<KeyPath, PathError> {
    let key = written
        .parse::<KeyPath>()
        .map_err(|message| PathError {
            message,
            hint: Some("e.g. `faults[0].duration` or `architectures.rest.pool.size`".into()),
        })?
        .locate(base)?;
    if matches!(key.0.first(), Some(Step::Key(k)) if k == "name" || k == "sweep") {
        return Err(PathError {
            message: format!("`{written}` cannot be swept"),
            hint: Some("every point of a sweep is the same scenario".into()),
        });
    }
    if let Some(first) = earlier.iter().position(|k| k == &key) {
        return Err(PathError {
            message: format!("`{written}` is already swept by sweep.parameters[{first}]"),
            hint: None,
        });
    }
    Ok(key)
}

/// How many points a sweep has.
pub fn points_in(sweep: &Sweep) -> usize {
    let lengths = sweep.parameters.iter().map(|p| p.values.len());
    match sweep.mode {
        // Saturating: a product of many lists' lengths would wrap.
        SweepMode::Grid => lengths.fold(1, usize::saturating_mul),
        SweepMode::Zip => lengths.max().unwrap_or(0),
    }
}

/// The value of each parameter at every point; in a grid the first
/// parameter changes slowest.
fn combinations(sweep: &Sweep) -> Vec<Vec<Json>> {
    match sweep.mode {
        SweepMode::Zip => (0..points_in(sweep))
            .map(|i| {
                sweep
                    .parameters
                    .iter()
                    .map(|p| p.values[i].clone())
                    .collect()
            })
            .collect(),
        SweepMode::Grid => sweep
            .parameters
            .iter()
            .fold(vec![Vec::new()], |points, parameter| {
                points
                    .into_iter()
                    .flat_map(|point| {
                        parameter.values.iter().map(move |value| {
                            let mut next = point.clone();
                            next.push(value.clone());
                            next
                        })
                    })
                    .collect()
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::parse;

    const BASE: &str = r#"
name = "what-if"
duration = "60s"

[[architectures]]
kind = "rest"
name = "rest"

[[architectures]]
kind = "kafka"
name = "kafka-drop"
consumer = "drop"

[[faults]]
kind = "db-crash"
at = "10s"
duration = "20s"

[sweep]
parameters = [
  { key = "faults[0].duration", values = ["10s", "30s"] },
  { key = "architectures.kafka-drop.breaker.open_for", values = ["5s", "60s", "90s"] },
]
"#;

    #[test]
    fn key_paths_read_keys_indices_and_names() {
        let path: KeyPath = "architectures.kafka-drop.breaker.open_for".parse().unwrap();
        assert_eq!(path.0.len(), 4);
        assert_eq!(path.leaf(), "open_for");
        let path: KeyPath = "faults[0].duration".parse().unwrap();
        assert_eq!(
            path.0,
            vec![
                Step::Key("faults".into()),
                Step::Index(0),
                Step::Key("duration".into())
            ]
        );
        assert_eq!(path.to_string(), "faults[0].duration");
        for bad in ["", "faults[x].at", "a..b", "faults[0", "[0]"] {
            assert!(bad.parse::<KeyPath>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_grid_is_every_combination_with_the_first_parameter_slowest() {
        let experiment = parse(BASE, "what-if.toml").unwrap();
        let grid = Grid::of(&experiment).unwrap();
        assert_eq!(grid.points.len(), 6);
        assert_eq!(
            grid.keys[1].to_string(),
            "architectures[1].breaker.open_for"
        );
        let third = &grid.points[2];
        assert_eq!(
            third.describe(&grid),
            "faults[0].duration = 10s, architectures.kafka-drop.breaker.open_for = 90s"
        );
        assert_eq!(third.folder(&grid), "p03-duration-10s_open_for-90s");
        // Each point is a valid scenario with its values set and no sweep.
        let scenario = parse(&grid.scenario(third), "point.toml").unwrap();
        assert_eq!(
            scenario.faults[0].duration,
            crate::experiment::Span::secs(10)
        );
        assert!(scenario.sweep.is_none());
        match &scenario.architectures[1] {
            crate::experiment::ArchitectureSettings::Kafka { breaker, .. } => {
                assert_eq!(breaker.open_for, crate::experiment::Span::secs(90))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zip_takes_the_values_together() {
        let text = BASE.replace("\"60s\", \"90s\"]", "\"60s\"]") + "mode = \"zip\"\n";
        let experiment = parse(&text, "zip.toml").unwrap();
        let grid = Grid::of(&experiment).unwrap();
        assert_eq!(grid.points.len(), 2);
        assert_eq!(
            grid.points[1].values,
            vec![Json::from("30s"), Json::from("60s")]
        );
    }
}
