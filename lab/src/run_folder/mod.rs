//! The run folder: the contract between the runner, the analysis, the report
//! and anyone's notebook. One Rust definition per file, used to write it and
//! to read it back; an error names the file and, where it can, the field.
//!
//! ```text
//! <run>/experiment.toml   the exact input            (crate::experiment)
//! <run>/manifest.json     how the run went           (manifest::Manifest)
//! <run>/requests.parquet  one row per request        (frames::REQUESTS)
//! <run>/stored.parquet    the database audit         (frames::STORED)
//! <run>/metrics.parquet   scraped series             (frames::METRICS)
//! <run>/faults.parquet    planned and actual faults  (frames::FAULTS)
//! <run>/summary.json      every headline figure      (summary::Summary)
//! <run>/report.html, report.md, charts/
//! ```

pub mod frames;
pub mod manifest;
pub mod summary;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use frames::{FAULTS, Frame, METRICS, ParquetSink, REQUESTS, STORED};
pub use manifest::{Host, Manifest, RepetitionSummary, Status, Versions};
pub use summary::Summary;

use crate::experiment::Experiment;

pub const EXPERIMENT: &str = "experiment.toml";
pub const MANIFEST: &str = "manifest.json";
pub const SUMMARY: &str = "summary.json";
pub const REPORT_HTML: &str = "report.html";
pub const REPORT_MD: &str = "report.md";
pub const CHARTS: &str = "charts";

/// What went wrong reading or writing a file of a run folder.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {field}: {message}")]
    Json {
        path: PathBuf,
        /// The path of the field in the document (`.` for the whole).
        field: String,
        message: String,
    },
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("{path}: column {column} {problem}")]
    Column {
        path: PathBuf,
        column: &'static str,
        problem: String,
    },
    #[error("{path} is invalid:\n{problems}")]
    Experiment { path: PathBuf, problems: String },
    #[error("{path}: schema {found}, this faultline reads schema {expected}")]
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
}

/// Reads the JSON file at `path` as a `T`.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, FolderError> {
    let text = std::fs::read_to_string(path).map_err(|source| FolderError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| FolderError::Json {
        path: path.to_path_buf(),
        field: error.path().to_string(),
        message: error.into_inner().to_string(),
    })
}

/// Writes `value` as pretty JSON at `path`.
pub fn save<T: Serialize>(value: &T, path: &Path) -> Result<(), FolderError> {
    let text = serde_json::to_string_pretty(value).map_err(|error| FolderError::Json {
        path: path.to_path_buf(),
        field: ".".into(),
        message: error.to_string(),
    })?;
    std::fs::write(path, text + "\n").map_err(|source| FolderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The scenario of the run folder at `dir`, parsed, and its text.
pub fn read_experiment(dir: &Path) -> Result<(Experiment, String), FolderError> {
    let path = dir.join(EXPERIMENT);
    let text = std::fs::read_to_string(&path).map_err(|source| FolderError::Read {
        path: path.clone(),
        source,
    })?;
    let experiment =
        crate::validate::parse(&text, EXPERIMENT).map_err(|problems| FolderError::Experiment {
            path,
            problems: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        })?;
    Ok((experiment, text))
}

/// `manifest.json` of the run folder at `dir`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, FolderError> {
    let path = dir.join(MANIFEST);
    let manifest: Manifest = load(&path)?;
    check_schema(&path, manifest.schema)?;
    Ok(manifest)
}

/// `summary.json` of the run folder at `dir`.
pub fn read_summary(dir: &Path) -> Result<Summary, FolderError> {
    let path = dir.join(SUMMARY);
    let summary: Summary = load(&path)?;
    check_schema(&path, summary.schema)?;
    Ok(summary)
}

fn check_schema(path: &Path, found: u32) -> Result<(), FolderError> {
    if found == summary::SCHEMA {
        Ok(())
    } else {
        Err(FolderError::Schema {
            path: path.to_path_buf(),
            found,
            expected: summary::SCHEMA,
        })
    }
}

/// The JSON Schema of `summary.json`, as published in
/// `docs/summary.schema.json`. Every field is required: the summary always
/// writes each one, `null` where a figure does not apply.
pub fn summary_schema() -> serde_json::Value {
    let mut schema =
        serde_json::to_value(schemars::schema_for!(Summary)).expect("a schema is JSON");
    require_every_property(&mut schema);
    schema
}

fn require_every_property(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                let names = properties.keys().cloned().map(Value::String).collect();
                map.insert("required".into(), Value::Array(names));
            }
            map.values_mut().for_each(require_every_property);
        }
        Value::Array(items) => items.iter_mut().for_each(require_every_property),
        _ => {}
    }
}
