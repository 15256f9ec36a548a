//! The sweep's figures: every point's `summary.json` read back into
//! `points.parquet` (one row per point × architecture × repetition) and
//! `sweep.json` (per point × architecture: each headline figure's mean and
//! interval, and the break-even points).

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::catalogue::{self, FIGURES};
use crate::crossing::{self, BreakEven, Subject, Value};
use crate::experiment::{Experiment, SweepMode};
use crate::plan::grid::{Grid, Point, numeric, shown};
use crate::run_folder::summary::{Estimate, RepetitionFigures};
use crate::run_folder::sweep::{POINTS, PointSummary, RUNS, SCHEMA, SWEEP_JSON, SweepSummary};
use crate::run_folder::{self, Manifest, Summary};
use crate::stats::fnv;

/// Reads every point's run folder, writes `points.parquet` and
/// `sweep.json`; returns the summary.
pub fn gather(dir: &Path, experiment: &Experiment, grid: &Grid) -> anyhow::Result<SweepSummary> {
    let durations: Vec<bool> = (0..grid.keys.len())
        .map(|i| {
            grid.points.iter().all(|p| {
                p.values[i]
                    .as_str()
                    .is_some_and(|t| humantime::parse_duration(t).is_ok())
            })
        })
        .collect();
    let points: Vec<PointSummary> = grid
        .points
        .iter()
        .map(|point| read_point(&dir.join(RUNS), grid, point, experiment.seed))
        .collect();
    let architectures: Vec<String> = experiment
        .architectures
        .iter()
        .map(|a| a.name().to_string())
        .collect();
    let mut summary = SweepSummary {
        schema: SCHEMA,
        experiment: experiment.name.clone(),
        mode: experiment
            .sweep
            .as_ref()
            .map(|s| s.mode)
            .unwrap_or_default(),
        parameters: grid.written.clone(),
        durations,
        architectures,
        repetitions: experiment.repetitions,
        points,
        break_even: Vec::new(),
    };
    summary.break_even = break_even(&summary);
    let mut frame = points_frame(grid, &summary)?;
    write_parquet(&dir.join(POINTS), &mut frame)?;
    run_folder::save(&summary, &dir.join(SWEEP_JSON))?;
    Ok(summary)
}

fn write_parquet(path: &Path, frame: &mut DataFrame) -> anyhow::Result<()> {
    let file = std::fs::File::create(path)?;
    ParquetWriter::new(file).finish(frame)?;
    Ok(())
}

/// The summary of one point, from its run folder if it has run.
fn read_point(runs: &Path, grid: &Grid, point: &Point, seed: u64) -> PointSummary {
    let folder = point.folder(grid);
    let dir = runs.join(&folder);
    let read = run_folder::read_summary(&dir)
        .and_then(|summary| Ok((summary, run_folder::read_manifest(&dir)?)));
    let mut summary = PointSummary {
        point: point.index + 1,
        folder,
        values: point.values.iter().map(shown).collect(),
        numbers: point.values.iter().map(numeric).collect(),
        status: None,
        failed_hypotheses: 0,
        started_at: None,
        wall_s: None,
        overhead_s: None,
        figures: BTreeMap::new(),
        cost_by_budget: BTreeMap::new(),
        repetitions: BTreeMap::new(),
    };
    let Ok((run, manifest)) = read else {
        return summary;
    };
    summary.status = Some(run.status);
    summary.failed_hypotheses = run.failed_hypotheses();
    (summary.wall_s, summary.overhead_s) = times(&manifest);
    summary.started_at = Some(manifest.started_at);
    summary.figures = figures(&run, seed);
    summary.cost_by_budget = run
        .architectures
        .iter()
        .map(|(name, a)| (name.clone(), a.cost_by_staleness_budget.clone()))
        .collect();
    summary.repetitions = run
        .architectures
        .into_iter()
        .map(|(name, a)| (name, a.per_repetition))
        .collect();
    summary
}

