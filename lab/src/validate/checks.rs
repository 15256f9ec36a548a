//! The third pass: the rules that span fields, on the typed scenario.

use std::collections::HashMap;

use super::faults::check_faults;
use super::walk::quoted;
use super::{Report, limits, parse};
use crate::experiment::{
    ArchitectureSettings, BrokerChoice, DatabaseChoice, Experiment, RateShape, Retries,
};
use crate::spelling::closest;

/// The rules that span fields, on the typed scenario.
/// Checks what the format cannot say: every rule, every problem reported.
pub(super) fn check(experiment: &Experiment, report: &mut Report<'_>) {
    check_run(experiment, report);
    check_stack(experiment, report);
    check_workload(experiment, report);
    check_architectures(experiment, report);
    check_faults(experiment, report);
    check_hypotheses(experiment, report);
    check_economics(experiment, report);
    check_capacity(experiment, report);
}

/// The sweep: every key leads somewhere, and every point is a valid
/// scenario. A problem of a point is reported at the swept value that
/// causes it (once, however many points share the value), or, when no
/// single value does, at `sweep` with the point's values.
pub(super) fn check_sweep(experiment: &Experiment, report: &mut Report<'_>) {
    let grid = match crate::plan::grid::Grid::of(experiment) {
        Ok(grid) => grid,
        Err(problems) => {
            for problem in problems {
                report.at(&problem.path, problem.message, problem.hint);
            }
            return;
        }
    };
    let mut seen = std::collections::HashSet::new();
    for point in &grid.points {
        let Err(problems) = parse(&grid.scenario(point), "point") else {
            continue;
        };
        for problem in problems {
            let culprit = grid.keys.iter().position(|key| {
                let key = key.to_string();
                problem.path == key
                    || problem.path.starts_with(&format!("{key}."))
                    || problem.path.starts_with(&format!("{key}["))
            });
            let (path, message) = match culprit {
                Some(i) => {
                    let value = &point.values[i];
                    let j = experiment.sweep.as_ref().map_or(0, |s| {
                        s.parameters[i]
                            .values
                            .iter()
                            .position(|v| v == value)
                            .unwrap_or(0)
                    });
                    (
                        format!("sweep.parameters[{i}].values[{j}]"),
                        format!(
                            "{} = {}: {}",
                            grid.written[i],
                            crate::plan::grid::shown(value),
                            problem.message
                        ),
                    )
                }
                None => (
                    "sweep".to_string(),
                    format!(
                        "at point {} ({}): {}{}",
                        point.index + 1,
                        point.describe(&grid),
                        if problem.path.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", problem.path)
                        },
                        problem.message
                    ),
                ),
            };
            if seen.insert((path.clone(), message.clone())) {
                report.at(&path, message, problem.hint);
            }
        }
    }
}

/// A finite, non-negative number.
/// A name of a scenario or an architecture: 1 to [`limits::NAME`]
/// letters, digits, `-` and `_` (it names folders, topics and groups).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A value as a message quotes it: a long one cut, with its length.
pub(super) fn shown(text: &str) -> String {
    const SHOWN: usize = 40;
    if text.chars().count() <= SHOWN {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(SHOWN).collect();
        format!("{head:?}… ({} characters)", text.chars().count())
    }
}

fn non_negative(value: f64) -> bool {
    value.is_finite() && value >= 0.0
}

/// A finite number above zero.
fn positive(value: f64) -> bool {
    value.is_finite() && value > 0.0
}

/// The run: a name, a duration, repetitions.
fn check_run(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    if !valid_name(&experiment.name) {
        report.at(
            "name",
            format!("{} is not a valid name", shown(&experiment.name)),
            Some(format!(
                "use up to {} letters, digits, `-` and `_`; it names the run folder",
                limits::NAME
            )),
        );
    }
    if run.0.is_zero() {
        report.at("duration", "the run must last more than zero".into(), None);
    }
    if experiment.repetitions > limits::REPETITIONS {
        report.at(
            "repetitions",
            format!(
                "{} repetitions is more than {}",
                experiment.repetitions,
                limits::REPETITIONS
            ),
            None,
        );
    }
    if experiment.control.0 > limits::CONTROLS {
        report.at(
            "control",
            format!(
                "{} control repetitions is more than {}",
                experiment.control.0,
                limits::CONTROLS
            ),
            None,
        );
    }
    if experiment.repetitions == 0 {
        report.at(
            "repetitions",
            "at least one repetition is needed".into(),
            None,
        );
    }
}

