//! What each process of the stack spent, per request: its CPU time sampled
//! each second from `/proc` (`lab_process_cpu_seconds`), over the requests
//! sent while it was sampled.

use std::collections::{BTreeMap, HashMap};

use super::join::Request;
use crate::collect::LAB_CPU;
use crate::experiment::{ArchitectureSettings, Experiment};
use crate::run_folder::frames::MetricColumns;
use crate::run_folder::rows::Process;
use crate::run_folder::summary::ProcessCpu;

/// Whose requests a process serves: an architecture's own processes its
/// requests; a shared one those of every architecture that uses it (the
/// broker the Kafka paths', PostgreSQL, the fault proxies and the lab
/// every architecture's).
pub struct Users {
    /// Every architecture, in the scenario's order.
    pub architectures: Vec<String>,
    /// Those that go through the broker.
    pub brokered: Vec<String>,
}

impl Users {
    /// The scenario's architectures, and those of them that go through the
    /// broker (the Kafka paths).
    pub fn from_scenario(experiment: &Experiment) -> Self {
        let names = |kafka_only: bool| {
            experiment
                .architectures
                .iter()
                .filter(|a| !kafka_only || matches!(a, ArchitectureSettings::Kafka { .. }))
                .map(|a| a.name().to_string())
                .collect()
        };
        Self {
            architectures: names(false),
            brokered: names(true),
        }
    }

    /// The architectures whose requests `process` of `architecture`
    /// (empty: shared) is charged to.
    pub fn of<'a>(&'a self, architecture: &'a str, process: &str) -> Vec<&'a str> {
        if !architecture.is_empty() {
            return vec![architecture];
        }
        let users = if Process::of(process) == Some(Process::Broker) {
            &self.brokered
        } else {
            &self.architectures
        };
        users.iter().map(String::as_str).collect()
    }
}

/// Every sampled process's CPU time and its cost per request, over the
/// `faulted` repetitions only (a control's is never pooled in): the
/// architectures' own processes in their order, then the shared ones, each
/// over the requests of the architectures that use it. `requests`: each
/// architecture's request rows.
pub fn per_process(
    readings: &Readings,
    requests: &HashMap<String, Vec<Request>>,
    users: &Users,
    faulted: &[u32],
) -> Vec<ProcessCpu> {
    let architectures = &users.architectures;
    // (architecture, process) → (cpu seconds, sampled seconds, requests).
    let mut totals: BTreeMap<(String, String), (f64, f64, u64)> = BTreeMap::new();
    for ((architecture, process, repetition), points) in readings {
        if !faulted.contains(repetition) {
            continue;
        }
        let Some(spent) = spent_between(points, f64::NEG_INFINITY, f64::INFINITY) else {
            continue;
        };
        let whose = users.of(architecture, process);
        let sent = sent_between(requests, &whose, *repetition, spent.from, spent.to);
        let slot = totals
            .entry((architecture.clone(), process.clone()))
            .or_default();
        slot.0 += spent.cpu_s;
        slot.1 += spent.to - spent.from;
        slot.2 += sent;
    }
    let rank = |(architecture, process): &(String, String)| {
        let shared = architecture.is_empty();
        let arch = architectures
            .iter()
            .position(|a| a == architecture)
            .unwrap_or(usize::MAX);
        // Each architecture's own processes, then the shared ones.
        let process = Process::of(process).map_or(Process::ALL.len(), |p| p as usize);
        (shared, arch, process)
    };
    let mut out: Vec<_> = totals.into_iter().collect();
    out.sort_by_key(|(key, _)| rank(key));
    out.into_iter()
        .map(
            |((architecture, process), (cpu_s, sampled_s, requests))| ProcessCpu {
                process,
                architecture: (!architecture.is_empty()).then_some(architecture),
                cpu_s,
                sampled_s,
                requests,
                us_per_request: (requests > 0).then(|| cpu_s * 1e6 / requests as f64),
                cores: if sampled_s > 0.0 {
                    cpu_s / sampled_s
                } else {
                    0.0
                },
            },
        )
        .collect()
}

/// Cumulative CPU readings, in time order, per (architecture, empty when
/// shared; process; repetition).
pub type Readings = BTreeMap<(String, String, u32), Vec<(f64, f64)>>;

/// Every [`LAB_CPU`] reading of a run's metrics.
pub fn readings(metrics: &MetricColumns) -> Readings {
    metrics
        .readings_of(|metric| (metric == LAB_CPU).then_some(()))
        .into_iter()
        .map(|((architecture, process, repetition, ()), points)| {
            ((architecture, process, repetition), points)
        })
        .collect()
}

/// CPU used between two readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    pub cpu_s: f64,
    /// The first and last readings' times.
    pub from: f64,
    pub to: f64,
}

/// The CPU used between the first and the last reading taken within
/// `[from, to]`; `None` without two such readings.
pub fn spent_between(points: &[(f64, f64)], from: f64, to: f64) -> Option<Spent> {
    let inside: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    (inside.len() >= 2).then(|| Spent {
        cpu_s: used(&inside),
        from: first.0,
        to: last.0,
    })
}

/// Requests of the architectures `whose` in `repetition` meant to be sent
/// in `[from, to)`.
pub fn sent_between(
    requests: &HashMap<String, Vec<Request>>,
    whose: &[&str],
    repetition: u32,
    from: f64,
    to: f64,
) -> u64 {
    requests
        .iter()
        .filter(|(name, _)| whose.contains(&name.as_str()))
        .flat_map(|(_, rows)| rows)
        .filter(|r| r.repetition == repetition && r.intended_s >= from && r.intended_s < to)
        .count() as u64
}

