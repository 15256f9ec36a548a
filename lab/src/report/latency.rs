//! Section 4's notes: a rise of latency after the fault explained only as
//! far as the data go. The broker's acknowledgement and a backlog are
//! named beside the rise only where nothing contradicts them; the controls
//! say whether the fault caused it (the change beyond theirs, with its
//! interval); a figure that moves with no fault is called drift, without a
//! cause.

use std::collections::BTreeMap;

use super::format::count;
use crate::experiment::Phase;
use crate::run_folder::Summary;
use crate::run_folder::summary::{ChangeBeyondControl, ControlSummary, Drift, PhaseSummary};

/// A backlog smaller than this is a batch or two in flight, not one to drain.
const BACKLOG: f64 = 100.0;

/// The p99 of successful requests in `phase`, if any.
fn p99(phases: &BTreeMap<Phase, PhaseSummary>, phase: Phase) -> Option<f64> {
    phases.get(&phase)?.latency_ms.as_ref().map(|l| l.p99)
}

/// The drift found for `figure` of `subject`, if it moved.
fn drifted<'a>(drift: &'a [Drift], figure: &str, subject: &str) -> Option<&'a Drift> {
    drift
        .iter()
        .find(|d| d.drifted && d.figure == figure && d.subject == subject)
}

/// How the broker's CPU moved with no fault, where it drifted: `went from
/// 0.19 to 1.13 cores over the same seconds`.
fn broker_cpu(drift: &[Drift]) -> Option<String> {
    drifted(drift, "cpu_cores", "broker").map(|d| {
        format!(
            "went from {:.2} to {:.2} cores over the same seconds",
            d.first, d.last
        )
    })
}

/// Where drift was looked for, in words.
fn source(d: &Drift) -> String {
    format!(
        "{} from {:.0} s to {:.0} s",
        if d.source == "control" {
            "in the controls"
        } else {
            "before the fault"
        },
        d.from_s,
        d.to_s
    )
}

/// `×r [low–high]`, or `×r` without an interval.
fn ratio_with_interval(change: &ChangeBeyondControl) -> String {
    match (change.low, change.high) {
        (Some(low), Some(high)) => format!("×{:.2} [{low:.2}–{high:.2}]", change.ratio),
        _ => format!("×{:.2}", change.ratio),
    }
}

/// What the controls say of a change of the faulted runs.
fn against_controls(change: &ChangeBeyondControl, control: &ControlSummary) -> String {
    let geometric = |v: &[f64]| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
    let controls = match control.repetitions {
        1 => "the control".to_string(),
        n => format!("the {n} controls"),
    };
    let head = format!(
        "over the same seconds {controls} went ×{:.2}, so the fault's own change is {}",
        geometric(&change.control),
        ratio_with_interval(change)
    );
    match change.beyond_drift() {
        Some(true) => format!("{head}: beyond the controls' drift, the fault's doing."),
        Some(false) => format!(
            "{head}: the interval holds ×1, so this run does not tell the change from drift."
        ),
        None => format!(
            "{head}, with no interval (it takes two faulted runs and two controls or more: \
             `repetitions` and `control = N`), so this run does not attribute it."
        ),
    }
}

