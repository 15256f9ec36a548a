//! The report's templates and the formatters they and the notes share.

use minijinja::{Environment, Value};

const MARKDOWN: &str = include_str!("../../templates/report.md.j2");
const HTML: &str = include_str!("../../templates/report.html.j2");
const INDEX: &str = include_str!("../../templates/index.html.j2");
const SWEEP_MARKDOWN: &str = include_str!("../../templates/sweep.md.j2");
const SWEEP_HTML: &str = include_str!("../../templates/sweep.html.j2");
const STYLE: &str = include_str!("../../templates/style.css");

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template("report.md", MARKDOWN)
        .expect("the Markdown template parses");
    env.add_template("report.html", HTML)
        .expect("the HTML template parses");
    env.add_template("index.html", INDEX)
        .expect("the index template parses");
    env.add_template("sweep.md", SWEEP_MARKDOWN)
        .expect("the sweep's Markdown template parses");
    env.add_template("sweep.html", SWEEP_HTML)
        .expect("the sweep's HTML template parses");
    env.add_global("style", Value::from_safe_string(STYLE.to_string()));
    // Generated sentences with Markdown emphasis, for the HTML report:
    // escaped, then `**x**` as <strong>x</strong> and `` `x` `` as <code>x</code>.
    env.add_filter("strong", |text: String| {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let html = wrap_between(&wrap_between(&escaped, "**", "strong"), "`", "code");
        Value::from_safe_string(html)
    });
    // A figure with its interval (`ci`), the interval on a line of its own:
    // a table of many of them fits a window.
    env.add_filter("stacked", |text: String| {
        let escaped = text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        Value::from_safe_string(match escaped.split_once(" [") {
            Some((figure, interval)) => {
                format!("{figure}<br><span class=\"interval\">[{interval}</span>")
            }
            None => escaped,
        })
    });
    // Text from the scenario in Markdown: HTML in it is shown, not rendered.
    env.add_filter("md", |text: String| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    });
    env.add_function("pct", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v))
    });
    env.add_function("ms", |v: Option<f64>| ms(v));
    env.add_function("secs", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("{v:.1} s"))
    });
    env.add_function("money", |v: Option<f64>| v.map_or("-".into(), money));
    env.add_function("num", |v: Option<f64>| num(v));
    // A time after the fault: `n/a` where the figure does not apply (no
    // backlog, no fault), `never` where it applies and did not happen
    // within the run.
    env.add_function("since_fault", |v: Option<f64>, applies: bool| match v {
        Some(v) => format!("{v:.1} s"),
        None if applies => "never".into(),
        None => "n/a".into(),
    });
    env.add_function("times", |v: Option<f64>| {
        v.map_or("-".into(), |v| format!("×{v:.2}"))
    });
    env.add_function("ci", |e: Option<Value>, kind: String| -> String {
        let Some(e) = e.filter(|e| !e.is_none()) else {
            return "-".into();
        };
        let get = |k: &str| e.get_attr(k).ok().and_then(|v| f64::try_from(v).ok());
        let show = |v: Option<f64>| match kind.as_str() {
            "pct" => v.map_or("-".into(), |v| format!("{:.2} %", 100.0 * v)),
            "ms" => ms(v),
            "s" => v.map_or("-".into(), |v| format!("{v:.1} s")),
            _ => num(v),
        };
        match (get("low"), get("high")) {
            (Some(low), Some(high)) => {
                format!(
                    "{} [{} – {}]",
                    show(get("mean")),
                    show(Some(low)),
                    show(Some(high))
                )
            }
            _ => show(get("mean")),
        }
    });
    env
}

pub(crate) fn pct(v: f64) -> String {
    format!("{:.2} %", 100.0 * v)
}

pub(crate) fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v >= 10_000.0 => format!("{:.1} s", v / 1000.0),
        Some(v) => format!("{v:.1} ms"),
    }
}

/// A count with thousands separators: `15,000`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.001 {
        "under 0.1 %".into()
    } else {
        format!("{:.1} %", 100.0 * share)
    }
}

/// An amount of money as every part of a report prints it: whole units,
/// a half rounded away from zero, thousands separated (`11,263`).
pub fn money(v: f64) -> String {
    let whole = v.round();
    let sign = if whole < 0.0 { "-" } else { "" };
    format!("{sign}{}", count(whole.abs() as u64))
}

/// A number as the reports print it: whole numbers without decimals, others with two.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// `text` with every second stretch between `mark`s wrapped in `<tag>`:
/// `a **b** c` → `a <strong>b</strong> c`.
fn wrap_between(text: &str, mark: &str, tag: &str) -> String {
    text.split(mark)
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                format!("<{tag}>{part}</{tag}>")
            } else {
                part.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer, the tables and the sweep print one amount alike: a half
    /// away from zero (Rust's `{:.0}` rounds it to even).
    #[test]
    fn money_rounds_a_half_away_from_zero_and_groups_thousands() {
        assert_eq!(money(11_262.5), "11,263");
        assert_eq!(money(2.5), "3");
        assert_eq!(money(1_234_567.49), "1,234,567");
        assert_eq!(money(-0.4), "0");
        assert_eq!(money(-2.5), "-3");
        assert_eq!(format!("{:.0}", 2.5), "2");
    }
}
