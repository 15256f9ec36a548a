//! SVG charts for the report. One fixed palette; each architecture also has
//! its own dash pattern, so the charts read in grey print too. Fault periods
//! are shaded and thresholds drawn as labelled rules.

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One colour per architecture, in the scenario's order.
const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1f, 0x6f, 0xeb),
    RGBColor(0x06, 0x76, 0x47),
    RGBColor(0xd9, 0x4f, 0x04),
    RGBColor(0x7a, 0x3e, 0xd6),
    RGBColor(0x5b, 0x64, 0x78),
];
/// Dash length and gap, in pixels, per architecture (0 = solid).
const DASHES: [(u32, u32); 5] = [(0, 0), (9, 5), (3, 3), (14, 4), (6, 2)];
const FAULT: RGBColor = RGBColor(0xb4, 0x23, 0x18);
const RULE: RGBColor = RGBColor(0x1d, 0x24, 0x33);
const WIDTH: u32 = 960;

/// A named line: its label, its style index and its (x, y) points.
pub type Line = (String, usize, Vec<(f64, f64)>);

/// The colour of style `index`, as `#rrggbb`.
pub fn colour(index: usize) -> String {
    let RGBColor(r, g, b) = PALETTE[index % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// A line chart over time (or any x).
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Line>,
    /// Drawn thin and faint behind `series`, without a legend (e.g. the
    /// other repetitions).
    pub faint: Vec<Line>,
    /// Shaded x ranges.
    pub faults: &'a [(f64, f64)],
    /// The warm-up, shaded grey from 0 to this x (0 for none).
    pub warmup: f64,
    pub x_range: (f64, f64),
    /// Horizontal rules: (label, y).
    pub thresholds: Vec<(String, f64)>,
    /// Vertical rules: (label, x).
    pub markers: Vec<(String, f64)>,
    /// x is drawn on a log10 axis (values must be > 0).
    pub log_x: bool,
    /// y is drawn on a log10 axis (values must be > 0).
    pub log_y: bool,
    pub legend: SeriesLabelPosition,
    pub height: u32,
    /// A gap wider than this in x breaks a line (a second without data);
    /// infinite to join every point.
    pub max_gap: f64,
    /// A dot on every point of `series` (measured points joined by lines).
    pub dots: bool,
}

impl<'a> LineChart<'a> {
    pub fn over_time(
        title: &'a str,
        y_label: &'a str,
        faults: &'a [(f64, f64)],
        x_max: f64,
    ) -> Self {
        Self {
            title,
            x_label: "seconds from the start",
            y_label,
            series: Vec::new(),
            faint: Vec::new(),
            faults,
            warmup: 0.0,
            x_range: (0.0, x_max.max(1.0)),
            thresholds: Vec::new(),
            markers: Vec::new(),
            log_x: false,
            log_y: false,
            legend: SeriesLabelPosition::UpperRight,
            height: 280,
            max_gap: 1.5,
            dots: false,
        }
    }
}

type Fail = fn(DrawingAreaErrorKind<std::io::Error>) -> anyhow::Error;

fn fail(e: DrawingAreaErrorKind<std::io::Error>) -> anyhow::Error {
    anyhow!("drawing a chart: {e}")
}

/// Draws one series in the style of `index`: colour, width and dash
/// pattern. A gap wider than `max_gap` in x (a second without data) breaks
/// the line instead of bridging it.
fn draw_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    name: &str,
    index: usize,
    points: Vec<(f64, f64)>,
    max_gap: f64,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let colour = PALETTE[index % PALETTE.len()];
    let style = colour.stroke_width(2);
    let (dash, gap) = DASHES[index % DASHES.len()];
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    for point in points {
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|last| point.0 - last.0 <= max_gap) => {
                run.push(point)
            }
            _ => runs.push(vec![point]),
        }
    }
    for (i, run) in runs.into_iter().enumerate() {
        let annotation = if dash == 0 || run.len() == 1 {
            chart
                .draw_series(LineSeries::new(run, style).point_size(u32::from(dash != 0)))
                .map_err(|e| anyhow!("drawing {name}: {e}"))?
        } else {
            chart
                .draw_series(DashedLineSeries::new(run, dash, gap, style))
                .map_err(|e| anyhow!("drawing {name}: {e}"))?
        };
        if i > 0 {
            continue;
        }
        let (dash, gap) = if dash == 0 {
            (6, 0)
        } else {
            (dash.min(6), gap)
        };
        annotation.label(name).legend(move |(x, y)| {
            let d = dash as i32;
            let g = gap as i32;
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (d, 0)], style)
                + PathElement::new(vec![(d + g, 0), (2 * d + g, 0)], style)
                + PathElement::new(vec![(2 * (d + g), 0), (3 * d + 2 * g, 0)], style)
        });
    }
    Ok(())
}

