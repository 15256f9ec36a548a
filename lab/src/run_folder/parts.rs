//! The rows of a run as they are measured, kept where a runner killed
//! outright cannot take them along. Each repetition's frames are written as
//! complete Parquet files of their own in `.parts/` when it ends; the
//! request rows and the metric samples of the repetition under way every
//! [`FLUSH`], its faults as each starts or ends ([`live`]). When the run
//! ends, the run folder's files are put together from the ended
//! repetitions' parts ([`assemble`]); when its runner was killed, the
//! watchdog does it for the repetitions that had ended and puts the rows of
//! the one under way into `requests.partial.parquet`,
//! `metrics.partial.parquet` and `faults.partial.parquet`
//! ([`assemble_partial`], [`partial`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;

use super::FolderError;
use super::frames::{self, FAULTS, Frame, METRICS, ParquetSink, REQUESTS, STORED};
use super::rows::{FaultRecord, MetricRow, Row};

/// The folder of the parts, in the run folder.
pub const PARTS: &str = ".parts";

/// How often the request rows of the repetition under way are written.
pub const FLUSH: Duration = Duration::from_secs(2);

/// The frames kept of a repetition its killed runner never ended.
pub const LIVE: [Frame; 3] = [REQUESTS, METRICS, FAULTS];

/// The file in the run folder of `frame`'s rows of a repetition its killed
/// runner never ended: every row up to the last flush, never drained nor
/// audited (`requests.partial.parquet`, …).
pub fn partial(frame: &Frame) -> String {
    format!("{}.partial.parquet", stem(frame))
}

/// The run folder's Parquet files, each made of its repetitions' parts.
const FRAMES: [Frame; 4] = [REQUESTS, STORED, METRICS, FAULTS];

fn stem(frame: &Frame) -> &'static str {
    frame.file.trim_end_matches(".parquet")
}

/// Where repetition `number`'s rows of `frame` go in the run folder `dir`.
pub fn part(dir: &Path, frame: &Frame, number: u32) -> PathBuf {
    dir.join(PARTS)
        .join(format!("{}-{number:05}.parquet", stem(frame)))
}

/// Where the `n`th flush of repetition `number`'s rows of `frame` goes
/// (a flush holds the rows that came since the one before; the faults,
/// few, are written whole each time as flush 0).
pub fn live(dir: &Path, frame: &Frame, number: u32, n: u32) -> PathBuf {
    dir.join(PARTS)
        .join(format!("live-{}-{number:05}-{n:06}.parquet", stem(frame)))
}

/// Where the repetition under way writes its rows as they come, for a
/// watchdog to find if its runner is killed: each write on a blocking thread
/// of its own (not the drivers' nor the scraper's); a failure is said, not
/// fatal, the rows are still kept for the repetition's end.
#[derive(Clone)]
pub struct Journal {
    pub dir: PathBuf,
    pub repetition: u32,
    pub architectures: Vec<String>,
}

impl Journal {
    fn write(
        &self,
        frame: Frame,
        n: u32,
        make: impl FnOnce(&Journal) -> PolarsResult<DataFrame> + Send + 'static,
    ) {
        let journal = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = live(&journal.dir, &frame, journal.repetition, n);
            if let Err(error) = write(&path, &frame, [make(&journal)]) {
                tracing::warn!(%error, "Could not write the rows measured so far.");
            }
        });
    }

    /// Writes the request rows that came since flush `n - 1` as flush `n`.
    pub fn requests(&self, n: u32, rows: Vec<Row>) {
        self.write(REQUESTS, n, move |j| {
            frames::requests_frame(j.repetition, &j.architectures, &rows)
        });
    }

    /// Writes the metric samples that came since flush `n - 1` as flush `n`.
    pub fn metrics(&self, n: u32, rows: Vec<MetricRow>) {
        self.write(METRICS, n, move |j| {
            frames::metrics_frame(j.repetition, &rows)
        });
    }

    /// Writes every fault as it stands now, in place of the last write.
    pub fn faults(&self, records: Vec<FaultRecord>) {
        self.write(FAULTS, 0, move |j| {
            frames::faults_frame(j.repetition, &records)
        });
    }
}

/// A frame with `frame`'s columns and no row.
pub fn empty(frame: &Frame) -> PolarsResult<DataFrame> {
    match frame.file {
        f if f == REQUESTS.file => frames::requests_frame(0, &[], &[]),
        f if f == STORED.file => frames::stored_frame(0, 0, &[]),
        f if f == METRICS.file => frames::metrics_frame(0, &[]),
        _ => frames::faults_frame(0, &[]),
    }
}

