//! `faultline sweep`: one scenario, a grid of runs, curves and break-even
//! points.
//!
//! A scenario's `[sweep]` names keys of the scenario and the values each
//! takes. [`Grid::of`](crate::plan::grid::Grid::of) turns it into points, each an ordinary scenario (the
//! base one, every default written out, the point's values set) that is
//! validated like any other before anything starts. [`execute`] runs each
//! point into its own run folder under the sweep folder; [`table`] gathers
//! every point's `summary.json` into `points.parquet` and `sweep.json`;
//! [`crate::crossing`] finds where one architecture's curve crosses another's;
//! [`report`] draws the curves.

pub mod execute;
pub mod report;
pub mod table;
