//! The faultline lab: brings up the real stack, drives load at it, breaks it
//! on schedule, records what happened, and turns the record into a report.
//!
//! # Layout
//!
//! One module per stage of a run, in the order data flows through them:
//!
//! - [`experiment`]: the scenario format (serde types, defaults in one place)
//! - [`validate`]: reading a scenario, every problem at once with its line;
//!   the scenario's JSON Schema and reference
//! - [`plan`]: a scenario lowered to what a run does (stack, service flags,
//!   fault timeline, load schedule, driver settings, seeds); pure
//! - [`stack`]: the whole stack of one run (database behind the fault proxy,
//!   broker, services per architecture), on `faultline-stack`
//! - [`fault`]: faults on the run's clock, each verified on and off
//! - [`load`]: the open-model load driver; [`k6`]: k6 as a second driver
//! - [`collect`]: metrics scraping and the database audit
//! - [`run`]: `faultline run`, a repetition's stages from plan to run folder
//! - [`run_folder`]: the run folder's files, one type each, written and read
//! - [`stats`]: percentiles and intervals, shared by the driver and the analysis
//! - [`analyze`]: from the run folder's raw rows to `summary.json`
//! - [`chart`], [`report`]: SVG charts, the HTML/Markdown report, the index
//!   of runs, the terminal's headline table
//! - [`sweep`]: `faultline sweep`, one scenario over a grid of values: the
//!   points' run folders, `points.parquet`, curves and break-even points
//! - [`compare`]: two runs' headline figures side by side, change against noise
//! - [`synthetic`]: run folders with known answers, for tests and benchmarks
//! - [`shutdown`]: Ctrl-C once to stop a run, twice to hurry its teardown
//! - [`clean`]: finds and stops what a killed runner left behind

pub mod analyze;
pub mod catalogue;
pub mod chart;
pub mod clean;
pub mod collect;
pub mod compare;
pub mod crossing;
pub mod experiment;
pub mod fault;
pub mod k6;
pub mod load;
pub mod plan;
pub mod reference;
pub mod report;
pub mod run;
pub mod run_folder;
pub mod secrets;
pub mod shutdown;
pub mod spelling;
pub mod stack;
pub mod stats;
pub mod sweep;
pub mod synthetic;
pub mod validate;

use std::path::Path;

/// Where runs and stacks go when no folder is given.
pub const WORK_DIR: &str = ".faultline";

/// Analyses the run folder at `dir` from its files alone, writes its
/// `summary.json` and renders its report; returns the summary.
pub fn analyse_and_report(dir: &Path) -> anyhow::Result<run_folder::Summary> {
    let files = run_folder::RunFiles::read(dir)?;
    let analysis = analyze::summarize(&files)?;
    run_folder::save(&analysis.summary, &dir.join(run_folder::SUMMARY))?;
    report::write(dir, &files, &analysis)?;
    Ok(analysis.summary)
}
