//! What the report says of the repetitions themselves: how their faults
//! varied (`fault_jitter`, `fault_length_jitter`) and the order they ran
//! in, controls among them.

use crate::run_folder::{Manifest, Summary};

/// With `fault_jitter` or `fault_length_jitter`, how far each repetition's
/// faults moved and how much longer they lasted: its first fault as planned
/// against the time and length written.
pub fn faults_varied(
    experiment: &crate::experiment::Experiment,
    summary: &Summary,
) -> Option<String> {
    let (jitter, longer) = (experiment.fault_jitter, experiment.fault_length_jitter);
    if jitter.is_none() && longer.is_none() {
        return None;
    }
    let written = experiment.faults.first()?;
    let (at, length) = (written.at.as_secs_f64(), written.duration.as_secs_f64());
    let mut moved: Vec<(u32, f64, f64)> = Vec::new();
    for fault in &summary.faults {
        if let (Some(start), Some(end)) = (fault.planned_start_s, fault.planned_end_s)
            && !moved.iter().any(|(r, _, _)| *r == fault.repetition)
        {
            moved.push((fault.repetition, start - at, end - start - length));
        }
    }
    moved.sort_by_key(|(r, _, _)| *r);
    let list = |pick: fn(&(u32, f64, f64)) -> f64| {
        moved
            .iter()
            .map(|m| format!("{:+.1} s", pick(m)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if let Some(jitter) = jitter {
        parts.push(format!(
            "moved together by one offset within ±{jitter} ({})",
            list(|m| m.1)
        ));
    }
    if let Some(longer) = longer {
        parts.push(format!(
            "lasted longer or shorter by one offset within ±{longer} ({})",
            list(|m| m.2)
        ));
    }
    Some(format!(
        "Each repetition's faults {}, drawn from the seed, so that the repetitions sample the faults' timing instead of replaying one.",
        parts.join(" and ")
    ))
}

/// The repetitions in the order they ran: `1, control 1, 2`.
pub fn run_order(manifest: &Manifest) -> String {
    let mut controls = 0;
    let each: Vec<String> = manifest
        .repetitions
        .iter()
        .map(|r| {
            if r.control {
                controls += 1;
                format!("control {controls}")
            } else {
                (r.repetition + 1).to_string()
            }
        })
        .collect();
    each.join(", ")
}
