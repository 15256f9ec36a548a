//! Capacity: how each architecture held each step of a stepped rate
//! (errors, latency, CPU per request of every process), and its knee, the
//! highest rate that it and every lower step held within the scenario's
//! bounds.

use std::collections::{BTreeMap, HashMap};

use super::cpu::{Readings, Users, sent_between, spent_between};
use super::join::Request;
use crate::experiment::{Experiment, RateShape};
use crate::run_folder::Reference;
use crate::run_folder::frames::MetricColumns;
use crate::run_folder::summary::{Capacity, CapacityReference, CapacityStep};
use crate::stats::{latency, ratio};

/// The steps of the scenario's rate as `(rps, from_s, to_s)`, each from
/// its second second (the first is the change) or the end of the warm-up;
/// empty unless the rate is stepped with two steps or more.
pub fn plateaus(experiment: &Experiment) -> Vec<(f64, f64, f64)> {
    let RateShape::Steps { steps } = &experiment.workload.rate else {
        return Vec::new();
    };
    if steps.len() < 2 {
        return Vec::new();
    }
    let end = experiment.duration.0.as_secs_f64();
    let warmup = experiment.warmup().as_secs_f64();
    let mut sorted: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.at.0.as_secs_f64(), s.rps))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted
        .iter()
        .enumerate()
        .filter_map(|(i, (at, rps))| {
            let to = sorted.get(i + 1).map_or(end, |next| next.0).min(end);
            let from = (at + 1.0).max(warmup);
            (to > from && *rps > 0.0).then_some((*rps, from, to))
        })
        .collect()
}

/// Each architecture's capacity over the steps of the scenario's rate;
/// empty unless the rate is stepped. `requests`: every architecture's rows
/// of the repetitions with faults as planned (not the control);
/// `machine_cores`: the run's machine's.
pub fn per_architecture(
    experiment: &Experiment,
    requests: &HashMap<String, Vec<Request>>,
    (readings, users, metrics): (&Readings, &Users, &MetricColumns),
    repetitions: &[u32],
    machine_cores: u32,
) -> HashMap<String, Capacity> {
    let plateaus = plateaus(experiment);
    if plateaus.is_empty() {
        return HashMap::new();
    }
    // The pools' figures of each step, keyed by its place in `plateaus`.
    let database = super::database::sums_by(metrics, 0.0, |_, t| {
        plateaus
            .iter()
            .position(|&(_, from, to)| t > from && t <= to)
    });
    let max_p99_ms = experiment.capacity.max_p99.0.as_secs_f64() * 1000.0;
    let max_error_rate = experiment.capacity.max_error_rate;
    let mut out = HashMap::new();
    for (name, rows) in requests {
        let pools = super::database::pooled(&database, name, repetitions);
        let mut steps: Vec<CapacityStep> = plateaus
            .iter()
            .enumerate()
            .map(|(i, &(rps, from, to))| {
                let inside: Vec<&Request> = rows
                    .iter()
                    .filter(|r| repetitions.contains(&r.repetition))
                    .filter(|r| r.intended_s >= from && r.intended_s < to)
                    .collect();
                let ok = inside.iter().filter(|r| r.ok).count() as u64;
                let total = inside.len() as u64;
                let latency_ms = latency(inside.iter().filter(|r| r.ok).map(|r| r.latency_us));
                let error_rate = ratio(total - ok, total);
                let held = total > 0
                    && error_rate <= max_error_rate
                    && latency_ms.as_ref().is_some_and(|l| l.p99 <= max_p99_ms);
                CapacityStep {
                    rps,
                    from_s: from,
                    to_s: to,
                    requests: total,
                    ok_per_s: ok as f64 / ((to - from) * repetitions.len().max(1) as f64),
                    error_rate,
                    latency_ms,
                    cpu_us_per_request: cpu_per_request(
                        name,
                        requests,
                        (readings, users),
                        repetitions,
                        (from, to),
                    ),
                    cpu_cores: cores_used(readings, repetitions, (from, to)),
                    database: pools.get(&i).and_then(|s| s.figures(Some(rps))),
                    held,
                }
            })
            .collect();
        steps.sort_by(|a, b| a.rps.total_cmp(&b.rps));
        let first_missed_rps = steps.iter().find(|s| !s.held).map(|s| s.rps);
        let knee_rps = steps.iter().take_while(|s| s.held).last().map(|s| s.rps);
        out.insert(
            name.clone(),
            Capacity {
                max_p99_ms,
                max_error_rate,
                steps,
                knee_rps,
                first_missed_rps,
                reference: None,
                machine_cores,
            },
        );
    }
    out
}

