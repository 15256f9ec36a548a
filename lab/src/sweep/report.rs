//! The sweep's report: for each headline figure, its curve against the
//! first swept parameter, one line per architecture with its interval
//! (small multiples for the other parameters' values); the break-even
//! sentences; a table of every point linking to its run report. Rendered
//! as a self-contained `report.html` and a `report.md` with `charts/*.svg`.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::table;
use crate::catalogue::{self, CHARTED, FIGURES, Unit};
use crate::chart::{self, LineChart};
use crate::crossing::BreakEven;
use crate::experiment::Experiment;
use crate::report::ChartView;
use crate::run_folder;
use crate::run_folder::summary::Estimate;
use crate::run_folder::sweep::{PointSummary, SWEEP_TOML, SweepSummary};

/// One figure's charts, one per curve.
#[derive(Serialize)]
struct FigureView {
    name: &'static str,
    label: &'static str,
    unit: Unit,
    charts: Vec<ChartView>,
}

/// One row of the table of points: a point × architecture.
#[derive(Serialize)]
struct RowView<'a> {
    point: &'a PointSummary,
    architecture: &'a str,
    first: bool,
    /// Each figure formatted, in [`FIGURES`]' order.
    cells: Vec<String>,
}

#[derive(Serialize)]
struct ArchitectureView {
    name: String,
    colour: String,
}

#[derive(Serialize)]
struct Model<'a> {
    title: String,
    description: &'a str,
    summary: &'a SweepSummary,
    architectures: Vec<ArchitectureView>,
    /// The swept values of each parameter, as written.
    values: Vec<(String, Vec<String>)>,
    figures: Vec<FigureView>,
    headers: Vec<&'static str>,
    rows: Vec<RowView<'a>>,
    cost_break_even: Vec<&'a BreakEven>,
    loss_break_even: Vec<&'a BreakEven>,
    /// Mean wall time and overhead of the points that ran.
    wall_s: Option<f64>,
    overhead_s: Option<f64>,
    /// Budgets shown in the cost-sensitivity table.
    budgets: Vec<f64>,
    scenario_toml: String,
    version: &'static str,
}

/// A figure's value as the table shows it.
fn show(unit: Unit, value: f64) -> String {
    match unit {
        Unit::Share => format!("{:.2} %", 100.0 * value),
        Unit::Count => format!("{value:.0}"),
        Unit::Ms if value >= 10_000.0 => format!("{:.1} s", value / 1000.0),
        Unit::Ms => format!("{value:.1} ms"),
        Unit::Seconds => format!("{value:.1} s"),
        Unit::Money => crate::report::format::money(value),
    }
}

fn axis_label(unit: Unit, currency: &str) -> String {
    match unit {
        Unit::Share => "%".into(),
        Unit::Count => "events".into(),
        Unit::Ms => "ms".into(),
        Unit::Seconds => "s".into(),
        Unit::Money => currency.into(),
    }
}

