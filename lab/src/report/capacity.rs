//! A stepped rate's capacity in the report: the steps table and the notes
//! on the knee, the machine's cores and the drain.

use serde::Serialize;

use super::cpu::short_process;
use super::format::{count, ms, pct};
use crate::run_folder::rows::Process;
use crate::run_folder::summary::{Capacity, CapacityStep, DrainRate};

/// One step of a stepped rate, as the report's capacity table shows it.
#[derive(Serialize)]
pub struct CapacityRow {
    architecture: String,
    offered: String,
    ok_per_s: String,
    errors: String,
    p50: String,
    p99: String,
    held: bool,
    /// The cores every sampled process kept busy, of the machine's.
    busy: String,
    /// CPU per request of each process, `process µs` joined.
    cpu: String,
    /// Its pool: time held per write, connections busy.
    pool: String,
}

impl CapacityRow {
    pub(super) fn all(name: &str, capacity: &Capacity) -> Vec<Self> {
        capacity
            .steps
            .iter()
            .map(|s| Self {
                architecture: name.to_string(),
                offered: format!("{:.0}", s.rps),
                ok_per_s: format!("{:.0}", s.ok_per_s),
                errors: pct(s.error_rate),
                p50: ms(s.latency_ms.as_ref().map(|l| l.p50)),
                p99: ms(s.latency_ms.as_ref().map(|l| l.p99)),
                held: s.held,
                busy: if s.cpu_cores.is_empty() {
                    "-".into()
                } else {
                    format!(
                        "{:.2} of {}",
                        s.cpu_cores.values().sum::<f64>(),
                        capacity.machine_cores
                    )
                },
                cpu: s
                    .cpu_us_per_request
                    .iter()
                    .map(|(process, us)| format!("{process} {us:.0} µs"))
                    .collect::<Vec<_>>()
                    .join(", "),
                pool: super::database::step_cell(s.database.as_ref()),
            })
            .collect()
    }
}

/// An architecture's knee, what the step past it looked like, and the knee
/// as a ratio to what PostgreSQL committed alone in the same run.
pub(super) fn capacity_note(name: &str, capacity: &Capacity) -> String {
    let knee = knee_note(name, capacity);
    let Some(reference) = &capacity.reference else {
        return knee;
    };
    let commits = format!(
        "the {} single-row commits a second PostgreSQL made alone before the load \
         ({} connections, {:.0} s{})",
        count(reference.commits_per_s.round() as u64),
        reference.clients,
        reference.seconds,
        if reference.repetitions > 1 {
            format!(", the mean of {} repetitions", reference.repetitions)
        } else {
            String::new()
        }
    );
    // Every step held: the knee lies at the highest step or above.
    let at_least = if capacity.first_missed_rps.is_none() {
        "at least "
    } else {
        ""
    };
    let note = match reference.knee_ratio {
        Some(ratio) => format!(
            "{knee} Its knee is {at_least}**{ratio:.2}×** {commits}, a ratio that carries to \
             another machine."
        ),
        None => format!("{knee} For comparison, {commits}."),
    };
    let mut ways = Vec::new();
    if let Some(multi) = reference.multi_row_rows_per_s.filter(|r| *r > 0.0) {
        ways.push(format!(
            "{} rows a second in commits of {} rows{}",
            count(multi.round() as u64),
            reference.rows_per_commit,
            capacity
                .knee_rps
                .map(|knee| format!(" (the knee is {at_least}**{:.2}×** that)", knee / multi))
                .unwrap_or_default()
        ));
    }
    if let Some(copy) = reference.copy_rows_per_s {
        ways.push(format!(
            "{} rows a second by COPY of {} rows a transaction from one connection",
            count(copy.round() as u64),
            count(u64::from(reference.copy_rows))
        ));
    }
    if ways.is_empty() {
        note
    } else {
        format!("{note} Alone, it also stored {}.", ways.join(", and "))
    }
}

/// How fast an architecture stored its backlog, beside PostgreSQL's own
/// COPY rate when the run measured it.
pub(super) fn drain_note(name: &str, drain: &DrainRate) -> String {
    let stored = format!(
        "**{name}** stored the backlog of the fault ({} events acknowledged before it was over) \
         at **{} events a second** over {:.2} s{}",
        count(drain.backlog_events.round() as u64),
        count(drain.events_per_s.round() as u64),
        drain.seconds,
        if drain.repetitions > 1 {
            format!(", the mean of {} repetitions", drain.repetitions)
        } else {
            String::new()
        }
    );
    match (drain.copy_ratio, drain.copy_rows_per_s) {
        (Some(ratio), Some(copy)) => format!(
            "{stored}: **{ratio:.2}×** the {} rows a second PostgreSQL took alone by COPY before \
             the load, a ratio that carries to another machine.",
            count(copy.round() as u64)
        ),
        _ => format!(
            "{stored}. With `capacity = {{ reference = \"5s\" }}` the run also measures how \
             fast PostgreSQL alone takes rows by COPY, to set this beside."
        ),
    }
}

