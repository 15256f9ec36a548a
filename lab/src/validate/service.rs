//! The rules of a `service` architecture: processes that can start,
//! templates that name only what the lab gives, a request that carries the
//! event's id, an audit that only reads.

use std::collections::HashMap;

use super::walk::quoted;
use super::{Report, limits};
use crate::experiment::service::{
    MAX_ARGUMENTS, MAX_PROCESSES, MAX_SETUP_SQL, MAX_TEMPLATE, MAX_TOPICS, ProcessSettings,
    RequestSettings, TopicSpec, vars,
};
use crate::experiment::{ArchitectureSettings, DriverSetting, Experiment};
use crate::template::Template;

/// Every rule of one `service` architecture at `path`.
pub(super) fn check_service(
    experiment: &Experiment,
    architecture: &ArchitectureSettings,
    path: &str,
    report: &mut Report<'_>,
) {
    let ArchitectureSettings::Service {
        topics,
        processes,
        request,
        audit,
        ..
    } = architecture
    else {
        return;
    };
    if experiment.workload.driver == DriverSetting::K6 {
        report.at(
            "workload.driver",
            "k6 sends the built-in services' event only; a `service` architecture is driven by the native driver".into(),
            Some("leave `driver` out".into()),
        );
    }
    if processes.is_empty() {
        report.at(
            &format!("{path}.processes"),
            "a service architecture needs at least one process".into(),
            Some("[[architectures.processes]] with a name and a command".into()),
        );
    }
    if processes.len() > MAX_PROCESSES {
        report.at(
            &format!("{path}.processes"),
            format!("{} processes is more than {MAX_PROCESSES}", processes.len()),
            None,
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, process) in processes.iter().enumerate() {
        let at = format!("{path}.processes[{i}]");
        if let Some(first) = seen.insert(process.name.as_str(), i) {
            report.at(
                &format!("{at}.name"),
                format!(
                    "{:?} is already the name of processes[{first}]",
                    process.name
                ),
                None,
            );
        }
        check_process(process, &at, report);
    }

    check_request(
        request,
        &names(processes),
        &format!("{path}.request"),
        report,
    );
    // The audit.
    check_query(&audit.query, &format!("{path}.audit.query"), report);

    check_topics(topics, path, report);
}

/// What the `service` architectures need of this machine, before anything
/// starts: each program found, each setup file readable and bounded.
/// Relative paths are from the scenario's folder.
pub(super) fn check_machine(experiment: &Experiment, report: &mut Report<'_>) {
    let folder = experiment.folder.clone().unwrap_or_default();
    for (i, architecture) in experiment.architectures.iter().enumerate() {
        let ArchitectureSettings::Service {
            setup_sql,
            processes,
            ..
        } = architecture
        else {
            continue;
        };
        let path = format!("architectures[{i}]");
        for (p, process) in processes.iter().enumerate() {
            let Some(program) = process.command.first().filter(|p| !p.contains("{{")) else {
                continue;
            };
            if let Err(error) = faultline_stack::program::find_program(program, &folder) {
                report.at(
                    &format!("{path}.processes[{p}].command[0]"),
                    error,
                    Some("install it, or give its path (relative to the scenario's folder)".into()),
                );
            }
        }
        if let Some(file) = setup_sql {
            let key = format!("{path}.setup_sql");
            match std::fs::metadata(folder.join(file)) {
                Ok(meta) if !meta.is_file() => {
                    report.at(&key, format!("{file:?} is not a file"), None)
                }
                Ok(meta) if meta.len() > MAX_SETUP_SQL => report.at(
                    &key,
                    format!("{file:?} is larger than {MAX_SETUP_SQL} bytes"),
                    None,
                ),
                Ok(_) => {}
                Err(error) => report.at(
                    &key,
                    format!("{file:?}: {error}"),
                    Some("a path relative to the scenario's folder".into()),
                ),
            }
        }
    }
}

fn names(processes: &[ProcessSettings]) -> Vec<&str> {
    processes.iter().map(|p| p.name.as_str()).collect()
}

/// The request each event becomes: a known process, a method with a
/// body, templates over the event that carry its id, 2xx acknowledgements.
fn check_request(request: &RequestSettings, names: &[&str], at: &str, report: &mut Report<'_>) {
    if let Some(process) = &request.process
        && !names.contains(&process.as_str())
    {
        report.at(
            &format!("{at}.process"),
            format!("no process is named {process:?}"),
            Some(format!("processes: {}", quoted(names))),
        );
    }
    if !["POST", "PUT", "PATCH"].contains(&request.method.as_str()) {
        report.at(
            &format!("{at}.method"),
            format!(
                "{:?}: the load sends an event in a body, with POST, PUT or PATCH",
                request.method
            ),
            None,
        );
    }
    if !request.path.starts_with('/') {
        report.at(
            &format!("{at}.path"),
            format!("{:?} does not start with `/`", request.path),
            None,
        );
    }
    let path_template = template(&request.path, &format!("{at}.path"), &vars::EVENT, report);
    let body = template(&request.body, &format!("{at}.body"), &vars::EVENT, report);
    let carried = [&path_template, &body]
        .into_iter()
        .flatten()
        .any(|t| t.uses(vars::EVENT_ID));
    if (path_template.is_some() && body.is_some()) && !carried {
        report.at(
            &format!("{at}.body"),
            "the request does not carry `{{ event.id }}`: the audit could not tell which events were stored".into(),
            Some("put `{{ event.id }}` in the body (or the path), in a field the service stores".into()),
        );
    }
    if request.content_type.trim().is_empty() || request.content_type.contains(['\r', '\n']) {
        report.at(
            &format!("{at}.content_type"),
            format!("{:?} is not a content type", request.content_type),
            None,
        );
    }
    if request.ok.is_empty() {
        report.at(
            &format!("{at}.ok"),
            "no status acknowledges an event: every request would fail".into(),
            None,
        );
    }
    for (i, status) in request.ok.iter().enumerate() {
        if !(200..=299).contains(status) {
            report.at(
                &format!("{at}.ok[{i}]"),
                format!("{status} is not a 2xx status: only a success acknowledges an event"),
                None,
            );
        }
    }
}

/// The topics it asks for: distinct names a broker takes, partitions in
/// bounds.
fn check_topics(topics: &[TopicSpec], path: &str, report: &mut Report<'_>) {
    if topics.len() > MAX_TOPICS {
        report.at(
            &format!("{path}.topics"),
            format!("{} topics is more than {MAX_TOPICS}", topics.len()),
            None,
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, topic) in topics.iter().enumerate() {
        let at = format!("{path}.topics[{i}]");
        if let Some(first) = seen.insert(topic.name.as_str(), i) {
            report.at(
                &format!("{at}.name"),
                format!("{:?} is already topics[{first}]", topic.name),
                None,
            );
        }
        if let Some(name) = template(&topic.name, &format!("{at}.name"), &[vars::RUN_ID], report) {
            // The run's id is at most 120 such characters.
            let bare = name.fill(|_| Some("x"));
            if bare.is_empty()
                || bare.len() + 120 > 249
                || !bare
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            {
                report.at(
                    &format!("{at}.name"),
                    format!("{:?} is not a topic name", topic.name),
                    Some("letters, digits, `.`, `_` and `-`, at most 129 of them".into()),
                );
            }
        }
        if let Some(partitions) = topic.partitions
            && !(1..=limits::PARTITIONS).contains(&partitions)
        {
            report.at(
                &format!("{at}.partitions"),
                format!(
                    "{partitions}: a topic has 1 to {} partitions",
                    limits::PARTITIONS
                ),
                None,
            );
        }
    }
}

fn check_process(process: &ProcessSettings, at: &str, report: &mut Report<'_>) {
    if process.name.is_empty()
        || process.name.len() > 64
        || !process
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        report.at(
            &format!("{at}.name"),
            format!("{:?} is not a valid name", process.name),
            Some("up to 64 letters, digits, `-` and `_`".into()),
        );
    }
    match process.command.first() {
        None => report.at(
            &format!("{at}.command"),
            "a process needs a command: the program and its arguments".into(),
            Some("e.g. command = [\"node\", \"server.js\"]".into()),
        ),
        Some(program) if program.trim().is_empty() => report.at(
            &format!("{at}.command[0]"),
            "the program's name is empty".into(),
            None,
        ),
        Some(_) => {}
    }
    for (key, count) in [
        ("command", process.command.len()),
        ("env", process.env.len()),
    ] {
        if count > MAX_ARGUMENTS {
            report.at(
                &format!("{at}.{key}"),
                format!("{count} entries is more than {MAX_ARGUMENTS}"),
                None,
            );
        }
    }
    for (i, argument) in process.command.iter().enumerate() {
        let key = format!("{at}.command[{i}]");
        if let Some(template) = template(argument, &key, &vars::PROCESS, report) {
            for secret in vars::SECRET.iter().filter(|s| template.uses(s)) {
                report.at(
                    &key,
                    format!("`{{{{ {secret} }}}}` on a command line would show in `ps`"),
                    Some("hand it over in `env`".into()),
                );
            }
        }
    }
    for (key, value) in &process.env {
        let path = format!("{at}.env.{key}");
        if key.is_empty()
            || key.starts_with(|c: char| c.is_ascii_digit())
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            report.at(
                &path,
                format!("{key:?} is not an environment variable's name"),
                Some("letters, digits and `_`, not starting with a digit".into()),
            );
        }
        template(value, &path, &vars::PROCESS, report);
    }
    if let Some(metrics) = &process.metrics {
        if !metrics.path.starts_with('/') || metrics.path.contains(char::is_whitespace) {
            report.at(
                &format!("{at}.metrics.path"),
                format!(
                    "{:?} is not a path (it starts with `/`, without spaces)",
                    metrics.path
                ),
                None,
            );
        }
        let series_name = |name: &str| {
            !name.is_empty()
                && name.len() <= limits::SERIES
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        for (key, name) in [
            ("backlog", &metrics.backlog),
            ("breaker", &metrics.breaker),
            ("pool_wait", &metrics.pool_wait),
            ("connection_held", &metrics.connection_held),
            ("pool_max", &metrics.pool_max),
            ("rows", &metrics.rows),
        ] {
            if let Some(name) = name.as_deref().filter(|n| !series_name(n)) {
                report.at(
                    &format!("{at}.metrics.{key}"),
                    format!("{name:?} is not a Prometheus series' name"),
                    Some(format!(
                        "letters, digits, `_` and `:`, not starting with a digit, at most {} characters",
                        limits::SERIES
                    )),
                );
            }
        }
    }
    let ready = &process.ready;
    let given = [
        ready.http.is_some(),
        ready.tcp.is_some(),
        ready.wait.is_some(),
    ]
    .into_iter()
    .filter(|g| *g)
    .count();
    if given != 1 || ready.tcp == Some(false) {
        report.at(
            &format!("{at}.ready"),
            "say one way to tell it is ready".into(),
            Some("{ http = \"/health\" }, { tcp = true } or { wait = \"2s\" }".into()),
        );
    }
    if let Some(path) = &ready.http
        && (!path.starts_with('/') || path.contains(char::is_whitespace))
    {
        report.at(
            &format!("{at}.ready.http"),
            format!("{path:?} is not a path (it starts with `/`, without spaces)"),
            None,
        );
    }
    if ready.timeout.0.is_zero() {
        report.at(
            &format!("{at}.ready.timeout"),
            "a readiness timeout of zero never sees it ready".into(),
            None,
        );
    }
    if let Some(wait) = ready.wait
        && wait.0 > ready.timeout.0
    {
        report.at(
            &format!("{at}.ready.wait"),
            format!(
                "{wait} is longer than the readiness timeout, {}",
                ready.timeout
            ),
            None,
        );
    }
}

/// Parses a template at `key`, reporting a broken one, one longer than
/// [`MAX_TEMPLATE`], and every name it uses that is not in `known`.
fn template(text: &str, key: &str, known: &[&str], report: &mut Report<'_>) -> Option<Template> {
    if text.len() > MAX_TEMPLATE {
        report.at(
            key,
            format!("{} bytes is longer than {MAX_TEMPLATE}", text.len()),
            None,
        );
        return None;
    }
    match Template::parse(text) {
        Ok(template) => {
            let unknown = template.unknown(known);
            if !unknown.is_empty() {
                let hint = unknown
                    .iter()
                    .find_map(|name| crate::spelling::closest(name, known.iter().copied()))
                    .map(|n| format!("did you mean `{n}`?"))
                    .unwrap_or_else(|| format!("it may name {}", quoted(known)));
                report.at(
                    key,
                    format!(
                        "{} not a variable the lab gives here",
                        unknown
                            .iter()
                            .map(|n| format!("`{{{{ {n} }}}}` is"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some(hint),
                );
                return None;
            }
            Some(template)
        }
        Err(error) => {
            report.at(key, error.to_string(), None);
            None
        }
    }
}

/// The audit query: one statement that only reads (`SELECT` or `WITH`).
fn check_query(query: &str, key: &str, report: &mut Report<'_>) {
    if query.len() > MAX_TEMPLATE {
        report.at(
            key,
            format!("{} bytes is longer than {MAX_TEMPLATE}", query.len()),
            None,
        );
        return;
    }
    let text = query.trim().trim_end_matches(';').trim_end();
    let first = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if first != "SELECT" && first != "WITH" {
        report.at(
            key,
            "the audit query is not a SELECT: it must only read".into(),
            Some("SELECT my_id AS event_id, created_at AS stored_at FROM my_table".into()),
        );
    } else if text.contains(';') {
        report.at(
            key,
            "the audit query holds more than one statement".into(),
            None,
        );
    } else if !text.contains("event_id") || !text.contains("stored_at") {
        report.at(
            key,
            "the audit query names no `event_id` or no `stored_at` column".into(),
            Some(
                "alias your columns: `SELECT ref AS event_id, created_at AS stored_at FROM …`"
                    .into(),
            ),
        );
    }
}
