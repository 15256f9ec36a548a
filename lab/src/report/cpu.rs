//! What each process cost the machine, in the report: the CPU table and
//! its note.

use serde::Serialize;

use crate::run_folder::rows::Process;
use crate::run_folder::summary::ProcessCpu;

/// A process's name in a sentence.
pub(super) fn short_process(process: &str) -> &str {
    Process::of(process).map_or(process, |p| p.in_sentence())
}

/// One process's CPU, as the report's table shows it.
#[derive(Serialize)]
pub struct CpuView {
    process: String,
    architecture: String,
    cpu_s: String,
    cores: String,
    requests: u64,
    per_request: String,
    /// Per request, beside PostgreSQL's per request.
    to_postgresql: String,
}

impl CpuView {
    pub(super) fn new(cpu: &ProcessCpu, all: &[ProcessCpu]) -> Self {
        let postgresql = all
            .iter()
            .find(|c| c.process == Process::Postgresql.name())
            .and_then(|c| c.us_per_request)
            .filter(|us| *us > 0.0);
        // Run folders from before the driver was sampled apart count it
        // with the rest of the lab.
        let driver_apart = all.iter().any(|c| c.process == Process::Driver.name());
        Self {
            process: if cpu.process == Process::Lab.name() && !driver_apart {
                "the lab (load driver, scraping)".into()
            } else {
                process_label(&cpu.process)
            },
            architecture: cpu
                .architecture
                .clone()
                .unwrap_or_else(|| "every one".into()),
            cpu_s: format!("{:.1} s", cpu.cpu_s),
            cores: format!("{:.2}", cpu.cores),
            requests: cpu.requests,
            per_request: cpu
                .us_per_request
                .map_or("-".into(), |us| format!("{us:.0} µs")),
            to_postgresql: match (cpu.us_per_request, postgresql) {
                (Some(us), Some(pg)) => format!("×{:.2}", us / pg),
                _ => "-".into(),
            },
        }
    }
}

/// A process's name in the table: a `service` architecture's process by
/// its own name.
pub(super) fn process_label(process: &str) -> String {
    Process::of(process).map_or_else(
        || format!("{process} (the service's own)"),
        |p| p.label().into(),
    )
}

/// Each service's CPU per request beside PostgreSQL's, in one sentence.
pub(super) fn cpu_note(cpu: &[ProcessCpu]) -> Option<String> {
    let postgresql = cpu
        .iter()
        .find(|c| c.process == Process::Postgresql.name())?
        .us_per_request
        .filter(|us| *us > 0.0)?;
    let services: Vec<String> = cpu
        .iter()
        .filter_map(|c| {
            let us = c.us_per_request?;
            let whose = match (c.architecture.as_deref(), Process::of(&c.process)) {
                (Some(architecture), Some(Process::Rest)) => format!("{architecture}'s service"),
                (Some(architecture), _) => format!("{architecture}'s {}", c.process),
                (None, Some(Process::Proxy)) if us > 0.0 => Process::Proxy.in_sentence().into(),
                (None, Some(Process::Broker)) => format!(
                    "{} (per request of the paths through it)",
                    Process::Broker.in_sentence()
                ),
                (None, _) => return None,
            };
            Some(format!("**×{:.2}** for {whose}", us / postgresql))
        })
        .collect();
    (!services.is_empty()).then(|| {
        format!(
            "Per request, beside the {postgresql:.0} µs PostgreSQL spent: {}. Machines differ twofold in speed; these ratios, measured on one machine in one run, travel better than the microseconds.",
            services.join(", ")
        )
    })
}