/// Gives every capacity the reference the repetitions measured (their
/// mean) and its knee as a ratio to it; nothing when none measured one.
pub fn with_reference(capacity: &mut HashMap<String, Capacity>, references: &[Reference]) {
    let Some(first) = references.first() else {
        return;
    };
    let commits_per_s =
        references.iter().map(|r| r.commits_per_s).sum::<f64>() / references.len() as f64;
    // The mean of the repetitions that measured it.
    let mean = |of: fn(&Reference) -> Option<f64>| {
        let measured: Vec<f64> = references.iter().filter_map(of).collect();
        (!measured.is_empty()).then(|| measured.iter().sum::<f64>() / measured.len() as f64)
    };
    let multi_row_rows_per_s = mean(|r| r.multi_row_rows_per_s);
    let copy_rows_per_s = mean(|r| r.copy_rows_per_s);
    for figures in capacity.values_mut() {
        figures.reference = Some(CapacityReference {
            commits_per_s,
            clients: first.clients,
            seconds: first.seconds,
            repetitions: references.len() as u32,
            knee_ratio: figures
                .knee_rps
                .filter(|_| commits_per_s > 0.0)
                .map(|knee| knee / commits_per_s),
            multi_row_rows_per_s,
            rows_per_commit: crate::run_folder::manifest::ROWS_PER_COMMIT as u32,
            copy_rows_per_s,
            copy_rows: crate::run_folder::manifest::COPY_ROWS as u32,
        });
    }
}

/// CPU microseconds per request of every process serving `name`, and of
/// the shared ones per request of every architecture, within `window`.
fn cpu_per_request(
    name: &str,
    requests: &HashMap<String, Vec<Request>>,
    (readings, users): (&Readings, &Users),
    repetitions: &[u32],
    (from, to): (f64, f64),
) -> BTreeMap<String, f64> {
    let mut totals: BTreeMap<String, (f64, u64)> = BTreeMap::new();
    for ((architecture, process, repetition), points) in readings {
        if !(architecture.is_empty() || architecture == name) || !repetitions.contains(repetition) {
            continue;
        }
        let Some(spent) = spent_between(points, from, to) else {
            continue;
        };
        let whose = users.of(architecture, process);
        let sent = sent_between(requests, &whose, *repetition, spent.from, spent.to);
        let slot = totals.entry(process.clone()).or_default();
        slot.0 += spent.cpu_s;
        slot.1 += sent;
    }
    totals
        .into_iter()
        .filter(|(_, (_, sent))| *sent > 0)
        .map(|(process, (cpu_s, sent))| (process, cpu_s * 1e6 / sent as f64))
        .collect()
}