/// Renders a [`LineChart`] as an SVG document.
pub fn lines(spec: &LineChart) -> anyhow::Result<String> {
    let fail: Fail = fail;
    let log = |on: bool| move |v: f64| if on { v.max(1e-3).log10() } else { v };
    let (fx, fy) = (log(spec.log_x), log(spec.log_y));
    let ys = || {
        spec.series
            .iter()
            .chain(&spec.faint)
            .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
            .chain(spec.thresholds.iter().map(|t| t.1))
    };
    let top = ys().fold(0.0, f64::max).max(1.0);
    let (y0, y1) = if spec.log_y {
        let bottom = ys().filter(|y| *y > 0.0).fold(top, f64::min);
        (fy(bottom) - 0.1, fy(top) + 0.15)
    } else {
        (0.0, top * 1.12)
    };
    let (x0, x1) = (fx(spec.x_range.0), fx(spec.x_range.1));
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, spec.height)).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(spec.title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(fail)?;
        let (log_x, log_y) = (spec.log_x, spec.log_y);
        let unlog = |on: bool, v: f64| if on { human(10f64.powf(v)) } else { human(v) };
        let x_format = move |v: &f64| unlog(log_x, *v);
        let y_format = move |v: &f64| unlog(log_y, *v);
        chart
            .configure_mesh()
            .x_desc(spec.x_label)
            .y_desc(spec.y_label)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format)
            .light_line_style(WHITE)
            .draw()
            .map_err(fail)?;
        chart
            .draw_series(spec.faults.iter().map(|(start, end)| {
                Rectangle::new([(fx(*start), y0), (fx(*end), y1)], FAULT.mix(0.12).filled())
            }))
            .map_err(fail)?;
        if spec.warmup > 0.0 && !spec.log_x {
            chart
                .draw_series([Rectangle::new(
                    [(x0, y0), (fx(spec.warmup), y1)],
                    RULE.mix(0.08).filled(),
                )])
                .map_err(fail)?;
        }
        // A dashed rule from `a` to `b`, its label at `at`.
        let mut rule = |a: (f64, f64), b: (f64, f64), label: &str, at: (f64, f64)| {
            chart
                .draw_series(DashedLineSeries::new(
                    [a, b],
                    6,
                    4,
                    RULE.mix(0.8).stroke_width(1),
                ))
                .map_err(fail)?;
            chart
                .draw_series([Text::new(
                    label.to_string(),
                    at,
                    ("sans-serif", 12).into_font().color(&RULE),
                )])
                .map_err(fail)?;
            anyhow::Ok(())
        };
        for (label, y) in &spec.thresholds {
            let y = fy(*y);
            let at = (x0 + (x1 - x0) * 0.01, y + (y1 - y0) * 0.08);
            rule((x0, y), (x1, y), label, at)?;
        }
        for (label, x) in &spec.markers {
            let x = fx(*x);
            // The label sits left of the rule, near the top.
            let width = (x1 - x0) * 0.0075 * label.chars().count() as f64;
            let at = (x - width - (x1 - x0) * 0.006, y1 - (y1 - y0) * 0.04);
            rule((x, y0), (x, y1), label, at)?;
        }
        let max_gap = spec.max_gap;
        for (_, index, points) in &spec.faint {
            let colour = PALETTE[index % PALETTE.len()].mix(0.3).stroke_width(1);
            let mut run: Vec<(f64, f64)> = Vec::new();
            for (x, y) in points.iter().map(|(x, y)| (fx(*x), fy(*y))) {
                if run.last().is_some_and(|last| x - last.0 > max_gap) {
                    chart
                        .draw_series(LineSeries::new(std::mem::take(&mut run), colour))
                        .map_err(fail)?;
                }
                run.push((x, y));
            }
            chart
                .draw_series(LineSeries::new(run, colour))
                .map_err(fail)?;
        }
        for (name, index, points) in &spec.series {
            let points: Vec<(f64, f64)> = points.iter().map(|(x, y)| (fx(*x), fy(*y))).collect();
            if spec.dots {
                let colour = PALETTE[index % PALETTE.len()];
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
                    .map_err(fail)?;
            }
            draw_line(&mut chart, name, *index, points, max_gap)?;
        }
        chart
            .configure_series_labels()
            .position(spec.legend.clone())
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.2))
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// Small multiples: one panel per architecture, stacked, each with its
/// lines (e.g. ok and failed per second) over the same x range.
pub fn panels(
    title: &str,
    y_label: &str,
    panels: &[(String, Vec<Line>)],
    faults: &[(f64, f64)],
    warmup: f64,
    x_max: f64,
) -> anyhow::Result<String> {
    let fail: Fail = fail;
    let panel_height = 170u32;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, 36 + panel_height * panels.len() as u32))
                .into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let root = root.titled(title, ("sans-serif", 16)).map_err(fail)?;
        let areas: Vec<DrawingArea<_, Shift>> = root.split_evenly((panels.len().max(1), 1));
        for ((name, lines), area) in panels.iter().zip(areas) {
            let y_max = lines
                .iter()
                .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
                .fold(0.0, f64::max)
                .max(1.0)
                * 1.15;
            let mut chart = ChartBuilder::on(&area)
                .caption(name, ("sans-serif", 13))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(64)
                .build_cartesian_2d(0f64..x_max.max(1.0), 0f64..y_max)
                .map_err(fail)?;
            chart
                .configure_mesh()
                .x_desc("seconds from the start")
                .y_desc(y_label)
                .y_label_formatter(&|v| human(*v))
                .light_line_style(WHITE)
                .draw()
                .map_err(fail)?;
            chart
                .draw_series(faults.iter().map(|(start, end)| {
                    Rectangle::new([(*start, 0.0), (*end, y_max)], FAULT.mix(0.12).filled())
                }))
                .map_err(fail)?;
            if warmup > 0.0 {
                chart
                    .draw_series([Rectangle::new(
                        [(0.0, 0.0), (warmup, y_max)],
                        RULE.mix(0.08).filled(),
                    )])
                    .map_err(fail)?;
            }
            for (label, index, points) in lines {
                draw_line(&mut chart, label, *index, points.clone(), 1.5)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.2))
                .draw()
                .map_err(fail)?;
        }
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// Horizontal bars: for each group (an architecture), one bar per measure,
/// the value written at the bar's end.
pub fn bars(title: &str, groups: &[(String, Vec<(String, f64)>)]) -> anyhow::Result<String> {
    let fail: Fail = fail;
    let rows: usize = groups.iter().map(|(_, bars)| bars.len() + 1).sum();
    let x_max = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|b| b.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.18;
    let mut svg = String::new();
    {
        let height = 60 + 22 * rows as u32;
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(0)
            .build_cartesian_2d(-x_max * 0.32..x_max, 0f64..rows as f64)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_y_axis()
            .x_label_formatter(&|v| if *v < 0.0 { String::new() } else { human(*v) })
            .light_line_style(WHITE)
            .draw()
            .map_err(fail)?;
        let mut row = rows as f64;
        let text = |s: String, at: (f64, f64), bold: bool| {
            let font = ("sans-serif", 13).into_font();
            let font = if bold {
                font.style(FontStyle::Bold)
            } else {
                font
            };
            Text::new(s, at, font.color(&RULE))
        };
        for (index, (group, bars)) in groups.iter().enumerate() {
            let colour = PALETTE[index % PALETTE.len()];
            row -= 1.0;
            chart
                .draw_series([text(group.clone(), (-x_max * 0.31, row + 0.75), true)])
                .map_err(fail)?;
            for (shade, (label, value)) in bars.iter().enumerate() {
                row -= 1.0;
                // Lighter fills for later measures, hatched by order of shade.
                let fill = colour.mix(1.0 - 0.22 * shade as f64).filled();
                chart
                    .draw_series([
                        Rectangle::new([(0.0, row + 0.15), (*value, row + 0.85)], fill),
                        Rectangle::new(
                            [(0.0, row + 0.15), (*value, row + 0.85)],
                            colour.stroke_width(1),
                        ),
                    ])
                    .map_err(fail)?;
                chart
                    .draw_series([
                        text(label.clone(), (-x_max * 0.29, row + 0.75), false),
                        text(human(*value), (*value + x_max * 0.01, row + 0.75), false),
                    ])
                    .map_err(fail)?;
            }
        }
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// A short strip: the offered load over time with the fault periods
/// shaded and named.
pub fn strip(
    offered: &[(f64, f64)],
    faults: &[(f64, f64, String)],
    x_max: f64,
) -> anyhow::Result<String> {
    let fail: Fail = fail;
    let y_max = offered.iter().map(|p| p.1).fold(0.0, f64::max).max(1.0) * 1.5;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 150)).into_drawing_area();
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max.max(1.0), 0f64..y_max)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc("req/s offered")
            .y_labels(3)
            .y_label_formatter(&|v| human(*v))
            .light_line_style(WHITE)
            .draw()
            .map_err(fail)?;
        for (start, end, kind) in faults {
            chart
                .draw_series([Rectangle::new(
                    [(*start, 0.0), (*end, y_max)],
                    FAULT.mix(0.15).filled(),
                )])
                .map_err(fail)?;
            chart
                .draw_series([Text::new(
                    kind.clone(),
                    (*start + x_max * 0.005, y_max * 0.92),
                    ("sans-serif", 12).into_font().color(&FAULT),
                )])
                .map_err(fail)?;
        }
        chart
            .draw_series(
                AreaSeries::new(offered.iter().copied(), 0.0, RULE.mix(0.15))
                    .border_style(RULE.stroke_width(1)),
            )
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