/// The stack: external parts need their addresses.
fn check_stack(experiment: &Experiment, report: &mut Report<'_>) {
    let stack = &experiment.stack;
    if stack.broker == BrokerChoice::External && stack.bootstrap_servers.is_none() {
        report.at(
            "stack.broker",
            "an external broker needs `stack.bootstrap_servers`".into(),
            None,
        );
    }
    if stack.database == DatabaseChoice::External && stack.database_url.is_none() {
        report.at(
            "stack.database",
            "an external database needs `stack.database_url`".into(),
            None,
        );
    }
    if let Some(url) = stack.database_url.as_deref()
        && !url.contains("${")
        && let Err(error) = faultline_services::tls::Target::parse(url)
    {
        report.at(
            "stack.database_url",
            crate::secrets::redact(&error.to_string(), &crate::secrets::passwords_in(url)),
            Some(
                "TLS: sslmode=require (or verify-full) and sslrootcert=PATH to a PEM CA \
                 file; the server's certificate and name are always checked"
                    .into(),
            ),
        );
    }
    if stack.partitions > limits::PARTITIONS {
        report.at(
            "stack.partitions",
            format!(
                "{} partitions is more than {}",
                stack.partitions,
                limits::PARTITIONS
            ),
            None,
        );
    }
    if stack.partitions == 0 {
        report.at(
            "stack.partitions",
            "a topic needs at least one partition".into(),
            None,
        );
    }
    let named = [
        (
            "stack.database_url".to_string(),
            stack.database_url.as_deref(),
        ),
        (
            "stack.bootstrap_servers".to_string(),
            stack.bootstrap_servers.as_deref(),
        ),
    ]
    .into_iter()
    .chain(
        stack
            .kafka
            .iter()
            .map(|(k, v)| (format!("stack.kafka.{k}"), Some(v.as_str()))),
    );
    for (path, text) in named {
        if let Some(Err(missing)) = text.map(crate::secrets::expand_env) {
            report.at(
                &path,
                missing,
                Some("set it, or write the value here (it is redacted from the run folder)".into()),
            );
        }
    }
    let external = stack.broker == BrokerChoice::External;
    if let Some(replicas) = stack.replication_factor {
        if replicas == 0 || replicas > limits::REPLICAS {
            report.at(
                "stack.replication_factor",
                format!("{replicas} replicas: give 1 to {}", limits::REPLICAS),
                None,
            );
        } else if replicas > 1 && !external {
            report.at(
                "stack.replication_factor",
                format!(
                    "the lab's own broker is a single node: it cannot hold {replicas} replicas"
                ),
                Some("use an external cluster (`stack.broker = \"external\"`)".into()),
            );
        }
    }
    if let Some(min_insync) = stack.min_insync_replicas {
        let (replicas, _) = stack.replication();
        if min_insync == 0 || min_insync > replicas {
            report.at(
                "stack.min_insync_replicas",
                format!("{min_insync} in-sync replicas of {replicas}: give 1 to {replicas}"),
                None,
            );
        }
    }
    for (key, value) in &stack.kafka {
        let path = format!("stack.kafka.{key}");
        let kept = faultline_services::producer::KEPT_PROPERTIES;
        if kept.contains(&key.to_ascii_lowercase().as_str()) {
            report.at(
                &path,
                format!("the services set {key} themselves: what they measure depends on it"),
                None,
            );
        } else if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
        {
            report.at(
                &path,
                format!("{key:?} is not a librdkafka property name"),
                None,
            );
        } else if let Some(refused) = librdkafka_refuses(key, value) {
            report.at(&path, refused, None);
        }
        if value.contains('\n') {
            report.at(&path, "a value is one line".into(), None);
        }
    }
}

/// What librdkafka itself says of the client property `key` = `value`, if
/// it refuses it (an unknown name, a value of the wrong kind): asked now,
/// not 16 s into a run. A value from an unset `${VAR}` is not judged; a
/// credential's value is never quoted.
fn librdkafka_refuses(key: &str, value: &str) -> Option<String> {
    let expanded = crate::secrets::expand_env(value).ok()?;
    let mut config = rdkafka::ClientConfig::new();
    config.set(key, &expanded);
    let error = config.create_native_config().err()?;
    Some(if crate::secrets::is_credential(key) {
        format!("librdkafka refuses {key} (its value is not shown: it is a credential)")
    } else {
        format!("librdkafka refuses it: {error}")
    })
}

