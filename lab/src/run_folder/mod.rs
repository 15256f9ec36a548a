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
//! <run>/requests.partial.parquet, metrics.partial.parquet,
//! faults.partial.parquet  a killed run's rows of the repetition under way,
//!                         never drained nor audited (parts::partial): what
//!                         its users saw is the summary's `incomplete`
//! <run>/summary.json      every headline figure      (summary::Summary)
//! <run>/report.html, report.md, charts/
//! ```

pub mod frames;
pub mod manifest;
pub mod parts;
pub mod rows;
pub mod summary;
pub mod sweep;

use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use frames::{FAULTS, Frame, METRICS, ParquetSink, REQUESTS, STORED};
pub use manifest::{Host, Manifest, Reference, RepetitionSummary, Status, Versions};
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
    #[error("{path}: {}{message}", at_field(.field))]
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
    #[error("{path} holds no data to analyse: the run {status}: {reasons}")]
    NoData {
        path: PathBuf,
        status: Status,
        reasons: String,
    },
}

/// `field: ` before a JSON error's message, nothing where the error is
/// not in a field (the document's syntax, `?`) or is the whole document.
fn at_field(field: &str) -> String {
    match field {
        "." | "?" | "" => String::new(),
        field => format!("{field}: "),
    }
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

/// The file in a repetition's stack folder that names its run folder, so
/// that whoever stops a killed runner's stack can close its run folder.
pub const RUN_FOLDER_LINK: &str = "run-folder";

/// Closes the run folder at `dir` of a runner that was killed outright
/// (SIGKILL, the OOM killer) before it could: the run's Parquet files are
/// put together from the repetitions that had ended, the request rows of
/// the one under way (flushed every [`parts::FLUSH`]) go into the
/// [`parts::partial`] files, and the manifest says the run failed, when,
/// and what it kept. A run that had ended is left alone. Returns whether
/// it closed the folder.
pub fn close_killed(dir: &Path) -> Result<bool, FolderError> {
    let path = dir.join(MANIFEST);
    let mut manifest: Manifest = load(&path)?;
    if manifest.finished_at.is_some() {
        return Ok(false);
    }
    let ended: Vec<u32> = manifest.repetitions.iter().map(|r| r.repetition).collect();
    let partial = parts::assemble_partial(dir, &|n| !ended.contains(&n))?;
    parts::assemble(dir, &|n| ended.contains(&n))?;
    manifest.status = Status::Failed;
    manifest.reasons = vec![
        format!(
            "the runner was killed outright (not by Ctrl-C) during repetition {}; its stack \
             was stopped after it by faultline's watchdog or `faultline clean`",
            ended.len() + 1
        ),
        match ended.len() {
            0 => "no repetition had ended, so none was drained and audited".to_string(),
            n => format!("the {n} repetition(s) that had ended are kept and analysed"),
        },
        match partial {
            Some(kept) => format!(
                "the repetition under way kept {} requests, sent up to {:.1} s, {} metric \
                 samples and {} fault(s), in {}, {} and {}: never drained nor audited, so what \
                 its users saw is shown apart, not what became of its events",
                kept.requests,
                kept.last_s,
                kept.metrics,
                kept.faults,
                parts::partial(&frames::REQUESTS),
                parts::partial(&frames::METRICS),
                parts::partial(&frames::FAULTS),
            ),
            None => "the repetition under way had written no rows yet".to_string(),
        },
    ];
    manifest.finished_at = Some(chrono::Utc::now().to_rfc3339());
    save(&manifest, &path)?;
    Ok(true)
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

/// The files of a run folder, read: everything its analysis starts from.
pub struct RunFiles {
    pub experiment: Experiment,
    pub experiment_text: String,
    pub manifest: Manifest,
    pub requests: DataFrame,
    pub stored: DataFrame,
    pub metrics: DataFrame,
    pub faults: DataFrame,
    /// The rows of the repetition under way when the runner was killed.
    pub partial: Option<PartialFiles>,
}

/// The [`parts::partial`] files of a killed run: the repetition under way,
/// up to its last flush.
pub struct PartialFiles {
    pub requests: DataFrame,
    pub metrics: DataFrame,
    pub faults: DataFrame,
}

impl PartialFiles {
    /// The partial files in `dir`, if its runner was killed during a
    /// repetition that had flushed requests; a frame that was never
    /// flushed reads as no rows.
    pub fn read(dir: &Path) -> Result<Option<Self>, FolderError> {
        let read = |frame: &Frame| {
            let path = dir.join(parts::partial(frame));
            match path.exists() {
                true => frame.read_file(&path).map(Some),
                false => Ok(None),
            }
        };
        let Some(requests) = read(&REQUESTS)? else {
            return Ok(None);
        };
        let none = |frame: &Frame| {
            parts::empty(frame).map_err(|source| FolderError::Parquet {
                path: dir.join(parts::partial(frame)),
                source,
            })
        };
        Ok(Some(Self {
            requests,
            metrics: read(&METRICS)?.map_or_else(|| none(&METRICS), Ok)?,
            faults: read(&FAULTS)?.map_or_else(|| none(&FAULTS), Ok)?,
        }))
    }
}

impl RunFiles {
    /// Reads the run folder at `dir`; a run that ended without rows (and
    /// kept none of a repetition cut short) is [`FolderError::NoData`].
    pub fn read(dir: &Path) -> Result<Self, FolderError> {
        let (experiment, experiment_text) = read_experiment(dir)?;
        let manifest = read_manifest(dir)?;
        let partial = PartialFiles::read(dir)?;
        if (!dir.join(REQUESTS.file).exists() || manifest.repetitions.is_empty())
            && manifest.finished_at.is_some()
            && partial.is_none()
        {
            return Err(FolderError::NoData {
                path: dir.to_path_buf(),
                status: manifest.status,
                reasons: manifest.reasons.join("; "),
            });
        }
        Ok(Self {
            experiment,
            experiment_text,
            manifest,
            requests: REQUESTS.read(dir)?,
            stored: STORED.read(dir)?,
            metrics: METRICS.read(dir)?,
            faults: FAULTS.read(dir)?,
            partial,
        })
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Doc {
        #[allow(dead_code)]
        status: u32,
    }

    #[test]
    fn a_json_error_names_its_field_only_where_it_has_one() {
        let dir = std::env::temp_dir().join(format!("faultline-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("doc.json");
        let error = |text: &str| {
            std::fs::write(&file, text).unwrap();
            super::load::<Doc>(&file).unwrap_err().to_string()
        };
        let path = file.display();
        assert_eq!(
            error("{"),
            format!("{path}: EOF while parsing an object at line 1 column 1")
        );
        assert_eq!(
            error(r#"{"status": "x"}"#),
            format!("{path}: status: invalid type: string \"x\", expected u32 at line 1 column 14")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