/// The cores each sampled process kept busy within `window` (its CPU
/// seconds over the seconds sampled, over the repetitions), every
/// architecture's processes and the shared ones.
fn cores_used(
    readings: &Readings,
    repetitions: &[u32],
    (from, to): (f64, f64),
) -> BTreeMap<String, f64> {
    // process → (cpu seconds, sampled seconds); a process of each of two
    // architectures (two REST services) counts once, both together.
    let mut totals: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for ((architecture, process, repetition), points) in readings {
        if !repetitions.contains(repetition) {
            continue;
        }
        if let Some(spent) = spent_between(points, from, to).filter(|s| s.to > s.from) {
            let slot = totals
                .entry((process.clone(), architecture.clone()))
                .or_default();
            slot.0 += spent.cpu_s;
            slot.1 += spent.to - spent.from;
        }
    }
    let mut cores: BTreeMap<String, f64> = BTreeMap::new();
    for ((process, _), (cpu_s, sampled_s)) in totals {
        *cores.entry(process).or_default() += cpu_s / sampled_s;
    }
    cores
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_users() -> Users {
        Users {
            architectures: vec!["rest".to_string()],
            brokered: Vec::new(),
        }
    }

    fn scenario(text: &str) -> Experiment {
        crate::validate::parse(text, "capacity.toml").unwrap()
    }

    fn request(intended_s: f64, ok: bool, latency_ms: u64) -> Request {
        Request {
            repetition: 0,
            intended_s,
            latency_us: latency_ms * 1000,
            ok,
            failure: (!ok).then(|| "503".into()),
            freshness_us: None,
            lost: false,
            sent_late_us: Some(0),
        }
    }

    const STEPS: &str = r#"
name = "capacity"
duration = "30s"
capacity = { max_p99 = "100ms", max_error_rate = 0.01 }
[workload]
warmup = "0s"
rate = { shape = "steps", steps = [{ at = "0s", rps = 100 }, { at = "10s", rps = 200 }, { at = "20s", rps = 300 }] }
[[architectures]]
kind = "rest"
name = "rest"
"#;

    #[test]
    fn plateaus_leave_out_each_change_of_rate() {
        assert_eq!(
            plateaus(&scenario(STEPS)),
            [(100.0, 1.0, 10.0), (200.0, 11.0, 20.0), (300.0, 21.0, 30.0)]
        );
        let constant = STEPS.replace(
            r#"rate = { shape = "steps", steps = [{ at = "0s", rps = 100 }, { at = "10s", rps = 200 }, { at = "20s", rps = 300 }] }"#,
            r#"rate = { shape = "constant", rps = 100 }"#,
        );
        assert!(plateaus(&scenario(&constant)).is_empty());
    }

    /// Requests of one second each 10 ms: fast and fine below `slow_from`,
    /// slow above it; failing from `failing_from`.
    fn rows(slow_from: f64, failing_from: f64) -> Vec<Request> {
        (0..3000)
            .map(|i| {
                let t = f64::from(i) / 100.0;
                request(
                    t,
                    t < failing_from || i % 10 != 0,
                    if t < slow_from { 5 } else { 400 },
                )
            })
            .collect()
    }

    #[test]
    fn the_knee_is_the_last_step_held_before_the_first_missed() {
        let experiment = scenario(STEPS);
        let knee = |rows: Vec<Request>| {
            let requests = HashMap::from([("rest".to_string(), rows)]);
            per_architecture(
                &experiment,
                &requests,
                (&Readings::new(), &no_users(), &MetricColumns::default()),
                &[0],
                2,
            )
            .remove("rest")
            .unwrap()
        };
        // Slow from the third step: the knee is the second.
        let slow = knee(rows(20.0, 99.0));
        assert_eq!(slow.knee_rps, Some(200.0));
        assert_eq!(slow.first_missed_rps, Some(300.0));
        assert!(slow.steps[2].latency_ms.as_ref().unwrap().p99 > 100.0);
        assert_eq!(slow.steps[1].error_rate, 0.0);
        // Failing 10 % from the second step: the knee is the first.
        let failing = knee(rows(99.0, 10.0));
        assert_eq!(failing.knee_rps, Some(100.0));
        assert!((failing.steps[1].error_rate - 0.1).abs() < 0.01);
        // Every step held: no step missed.
        let fine = knee(rows(99.0, 99.0));
        assert_eq!((fine.knee_rps, fine.first_missed_rps), (Some(300.0), None));
        // Slow from the start: no knee.
        let never = knee(rows(0.0, 99.0));
        assert_eq!(
            (never.knee_rps, never.first_missed_rps),
            (None, Some(100.0))
        );
        // The successes per second follow the rows: 100 a second.
        assert!((fine.steps[0].ok_per_s - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_step_says_what_bounded_its_database_writes() {
        // A pool of 10 whose writes of one row hold a connection 5 ms in the
        // first step and 50 ms from the second on: a bound of 2,000 rows a
        // second, then 200.
        let mut metrics = MetricColumns::default();
        let mut push = |t: f64, metric: &str, value: f64| {
            metrics.repetition.push(0);
            metrics.t_s.push(Some(t));
            metrics.architecture.push("rest".into());
            metrics.service.push("rest".into());
            metrics.metric.push(metric.into());
            metrics.value.push(Some(value));
        };
        let (mut held, mut writes) = (0.0, 0.0);
        for t in 0..=30 {
            let t = f64::from(t);
            push(t, "db_pool_max_connections", 10.0);
            push(t, "db_connection_held_seconds_sum", held);
            push(t, "db_connection_held_seconds_count", writes);
            push(t, "events_stored_total", writes);
            let (n, hold) = if t + 1.0 <= 10.0 {
                (100.0, 0.005)
            } else {
                (190.0, 0.05)
            };
            held += n * hold;
            writes += n;
        }
        let experiment = scenario(STEPS);
        let requests = HashMap::from([("rest".to_string(), rows(99.0, 99.0))]);
        let capacity = per_architecture(
            &experiment,
            &requests,
            (&Readings::new(), &no_users(), &metrics),
            &[0],
            2,
        )
        .remove("rest")
        .unwrap();
        let first = capacity.steps[0].database.as_ref().unwrap();
        assert!((first.held_ms - 5.0).abs() < 1e-9, "{first:?}");
        assert!((first.bound_rows_per_s.unwrap() - 2000.0).abs() < 1e-6);
        assert_eq!(first.offered_per_s, Some(100.0));
        let third = capacity.steps[2].database.as_ref().unwrap();
        assert!((third.held_ms - 50.0).abs() < 1e-9, "{third:?}");
        assert!((third.bound_rows_per_s.unwrap() - 200.0).abs() < 1e-6);
        assert!((third.busy_connections - 9.5).abs() < 1e-9);
        assert_eq!(third.offered_per_s, Some(300.0));
    }

    #[test]
    fn a_step_counts_the_cores_every_sampled_process_kept_busy() {
        // Cumulative CPU seconds each second: two REST services half a core
        // each, PostgreSQL 0.3 cores in repetition 0 and 0.5 in repetition 1.
        let climb = |per_s: f64| {
            (0..=20)
                .map(|t| (f64::from(t), per_s * f64::from(t)))
                .collect()
        };
        let readings = Readings::from([
            (("a".into(), "rest".into(), 0), climb(0.5)),
            (("b".into(), "rest".into(), 0), climb(0.5)),
            (("a".into(), "rest".into(), 1), climb(0.5)),
            (("b".into(), "rest".into(), 1), climb(0.5)),
            ((String::new(), "postgresql".into(), 0), climb(0.3)),
            ((String::new(), "postgresql".into(), 1), climb(0.5)),
        ]);
        let cores = cores_used(&readings, &[0, 1], (2.0, 8.0));
        assert!((cores["rest"] - 1.0).abs() < 1e-9, "{cores:?}");
        assert!((cores["postgresql"] - 0.4).abs() < 1e-9, "{cores:?}");
        // A repetition left out (a control) counts for nothing.
        let cores = cores_used(&readings, &[0], (2.0, 8.0));
        assert!((cores["postgresql"] - 0.3).abs() < 1e-9, "{cores:?}");
    }

    #[test]
    fn the_knee_is_quoted_against_the_mean_reference_of_the_repetitions() {
        let experiment = scenario(STEPS);
        let requests = HashMap::from([
            ("fine".to_string(), rows(99.0, 99.0)),
            ("never".to_string(), rows(0.0, 99.0)),
        ]);
        let mut capacity = per_architecture(
            &experiment,
            &requests,
            (&Readings::new(), &no_users(), &MetricColumns::default()),
            &[0],
            2,
        );
        with_reference(&mut capacity, &[]);
        assert!(capacity.values().all(|c| c.reference.is_none()));
        let reference = |commits_per_s, copy_rows_per_s| Reference {
            commits_per_s,
            clients: 8,
            seconds: 5.0,
            multi_row_rows_per_s: Some(commits_per_s * 10.0),
            copy_rows_per_s,
        };
        // The second repetition's COPY was not measured (an earlier run's).
        with_reference(
            &mut capacity,
            &[reference(100.0, Some(5000.0)), reference(300.0, None)],
        );
        let fine = capacity["fine"].reference.clone().unwrap();
        assert_eq!((fine.commits_per_s, fine.repetitions), (200.0, 2));
        assert_eq!(fine.multi_row_rows_per_s, Some(2000.0));
        assert_eq!(fine.copy_rows_per_s, Some(5000.0));
        // The knee, 300 req/s, over the mean of 100 and 300.
        assert_eq!(fine.knee_ratio, Some(1.5));
        let never = capacity["never"].reference.clone().unwrap();
        assert_eq!((never.commits_per_s, never.knee_ratio), (200.0, None));
    }
}