/// Wall time of a run, and what of it was neither load nor drain.
fn times(manifest: &Manifest) -> (Option<f64>, Option<f64>) {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let wall = parse(&manifest.started_at)
        .zip(manifest.finished_at.as_deref().and_then(parse))
        .map(|(start, end)| (end - start).as_seconds_f64());
    let busy: f64 = manifest
        .repetitions
        .iter()
        .map(|r| {
            r.load_end_s
                + r.drain_s
                    .values()
                    .map(|d| d.unwrap_or(0.0))
                    .fold(0.0, f64::max)
        })
        .sum();
    (wall, wall.map(|wall| wall - busy))
}

/// Each figure's mean and interval per architecture.
fn figures(run: &Summary, seed: u64) -> BTreeMap<String, BTreeMap<String, Option<Estimate>>> {
    run.architectures
        .iter()
        .map(|(name, a)| {
            let figures = FIGURES
                .iter()
                .map(|figure| {
                    let values: Vec<f64> = a
                        .per_repetition
                        .iter()
                        .filter_map(figure.of_repetition)
                        .collect();
                    (
                        figure.name.to_string(),
                        figure.estimate_of(&values, seed ^ fnv(name) ^ fnv(figure.name)),
                    )
                })
                .collect();
            (name.clone(), figures)
        })
        .collect()
}

/// The figure `name` of `architecture` at `point`, as a crossing value.
fn value_of(point: &PointSummary, architecture: &str, name: &str) -> Option<Value> {
    let estimate = point.figures.get(architecture)?.get(name)?.as_ref()?;
    Some(Value {
        mean: estimate.mean,
        interval: estimate.low.zip(estimate.high),
    })
}

