//! The faultline lab: brings up the real stack, drives load at it, breaks it
//! on schedule and records what happened.
//!
//! - [`experiment`]: the scenario format and its defaults
//! - [`stack`]: the whole stack of one run (database behind the fault proxy,
//!   broker, services per architecture)
//! - [`fault`]: faults on the run's clock, each verified on and off
//! - [`load`]: the open-model load driver; [`k6`]: k6 as a second driver
//! - [`run`]: `faultline run`, from a scenario to a run folder
//! - [`collect`]: metrics scraping, the database audit, the Parquet files
//! - [`validate`]: reading a scenario, every problem at once
//! - [`clean`]: finds and stops what a killed runner left behind

pub mod analyze;
pub mod chart;
pub mod clean;
pub mod collect;
pub mod experiment;
pub mod fault;
pub mod k6;
pub mod load;
pub mod report;
pub mod run;
pub mod stack;
pub mod synthetic;
pub mod validate;

/// Where runs and stacks go when no folder is given.
pub const WORK_DIR: &str = ".faultline";