/// The charts of figure `index` of [`FIGURES`], one per curve.
fn charts(summary: &SweepSummary, index: usize, currency: &str) -> anyhow::Result<Vec<ChartView>> {
    let figure = &FIGURES[index];
    let scale = if figure.unit == Unit::Share {
        100.0
    } else {
        1.0
    };
    let parameter = summary.parameters.first().cloned().unwrap_or_default();
    let x_label = if summary.durations.first() == Some(&true) {
        format!("{parameter}, s")
    } else if summary.points.iter().any(|p| p.numbers[0].is_none()) {
        format!("{parameter} (point number)")
    } else {
        parameter.clone()
    };
    let y_label = axis_label(figure.unit, currency);
    let mut out = Vec::new();
    for (k, (holding, points)) in table::curves(summary).into_iter().enumerate() {
        let xs: Vec<f64> = points.iter().map(|p| table::x_of(p)).collect();
        let (low, high) = (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        if !low.is_finite() {
            continue;
        }
        let estimate = |p: &PointSummary, name: &str| {
            p.figures
                .get(name)
                .and_then(|f| f.get(figure.name))
                .cloned()
                .flatten()
        };
        let mut series = Vec::new();
        let mut faint = Vec::new();
        for (i, name) in summary.architectures.iter().enumerate() {
            let along: Vec<(f64, Estimate)> = points
                .iter()
                .filter_map(|p| Some((table::x_of(p), estimate(p, name)?)))
                .collect();
            if along.is_empty() {
                continue;
            }
            series.push((
                name.clone(),
                i,
                along.iter().map(|(x, e)| (*x, scale * e.mean)).collect(),
            ));
            for bound in [0, 1] {
                let line: Vec<(f64, f64)> = along
                    .iter()
                    .filter_map(|(x, e)| {
                        let bound = if bound == 0 { e.low } else { e.high };
                        Some((*x, scale * bound?))
                    })
                    .collect();
                if !line.is_empty() {
                    faint.push((name.clone(), i, line));
                }
            }
        }
        let markers = summary
            .break_even
            .iter()
            .filter(|b| b.figure == figure.name && b.holding == holding)
            .flat_map(|b| b.at.iter().map(move |x| (format!("{} = {}", b.a, b.b), *x)))
            .collect();
        let title = if holding.is_empty() {
            format!("{} against {parameter}", capitalise(figure.label))
        } else {
            format!(
                "{} against {parameter}, at {holding}",
                capitalise(figure.label)
            )
        };
        let log_x = low > 0.0 && high / low >= 20.0;
        let spec = LineChart {
            title: &title,
            x_label: &x_label,
            y_label: &y_label,
            series,
            faint,
            faults: &[],
            warmup: 0.0,
            x_range: if log_x {
                (low * 0.8, high * 1.25)
            } else {
                let pad = ((high - low) * 0.04).max(0.5);
                (low - pad, high + pad)
            },
            thresholds: Vec::new(),
            markers,
            log_x,
            log_y: false,
            legend: plotters::prelude::SeriesLabelPosition::UpperLeft,
            height: 300,
            max_gap: f64::INFINITY,
            dots: true,
        };
        out.push(ChartView::new(
            if log_x {
                format!("{title} (log scale)")
            } else {
                title.clone()
            },
            format!("charts/{}-{}.svg", figure.name, k + 1),
            chart::lines(&spec)?,
        ));
    }
    Ok(out)
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// Writes `report.html`, `report.md` and `charts/*.svg` of the sweep folder
/// `dir`.
pub fn write(dir: &Path, experiment: &Experiment, summary: &SweepSummary) -> anyhow::Result<()> {
    let currency = &experiment.economics.currency;
    let figures = (0..CHARTED)
        .map(|i| {
            Ok(FigureView {
                name: FIGURES[i].name,
                label: FIGURES[i].label,
                unit: FIGURES[i].unit,
                charts: charts(summary, i, currency)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rows = summary
        .points
        .iter()
        .flat_map(|point| {
            summary
                .architectures
                .iter()
                .enumerate()
                .map(move |(i, name)| RowView {
                    point,
                    architecture: name,
                    first: i == 0,
                    cells: FIGURES
                        .iter()
                        .map(|f| {
                            let estimate = point.figures.get(name).and_then(|m| m.get(f.name));
                            match estimate.cloned().flatten() {
                                None => "-".to_string(),
                                Some(e) => match e.low.zip(e.high) {
                                    Some((low, high)) => format!(
                                        "{} [{} – {}]",
                                        show(f.unit, e.mean),
                                        show(f.unit, low),
                                        show(f.unit, high)
                                    ),
                                    None => show(f.unit, e.mean),
                                },
                            }
                        })
                        .collect(),
                })
        })
        .collect();
    let scenario_toml = std::fs::read_to_string(dir.join(SWEEP_TOML)).unwrap_or_default();
    let values = summary
        .parameters
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let mut seen: Vec<String> = Vec::new();
            for point in &summary.points {
                if !seen.contains(&point.values[i]) {
                    seen.push(point.values[i].clone());
                }
            }
            (key.clone(), seen)
        })
        .collect();
    let model = Model {
        title: if experiment.title.is_empty() {
            format!("Sweep of {}", experiment.name)
        } else {
            experiment.title.clone()
        },
        description: experiment.description.trim(),
        summary,
        architectures: summary
            .architectures
            .iter()
            .enumerate()
            .map(|(i, name)| ArchitectureView {
                name: name.clone(),
                colour: chart::colour(i),
            })
            .collect(),
        values,
        figures,
        headers: FIGURES.iter().map(|f| f.label).collect(),
        rows,
        cost_break_even: summary
            .break_even
            .iter()
            .filter(|b| b.figure == catalogue::REVENUE_LOST)
            .collect(),
        loss_break_even: summary
            .break_even
            .iter()
            .filter(|b| b.figure == catalogue::LOST)
            .collect(),
        wall_s: mean(summary.points.iter().filter_map(|p| p.wall_s)),
        overhead_s: mean(
            summary
                .points
                .iter()
                .filter_map(|p| p.overhead_s)
                .map(|o| o / f64::from(summary.repetitions.max(1))),
        ),
        budgets: vec![10.0, 60.0, 300.0],
        scenario_toml: crate::secrets::redact_scenario(scenario_toml.trim_end(), experiment),
        version: faultline_services::VERSION,
    };
    let env = crate::report::format::environment();
    let markdown = env.get_template("sweep.md")?.render(&model)?;
    let html = env.get_template("sweep.html")?.render(&model)?;
    let charts = dir.join(run_folder::CHARTS);
    std::fs::create_dir_all(&charts)
        .with_context(|| format!("cannot create {}", charts.display()))?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    for chart in model.figures.iter().flat_map(|f| &f.charts) {
        write(&dir.join(&chart.file), &chart.svg)?;
    }
    write(&dir.join(run_folder::REPORT_MD), &markdown)?;
    write(&dir.join(run_folder::REPORT_HTML), &html)?;
    Ok(())
}