/// The CPU seconds a series of cumulative readings adds up to. A reading
/// below half the one before is a restarted process, counted from zero; a
/// smaller dip is the jitter of a reading made of several taken one after
/// another (the lab's process less its proxies' and driver's threads),
/// and adds nothing: counted from zero, it once put a whole run's seconds
/// of the lab into one step.
fn used(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| {
            let (before, now) = (w[0].1, w[1].1);
            if now >= before {
                now - before
            } else if now < 0.5 * before {
                now
            } else {
                0.0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(repetition: u32, intended_s: f64) -> Request {
        Request {
            repetition,
            intended_s,
            latency_us: 1_000,
            ok: true,
            failure: None,
            freshness_us: None,
            lost: false,
            sent_late_us: Some(0),
        }
    }

    fn metrics(rows: &[(&str, &str, u32, f64, f64)]) -> MetricColumns {
        MetricColumns {
            repetition: rows.iter().map(|r| r.2).collect(),
            t_s: rows.iter().map(|r| Some(r.3)).collect(),
            architecture: rows.iter().map(|r| r.0.to_string()).collect(),
            service: rows.iter().map(|r| r.1.to_string()).collect(),
            metric: rows.iter().map(|_| LAB_CPU.to_string()).collect(),
            value: rows.iter().map(|r| Some(r.4)).collect(),
        }
    }

    #[test]
    fn cpu_per_request_follows_the_readings_and_the_requests() {
        // rest: 0.5 s of CPU over 2 s, then a restart that used 0.1 s;
        // postgresql, shared: 1 s over 3 s.
        let frame = metrics(&[
            ("rest", "rest", 0, 1.0, 2.0),
            ("rest", "rest", 0, 2.0, 2.3),
            ("rest", "rest", 0, 3.0, 2.5),
            ("rest", "rest", 0, 4.0, 0.1),
            ("", "postgresql", 0, 1.0, 10.0),
            ("", "postgresql", 0, 4.0, 11.0),
            ("", "lab", 0, 1.0, 1.0),
        ]);
        let mut requests = HashMap::new();
        // 1,000 requests of rest inside [1, 4), some outside; 1,000 of
        // another architecture inside.
        let inside = |n: usize| (0..n).map(move |i| request(0, 1.0 + 3.0 * i as f64 / n as f64));
        requests.insert(
            "rest".to_string(),
            inside(1_000)
                .chain([request(0, 0.5), request(0, 4.5)])
                .collect(),
        );
        requests.insert("kafka".to_string(), inside(1_000).collect());
        let users = Users {
            architectures: vec!["rest".to_string(), "kafka".to_string()],
            brokered: vec!["kafka".to_string()],
        };
        let cpu = per_process(&readings(&frame), &requests, &users, &[0]);
        let order: Vec<_> = cpu.iter().map(|c| c.process.as_str()).collect();
        // One reading of the lab: nothing measured, no row.
        assert_eq!(order, ["rest", "postgresql"]);
        let rest = &cpu[0];
        assert_eq!(rest.architecture.as_deref(), Some("rest"));
        assert!((rest.cpu_s - 0.6).abs() < 1e-9, "{}", rest.cpu_s);
        assert_eq!(rest.requests, 1_000);
        assert!((rest.us_per_request.unwrap() - 600.0).abs() < 1e-6);
        assert!((rest.cores - 0.2).abs() < 1e-9);
        let postgres = &cpu[1];
        assert_eq!(postgres.architecture, None);
        assert_eq!(postgres.requests, 2_000);
        assert!((postgres.us_per_request.unwrap() - 500.0).abs() < 1e-6);

        // A reading a hundredth of a second below the one before (the lab
        // less its threads, read one after another) is no restart.
        let jitter = metrics(&[
            ("", "lab", 0, 1.0, 2.40),
            ("", "lab", 0, 2.0, 2.42),
            ("", "lab", 0, 3.0, 2.41),
            ("", "lab", 0, 4.0, 2.45),
        ]);
        let cpu = per_process(&readings(&jitter), &requests, &users, &[0]);
        assert!((cpu[0].cpu_s - 0.06).abs() < 1e-9, "{}", cpu[0].cpu_s);

        // Twice the CPU for the same requests: twice the figure.
        let busier = metrics(&[("rest", "rest", 0, 1.0, 2.0), ("rest", "rest", 0, 4.0, 3.2)]);
        let cpu = per_process(&readings(&busier), &requests, &users, &[0]);
        assert!((cpu[0].us_per_request.unwrap() - 1_200.0).abs() < 1e-6);

        // The broker serves the Kafka path alone: its CPU is over kafka's
        // 1,000 requests, not over REST's too.
        let broker = metrics(&[("", "broker", 0, 1.0, 5.0), ("", "broker", 0, 4.0, 5.3)]);
        let cpu = per_process(&readings(&broker), &requests, &users, &[0]);
        assert_eq!(cpu[0].requests, 1_000);
        assert!((cpu[0].us_per_request.unwrap() - 300.0).abs() < 1e-6);

        // A control repetition's readings are not pooled with the faulted.
        let with_control = metrics(&[
            ("", "postgresql", 0, 1.0, 10.0),
            ("", "postgresql", 0, 4.0, 11.0),
            ("", "postgresql", 1, 1.0, 20.0),
            ("", "postgresql", 1, 4.0, 29.0),
        ]);
        let cpu = per_process(&readings(&with_control), &requests, &users, &[0]);
        assert!((cpu[0].cpu_s - 1.0).abs() < 1e-9, "{}", cpu[0].cpu_s);
    }
}
