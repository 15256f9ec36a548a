//! The Parquet files of a run folder: the columns of each, the one function
//! that writes its rows, and the check that a file read back has them.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::FolderError;
use super::rows::{FaultRecord, MetricRow, Row, StoredRow};

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

    /// A frame of this file from its columns' values, in order: the names
    /// come from here, and a value of the wrong type is refused.
    fn build(&self, height: usize, columns: Vec<Column>) -> PolarsResult<DataFrame> {
        assert_eq!(
            columns.len(),
            self.columns.len(),
            "{}: one value list per column",
            self.file
        );
        let columns = columns
            .into_iter()
            .zip(self.columns)
            .map(|(column, (name, kind))| {
                polars_ensure!(
                    column.dtype() == &kind.dtype(),
                    SchemaMismatch: "{}: column {name} is {}, expected {}",
                    self.file, column.dtype(), kind.dtype()
                );
                Ok(column.with_name((*name).into()))
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        DataFrame::new(height, columns)
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

/// A column of `values`; [`Frame::build`] names it.
fn column<T, P: ?Sized>(values: T) -> Column
where
    Series: NamedFrom<T, P>,
{
    Series::new(PlSmallStr::EMPTY, values).into()
}

/// The columns of `requests.parquet`.
pub fn requests_frame(
    repetition: u32,
    architectures: &[String],
    rows: &[Row],
) -> PolarsResult<DataFrame> {
    let n = rows.len();
    REQUESTS.build(
        n,
        vec![
            // repetition
            column(vec![repetition; n]),
            // architecture
            column(
                rows.iter()
                    .map(|r| architectures[usize::from(r.architecture)].as_str())
                    .collect::<Vec<_>>(),
            ),
            // seq
            column(rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
            // event_id
            column(
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            // intended_us
            column(
                rows.iter()
                    .map(|r| r.intended_us as i64)
                    .collect::<Vec<_>>(),
            ),
            // sent_us
            column(rows.iter().map(|r| r.sent_us as i64).collect::<Vec<_>>()),
            // finished_us
            column(
                rows.iter()
                    .map(|r| r.finished_us as i64)
                    .collect::<Vec<_>>(),
            ),
            // latency_ms
            column(
                rows.iter()
                    .map(|r| r.finished_us.saturating_sub(r.intended_us) as f64 / 1000.0)
                    .collect::<Vec<_>>(),
            ),
            // ok
            column(rows.iter().map(|r| r.outcome.ok()).collect::<Vec<_>>()),
            // status
            column(
                rows.iter()
                    .map(|r| i32::from(r.outcome.status()))
                    .collect::<Vec<_>>(),
            ),
            // error
            column(rows.iter().map(|r| r.outcome.class()).collect::<Vec<_>>()),
            // attempts
            column(rows.iter().map(|r| r.attempts).collect::<Vec<_>>()),
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
    STORED.build(
        n,
        vec![
            // repetition
            column(vec![repetition; n]),
            // event_id
            column(
                rows.iter()
                    .map(|r| r.event_id.to_string())
                    .collect::<Vec<_>>(),
            ),
            // architecture
            column(
                rows.iter()
                    .map(|r| r.stored_by.as_str())
                    .collect::<Vec<_>>(),
            ),
            // sent_at_us
            column(rows.iter().map(|r| r.sent_at_us).collect::<Vec<_>>()),
            // stored_at_us
            column(rows.iter().map(|r| r.stored_at_us).collect::<Vec<_>>()),
            // stored_s
            column(
                rows.iter()
                    .map(|r| (r.stored_at_us - t0_unix_us) as f64 / 1e6)
                    .collect::<Vec<_>>(),
            ),
        ],
    )
}

/// The columns of `metrics.parquet`.
pub fn metrics_frame(repetition: u32, rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    METRICS.build(
        n,
        vec![
            // repetition
            column(vec![repetition; n]),
            // t_s
            column(rows.iter().map(|r| r.t_s).collect::<Vec<_>>()),
            // architecture
            column(
                rows.iter()
                    .map(|r| r.architecture.as_str())
                    .collect::<Vec<_>>(),
            ),
            // service
            column(rows.iter().map(|r| r.service.as_str()).collect::<Vec<_>>()),
            // metric
            column(
                rows.iter()
                    .map(|r| r.sample.metric.as_str())
                    .collect::<Vec<_>>(),
            ),
            // labels
            column(
                rows.iter()
                    .map(|r| r.sample.labels.as_str())
                    .collect::<Vec<_>>(),
            ),
            // value
            column(rows.iter().map(|r| r.sample.value).collect::<Vec<_>>()),
        ],
    )
}

/// The columns of `faults.parquet`.
pub fn faults_frame(repetition: u32, rows: &[FaultRecord]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    FAULTS.build(
        n,
        vec![
            // repetition
            column(vec![repetition; n]),
            // kind
            column(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>()),
            // target
            column(rows.iter().map(|r| r.target.as_str()).collect::<Vec<_>>()),
            // planned_start_s
            column(rows.iter().map(|r| r.planned_start_s).collect::<Vec<_>>()),
            // planned_end_s
            column(rows.iter().map(|r| r.planned_end_s).collect::<Vec<_>>()),
            // actual_start_s
            column(rows.iter().map(|r| r.actual_start_s).collect::<Vec<_>>()),
            // actual_end_s
            column(rows.iter().map(|r| r.actual_end_s).collect::<Vec<_>>()),
            // verified_start
            column(rows.iter().map(|r| r.verified_start).collect::<Vec<_>>()),
            // verified_end
            column(rows.iter().map(|r| r.verified_end).collect::<Vec<_>>()),
            // verified
            column(rows.iter().map(|r| r.verified).collect::<Vec<_>>()),
            // effect_ms
            column(rows.iter().map(|r| r.effect_ms).collect::<Vec<_>>()),
            // recovery_ms
            column(rows.iter().map(|r| r.recovery_ms).collect::<Vec<_>>()),
            // detail
            column(rows.iter().map(|r| r.detail.as_str()).collect::<Vec<_>>()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::rows::{Outcome, Sample};

    #[test]
    fn every_writer_makes_the_columns_its_file_is_read_with() {
        let path = Path::new("test");
        let row = Row {
            architecture: 0,
            seq: 1,
            intended_us: 10,
            sent_us: 11,
            finished_us: 20,
            outcome: Outcome::Status(201),
            attempts: 1,
            event_id: uuid::Uuid::nil(),
        };
        let names = ["rest".to_string()];
        REQUESTS
            .check(path, &requests_frame(0, &names, &[row]).unwrap())
            .unwrap();
        let stored = StoredRow {
            event_id: uuid::Uuid::nil(),
            stored_by: "rest".into(),
            sent_at_us: 1,
            stored_at_us: 2,
        };
        STORED
            .check(path, &stored_frame(0, 0, &[stored]).unwrap())
            .unwrap();
        let metric = MetricRow {
            t_s: 0.5,
            architecture: "kafka".into(),
            service: "consumer".into(),
            sample: Sample {
                metric: "m".into(),
                labels: String::new(),
                value: 1.0,
            },
        };
        METRICS
            .check(path, &metrics_frame(0, &[metric]).unwrap())
            .unwrap();
        FAULTS.check(path, &faults_frame(0, &[]).unwrap()).unwrap();
        let error = STORED
            .check(path, &requests_frame(0, &names, &[]).unwrap())
            .unwrap_err();
        assert!(
            error.to_string().contains("column sent_at_us is missing"),
            "{error}"
        );
    }
}
