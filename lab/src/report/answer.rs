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

/// A backlog smaller than this is a batch or two in flight, not one to drain.
const BACKLOG: f64 = 100.0;

/// The p99 of successful requests in `phase`, if any.
fn p99(
    phases: &std::collections::BTreeMap<Phase, crate::run_folder::summary::PhaseSummary>,
    phase: Phase,
) -> Option<f64> {
    phases.get(&phase)?.latency_ms.as_ref().map(|l| l.p99)
}

/// A rise of an architecture's latency after the fault, explained from the
/// figures: one sentence per architecture whose p99 after the fault is more
/// than twice its p99 before, with the broker's acknowledgement time over
/// the same phases and, when the run has one, the control's.
pub fn notes(summary: &Summary, order: &[&str]) -> Vec<String> {
    let mut notes = Vec::new();
    for name in order {
        let Some(a) = summary.architectures.get(*name) else {
            continue;
        };
        let (Some(before), Some(after)) =
            (p99(&a.phases, Phase::Before), p99(&a.phases, Phase::After))
        else {
            continue;
        };
        if before <= 0.0 || after < 2.0 * before {
            continue;
        }
        let rise = after / before;
        let mut note = format!(
            "**{name}**'s latency p99 after the fault ({after:.1} ms) is {rise:.1}× its p99 \
             before ({before:.1} ms)"
        );
        if let (Some(ack_before), Some(ack_after)) = (
            a.produce_ack_ms.get(&Phase::Before),
            a.produce_ack_ms.get(&Phase::After),
        ) {
            note.push_str(&if *ack_after >= 1.5 * ack_before {
                format!(
                    "; the broker's acknowledgement of a produce slowed too, from {ack_before:.1} \
                     to {ack_after:.1} ms on average: the rise is on the broker's side"
                )
            } else {
                format!(
                    "; the broker's acknowledgement of a produce did not slow as much \
                     ({ack_before:.1} → {ack_after:.1} ms on average): the rise is elsewhere"
                )
            });
        }
        // A backlog is named beside the rise only where no architecture
        // without one slowed as much: otherwise the data contradict it.
        let alike = order
            .iter()
            .filter(|other| *other != name)
            .find_map(|other| {
                let o = summary.architectures.get(*other)?;
                if o.peak_backlog.is_some_and(|p| p > BACKLOG) {
                    return None;
                }
                let (b, a) = (
                    p99(&o.phases, Phase::Before)?,
                    p99(&o.phases, Phase::After)?,
                );
                (b > 0.0 && a / b >= 0.5 * rise).then(|| (*other, a / b))
            });
        match (alike, a.peak_backlog.filter(|p| *p > BACKLOG)) {
            (Some((other, other_rise)), _) => note.push_str(&format!(
                "; {other}, with no backlog to drain, slowed too (×{other_rise:.1}): the rise is \
                 not a backlog's doing"
            )),
            (None, Some(peak)) => note.push_str(&format!(
                " (the consumers were draining a backlog of up to {} events on the same machine)",
                count(peak as u64)
            )),
            (None, None) => {}
        }
        let control = a.control.as_ref().and_then(|c| {
            Some((
                p99(&c.phases, Phase::Before)?,
                p99(&c.phases, Phase::After)?,
            ))
        });
        note.push_str(&match control {
            Some((c_before, c_after)) if c_before > 0.0 => {
                let c_rise = c_after / c_before;
                format!(
                    "; in the control, over the same seconds and without the fault, it went \
                     from {c_before:.1} to {c_after:.1} ms (×{c_rise:.1}): {}.",
                    if c_rise >= 0.5 * rise {
                        "drift, which the fault did not cause"
                    } else {
                        "so the fault caused it"
                    }
                )
            }
            _ => "; without a control repetition (`control = true` in the scenario) this run \
                  cannot tell the fault's effect from a stack that slows over a run."
                .to_string(),
        });
        notes.push(note);
    }
    notes
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
