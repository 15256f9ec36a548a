//! The report's first paragraph: the scenario's question answered in
//! words, every number in it taken from the summary. Which architecture
//! failed its users, which lost data, which was late, what each cost, and
//! how sure that is.

use super::format::{count, percent};
use crate::analyze::cost::seconds;
use crate::experiment::Phase;
use crate::run_folder::Summary;
use crate::run_folder::summary::ArchitectureSummary;

/// A count over every repetition, said per repetition: the count itself for
/// one, else its mean (`1,234.5`), with the words that follow the noun
/// (` per repetition on average`, or nothing).
fn per_repetition(total: u64, repetitions: usize) -> (String, &'static str) {
    if repetitions <= 1 {
        return (count(total), "");
    }
    let mean = total as f64 / repetitions as f64;
    let whole = if mean.fract() == 0.0 {
        count(mean as u64)
    } else {
        format!(
            "{}.{}",
            count(mean.trunc() as u64),
            ((mean.fract() * 10.0).round() as u64).min(9)
        )
    };
    (whole, " per repetition on average")
}

/// What happened to one architecture's users and data, in one sentence;
/// counts per repetition (`repetitions` of them), shares of them all.
fn sentence(name: &str, a: &ArchitectureSummary, staleness: &str, repetitions: usize) -> String {
    let mut parts = Vec::new();
    let n = |total: u64| per_repetition(total, repetitions);
    // `1,234` or `1,234.5 per repetition on average`.
    let said = |total: u64| {
        let (number, per) = n(total);
        format!("{number}{per}")
    };
    match a.phases.get(&Phase::During) {
        Some(during) if during.failed > 0 => parts.push(format!(
            "failed {} of the requests sent during the fault ({})",
            percent(during.error_rate),
            said(during.failed)
        )),
        Some(_) => parts.push("answered every request sent during the fault".to_string()),
        None if a.totals.failed > 0 => parts.push(format!(
            "failed {} of its requests ({})",
            percent(a.totals.error_rate),
            said(a.totals.failed)
        )),
        None => parts.push("answered every request".to_string()),
    }
    if a.lost > 0 {
        let interval = a
            .repetitions
            .lost
            .as_ref()
            .and_then(|e| Some((e.low?, e.high?)))
            .map(|(low, high)| {
                format!(
                    ", 95 % interval {}–{}",
                    count(low.round() as u64),
                    count(high.round() as u64)
                )
            })
            .unwrap_or_default();
        let (lost, per) = n(a.lost);
        parts.push(format!(
            "**silently lost {lost} acknowledged events{per} ({}{interval})**{}",
            percent(a.lost as f64 / a.acknowledged.max(1) as f64),
            if a.lost_with_broker > 0 {
                format!(
                    " ({} of them with the broker, which kept them only in memory when it was killed)",
                    said(a.lost_with_broker)
                )
            } else {
                String::new()
            }
        ));
    } else {
        parts.push("lost nothing it acknowledged".to_string());
    }
    if a.stale > 0 {
        let slowest = a.freshness_ms.as_ref().map(|f| f.max / 1000.0);
        let (stale, per) = n(a.stale);
        parts.push(format!(
            "stored {stale} events{per} more than {staleness} after they were sent{}",
            slowest
                .map(|s| format!(" (the slowest after {})", seconds(s)))
                .unwrap_or_default()
        ));
    }
    if let (Some(answers), Some(data)) = (a.recovery_s, a.data_recovery_s)
        && data > answers + 5.0
    {
        parts.push(format!(
            "its answers were back {} after the fault but its data only {} after",
            seconds(answers),
            seconds(data)
        ));
    }
    let last = parts.pop().unwrap_or_default();
    if parts.is_empty() {
        format!("**{name}** {last}.")
    } else {
        format!("**{name}** {} and {last}.", parts.join(", "))
    }
}

/// The paragraph, as sentences: one per architecture, then the cost and how
/// sure the figures are. Markdown emphasis (`**`) marks the names and the
/// losses.
pub fn answer(summary: &Summary, order: &[&str], staleness: &str) -> Vec<String> {
    if summary.architectures.is_empty() {
        return Vec::new();
    }
    let mut sentences: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let a = summary.architectures.get(*name)?;
            Some(sentence(name, a, staleness, summary.repetitions))
        })
        .collect();
    let costs: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let cost = &summary.architectures.get(*name)?.cost;
            Some(format!(
                "{name} {} {}",
                super::format::money(cost.per_outage),
                cost.currency
            ))
        })
        .collect();
    if !costs.is_empty() {
        sentences.push(format!(
            "Revenue lost per outage, counting failed, lost and late events: {}.",
            costs.join(", ")
        ));
    }
    sentences.push(match summary.repetitions {
        0 | 1 => "One repetition: a second run could differ (no interval).".to_string(),
        n => format!(
            "Counts and money are per repetition, means of {n}, shares of them all; their 95 % \
             intervals are in section 9 ({}).",
            if summary.interval_method == "t" {
                "Student-t"
            } else {
                "bootstrap"
            }
        ),
    });
    sentences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_with_separators() {
        assert_eq!(count(15000), "15,000");
        assert_eq!(count(999), "999");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(percent(0.6004), "60.0 %");
        assert_eq!(percent(0.0004), "under 0.1 %");
    }

    #[test]
    fn counts_are_said_per_repetition() {
        assert_eq!(per_repetition(3020, 1), ("3,020".into(), ""));
        assert_eq!(
            per_repetition(3020, 2),
            ("1,510".into(), " per repetition on average")
        );
        assert_eq!(per_repetition(3020, 3).0, "1,006.7");
    }
}
