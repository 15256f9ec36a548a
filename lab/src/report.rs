//! The run's report: one Markdown file and one self-contained HTML file,
//! both rendered from the same model (the run's summary, scenario and
//! manifest) by a minijinja template.

use std::path::Path;

use anyhow::Context;
use minijinja::{Environment, Value, context};

use crate::analyze::{self, Summary};
use crate::experiment::{Experiment, RateShape};

const MARKDOWN: &str = include_str!("../templates/report.md.j2");
const HTML: &str = include_str!("../templates/report.html.j2");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template("report.md", MARKDOWN)
        .expect("the Markdown template parses");
    env.add_template("report.html", HTML)
        .expect("the HTML template parses");
    env.add_function("pct", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v))
    });
    env.add_function("ms", |v: Option<f64>| match v {
        None => "-".to_string(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) => format!("{v:.1} ms"),
    });
    env.add_function("secs", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{v:.1} s"))
    });
    env.add_function("money", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{v:.2}"))
    });
    env.add_function("num", |v: Option<f64>| match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    });
    env
}

fn describe_rate(rate: &RateShape) -> String {
    match rate {
        RateShape::Constant { rps } => format!("{rps} req/s per architecture"),
        RateShape::Ramp { from_rps, to_rps } => {
            format!("{from_rps} → {to_rps} req/s per architecture")
        }
        RateShape::Steps { steps } => format!("{} rate steps per architecture", steps.len()),
        RateShape::Spike {
            base_rps, peak_rps, ..
        } => {
            format!("{base_rps} req/s with a spike to {peak_rps} req/s per architecture")
        }
    }
}

/// Renders the Markdown and HTML reports of a run from its summary.
pub fn render(
    summary: &Summary,
    experiment: &Experiment,
    manifest: &serde_json::Value,
) -> anyhow::Result<(String, String)> {
    let env = environment();
    let architectures: Vec<Value> = experiment
        .architectures
        .iter()
        .filter_map(|a| {
            let s = summary.architectures.get(a.name())?;
            Some(context! { name => a.name(), s => Value::from_serialize(s) })
        })
        .collect();
    let title = if experiment.title.is_empty() {
        experiment.name.clone()
    } else {
        experiment.title.clone()
    };
    let model = context! {
        title => title,
        description => experiment.description.trim(),
        summary => Value::from_serialize(summary),
        architectures => architectures,
        faults => Value::from_serialize(&summary.faults),
        hypotheses => Value::from_serialize(&summary.hypotheses),
        phases => vec!["before", "during", "between", "after"],
        economics => Value::from_serialize(&experiment.economics),
        staleness => experiment.economics.staleness_budget.to_string(),
        duration => experiment.duration.to_string(),
        rate => describe_rate(&experiment.workload.rate),
        seed => experiment.seed,
        broker => manifest["versions"]["broker"].as_str().unwrap_or_default(),
        version => faultline_services::VERSION,
    };
    let markdown = env.get_template("report.md")?.render(&model)?;
    let mut body = String::new();
    let options = pulldown_cmark::Options::ENABLE_TABLES;
    pulldown_cmark::html::push_html(
        &mut body,
        pulldown_cmark::Parser::new_ext(&markdown, options),
    );
    for (name, svg) in charts(summary, experiment)? {
        body = body.replace(
            &format!("<!-- chart:{name} -->"),
            &format!("<figure>{svg}</figure>"),
        );
    }
    let html = env
        .get_template("report.html")?
        .render(context! { title => model.get_attr("title")?, body => Value::from_safe_string(body), version => faultline_services::VERSION })?;
    Ok((markdown, html))
}

/// The report's charts, by name: failed requests per second, and the
/// consumers' backlog, over the first repetition.
fn charts(
    summary: &Summary,
    experiment: &Experiment,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    let timeline = &summary.timeline;
    let names: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    let x_max = timeline.seconds as f64;
    let failed: Vec<crate::chart::Line> = names
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            let buckets = timeline.requests.get(*name)?;
            Some((
                name.to_string(),
                index,
                buckets
                    .iter()
                    .enumerate()
                    .map(|(t, (_, failed))| (t as f64, *failed as f64))
                    .collect(),
            ))
        })
        .collect();
    let backlog: Vec<crate::chart::Line> = names
        .iter()
        .enumerate()
        .filter_map(|(index, name)| {
            Some((
                name.to_string(),
                index,
                timeline.backlog.get(*name)?.clone(),
            ))
        })
        .collect();
    let mut charts = vec![(
        "failures",
        crate::chart::lines(
            "Failed requests per second (fault shaded)",
            "failed/s",
            &failed,
            &timeline.faults,
            x_max,
        )?,
    )];
    if !backlog.is_empty() {
        let x_max = backlog
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.0))
            .fold(x_max, f64::max);
        charts.push((
            "backlog",
            crate::chart::lines(
                "Consumer backlog: events on the topic not yet stored",
                "messages",
                &backlog,
                &timeline.faults,
                x_max,
            )?,
        ));
    }
    Ok(charts)
}

/// Analyzes the run folder at `dir` and writes `summary.json`, `report.md`
/// and `report.html` from its files alone.
pub fn write(dir: &Path) -> anyhow::Result<Summary> {
    let summary = analyze::write_summary(dir)?;
    let text = std::fs::read_to_string(dir.join("experiment.toml"))
        .context("cannot read experiment.toml")?;
    let experiment = crate::validate::parse(&text, "experiment.toml")
        .map_err(|_| anyhow::anyhow!("experiment.toml is invalid"))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json"))?)?;
    let (markdown, html) = render(&summary, &experiment, &manifest)?;
    std::fs::write(dir.join("report.md"), markdown)?;
    std::fs::write(dir.join("report.html"), html)?;
    Ok(summary)
}
