//! The Parquet files of a run folder: the columns of each, the one function
//! that writes its rows, and the check that a file read back has them.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::FolderError;
use crate::collect::{MetricRow, StoredRow};
use crate::fault::FaultRecord;
use crate::load::Row;

/// Rows per Parquet row group; also how many rows are held before a write.
const BATCH_ROWS: usize = 100_000;

/// The type of a column, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int32,
    Int64,
    UInt32,
    UInt64,
    Float64,
    Str,
}

impl Kind {
    fn dtype(self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::Int32 => DataType::Int32,
            Kind::Int64 => DataType::Int64,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 => DataType::UInt64,
            Kind::Float64 => DataType::Float64,
            Kind::Str => DataType::String,
        }
    }
}

/// One Parquet file of the run folder: its name and its columns, in order.
#[derive(Debug)]
pub struct Frame {
    pub file: &'static str,
    pub columns: &'static [(&'static str, Kind)],
}

/// `requests.parquet`: one row per request. Times are microseconds from the
/// repetition's start; `status` is 0 when no HTTP answer came, and `error`
/// then names the failure (`timeout`, `refused`, `connection`, `not_sent`).
pub const REQUESTS: Frame = Frame {
    file: "requests.parquet",
    columns: &[
        ("repetition", Kind::UInt32),
        ("architecture", Kind::Str),
        ("seq", Kind::UInt64),
        ("event_id", Kind::Str),
        ("intended_us", Kind::Int64),
        ("sent_us", Kind::Int64),
        ("finished_us", Kind::Int64),
        ("latency_ms", Kind::Float64),
        ("ok", Kind::Bool),
        ("status", Kind::Int32),
        ("error", Kind::Str),
        ("attempts", Kind::UInt32),
    ],
};

/// `stored.parquet`: the database audit, one row per stored event; times
/// are Unix microseconds, `stored_s` seconds from the repetition's start.
pub const STORED: Frame = Frame {
    file: "stored.parquet",
    columns: &[
        ("repetition", Kind::UInt32),
        ("event_id", Kind::Str),
        ("architecture", Kind::Str),
        ("sent_at_us", Kind::Int64),
        ("stored_at_us", Kind::Int64),
        ("stored_s", Kind::Float64),
        ("copies", Kind::Int32),
    ],
};

/// `metrics.parquet`: every scraped sample, `t_s` seconds from the
/// repetition's start.
pub const METRICS: Frame = Frame {
    file: "metrics.parquet",
    columns: &[
        ("repetition", Kind::UInt32),
        ("t_s", Kind::Float64),
        ("architecture", Kind::Str),
        ("service", Kind::Str),
        ("metric", Kind::Str),
        ("labels", Kind::Str),
        ("value", Kind::Float64),
    ],
};

/// `faults.parquet`: each fault as planned and as it happened.
pub const FAULTS: Frame = Frame {
    file: "faults.parquet",
    columns: &[
        ("repetition", Kind::UInt32),
        ("kind", Kind::Str),
        ("target", Kind::Str),
        ("planned_start_s", Kind::Float64),
        ("planned_end_s", Kind::Float64),
        ("actual_start_s", Kind::Float64),
        ("actual_end_s", Kind::Float64),
        ("verified_start", Kind::Bool),
        ("verified_end", Kind::Bool),
        ("verified", Kind::Bool),
        ("effect_ms", Kind::Float64),
        ("recovery_ms", Kind::Float64),
        ("detail", Kind::Str),
    ],
};

impl Frame {
    /// Checks that `frame`, read from `path`, has every column of this file
    /// with its type.
    pub fn check(&self, path: &Path, frame: &DataFrame) -> Result<(), FolderError> {
        for (name, kind) in self.columns {
            let column = frame.column(name).map_err(|_| FolderError::Column {
                path: path.to_path_buf(),
                column: name,
                problem: "is missing".into(),
            })?;
            if column.dtype() != &kind.dtype() {
                return Err(FolderError::Column {
                    path: path.to_path_buf(),
                    column: name,
                    problem: format!("is {}, expected {}", column.dtype(), kind.dtype()),
                });
            }
        }
        Ok(())
    }