/// One sentence per architecture whose p99 after the fault is more than
/// twice its p99 before, in the scenario's `order`.
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
        let latency_drift = drifted(&summary.drift, "latency_p99_ms", name);
        if let (Some(ack_before), Some(ack_after)) = (
            a.produce_ack_ms.get(&Phase::Before),
            a.produce_ack_ms.get(&Phase::After),
        ) {
            note.push_str(&match drifted(&summary.drift, "produce_ack_ms", name) {
                Some(d) => format!(
                    "; the broker's acknowledgement of a produce went from {ack_before:.1} to \
                     {ack_after:.1} ms, but it moves with no fault too ({:.1} → {:.1} ms {})",
                    d.first,
                    d.last,
                    source(d)
                ),
                None if *ack_after >= 1.5 * ack_before && latency_drift.is_none() => format!(
                    "; the broker's acknowledgement of a produce slowed too, from {ack_before:.1} \
                     to {ack_after:.1} ms on average: the rise is on the broker's side"
                ),
                None => format!(
                    "; the broker's acknowledgement of a produce went from {ack_before:.1} to \
                     {ack_after:.1} ms on average"
                ),
            });
        }
        // A backlog is named beside the rise only where no architecture
        // without one slowed as much and the latency does not drift anyway:
        // otherwise the data contradict it.
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
        match (
            latency_drift,
            alike,
            a.peak_backlog.filter(|p| *p > BACKLOG),
        ) {
            (Some(d), _, _) => note.push_str(&format!(
                "; its p99 moves with no fault too ({:.1} → {:.1} ms {}): drift, {}",
                d.first,
                d.last,
                source(d),
                match broker_cpu(&summary.drift) {
                    Some(cpu) => format!("beside the broker's CPU, which {cpu}"),
                    None => "whose cause this run does not measure".to_string(),
                }
            )),
            (None, Some((other, other_rise)), _) => note.push_str(&format!(
                "; {other}, with no backlog to drain, slowed too (×{other_rise:.1}): the rise is \
                 not a backlog's doing"
            )),
            (None, None, Some(peak)) => note.push_str(&format!(
                " (the consumers were draining a backlog of up to {} events on the same machine)",
                count(peak as u64)
            )),
            (None, None, None) => {}
        }
        let change = a
            .control
            .as_ref()
            .and_then(|c| Some((c.latency_p99_change.as_ref()?, c)));
        note.push_str(&match change {
            Some((change, control)) => format!("; {}", against_controls(change, control)),
            None if a.control.is_some() => {
                "; the controls have no p99 before and after to compare.".to_string()
            }
            None => "; without a control repetition (`control = true` in the scenario) this run \
                     cannot tell the fault's effect from a stack that slows over a run."
                .to_string(),
        });
        notes.push(note);
    }
    notes
}

/// One sentence naming every figure that moved with no fault, or `None`.
pub fn drift_note(summary: &Summary) -> Option<String> {
    let moved: Vec<String> = summary
        .drift
        .iter()
        .filter(|d| d.drifted)
        .map(|d| {
            let unit = if d.figure == "cpu_cores" {
                " cores"
            } else {
                " ms"
            };
            let what = match d.figure.as_str() {
                "latency_p99_ms" => "latency p99",
                "produce_ack_ms" => "produce acknowledgement",
                _ => "CPU",
            };
            format!(
                "{}'s {what} {:.2} → {:.2}{unit} (×{:.2})",
                d.subject,
                d.first,
                d.last,
                d.last / d.first
            )
        })
        .collect();
    let first = summary.drift.first()?;
    Some(if moved.is_empty() {
        format!(
            "At constant load with no fault ({}), no figure followed moved by half or more \
             between the first fifth of those seconds and the last.",
            source(first)
        )
    } else {
        format!(
            "**Drift**: at constant load with no fault ({}), {} moved by half or more between the \
             first fifth of those seconds and the last: {}. A change of these across the fault \
             is not the fault's alone; {}.",
            source(first),
            if moved.len() == 1 {
                "one figure"
            } else {
                "these figures"
            },
            moved.join("; "),
            match broker_cpu(&summary.drift) {
                Some(cpu) => format!(
                    "the broker's CPU {cpu}: a broker whose cost grows as it holds more of the \
                     log slows every path through it, and on a shared machine the others"
                ),
                None => "this run does not measure what makes them move".to_string(),
            }
        )
    })
}

/// A row of the fault's own changes: one figure of one architecture.
#[derive(Debug, serde::Serialize)]
pub struct ChangeRow {
    architecture: String,
    figure: &'static str,
    faulted: String,
    control: String,
    own: String,
    verdict: &'static str,
}

