//! SVG charts for the report: a fixed palette, fault periods shaded.

use anyhow::anyhow;
use plotters::prelude::*;

/// One colour per architecture, in the scenario's order.
const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1f, 0x6f, 0xeb),
    RGBColor(0x06, 0x76, 0x47),
    RGBColor(0xd9, 0x4f, 0x04),
    RGBColor(0x7a, 0x3e, 0xd6),
    RGBColor(0x5b, 0x64, 0x78),
];
/// A named line: its label, its colour index and its (x, y) points.
pub type Line = (String, usize, Vec<(f64, f64)>);

const FAULT: RGBColor = RGBColor(0xb4, 0x23, 0x18);

/// A line per series over time, with the fault windows shaded. Each series
/// carries its colour index, so an architecture keeps its colour across charts.
pub fn lines(
    title: &str,
    y_label: &str,
    series: &[Line],
    faults: &[(f64, f64)],
    x_max: f64,
) -> anyhow::Result<String> {
    let y_max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 280)).into_drawing_area();
        let fail = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing {title}: {e}");
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..x_max.max(1.0), 0f64..y_max)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start")
            .y_desc(y_label)
            .light_line_style(WHITE)
            .draw()
            .map_err(fail)?;
        chart
            .draw_series(faults.iter().map(|(start, end)| {
                Rectangle::new([(*start, 0.0), (*end, y_max)], FAULT.mix(0.12).filled())
            }))
            .map_err(fail)?;
        for (name, index, points) in series {
            let colour = PALETTE[index % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(fail)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.2))
            .draw()
            .map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_its_series_and_the_fault_shaded() {
        let svg = lines(
            "failed requests per second",
            "failed/s",
            &[("rest".into(), 0, vec![(0.0, 0.0), (1.0, 50.0), (2.0, 0.0)])],
            &[(1.0, 2.0)],
            3.0,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("rest") && svg.contains("failed requests per second"));
        assert!(
            svg.contains("<polyline") || svg.contains("<path"),
            "no line drawn"
        );
        assert!(svg.contains("<rect"), "no shaded fault");
    }
}