    /// Reads this file of the run folder at `dir`, checking its columns.
    pub fn read(&self, dir: &Path) -> Result<DataFrame, FolderError> {
        let path = dir.join(self.file);
        let parquet = |source| FolderError::Parquet {
            path: path.clone(),
            source,
        };
        let handle = File::open(&path).map_err(|source| FolderError::Read {
            path: path.clone(),
            source,
        })?;
        let frame = ParquetReader::new(handle).finish().map_err(parquet)?;
        self.check(&path, &frame)?;
        Ok(frame)
    }

    /// A sink that writes this file in the run folder at `dir`.
    pub fn sink(&self, dir: &Path) -> Result<ParquetSink, FolderError> {
        let path = dir.join(self.file);
        ParquetSink::create(&path).map_err(|source| FolderError::Parquet { path, source })
    }

    /// Writes `frame` as this file in the run folder at `dir`, at once.
    pub fn write(&self, dir: &Path, frame: &mut DataFrame) -> Result<(), FolderError> {
        let path = dir.join(self.file);
        let file = File::create(&path).map_err(|source| FolderError::Write {
            path: path.clone(),
            source,
        })?;
        ParquetWriter::new(file)
            .finish(frame)
            .map(drop)
            .map_err(|source| FolderError::Parquet { path, source })
    }
}

/// A Parquet file written in row groups as rows come.
pub struct ParquetSink {
    writer: Option<polars::io::parquet::write::BatchedWriter<File>>,
    file: Option<File>,
    path: PathBuf,
}

impl ParquetSink {
    pub fn create(path: &Path) -> PolarsResult<Self> {
        Ok(Self {
            writer: None,
            file: Some(File::create(path)?),
            path: path.to_path_buf(),
        })
    }

    pub fn write(&mut self, mut frame: DataFrame) -> PolarsResult<()> {
        if self.writer.is_none() {
            let file = self
                .file
                .take()
                .expect("the file is open until the first write");
            self.writer = Some(ParquetWriter::new(file).batched(frame.schema())?);
        }
        frame.rechunk_mut();
        self.writer.as_mut().expect("a writer").write_batch(&frame)
    }

    /// Closes the file; a sink that got no rows writes `empty` so the file
    /// still has its columns.
    pub fn finish(mut self, empty: DataFrame) -> PolarsResult<()> {
        if self.writer.is_none() {
            self.write(empty)?;
        }
        self.writer.take().expect("a writer").finish()?;
        tracing::debug!(path = %self.path.display(), "Wrote Parquet file.");
        Ok(())
    }
}

/// A named column of `values`.
fn column<T, P: ?Sized>(name: &str, values: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Series::new(name.into(), values).into()
}

