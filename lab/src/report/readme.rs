//! The README's figures outside the PoC's table: each a short passage
//! between `<!-- figure:NAME -->` and `<!-- /figure -->`, written from the
//! committed example run (`docs/example-run`) so that no figure in the
//! README is typed by hand. A test compares every passage with what this
//! module writes from the run and rewrites them with `FAULTLINE_BLESS=1`.

use crate::experiment::{ArchitectureSettings, Mode};
use crate::run_folder::summary::BudgetBreakEven;
use crate::run_folder::{RunFiles, Summary};

use super::format::percent;
use crate::analyze::cost::seconds;

/// The marker that opens the passage `name`.
pub fn begin(name: &str) -> String {
    format!("<!-- figure:{name} -->")
}

/// The marker that closes a passage.
pub const END: &str = "<!-- /figure -->";

/// Every passage, by name, from the example run's files and summary.
pub fn passages(
    files: &RunFiles,
    summary: &Summary,
) -> anyhow::Result<Vec<(&'static str, String)>> {
    Ok(vec![
        ("drop-loss", drop_loss(files, summary)?),
        ("drop-data-back", drop_data_back(files, summary)?),
        ("budget-crossings", budget_crossings(files, summary)?),
    ])
}

/// The name of the first Kafka architecture with the consumer `mode`.
fn kafka(files: &RunFiles, mode: Mode) -> anyhow::Result<&str> {
    files
        .experiment
        .architectures
        .iter()
        .find(|a| matches!(a, ArchitectureSettings::Kafka { consumer, .. } if *consumer == mode))
        .map(ArchitectureSettings::name)
        .ok_or_else(|| anyhow::anyhow!("the example run has no {mode:?} Kafka path"))
}

/// What the drop policy lost, against the crashes' lengths and its
/// breaker's window.
fn drop_loss(files: &RunFiles, summary: &Summary) -> anyhow::Result<String> {
    let name = kafka(files, Mode::Drop)?;
    let a = &summary.architectures[name];
    let open_for = files
        .experiment
        .architectures
        .iter()
        .find(|x| x.name() == name)
        .and_then(|x| match x {
            ArchitectureSettings::Kafka { breaker, .. } => Some(breaker.open_for),
            _ => None,
        })
        .ok_or_else(|| anyhow::anyhow!("{name} has no breaker"))?;
    let lengths: Vec<String> = summary
        .faults
        .iter()
        .filter_map(|f| Some(format!("{:.1} s", f.actual_end_s? - f.actual_start_s?)))
        .collect();
    Ok(format!(
        "the example run's drop policy lost {} of the events it acknowledged with crashes of {}, each \
         about twice its breaker's {:.0} s open window",
        percent(a.lost as f64 / a.acknowledged.max(1) as f64),
        join_words(&lengths),
        open_for.0.as_secs_f64()
    ))
}

/// When the drop policy's answers and data were back.
fn drop_data_back(files: &RunFiles, summary: &Summary) -> anyhow::Result<String> {
    let name = kafka(files, Mode::Drop)?;
    let a = &summary.architectures[name];
    let answers = a.recovery_s.map_or("never".into(), |s| {
        format!("{} after the fault", seconds(s))
    });
    let data = a
        .data_recovery_s
        .map_or("never".into(), |s| format!("{} after", seconds(s)));
    Ok(format!(
        "the example run's drop policy had its answers back {answers} and its data {data}"
    ))
}

/// Where REST (with and without retrying clients) and the buffered path
/// change places as the staleness budget grows.
fn budget_crossings(files: &RunFiles, summary: &Summary) -> anyhow::Result<String> {
    let buffered = kafka(files, Mode::Buffered)?;
    let rests: Vec<&str> = files
        .experiment
        .architectures
        .iter()
        .filter(|a| matches!(a, ArchitectureSettings::Rest { .. }))
        .map(ArchitectureSettings::name)
        .collect();
    let pair = |rest: &str| -> Option<&BudgetBreakEven> {
        summary
            .budget_break_even
            .iter()
            .find(|b| (b.a == rest && b.b == buffered) || (b.a == buffered && b.b == rest))
    };
    let said: Vec<String> = rests
        .iter()
        .filter_map(|rest| Some((rest, pair(rest)?)))
        .map(|(rest, b)| {
            let places = match b.crossings_s.as_slice() {
                [] => "never change places".to_string(),
                [at] => format!("change places once, at {}", seconds(*at)),
                [first, .., last] => format!(
                    "change places {} times between {} and {}",
                    b.crossings_s.len(),
                    seconds(*first),
                    seconds(*last)
                ),
            };
            let cheaper_first = b
                .ranges
                .first()
                .and_then(|r| r.cheaper.as_deref())
                .map(|c| format!(" ({c} the cheaper at the smallest budgets)"))
                .unwrap_or_default();
            format!("`{rest}` and `{buffered}` {places}{cheaper_first}")
        })
        .collect();
    Ok(format!(
        "in the example run, as the staleness budget grows from 1 s to 10 min, {}",
        join_words(&said)
    ))
}

/// `a`, `a and b`, `a, b and c`.
fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
