//! The rows of a run as they are measured, kept where a runner killed
//! outright cannot take them along. Each repetition's frames are written as
//! complete Parquet files of their own in `.parts/` when it ends, and the
//! request rows of the repetition under way every [`FLUSH`]. When the run
//! ends, the run folder's files are put together from the ended
//! repetitions' parts ([`assemble`]); when its runner was killed, the
//! watchdog does it for the repetitions that had ended and puts the rows of
//! the one under way into [`PARTIAL_REQUESTS`] ([`assemble_partial`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use polars::prelude::*;

use super::FolderError;
use super::frames::{self, FAULTS, Frame, METRICS, ParquetSink, REQUESTS, STORED};

/// The folder of the parts, in the run folder.
pub const PARTS: &str = ".parts";

/// How often the request rows of the repetition under way are written.
pub const FLUSH: Duration = Duration::from_secs(2);

/// The request rows of a repetition its killed runner never ended: every
/// row up to the last [`FLUSH`], never drained nor audited.
pub const PARTIAL_REQUESTS: &str = "requests.partial.parquet";

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

/// Where the `n`th flush of repetition `number`'s request rows goes.
pub fn live(dir: &Path, number: u32, n: u32) -> PathBuf {
    dir.join(PARTS).join(format!(
        "live-{}-{number:05}-{n:06}.parquet",
        stem(&REQUESTS)
    ))
}

/// A frame with `frame`'s columns and no row.
fn empty(frame: &Frame) -> PolarsResult<DataFrame> {
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

/// Writes the flushed request rows of the repetitions `keep` accepts into
/// [`PARTIAL_REQUESTS`]; returns how many rows it holds and the latest
/// intended send time among them, in seconds, if there were any. The parts
/// stay (see [`remove`]).
pub fn assemble_partial(
    dir: &Path,
    keep: &dyn Fn(u32) -> bool,
) -> Result<Option<(usize, f64)>, FolderError> {
    let parts = parts_of(dir, &format!("live-{}-", stem(&REQUESTS)), keep);
    if parts.is_empty() {
        return Ok(None);
    }
    let mut last_us: i64 = 0;
    let rows = join_parts(&dir.join(PARTIAL_REQUESTS), &REQUESTS, &parts, |part| {
        let latest = part
            .column(frames::column::INTENDED_US)
            .ok()
            .and_then(|c| c.as_materialized_series().max::<i64>().ok().flatten());
        last_us = last_us.max(latest.unwrap_or(0));
    })?;
    let last = last_us as f64 / 1e6;
    Ok(Some((rows, last)))
}

/// Removes the flushed request rows of repetition `number`, once its own
/// part is written.
pub fn remove_live(dir: &Path, number: u32) {
    for path in parts_of(dir, &format!("live-{}-", stem(&REQUESTS)), &|n| n == number) {
        let _ = std::fs::remove_file(path);
    }
}

/// Removes the parts folder.
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join(PARTS));
}