/// Writes `chunks` as the complete Parquet file `path` of `frame`'s
/// columns: under another name first, so that the file is whole or absent.
pub fn write(
    path: &Path,
    frame: &Frame,
    chunks: impl IntoIterator<Item = PolarsResult<DataFrame>>,
) -> Result<(), FolderError> {
    let parquet = |source| FolderError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| FolderError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let writing = path.with_extension("parquet.writing");
    let mut sink = ParquetSink::create(&writing).map_err(parquet)?;
    for chunk in chunks {
        sink.write(chunk.map_err(parquet)?).map_err(parquet)?;
    }
    sink.finish(empty(frame).map_err(parquet)?)
        .map_err(parquet)?;
    std::fs::rename(&writing, path).map_err(|source| FolderError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The parts in `dir/.parts` whose names start with `prefix` and a
/// repetition's number `keep` accepts, in order.
fn parts_of(dir: &Path, prefix: &str, keep: &dyn Fn(u32) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join(PARTS))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            name.ends_with(".parquet")
                && name.strip_prefix(prefix).is_some_and(|rest| {
                    rest.get(..5)
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(keep)
                })
        })
        .collect();
    found.sort();
    found
}

/// Puts `parts` together into `path`, a file of `frame`'s columns, one
/// part in memory at a time; `seen` looks at each part as it goes by.
/// Returns the rows it holds.
fn join_parts(
    path: &Path,
    frame: &Frame,
    parts: &[PathBuf],
    mut seen: impl FnMut(&DataFrame),
) -> Result<usize, FolderError> {
    let mut rows = 0;
    let frames = parts.iter().map(|part| {
        let frame = ParquetReader::new(File::open(part)?).finish()?;
        rows += frame.height();
        seen(&frame);
        Ok(frame)
    });
    write(path, frame, frames)?;
    Ok(rows)
}

/// Writes the run folder `dir`'s Parquet files from the parts of the
/// repetitions `keep` accepts, then removes every part.
pub fn assemble(dir: &Path, keep: &dyn Fn(u32) -> bool) -> Result<(), FolderError> {
    for frame in FRAMES {
        let parts = parts_of(dir, &format!("{}-", stem(&frame)), keep);
        join_parts(&dir.join(frame.file), &frame, &parts, |_| {})?;
    }
    remove(dir);
    Ok(())
}

/// What the repetition under way of a killed runner had flushed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Partial {
    /// Request rows, and the latest intended send time among them, in
    /// seconds.
    pub requests: usize,
    pub last_s: f64,
    /// Metric samples (scraped and CPU readings).
    pub metrics: usize,
    /// Faults, as they stood at their last start or end.
    pub faults: usize,
}

/// Writes the flushed rows of the repetitions `keep` accepts into each
/// [`LIVE`] frame's [`partial`] file; `None` if none was flushed. The
/// parts stay (see [`remove`]).
pub fn assemble_partial(
    dir: &Path,
    keep: &dyn Fn(u32) -> bool,
) -> Result<Option<Partial>, FolderError> {
    let mut kept = Partial::default();
    let mut any = false;
    for frame in LIVE {
        let parts = parts_of(dir, &format!("live-{}-", stem(&frame)), keep);
        if parts.is_empty() {
            continue;
        }
        any = true;
        let mut last_us: i64 = 0;
        let is_requests = frame.file == REQUESTS.file;
        let rows = join_parts(&dir.join(partial(&frame)), &frame, &parts, |part| {
            if is_requests {
                let latest = part
                    .column(frames::column::INTENDED_US)
                    .ok()
                    .and_then(|c| c.as_materialized_series().max::<i64>().ok().flatten());
                last_us = last_us.max(latest.unwrap_or(0));
            }
        })?;
        match frame.file {
            f if f == REQUESTS.file => {
                kept.requests = rows;
                kept.last_s = last_us as f64 / 1e6;
            }
            f if f == METRICS.file => kept.metrics = rows,
            _ => kept.faults = rows,
        }
    }
    Ok(any.then_some(kept))
}

/// Removes the flushed rows of repetition `number`, once its own parts
/// are written.
pub fn remove_live(dir: &Path, number: u32) {
    for frame in LIVE {
        for path in parts_of(dir, &format!("live-{}-", stem(&frame)), &|n| n == number) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Removes the parts folder.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join(PARTS));
}