/// A tick label: 1.5k, 20, 0.25, 3.2M.
fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_series_the_fault_shaded_and_its_threshold() {
        let mut spec =
            LineChart::over_time("failed requests per second", "failed/s", &[(1.0, 2.0)], 3.0);
        spec.series = vec![
            ("rest".into(), 0, vec![(0.0, 0.0), (1.0, 50.0), (2.0, 0.0)]),
            ("kafka".into(), 1, vec![(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]),
        ];
        spec.thresholds = vec![("limit 25/s".into(), 25.0)];
        let svg = lines(&spec).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in ["rest", "kafka", "failed requests per second", "limit 25/s"] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "no line drawn"
        );
        assert!(svg.contains("<rect"), "no shaded fault");
    }

    #[test]
    fn bars_and_strip_carry_their_labels() {
        let svg = bars(
            "loss audit",
            &[(
                "kafka-drop".into(),
                vec![("acknowledged".into(), 15000.0), ("lost".into(), 9006.0)],
            )],
        )
        .unwrap();
        for text in ["kafka-drop", "acknowledged", "lost", "9.0k"] {
            assert!(svg.contains(text), "{text} missing");
        }
        let svg = strip(
            &[(0.0, 50.0), (300.0, 50.0)],
            &[(90.0, 210.0, "db-crash".into())],
            300.0,
        )
        .unwrap();
        assert!(svg.contains("db-crash"));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(human(15000.0), "15k");
        assert_eq!(human(1500.0), "1.5k");
        assert_eq!(human(0.25), "0.25");
        assert_eq!(human(3.0), "3");
        assert_eq!(human(2_500_000.0), "2.5M");
    }
}