/// The fault's own change of each architecture's p99 and produce
/// acknowledgement, beyond the controls', in `order`.
pub fn change_rows(summary: &Summary, order: &[&str]) -> Vec<ChangeRow> {
    let geometric = |v: &[f64]| {
        let each: Vec<String> = v.iter().map(|x| format!("×{x:.2}")).collect();
        let mean = (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
        if v.len() == 1 {
            format!("×{mean:.2}")
        } else {
            format!("×{mean:.2} ({})", each.join(", "))
        }
    };
    let mut rows = Vec::new();
    for name in order {
        let Some(control) = summary
            .architectures
            .get(*name)
            .and_then(|a| a.control.as_ref())
        else {
            continue;
        };
        for (figure, change) in [
            ("latency p99", &control.latency_p99_change),
            ("produce acknowledgement", &control.produce_ack_change),
        ] {
            let Some(change) = change else { continue };
            rows.push(ChangeRow {
                architecture: name.to_string(),
                figure,
                faulted: geometric(&change.faulted),
                control: geometric(&change.control),
                own: ratio_with_interval(change),
                verdict: match change.beyond_drift() {
                    Some(true) => "the fault's",
                    Some(false) => "not told from drift",
                    None => "no interval",
                },
            });
        }
    }
    rows
}

/// A row of the drift table.
#[derive(Debug, serde::Serialize)]
pub struct DriftRow {
    subject: String,
    figure: &'static str,
    first: String,
    last: String,
    ratio: String,
    drifted: bool,
}

/// Every figure followed with no fault, drifted or not.
pub fn drift_rows(summary: &Summary) -> Vec<DriftRow> {
    summary
        .drift
        .iter()
        .map(|d| {
            let (figure, value): (&'static str, fn(f64) -> String) = match d.figure.as_str() {
                "latency_p99_ms" => ("latency p99", |v| format!("{v:.1} ms")),
                "produce_ack_ms" => ("produce acknowledgement", |v| format!("{v:.2} ms")),
                _ => ("CPU", |v| format!("{v:.3} cores")),
            };
            DriftRow {
                subject: d.subject.clone(),
                figure,
                first: value(d.first),
                last: value(d.last),
                ratio: if d.first > 0.0 {
                    format!("×{:.2}", d.last / d.first)
                } else {
                    "n/a".into()
                },
                drifted: d.drifted,
            }
        })
        .collect()
}

/// A delay of the driver's, in milliseconds: two decimals below 10 ms.
fn fine_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        super::format::ms(Some(v))
    }
}

/// How late the driver sent each architecture's requests after their
/// intended times, in words. `None` without the figure (k6, or nothing
/// sent).
pub fn sent_late_note(
    summary: &Summary,
    order: &[&str],
    connections: Option<u32>,
) -> Option<String> {
    let each: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let late = summary.architectures.get(*name)?.sent_late_ms.as_ref()?;
            Some(format!(
                "{name} p50 {}, p99 {}, max {}",
                fine_ms(late.p50),
                fine_ms(late.p99),
                fine_ms(late.max)
            ))
        })
        .collect();
    let waits = connections.map_or(String::new(), |n| {
        format!(" (a wait for one of its {n} connections to each architecture included)")
    });
    (!each.is_empty()).then(|| {
        format!(
            "How late the lab's driver sent each request after its intended time{waits}, a \
             delay that is part of every latency on this page (which counts from the intended \
             time): {}.",
            each.join("; ")
        )
    })
}

