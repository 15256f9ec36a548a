//! The repetition a killed runner never ended, as the report shows it: what
//! users saw per architecture and phase, up to the last flush, and the
//! faults as they stood. Nothing of it says stored, lost or late: it was
//! never audited.

use serde::Serialize;

use crate::run_folder::summary::{Answers, Incomplete};

use super::format::{count, ms, pct};

/// The section's model.
#[derive(Debug, Serialize)]
pub struct IncompleteView {
    /// The repetition's number as a person counts (from 1).
    number: u32,
    /// `12.0 s`: the latest intended send time kept.
    sent_until: String,
    /// Each fault as it stood, in words.
    faults: Vec<String>,
    rows: Vec<IncompleteRow>,
}

/// An architecture's requests in one phase (or all of them).
#[derive(Debug, Serialize)]
struct IncompleteRow {
    architecture: String,
    phase: &'static str,
    requests: String,
    ok: String,
    failed: String,
    error_rate: String,
    p50: String,
    p99: String,
    failures: String,
    backlog_peak: String,
}

/// The view of `incomplete`, architectures in the scenario's `order`.
pub fn view(incomplete: &Incomplete, order: &[&str]) -> IncompleteView {
    let mut rows = Vec::new();
    for name in order {
        let Some(a) = incomplete.architectures.get(*name) else {
            continue;
        };
        let backlog = |peak: Option<f64>| {
            peak.map_or_else(|| "-".to_string(), |b| count(b.max(0.0).round() as u64))
        };
        for (phase, answers) in &a.phases {
            let peak = backlog(a.backlog_peaks.get(phase).copied());
            rows.push(row(name, phase.name(), answers, peak));
        }
        if a.phases.len() != 1 {
            rows.push(row(name, "all", &a.totals, backlog(a.backlog_peak)));
        }
    }
    IncompleteView {
        number: incomplete.repetition + 1,
        sent_until: format!("{:.1} s", incomplete.sent_until_s),
        faults: incomplete
            .faults
            .iter()
            .map(|f| {
                let start = f
                    .actual_start_s
                    .map_or_else(|| "never started".to_string(), |s| format!("from {s:.1} s"));
                let end = match (f.actual_start_s, f.actual_end_s) {
                    (None, _) => String::new(),
                    (Some(_), Some(end)) => format!(" to {end:.1} s"),
                    (Some(_), None) => ", still under way when the runner was killed".to_string(),
                };
                format!("{} ({}) {start}{end}", f.kind, f.target)
            })
            .collect(),
        rows,
    }
}

fn row(architecture: &str, phase: &'static str, a: &Answers, backlog: String) -> IncompleteRow {
    let latency =
        |p: fn(&crate::run_folder::summary::Latency) -> f64| ms(a.latency_ms.as_ref().map(p));
    IncompleteRow {
        architecture: architecture.to_string(),
        phase,
        requests: count(a.requests),
        ok: count(a.ok),
        failed: count(a.failed),
        error_rate: pct(a.error_rate),
        p50: latency(|l| l.p50),
        p99: latency(|l| l.p99),
        failures: if a.failures.is_empty() {
            "none".to_string()
        } else {
            a.failures
                .iter()
                .map(|(class, n)| format!("{class} {}", count(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        },
        backlog_peak: backlog,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::experiment::Phase;
    use crate::run_folder::summary::{Answered, FaultSummary};

    fn answers(requests: u64, ok: u64) -> Answers {
        Answers {
            requests,
            ok,
            failed: requests - ok,
            error_rate: (requests - ok) as f64 / requests as f64,
            latency_ms: None,
            failures: BTreeMap::from([("timeout".to_string(), requests - ok)]),
        }
    }

    #[test]
    fn a_fault_under_way_is_said_so_and_each_phase_has_its_row() {
        let incomplete = Incomplete {
            repetition: 1,
            sent_until_s: 6.31,
            faults: vec![FaultSummary {
                repetition: 1,
                kind: "db-freeze".into(),
                target: "postgres".into(),
                planned_start_s: Some(2.0),
                planned_end_s: Some(7.0),
                actual_start_s: Some(2.01),
                actual_end_s: None,
                verified: false,
                effect_ms: None,
                recovery_ms: None,
            }],
            architectures: BTreeMap::from([(
                "rest".to_string(),
                Answered {
                    totals: answers(120, 40),
                    phases: BTreeMap::from([
                        (Phase::Before, answers(40, 40)),
                        (Phase::During, answers(80, 0)),
                    ]),
                    backlog_peak: Some(551.0),
                    backlog_peaks: BTreeMap::from([(Phase::During, 551.0)]),
                },
            )]),
        };
        let view = view(&incomplete, &["rest"]);
        assert_eq!(view.number, 2);
        assert_eq!(view.sent_until, "6.3 s");
        assert_eq!(
            view.faults,
            ["db-freeze (postgres) from 2.0 s, still under way when the runner was killed"]
        );
        let phases: Vec<_> = view
            .rows
            .iter()
            .map(|r| (r.phase, r.failed.as_str()))
            .collect();
        assert_eq!(phases, [("before", "0"), ("during", "80"), ("all", "80")]);
        assert_eq!(view.rows[1].failures, "timeout 80");
        assert_eq!(view.rows[1].error_rate, "100.00 %");
        let backlog: Vec<_> = view.rows.iter().map(|r| r.backlog_peak.as_str()).collect();
        assert_eq!(backlog, ["-", "551", "551"]);
    }
}
