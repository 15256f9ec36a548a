//! The Parquet files of a run folder: the columns of each, the one function
//! that writes its rows, and the check that a file read back has them.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use super::FolderError;
use super::rows::{FaultRecord, MetricRow, Row, StoredRow};

/// Rows per Parquet row group; also how many rows are held before a write.
pub const BATCH_ROWS: usize = 100_000;

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

/// The name of every column of the run folder's Parquet files, once:
/// the writers name their columns with these and the analysis reads them
/// back with these.
pub mod column {
    /// The repetition a row belongs to (0-based).
    pub const REPETITION: &str = "repetition";
    /// The architecture's name.
    pub const ARCHITECTURE: &str = "architecture";
    pub const SEQ: &str = "seq";
    /// The event's id: the events table's key.
    pub const EVENT_ID: &str = "event_id";
    pub const INTENDED_US: &str = "intended_us";
    pub const SENT_US: &str = "sent_us";
    pub const FINISHED_US: &str = "finished_us";
    pub const LATENCY_MS: &str = "latency_ms";
    pub const OK: &str = "ok";
    pub const STATUS: &str = "status";
    pub const ERROR: &str = "error";
    pub const ATTEMPTS: &str = "attempts";
    pub const SENT_AT_US: &str = "sent_at_us";
    pub const STORED_AT_US: &str = "stored_at_us";
    pub const STORED_S: &str = "stored_s";
    pub const T_S: &str = "t_s";
    pub const SERVICE: &str = "service";
    pub const METRIC: &str = "metric";
    pub const LABELS: &str = "labels";
    pub const VALUE: &str = "value";
    pub const KIND: &str = "kind";
    pub const TARGET: &str = "target";
    pub const PLANNED_START_S: &str = "planned_start_s";
    pub const PLANNED_END_S: &str = "planned_end_s";
    pub const ACTUAL_START_S: &str = "actual_start_s";
    pub const ACTUAL_END_S: &str = "actual_end_s";
    pub const VERIFIED_START: &str = "verified_start";
    pub const VERIFIED_END: &str = "verified_end";
    pub const VERIFIED: &str = "verified";
    pub const EFFECT_MS: &str = "effect_ms";
    pub const RECOVERY_MS: &str = "recovery_ms";
    pub const DETAIL: &str = "detail";
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
        (column::REPETITION, Kind::UInt32),
        (column::ARCHITECTURE, Kind::Str),
        (column::SEQ, Kind::UInt64),
        (column::EVENT_ID, Kind::Str),
        (column::INTENDED_US, Kind::Int64),
        (column::SENT_US, Kind::Int64),
        (column::FINISHED_US, Kind::Int64),
        (column::LATENCY_MS, Kind::Float64),
        (column::OK, Kind::Bool),
        (column::STATUS, Kind::Int32),
        (column::ERROR, Kind::Str),
        (column::ATTEMPTS, Kind::UInt32),
    ],
};

/// `stored.parquet`: the database audit, one row per stored event; times
/// are Unix microseconds, `stored_s` seconds from the repetition's start.
pub const STORED: Frame = Frame {
    file: "stored.parquet",
    columns: &[
        (column::REPETITION, Kind::UInt32),
        (column::EVENT_ID, Kind::Str),
        (column::ARCHITECTURE, Kind::Str),
        (column::SENT_AT_US, Kind::Int64),
        (column::STORED_AT_US, Kind::Int64),
        (column::STORED_S, Kind::Float64),
    ],
};

/// `metrics.parquet`: every scraped sample, `t_s` seconds from the
/// repetition's start.
pub const METRICS: Frame = Frame {
    file: "metrics.parquet",
    columns: &[
        (column::REPETITION, Kind::UInt32),
        (column::T_S, Kind::Float64),
        (column::ARCHITECTURE, Kind::Str),
        (column::SERVICE, Kind::Str),
        (column::METRIC, Kind::Str),
        (column::LABELS, Kind::Str),
        (column::VALUE, Kind::Float64),
    ],
};