/// Where the driver's p99 delay is half the answers' p99 latency or more:
/// that it fell behind, and that those latency figures' tail is as much its
/// own as the architecture's.
/// With `connections` set, the delay is mostly the wait for one of them,
/// and the note says so.
pub fn driver_behind_note(
    summary: &Summary,
    order: &[&str],
    connections: Option<u32>,
) -> Option<String> {
    let behind: Vec<String> = order
        .iter()
        .filter_map(|name| {
            let a = summary.architectures.get(*name)?;
            let late = a.sent_late_ms.as_ref()?;
            let p99 = a.totals.latency_ms.as_ref()?.p99;
            (p99 > 0.0 && late.p99 >= 0.5 * p99).then(|| {
                format!(
                    "{name} (its p99 delay {} is ×{:.2} the answers' p99 latency, {})",
                    fine_ms(late.p99),
                    late.p99 / p99,
                    fine_ms(p99)
                )
            })
        })
        .collect();
    (!behind.is_empty()).then(|| match connections {
        None => format!(
            "**The lab's driver fell behind its schedule for {}: the tail of those latency \
             figures is as much the driver's own delay as the architecture's.**",
            behind.join(", ")
        ),
        Some(n) => format!(
            "**Requests waited to be sent for {}: with at most {n} connections each, a request \
             due while all carried one waited for the first free; the tail of those latency \
             figures is that wait as much as the architecture's answer.**",
            behind.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::example_summary;
    use crate::run_folder::summary::SentLate;

    #[test]
    fn the_driver_is_said_to_fall_behind_only_when_its_delay_rivals_the_tail() {
        // A real run's summary (the example run's), its delays set here.
        let mut summary = example_summary();
        let names: Vec<String> = summary.architectures.keys().cloned().collect();
        let order: Vec<&str> = names.iter().map(String::as_str).collect();
        for a in summary.architectures.values_mut() {
            a.sent_late_ms = None;
        }
        assert_eq!(sent_late_note(&summary, &order, None), None);
        assert_eq!(driver_behind_note(&summary, &order, None), None);
        let p99 = |summary: &Summary, name: &str| {
            summary.architectures[name]
                .totals
                .latency_ms
                .as_ref()
                .unwrap()
                .p99
        };
        let (first, second) = (order[0], order[1]);
        let (p99_first, p99_second) = (p99(&summary, first), p99(&summary, second));
        summary.architectures.get_mut(first).unwrap().sent_late_ms = Some(SentLate {
            p50: 0.01,
            p99: 0.1 * p99_first,
            max: p99_first,
            sent: 10,
        });
        summary.architectures.get_mut(second).unwrap().sent_late_ms = Some(SentLate {
            p50: 0.01,
            p99: 0.6 * p99_second,
            max: p99_second,
            sent: 10,
        });
        let note = sent_late_note(&summary, &order, None).unwrap();
        assert!(note.contains(&format!("{first} p50 0.01 ms")), "{note}");
        assert!(note.contains(&format!("{second} p50 0.01 ms")), "{note}");
        let behind = driver_behind_note(&summary, &order, None).unwrap();
        assert!(
            behind.contains(&format!("schedule for {second} ")),
            "{behind}"
        );
        assert!(!behind.contains(first), "{behind}");
        // With bounded connections the delay is named for what it is.
        let waited = driver_behind_note(&summary, &order, Some(64)).unwrap();
        assert!(waited.contains("at most 64 connections"), "{waited}");
        assert!(!waited.contains("fell behind"), "{waited}");
        let note = sent_late_note(&summary, &order, Some(64)).unwrap();
        assert!(note.contains("one of its 64 connections"), "{note}");
        // Within the answers' latency for both: nothing to say.
        summary.architectures.get_mut(second).unwrap().sent_late_ms = None;
        assert_eq!(driver_behind_note(&summary, &order, None), None);
    }

    #[test]
    fn a_latency_drift_is_set_beside_the_brokers_cpu_where_that_drifted_too() {
        // The example run: with no fault, Kafka's p99 and the broker's CPU
        // both rose through the controls.
        let mut summary = example_summary();
        let broker = summary
            .drift
            .iter()
            .find(|d| d.figure == "cpu_cores" && d.subject == "broker")
            .unwrap()
            .clone();
        assert!(broker.drifted);
        let cpu = format!(
            "went from {:.2} to {:.2} cores over the same seconds",
            broker.first, broker.last
        );
        let kafka = |summary: &Summary| {
            notes(summary, &["kafka-buffered"])
                .pop()
                .expect("kafka-buffered's p99 rose after the fault")
        };
        let note = kafka(&summary);
        assert!(
            note.contains(&format!("drift, beside the broker's CPU, which {cpu}")),
            "{note}"
        );
        let drift = drift_note(&summary).unwrap();
        assert!(
            drift.contains(&format!("the broker's CPU {cpu}")),
            "{drift}"
        );
        // A broker whose CPU held steady is not named.
        for d in &mut summary.drift {
            if d.subject == "broker" {
                d.drifted = false;
            }
        }
        let note = kafka(&summary);
        assert!(
            note.contains("whose cause this run does not measure"),
            "{note}"
        );
        assert!(!note.contains("broker's CPU"), "{note}");
        let drift = drift_note(&summary).unwrap();
        assert!(
            drift.contains("does not measure what makes them move"),
            "{drift}"
        );
    }
}
