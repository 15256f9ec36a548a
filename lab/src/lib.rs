//! The faultline lab: brings up the real stack, drives load at it, breaks it
//! on schedule, records what happened, and turns the record into a report.
//!
//! # Layout
//!
//! One module per stage of a run, in the order data flows through them; a
//! module imports only from those it needs below it (no cycle), with the run
//! folder's types at the bottom:
//!
//! - [`experiment`]: the scenario format (serde types, [`experiment::defaults`]
//!   in one place, fault kinds, hypotheses and their [`experiment::Phase`])
//! - [`validate`]: reading a scenario, every problem at once with its line
//!   (syntax, the schema walk, the rules that span fields); the scenario's
//!   JSON Schema and reference
//! - [`plan`]: a scenario lowered to what a run does (stack, service flags,
//!   fault timeline, [`plan::rate`] schedule, driver settings, seeds) and a
//!   sweep to its [`plan::grid`] of points; pure
//! - [`secrets`]: the passwords and credentials a scenario holds, redacted
//!   from everything that leaves the process
//! - [`stack`]: the whole stack of one run (database behind the fault proxy,
//!   broker, services per architecture), on `faultline-stack`
//! - [`fault`]: faults on the run's clock, each verified on and off
//! - [`load`]: the open-model load driver; [`k6`]: k6 as a second driver
//! - [`collect`]: metrics and CPU scraping, backlog readings, the database
//!   audit
//! - [`reference`](mod@reference): PostgreSQL alone, measured before a capacity run's load
//! - [`run`]: `faultline run`, a repetition's stages from plan to run folder;
//!   [`live`]: the run as it goes, for the dashboard and `/metrics`
//! - [`run_folder`]: the run folder's files, one type each, written and read:
//!   [`run_folder::rows`] (every Parquet file's rows), [`run_folder::frames`]
//!   (their columns, named once), the manifest, `summary.json` and a
//!   sweep's `sweep.json`
//! - [`stats`]: percentiles and intervals, shared by the driver and the
//!   analysis; [`crossing`]: where two curves cross, in words
//! - [`catalogue`]: the headline figures, one entry each, from which
//!   `compare`, the sweep, the hypotheses and the estimates are derived
//! - [`analyze`]: from the run folder's raw rows to `summary.json`
//! - [`chart`], [`report`]: SVG charts, the HTML/Markdown report, the index
//!   of runs, the terminal's headline table
//! - [`sweep`]: `faultline sweep`, one scenario over a grid of values: the
//!   points' run folders, `points.parquet`, curves and break-even points
//! - [`compare`]: two runs' headline figures side by side, change against noise
//! - [`synthetic`]: run folders with known answers, for tests and benchmarks
//! - [`shutdown`]: Ctrl-C once to stop a run, twice to hurry its teardown
//! - [`clean`]: finds and stops what a killed runner left behind
//! - [`spelling`]: "did you mean" for misspelt keys and names
//! - [`template`]: the `{{ name }}` templates of a `service` architecture
//!
//! # Recipes
//!
//! **A headline figure.** Compute it per repetition in [`analyze`] (into
//! [`run_folder::summary::RepetitionFigures`], and pooled into
//! [`run_folder::summary::ArchitectureSummary`] if the report shows it
//! pooled); give its estimate a slot in [`run_folder::summary::Repetitions`]
//! and a [`experiment::Metric`] (with its arm in `Metric::of`); add one
//! entry to [`catalogue::FIGURES`]; a line in the templates if the report's
//! verdict table shows it. `compare`, the sweep's table, charts and
//! `points.parquet`, and the hypotheses follow from the catalogue;
//! regenerate `docs/summary.schema.json`, `docs/scenarios.md` and
//! `experiments/schema.json` (`faultline schema`).
//!
//! **A fault kind.** A variant of [`experiment::FaultKind`] with its name,
//! target and scenario fields (`experiment/fault.rs`, `RawFault` both ways);
//! its rules in `validate/checks.rs` (`check_faults`); in [`fault`], what
//! injects and ends it and the probe that verifies each; a line in the
//! README's fault table and a scenario under `experiments/` if it tells a
//! story. The report, the summary and the timeline take the kind's name.
//!
//! **An architecture kind.** A variant of
//! [`experiment::ArchitectureSettings`] and of [`plan::Architecture`] (its
//! services' flags, checked against the services' own command-line types
//! by the plan's tests); how [`stack`] starts it and which [`collect`]
//! scrapes and CPU targets ([`run_folder::rows::Process`]) it has; its
//! description in the report (`report/mod.rs`).

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
pub mod live;
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
pub mod template;
pub mod validate;

use std::path::Path;

/// How `faultline` ends: its exit status, one variant each, so that
/// scenarios and comparisons work as CI gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The run completed and every hypothesis held.
    Success = 0,
    /// Anything else went wrong.
    Error = 1,
    /// An invalid scenario.
    Invalid = 2,
    /// A hypothesis failed.
    HypothesisFailed = 3,
    /// The run did not complete: its figures gate nothing.
    Incomplete = 4,
    /// `compare --fail-on-regression`: a figure got worse beyond the noise.
    Regressed = 5,
    /// The command line itself is wrong: a missing or unknown argument
    /// (`EX_USAGE` of sysexits.h), told apart from an invalid scenario.
    Usage = 64,
}

impl Exit {
    /// The status the process ends with.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Ends the process with this status.
    pub fn exit(self) -> ! {
        std::process::exit(self.code())
    }
}

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