/// An architecture's knee, and what the step past it looked like.
pub(super) fn knee_note(name: &str, capacity: &Capacity) -> String {
    let step = |rps: f64| capacity.steps.iter().find(|s| s.rps == rps);
    let how = |s: &CapacityStep| {
        format!(
            "p99 {}, {} failed",
            ms(s.latency_ms.as_ref().map(|l| l.p99)),
            pct(s.error_rate)
        )
    };
    let held = match capacity.knee_rps.and_then(step) {
        Some(knee) => format!(
            "**{name}** held up to **{:.0} req/s** ({})",
            knee.rps,
            how(knee)
        ),
        None => format!("**{name}** held none of the steps"),
    };
    let Some(missed) = capacity.first_missed_rps.and_then(step) else {
        return format!("{held}, the highest step offered: its knee lies higher.");
    };
    let mut missed_at = format!("{held}; at {:.0} req/s: {}.", missed.rps, how(missed));
    if let Some(full) = full_machine(name, missed, capacity.machine_cores) {
        missed_at = format!("{missed_at} {full}");
    }
    if let Some(pool) = &missed.database {
        let below = capacity
            .steps
            .iter()
            .rev()
            .find(|s| s.rps < missed.rps)
            .and_then(|s| s.database.as_ref());
        missed_at = format!(
            "{missed_at} {}",
            super::database::step_note(pool, missed.rps, below)
        );
    }
    // A higher step held again (the steps are in rising order): the miss
    // may have been a passing stall.
    match capacity
        .steps
        .iter()
        .rev()
        .find(|s| s.held && s.rps > missed.rps)
    {
        Some(again) => format!(
            "{missed_at} Yet a higher step held: {:.0} req/s ({}); the miss may be a passing stall \
             (a checkpoint, a pause of the machine), not the limit; one run cannot tell, \
             repetitions can.",
            again.rps,
            how(again)
        ),
        None => missed_at,
    }
}

/// The share of the machine's cores the sampled processes keep busy from
/// which a step's miss is the machine's: the kernel's own work and every
/// process not sampled take the rest.
const FULL_MACHINE: f64 = 0.85;

/// A sentence saying the machine was full at `step`, and what filled it,
/// when the sampled processes kept [`FULL_MACHINE`] of its cores busy.
pub(super) fn full_machine(name: &str, step: &CapacityStep, machine_cores: u32) -> Option<String> {
    let busy: f64 = step.cpu_cores.values().sum();
    if machine_cores == 0 || busy < FULL_MACHINE * f64::from(machine_cores) {
        return None;
    }
    let mut parts: Vec<(&f64, &String)> = step.cpu_cores.iter().map(|(p, c)| (c, p)).collect();
    parts.sort_by(|a, b| b.0.total_cmp(a.0));
    let parts: Vec<String> = parts
        .into_iter()
        .filter(|(cores, _)| **cores >= 0.05)
        .map(|(cores, process)| {
            // Older run folders sampled the driver with the rest of the lab.
            let name = match process.as_str() {
                "lab" if !step.cpu_cores.contains_key(Process::Driver.name()) => {
                    "the lab (load driver, scraping)"
                }
                _ => short_process(process),
            };
            format!("{name} {cores:.2}")
        })
        .collect();
    // Older run folders sampled the driver with the rest of the lab.
    let lab = step
        .cpu_cores
        .get(Process::Driver.name())
        .or_else(|| step.cpu_cores.get(Process::Lab.name()))
        .copied()
        .unwrap_or(0.0);
    Some(format!(
        "There the processes the lab samples kept **{busy:.1} of the machine's {machine_cores} \
         cores** busy ({}): the machine was full, so this knee is the machine's as much as \
         {name}'s{}.",
        parts.join(", "),
        if lab >= 0.25 * busy {
            "; the lab's own load driver took a large share, and a driver on another machine \
             would leave it to the stack"
        } else {
            ""
        }
    ))
}