/// The curves of a sweep: the points along the first parameter, one curve
/// per combination of the other parameters' values (the `holding` label).
pub fn curves(summary: &SweepSummary) -> Vec<(String, Vec<&PointSummary>)> {
    let mut curves: Vec<(String, Vec<&PointSummary>)> = Vec::new();
    for point in &summary.points {
        let holding = match summary.mode {
            SweepMode::Zip => String::new(),
            SweepMode::Grid => summary
                .parameters
                .iter()
                .zip(&point.values)
                .skip(1)
                .map(|(key, value)| format!("{key} = {value}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        match curves.iter_mut().find(|(h, _)| *h == holding) {
            Some((_, points)) => points.push(point),
            None => curves.push((holding, vec![point])),
        }
    }
    for (_, points) in &mut curves {
        points.sort_by(|a, b| x_of(a).total_cmp(&x_of(b)));
    }
    curves
}

/// A point's position along the first parameter: its number, or its place
/// in the list when the values are not numbers.
pub fn x_of(point: &PointSummary) -> f64 {
    point
        .numbers
        .first()
        .copied()
        .flatten()
        .unwrap_or(point.point as f64)
}

/// How a value of the first parameter reads.
pub fn show_x(summary: &SweepSummary, x: f64) -> String {
    if summary.durations.first() == Some(&true) {
        if x >= 120.0 && (x / 60.0).fract().abs() < 1e-9 {
            format!("{:.0} min", x / 60.0)
        } else {
            format!("{} s", trim(x))
        }
    } else {
        trim(x)
    }
}

/// A number to three significant digits or so: `368`, `37.5`, `0.125`.
fn trim(x: f64) -> String {
    let decimals = match x.abs() {
        a if a >= 100.0 || x.fract().abs() < 1e-9 => 0,
        a if a >= 10.0 => 1,
        _ => 3,
    };
    let text = format!("{x:.decimals$}");
    if decimals == 0 {
        text
    } else {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The break-even of cost and of loss for every pair of architectures on
/// every curve whose first parameter is a number.
fn break_even(summary: &SweepSummary) -> Vec<BreakEven> {
    let Some(parameter) = summary.parameters.first() else {
        return Vec::new();
    };
    if summary.points.iter().any(|p| p.numbers[0].is_none()) {
        return Vec::new();
    }
    let show = |x: f64| show_x(summary, x);
    let subjects = [
        (
            catalogue::REVENUE_LOST,
            Subject {
                parameter,
                show: &show,
                less: "costs less than",
                same: "cost the same",
                article: "",
                joiner: " = ",
                range: "the swept range",
            },
        ),
        (
            catalogue::LOST,
            Subject {
                parameter,
                show: &show,
                less: "loses fewer events than",
                same: "lose as many events",
                article: "",
                joiner: " = ",
                range: "the swept range",
            },
        ),
    ];
    let mut found = Vec::new();
    for (holding, points) in curves(summary) {
        for (figure, subject) in &subjects {
            for (i, a) in summary.architectures.iter().enumerate() {
                for b in &summary.architectures[i + 1..] {
                    // The points that ran to completion where both have
                    // the figure: an interrupted point's figures stop
                    // where it did, and would cross what they should not.
                    let along: Vec<(f64, Value, Value)> = points
                        .iter()
                        .filter(|p| p.status == Some(crate::run_folder::Status::Complete))
                        .filter_map(|p| {
                            Some((x_of(p), value_of(p, a, figure)?, value_of(p, b, figure)?))
                        })
                        .collect();
                    if along.len() < 2 {
                        continue;
                    }
                    let xs: Vec<f64> = along.iter().map(|v| v.0).collect();
                    let a_values: Vec<Value> = along.iter().map(|v| v.1).collect();
                    let b_values: Vec<Value> = along.iter().map(|v| v.2).collect();
                    let (crosses, sure, sentence) =
                        crossing::break_even(subject, &xs, (a, &a_values), (b, &b_values));
                    found.push(BreakEven {
                        figure: figure.to_string(),
                        a: a.clone(),
                        b: b.clone(),
                        holding: holding.clone(),
                        at: crosses.iter().map(|c| c.x).collect(),
                        sure,
                        sentence: match (holding.is_empty(), crosses.is_empty()) {
                            (true, true) => sentence,
                            (true, false) => format!("{sentence} {}", crossing::certainty(sure)),
                            (false, true) => format!("At {holding}: {sentence}"),
                            (false, false) => {
                                format!("At {holding}: {sentence} {}", crossing::certainty(sure))
                            }
                        },
                    });
                }
            }
        }
    }
    found
}

/// `points.parquet`: one row per point × architecture × repetition, the
/// swept values as columns (as written, and as numbers), then every
/// headline figure.
fn points_frame(grid: &Grid, summary: &SweepSummary) -> PolarsResult<DataFrame> {
    let rows: Vec<(&PointSummary, &String, &RepetitionFigures)> = summary
        .points
        .iter()
        .flat_map(|p| {
            p.repetitions
                .iter()
                .flat_map(move |(name, reps)| reps.iter().map(move |r| (p, name, r)))
        })
        .collect();
    let mut columns: Vec<Column> = vec![
        Column::new(
            "point".into(),
            rows.iter().map(|r| r.0.point as u32).collect::<Vec<_>>(),
        ),
        Column::new(
            "folder".into(),
            rows.iter().map(|r| r.0.folder.as_str()).collect::<Vec<_>>(),
        ),
    ];
    for (i, key) in grid.written.iter().enumerate() {
        columns.push(Column::new(
            key.as_str().into(),
            rows.iter()
                .map(|r| r.0.values[i].as_str())
                .collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{key} (number)").into(),
            rows.iter().map(|r| r.0.numbers[i]).collect::<Vec<_>>(),
        ));
    }
    columns.push(Column::new(
        "architecture".into(),
        rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "repetition".into(),
        rows.iter().map(|r| r.2.repetition).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "status".into(),
        rows.iter()
            .map(|r| r.0.status.map(|s| s.to_string()))
            .collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "requests".into(),
        rows.iter().map(|r| r.2.requests).collect::<Vec<_>>(),
    ));
    columns.push(Column::new(
        "acknowledged".into(),
        rows.iter().map(|r| r.2.acknowledged).collect::<Vec<_>>(),
    ));
    for figure in &FIGURES {
        columns.push(Column::new(
            figure.name.into(),
            rows.iter()
                .map(|r| (figure.of_repetition)(r.2))
                .collect::<Vec<_>>(),
        ));
    }
    DataFrame::new(rows.len(), columns)
}

/// Reads `points.parquet` back.
pub fn read_points(dir: &Path) -> PolarsResult<DataFrame> {
    let file = std::fs::File::open(dir.join(POINTS))?;
    ParquetReader::new(file).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::Status;

    /// A point at outage `x` seconds where each architecture's revenue lost
    /// is given.
    fn point(index: usize, x: f64, revenue: &[(&str, f64)]) -> PointSummary {
        PointSummary {
            point: index,
            folder: format!("p{index:02}"),
            values: vec![format!("{x}s")],
            numbers: vec![Some(x)],
            status: Some(Status::Complete),
            failed_hypotheses: 0,
            started_at: None,
            wall_s: None,
            overhead_s: None,
            figures: revenue
                .iter()
                .map(|(name, value)| {
                    let estimate = Estimate {
                        mean: *value,
                        low: None,
                        high: None,
                        values: vec![*value],
                    };
                    (
                        name.to_string(),
                        [("revenue_lost".to_string(), Some(estimate))].into(),
                    )
                })
                .collect(),
            cost_by_budget: BTreeMap::new(),
            repetitions: BTreeMap::new(),
        }
    }

    #[test]
    fn synthetic_points_with_a_known_crossing_give_its_sentence() {
        // REST costs 10 a second of outage, the buffered path a flat 450:
        // they cross at a 45 s outage; the drop path costs more than both
        // throughout.
        let points = [15.0, 30.0, 60.0, 120.0]
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                point(
                    i + 1,
                    x,
                    &[
                        ("rest", 10.0 * x),
                        ("kafka-buffered", 450.0),
                        ("kafka-drop", 2000.0 + x),
                    ],
                )
            })
            .collect();
        let summary = SweepSummary {
            schema: SCHEMA,
            experiment: "what-if".into(),
            mode: SweepMode::Grid,
            parameters: vec!["faults[0].duration".into()],
            durations: vec![true],
            architectures: vec!["rest".into(), "kafka-buffered".into(), "kafka-drop".into()],
            repetitions: 1,
            points,
            break_even: Vec::new(),
        };
        let found = break_even(&summary);
        let cost: Vec<&BreakEven> = found
            .iter()
            .filter(|b| b.figure == "revenue_lost")
            .collect();
        assert_eq!(cost.len(), 3, "{found:?}");
        assert_eq!(cost[0].a, "rest");
        assert_eq!(cost[0].b, "kafka-buffered");
        assert_eq!(cost[0].at.len(), 1);
        assert!((cost[0].at[0] - 45.0).abs() < 1e-9);
        assert!(
            cost[0].sentence.starts_with(
                "Below faults[0].duration = 45 s rest costs less than kafka-buffered; \
                 above it kafka-buffered costs less than rest."
            ),
            "{}",
            cost[0].sentence
        );
        assert!(cost[1].at.is_empty());
        assert!(
            cost[1]
                .sentence
                .starts_with("No crossing in the swept range: rest costs less than kafka-drop"),
            "{}",
            cost[1].sentence
        );
        // No loss figures at these points: no loss sentence.
        assert!(found.iter().all(|b| b.figure == "revenue_lost"));

        // An interrupted point whose figures stopped early (REST cheap at
        // 120 s) makes no crossing: it is left out of the curves' crossings.
        let mut interrupted = summary.clone();
        interrupted.points[3] = point(
            4,
            120.0,
            &[
                ("rest", 100.0),
                ("kafka-buffered", 450.0),
                ("kafka-drop", 2000.0),
            ],
        );
        interrupted.points[3].status = Some(Status::Incomplete);
        let found = break_even(&interrupted);
        assert_eq!(found[0].at.len(), 1, "{found:?}");
        assert!((found[0].at[0] - 45.0).abs() < 1e-9);
    }

    #[test]
    fn durations_read_in_seconds_or_minutes() {
        let summary = SweepSummary {
            schema: SCHEMA,
            experiment: "x".into(),
            mode: SweepMode::Grid,
            parameters: vec!["faults[0].duration".into()],
            durations: vec![true],
            architectures: Vec::new(),
            repetitions: 1,
            points: Vec::new(),
            break_even: Vec::new(),
        };
        assert_eq!(show_x(&summary, 45.0), "45 s");
        assert_eq!(show_x(&summary, 37.5), "37.5 s");
        assert_eq!(show_x(&summary, 0.125), "0.125 s");
        assert_eq!(show_x(&summary, 368.317), "368 s");
        assert_eq!(show_x(&summary, 300.0), "5 min");
    }
}
