//! The faults' rules: inside the run, possible on this stack, no two at
//! once on one component, and a jitter that keeps them inside the run.

use super::Report;
use crate::experiment::{
    ArchitectureSettings, BrokerChoice, DatabaseChoice, Experiment, FaultKind, Span,
};

/// A `process-kill` names a process of a `service` architecture.
fn check_process_kill(
    experiment: &Experiment,
    architecture: &str,
    process: &str,
    path: &str,
    report: &mut Report<'_>,
) {
    let services: Vec<(&str, Vec<&str>)> = experiment
        .architectures
        .iter()
        .filter_map(|a| match a {
            ArchitectureSettings::Service {
                name, processes, ..
            } => Some((
                name.as_str(),
                processes.iter().map(|p| p.name.as_str()).collect(),
            )),
            _ => None,
        })
        .collect();
    match services.iter().find(|(name, _)| *name == architecture) {
        None => report.at(
            &format!("{path}.architecture"),
            format!("no `service` architecture is named {architecture:?}"),
            Some(format!(
                "service architectures: {}",
                super::walk::quoted(&services.iter().map(|(n, _)| *n).collect::<Vec<_>>())
            )),
        ),
        Some((_, processes)) if !processes.contains(&process) => report.at(
            &format!("{path}.process"),
            format!("{architecture} has no process named {process:?}"),
            Some(format!("its processes: {}", super::walk::quoted(processes))),
        ),
        Some(_) => {}
    }
}

/// The faults: inside the run, possible on this stack, no two at once on
/// one component.
pub(super) fn check_faults(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    let stack = &experiment.stack;
    let has_kafka = experiment
        .architectures
        .iter()
        .any(|a| matches!(a, ArchitectureSettings::Kafka { .. }));
    let has_broker = experiment
        .architectures
        .iter()
        .any(ArchitectureSettings::uses_broker);
    for (i, fault) in experiment.faults.iter().enumerate() {
        let path = format!("faults[{i}]");
        let end = Span(fault.at.0 + fault.duration.0);
        if fault.duration.0.is_zero() {
            report.at(
                &format!("{path}.duration"),
                "a fault must last more than zero".into(),
                None,
            );
        }
        if fault.at >= run {
            report.at(
                &format!("{path}.at"),
                format!(
                    "{:?} starts when the run is over (duration {run})",
                    fault.at.to_string()
                ),
                None,
            );
        } else if end > run {
            report.at(
                &format!("{path}.duration"),
                format!("the fault ends at {end}, after the run ends (duration {run})"),
                Some(format!(
                    "shorten it to at most {}",
                    Span(run.0 - fault.at.0)
                )),
            );
        }
        if fault.kind.needs_local_database() && stack.database == DatabaseChoice::External {
            report.at(
                &format!("{path}.kind"),
                "the database is external: the lab cannot crash, stop or freeze it".into(),
                Some("db-latency and db-blackhole act on the link and still work".into()),
            );
        }
        if let FaultKind::Command(command) = &fault.kind {
            for (key, text) in [("start", &command.start), ("end", &command.end)] {
                if text.trim().is_empty() {
                    report.at(
                        &format!("{path}.{key}"),
                        "the command is empty".into(),
                        Some("give a shell command, e.g. \"kubectl apply -f fault.yaml\"".into()),
                    );
                }
            }
            if command.timeout.0.is_zero() {
                report.at(
                    &format!("{path}.timeout"),
                    "a timeout of zero kills every command".into(),
                    None,
                );
            }
        }
        match &fault.kind {
            FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
            | FaultKind::ConsumerPartition
                if has_kafka && stack.broker == BrokerChoice::External =>
            {
                report.at(
                    &format!("{path}.kind"),
                    "the broker is external: its clients reach it at the addresses it \
                     advertises, not through the lab's proxy"
                        .into(),
                    Some("a `command` fault can act on its network".into()),
                )
            }
            FaultKind::BrokerKill
            | FaultKind::BrokerLatency { .. }
            | FaultKind::BrokerBlackhole
                if !has_broker =>
            {
                report.at(
                    &format!("{path}.kind"),
                    "no architecture uses a broker".into(),
                    None,
                )
            }
            FaultKind::ConsumerPartition | FaultKind::ConsumerKill if !has_kafka => report.at(
                &format!("{path}.kind"),
                "no architecture has a built-in consumer (for your own, use `process-kill`)".into(),
                None,
            ),
            FaultKind::ProcessKill {
                architecture,
                process,
            } => check_process_kill(experiment, architecture, process, &path, report),
            FaultKind::BrokerKill if stack.broker == BrokerChoice::External => report.at(
                &format!("{path}.kind"),
                "the broker is external: the lab cannot kill it".into(),
                None,
            ),
            _ => {}
        }
    }
    if experiment.fault_jitter.is_some() || experiment.fault_length_jitter.is_some() {
        check_jitter(experiment, report);
    }
    for (i, a) in experiment.faults.iter().enumerate() {
        for (j, b) in experiment.faults.iter().enumerate().skip(i + 1) {
            let overlap = a.at.0 < b.at.0 + b.duration.0 && b.at.0 < a.at.0 + a.duration.0;
            if !overlap {
                continue;
            }
            // Commands act on what they say; the lab cannot tell.
            if matches!(a.kind, FaultKind::Command(_)) || matches!(b.kind, FaultKind::Command(_)) {
                continue;
            }
            if std::mem::discriminant(&a.kind) == std::mem::discriminant(&b.kind) {
                report.at(
                    &format!("faults[{j}].at"),
                    format!("overlaps faults[{i}], a fault of the same kind"),
                    None,
                );
            } else if a.kind.target() == b.kind.target() {
                report.at(
                    &format!("faults[{j}].at"),
                    format!(
                        "overlaps faults[{i}] ({}), which also acts on {}: one would end the other early",
                        a.kind.name(),
                        a.kind.target()
                    ),
                    Some(format!(
                        "start it at {} or later",
                        Span(a.at.0 + a.duration.0)
                    )),
                );
            }
        }
    }
}