/// `faults.parquet`: each fault as planned and as it happened.
pub const FAULTS: Frame = Frame {
    file: "faults.parquet",
    columns: &[
        (column::REPETITION, Kind::UInt32),
        (column::KIND, Kind::Str),
        (column::TARGET, Kind::Str),
        (column::PLANNED_START_S, Kind::Float64),
        (column::PLANNED_END_S, Kind::Float64),
        (column::ACTUAL_START_S, Kind::Float64),
        (column::ACTUAL_END_S, Kind::Float64),
        (column::VERIFIED_START, Kind::Bool),
        (column::VERIFIED_END, Kind::Bool),
        (column::VERIFIED, Kind::Bool),
        (column::EFFECT_MS, Kind::Float64),
        (column::RECOVERY_MS, Kind::Float64),
        (column::DETAIL, Kind::Str),
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
        self.read_file(&dir.join(self.file))
    }

    /// Reads `path`, a file of this frame's columns (a part, or the rows
    /// of a repetition its killed runner never ended).
    pub fn read_file(&self, path: &Path) -> Result<DataFrame, FolderError> {
        let path = path.to_path_buf();
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

/// A text column, missing values as empty text.
pub fn strings(frame: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

/// A numeric column, as floats.
pub fn numbers(frame: &DataFrame, name: &str) -> PolarsResult<Vec<Option<f64>>> {
    let column = frame.column(name)?.cast(&DataType::Float64)?;
    Ok(column.f64()?.iter().collect())
}

/// A boolean column, missing values as false.
pub fn flags(frame: &DataFrame, name: &str) -> PolarsResult<Vec<bool>> {
    Ok(frame
        .column(name)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}

/// Scraped series: (architecture, service, repetition, a part of the key
/// the reader chose) → readings (seconds from the start, value) in time
/// order.
pub type ScrapedSeries<K> = std::collections::BTreeMap<(String, String, u32, K), Vec<(f64, f64)>>;

/// `metrics.parquet` read back, a vector per column.
#[derive(Debug, Default)]
pub struct MetricColumns {
    pub repetition: Vec<u32>,
    pub t_s: Vec<Option<f64>>,
    pub architecture: Vec<String>,
    pub service: Vec<String>,
    pub metric: Vec<String>,
    pub value: Vec<Option<f64>>,
}

impl MetricColumns {
    /// The columns of `frame`, a `metrics.parquet` read with [`METRICS`].
    pub fn of(frame: &DataFrame) -> PolarsResult<Self> {
        Ok(Self {
            repetition: numbers(frame, column::REPETITION)?
                .into_iter()
                .map(|r| r.unwrap_or(0.0) as u32)
                .collect(),
            t_s: numbers(frame, column::T_S)?,
            architecture: strings(frame, column::ARCHITECTURE)?,
            service: strings(frame, column::SERVICE)?,
            metric: strings(frame, column::METRIC)?,
            value: numbers(frame, column::VALUE)?,
        })
    }

    /// The readings, time and value, of every series whose metric `which`
    /// picks (giving a part of its key), by (architecture, service,
    /// repetition, that part), each series in time order.
    pub fn readings_of<K: Ord>(
        &self,
        mut which: impl FnMut(&str) -> Option<K>,
    ) -> ScrapedSeries<K> {
        let mut series = std::collections::BTreeMap::new();
        for i in 0..self.len() {
            let Some(part) = which(&self.metric[i]) else {
                continue;
            };
            let (Some(t), Some(value)) = (self.t_s[i], self.value[i]) else {
                continue;
            };
            let key = (
                self.architecture[i].clone(),
                self.service[i].clone(),
                self.repetition[i],
                part,
            );
            series.entry(key).or_insert_with(Vec::new).push((t, value));
        }
        for points in series.values_mut() {
            points.sort_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0));
        }
        series
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.metric.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metric.is_empty()
    }
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
