//! The report's first paragraph: the scenario's question answered in
//! words, every number in it taken from the summary. Which architecture
//! failed its users, which lost data, which was late, what each cost, and
//! how sure that is.

use super::format::{count, percent};
use crate::analyze::cost::seconds;
use crate::experiment::Phase;
use crate::run_folder::Summary;
use crate::run_folder::summary::ArchitectureSummary;

/// What happened to one architecture's users and data, in one sentence.
fn sentence(name: &str, a: &ArchitectureSummary, staleness: &str) -> String {
    let mut parts = Vec::new();
    match a.phases.get(&Phase::During) {
        Some(during) if during.failed > 0 => parts.push(format!(
            "failed {} of the requests sent during the fault ({})",
            percent(during.error_rate),
            count(during.failed)
        )),
        Some(_) => parts.push("answered every request sent during the fault".to_string()),
        None if a.totals.failed > 0 => parts.push(format!(
            "failed {} of its requests ({})",
            percent(a.totals.error_rate),
            count(a.totals.failed)
        )),
        None => parts.push("answered every request".to_string()),
    }
    if a.lost > 0 {
        parts.push(format!(
            "**silently lost {} acknowledged events ({})**{}",
            count(a.lost),
            percent(a.lost as f64 / a.acknowledged.max(1) as f64),
            if a.lost_with_broker > 0 {
                format!(
                    " ({} of them with the broker, which kept them only in memory when it was killed)",
                    count(a.lost_with_broker)
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
        parts.push(format!(
            "stored {} events more than {staleness} after they were sent{}",
            count(a.stale),
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
    let mut sentences: Vec<String> = order
        .iter()
        .filter_map(|name| Some(sentence(name, summary.architectures.get(*name)?, staleness)))
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
            "Means of {n} repetitions; their 95 % intervals are in section 9 ({}).",
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
}