/// The load: a rate that sends something, before the run ends.
fn check_workload(experiment: &Experiment, report: &mut Report<'_>) {
    let run = experiment.duration;
    let workload = &experiment.workload;
    match &workload.rate {
        RateShape::Constant { rps } if !positive(*rps) => report.at(
            "workload.rate.rps",
            format!("a rate of {rps} req/s sends nothing"),
            Some("give a rate above zero".into()),
        ),
        RateShape::Ramp { from_rps, to_rps }
            if !non_negative(*from_rps) || !non_negative(*to_rps) || from_rps + to_rps <= 0.0 =>
        {
            report.at(
                "workload.rate",
                format!("a ramp from {from_rps} to {to_rps} req/s sends nothing or is negative"),
                None,
            )
        }
        RateShape::Steps { steps } => {
            if steps.is_empty() {
                report.at(
                    "workload.rate.steps",
                    "at least one step is needed".into(),
                    None,
                );
            }
            for (i, step) in steps.iter().enumerate() {
                if !non_negative(step.rps) {
                    report.at(
                        &format!("workload.rate.steps[{i}].rps"),
                        format!("{} req/s is negative", step.rps),
                        None,
                    );
                }
                if step.at >= run {
                    report.at(
                        &format!("workload.rate.steps[{i}].at"),
                        format!("{} is not before the run ends ({run})", step.at),
                        None,
                    );
                }
            }
            if steps.iter().all(|s| s.rps <= 0.0) && !steps.is_empty() {
                report.at(
                    "workload.rate.steps",
                    "every step has a rate of zero: nothing is sent".into(),
                    None,
                );
            }
        }
        RateShape::Spike {
            base_rps,
            peak_rps,
            at,
            ..
        } => {
            if !non_negative(*base_rps) || !positive(*peak_rps) {
                report.at(
                    "workload.rate",
                    format!("a spike from {base_rps} to {peak_rps} req/s needs a positive peak"),
                    None,
                );
            }
            if *at >= run {
                report.at(
                    "workload.rate.at",
                    format!("{at} is not before the run ends ({run})"),
                    None,
                );
            }
        }
        _ => {}
    }
    let peak = workload.rate.peak_rps();
    if peak > limits::RPS {
        report.at(
            "workload.rate",
            format!("a rate of {peak} req/s is beyond one machine's load generator"),
            Some(format!("at most {} req/s per architecture", limits::RPS)),
        );
    } else {
        let requests = workload.rate.requests(run.0) * experiment.architectures.len().max(1) as f64;
        if requests > limits::REQUESTS as f64 {
            report.at(
                "workload.rate",
                format!(
                    "{requests:.0} requests a repetition over every architecture; at most {} \
                     are held in memory",
                    limits::REQUESTS
                ),
                Some("shorten the run or lower the rate".into()),
            );
        }
    }
    if workload.drivers > limits::DRIVERS {
        report.at(
            "workload.drivers",
            format!("{} is more than {}", workload.drivers, limits::DRIVERS),
            None,
        );
    }
    match workload.connections {
        Some(0) => report.at(
            "workload.connections",
            "at least one connection is needed".into(),
            None,
        ),
        Some(n) if n > limits::CONNECTIONS => report.at(
            "workload.connections",
            format!("{n} is more than {}", limits::CONNECTIONS),
            Some("leave it unset for a connection per request in flight".into()),
        ),
        _ => {}
    }
    check_retries(&workload.retries, "workload.retries", report);
    if workload.client_timeout.0.is_zero() {
        report.at(
            "workload.client_timeout",
            "a client timeout of zero fails every request".into(),
            None,
        );
    }
    if workload.drivers == 0 {
        report.at(
            "workload.drivers",
            "at least one driver is needed".into(),
            None,
        );
    }
    if let Some(warmup) = workload.warmup {
        let first_fault = experiment.faults.iter().map(|f| f.at).min();
        if warmup >= experiment.duration {
            report.at(
                "workload.warmup",
                format!(
                    "a warm-up of {warmup} leaves nothing of the run (duration {})",
                    experiment.duration
                ),
                None,
            );
        } else if let Some(at) = first_fault.filter(|at| warmup > *at) {
            report.at(
                "workload.warmup",
                format!("the warm-up ({warmup}) ends after the first fault starts, at {at}"),
                Some(format!("set it to {at} or less")),
            );
        }
    }
}