/// The columns of `requests.parquet`.
pub fn requests_frame(
    repetition: u32,
    architectures: &[String],
    rows: &[Row],
) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "architecture",
                rows.iter()
                    .map(|r| architectures[usize::from(r.architecture)].as_str())
                    .collect::<Vec<_>>(),
            ),
            column("seq", rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
            column(
                "event_id",
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            column(
                "intended_us",
                rows.iter()
                    .map(|r| r.intended_us as i64)
                    .collect::<Vec<_>>(),
            ),
            column(
                "sent_us",
                rows.iter().map(|r| r.sent_us as i64).collect::<Vec<_>>(),
            ),
            column(
                "finished_us",
                rows.iter()
                    .map(|r| r.finished_us as i64)
                    .collect::<Vec<_>>(),
            ),
            column(
                "latency_ms",
                rows.iter()
                    .map(|r| r.finished_us.saturating_sub(r.intended_us) as f64 / 1000.0)
                    .collect::<Vec<_>>(),
            ),
            column(
                "ok",
                rows.iter().map(|r| r.outcome.ok()).collect::<Vec<_>>(),
            ),
            column(
                "status",
                rows.iter()
                    .map(|r| i32::from(r.outcome.status()))
                    .collect::<Vec<_>>(),
            ),
            column(
                "error",
                rows.iter().map(|r| r.outcome.class()).collect::<Vec<_>>(),
            ),
            column(
                "attempts",
                rows.iter().map(|r| r.attempts).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The columns of `stored.parquet`. `t0_unix_us` is the run's start.
pub fn stored_frame(
    repetition: u32,
    t0_unix_us: i64,
    rows: &[StoredRow],
) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "event_id",
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            column(
                "architecture",
                rows.iter()
                    .map(|r| r.stored_by.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "sent_at_us",
                rows.iter().map(|r| r.sent_at_us).collect::<Vec<_>>(),
            ),
            column(
                "stored_at_us",
                rows.iter().map(|r| r.stored_at_us).collect::<Vec<_>>(),
            ),
            column(
                "stored_s",
                rows.iter()
                    .map(|r| (r.stored_at_us - t0_unix_us) as f64 / 1e6)
                    .collect::<Vec<_>>(),
            ),
            // One row per id: the table's key makes every write idempotent.
            column("copies", vec![1i32; n]),
        ],
    )
}

/// The columns of `metrics.parquet`.
pub fn metrics_frame(repetition: u32, rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column("t_s", rows.iter().map(|r| r.t_s).collect::<Vec<_>>()),
            column(
                "architecture",
                rows.iter()
                    .map(|r| r.architecture.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "service",
                rows.iter().map(|r| r.service.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "metric",
                rows.iter()
                    .map(|r| r.sample.metric.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "labels",
                rows.iter()
                    .map(|r| r.sample.labels.as_str())
                    .collect::<Vec<_>>(),
            ),
            column(
                "value",
                rows.iter().map(|r| r.sample.value).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The columns of `faults.parquet`.
pub fn faults_frame(repetition: u32, rows: &[FaultRecord]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            column("repetition", vec![repetition; n]),
            column(
                "kind",
                rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "target",
                rows.iter().map(|r| r.target.as_str()).collect::<Vec<_>>(),
            ),
            column(
                "planned_start_s",
                rows.iter().map(|r| r.planned_start_s).collect::<Vec<_>>(),
            ),
            column(
                "planned_end_s",
                rows.iter().map(|r| r.planned_end_s).collect::<Vec<_>>(),
            ),
            column(
                "actual_start_s",
                rows.iter().map(|r| r.actual_start_s).collect::<Vec<_>>(),
            ),
            column(
                "actual_end_s",
                rows.iter().map(|r| r.actual_end_s).collect::<Vec<_>>(),
            ),
            column(
                "verified_start",
                rows.iter().map(|r| r.verified_start).collect::<Vec<_>>(),
            ),
            column(
                "verified_end",
                rows.iter().map(|r| r.verified_end).collect::<Vec<_>>(),
            ),
            column(
                "verified",
                rows.iter().map(|r| r.verified).collect::<Vec<_>>(),
            ),
            column(
                "effect_ms",
                rows.iter().map(|r| r.effect_ms).collect::<Vec<_>>(),
            ),
            column(
                "recovery_ms",
                rows.iter().map(|r| r.recovery_ms).collect::<Vec<_>>(),
            ),
            column(
                "detail",
                rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>(),
            ),
        ],
    )
}

/// Writes rows in batches of [`BATCH_ROWS`] through `frame`.
pub fn write_batched<T>(
    sink: &mut ParquetSink,
    rows: &[T],
    frame: impl Fn(&[T]) -> PolarsResult<DataFrame>,
) -> PolarsResult<()> {
    for chunk in rows.chunks(BATCH_ROWS) {
        sink.write(frame(chunk)?)?;
    }
    Ok(())
}