/// `fault_jitter` moves every fault by up to its length either way, and
/// `fault_length_jitter` makes it longer or shorter by up to its own: each
/// must still start after the run does, last some time and end before the
/// run is over.
fn check_jitter(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration.0;
    let key = if experiment.fault_jitter.is_some() {
        "fault_jitter"
    } else {
        "fault_length_jitter"
    };
    if experiment.faults.is_empty() {
        report.at(
            key,
            "there is no fault to move".into(),
            Some(format!("add a [[faults]] entry, or remove {key}")),
        );
        return;
    }
    let jitter = experiment.fault_jitter.unwrap_or_default();
    let longer = experiment.fault_length_jitter.unwrap_or_default();
    let first = experiment.faults.iter().map(|f| f.at.0).min();
    let shortest = experiment.faults.iter().map(|f| f.duration.0).min();
    let last = experiment
        .faults
        .iter()
        .map(|f| f.at.0 + f.duration.0)
        .max();
    if let Some(first) = first.filter(|first| *first < jitter.0) {
        report.at(
            "fault_jitter",
            format!(
                "{jitter} either way could move the first fault (at {}) before the run starts",
                Span(first)
            ),
            Some(format!("give at most {}", Span(first))),
        );
    }
    if let Some(shortest) = shortest.filter(|s| !longer.0.is_zero() && *s <= longer.0) {
        report.at(
            "fault_length_jitter",
            format!(
                "{longer} shorter could leave the shortest fault ({}) no time at all",
                Span(shortest)
            ),
            Some(format!("give less than {}", Span(shortest))),
        );
    }
    if let Some(last) = last.filter(|last| *last + jitter.0 + longer.0 > run) {
        let what = match (jitter.0.is_zero(), longer.0.is_zero()) {
            (false, false) => format!("{jitter} later and {longer} longer"),
            (false, true) => format!("{jitter} either way"),
            _ => format!("{longer} longer"),
        };
        report.at(
            key,
            format!(
                "{what} could move the last fault's end ({}) past the run's end ({})",
                Span(last),
                Span(run)
            ),
            Some(format!(
                "together give at most {}",
                Span(run.saturating_sub(last))
            )),
        );
    }
}