/// Client retries at `path`: a bounded count, a backoff that can be kept
/// (both drivers retry).
fn check_retries(retries: &Retries, path: &str, report: &mut Report<'_>) {
    if retries.max_retries > limits::RETRIES {
        report.at(
            &format!("{path}.max_retries"),
            format!("{} is more than {}", retries.max_retries, limits::RETRIES),
            None,
        );
    }
    if retries.max_backoff < retries.backoff {
        report.at(
            &format!("{path}.max_backoff"),
            format!(
                "{} is shorter than the first wait, {}",
                retries.max_backoff, retries.backoff
            ),
            None,
        );
    }
}

/// The architectures: valid, distinct names and settings that can work.
fn check_architectures(experiment: &Experiment, report: &mut Report<'_>) {
    if experiment.architectures.is_empty() {
        report.at(
            "architectures",
            "at least one architecture is needed".into(),
            None,
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, architecture) in experiment.architectures.iter().enumerate() {
        let path = format!("architectures[{i}]");
        let name = architecture.name();
        if !valid_name(name) {
            report.at(
                &format!("{path}.name"),
                format!("{} is not a valid name", shown(name)),
                Some("use letters, digits, `-` and `_`".into()),
            );
        }
        if let Some(first) = seen.insert(name, i) {
            report.at(
                &format!("{path}.name"),
                format!("{name:?} is already the name of architectures[{first}]"),
                None,
            );
        }
        let pool = match architecture {
            ArchitectureSettings::Rest {
                pool, group_commit, ..
            } => {
                if let Some(group) = group_commit {
                    if group.max_rows < 2 || group.max_rows > limits::BATCH {
                        report.at(
                            &format!("{path}.group_commit.max_rows"),
                            format!(
                                "{} rows: a group holds 2 to {} (leave group_commit out to commit each row alone)",
                                group.max_rows,
                                limits::BATCH
                            ),
                            None,
                        );
                    }
                    if group.max_wait.0 > pool.statement_timeout.0 {
                        report.at(
                            &format!("{path}.group_commit.max_wait"),
                            format!(
                                "{} is longer than the pool's statement timeout ({}): requests would wait longer to be grouped than to be stored",
                                group.max_wait, pool.statement_timeout
                            ),
                            None,
                        );
                    }
                }
                Some(pool)
            }
            ArchitectureSettings::Kafka {
                pool,
                batch_size,
                breaker,
                delivery_timeout,
                ..
            } => {
                if *batch_size > limits::BATCH {
                    report.at(
                        &format!("{path}.batch_size"),
                        format!("{batch_size} is more than {}", limits::BATCH),
                        None,
                    );
                }
                if *batch_size == 0 {
                    report.at(
                        &format!("{path}.batch_size"),
                        "a batch holds at least one event".into(),
                        None,
                    );
                }
                if breaker.failures == 0 || breaker.successes == 0 {
                    report.at(
                        &format!("{path}.breaker"),
                        "failures and successes must be at least 1".into(),
                        None,
                    );
                }
                if delivery_timeout.0.is_zero() {
                    report.at(
                        &format!("{path}.delivery_timeout"),
                        "a delivery timeout of zero fails every produce".into(),
                        None,
                    );
                }
                Some(pool)
            }
            ArchitectureSettings::Service { .. } => {
                super::service::check_service(experiment, architecture, &path, report);
                None
            }
        };
        if let ArchitectureSettings::Rest {
            retries: Some(retries),
            ..
        }
        | ArchitectureSettings::Kafka {
            retries: Some(retries),
            ..
        }
        | ArchitectureSettings::Service {
            retries: Some(retries),
            ..
        } = architecture
        {
            check_retries(retries, &format!("{path}.retries"), report);
        }
        let Some(pool) = pool else {
            continue;
        };
        if pool.size > limits::POOL {
            report.at(
                &format!("{path}.pool.size"),
                format!("{} connections is more than {}", pool.size, limits::POOL),
                None,
            );
        }
        if pool.size == 0 {
            report.at(
                &format!("{path}.pool.size"),
                "a pool needs at least one connection".into(),
                None,
            );
        }
    }
}

/// The hypotheses: a known architecture and one limit.
fn check_hypotheses(experiment: &Experiment, report: &mut Report<'_>) {
    let names: Vec<&str> = experiment.architectures.iter().map(|a| a.name()).collect();
    for (i, hypothesis) in experiment.hypotheses.iter().enumerate() {
        let path = format!("hypotheses[{i}]");
        if !names.contains(&hypothesis.architecture.as_str()) {
            let hint = closest(&hypothesis.architecture, names.iter().copied())
                .map(|n| format!("did you mean {n:?}?"))
                .unwrap_or_else(|| format!("architectures: {}", quoted(&names)));
            report.at(
                &format!("{path}.architecture"),
                format!("no architecture is named {:?}", hypothesis.architecture),
                Some(hint),
            );
        }
        match (hypothesis.max, hypothesis.min) {
            (None, None) => report.at(&path, "give a limit: `max` or `min`".into(), None),
            (Some(_), Some(_)) => report.at(
                &path,
                "give one limit, `max` or `min`, not both".into(),
                None,
            ),
            _ => {}
        }
        check_limit(hypothesis, &path, report);
        if hypothesis.phase.is_some() && experiment.faults.is_empty() {
            report.at(
                &format!("{path}.phase"),
                "phases are relative to faults, and there are none".into(),
                None,
            );
        }
    }
}

/// A limit that can fail and can hold: a share lies in [0, 1], every other
/// figure is at least 0.
fn check_limit(hypothesis: &crate::experiment::Hypothesis, path: &str, report: &mut Report<'_>) {
    use crate::experiment::Metric;
    let share = matches!(
        hypothesis.metric,
        Metric::ErrorRate | Metric::LostShare | Metric::StaleShare | Metric::OnTimeShare
    );
    let top = if share { Some(1.0) } else { None };
    let range = if share {
        "between 0 and 1"
    } else {
        "at least 0"
    };
    let never = |key: &str, what: &str| {
        (
            format!("{path}.{key}"),
            format!(
                "{} is {range}, so this limit {what}",
                hypothesis.metric.name()
            ),
        )
    };
    let problem = match (hypothesis.max, hypothesis.min) {
        (Some(max), _) if max < 0.0 => Some(never("max", "can never hold")),
        (Some(max), _) if top.is_some_and(|top| max >= top) => {
            Some(never("max", "can never fail (a share of 1 is all of them)"))
        }
        (_, Some(min)) if min <= 0.0 => Some(never("min", "can never fail")),
        (_, Some(min)) if top.is_some_and(|top| min > top) => Some(never("min", "can never hold")),
        _ => None,
    };
    if let Some((key, message)) = problem {
        report.at(
            &key,
            message,
            Some(if share {
                "a share is written as a fraction: 0.01 for 1 %".into()
            } else {
                "give a limit the figure can cross".into()
            }),
        );
    }
}

/// The economics: no negative money.
fn check_economics(experiment: &Experiment, report: &mut Report<'_>) {
    let economics = &experiment.economics;
    for (key, value) in [
        ("order_value", economics.order_value),
        (
            "orders_lost_per_failed_event",
            economics.orders_lost_per_failed_event,
        ),
        ("production_rps", economics.production_rps),
        ("outages_per_year", economics.outages_per_year),
    ] {
        if !non_negative(value) {
            report.at(
                &format!("economics.{key}"),
                format!("{value} must be zero or more"),
                None,
            );
        }
    }
}

/// The capacity bounds: a share of failures below one, a latency above zero.
fn check_capacity(experiment: &Experiment, report: &mut Report<'_>) {
    let bounds = &experiment.capacity;
    if !(0.0..1.0).contains(&bounds.max_error_rate) {
        report.at(
            "capacity.max_error_rate",
            format!(
                "{} must be at least 0 and below 1 (a share of the requests)",
                bounds.max_error_rate
            ),
            None,
        );
    }
    if bounds.max_p99.0.is_zero() {
        report.at(
            "capacity.max_p99",
            "must be more than zero, e.g. \"100ms\"".to_string(),
            None,
        );
    }
    if let Some(reference) = &bounds.reference
        && !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(60))
            .contains(&reference.0)
    {
        report.at(
            "capacity.reference",
            format!(
                "{} must be from 1s to 60s (how long PostgreSQL alone stores rows each way before the load)",
                humantime::format_duration(reference.0)
            ),
            None,
        );
    }
}
